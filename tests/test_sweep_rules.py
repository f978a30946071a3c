"""The sweep's judging rules, edge by edge, without evaluating a checkpoint (design.md Decisions,
"Sweep"; README "Sweep"): the peak (ties go to the earliest step), the drift = max − min of macro
F1 over the last `--window` evaluated steps (all when fewer), the cosine-tail guard (fires when a
window step ran at LR < `--lr-floor` × peak LR), the verdict (`--min-peak`, `--max-drift`, exit 1
only with `--verdict`); and learning_rate.py: the §10.4 schedule (upstream-formats.md), the
train_log.csv reader, the LR per step with its source, the peak LR and `fmt_lr`."""

import json
import math
from pathlib import Path

import pytest

from mailwoman_eval.errors import MwevalError
from mailwoman_eval.learning_rate import (
    LRInfo,
    Schedule,
    fmt_lr,
    interpolate,
    learning_rates,
    read_schedule,
    read_train_log,
    reproduces,
)
from mailwoman_eval.sweep import StepDir, SweepOptions, exact_macro_f1, judge, pct_pair

PEAK = 1e-3


def rows(*specs):
    """Rows as judge gets them: (step, lr, macro_f1[, {tag: f1 or None}])."""
    out = []
    for spec in specs:
        step, lr, macro, *f1 = spec
        out.append({"step": step, "lr": lr, "macro_f1": macro, "f1": f1[0] if f1 else {}})
    return out


def lr_info(peak=PEAK):
    return LRInfo([], peak, "test", None, {}, None)


def run_judge(rs, peak=PEAK, exact=None, tags=(), **opts):
    return judge(rs, lr_info(peak), SweepOptions(**opts), list(tags), exact)


# ---------------------------------------------------------------------------------------------
# peaks


def test_the_peak_ties_go_to_the_earliest_step():
    rs = rows((100, PEAK, 0.8, {"a": None}), (200, PEAK, 0.9, {"a": 0.5}), (300, PEAK, 0.9, {"a": 0.7}),
              (400, PEAK, 0.85, {"a": 0.7}))
    got = run_judge(rs, tags=["a"], min_peak=0.5)
    assert got["peaks"]["macro_f1"] == {"step": 200, "f1": 0.9}
    assert got["peaks"]["per_tag"]["a"] == {"step": 300, "f1": 0.7}
    assert "(step 200)" in got["rules"]["min_peak"]["text"]


def test_the_peak_is_the_maximum_wherever_it_is():
    rs = rows((100, PEAK, 0.95), (200, PEAK, 0.5), (300, PEAK, 0.7))
    assert run_judge(rs)["peaks"]["macro_f1"] == {"step": 100, "f1": 0.95}
    rs = rows((100, PEAK, 0.5), (200, PEAK, 0.7), (300, PEAK, 0.95))
    assert run_judge(rs)["peaks"]["macro_f1"] == {"step": 300, "f1": 0.95}


def test_a_tag_never_measured_has_no_peak_and_no_drift():
    """A tag with no gold value at a step has F1 None there: it is skipped, not read as 0."""
    rs = rows((100, PEAK, 0.5, {"a": 0.9, "b": None}), (200, PEAK, 0.6, {"a": None, "b": None}),
              (300, PEAK, 0.7, {"a": 0.6, "b": None}))
    got = run_judge(rs, tags=["a", "b"])
    assert got["peaks"]["per_tag"] == {"a": {"step": 100, "f1": 0.9}, "b": None}
    assert got["drift"]["per_tag"] == {"a": pytest.approx(0.3), "b": None}


# ---------------------------------------------------------------------------------------------
# drift


def test_drift_is_max_minus_min_over_the_last_window_steps():
    rs = rows((100, PEAK, 0.1), (200, PEAK, 0.5), (300, PEAK, 0.7), (400, PEAK, 0.6), (500, PEAK, 0.65),
              (600, PEAK, 0.62))
    d = run_judge(rs)["drift"]  # the default window is 5: step 100 is out of it
    assert d["window"] == 5 and d["window_requested"] == 5
    assert d["steps"] == [200, 300, 400, 500, 600]
    assert d["macro_f1"] == 0.2
    d = run_judge(rs, window=2)["drift"]
    assert d["steps"] == [500, 600] and d["macro_f1"] == 0.03


def test_a_window_wider_than_the_run_takes_every_step():
    rs = rows((100, PEAK, 0.1), (200, PEAK, 0.5), (300, PEAK, 0.7))
    d = run_judge(rs, window=10)["drift"]
    assert d["window"] == 3 and d["window_requested"] == 10 and d["steps"] == [100, 200, 300]
    assert d["macro_f1"] == 0.6


def test_drift_keeps_every_decimal_of_run_json():
    """run.json gives F1 to 6 places: their difference is the drift, not a coarser rounding of it."""
    rs = rows((100, PEAK, 0.912345, {"a": 0.5}), (200, PEAK, 0.8, {"a": 0.487655}))
    d = run_judge(rs, tags=["a"])["drift"]
    assert d["macro_f1"] == 0.112345 and d["per_tag"]["a"] == 0.012345


def test_per_tag_drift_is_over_the_window_only():
    rs = rows((100, PEAK, 0.5, {"a": 0.0}), (200, PEAK, 0.5, {"a": 0.8}), (300, PEAK, 0.5, {"a": 0.9}))
    assert run_judge(rs, window=2, tags=["a"])["drift"]["per_tag"]["a"] == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------
# the cosine-tail guard


def test_the_guard_fires_only_strictly_below_the_floor():
    """LR < lr_floor × peak fires; an LR exactly at the floor does not."""
    at = rows((100, PEAK, 0.5), (200, 0.5 * PEAK, 0.5))
    g = run_judge(at, lr_floor=0.5)["guard"]
    assert g["status"] == "clear" and not g["fired"] and g["steps_below_floor"] == []
    assert g["threshold_lr"] == 0.5 * PEAK and g["peak_lr"] == PEAK and g["lr_floor"] == 0.5
    below = rows((100, PEAK, 0.5), (200, 0.499 * PEAK, 0.5))
    g = run_judge(below, lr_floor=0.5)["guard"]
    assert g["status"] == "fired" and g["fired"] and g["steps_below_floor"] == [200]


def test_the_guard_looks_only_at_the_drift_window():
    rs = rows((100, 0.1 * PEAK, 0.5), (200, PEAK, 0.5), (300, 0.9 * PEAK, 0.5))
    assert run_judge(rs, window=2)["guard"]["status"] == "clear"
    got = run_judge(rs, window=3)
    assert got["guard"]["status"] == "fired" and got["guard"]["steps_below_floor"] == [100]


def test_a_fired_guard_names_the_lowest_step_and_counts_the_window():
    rs = rows((100, PEAK, 0.5), (200, 0.5 * PEAK, 0.5), (300, 0.3 * PEAK, 0.5), (400, 0.4 * PEAK, 0.5))
    g = run_judge(rs, window=3)["guard"]
    assert g["steps_below_floor"] == [200, 300, 400]
    assert g["message"].startswith("COSINE-TAIL GUARD: 3 of 3 steps in the drift window (steps 200–400)")
    assert "below 60% of peak (1.00e-3; lowest 3.00e-4 = 30% at step 300)" in g["message"]


def test_the_guard_fails_the_verdict_and_exits_1_only_with_verdict():
    rs = rows((100, PEAK, 0.5), (200, 0.1 * PEAK, 0.5))
    v = run_judge(rs, verdict=True)["verdict"]
    assert v["result"] == "FAIL" and v["exit_code"] == 1 and v["requested"] and v["note"] is None
    assert v["reasons"] == [run_judge(rs)["guard"]["message"]]
    v = run_judge(rs)["verdict"]
    assert v["result"] == "FAIL" and v["exit_code"] == 0 and not v["requested"]
    assert v["note"] == "no --verdict: reported only, exit 0"


def test_an_unknown_lr_in_the_window_cannot_be_cleared():
    rs = rows((100, None, 0.5), (200, PEAK, 0.5), (300, None, 0.5))
    got = run_judge(rs, verdict=True, window=2)
    g = got["guard"]
    assert g["status"] == "unknown" and not g["fired"] and g["steps_lr_unknown"] == [300]
    assert "LR unknown for steps 300 " in g["message"]
    assert got["verdict"]["result"] == "FAIL" and got["verdict"]["exit_code"] == 1
    assert got["verdict"]["reasons"] == [g["message"]]
    # outside the window an unknown LR does not matter
    rs = rows((100, None, 0.5), (200, PEAK, 0.5), (300, PEAK, 0.5))
    got = run_judge(rs, verdict=True, window=2)
    assert got["guard"]["status"] == "clear" and got["verdict"]["result"] == "PASS" and got["verdict"]["exit_code"] == 0


def test_an_unknown_peak_lr_cannot_be_cleared():
    rs = rows((100, PEAK, 0.5), (200, PEAK, 0.5))
    g = run_judge(rs, peak=None)["guard"]
    assert g["status"] == "unknown" and g["threshold_lr"] is None and g["steps_below_floor"] == []
    assert "LR unknown for steps 100, 200 " in g["message"]


def test_a_step_below_the_floor_fires_even_when_another_lr_is_unknown():
    rs = rows((100, None, 0.5), (200, 0.1 * PEAK, 0.5))
    g = run_judge(rs)["guard"]
    assert g["status"] == "fired" and g["steps_below_floor"] == [200] and g["steps_lr_unknown"] == [100]


def test_lr_floor_zero_disables_the_guard():
    rs = rows((100, None, 0.5), (200, 0.0, 0.5))
    got = run_judge(rs, lr_floor=0.0, verdict=True)
    assert got["guard"]["status"] == "disabled" and got["verdict"]["result"] == "PASS"
    assert got["guard"]["message"] == "cosine-tail guard disabled (--lr-floor 0)"
    got = run_judge(rows((100, PEAK, 0.5), (200, PEAK, 0.5)), lr_floor=0.0)
    assert got["guard"]["status"] == "disabled"  # known LRs too: not "clear"


def test_a_clear_guard_says_so_and_passes():
    got = run_judge(rows((100, PEAK, 0.5), (200, 0.6 * PEAK, 0.5)), verdict=True)
    assert got["guard"]["status"] == "clear"
    assert got["guard"]["message"] == "LR stayed at or above 60% of peak (1.00e-3) throughout the drift window"
    assert got["verdict"] == {"requested": True, "result": "PASS", "reasons": [], "exit_code": 0, "note": None}


def test_a_percent_of_peak_takes_one_more_decimal_at_a_time():
    """Whole percent, else the fewest decimals that do not print an LR below the floor as the floor."""
    assert pct_pair(0.42, 0.6) == ("42%", "60%")
    assert pct_pair(0.59993, 0.6) == ("59.99%", "60.00%")
    assert pct_pair(0.599993, 0.6) == ("59.999%", "60.000%")
    assert pct_pair(0.5999993, 0.6) == ("59.9999%", "60.0000%")
    assert pct_pair(0.59999993, 0.6) == ("59.99999%", "60.00000%")
    assert pct_pair(0.6, 0.6) == ("60%", "60%")


# ---------------------------------------------------------------------------------------------
# the rules and the verdict


def test_min_peak_passes_at_the_threshold_and_fails_below():
    rs = rows((100, PEAK, 0.8), (200, PEAK, 0.9))
    r = run_judge(rs, min_peak=0.9)["rules"]["min_peak"]
    assert r["pass"] and r["value"] == 0.9 and r["threshold"] == 0.9
    assert r["text"] == "peak macro F1 0.9000 (step 200) ≥ 0.9000"
    r = run_judge(rs, min_peak=0.91, verdict=True)
    assert not r["rules"]["min_peak"]["pass"]
    assert r["verdict"]["reasons"] == ["rule failed: peak macro F1 0.9000 (step 200) is not ≥ 0.9100"]
    assert r["verdict"]["exit_code"] == 1


def test_max_drift_passes_at_the_threshold_and_fails_above():
    rs = rows((100, PEAK, 0.75), (200, PEAK, 0.5))
    r = run_judge(rs, max_drift=0.25)["rules"]["max_drift"]
    assert r["pass"] and r["value"] == 0.25 and r["threshold"] == 0.25
    assert r["text"] == "drift of macro F1 over the last 2 steps 0.2500 ≤ 0.2500"
    r = run_judge(rs, max_drift=0.2499)["rules"]["max_drift"]
    assert not r["pass"] and r["text"] == "drift of macro F1 over the last 2 steps 0.2500 is not ≤ 0.2499"


def test_max_drift_judges_the_window_not_the_run():
    for before in (0.1, 0.9):  # a step before the window, below it or above it
        rs = rows((100, PEAK, before), (200, PEAK, 0.5), (300, PEAK, 0.52))
        exact = [before, 0.5, 0.52]
        assert run_judge(rs, exact=exact, window=2, max_drift=0.05)["rules"]["max_drift"]["pass"]
        assert not run_judge(rs, exact=exact, window=3, max_drift=0.05)["rules"]["max_drift"]["pass"]


def test_drift_needs_two_steps_in_the_window():
    """max − min of one value is 0: no stability was measured, so --max-drift cannot pass."""
    one = run_judge(rows((100, PEAK, 0.5)), max_drift=1.0)["rules"]["max_drift"]
    assert not one["pass"] and one["value"] == 0.0
    assert one["text"] == "drift of macro F1 needs at least 2 evaluated steps; the run has 1"
    two = run_judge(rows((100, PEAK, 0.5), (200, PEAK, 0.5)), max_drift=0.0)["rules"]["max_drift"]
    assert two["pass"]  # two steps: a drift of 0 is measured, and it is ≤ 0


def test_the_verdict_lists_every_failed_rule_then_the_guard():
    rs = rows((100, PEAK, 0.5), (200, 0.1 * PEAK, 0.7))
    got = run_judge(rs, min_peak=0.9, max_drift=0.1, verdict=True)
    reasons = got["verdict"]["reasons"]
    assert len(reasons) == 3
    assert reasons[0].startswith("rule failed: peak macro F1") and reasons[1].startswith("rule failed: drift of macro F1")
    assert reasons[2] == got["guard"]["message"]


def test_passing_rules_and_a_clear_guard_pass():
    rs = rows((100, PEAK, 0.8), (200, PEAK, 0.82))
    got = run_judge(rs, min_peak=0.8, max_drift=0.05, verdict=True)
    assert got["verdict"]["result"] == "PASS" and got["verdict"]["reasons"] == [] and got["verdict"]["exit_code"] == 0
    assert not run_judge(rs)["rules"]  # no --min-peak / --max-drift: no rules


def test_exact_macro_f1_averages_the_denominator_tags_only():
    """macro F1 is over the tags metrics.summarize averages (`macro_f1_denominator`); others are ignored."""
    view = {"macro_f1_denominator": {"tags": ["a", "b"]},
            "per_tag": {"a": {"tp": 1, "fp": 0, "fn": 0}, "b": {"tp": 1, "fp": 1, "fn": 1}, "c": {"tp": 0, "fp": 9, "fn": 0}}}
    assert exact_macro_f1(view) == pytest.approx((1.0 + 0.5) / 2)
    assert exact_macro_f1({"macro_f1_denominator": {"tags": []}, "per_tag": {}}) == 0.0


# ---------------------------------------------------------------------------------------------
# the §10.4 schedule


def test_the_schedule_warms_up_linearly_then_decays_by_cosine_to_zero():
    s = Schedule(learning_rate=PEAK, warmup_steps=100, max_steps=1100)
    assert s.lr(0) == 0.0
    assert s.lr(25) == pytest.approx(PEAK / 4) and s.lr(99) == pytest.approx(0.99 * PEAK)
    assert s.lr(100) == PEAK  # cos(0): the warmup's end is the peak
    assert s.lr(350) == pytest.approx(PEAK * 0.5 * (1 + math.cos(math.pi / 4)))
    assert s.lr(600) == pytest.approx(PEAK / 2)
    assert s.lr(1100) == pytest.approx(0.0, abs=1e-18)
    assert s.lr(1600) == pytest.approx(0.0, abs=1e-18)  # "cosine to zero": past max_steps it stays there


def test_a_schedule_without_warmup_starts_at_the_peak():
    s = Schedule(learning_rate=PEAK, warmup_steps=0, max_steps=100)
    assert s.lr(0) == PEAK and s.lr(50) == pytest.approx(PEAK / 2)


def test_a_one_step_cosine_starts_at_the_peak():
    """§10.4 with max_steps − warmup = 1: the peak at the warmup's end, zero one step later."""
    s = Schedule(learning_rate=PEAK, warmup_steps=100, max_steps=101)
    assert s.lr(100) == PEAK and s.lr(101) == pytest.approx(0.0, abs=1e-18)


def test_a_schedule_whose_warmup_reaches_max_steps_gives_an_lr():
    """read_schedule takes it (complete, max_steps > 0): an LR per step, not a ZeroDivisionError."""
    s = Schedule(learning_rate=PEAK, warmup_steps=100, max_steps=100)
    assert s.lr(50) == pytest.approx(PEAK / 2)
    for step in (100, 150):
        assert 0.0 <= s.lr(step) <= PEAK


def write_state(d: Path, **train) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "training_state.json").write_text(json.dumps({"step": 1, "config": {"train": train}}))
    return d


def test_read_schedule_takes_a_complete_schedule_only(tmp_path):
    assert read_schedule(tmp_path / "none") is None  # no training_state.json
    good = write_state(tmp_path / "good", learning_rate=2e-3, warmup_steps=0, max_steps=300)
    assert read_schedule(good) == Schedule(2e-3, 0, 300)
    one = write_state(tmp_path / "one", learning_rate=2e-3, warmup_steps=0, max_steps=1)  # the smallest complete one
    assert read_schedule(one) == Schedule(2e-3, 0, 1)
    assert read_schedule(write_state(tmp_path / "partial", learning_rate=2e-3, max_steps=300)) is None
    for name, bad in (("lr0", {"learning_rate": 0, "warmup_steps": 10, "max_steps": 300}),
                      ("warm-1", {"learning_rate": 1e-3, "warmup_steps": -1, "max_steps": 300}),
                      ("max0", {"learning_rate": 1e-3, "warmup_steps": 0, "max_steps": 0})):
        assert read_schedule(write_state(tmp_path / name, **bad)) is None, name


# ---------------------------------------------------------------------------------------------
# train_log.csv


def write_log(d: Path, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "train_log.csv").write_text(text)
    return d / "train_log.csv"


def test_the_train_log_skips_empty_lrs_and_the_last_row_of_a_step_wins(tmp_path):
    log = write_log(tmp_path, "step,lr\n200,0.0005\n100,0.001\n150,\n200,0.0004\n250.0,0\n")
    got = read_train_log(log)
    assert got == {100: 0.001, 200: 0.0004, 250: 0.0}  # an LR of 0 is an LR
    assert list(got) == [100, 200, 250]


@pytest.mark.parametrize("lr", ["-0.001", "inf", "nan"])
def test_the_train_log_refuses_an_lr_that_is_not_finite_and_non_negative(tmp_path, lr):
    with pytest.raises(MwevalError, match="not a finite non-negative number"):
        read_train_log(write_log(tmp_path, f"step,lr\n100,{lr}\n"))


def test_an_unreadable_train_log_is_refused(tmp_path):
    log = tmp_path / "train_log.csv"
    log.write_bytes(b"step,lr\n100,0.001\xff\n")
    with pytest.raises(MwevalError, match="unreadable train_log.csv"):
        read_train_log(log)


def test_the_train_log_needs_step_and_lr_columns(tmp_path):
    with pytest.raises(MwevalError, match="no `step` and `lr` columns"):
        read_train_log(write_log(tmp_path, "step,learning_rate\n100,0.001\n"))


def test_interpolation_is_between_the_neighbouring_rows():
    log = {100: 1.0, 200: 0.8, 300: 0.2, 400: 0.0}
    lr, source = interpolate(log, 250)
    assert lr == pytest.approx(0.5) and "between steps 200 and 300" in source
    assert interpolate(log, 225)[0] == pytest.approx(0.65)
    assert interpolate(log, 300) == (0.2, "train_log.csv")
    assert interpolate(log, 50) is None and interpolate(log, 450) is None


def test_a_schedule_reproduces_a_log_within_its_8_printed_decimals():
    """Within 1e-8 absolute, or 1e-6 relative (upstream prints the LR with 8 decimals)."""
    s = Schedule(learning_rate=PEAK, warmup_steps=100, max_steps=1000)
    assert reproduces(s, {100: PEAK + 0.9e-8, 50: PEAK / 2})
    assert not reproduces(s, {100: PEAK + 1.5e-8, 50: PEAK / 2})
    assert not reproduces(s, {100: PEAK, 50: PEAK / 2 + 1.5e-8})  # every row, not only the first
    big = Schedule(learning_rate=10.0, warmup_steps=100, max_steps=1000)
    assert reproduces(big, {100: 10.0 + 0.9e-5})
    assert not reproduces(big, {100: 10.0 + 1.1e-5})


# ---------------------------------------------------------------------------------------------
# the LR per step and the peak LR


def make_steps(run: Path, schedules: dict[int, dict | None]) -> list[StepDir]:
    out = []
    for step, train in schedules.items():
        d = run / f"step-{step:06d}"
        d.mkdir(parents=True)
        if train is not None:
            write_state(d, **train)
        out.append(StepDir(step, d))
    return out


COS = {"learning_rate": PEAK, "warmup_steps": 100, "max_steps": 1000}
COS_S = Schedule(**COS)


def log_rows(run: Path, rows_: dict[int, float]) -> None:
    write_log(run, "step,lr\n" + "".join(f"{s},{lr:.8f}\n" for s, lr in rows_.items()))


def test_a_logged_step_takes_its_row_and_a_fitting_schedule_fills_the_rest(tmp_path):
    log_rows(tmp_path, {s: COS_S.lr(s) for s in (50, 125, 500, 900)})
    info = learning_rates(tmp_path, make_steps(tmp_path, {500: COS, 700: COS}))
    p500, p700 = info.points
    assert p500.lr == round(COS_S.lr(500), 8) and p500.source == "train_log.csv"
    assert p700.lr == COS_S.lr(700) and p700.source.startswith("schedule §10.4 (its training_state.json; step not logged")
    assert info.peak == PEAK and "reproduces every train_log.csv row" in info.peak_source
    j = info.to_json()
    assert j["peak"] == PEAK and j["train_log"] == str(tmp_path / "train_log.csv") and j["schedule"] == COS
    assert j["sources"] == sorted({p500.source, p700.source})


def test_a_log_the_schedule_does_not_reproduce_is_interpolated_and_its_max_is_the_peak(tmp_path):
    """Another recipe in the log: the log's rows win, unlogged steps between them are
    interpolated, steps outside the log take the schedule; the log starts at the warmup's end
    (step 100), so its largest row is the peak LR."""
    log_rows(tmp_path, {100: 8e-4, 200: 6e-4, 400: 2e-4})
    info = learning_rates(tmp_path, make_steps(tmp_path, {100: COS, 300: COS, 500: COS}))
    p100, p300, p500 = info.points
    assert p100.lr == 8e-4 and p100.source == "train_log.csv"
    assert p300.lr == pytest.approx(4e-4) and "interpolated between steps 200 and 400" in p300.source
    assert p500.lr == COS_S.lr(500) and "step outside train_log.csv" in p500.source
    assert info.peak == 8e-4 and info.peak_source == "max lr in train_log.csv"


def test_a_log_that_starts_after_the_warmup_does_not_lower_the_peak(tmp_path):
    log_rows(tmp_path, {150: 8e-4, 300: 6e-4})  # not the schedule's values, and after its warmup (100)
    info = learning_rates(tmp_path, make_steps(tmp_path, {150: COS, 300: COS}))
    assert info.peak == PEAK and "starts at step 150, after the warmup ends (100)" in info.peak_source
    log_rows(tmp_path / "high", {150: 1.2e-3, 300: 6e-4})  # a log above the configured peak: the log's max
    info = learning_rates(tmp_path / "high", make_steps(tmp_path / "high", {150: COS, 300: COS}))
    assert info.peak == 1.2e-3 and info.peak_source == "max lr in train_log.csv"


def test_a_step_without_a_schedule_takes_the_latest_steps(tmp_path):
    later = {"learning_rate": 2e-3, "warmup_steps": 10, "max_steps": 2000}
    info = learning_rates(tmp_path, make_steps(tmp_path, {100: COS, 200: None, 300: later}))
    p100, p200, p300 = info.points
    assert p100.lr == COS_S.lr(100) and p100.source == "schedule §10.4 (its training_state.json)"
    assert p200.lr == Schedule(**later).lr(200) and p200.source == "schedule §10.4 (another step's training_state.json)"
    assert info.peak == 2e-3 and info.peak_source == "schedule peak (training_state.json learning_rate)"
    assert info.log_path is None and info.to_json()["train_log"] is None


def test_without_log_or_schedule_the_lr_is_unknown(tmp_path):
    info = learning_rates(tmp_path, make_steps(tmp_path, {100: None, 200: None}))
    assert [(p.lr, p.source) for p in info.points] == [(None, "unknown"), (None, "unknown")]
    assert info.peak is None and info.peak_source.startswith("unknown")
    assert info.to_json()["schedule"] is None


def test_a_log_alone_gives_the_lrs_and_the_peak(tmp_path):
    log_rows(tmp_path, {100: 5e-4, 200: 9e-4, 300: 7e-4})
    info = learning_rates(tmp_path, make_steps(tmp_path, {200: None, 250: None, 400: None}))
    assert [p.lr for p in info.points] == [9e-4, pytest.approx(8e-4), None]
    assert info.peak == 9e-4 and info.peak_source == "max lr in train_log.csv"


# ---------------------------------------------------------------------------------------------
# fmt_lr


def test_fmt_lr_is_three_significant_digits_in_scientific_form():
    assert fmt_lr(0.000857) == "8.57e-4" and fmt_lr(1.5) == "1.50e0" and fmt_lr(12345.0) == "1.23e4"
    assert fmt_lr(2.5e-4, 1) == "2.5e-4" and fmt_lr(0) == "0"


def test_a_peak_tied_by_rounding_is_the_unrounded_peak_everywhere():
    """0.9000001 (step 100) and 0.9000004 (step 200) both read 0.9 in run.json: the peak is step 200
    in peaks and in --min-peak's text alike (the peak named step 100 while the rule named step 200)."""
    rs = rows((100, PEAK, 0.9), (200, PEAK, 0.9), (300, PEAK, 0.8))
    got = run_judge(rs, exact=[0.9000001, 0.9000004, 0.8], min_peak=0.9)
    assert got["peaks"]["macro_f1"] == {"step": 200, "f1": 0.9}
    assert "(step 200) ≥" in got["rules"]["min_peak"]["text"] and got["rules"]["min_peak"]["pass"]


def test_a_zero_peak_lr_leaves_the_guard_unable_to_check():
    """A train log whose LRs are all 0 gives a peak LR of 0: no LR is below 0.6 × 0, and "clear" passed
    the verdict of a run that never learned. The guard cannot check, and the verdict fails."""
    rs = rows((100, 0.0, 0.5), (200, 0.0, 0.5))
    got = run_judge(rs, peak=0.0, verdict=True)
    assert got["guard"]["status"] == "unknown"
    assert got["guard"]["message"].startswith("COSINE-TAIL GUARD CANNOT CHECK: the peak LR is 0 (test)")
    assert got["verdict"]["result"] == "FAIL" and got["verdict"]["exit_code"] == 1
    assert run_judge(rs, peak=0.0, lr_floor=0.0)["guard"]["status"] == "disabled"
