"""Every checkpoint of a training run on one golden set: which step should ship, and was the
verdict measured at a fair learning rate? (`mweval sweep`, design.md Decisions "Sweep").

The v0.4.0 postmortem's meta-bug: a 3000-step cosine smoke "passed" a stability criterion
measured while its LR was near zero, and the recipe diverged in the full run at peak LR. So every
sweep states the LR of each evaluated step, and the cosine-tail guard says loudly when the drift
window sat under a decayed LR.

This module finds the steps, evaluates them (one process per step, reusing the run cache), judges
peaks, drift, the guard and the verdict, and writes sweep.csv, sweep.json and the console summary;
the LR per step comes from learning_rate.py, the HTML page from report/sweep_page.py.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mailwoman_eval import __version__
from mailwoman_eval.checkpoints.backend import cpu_count
from mailwoman_eval.console import value_and_threshold
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import (
    atomic_write_text,
    check_output_dir,
    output_dir,
    sha256_file,
)
from mailwoman_eval.learning_rate import LRInfo, fmt_lr, learning_rates
from mailwoman_eval.metrics import VIEWS
from mailwoman_eval.stats import exact_f1

SCHEMA = "mweval.sweep/1"
STEP_RE = re.compile(r"^step-(\d+)$")
MARKER = "sweep.json"


# ---------------------------------------------------------------------------------------------
# the run directory


@dataclass(frozen=True)
class StepDir:
    step: int
    path: Path

    @property
    def out_name(self) -> str:
        return f"step-{self.step:06d}"


def resolve_run_dir(spec: str) -> Path:
    """An existing directory, else a run name under MWEVAL_CKPT_PATH / the bundled demo runs."""
    from mailwoman_eval.checkpoints.resolve import ckpt_search_levels, refuse_missing_env_roots

    p = Path(spec).expanduser()
    if p.is_dir():
        return p
    if p.exists():
        raise MwevalError("a training run is a directory of step-* checkpoints, not a file", where=spec)
    if not spec.startswith(("/", "./", "../", "~")):
        for level, roots in ckpt_search_levels():
            hits = sorted({(root / spec).resolve() for root in roots if (root / spec).is_dir()})
            if len(hits) > 1:  # as for checkpoint names: never pick one of two silently
                raise MwevalError(f"run name {spec!r} is ambiguous in {level}: {', '.join(map(str, hits))} (give a path)")
            if hits:
                refuse_missing_env_roots(spec, level, "run")
                return hits[0]
        refuse_missing_env_roots(spec, None, "run")
    raise MwevalError("training run directory does not exist", where=spec)


def find_steps(run_dir: Path) -> list[StepDir]:
    """`step-N` dirs holding config.json and pytorch_model.bin, by step number (§1.1).

    HEAD's half-written `.tmp-step-N/` dirs and steps without weights are skipped."""
    steps = []
    for d in run_dir.iterdir():
        m = STEP_RE.match(d.name)
        if m and d.is_dir() and (d / "config.json").is_file() and (d / "pytorch_model.bin").is_file():
            steps.append(StepDir(int(m.group(1)), d))
    if not steps:
        hint = (f"; it is a checkpoint: sweep takes its training run, {run_dir.resolve().parent}"
                if (run_dir / "config.json").is_file() else "")
        raise MwevalError("no step-* checkpoint directories with config.json and pytorch_model.bin" + hint, where=str(run_dir))
    steps.sort(key=lambda s: s.step)
    dup = [a.step for a, b in zip(steps, steps[1:], strict=False) if a.step == b.step]
    if dup:
        raise MwevalError(f"two checkpoint directories for step {dup[0]} (e.g. step-{dup[0]} and step-{dup[0]:06d})", where=str(run_dir))
    return steps


def incomplete_steps(run_dir: Path) -> list[str]:
    """`step-N` dirs that `find_steps` skips (no config.json or no pytorch_model.bin), said in the
    sweep's warnings: a final step missing its weights would otherwise drop out of the peak and
    the drift window without a word."""
    out = []
    for d in sorted(run_dir.iterdir()):
        if STEP_RE.match(d.name) and d.is_dir():
            missing = [n for n in ("config.json", "pytorch_model.bin") if not (d / n).is_file()]
            if missing:
                out.append(f"{d.name} skipped: no {' or '.join(missing)}")
    return out


# ---------------------------------------------------------------------------------------------
# evaluation (one process per step, reusing the run cache)


@dataclass(frozen=True)
class SweepOptions:
    profile: str = "runtime"
    view: str = "excluding_adversarial"
    tokenizer: str | None = None
    engine: str = "onnx"
    window: int = 5
    lr_floor: float = 0.6
    jobs: int | None = None
    min_peak: float | None = None
    max_drift: float | None = None
    verdict: bool = False
    use_cache: bool = True
    force: bool = False


def _quiet_on_interrupt() -> None:
    """Ctrl-C reaches the workers too (one process group): they end without a traceback each, and
    the parent, which got the same signal, says it once and removes its staging directory."""
    signal.signal(signal.SIGINT, lambda *a: os._exit(130))


def _evaluate_step(step_dir: str, golden_path: str, golden_name: str, opts: SweepOptions, out: str, threads: int) -> dict:
    """Worker: evaluate one checkpoint into `out` (or copy the cached run) and return its numbers."""
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint
    from mailwoman_eval.evaluate import EvalOptions, evaluate
    from mailwoman_eval.golden import load_golden
    from mailwoman_eval.profiles import get_profile
    from mailwoman_eval.run import CACHE_WARNING

    gset = load_golden(Path(golden_path), golden_name)
    eo = EvalOptions(profile=get_profile(opts.profile), tokenizer=opts.tokenizer, engine=opts.engine, threads=threads,
                     use_cache=opts.use_cache, force=True)
    notes: list[str] = []
    run = evaluate(resolve_checkpoint(step_dir), gset, eo, Path(out), log=notes.append)
    m = run.meta
    return {
        "tags": m["tags"],
        "views": m["metrics"]["views"],
        "checkpoint_sha256": m["checkpoint"]["sha256"],
        "tokenizer": m["tokenizer"],
        "golden": {k: m["golden"][k] for k in ("name", "sha256", "rows")},
        "transitions": m["decode"]["transitions"],
        "cache": m["timings"].get("cache", "miss"),
        "seconds": m["timings"].get("total_s"),
        "warnings": m["warnings"],
        # a run cache that cannot be written is in no run.json (the rest of what evaluate says is)
        "cache_warnings": [n for n in notes if n.startswith(CACHE_WARNING)],
    }


def evaluate_steps(
    steps: list[StepDir],
    golden_path: Path,
    golden_name: str,
    opts: SweepOptions,
    runs_dir: Path,
    log: Callable[[str], None],
) -> dict[int, dict]:
    jobs = opts.jobs if opts.jobs is not None else min(2, len(steps))
    jobs = max(1, min(jobs, len(steps)))
    threads = max(1, cpu_count() // jobs)
    args = {s.step: (str(s.path), str(golden_path), golden_name, opts, str(runs_dir / s.out_name), threads) for s in steps}
    results: dict[int, dict] = {}

    said: set[str] = set()

    def done(step: int, r: dict) -> None:
        results[step] = r
        for w in r["cache_warnings"]:  # once, not once per step
            if w not in said:
                said.add(w)
                log(w)
        macro = r["views"][opts.view]["macro_f1"]
        log(f"  step {step}: macro F1 {macro:.4f} ({opts.view}; {r['cache']} cache, {len(results)}/{len(steps)})")

    if jobs == 1:
        for s in steps:
            done(s.step, _evaluate_step(*args[s.step]))
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: the parent may hold onnxruntime / BLAS thread pools that fork would copy mid-state
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_quiet_on_interrupt) as pool:
        # workers are spawned by the submits: they start with Ctrl-C ignored (a disposition exec keeps)
        # until their initializer takes it; one that got it while importing printed a traceback. A
        # Ctrl-C in those few milliseconds is dropped (main thread only: signal.signal is refused elsewhere)
        own = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not None
        before = signal.signal(signal.SIGINT, signal.SIG_IGN) if own else None
        try:
            try:
                futures = {pool.submit(_evaluate_step, *args[s.step]): s.step for s in steps}
            finally:
                if before is not None:
                    signal.signal(signal.SIGINT, before)
            for f in as_completed(futures):
                done(futures[f], f.result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # one bad step: do not evaluate the rest
            raise
    return results


# ---------------------------------------------------------------------------------------------
# peaks, drift, guard, verdict


def _argmax_first(values: list[float | None]) -> int | None:
    best = None
    for i, v in enumerate(values):
        if v is not None and (best is None or v > values[best]):
            best = i
    return best


def _drift(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(max(vals) - min(vals), 6) if vals else None


def pct_pair(frac: float, floor: float) -> tuple[str, str]:
    """A fraction of peak LR and the floor, in percent: whole percent unless that prints an LR
    below the floor as equal to it ("below 60% … = 60%" for 59.93%)."""
    return value_and_threshold(frac, floor, digits=(0, 1, 2, 3, 4, 5, 6), scale=100, unit="%")


def exact_macro_f1(view: dict) -> float:
    """A view's macro F1 unrounded, from its per-tag counts over the tags metrics.summarize averages
    (run.json rounds it to 6 places: a drift of 0.0100004 read as 0.01 passed --max-drift 0.01).
    Each F1 is exact (`stats.exact_f1`), without eval.py's 1e-9 guards, which put a perfect
    run at 0.9999999995 and failed --min-peak 1 (the same value to ~1e-9; it rounds as run.json's)."""
    used = view["macro_f1_denominator"]["tags"]
    if not used:
        return 0.0
    return float(np.mean([float(exact_f1(*(int(view["per_tag"][t][k]) for k in ("tp", "fp", "fn")))) for t in used]))


def judge(rows: list[dict], lr: LRInfo, opts: SweepOptions, tags: list[str], exact: list[float] | None = None) -> dict:
    """Peaks, drift over the last `window` evaluated steps, the cosine-tail guard and the verdict.
    `exact`: each row's unrounded macro F1 (`exact_macro_f1`), which the rules judge; the rows'
    rounded values when not given."""
    exact = exact if exact is not None else [r["macro_f1"] for r in rows]
    k = min(opts.window, len(rows))
    win = rows[-k:]
    macro = [r["macro_f1"] for r in rows]
    # the peak step is the unrounded peak's, which --min-peak judges: with run.json's 6 places two
    # steps can tie (0.9000001 and 0.9000004 both read 0.9), and the earlier one was named as the
    # peak while --min-peak's text named the later
    pi = _argmax_first(exact)
    peaks = {"macro_f1": {"step": rows[pi]["step"], "f1": macro[pi]}, "per_tag": {}}
    drift_tags = {}
    for t in tags:
        series = [r["f1"].get(t) for r in rows]
        i = _argmax_first(series)
        peaks["per_tag"][t] = {"step": rows[i]["step"], "f1": series[i]} if i is not None else None
        drift_tags[t] = _drift([r["f1"].get(t) for r in win])
    drift = {"window": k, "window_requested": opts.window, "steps": [r["step"] for r in win],
             "macro_f1": _drift([r["macro_f1"] for r in win]), "per_tag": drift_tags}

    # cosine-tail guard
    floor_lr = opts.lr_floor * lr.peak if lr.peak is not None else None
    below = [r["step"] for r in win if floor_lr is not None and r["lr"] is not None and r["lr"] < floor_lr]
    unknown = [r["step"] for r in win if r["lr"] is None]
    if opts.lr_floor <= 0:
        status, msg = "disabled", "cosine-tail guard disabled (--lr-floor 0)"
    elif below:
        low = min((r for r in win if r["step"] in below), key=lambda r: r["lr"])
        status = "fired"
        low_pct, floor_pct = pct_pair(low["lr"] / lr.peak, opts.lr_floor)
        msg = (
            f"COSINE-TAIL GUARD: {len(below)} of {k} steps in the drift window (steps {win[0]['step']}–{win[-1]['step']}) "
            f"ran at LR below {floor_pct} of peak ({fmt_lr(lr.peak)}; lowest {fmt_lr(low['lr'])} = "
            f"{low_pct} at step {low['step']}). The verdict measured stability under a decayed LR, "
            f"not the recipe: use a constant LR for the verdict window, or a max_steps that keeps the window "
            f"above {floor_pct} of peak."
        )
    elif unknown or floor_lr is None:
        status = "unknown"
        which = ", ".join(str(s) for s in (unknown or [r["step"] for r in win]))
        msg = (
            f"COSINE-TAIL GUARD CANNOT CHECK: LR unknown for steps {which} (no train_log.csv row and no "
            f"training_state.json schedule), so a decayed-LR window cannot be ruled out; --lr-floor 0 disables the guard"
        )
    elif lr.peak is not None and lr.peak <= 0:  # no LR is below 0.6 x 0: "clear" passed a run that never learned
        status = "unknown"
        msg = (
            f"COSINE-TAIL GUARD CANNOT CHECK: the peak LR is 0 ({lr.peak_source}), so the drift window's LR "
            f"cannot be compared with it; --lr-floor 0 disables the guard"
        )
    else:
        status = "clear"
        msg = f"LR stayed at or above {opts.lr_floor:.0%} of peak ({fmt_lr(lr.peak)}) throughout the drift window"
    guard = {"status": status, "fired": status == "fired", "lr_floor": opts.lr_floor, "peak_lr": lr.peak,
             "threshold_lr": floor_lr, "steps_below_floor": below, "steps_lr_unknown": unknown, "message": msg}

    rules = {}
    if opts.min_peak is not None:
        v, th = value_and_threshold(exact[pi], opts.min_peak)
        rules["min_peak"] = {"threshold": opts.min_peak, "value": macro[pi], "pass": exact[pi] >= opts.min_peak,
                             "text": f"peak macro F1 {v} (step {rows[pi]['step']}) ≥ {th}"}
    if opts.max_drift is not None:
        d = drift["macro_f1"]
        d_exact = max(exact[-k:]) - min(exact[-k:])
        if k < 2:  # max - min of one value is 0: no stability was measured, so the rule cannot pass
            held = f"the run has {len(rows)}" if k == len(rows) else f"the window has {k} (--window {opts.window})"
            rules["max_drift"] = {"threshold": opts.max_drift, "value": d, "pass": False,
                                  "text": f"drift of macro F1 needs at least 2 evaluated steps; {held}"}
        else:
            v, th = value_and_threshold(d_exact, opts.max_drift)
            rules["max_drift"] = {"threshold": opts.max_drift, "value": d, "pass": d_exact <= opts.max_drift,
                                  "text": f"drift of macro F1 over the last {k} steps {v} ≤ {th}"}
    for r in rules.values():  # the text says what was found: "0.0318 ≤ 0.0100" read as a false claim on a FAIL line
        if not r["pass"]:
            r["text"] = r["text"].replace("≥", "is not ≥").replace("≤", "is not ≤")
    reasons = [f"rule failed: {r['text']}" for r in rules.values() if not r["pass"]]
    if status in ("fired", "unknown"):
        reasons.append(msg)
    result = "FAIL" if reasons else "PASS"
    verdict = {
        "requested": opts.verdict,
        "result": result,
        "reasons": reasons,
        "exit_code": 1 if opts.verdict and result == "FAIL" else 0,
        "note": None if opts.verdict else "no --verdict: reported only, exit 0",
    }
    return {"peaks": peaks, "drift": drift, "guard": guard, "rules": rules, "verdict": verdict}


# ---------------------------------------------------------------------------------------------
# the sweep


def sweep(
    run_spec: str,
    golden: str,
    opts: SweepOptions,
    out: Path | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[dict, Path]:
    """Evaluate every step of a run, write OUT/runs/step-N/, sweep.csv, sweep.html, sweep.json."""
    from mailwoman_eval.checkpoints.resolve import find_tokenizer, resolve_checkpoint
    from mailwoman_eval.golden import load_golden, resolve_golden
    from mailwoman_eval.profiles import get_profile

    if opts.view not in VIEWS:
        raise MwevalError(f"unknown view {opts.view!r}; choose one of {', '.join(VIEWS)}")
    if opts.window < 1:
        raise MwevalError("--window must be at least 1")
    get_profile(opts.profile)
    t0 = time.perf_counter()
    run_dir = resolve_run_dir(run_spec)
    steps = find_steps(run_dir)
    gpath, gname = resolve_golden(golden)
    load_golden(gpath, gname)  # bad golden input fails here, before any worker starts
    tokenizers: dict[str, tuple[StepDir, Path]] = {}  # a missing tokenizer fails before any work is done
    hashed: dict[Path, str] = {}
    for s in steps:
        path = find_tokenizer(resolve_checkpoint(str(s.path)), opts.tokenizer)[0]
        digest = hashed[path] = hashed.get(path) or sha256_file(path)
        tokenizers.setdefault(digest, (s, path))
    if len(tokenizers) > 1:  # other pieces, other numbers: a curve across them measures the tokenizers
        (s1, p1), (s2, p2) = list(tokenizers.values())[:2]
        raise MwevalError(
            f"the steps of this run use different tokenizers ({s1.path.name}: {p1}; {s2.path.name}: {p2}); "
            "their scores do not compare",
            where=str(run_dir),
        )
    refuse_mixed_labels(steps, run_dir)
    lr = learning_rates(run_dir, steps)
    run_name = run_dir.resolve().name
    if out is None:
        out = Path("reports") / f"sweep__{run_name}__{gname.replace('/', '-')}"
    check_output_dir(out, MARKER, opts.force)
    log(f"mweval sweep: {run_name}, {len(steps)} checkpoints on {gname}, profile {opts.profile}")
    # Everything is written into a staging directory beside `out` and moved into place at the end:
    # a previous sweep there is replaced whole (not left with another run's step-* evaluations),
    # and a sweep that fails leaves `out` as it was.
    with output_dir(out, MARKER, opts.force) as staging:
        doc = _sweep_into(staging, run_dir, run_name, steps, gpath, gname, lr, opts, log, t0)
    return doc, out


def refuse_mixed_labels(steps: list[StepDir], run_dir: Path) -> None:
    """Steps whose config.json label lists differ are refused before any evaluation: macro F1 over
    other tags (and per-tag F1 under other label ids) makes no curve, and the guard and the verdict
    judge that curve."""
    from mailwoman_eval.checkpoints.pytorch_dir import labels_from_config, read_config

    first: tuple[StepDir, list[str]] | None = None
    for s in steps:
        cfg_path = s.path / "config.json"
        labels = labels_from_config(read_config(cfg_path), str(cfg_path))[0]
        if first is None:
            first = (s, labels)
        elif labels != first[1]:
            s0, l0 = first
            def some(xs: list[str]) -> str:
                return ", ".join(xs[:4]) + (f" and {len(xs) - 4} more" if len(xs) > 4 else "")

            added, dropped = [x for x in labels if x not in l0], [x for x in l0 if x not in labels]
            what = "; ".join(filter(None, [f"adds {some(added)}" if added else "", f"drops {some(dropped)}" if dropped else ""]))
            raise MwevalError(
                f"the steps of this run use different label lists ({s.path.name} against {s0.path.name}: "
                f"{what or 'same labels in another order'}); their scores do not compare",
                where=str(run_dir),
            )


def _sweep_into(out: Path, run_dir: Path, run_name: str, steps: list[StepDir], gpath: Path, gname: str, lr: LRInfo,
                opts: SweepOptions, log: Callable[[str], None], t0: float) -> dict:
    results = evaluate_steps(steps, gpath, gname, opts, out / "runs", log)

    tags: list[str] = []
    for s in steps:
        tags += [t for t in results[s.step]["tags"] if t not in tags]
    rows = []
    for s, p in zip(steps, lr.points, strict=True):
        r = results[s.step]
        v = r["views"][opts.view]
        rows.append({
            "step": s.step,
            "checkpoint": str(s.path),
            "run_dir": f"runs/{s.out_name}",
            "lr": p.lr,
            "lr_source": p.source,
            "lr_fraction_of_peak": round(p.lr / lr.peak, 6) if p.lr is not None and lr.peak else None,
            "macro_f1": v["macro_f1"],
            "entries": v["entries"],
            "f1": {t: (v["per_tag"][t]["f1"] if t in v["per_tag"] and v["per_tag"][t]["support"] > 0 else None) for t in tags},
            "support": {t: v["per_tag"].get(t, {}).get("support", 0) for t in tags},
            "checkpoint_sha256": r["checkpoint_sha256"],
        })
    first = results[steps[0].step]
    view = first["views"][opts.view]
    if not view["macro_f1_denominator"]["tags"]:  # macro F1 0.0 at every step: a drift of 0 that passes any rule
        raise MwevalError(
            f"the view {opts.view} holds no gold value to score in golden set {gname} ({view['entries']} entries); choose another --view"
        )
    goldens = {results[s.step]["golden"]["sha256"] for s in steps}
    if len(goldens) != 1:  # cannot happen from one golden path, but the numbers would not compare
        raise MwevalError("runs of this sweep were scored on different golden files")
    decoders: dict[str, list[int]] = {}
    for s in steps:
        decoders.setdefault(results[s.step]["transitions"], []).append(s.step)
    if len(decoders) > 1:  # e.g. a step saved without the CRF's weights decodes with masks only
        raise MwevalError(
            "the steps of this run decode differently ("
            + "; ".join(f"steps {', '.join(map(str, st))}: {src}" for src, st in decoders.items())
            + "); their scores do not compare",
            where=str(run_dir),
        )
    warnings = sorted({w for s in steps for w in results[s.step]["warnings"]}) + incomplete_steps(run_dir)
    interp = [p.step for p in lr.points if "interpolated" in p.source]
    if interp:
        warnings.append(f"LR of steps {', '.join(map(str, interp))} interpolated between train_log.csv rows")
    if len(rows) < 2:
        warnings.append(f"only {len(rows)} evaluated step: the drift over it measures no stability")
    judged = judge(rows, lr, opts, tags, [exact_macro_f1(results[s.step]["views"][opts.view]) for s in steps])
    doc = {
        "schema": SCHEMA,
        "mweval_version": __version__,
        "run": {"name": run_name, "path": str(run_dir)},
        "golden": first["golden"],
        "profile": opts.profile,
        "view": opts.view,
        "tokenizer": first["tokenizer"],
        "transitions": first["transitions"],
        "tags": tags,
        "options": {"window": opts.window, "lr_floor": opts.lr_floor, "min_peak": opts.min_peak,
                    "max_drift": opts.max_drift, "verdict": opts.verdict},
        "lr": lr.to_json(),
        "steps": rows,
        **judged,
        "warnings": warnings,
        # a rerun hits the cache where the first run missed: that lives here, with the times
        "timings": {"total_s": round(time.perf_counter() - t0, 3), "evaluated": len(rows),
                    "cache_hits": sum(results[s.step]["cache"] == "hit" for s in steps),
                    "cache": {str(s.step): results[s.step]["cache"] for s in steps}},
    }
    atomic_write_text(out / "sweep.csv", to_csv(doc))
    from mailwoman_eval.report.sweep_page import render_html  # jinja2 only when the page is written

    atomic_write_text(out / "sweep.html", render_html(doc, lr))
    atomic_write_text(out / MARKER, json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    return doc


def to_csv(doc: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["step", "lr", "lr_source", "macro_f1", *doc["tags"]])
    for r in doc["steps"]:
        lr = "" if r["lr"] is None else f"{r['lr']:.10g}"
        w.writerow([r["step"], lr, r["lr_source"], f"{r['macro_f1']:.6f}",
                    *["" if r["f1"][t] is None else f"{r['f1'][t]:.6f}" for t in doc["tags"]]])
    return buf.getvalue()


def console_summary(doc: dict) -> str:
    from mailwoman_eval.console import table

    rows = []
    for r in doc["steps"]:
        frac = r["lr_fraction_of_peak"]
        rows.append([r["step"], "?" if r["lr"] is None else fmt_lr(r["lr"]), "?" if frac is None else pct_pair(frac, doc["guard"]["lr_floor"])[0],
                     f"{r['macro_f1']:.4f}", "*" if r["step"] in doc["drift"]["steps"] else "", r["lr_source"]])
    lines = [f"{doc['run']['name']} on {doc['golden']['name']} — profile {doc['profile']}, macro F1 view {doc['view']}"]
    lines += [table(["step", "lr", "of peak", "macro F1", "window", "lr source"], rows, align="rrrrll")]
    pk, dr = doc["peaks"]["macro_f1"], doc["drift"]
    lines.append(f"peak macro F1 {pk['f1']:.4f} at step {pk['step']}; drift over the last {dr['window']} steps "
                 f"{dr['macro_f1']:.4f} (max − min)")
    g = doc["guard"]
    lines.append(("!!! " if g["status"] in ("fired", "unknown") else "") + g["message"])
    for r in doc["rules"].values():
        lines.append(f"{'pass' if r['pass'] else 'FAIL'}: {r['text']}")
    v = doc["verdict"]
    lines.append(f"verdict {v['result']}" + ("" if v["requested"] else " (not enforced: no --verdict, exit 0)"))
    return "\n".join(lines)
