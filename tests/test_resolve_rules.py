"""Checkpoint names, tokenizer discovery and inapplicable options, rule by rule (README "Inputs":
Checkpoints, Tokenizer, PyTorch engines; design.md Decisions "Names" and "Tokenizer"): an existing
path wins; a name is looked up in --ckpt-root, then MWEVAL_CKPT_PATH (each root as ROOT/NAME and
ROOT/*/NAME), then the bundled demo/runs; two matches in one level is an error listing both; a
--ckpt-root that is not a directory is refused, and so is a MWEVAL_CKPT_PATH entry that is not one
when the name would then come from the bundled demo or from nowhere (a typo must not score the demo's
step-002200); the tokenizer is --tokenizer, else tokenizer.model in the checkpoint dir, then its run
dir, else training_state.json's config.data.tokenizer_dir; an option that applies to none of the
evaluated checkpoints is refused.

Checkpoint roots are tmp_path trees of placeholder files (the resolver reads no weights).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import error_text

from mailwoman_eval.checkpoints.resolve import (
    BUNDLED_RUNS,
    CheckpointRef,
    find_tokenizer,
    known_checkpoint_names,
    load_backend,
    refuse_inapplicable_knobs,
    resolve_checkpoint,
)

DEMO_2200 = (BUNDLED_RUNS / "regressed" / "step-002200").resolve()  # found names are resolved paths


def step(root: Path, rel: str) -> Path:
    d = root / rel
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "pytorch_model.bin").write_bytes(b"")
    return d


@pytest.fixture
def tmp(tmp_path) -> Path:
    return tmp_path.resolve()


def test_ckpt_root_precedes_env_precedes_bundled(tmp, monkeypatch):
    """README Inputs: a name is looked up in --ckpt-root, then MWEVAL_CKPT_PATH, then the bundled demo/runs."""
    cli, env = tmp / "cli", tmp / "env"
    step(cli, "mine/step-002200")
    step(env, "theirs/step-002200")
    monkeypatch.setenv("MWEVAL_CKPT_PATH", str(env))
    ref = resolve_checkpoint("step-002200", (str(cli),))
    assert (ref.path, ref.name, ref.kind, ref.found_in, ref.spec) == (cli / "mine/step-002200", "mine/step-002200", "pytorch",
                                                                      "--ckpt-root", "step-002200")
    ref = resolve_checkpoint("step-002200")
    assert (ref.path, ref.name, ref.found_in) == (env / "theirs/step-002200", "theirs/step-002200", "MWEVAL_CKPT_PATH")
    monkeypatch.delenv("MWEVAL_CKPT_PATH")
    ref = resolve_checkpoint("step-002200")
    assert (ref.path, ref.name, ref.found_in) == (DEMO_2200, "regressed/step-002200", "bundled demo runs")


def test_each_root_is_searched_as_root_name_and_root_star_name(tmp, monkeypatch):
    """README Inputs: each root is searched as ROOT/NAME and ROOT/*/NAME; RUN/STEP names work too."""
    a, b = tmp / "a", tmp / "b"
    step(a, "step-000100")
    step(b, "run/step-000200")
    monkeypatch.setenv("MWEVAL_CKPT_PATH", f"{a}{os.pathsep}{b}")
    assert resolve_checkpoint("step-000100").path == a / "step-000100"
    assert resolve_checkpoint("step-000200").path == b / "run/step-000200"
    assert resolve_checkpoint("run/step-000200").path == b / "run/step-000200"
    assert resolve_checkpoint("step-000200", (str(a),)).found_in == "MWEVAL_CKPT_PATH"  # not in the --ckpt-root: next level


def test_a_name_is_not_a_pattern(tmp):
    """A name is matched literally as ROOT/NAME and ROOT/*/NAME: glob characters in it match nothing else."""
    step(tmp / "cli", "run/step-000100")
    assert error_text(resolve_checkpoint, "step-0001*", (str(tmp / "cli"),)).startswith("checkpoint 'step-0001*' not found (not a path; ")
    assert error_text(resolve_checkpoint, "step-00010[0]", (str(tmp / "cli"),)).startswith("checkpoint 'step-00010[0]' not found (")


def test_two_matches_in_one_level_is_an_error_listing_both(tmp, monkeypatch):
    """README Inputs: two matches in one level is an error listing both (across roots, and ROOT/NAME with ROOT/*/NAME)."""
    a, b = tmp / "a", tmp / "b"
    step(a, "x/step-000300")
    step(b, "y/step-000300")
    monkeypatch.setenv("MWEVAL_CKPT_PATH", f"{b}{os.pathsep}{a}")
    assert error_text(resolve_checkpoint, "step-000300") == (
        "checkpoint name 'step-000300' is ambiguous in MWEVAL_CKPT_PATH: x/step-000300, y/step-000300 (name one as RUN/STEP)")
    c = tmp / "c"
    step(c, "step-000400")
    step(c, "run/step-000400")
    assert error_text(resolve_checkpoint, "step-000400", (str(c),)) == (
        "checkpoint name 'step-000400' is ambiguous in --ckpt-root: run/step-000400, c/step-000400 (name one as RUN/STEP)")


def test_one_checkpoint_reached_twice_is_not_ambiguous_and_levels_do_not_clash(tmp, monkeypatch):
    """A root listed twice finds one checkpoint, not two; matches in different levels are not ambiguous (the first wins)."""
    a = tmp / "a"
    step(a, "x/step-000300")
    monkeypatch.setenv("MWEVAL_CKPT_PATH", f"{a}{os.pathsep}{a}")
    assert resolve_checkpoint("step-000300").path == a / "x/step-000300"
    assert resolve_checkpoint("step-000300", (str(a),)).found_in == "--ckpt-root"


def test_an_existing_path_wins_and_a_missing_path_is_not_a_name(tmp, monkeypatch):
    """README Inputs: an existing path wins over every search level; a path-looking spec that does not exist is an error."""
    monkeypatch.chdir(tmp)
    step(tmp, "step-002200")
    ref = resolve_checkpoint("step-002200")
    assert (ref.path, ref.found_in, ref.name) == (Path("step-002200"), "path", f"{tmp.name}/step-002200")
    for spec in ("./step-009999", "../step-009999", "/nonexistent/step-002200", "~/nonexistent-step-002200"):
        assert error_text(resolve_checkpoint, spec) == f"{spec}: checkpoint path does not exist"


def test_a_ckpt_root_that_is_not_a_directory_is_refused(tmp, monkeypatch):
    """README Inputs: a --ckpt-root that is not a directory is refused, even when the name is found elsewhere."""
    (tmp / "file").write_text("")
    step(tmp / "env", "step-000300")
    monkeypatch.setenv("MWEVAL_CKPT_PATH", str(tmp / "env"))
    for bad in (tmp / "typo", tmp / "file"):
        assert error_text(resolve_checkpoint, "step-000300", (str(tmp / "env"), str(bad))) == f"{bad}: --ckpt-root is not a directory"
        assert error_text(resolve_checkpoint, "step-002200", (str(bad),)) == f"{bad}: --ckpt-root is not a directory"


def test_a_missing_env_root_refuses_the_bundled_demo_name(tmp, monkeypatch):
    """README Inputs: a MWEVAL_CKPT_PATH entry that is not a directory is refused when the name would then come from
    the bundled demo: a typo must not score the demo's step-002200."""
    monkeypatch.setenv("MWEVAL_CKPT_PATH", str(tmp / "typo"))
    assert error_text(resolve_checkpoint, "step-002200") == (
        f"MWEVAL_CKPT_PATH names {tmp / 'typo'}, not a directory: checkpoint 'step-002200' could be there; "
        "elsewhere it is only the bundled demo checkpoint of that name (fix MWEVAL_CKPT_PATH, or give a path)")
    (tmp / "file").write_text("")
    monkeypatch.setenv("MWEVAL_CKPT_PATH", f"{tmp / 'typo'}{os.pathsep}{tmp}{os.pathsep}{tmp / 'file'}")
    assert error_text(resolve_checkpoint, "step-002200") == (
        f"MWEVAL_CKPT_PATH names {tmp / 'typo'}, {tmp / 'file'}, not directories: checkpoint 'step-002200' could be there; "
        "elsewhere it is only the bundled demo checkpoint of that name (fix MWEVAL_CKPT_PATH, or give a path)")


def test_a_missing_env_root_refuses_a_name_found_nowhere(tmp, monkeypatch):
    """README Inputs: ... or from nowhere: the refusal names the missing entry instead of "not found"."""
    monkeypatch.setenv("MWEVAL_CKPT_PATH", str(tmp / "typo"))
    assert error_text(resolve_checkpoint, "step-777777") == (
        f"MWEVAL_CKPT_PATH names {tmp / 'typo'}, not a directory: checkpoint 'step-777777' could be there; "
        "it is found nowhere else (fix MWEVAL_CKPT_PATH, or give a path)")


def test_a_missing_env_root_is_no_error_when_an_earlier_level_or_another_entry_has_the_name(tmp, monkeypatch):
    """The refusal is only for names that would come from the bundled demo or nowhere: a name in --ckpt-root or in
    another MWEVAL_CKPT_PATH entry resolves, as does an existing path."""
    step(tmp / "env", "r/step-002200")
    step(tmp / "cli", "r/step-002200")
    monkeypatch.setenv("MWEVAL_CKPT_PATH", f"{tmp / 'typo'}{os.pathsep}{tmp / 'env'}")
    assert resolve_checkpoint("step-002200").path == tmp / "env/r/step-002200"
    assert resolve_checkpoint("step-002200", (str(tmp / "cli"),)).path == tmp / "cli/r/step-002200"
    assert resolve_checkpoint(str(DEMO_2200)).found_in == "path"


def test_not_found_names_the_levels_searched_and_the_close_names(tmp, monkeypatch):
    """A name found nowhere lists the non-empty levels searched and offers close names it would resolve."""
    step(tmp / "cli", "mine/step-000300")
    assert error_text(resolve_checkpoint, "step-00030", (str(tmp / "cli"),)) == (
        f"checkpoint 'step-00030' not found (not a path; searched --ckpt-root ({tmp / 'cli'}); bundled demo runs ({BUNDLED_RUNS}))"
        "; did you mean step-000300, step-002200, step-002000?")
    assert error_text(resolve_checkpoint, "zzz") == f"checkpoint 'zzz' not found (not a path; searched bundled demo runs ({BUNDLED_RUNS}))"


def test_known_names_offer_run_step_for_a_bare_step_two_runs_hold(tmp):
    """Suggestions are names resolve_checkpoint resolves: a bare STEP held by two runs of one level is offered as RUN/STEP."""
    root = tmp / "cli"
    step(root, "a/step-000300")
    step(root, "b/step-000300")
    step(root, "step-000500")
    (root / "a/onnx").mkdir()
    (root / "a/model.onnx").write_bytes(b"")
    (root / "notackpt").mkdir()
    names = known_checkpoint_names((str(root),))
    assert names["step-000300"] == ["a/step-000300", "b/step-000300"]
    assert names["a/step-000300"] == ["a/step-000300"]
    assert names["step-000500"] == ["step-000500"]
    assert names["model.onnx"] == ["model.onnx"]
    assert names["a/model.onnx"] == ["a/model.onnx"]
    assert "notackpt" not in names and "a" not in names and "a/onnx" not in names


def test_what_a_found_path_is(tmp):
    """README Inputs: a step dir (config.json or pytorch_model.bin), an .onnx file, or a package dir (model.onnx); else refused."""
    d = tmp / "only-bin"
    d.mkdir()
    (d / "pytorch_model.bin").write_bytes(b"")
    assert resolve_checkpoint(str(d)).kind == "pytorch"
    pkg = tmp / "en-us"
    pkg.mkdir()
    (pkg / "model.onnx").write_bytes(b"")
    ref = resolve_checkpoint(str(pkg))
    assert (ref.kind, ref.name, ref.onnx_file, ref.directory) == ("package", "en-us", pkg / "model.onnx", pkg)
    (tmp / "run/onnx").mkdir(parents=True)
    (tmp / "run/onnx/model.onnx").write_bytes(b"")
    ref = resolve_checkpoint(str(tmp / "run/onnx/model.onnx"))
    assert (ref.kind, ref.name, ref.onnx_file, ref.directory) == ("onnx", "run/onnx/model.onnx", tmp / "run/onnx/model.onnx", tmp / "run/onnx")
    ref = resolve_checkpoint(str(pkg / "model.onnx"))
    assert (ref.kind, ref.name) == ("onnx", "en-us/model.onnx")
    assert resolve_checkpoint(str(DEMO_2200)).onnx_file is None
    (tmp / "w.bin").write_bytes(b"")
    assert error_text(resolve_checkpoint, str(tmp / "w.bin")) == f"{tmp / 'w.bin'}: not a checkpoint: a file that is not .onnx"
    (tmp / "empty").mkdir()
    assert error_text(resolve_checkpoint, str(tmp / "empty")) == (
        f"{tmp / 'empty'}: not a checkpoint: no pytorch_model.bin, config.json or model.onnx")
    step(tmp, "myrun/step-000100")
    step(tmp, "myrun/step-000900")
    assert error_text(resolve_checkpoint, str(tmp / "myrun")) == (
        f"{tmp / 'myrun'}: not a checkpoint: a training run with 2 steps (step-000100 … step-000900); name one, "
        "e.g. myrun/step-000900, or evaluate them all with mweval sweep")


def test_a_special_file_is_refused_not_read_or_skipped(tmp):
    """A device or FIFO given as the model or met as tokenizer.model is refused by name (opening one blocks or never
    ends), not read and not skipped for the next tokenizer candidate."""
    assert error_text(resolve_checkpoint, "/dev/null") == "/dev/null: not a regular file (a device)"
    d = step(tmp, "run/step-000100")
    (tmp / "run/tokenizer.model").write_bytes(b"r")
    assert error_text(find_tokenizer, ref_for(d), "/dev/null") == "/dev/null: not a regular file (a device)"
    os.mkfifo(d / "tokenizer.model")
    assert error_text(find_tokenizer, ref_for(d), None) == f"{d / 'tokenizer.model'}: not a regular file (a FIFO)"
    e = step(tmp, "run2/step-000100")
    (tmp / "run2/tok/tokenizer.model").mkdir(parents=True)
    (e / "training_state.json").write_text(json.dumps({"config": {"data": {"tokenizer_dir": "tok"}}}))
    assert error_text(find_tokenizer, ref_for(e), None) == f"{tmp / 'run2/tok/tokenizer.model'}: not a regular file (a directory)"


def ref_for(d: Path) -> CheckpointRef:
    return CheckpointRef(str(d), d.name, d, "pytorch", "path")


def test_tokenizer_order(tmp):
    """README Inputs, Tokenizer: --tokenizer; else tokenizer.model in the checkpoint dir, then its run dir."""
    d = step(tmp, "run/step-000100")
    assert error_text(find_tokenizer, ref_for(d), str(tmp / "nope.model")) == f"{tmp / 'nope.model'}: tokenizer file not found"
    (tmp / "run/tokenizer.model").write_bytes(b"r")
    assert find_tokenizer(ref_for(d), None) == (tmp / "run/tokenizer.model", "run dir")
    (d / "tokenizer.model").write_bytes(b"c")
    assert find_tokenizer(ref_for(d), None) == (d / "tokenizer.model", "checkpoint dir")
    (tmp / "x.model").write_bytes(b"x")
    assert find_tokenizer(ref_for(d), str(tmp / "x.model")) == (tmp / "x.model", "--tokenizer")
    assert find_tokenizer(ref_for(d), "") == (d / "tokenizer.model", "checkpoint dir")


def test_tokenizer_from_training_state(tmp):
    """README Inputs, Tokenizer: else training_state.json's config.data.tokenizer_dir (relative to the run dir)."""
    d = step(tmp, "run/step-000100")
    state = d / "training_state.json"
    (tmp / "run/tok").mkdir()
    (tmp / "run/tok/tokenizer.model").write_bytes(b"t")
    state.write_text(json.dumps({"config": {"data": {"tokenizer_dir": "tok"}}}))
    assert find_tokenizer(ref_for(d), None) == (tmp / "run/tok/tokenizer.model", "training_state.json tokenizer_dir")
    state.write_text(json.dumps({"config": {"data": {"tokenizer_dir": str(tmp / "run/tok")}}}))
    assert find_tokenizer(ref_for(d), None) == (tmp / "run/tok/tokenizer.model", "training_state.json tokenizer_dir")
    state.write_text(json.dumps({"config": {"data": {"tokenizer_dir": "elsewhere"}}}))
    assert error_text(find_tokenizer, ref_for(d), None) == (
        f"no tokenizer found for step-000100; tried {d / 'tokenizer.model'}, {tmp / 'run/tokenizer.model'}, "
        f"{tmp / 'run/elsewhere/tokenizer.model'} (training_state.json); pass --tokenizer")
    for bad in ("{", json.dumps({"config": {}}), json.dumps({"config": {"data": {"tokenizer_dir": ""}}}), "[]"):
        state.write_text(bad)
        assert error_text(find_tokenizer, ref_for(d), None) == (
            f"no tokenizer found for step-000100; tried {d / 'tokenizer.model'}, {tmp / 'run/tokenizer.model'}; pass --tokenizer")


def onnx_ref(tmp: Path) -> CheckpointRef:
    return CheckpointRef("m.onnx", "m.onnx", tmp / "m.onnx", "onnx", "path")


def test_options_that_apply_to_no_evaluated_checkpoint_are_refused(tmp):
    """README Inputs, PyTorch engines: --labels and --pad-to apply to ONNX models and --engine to PyTorch checkpoints:
    an option that applies to none of the checkpoints is refused; a step with its ONNX export takes both."""
    pt, ox = ref_for(DEMO_2200), onnx_ref(tmp)
    assert error_text(refuse_inapplicable_knobs, [ox], None, "auto", "numpy") == (
        f"{tmp / 'm.onnx'}: --engine numpy applies to PyTorch checkpoints; an ONNX model runs in onnxruntime")
    assert error_text(refuse_inapplicable_knobs, [pt], "labels.json", "auto", "onnx") == (
        f"{DEMO_2200}: --labels applies to ONNX models; a PyTorch checkpoint's labels are its config.json's")
    assert error_text(refuse_inapplicable_knobs, [pt], None, "own", "onnx") == (
        f"{DEMO_2200}: --pad-to own applies to ONNX models; a PyTorch checkpoint runs in length-sorted batches padded within the batch")
    for refs in ([pt, ox], [ox, pt]):
        assert refuse_inapplicable_knobs(refs, "labels.json", "own", "numpy") is None
    assert refuse_inapplicable_knobs([pt], None, "auto", "numpy") is None
    assert refuse_inapplicable_knobs([ox], "labels.json", "own", "onnx") is None
    assert refuse_inapplicable_knobs([], "labels.json", "own", "numpy") is None


def test_engine_torch_without_torch_is_refused_before_evaluating(tmp, monkeypatch):
    """README Inputs, PyTorch engines: --engine torch runs the upstream nn.Module; without torch installed it is refused
    up front (TORCH_MISSING), and only when a PyTorch checkpoint is evaluated (for ONNX alone --engine is inapplicable)."""
    import importlib.util

    from mailwoman_eval.checkpoints.pytorch_dir import TORCH_MISSING

    pt, ox = ref_for(DEMO_2200), onnx_ref(tmp)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # torch "installed"
    assert refuse_inapplicable_knobs([pt], None, "auto", "torch") is None
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert error_text(refuse_inapplicable_knobs, [pt, ox], None, "auto", "torch") == TORCH_MISSING
    assert refuse_inapplicable_knobs([pt], None, "auto", "numpy") is None
    assert error_text(refuse_inapplicable_knobs, [ox], None, "auto", "torch") == (
        f"{tmp / 'm.onnx'}: --engine torch applies to PyTorch checkpoints; an ONNX model runs in onnxruntime")


def test_a_pytorch_step_loads_with_its_engine_and_an_onnx_model_with_the_onnx_options():
    """README Inputs, PyTorch engines: --engine goes to a PyTorch checkpoint, --pad-to / --labels to an ONNX model."""
    b = load_backend(resolve_checkpoint("step-002200"), pad_to="own", engine="numpy")
    assert (type(b).__name__, b.engine, b.config_path) == ("PytorchBackend", "numpy", DEMO_2200 / "config.json")
    onnx = BUNDLED_RUNS / "baseline" / "onnx" / "model.onnx"
    b = load_backend(resolve_checkpoint(str(onnx)), pad_to="own", engine="numpy", workers=1)
    assert (type(b).__name__, b.model_path, b.pad_to, b.workers) == ("OnnxBackend", onnx, "own", 1)
