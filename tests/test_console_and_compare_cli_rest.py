"""The terminal's number formatting (console.py), the collector pause (gcpause.py), and the parts of
cli_compare.py the compare/gate tests leave out: `mweval export-scores` (the scores JSON it
writes, what it refuses to overwrite), the warning for two sides with identical predictions, how
a side is told apart as a saved run or a checkpoint (and --golden refused for two saved runs
scored on another set), gate's --out default, required options, --resamples bounds and the help
text's defaults.

console.py: a table's columns are padded to the widest cell, the first left-aligned and the rest
right-aligned, floats to 4 decimals and None as an empty cell; `signed` never prints "-0.00";
`value_and_threshold` prints the fewest decimals that tell a value from its threshold.

Runs are hand-built (tests/runfactory.py) and saved as real run directories; the CLI runs in
process (tests/clicases.py)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from clicases import invoke, one_line_error
from runfactory import make_run, save_run, two_runs

from mailwoman_eval.checkpoints.resolve import BUNDLED_RUNS
from mailwoman_eval.cli_compare import checkpoint_side, saved_side_header, warn_if_same
from mailwoman_eval.console import signed, table, value_and_threshold
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.gate import console_text
from mailwoman_eval.gcpause import gc_paused
from mailwoman_eval.run import SCORES_SCHEMA, load_run

# --- console.py -------------------------------------------------------------------------------


def test_a_table_pads_every_column_to_its_widest_cell_floats_to_4_decimals_and_none_empty():
    out = table(["tag", "f1", "n"], [["postcode", 0.98765, 12], ["x", None, 3]])
    assert out == ("tag           f1   n\n"
                   "--------  ------  --\n"
                   "postcode  0.9877  12\n"
                   "x                  3")  # the empty cell's padding is kept, the line's end stripped
    assert table(["a", "b"], [["xx", "y"]], align="rl") == " a  b\n--  -\nxx  y"
    assert table(["a"], []) == "a\n-"


@pytest.mark.parametrize(("x", "digits", "text"), [
    (-0.004, 2, "+0.00"), (0.004, 2, "+0.00"), (-0.0, 1, "+0.0"), (-1.25, 1, "-1.2"), (3.14159, 3, "+3.142"),
    (np.float64(2.675), 2, "+2.67"),  # as Python rounds the float; numpy's own round gives 2.68
    (np.float64(0.025), 2, "+0.03"),  # numpy's gives 0.02
    (7, 0, "+7"),
])
def test_signed_keeps_the_sign_rounds_as_python_does_and_never_prints_minus_zero(x, digits, text):
    assert signed(x, digits) == text


def test_value_and_threshold_use_the_fewest_decimals_that_tell_them_apart():
    assert value_and_threshold(0.006934, 0.0069) == ("0.006934", "0.006900")  # "0.0069 > 0.0069" read as a bug
    assert value_and_threshold(0.1234, 0.5) == ("0.1234", "0.5000")  # 4 suffice
    assert value_and_threshold(0.829335, 0.8293351) == ("0.82933500", "0.82933510")
    assert value_and_threshold(0.829335, 0.8293351, digits=(4, 5, 6, 7)) == ("0.8293350", "0.8293351")
    assert value_and_threshold(0.5, 0.5) == ("0.5000", "0.5000")  # equal: the first precision
    assert value_and_threshold(0.5, 0.5 + 3e-10) == ("0.5000000000", "0.5000000003")  # 8 do not, 10 do
    # a difference below the finest precision: the finest, printed equal
    assert value_and_threshold(1.0, 1.0 + 1e-15) == ("1.000000000000", "1.000000000000")
    assert value_and_threshold(0.0123, 0.05, scale=100, unit="%") == ("1.2300%", "5.0000%")
    assert value_and_threshold(0.01234, 0.0123, scale=100, unit=" pp") == ("1.2340 pp", "1.2300 pp")


# --- gcpause.py -------------------------------------------------------------------------------


def test_gc_paused_as_a_decorator_and_on_an_exception_restores_the_callers_state():
    seen = []

    @gc_paused()
    def stage():
        seen.append(gc.isenabled())
        raise KeyError("stage failed")

    assert gc.isenabled()
    with pytest.raises(KeyError):
        stage()
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(KeyError):
            stage()
        assert seen == [False, False] and not gc.isenabled()  # a caller's own choice is kept on an exception too
    finally:
        gc.enable()


# --- export-scores ----------------------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path):
    rows = [("Zürich 8001", {"locality": "Zürich", "postcode": "8001"}, {"locality": "Zürich", "postcode": "8001"}),
            ("Bern 3011", {"locality": "Bern", "postcode": "3011"}, {"postcode": "3011"})]
    return save_run(make_run(rows, ["locality", "postcode"], name="zh"), tmp_path / "run")


def export(run, out, *extra):
    return invoke(["export-scores", "--run", str(run), "--out", str(out), *extra])


def test_export_scores_writes_the_runs_scores_as_one_compact_json_line(run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = export(run_dir, "s.json")
    out = tmp_path / "s.json"
    text = out.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert r.exit_code == 0 and r.stderr == ""
    assert r.stdout == f"{out}: 2 entries, {out.stat().st_size / 1024:.0f} KiB\n"  # the absolute path
    assert doc == load_run(run_dir).to_scores() and doc["schema"] == SCORES_SCHEMA
    assert text == json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"
    assert text.startswith('{"schema":"mweval.scores/1","mweval_version":')  # the document's own key order
    assert '"locality":"Zürich"' in text  # not \u00fc
    assert [e["pred"] for e in doc["entries"]] == [{"locality": "Zürich", "postcode": "8001"}, {"postcode": "3011"}]


def test_export_scores_replaces_an_earlier_export_and_refuses_any_other_file_without_force(run_dir, tmp_path):
    out = tmp_path / "s.json"
    out.write_text(json.dumps({"schema": SCORES_SCHEMA, "entries": []}), encoding="utf-8")
    assert export(run_dir, out).exit_code == 0
    assert len(json.loads(out.read_text(encoding="utf-8"))["entries"]) == 2
    others = {
        "notes.txt": "keep me\n",
        "run.json": json.dumps({"schema": "mweval.run/1"}),  # another schema
        "list.json": "[1, 2]",  # JSON, but no object
        "deep.json": "[" * 100_000 + "]" * 100_000,  # too deep to parse
    }
    for name, content in others.items():
        precious = tmp_path / name
        precious.write_text(content, encoding="utf-8")
        one_line_error(export(run_dir, precious), f"{precious}: --out exists and is not a scores JSON; pass --force to overwrite it")
        assert precious.read_text(encoding="utf-8") == content
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"schema": "caf\xe9"}')  # not UTF-8
    one_line_error(export(run_dir, latin1), "not a scores JSON")
    assert latin1.read_bytes() == b'{"schema": "caf\xe9"}'
    precious = tmp_path / "notes.txt"
    r = export(run_dir, precious, "--force")
    assert r.exit_code == 0 and json.loads(precious.read_text(encoding="utf-8"))["schema"] == SCORES_SCHEMA


def test_export_scores_refuses_a_directory_and_the_runs_own_files(run_dir, tmp_path):
    hint = "--out is a directory; give the JSON file to write (e.g. ci/baseline-scores.json)"
    (tmp_path / "ci").mkdir()
    one_line_error(export(run_dir, tmp_path / "ci"), f"{tmp_path / 'ci'}: {hint}")
    slash = f"{tmp_path / 'new'}/"
    one_line_error(export(run_dir, slash), f"{slash}: {hint}")
    assert not (tmp_path / "new").exists()
    for name in ("run.json", "predictions.jsonl"):
        before = (run_dir / name).read_bytes()
        one_line_error(export(run_dir, run_dir / name, "--force"), "--out would overwrite an input of this command")
        assert (run_dir / name).read_bytes() == before


# --- warn_if_same -----------------------------------------------------------------------------


def test_two_run_directories_with_identical_predictions_are_named_in_the_warning(tmp_path):
    base, _ = two_runs(100, 0)
    b = save_run(base, tmp_path / "b")
    copy = tmp_path / "copy"
    shutil.copytree(b, copy)
    r = invoke(["compare", str(b), str(copy), "--out", str(tmp_path / "c")])
    assert r.exit_code == 0
    assert r.stderr == (f"warning: the baseline and the candidate have identical predictions ({b} and {copy}): "
                        "every delta is 0 by construction\n")


def test_sides_without_a_predictions_hash_are_never_called_identical(capsys):
    base, cand = two_runs(10, 0)
    assert "predictions_sha256" not in base.meta
    warn_if_same(base, cand)
    warn_if_same(base, base)
    assert capsys.readouterr().err == ""
    base.meta["predictions_sha256"] = cand.meta["predictions_sha256"] = "ab" * 32
    warn_if_same(base, cand)
    assert capsys.readouterr().err.startswith("warning: the baseline and the candidate have identical predictions")


# --- saved_side_header, checkpoint_side -------------------------------------------------------


def test_saved_side_header_reads_a_run_json_or_scores_json_and_is_none_for_anything_else(run_dir, tmp_path):
    head = saved_side_header(run_dir)
    assert head == json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert saved_side_header(str(run_dir / "run.json")) == head
    assert export(run_dir, tmp_path / "s.json").exit_code == 0
    assert saved_side_header(tmp_path / "s.json")["schema"] == SCORES_SCHEMA
    cases = {
        "list.json": "[1]",
        "no-profile.json": json.dumps({"golden": {}, "profile": "runtime"}),
        "no-golden.json": json.dumps({"golden": "demo-v1", "profile": {}}),
        "broken.json": "{",
        "deep.json": "[" * 100_000 + "]" * 100_000,
    }
    for name, content in cases.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        assert saved_side_header(tmp_path / name) is None, name
    (tmp_path / "latin1.json").write_bytes(b'{"golden": "caf\xe9"}')
    assert saved_side_header(tmp_path / "latin1.json") is None
    assert saved_side_header(tmp_path / "missing.json") is None
    assert saved_side_header(tmp_path / "ci") is None  # no such directory: nothing read


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_saved_side_header_never_opens_a_fifo(tmp_path):
    fifo = tmp_path / "base.json"
    os.mkfifo(fifo)

    def writer():  # were the FIFO opened, it would read "[1]" rather than block
        with open(fifo, "w", encoding="utf-8") as f:
            f.write("[1]")

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        with pytest.raises(MwevalError) as e:
            saved_side_header(fifo)
        assert str(e.value).startswith(f"{fifo}: ")
    finally:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer through if nothing opened it
        t.join()
        os.close(fd)


def test_checkpoint_side_tells_a_saved_run_from_a_checkpoint(run_dir, tmp_path):
    assert checkpoint_side(str(run_dir), None, ()) is None
    assert checkpoint_side(str(run_dir / "run.json"), None, ()) is None
    scores = tmp_path / "BASE.JSON"
    scores.write_text("{}", encoding="utf-8")
    assert checkpoint_side(str(scores), "demo-v1", ()) is None  # any existing .json is a saved side
    with pytest.raises(MwevalError) as e:
        checkpoint_side(str(tmp_path), None, ())
    assert str(e.value) == f"{tmp_path}: not a run directory or a scores JSON; to evaluate it as a checkpoint, pass --golden"
    with pytest.raises(MwevalError) as e:
        checkpoint_side("baseline/step-001800", None, ())
    assert str(e.value) == "'baseline/step-001800' is not a run directory; to evaluate it as a checkpoint, pass --golden"
    ref = checkpoint_side("baseline/step-001800", "demo-v1", ())
    assert Path(ref.path) == (BUNDLED_RUNS / "baseline" / "step-001800").resolve()
    onnx = BUNDLED_RUNS / "baseline" / "onnx" / "model.onnx"
    assert Path(checkpoint_side(str(onnx), "demo-v1", ()).path) == onnx  # a file that is no JSON: a checkpoint
    step = BUNDLED_RUNS / "baseline" / "step-001800"
    assert Path(checkpoint_side(str(step), "demo-v1", ()).path) == step  # an existing path, as --ckpt takes it


# --- gate's options ---------------------------------------------------------------------------


def test_gate_writes_to_gate_by_default_and_says_where(tmp_path, monkeypatch):
    base, cand = two_runs(100, 0, cand_name="cand")
    b, c = save_run(base, tmp_path / "b"), save_run(cand, tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    r = invoke(["gate", "--baseline", str(b), "--candidate", str(c)])
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "gate").iterdir()) == ["junit.xml", "summary.md", "verdict.json"]
    v = json.loads((tmp_path / "gate" / "verdict.json").read_text(encoding="utf-8"))
    assert r.stdout == console_text(v) + f"\nverdict PASS — written to {tmp_path / 'gate'}/\n"
    assert v["thresholds"]["defaults"]["resamples"] == 2000 and v["verdict"] == "PASS"
    (tmp_path / "gate" / "summary.md").write_text("stale\n", encoding="utf-8")
    assert invoke(["gate", "--baseline", str(b), "--candidate", str(c)]).exit_code == 0  # an earlier verdict is replaced
    assert (tmp_path / "gate" / "summary.md").read_text(encoding="utf-8") != "stale\n"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep\n", encoding="utf-8")
    one_line_error(invoke(["gate", "--baseline", str(b), "--candidate", str(c), "--out", "notes"]), "notes", "--force")
    assert invoke(["gate", "--baseline", str(b), "--candidate", str(c), "--out", "notes", "--force"]).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["junit.xml", "summary.md", "todo.txt", "verdict.json"]


def test_saved_runs_are_not_rescored_on_another_golden_set(tmp_path):
    """--golden names the set a checkpoint is evaluated on; two saved runs scored on another one are
    refused, not compared as if re-scored."""
    base, cand = two_runs(100, 0, cand_name="cand")
    cand.meta["golden"]["name"] = "hand-2"  # the first side named is the baseline, with its own set's name
    b, c = save_run(base, tmp_path / "b"), save_run(cand, tmp_path / "c")
    for args in (["compare", str(b), str(c), "--out", str(tmp_path / "cmp")],
                 ["gate", "--baseline", str(b), "--candidate", str(c), "--out", str(tmp_path / "g")]):
        one_line_error(invoke([*args, "--golden", "demo-v1"]),
                       f"--golden demo-v1, but {b} was scored on hand; a saved run is not re-scored "
                       "(--golden applies when a checkpoint is evaluated)")
    assert not (tmp_path / "cmp").exists() and not (tmp_path / "g").exists()
    one_line_error(invoke(["compare", str(b), str(c), "--engine", "torch", "--out", str(tmp_path / "cmp")]),
                   "--engine applies only when a checkpoint is evaluated, and every input here is a saved run")
    assert invoke(["compare", str(b), str(c), "--out", str(tmp_path / "cmp")]).exit_code == 0
    assert invoke(["compare", str(b), str(c), "--out", str(tmp_path / "cmp")]).exit_code == 0  # an earlier compare is replaced
    assert invoke(["compare", str(b), str(c), "--out", str(tmp_path / "cmp"), "--buckets", "upstream", "--force"]).exit_code == 0
    method = json.loads((tmp_path / "cmp" / "compare.json").read_text(encoding="utf-8"))["method"]
    assert (method["resamples"], method["seed"], method["buckets"]) == (2000, 0, "upstream")


def test_gate_refuses_its_out_before_evaluating_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("g").write_text("not a directory\n", encoding="utf-8")
    r = invoke(["gate", "--baseline", "baseline/step-001800", "--candidate", "regressed/step-002200", "--golden", "demo-v1",
                "--out", "g", "-q"])
    one_line_error(r, "g: output path exists and is not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]  # no runs/: nothing was evaluated


def test_required_options_resample_bounds_and_the_defaults_help_shows(run_dir, tmp_path):
    for args, missing in ((["gate", "--baseline", str(run_dir)], "gate: Missing option '--candidate'"),
                          (["gate", "--candidate", str(run_dir)], "gate: Missing option '--baseline'"),
                          (["export-scores", "--out", str(tmp_path / "s.json")], "export-scores: Missing option '--run'"),
                          (["export-scores", "--run", str(run_dir)], "export-scores: Missing option '--out'")):
        one_line_error(invoke(args), missing)
    for n in ("999", "1000001"):
        one_line_error(invoke(["gate", "--baseline", str(run_dir), "--candidate", str(run_dir), "--resamples", n,
                               "--out", str(tmp_path / "g")]),
                       "--resamples", f"{n} is not in the range 1000<=x<=1000000")
        one_line_error(invoke(["compare", str(run_dir), str(run_dir), "--resamples", n, "--out", str(tmp_path / "c")]),
                       "--resamples", f"{n} is not in the range 1000<=x<=1000000")
    text = " ".join(invoke(["gate", "--help"]).stdout.split())
    assert "--out PATH Directory for verdict.json, summary.md, junit.xml. [default: gate]" in text
    text = " ".join(invoke(["compare", "--help"]).stdout.split())
    assert "--resamples INTEGER RANGE Paired bootstrap resamples. [default: 2000; 1000<=x<=1000000]" in text
    assert "--seed INTEGER Bootstrap seed. [default: 0]" in text
    assert "(diagnose_regression.py). [default: default]" in text
    assert "optionally + non-Latin rows. [default: default]" in text.replace("non- Latin", "non-Latin")


@pytest.mark.parametrize(("size", "kib"), [(1535, "1"), (1537, "2")])
def test_export_scores_reports_its_size_in_kib_of_1024_bytes(tmp_path, size, kib):
    """1535 bytes are 1.499 KiB ("1"; /1023 would give 2), 1537 are 1.501 KiB ("2"; /1025 would give 1)."""
    rows = [("Bern 3011", {"postcode": "3011"}, {"postcode": "3011"})]
    probe = export(save_run(make_run(rows, ["postcode"], name="x"), tmp_path / "probe"), tmp_path / "probe.json")
    assert probe.exit_code == 0
    name = "x" * (1 + size - (tmp_path / "probe.json").stat().st_size)  # the checkpoint name sets the size
    out = tmp_path / "s.json"
    r = export(save_run(make_run(rows, ["postcode"], name=name), tmp_path / "run"), out)
    assert out.stat().st_size == size
    assert r.stdout == f"{out}: 1 entries, {kib} KiB\n"
