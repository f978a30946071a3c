"""Two CLI behaviours end to end.

1. `mweval compare` / `mweval gate` with one side a saved run (a run directory, or a scores JSON as
   the baseline) and the other a checkpoint the command evaluates on `--golden` (README "Compare and
   gate"; design.md "Profiles": compare/gate refuse to mix profiles or golden hashes unless
   `--allow-mismatch`). Without the flag the saved side is refused before the checkpoint is evaluated
   (cli_compare.refuse_mismatch_before_evaluating), exit 2 and one line naming what differs; with it
   the comparison runs on the rows both sides hold, and every output says MISMATCH.
2. `mweval parity`'s per-artifact warnings (a zero-fed side channel, a sidecar CRF that is not the
   checkpoint's): on stderr, once each, naming the artifact; stdout stays the table (or, with
   `--json`, exactly parity.json), and parity.md carries them artifact by artifact.

Real assets only: the bundled demo checkpoints and golden set demo-v1 (compare/gate), the tiny
upstream checkpoint and its ONNX exports on v0.1.2/test (parity).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from clicases import invoke, one_line_error
from conftest import GOLDEN_V012, REPO, TINY, TINY_STEP, TOKENIZER_V010, fixed_width_onnx, need_shared

from mailwoman_eval.golden import load_golden

DEMO_GOLDEN = REPO / "golden" / "demo-v1"
BASE_STEP = REPO / "demo" / "runs" / "baseline" / "step-001800"
CKPT = "regressed/step-002200"  # the checkpoint side, by name as a user types it (resolved in the bundled demo)
SHORT = "demo-v1-less-one"  # demo-v1 without the last row of us.jsonl
needs_demo = pytest.mark.skipif(not (BASE_STEP / "pytorch_model.bin").is_file(), reason="bundled demo runs not trained yet")


# ---------------------------------------------------------------------------------------------
# compare / gate: a saved side and a checkpoint side


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """The demo baseline step saved on demo-v1 under each profile, and the upstream-eval run's
    scores JSON (mweval export-scores): the saved sides."""
    if not (BASE_STEP / "pytorch_model.bin").is_file():
        pytest.skip("bundled demo runs not trained yet")
    d = tmp_path_factory.mktemp("saved")
    for profile in ("runtime", "upstream-eval"):
        r = invoke(["eval", "--ckpt", str(BASE_STEP), "--golden", str(DEMO_GOLDEN), "--profile", profile,
                    "--out", str(d / profile), "-q", "--no-cache"])
        assert r.exit_code == 0, r.stderr
    r = invoke(["export-scores", "--run", str(d / "upstream-eval"), "--out", str(d / "upstream-eval.json")])
    assert r.exit_code == 0, r.stderr
    return {"runtime": d / "runtime", "upstream-eval": d / "upstream-eval", "upstream-eval.json": d / "upstream-eval.json"}


@pytest.fixture
def short_golden(tmp_path) -> Path:
    """Another golden set: demo-v1's files, the last row of us.jsonl removed (no manifest)."""
    g = tmp_path / SHORT
    g.mkdir()
    for f in sorted(DEMO_GOLDEN.glob("*.jsonl")):
        shutil.copyfile(f, g / f.name)
    rows = (g / "us.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (g / "us.jsonl").write_text("".join(rows[:-1]), encoding="utf-8")
    return g


def sha(golden: Path) -> str:
    return load_golden(golden, golden.name).sha256


def sides(command: str, saved_is_base: bool, saved_spec: str) -> list[str]:
    base, cand = (saved_spec, CKPT) if saved_is_base else (CKPT, saved_spec)
    return ["compare", base, cand] if command == "compare" else ["gate", "--baseline", base, "--candidate", cand]


# (command, saved side is the baseline, saved side as a run directory or its scores JSON)
SIDES = [
    ("compare", True, "run"),
    ("compare", False, "run"),
    ("gate", True, "run"),
    ("gate", False, "run"),
    ("compare", True, "scores"),  # compare's BASE and gate's --baseline may be a scores JSON
    ("gate", True, "scores"),
]
SIDE_IDS = [f"{c}-saved-{'base' if b else 'cand'}-{k}" for c, b, k in SIDES]


@needs_demo
@pytest.mark.parametrize(("command", "saved_is_base", "kind"), SIDES, ids=SIDE_IDS)
def test_a_saved_side_on_another_golden_set_is_refused_before_the_checkpoint_is_evaluated(
        saved, short_golden, command, saved_is_base, kind):
    spec = str(saved["upstream-eval.json" if kind == "scores" else "runtime"])
    tail = " (use --allow-mismatch to compare anyway)"
    if kind == "scores":  # scored with upstream-eval: both differences are named, the golden set first
        tail = f"; profiles differ: {spec} was scored with upstream-eval, the checkpoint would be evaluated with runtime" + tail
    line = one_line_error(invoke([*sides(command, saved_is_base, spec), "--golden", str(short_golden), "--out", "out", "-q"]))
    assert line == (f"mweval: error: golden sets differ: {spec} was scored on demo-v1 sha256 {sha(DEMO_GOLDEN)[:12]}, "
                    f"the checkpoint would be evaluated on {SHORT} sha256 {sha(short_golden)[:12]}{tail}")
    assert not Path("runs").exists(), "the checkpoint was evaluated before the refusal"
    assert not Path("out").exists()


@needs_demo
@pytest.mark.parametrize("saved_is_base", [True, False], ids=["saved-base", "saved-cand"])
@pytest.mark.parametrize("command", ["compare", "gate"])
def test_a_saved_side_with_another_profile_than_the_one_given_is_refused_before_evaluating(saved, command, saved_is_base):
    """The profile compared is the one the command was given (--profile), not the default."""
    spec = str(saved["runtime"])
    r = invoke([*sides(command, saved_is_base, spec), "--golden", "demo-v1", "--profile", "upstream-eval", "--out", "out", "-q"])
    one_line_error(r, f"mweval: error: profiles differ: {spec} was scored with runtime, the checkpoint would be evaluated "
                      "with upstream-eval (use --allow-mismatch to compare anyway)")
    assert not Path("runs").exists() and not Path("out").exists()
    # the same saved run and the same golden set under the run's own profile: nothing to refuse
    r = invoke([*sides(command, saved_is_base, spec), "--golden", "demo-v1", "--out", "out", "-q", "--resamples", "1000"])
    assert r.exit_code == (1 if command == "gate" and saved_is_base else 0), r.stderr  # gate: the demo's regression fails
    assert "MISMATCH" not in r.stderr + r.stdout


def evaluated_run(name: str, golden: str, profile: str) -> dict:
    """run.json of the checkpoint side, written into ./runs as eval writes it."""
    return json.loads((Path("runs") / f"{name}__{golden}__{profile}" / "run.json").read_text(encoding="utf-8"))


@needs_demo
@pytest.mark.parametrize(("command", "saved_is_base", "kind"), SIDES, ids=SIDE_IDS)
def test_allow_mismatch_compares_a_saved_side_with_a_checkpoint_evaluated_on_another_golden_set(
        saved, short_golden, command, saved_is_base, kind):
    spec = str(saved["upstream-eval.json" if kind == "scores" else "runtime"])
    profile = "upstream-eval" if kind == "scores" else "runtime"  # the checkpoint side is evaluated like the saved one
    r = invoke([*sides(command, saved_is_base, spec), "--golden", str(short_golden), "--profile", profile, "--allow-mismatch",
                "--resamples", "1000", "--out", "out", "-q"])
    full, short = (("demo-v1", sha(DEMO_GOLDEN)), (SHORT, sha(short_golden)))
    (bname, bsha), (cname, csha) = (full, short) if saved_is_base else (short, full)
    expected = [f"golden sets differ: {bname} sha256 {bsha[:12]} vs {cname} sha256 {csha[:12]}",
                f"{int(saved_is_base)} baseline and {int(not saved_is_base)} candidate entries have no same row (file, raw and gold) "
                "in the other run and are left out"]
    banner = "warning: MISMATCH — " + "; ".join(expected)
    assert r.stderr.splitlines().count(banner) == 1, r.stderr
    assert r.stderr.splitlines()[0] == banner  # before the runs' own warnings (gate)
    assert "warning:" not in r.stdout and "Traceback" not in r.stderr

    # the checkpoint side was evaluated on the golden set and profile given, on all of its rows
    run = evaluated_run("regressed-step-002200", SHORT, profile)
    assert (run["golden"]["name"], run["golden"]["sha256"], run["golden"]["rows"], run["profile"]["name"]) == (SHORT, short[1], 648, profile)
    ev_summary = {"label": CKPT, "path": f"runs/regressed-step-002200__{SHORT}__{profile}", "golden": {"name": SHORT, "sha256": short[1]},
                  "profile": profile, "source": "run"}
    saved_summary = {"golden": {"name": "demo-v1", "sha256": full[1]}, "profile": profile, "source": "scores" if kind == "scores" else "run"}

    out = Path("out")
    if command == "compare":
        assert r.exit_code == 0, r.stderr
        c = json.loads((out / "compare.json").read_text(encoding="utf-8"))
        assert c["mismatch"] == expected
        sv, ev = (c["base"], c["cand"]) if saved_is_base else (c["cand"], c["base"])
        assert c["views"]["all"]["entries"] == 648  # rows paired by what they hold: only the removed row is left out
        md = (out / "compare.md").read_text(encoding="utf-8")
        assert "> **MISMATCH (--allow-mismatch):** " + "; ".join(expected) in md.splitlines()
        assert md in r.stdout  # stdout is compare.md and the written line
        page = (out / "compare.html").read_text(encoding="utf-8")
        assert '<section class="mismatch" role="alert" id="mismatch">' in page
        assert all(f"<li>{p}</li>" in page for p in expected)
    else:
        v = json.loads((out / "verdict.json").read_text(encoding="utf-8"))
        assert v["mismatch"] == expected
        sv, ev = (v["baseline"], v["candidate"]) if saved_is_base else (v["candidate"], v["baseline"])
        if saved_is_base:  # the demo's regression (README): the regressed step fails on postcode
            assert v["verdict"] == "FAIL" and v["results"]["excluding_adversarial"]["postcode"]["verdict"] == "FAIL"
        assert r.exit_code == (1 if v["verdict"] == "FAIL" else 0), r.stderr
        assert r.stdout.splitlines()[-1].startswith(f"verdict {v['verdict']}")
        assert "> **MISMATCH (--allow-mismatch):** " + "; ".join(expected) in (out / "summary.md").read_text(encoding="utf-8").splitlines()
        props = {p.get("name"): p.get("value") for p in ET.parse(out / "junit.xml").getroot().iter("property")}
        assert props["mismatch"] == "; ".join(expected)
    assert {k: ev[k] for k in ev_summary} == ev_summary
    assert {k: sv[k] for k in saved_summary} == saved_summary


@needs_demo
@pytest.mark.parametrize("saved_is_base", [True, False], ids=["saved-base", "saved-cand"])
def test_allow_mismatch_compares_a_saved_side_with_a_checkpoint_evaluated_under_another_profile(saved, saved_is_base):
    spec = str(saved["runtime"])
    r = invoke([*sides("compare", saved_is_base, spec), "--golden", "demo-v1", "--profile", "upstream-eval", "--allow-mismatch",
                "--resamples", "1000", "--out", "out", "-q"])
    assert r.exit_code == 0, r.stderr
    expected = ["profiles differ: runtime vs upstream-eval" if saved_is_base else "profiles differ: upstream-eval vs runtime"]
    assert r.stderr.splitlines() == ["warning: MISMATCH — " + expected[0]]
    run = evaluated_run("regressed-step-002200", "demo-v1", "upstream-eval")
    assert (run["profile"]["name"], run["golden"]["sha256"], run["golden"]["rows"]) == ("upstream-eval", sha(DEMO_GOLDEN), 649)
    c = json.loads(Path("out/compare.json").read_text(encoding="utf-8"))
    assert c["mismatch"] == expected
    sv, ev = (c["base"], c["cand"]) if saved_is_base else (c["cand"], c["base"])
    assert (sv["profile"], ev["profile"], ev["path"]) == ("runtime", "upstream-eval", "runs/regressed-step-002200__demo-v1__upstream-eval")
    assert c["views"]["all"]["entries"] == 649  # one golden set: every row pairs
    md = Path("out/compare.md").read_text(encoding="utf-8")
    assert f"profile `{c['cand']['profile']}`" in md.splitlines()[2]
    assert "> **MISMATCH (--allow-mismatch):** " + expected[0] in md.splitlines()


@needs_demo
def test_with_a_mismatch_allowed_the_bootstrap_size_is_checked_on_the_paired_rows(saved, short_golden):
    """README: a B x n too large is refused before a checkpoint is evaluated, "or with --allow-mismatch
    and a saved side once the rows are paired": 648 paired rows, not demo-v1's 649 or the short set's
    648 read before pairing."""
    r = invoke(["compare", str(saved["runtime"]), CKPT, "--golden", str(short_golden), "--allow-mismatch",
                "--resamples", "1000000", "--out", "out", "-q"])
    one_line_error(r, f"mweval: error: 1000000 resamples of 648 entries need about 10 GiB; at most {200_000_000 // 648} "
                      "resamples for this golden set")
    assert not Path("out").exists()


# ---------------------------------------------------------------------------------------------
# parity: per-artifact warnings


OOD = ("OUT OF DISTRIBUTION: 1 side-channel inputs are zero-fed (anchor_features); the model card declares its side channels "
       "required, so these numbers do not measure the shipped model")
DRIFT = ("crf-transitions.json beside the ONNX differs from the checkpoint's CRF (max |Δ| 0.5): the export may come from another "
         "checkpoint; parity decodes every model with the checkpoint's")


def drifted_export(directory: Path, name: str) -> Path:
    """The tiny fp32 export beside a sidecar whose first transition moved by 0.5 (an export of another
    checkpoint's CRF, as far as the sidecar says)."""
    directory.mkdir()
    shutil.copyfile(TINY / "onnx" / "model.onnx", directory / name)
    side = json.loads((TINY / "onnx" / "crf-transitions.json").read_text(encoding="utf-8"))
    side["transitions"][0][1] += 0.5
    (directory / "crf-transitions.json").write_text(json.dumps(side), encoding="utf-8")
    return directory / name


def parity_args(out: Path, *onnx: Path) -> list[str]:
    args = ["parity", "--ckpt", str(TINY_STEP), "--tokenizer", str(TOKENIZER_V010), "--golden", str(GOLDEN_V012 / "test"),
            "--out", str(out)]
    for p in onnx:
        args += ["--onnx", str(p)]
    return args


@pytest.fixture
def three_artifacts(tmp_path) -> list[Path]:
    """A drifted sidecar, a zero-fed side channel (its sidecar is the checkpoint's), and a bare int8
    export (labels from the checkpoint, nothing to warn about)."""
    need_shared()
    drifted = drifted_export(tmp_path / "drift", "drifted.onnx")
    side_channel = fixed_width_onnx(tmp_path, 128, side_channel=True)
    (tmp_path / "bare").mkdir()
    bare = Path(shutil.copy(TINY / "onnx" / "model.int8.onnx", tmp_path / "bare"))
    return [drifted, side_channel, bare]


def test_parity_warns_on_stderr_once_per_artifact_warning_naming_the_artifact(tmp_path, three_artifacts):
    from mailwoman_eval.parity import console_table

    out = tmp_path / "p"
    r = invoke(parity_args(out, *three_artifacts))
    assert r.exit_code == 0, r.stderr
    doc = json.loads((out / "parity.json").read_text(encoding="utf-8"))
    assert [(a["name"], a["verdict"], a["warnings"]) for a in doc["artifacts"]] == [
        ("drifted.onnx", "PASS", [DRIFT]), ("model.onnx", "PASS", [OOD]), ("model.int8.onnx", "PASS", [])]
    assert doc["artifacts"][1]["zero_fed_inputs"] == ["anchor_features"]
    assert doc["artifacts"][2]["labels_source"].startswith("checkpoint") and doc["artifacts"][2]["sidecar_crf_max_abs_diff"] is None
    assert doc["warnings"] == []  # v0.1.2/test is on its manifest: no warning about the golden set

    err = r.stderr.splitlines()
    assert [line for line in err if line.startswith("warning:")] == [f"warning: drifted.onnx: {DRIFT}", f"warning: model.onnx: {OOD}"]
    assert err[0].startswith("mweval parity: reference tiny-v040/step-000300 (numpy) on v0.1.2/test (456 rows)")  # progress notes
    assert [line for line in err if "model.int8.onnx" in line] == ["  model.int8.onnx: int8, batched no (by trial), padding pad-to-128"]
    # stdout is the table and where it was written, nothing else
    assert r.stdout == console_table(doc) + "\n" + f"written: {os.path.abspath(out)}/parity.json, parity.md\n"
    assert "warning" not in r.stdout and "OUT OF DISTRIBUTION" not in r.stdout
    md = (out / "parity.md").read_text(encoding="utf-8")
    assert f"**drifted.onnx**: warning: {DRIFT}" in md.splitlines()
    assert f"**model.onnx**: warning: {OOD}" in md.splitlines()
    assert "**model.int8.onnx**:" not in md


def test_parity_json_on_stdout_is_the_document_and_the_warnings_stay_on_stderr(tmp_path, three_artifacts):
    """--json prints parity.json to stdout (a pipe into jq must parse); the warnings go to stderr all
    the same, and with --json they are all there is on stderr (no progress notes), --quiet or not."""
    for flags in ([], ["-q"]):
        out = tmp_path / f"p{len(flags)}"
        r = invoke([*parity_args(out, *three_artifacts), "--json", *flags])
        assert r.exit_code == 0, r.stderr
        assert r.stdout == (out / "parity.json").read_text(encoding="utf-8")
        assert json.loads(r.stdout)["schema"] == "mweval.parity/1"
        assert r.stderr.splitlines() == [f"warning: drifted.onnx: {DRIFT}", f"warning: model.onnx: {OOD}"]


def test_a_failing_artifact_still_has_its_warnings_said_before_the_exit_1(tmp_path, three_artifacts):
    """--min-agreement 100.0 cannot fail these exports (they decode every piece alike), so the int8
    floor is raised instead: the bare int8 export fails; the others' warnings are still on stderr, and
    the failing one has none to say."""
    out = tmp_path / "p"
    r = invoke([*parity_args(out, *three_artifacts), "--min-agreement-int8", "100", "-q"])
    assert r.exit_code == 1, r.stderr
    doc = json.loads((out / "parity.json").read_text(encoding="utf-8"))
    assert doc["failed"] == ["model.int8.onnx"]
    assert r.stderr.splitlines() == [f"warning: drifted.onnx: {DRIFT}", f"warning: model.onnx: {OOD}"]
    assert r.stdout.splitlines()[-2:] == ["verdict FAIL", f"written: {os.path.abspath(out)}/parity.json, parity.md"]


def test_two_artifacts_of_one_file_name_are_named_by_their_paths_everywhere(tmp_path, shared):
    """Checking a new export against an old one: both are model.onnx. The new one's sidecar is not the
    checkpoint's CRF; the warning said `model.onnx: crf-transitions.json ... differs`, which names
    neither, and parity.json's timings kept one of the two. Each is now named by its path as given,
    in the warning, the artifacts, the table and the timings; a file of a unique name keeps its name."""
    old = tmp_path / "old"
    old.mkdir()
    for f in ("model.onnx", "crf-transitions.json"):
        shutil.copyfile(TINY / "onnx" / f, old / f)
    new = drifted_export(tmp_path / "new", "model.onnx")
    int8 = TINY / "onnx" / "model.int8.onnx"
    out = tmp_path / "p"
    r = invoke([*parity_args(out, old / "model.onnx", new, int8), "-q"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads((out / "parity.json").read_text(encoding="utf-8"))
    names = [str(old / "model.onnx"), str(new), "model.int8.onnx"]
    assert [a["name"] for a in doc["artifacts"]] == names
    assert [a["warnings"] for a in doc["artifacts"]] == [[], [DRIFT], []]
    assert r.stderr.splitlines() == [f"warning: {new}: {DRIFT}"]
    assert sorted(doc["timings"]["artifacts_s"]) == sorted(names)
    assert all(f"| `{n}` |" in (out / "parity.md").read_text(encoding="utf-8") for n in names)


def test_the_same_onnx_file_given_twice_is_refused(tmp_path, shared):
    """Two --onnx of one file (typed two ways) would be two artifacts of one name: refused up front."""
    out = tmp_path / "p"
    model = TINY / "onnx" / "model.onnx"
    again = TINY / "onnx" / ".." / "onnx" / "model.onnx"
    r = invoke([*parity_args(out, model, again), "-q"])
    assert r.exit_code == 2 and not out.exists()
    one_line_error(r, f"{again}: the same ONNX file is given twice (as {model} and as {again})")
