"""The learning rate of each checkpoint of a training run, for `mweval sweep` (which states it per
evaluated step, and whose cosine-tail guard compares the drift window's LR with the peak): upstream's
`train_log.csv` and a step's §10.4 schedule from `training_state.json`, read and reconciled into
one LR per step with its source and the run's peak LR; plus `fmt_lr`, the one notation an LR is
printed in.

LR per step: `RUN/train_log.csv` (`step`, `lr`), the row with that step; else the §10.4 schedule
from the step's `training_state.json` (`config.train.learning_rate`, `warmup_steps`, `max_steps`)
when that schedule reproduces every logged row (or there is no log); else linear interpolation
between the log's neighbouring rows; said in `lr_source`. Peak LR: the schedule's
`learning_rate` when it reproduces the log (upstream logs every 25 steps, so the log's largest row
misses the warmup's last step and sits below the peak), else the log's largest row.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailwoman_eval.errors import MwevalError

if TYPE_CHECKING:
    from mailwoman_eval.sweep import StepDir


@dataclass(frozen=True)
class Schedule:
    """upstream train.py: linear warmup, then cosine to zero at max_steps (upstream-formats.md §10.4)."""

    learning_rate: float
    warmup_steps: int
    max_steps: int

    def lr(self, step: int) -> float:
        peak, warmup = self.learning_rate, self.warmup_steps
        if step < warmup:
            return peak * step / warmup
        span = self.max_steps - warmup
        progress = min(1.0, (step - warmup) / span) if span > 0 else 1.0  # past max_steps: stays at 0
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))

    def to_json(self) -> dict:
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps, "max_steps": self.max_steps}


def read_schedule(step_dir: Path) -> Schedule | None:
    """`training_state.json` config.train; None when absent, or when it holds no complete schedule.
    A file that is there but unreadable or not JSON is refused: silently falling back to another
    step's schedule (or to none) would change what the cosine-tail guard says."""
    path = step_dir / "training_state.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError) as e:
        raise MwevalError(f"unreadable training_state.json ({e})", where=str(path)) from None
    except json.JSONDecodeError as e:
        raise MwevalError(f"malformed training_state.json ({e.msg})", where=f"{path}:{e.lineno}") from None
    except ValueError as e:  # an integer over 4300 digits
        raise MwevalError(f"malformed training_state.json ({e})", where=str(path)) from None
    try:
        train = state["config"]["train"]
        sched = Schedule(float(train["learning_rate"]), int(train["warmup_steps"]), int(train["max_steps"]))
    except (ValueError, KeyError, TypeError, OverflowError):
        return None
    if not (sched.learning_rate > 0 and sched.warmup_steps >= 0 and sched.max_steps > 0):
        return None
    return sched


def read_train_log(path: Path) -> dict[int, float]:
    """step -> lr from upstream's `train_log.csv`; rows with an empty lr are skipped; for a step
    logged twice (a resumed run appends) the last row wins. Errors name the file line
    (`line_num`: blank lines are skipped by the reader but still counted)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MwevalError(f"unreadable train_log.csv ({e})", where=str(path)) from None
    reader = csv.DictReader(io.StringIO(text))
    out: dict[int, float] = {}
    try:
        if not reader.fieldnames or "step" not in reader.fieldnames or "lr" not in reader.fieldnames:
            raise MwevalError("train_log.csv has no `step` and `lr` columns", where=str(path))
        for row in reader:
            where = f"{path}:{reader.line_num}"
            step, lr = (row.get("step") or "").strip(), (row.get("lr") or "").strip()
            if not step or not lr:
                continue
            try:
                s, v = int(float(step)), float(lr)
            except (ValueError, OverflowError):  # OverflowError: int(float("1e400"))
                raise MwevalError(f"train_log.csv: step {step!r} / lr {lr!r} is not a number", where=where) from None
            if not math.isfinite(v) or v < 0:
                raise MwevalError(f"train_log.csv: lr {lr!r} is not a finite non-negative number", where=where)
            out[s] = v
    except csv.Error as e:  # e.g. a field over the csv module's size limit; line_num counts lines read before it
        raise MwevalError(f"malformed train_log.csv ({e})", where=f"{path}:{reader.line_num + 1}") from None
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class StepLR:
    step: int
    lr: float | None
    source: str  # "train_log.csv" | "train_log.csv (interpolated …)" | "schedule (…)" | "unknown"


def interpolate(log: dict[int, float], step: int) -> tuple[float, str] | None:
    if step in log:
        return log[step], "train_log.csv"
    below = [s for s in log if s < step]
    above = [s for s in log if s > step]
    if not below or not above:
        return None
    a, b = max(below), min(above)
    lr = log[a] + (log[b] - log[a]) * (step - a) / (b - a)
    return lr, f"train_log.csv (step not logged; interpolated between steps {a} and {b})"


@dataclass
class LRInfo:
    points: list[StepLR]
    peak: float | None
    peak_source: str
    log_path: Path | None
    log: dict[int, float]
    schedule: Schedule | None

    def to_json(self) -> dict:
        return {
            "peak": self.peak,
            "peak_source": self.peak_source,
            "train_log": str(self.log_path) if self.log_path else None,
            "schedule": self.schedule.to_json() if self.schedule else None,
            "sources": sorted({p.source for p in self.points}),
        }


def reproduces(sched: Schedule, log: dict[int, float]) -> bool:
    """The §10.4 schedule gives every logged LR (the log prints 8 decimals: within 1e-8, or 1e-6 relative)."""
    return all(abs(sched.lr(s) - lr) <= max(1e-8, 1e-6 * abs(lr)) for s, lr in log.items())


def learning_rates(run_dir: Path, steps: list[StepDir]) -> LRInfo:
    log_path = run_dir / "train_log.csv"
    log = read_train_log(log_path) if log_path.is_file() else {}
    schedules = {s.step: read_schedule(s.path) for s in steps}
    fallback = next((schedules[s.step] for s in reversed(steps) if schedules[s.step]), None)
    # A schedule that reproduces the log is the run's LR at every step, logged or not; one that
    # does not (a resumed run with another recipe, a hand-edited log) yields to the log's rows.
    fits = {sc: not log or reproduces(sc, log) for sc in schedules.values() if sc}
    points = []
    for s in steps:
        sched = schedules[s.step] or fallback
        where = "its" if schedules[s.step] else "another step's"
        if s.step in log:
            points.append(StepLR(s.step, log[s.step], "train_log.csv"))
        elif sched is not None and fits[sched]:
            why = "; step not logged, and the schedule reproduces every train_log.csv row" if log else ""
            points.append(StepLR(s.step, sched.lr(s.step), f"schedule §10.4 ({where} training_state.json{why})"))
        elif (hit := interpolate(log, s.step) if log else None) is not None:
            points.append(StepLR(s.step, hit[0], hit[1]))
        elif sched is not None:
            points.append(StepLR(s.step, sched.lr(s.step), f"schedule §10.4 ({where} training_state.json; step outside train_log.csv)"))
        else:
            points.append(StepLR(s.step, None, "unknown"))
    fitting = [sc.learning_rate for sc, ok in fits.items() if ok]
    # Without a fitting schedule, the log's max is the peak only if the log reaches back to where the
    # peak is (the end of the warmup). A log that starts later (a resumed run, a truncated log) can
    # hold only cosine-tail rows: its max is below the peak, and taking it alone would clear the
    # guard on a decayed window. Then the configured peak counts as well.
    scheduled = max((sc.learning_rate for sc in schedules.values() if sc), default=None)
    warmup_end = max((sc.warmup_steps for sc in schedules.values() if sc), default=None)
    log_covers_peak = bool(log) and (warmup_end is None or min(log) <= warmup_end)
    if log and fitting:
        peak = max(max(fitting), max(log.values()))
        peak_source = "schedule peak: training_state.json learning_rate, whose §10.4 schedule reproduces every train_log.csv row"
    elif log and (log_covers_peak or scheduled is None or max(log.values()) >= scheduled):
        peak, peak_source = max(log.values()), "max lr in train_log.csv"
    elif scheduled is not None:
        peak = scheduled
        peak_source = "schedule peak (training_state.json learning_rate)" + (
            f"; train_log.csv starts at step {min(log)}, after the warmup ends ({warmup_end}), and stays below it"
            if log
            else ""
        )
    else:
        peak, peak_source = None, "unknown (no train_log.csv, no training_state.json)"
    return LRInfo(points, peak, peak_source, log_path if log else None, log, fallback)


def fmt_lr(x: float, decimals: int = 2) -> str:
    """A learning rate for people, in one notation wherever it is printed: 3 significant digits in
    scientific form ("8.57e-4", "3.04e-5"); %.3g switched to it below 1e-4 only ("0.000857" beside
    "3.04e-05"). The CSV and sweep.json keep the full value."""
    if x == 0:
        return "0"
    mant, exp = f"{x:.{decimals}e}".split("e")
    return f"{mant}e{int(exp)}"
