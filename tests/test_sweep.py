"""`mweval sweep`: LR per step (train_log.csv, interpolation, §10.4 schedule), drift window,
cosine-tail guard, verdict exit codes, and the written page/CSV/JSON."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import GOLDEN_ROOT, REPO, TINY, TINY_STEP, TOKENIZER_V010

from mailwoman_eval.cli import main
from mailwoman_eval.learning_rate import (
    Schedule,
    interpolate,
    learning_rates,
    read_schedule,
    read_train_log,
)
from mailwoman_eval.sweep import find_steps

TEST_SET = str(GOLDEN_ROOT / "v0.1.2" / "test")
DEMO = REPO / "demo" / "runs"


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def sweep_args(run_dir, out, *extra):
    args = ["sweep", run_dir, "--golden", TEST_SET, "--tokenizer", TOKENIZER_V010, "--out", out, "--jobs", "1", "-q", *extra]
    return [str(a) for a in args]


def make_run(root: Path, steps, log_rows=None, state=True) -> Path:
    """A training run whose step-* dirs all hold the tiny checkpoint (same weights: the run cache
    makes every step after the first a cache hit), with an optional synthetic train_log.csv."""
    root.mkdir(parents=True)
    for s in steps:
        d = root / f"step-{s:06d}"
        d.mkdir()
        for name in ("config.json", "pytorch_model.bin") + (("training_state.json",) if state else ()):
            shutil.copyfile(TINY_STEP / name, d / name)
    if log_rows is not None:
        lines = ["step,wall_seconds,train_loss,lr,val_loss,val_macro_f1"]
        lines += [f"{s},{s / 10:.1f},0.5,{lr:.8f},," for s, lr in log_rows]
        (root / "train_log.csv").write_text("\n".join(lines) + "\n")
    return root


COSINE = Schedule(learning_rate=1e-3, warmup_steps=100, max_steps=1000)


# ---------------------------------------------------------------------------------------------
# the acceptance command


def test_tiny_v040_verdict_flags_the_decayed_lr_window_and_exits_1(tmp_path, shared):
    out = tmp_path / "sweep"
    r = run_cli("sweep", TINY, "--golden", TEST_SET, "--tokenizer", TOKENIZER_V010, "--verdict", "--out", out)
    assert r.exit_code == 1, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert [s["step"] for s in doc["steps"]] == [150, 300]
    assert [s["lr_source"] for s in doc["steps"]] == ["train_log.csv", "train_log.csv"]
    assert doc["steps"][1]["lr"] == 0.0
    assert doc["guard"]["fired"] and doc["guard"]["steps_below_floor"] == [150, 300]
    assert doc["drift"]["window"] == 2 and doc["drift"]["steps"] == [150, 300]
    assert doc["verdict"]["result"] == "FAIL" and doc["verdict"]["exit_code"] == 1
    assert "COSINE-TAIL GUARD" in r.output and "decayed LR" in r.output
    for s in ("step-000150", "step-000300"):
        assert json.loads((out / "runs" / s / "run.json").read_text())["golden"]["rows"] == 456
    html = (out / "sweep.html").read_text()
    assert "COSINE-TAIL GUARD" in html and "<svg" in html and "<polyline" in html
    assert "http://" not in html and "https://" not in html and " src=" not in html
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:4] == ["step", "lr", "lr_source", "macro_f1"]
    assert list(rows[0])[4:] == doc["tags"]
    assert [int(x["step"]) for x in rows] == [150, 300]
    assert float(rows[1]["macro_f1"]) == pytest.approx(doc["steps"][1]["macro_f1"], abs=1e-6)
    run = json.loads((out / "runs" / "step-000300" / "run.json").read_text())
    assert doc["steps"][1]["macro_f1"] == run["metrics"]["views"]["excluding_adversarial"]["macro_f1"]


def test_without_verdict_the_guard_is_reported_but_exit_is_0(tmp_path, shared):
    out = tmp_path / "sweep"
    r = run_cli(*sweep_args(TINY, out))
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["guard"]["fired"] and doc["verdict"]["exit_code"] == 0 and not doc["verdict"]["requested"]
    assert "COSINE-TAIL GUARD" in r.output


# ---------------------------------------------------------------------------------------------
# synthetic runs: cosine tail vs constant LR


def test_cosine_window_in_the_tail_triggers_the_guard(tmp_path, shared):
    steps = [100, 200, 300, 400, 500, 600, 800, 1000]
    run = make_run(tmp_path / "cosine", steps, [(s, COSINE.lr(s)) for s in range(0, 1001, 50)])
    out = tmp_path / "out"
    r = run_cli(*sweep_args(run, out, "--verdict", "--max-drift", "0.01"))
    assert r.exit_code == 1, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["drift"]["steps"] == [400, 500, 600, 800, 1000]
    assert doc["drift"]["macro_f1"] == 0.0  # identical weights: perfectly "stable"...
    assert doc["rules"]["max_drift"]["pass"]
    assert doc["guard"]["fired"]  # ...but measured under a decayed LR
    assert doc["guard"]["steps_below_floor"] == [500, 600, 800, 1000]  # 400 sits at 75% of peak, 500 at 59%
    assert doc["lr"]["peak"] == pytest.approx(1e-3)
    assert doc["timings"]["cache_hits"] == len(steps) - 1


def test_constant_lr_log_does_not_trigger_the_guard(tmp_path, shared):
    steps = [200, 400, 600, 800, 1000]
    run = make_run(tmp_path / "const", steps, [(s, 1e-3) for s in range(0, 1001, 100)])
    out = tmp_path / "out"
    r = run_cli(*sweep_args(run, out, "--verdict", "--max-drift", "0.01", "--min-peak", "0.5"))
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["guard"]["status"] == "clear" and not doc["guard"]["fired"]
    assert doc["verdict"]["result"] == "PASS"
    assert all(s["lr"] == 1e-3 and s["lr_fraction_of_peak"] == 1.0 for s in doc["steps"])
    # a failing rule still fails the verdict
    r = run_cli(*sweep_args(run, out, "--verdict", "--min-peak", "0.99"))
    assert r.exit_code == 1, r.output
    rule = json.loads((out / "sweep.json").read_text())["rules"]["min_peak"]
    assert not rule["pass"] and "is not ≥ 0.9900" in rule["text"]
    assert f"FAIL: {rule['text']}" in r.output and "≥ 0.9900" not in r.output.replace("is not ≥ 0.9900", "")
    # the page's verdict box says the failed rule once (it listed it again as "rule failed: …")
    from html import escape

    assert (out / "sweep.html").read_text(encoding="utf-8").count(escape(rule["text"], quote=False)) == 1


def test_window_only_looks_at_the_last_steps(tmp_path, shared):
    """Warmup steps below the floor are outside a --window 2 that sits at peak LR."""
    log = [(100, 1e-4), (200, 2e-4), (300, 1e-3), (400, 1e-3)]
    run = make_run(tmp_path / "run", [100, 200, 300, 400], log, state=False)  # the log is the whole story
    out = tmp_path / "out"
    assert run_cli(*sweep_args(run, out, "--verdict", "--window", "2")).exit_code == 0
    assert run_cli(*sweep_args(run, out, "--verdict", "--window", "3")).exit_code == 1


def test_lr_of_an_unlogged_step_is_interpolated_and_said_so(tmp_path, shared):
    run = make_run(tmp_path / "run", [250, 300], [(200, 1e-3), (300, 5e-4)])
    info = learning_rates(run, find_steps(run))
    p250, p300 = info.points
    assert p250.lr == pytest.approx(7.5e-4) and "interpolated between steps 200 and 300" in p250.source
    assert p300.lr == 5e-4 and p300.source == "train_log.csv"
    assert interpolate({200: 1e-3}, 100) is None  # outside the log: no extrapolation
    out = tmp_path / "out"
    assert run_cli(*sweep_args(run, out, "--lr-floor", "0.4")).exit_code == 0
    doc = json.loads((out / "sweep.json").read_text())
    assert any("interpolated" in w for w in doc["warnings"])
    with open(out / "sweep.csv", newline="") as f:
        assert "interpolated" in list(csv.DictReader(f))[0]["lr_source"]


def test_a_log_that_starts_in_the_cosine_tail_does_not_lower_the_peak(tmp_path, shared):
    """Only upstream's rows 150 and 175 logged (a resumed run): their max is not the peak. The
    schedule (lr 2e-3, warmup 30) puts them at 59% and 44% of it, so the guard fires."""
    tiny_log = read_train_log(TINY / "train_log.csv")
    run = make_run(tmp_path / "run", [150, 175], [(150, tiny_log[150]), (175, tiny_log[175])])
    out = tmp_path / "out"
    r = run_cli(*sweep_args(run, out, "--verdict"))
    assert r.exit_code == 1, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["lr"]["peak"] == 0.002 and "reproduces every train_log.csv row" in doc["lr"]["peak_source"]
    assert doc["guard"]["fired"] and doc["guard"]["steps_below_floor"] == [150, 175]
    assert [s["lr_source"] for s in doc["steps"]] == ["train_log.csv", "train_log.csv"]
    # a log from another recipe (10% lower): the schedule does not reproduce it, and the log, which
    # starts after the warmup, does not lower the configured peak either
    low = make_run(tmp_path / "low", [150, 175], [(150, tiny_log[150] * 0.9), (175, tiny_log[175] * 0.9)])
    info = learning_rates(low, find_steps(low))
    assert info.peak == 0.002 and "starts at step 150" in info.peak_source


def test_the_peak_is_the_schedules_when_the_log_misses_the_warmups_last_step(tmp_path, shared):
    """Upstream logs every 25 steps; tiny-v040's warmup ends at step 30, so the log's largest row
    (0.00197304 at step 50) is below the peak 0.002. Steps 148 and 149 run at 59.8% and 59.3% of
    0.002 (§10.4), and the guard has to fire: against the log's max (60.6%, 60.1%) it cleared."""
    tiny_log = read_train_log(TINY / "train_log.csv")
    run = make_run(tmp_path / "run", [148, 149], list(tiny_log.items()))
    info = learning_rates(run, find_steps(run))
    assert info.peak == 0.002 and max(tiny_log.values()) < 0.002
    sched = read_schedule(TINY_STEP)
    for p in info.points:  # unlogged steps take the schedule that reproduces the log, not interpolation
        assert p.lr == sched.lr(p.step) and "reproduces every train_log.csv row" in p.source
    out = tmp_path / "out"
    r = run_cli(*sweep_args(run, out, "--verdict"))
    assert r.exit_code == 1, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["guard"]["fired"] and doc["guard"]["steps_below_floor"] == [148, 149]
    assert not any("interpolated" in w for w in doc["warnings"])


def test_one_step_measures_no_drift(tmp_path, shared):
    """max - min over one step is 0; a --max-drift verdict on it passed, the postmortem's false pass."""
    run = make_run(tmp_path / "run", [300])
    out = tmp_path / "out"
    r = run_cli(*sweep_args(run, out, "--verdict", "--lr-floor", "0", "--max-drift", "0.005"))
    assert r.exit_code == 1, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert not doc["rules"]["max_drift"]["pass"] and "at least 2 evaluated steps" in doc["verdict"]["reasons"][0]
    assert any("measures no stability" in w for w in doc["warnings"])
    r = run_cli(*sweep_args(run, out, "--verdict", "--lr-floor", "0", "--min-peak", "0.1"))
    assert r.exit_code == 0, r.output  # the other rules still judge one step


def test_a_rule_prints_enough_decimals_to_show_why_it_failed():
    from mailwoman_eval.console import value_and_threshold as _pair

    assert _pair(0.006934, 0.0069) == ("0.006934", "0.006900")
    assert _pair(0.0123, 0.01) == ("0.0123", "0.0100")
    assert _pair(0.01, 0.01) == ("0.0100", "0.0100")
    assert _pair(0.829335, 0.8293351) == ("0.82933500", "0.82933510")  # 6 decimals still printed them equal


def test_a_percent_of_peak_below_the_floor_never_prints_as_the_floor():
    """The guard said "below 60% of peak (…; lowest … = 60%)" for 59.93%."""
    from mailwoman_eval.sweep import pct_pair

    assert pct_pair(0.5993, 0.6) == ("59.9%", "60.0%")
    assert pct_pair(0.41, 0.6) == ("41%", "60%")
    assert pct_pair(0.49999999, 0.5) == ("49.999999%", "50.000000%")


def test_a_window_of_one_step_is_named_as_the_window_not_the_run(tmp_path, shared):
    run = make_run(tmp_path / "run", [150, 300])
    out = tmp_path / "out"
    r = run_cli(*sweep_args(run, out, "--verdict", "--lr-floor", "0", "--max-drift", "0.5", "--window", "1"))
    assert r.exit_code == 1, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["rules"]["max_drift"]["text"].endswith("needs at least 2 evaluated steps; the window has 1 (--window 1)")


def test_train_log_errors_name_the_file_line(tmp_path, shared):
    run = make_run(tmp_path / "run", [100])
    log = run / "train_log.csv"
    cases = {
        "step,lr\n\n\n\n100,0.001\n200,abc\n": ("train_log.csv:6", "not a number"),  # blank lines still count
        "step,lr\n1e400,0.001\n": ("train_log.csv:2", "not a number"),  # int(inf) overflows
        "step,lr\n100," + "9" * 140_000 + "\n": ("train_log.csv:2", "malformed train_log.csv"),  # csv field limit
    }
    for text, (where, what) in cases.items():
        log.write_text(text)
        r = CliRunner().invoke(main, sweep_args(run, tmp_path / "o"))
        assert r.exit_code == 2, (text[:40], r.output)
        assert where in r.output and what in r.output and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_a_malformed_training_state_is_refused_not_skipped(tmp_path, shared):
    """A truncated training_state.json used to be ignored: that step then borrowed another
    step's schedule (or none), and the guard said what it said on the wrong LR."""
    run = make_run(tmp_path / "run", [100, 200])
    state = run / "step-000200" / "training_state.json"
    state.write_bytes(state.read_bytes()[:300])
    r = CliRunner().invoke(main, sweep_args(run, tmp_path / "o"))
    assert r.exit_code == 2 and "malformed training_state.json" in r.output and "step-000200" in r.output
    state.write_bytes(b"\xff\xfe not utf-8")
    r = CliRunner().invoke(main, sweep_args(run, tmp_path / "o"))
    assert r.exit_code == 2 and "unreadable training_state.json" in r.output
    state.write_text(json.dumps({"config": {}}))  # valid JSON without a schedule: no schedule, as before
    assert read_schedule(state.parent) is None


# ---------------------------------------------------------------------------------------------
# the §10.4 schedule fallback


def test_schedule_formula_reproduces_the_upstream_train_log(shared):
    """upstream-formats.md §10.4: tiny-v040/train_log.csv fits the formula exactly (the log prints
    8 decimals, so the formula is rounded to the log's precision before comparing)."""
    sched = read_schedule(TINY_STEP)
    assert sched == Schedule(learning_rate=0.002, warmup_steps=30, max_steps=300)
    log = read_train_log(TINY / "train_log.csv")
    assert len(log) == 12
    for step, lr in log.items():
        assert round(sched.lr(step), 8) == pytest.approx(lr, rel=1e-6, abs=1e-12), step
        assert sched.lr(step) == pytest.approx(lr, abs=5e-9)


def test_without_train_log_the_schedule_gives_the_lr(tmp_path, shared):
    run = make_run(tmp_path / "run", [150, 300])  # training_state.json of tiny: lr 2e-3, warmup 30, max 300
    out = tmp_path / "out"
    r = run_cli(*sweep_args(run, out, "--verdict"))
    assert r.exit_code == 1, r.output
    doc = json.loads((out / "sweep.json").read_text())
    log = read_train_log(TINY / "train_log.csv")
    for s in doc["steps"]:
        assert s["lr_source"].startswith("schedule")
        assert round(s["lr"], 8) == pytest.approx(log[s["step"]], rel=1e-6, abs=1e-12)
    assert doc["lr"]["peak"] == 0.002 and "schedule" in doc["lr"]["peak_source"]
    assert doc["guard"]["fired"]


def test_unknown_lr_cannot_pass_a_verdict_unless_the_guard_is_disabled(tmp_path, shared):
    run = make_run(tmp_path / "run", [100, 200], state=False)
    out = tmp_path / "out"
    r = run_cli(*sweep_args(run, out, "--verdict"))
    assert r.exit_code == 1, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["guard"]["status"] == "unknown" and doc["steps"][0]["lr_source"] == "unknown"
    r = run_cli(*sweep_args(run, out, "--verdict", "--lr-floor", "0"))
    assert r.exit_code == 0, r.output
    assert json.loads((out / "sweep.json").read_text())["guard"]["status"] == "disabled"


# ---------------------------------------------------------------------------------------------
# bad input, page safety, process pool


def test_bad_inputs_exit_2(tmp_path, shared):
    empty = tmp_path / "empty"
    (empty / "step-000100").mkdir(parents=True)  # no weights: not a checkpoint
    r = CliRunner().invoke(main, sweep_args(empty, tmp_path / "o1"))
    assert r.exit_code == 2 and "no step-* checkpoint" in r.output
    run = make_run(tmp_path / "run", [100], [(100, 1e-3)])
    (run / "train_log.csv").write_text("step,lr\n100,abc\n")
    r = CliRunner().invoke(main, sweep_args(run, tmp_path / "o2"))
    assert r.exit_code == 2 and "train_log.csv" in r.output
    r = CliRunner().invoke(main, sweep_args(tmp_path / "missing", tmp_path / "o3"))
    assert r.exit_code == 2
    broken = make_run(tmp_path / "broken", [100, 200], [(100, 1e-3), (200, 1e-3)])
    (broken / "step-000200" / "pytorch_model.bin").write_bytes(b"not a torch file")
    r = CliRunner().invoke(main, sweep_args(broken, tmp_path / "o4"))
    assert r.exit_code == 2 and "step-000200" in r.output
    assert not (tmp_path / "o4").exists()  # no half-written sweep left behind
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("not mine")
    run2 = make_run(tmp_path / "run2", [100], [(100, 1e-3)])
    r = CliRunner().invoke(main, sweep_args(run2, other))
    assert r.exit_code == 2 and "--force" in r.output


def test_a_view_with_nothing_to_score_is_refused(tmp_path, shared):
    """No adversarial rows: macro F1 0.0 at every step, a drift of 0 that passed --max-drift."""
    gold = tmp_path / "g"
    gold.mkdir()
    shutil.copyfile(Path(TEST_SET) / "us.jsonl", gold / "us.jsonl")
    run = make_run(tmp_path / "run", [100, 200])
    args = ["sweep", run, "--golden", gold, "--tokenizer", TOKENIZER_V010, "--out", tmp_path / "o", "--jobs", "1", "-q"]
    r = run_cli(*args, "--view", "adversarial_only", "--verdict", "--lr-floor", "0", "--max-drift", "0.01")
    assert r.exit_code == 2 and "adversarial_only holds no gold value" in r.output, r.output
    assert not (tmp_path / "o").exists()
    assert run_cli(*args, "--lr-floor", "0").exit_code == 0


def test_a_sweep_replaces_the_previous_one_whole_and_a_failed_one_changes_nothing(tmp_path, shared):
    out = tmp_path / "reports" / "X"
    a = make_run(tmp_path / "a", [100, 200, 300], [(s, 1e-3) for s in (100, 200, 300)])
    b = make_run(tmp_path / "b", [100], [(100, 1e-3)])
    assert run_cli(*sweep_args(a, out)).exit_code == 0
    assert run_cli(*sweep_args(b, out)).exit_code == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["step-000100"]  # not a's 200 and 300
    assert json.loads((out / "sweep.json").read_text())["run"]["name"] == "b"
    (tmp_path / "plain").mkdir()
    assert out.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777  # not mkdtemp's 0700
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    c = make_run(tmp_path / "c", [100, 200], [(100, 1e-3), (200, 1e-3)])
    (c / "step-000200" / "pytorch_model.bin").write_bytes(b"not a torch file")
    r = CliRunner().invoke(main, sweep_args(c, out, "--profile", "upstream-eval"))
    assert r.exit_code == 2 and "step-000200" in r.output
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # b's sweep, untouched: not c's step 100 under b's sweep.json
    assert sorted(p.name for p in out.parent.iterdir()) == ["X"]  # no staging directory left
    # a directory of other files, accepted with --force, keeps them
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert run_cli(*sweep_args(b, other, "--force")).exit_code == 0
    assert (other / "notes.txt").read_text() == "mine" and (other / "sweep.json").is_file()


def test_steps_with_different_tokenizers_are_refused(tmp_path, shared):
    """The run's tokenizer beside the run, another one inside one step: that step would be scored
    on other pieces (macro F1 0.78 -> 0.03 here) under a sweep.json naming one tokenizer."""
    run = make_run(tmp_path / "run", [100, 200], [(100, 1e-3), (200, 1e-3)])
    shutil.copyfile(TOKENIZER_V010, run / "tokenizer.model")
    shutil.copyfile(DEMO / "baseline" / "tokenizer.model", run / "step-000200" / "tokenizer.model")
    args = ["sweep", str(run), "--golden", TEST_SET, "--out", str(tmp_path / "o"), "--jobs", "1", "-q"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "different tokenizers" in r.output and "step-000200" in r.output
    assert not (tmp_path / "o").exists()
    shutil.copyfile(TOKENIZER_V010, run / "step-000200" / "tokenizer.model")  # same bytes, other path: fine
    assert CliRunner().invoke(main, args).exit_code == 0


def test_a_step_without_weights_is_named_in_the_warnings(tmp_path, shared):
    run = make_run(tmp_path / "run", [100, 200, 300], [(s, 1e-3) for s in (100, 200, 300)])
    (run / "step-000300" / "pytorch_model.bin").unlink()
    out = tmp_path / "out"
    r = run_cli(*sweep_args(run, out))
    assert r.exit_code == 0
    doc = json.loads((out / "sweep.json").read_text())
    assert [s["step"] for s in doc["steps"]] == [100, 200]
    assert "step-000300 skipped: no pytorch_model.bin" in doc["warnings"]


def test_a_run_name_found_under_two_search_roots_is_ambiguous(tmp_path, shared, monkeypatch):
    from mailwoman_eval.sweep import resolve_run_dir

    for root in ("a", "b"):
        make_run(tmp_path / root / "rr", [100])
    monkeypatch.setenv("MWEVAL_CKPT_PATH", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    r = CliRunner().invoke(main, sweep_args("rr", tmp_path / "o"))
    assert r.exit_code == 2 and "ambiguous" in r.output and "give a path" in r.output
    monkeypatch.setenv("MWEVAL_CKPT_PATH", str(tmp_path / "a"))
    assert resolve_run_dir("rr") == (tmp_path / "a" / "rr").resolve()


def test_run_name_is_escaped_in_the_page(tmp_path, shared):
    run = make_run(tmp_path / "r<b>&x", [100], [(100, 1e-3)])
    out = tmp_path / "out"
    assert run_cli(*sweep_args(run, out)).exit_code == 0
    html = (out / "sweep.html").read_text()
    assert "r&lt;b&gt;&amp;x" in html and "r<b>&x" not in html


def test_rerun_from_the_cache_writes_the_same_files_apart_from_timings(tmp_path, shared):
    """The second sweep is served from the run cache: only `timings` may say so."""
    run = make_run(tmp_path / "run", [100, 200], [(100, 1e-3), (200, 1e-3)])
    assert run_cli(*sweep_args(run, tmp_path / "a")).exit_code == 0
    assert run_cli(*sweep_args(run, tmp_path / "b")).exit_code == 0
    a, b = (json.loads((tmp_path / d / "sweep.json").read_text()) for d in "ab")
    assert b["timings"]["cache"] == {"100": "hit", "200": "hit"} and a["timings"]["cache"]["100"] == "miss"
    assert {k: v for k, v in a.items() if k != "timings"} == {k: v for k, v in b.items() if k != "timings"}
    for name in ("sweep.html", "sweep.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_process_pool_gives_the_same_numbers(tmp_path, shared):
    run = make_run(tmp_path / "run", [100, 200], [(100, 1e-3), (200, 1e-3)])
    a = run_cli(*sweep_args(run, tmp_path / "a", "--no-cache"))
    b = run_cli("sweep", run, "--golden", TEST_SET, "--tokenizer", TOKENIZER_V010, "--out", tmp_path / "b", "--jobs", "2",
                "--no-cache", "-q")
    assert a.exit_code == b.exit_code == 0
    assert (tmp_path / "a" / "sweep.csv").read_text() == (tmp_path / "b" / "sweep.csv").read_text()


# ---------------------------------------------------------------------------------------------
# the bundled demo runs (skipped until they are trained)


def _demo_ready() -> bool:
    return all((DEMO / r / "onnx" / "model.onnx").is_file() and any((DEMO / r).glob("step-*/pytorch_model.bin"))
               for r in ("baseline", "regressed"))


@pytest.mark.skipif(not _demo_ready(), reason="bundled demo runs not trained yet (demo/runs/{baseline,regressed})")
@pytest.mark.parametrize("run", ["baseline", "regressed"])
def test_sweep_over_the_demo_runs_writes_the_page(tmp_path, run):
    out = tmp_path / run
    r = run_cli("sweep", DEMO / run, "--golden", "demo-v1", "--out", out, "-q")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "sweep.json").read_text())
    assert len(doc["steps"]) >= 1 and doc["steps"][0]["lr_source"] != "unknown"
    assert "<svg" in (out / "sweep.html").read_text()


def test_steps_with_different_label_lists_are_refused_before_evaluating(tmp_path, shared):
    """A step whose config.json names other labels: macro F1 over other tags is no point on the
    curve the guard and the verdict judge."""
    run = make_run(tmp_path / "run", [100, 200], [(100, 1e-3), (200, 1e-3)])
    cfg_path = run / "step-000200" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["id2label"] = {k: v.replace("cedex", "po_box") for k, v in cfg["id2label"].items()}
    cfg_path.write_text(json.dumps(cfg))
    r = CliRunner().invoke(main, sweep_args(run, tmp_path / "o"))
    assert r.exit_code == 2, r.output
    assert "different label lists (step-000200 against step-000100: adds B-po_box, I-po_box; drops B-cedex, I-cedex)" in r.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "o").parent.joinpath("runs").exists()


def test_steps_that_decode_differently_are_refused(tmp_path, shared):
    """A step trained without the CRF decodes with the structural mask only: another
    decoder, so its macro F1 is not a point on the same curve."""
    import torch

    run = make_run(tmp_path / "run", [100, 200], [(100, 1e-3), (200, 1e-3)])
    state = torch.load(TINY_STEP / "pytorch_model.bin", map_location="cpu", weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("crf.")}, run / "step-000200" / "pytorch_model.bin")
    cfg_path = run / "step-000200" / "config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "use_crf": False}))
    r = CliRunner().invoke(main, sweep_args(run, tmp_path / "o"))
    assert r.exit_code == 2, r.output
    assert "the steps of this run decode differently (steps 100: learned; steps 200: structural)" in r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_sweep_says_once_that_the_run_cache_cannot_be_written(tmp_path, shared, monkeypatch, jobs):
    """eval says it; a sweep's steps (in worker processes with --jobs 2) said nothing, and every
    later sweep of the run evaluated every step again without a word why. Said with -q too."""
    (tmp_path / "cachefile").write_text("")
    monkeypatch.setenv("MWEVAL_CACHE", str(tmp_path / "cachefile"))
    run = make_run(tmp_path / "run", [100, 200], [(100, 1e-3), (200, 1e-3)])
    r = CliRunner().invoke(main, [*sweep_args(run, tmp_path / "o")[:-3], "--jobs", jobs, "-q"])
    assert r.exit_code == 0, r.output
    said = [line for line in r.stderr.splitlines() if "cannot be written" in line]
    assert said == [f"warning: the run cache at {tmp_path / 'cachefile'} cannot be written (Not a directory); "
                    "runs are not cached (set MWEVAL_CACHE, or pass --no-cache)"], r.stderr
    assert json.loads((tmp_path / "o" / "sweep.json").read_text())["timings"]["cache"] == {"100": "miss", "200": "miss"}


def test_a_sweep_with_worker_processes_runs_from_a_thread_too(tmp_path, shared):
    """Starting the workers with Ctrl-C ignored swaps a signal handler, which only the main thread
    may do: from another thread the swap is skipped, not a ValueError."""
    import threading

    from mailwoman_eval.sweep import SweepOptions, sweep

    run = make_run(tmp_path / "run", [100, 200], [(100, 1e-3), (200, 1e-3)])
    opts = SweepOptions(tokenizer=str(TOKENIZER_V010), jobs=2, use_cache=False)
    got: dict = {}

    def go() -> None:
        try:
            got["doc"] = sweep(str(run), TEST_SET, opts, tmp_path / "o")[0]
        except BaseException as e:  # noqa: BLE001 - asserted below
            got["error"] = e

    t = threading.Thread(target=go)
    t.start()
    t.join()
    assert "error" not in got, got.get("error")
    assert [s["step"] for s in got["doc"]["steps"]] == [100, 200]


def test_the_rules_judge_the_unrounded_macro_f1():
    """run.json rounds macro F1 to 6 places: a drift of 0.0100004 read as 0.01 passed --max-drift
    0.01, and a peak of 0.8999996 read as 0.9 passed --min-peak 0.9."""
    from mailwoman_eval.learning_rate import LRInfo, StepLR
    from mailwoman_eval.sweep import SweepOptions, judge

    rows = [{"step": s, "lr": 1e-3, "macro_f1": round(m, 6), "f1": {}} for s, m in ((100, 0.89), (200, 0.8999996))]
    lr = LRInfo([StepLR(r["step"], 1e-3, "train_log.csv") for r in rows], 1e-3, "train_log.csv", None, {}, None)
    exact = [0.8899992, 0.8999996]  # rounded: 0.889999 and 0.9, a drift of 0.010001; exact 0.0100004
    opts = SweepOptions(window=2, max_drift=0.0100003, min_peak=0.9, verdict=True)
    rules = judge(rows, lr, opts, [], exact)["rules"]
    assert not rules["min_peak"]["pass"] and "0.89999960 (step 200) is not ≥ 0.90000000" in rules["min_peak"]["text"]
    assert not rules["max_drift"]["pass"] and "0.01000040 is not ≤ 0.01000030" in rules["max_drift"]["text"]
    assert judge(rows, lr, SweepOptions(window=2, max_drift=0.0100005, min_peak=0.8999995), [], exact)["verdict"]["result"] == "PASS"


def test_the_unrounded_macro_f1_is_what_run_json_rounds(tiny_test_run):
    from mailwoman_eval.sweep import exact_macro_f1

    for view in tiny_test_run.meta["metrics"]["views"].values():
        assert round(exact_macro_f1(view), 6) == view["macro_f1"]


def test_a_perfect_macro_f1_meets_min_peak_one():
    """eval.py's 1e-9 guards put a perfect tag's F1 at 0.9999999995: --min-peak 1 failed a perfect run."""
    from mailwoman_eval.sweep import exact_macro_f1

    perfect = {"macro_f1_denominator": {"tags": ["a", "b"]}, "per_tag": {"a": {"tp": 7, "fp": 0, "fn": 0}, "b": {"tp": 1, "fp": 0, "fn": 0}}}
    assert exact_macro_f1(perfect) == 1.0
    one_off = {"macro_f1_denominator": {"tags": ["a", "b"]}, "per_tag": {"a": {"tp": 3, "fp": 1, "fn": 0}, "b": {"tp": 0, "fp": 0, "fn": 2}}}
    assert exact_macro_f1(one_off) == (6 / 7 + 0.0) / 2
