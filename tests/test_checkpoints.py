"""Loading upstream checkpoints: fp32/bf16 PyTorch dirs, upstream's ONNX exports, the en-us package."""

import json
import shutil

import numpy as np
import pytest
from conftest import (
    EN_US,
    GOLDEN_V012,
    TINY,
    TINY_BF16,
    TINY_STEP,
    TOKENIZER_V010,
    V040SIZE,
    fixed_width_onnx,
    need_shared,
    short_position_checkpoint,
)

from mailwoman_eval.checkpoints.onnx_backend import OnnxBackend
from mailwoman_eval.checkpoints.pytorch_dir import PytorchBackend
from mailwoman_eval.checkpoints.torchfile import load_state_dict
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.golden import load_golden
from mailwoman_eval.tokenizer import MAX_LENGTH, Tokenizer


@pytest.fixture(scope="module")
def test_ids():
    need_shared()
    tok = Tokenizer(TOKENIZER_V010)
    gset = load_golden(GOLDEN_V012 / "test")
    return [np.asarray(tok.encode(e.raw).ids[:MAX_LENGTH], dtype=np.int64) for e in gset.entries]


def test_state_dict_reader_matches_torch_load_for_every_checkpoint(shared):
    torch = pytest.importorskip("torch")
    files = sorted(shared.glob("checkpoints/*/step-*/pytorch_model.bin"))
    assert len(files) == 4
    for f in files:
        ours, dtypes = load_state_dict(f)
        ref = torch.load(f, map_location="cpu", weights_only=True)
        assert list(ours) == list(ref)
        for k, v in ref.items():
            assert np.array_equal(ours[k], v.float().numpy(), equal_nan=True), (f, k)
    assert load_state_dict(TINY_BF16 / "pytorch_model.bin")[1] == {"bfloat16"}


def test_v040_size_checkpoint_has_the_real_parameter_count(shared):
    b = PytorchBackend(V040SIZE)
    assert b.info["params"] == 8_874_232
    assert b.labels_source == "config.json id2label" and len(b.labels) == 21


@pytest.mark.parametrize("engine", ["onnx", "numpy", "torch"])
def test_tiny_fp32_logits_equal_upstream_onnx_export_and_decodes_match(test_ids, engine):
    if engine == "torch":
        pytest.importorskip("torch")
    ours = PytorchBackend(TINY_STEP, engine=engine).infer(test_ids)
    onnx = OnnxBackend(TINY / "onnx" / "model.onnx", pad_to="own").infer(test_ids)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, onnx, strict=True))
    assert diff <= 1e-4
    assert all((a.argmax(-1) == b.argmax(-1)).all() for a, b in zip(ours, onnx, strict=True))


def test_fused_graph_gives_the_plain_graphs_logits_for_the_v040_size_checkpoint(test_ids):
    """BiasGelu (the default graph) against the plain Erf graph, same weights, batches of 64."""
    import onnxruntime as ort

    from mailwoman_eval.checkpoints.backend import length_batches, pad_batch
    from mailwoman_eval.checkpoints.onnx_build import build_encoder_onnx
    from mailwoman_eval.checkpoints.pytorch_dir import read_config

    state, _ = load_state_dict(V040SIZE / "pytorch_model.bin")
    cfg = read_config(V040SIZE / "config.json")
    plain, fused = (
        ort.InferenceSession(build_encoder_onnx(state, cfg, fused=f), providers=["CPUExecutionProvider"]) for f in (False, True)
    )
    worst = 0.0
    for rows in length_batches([len(x) for x in test_ids]):
        x, m = pad_batch(test_ids, rows, 0)
        feed = {"input_ids": x, "attention_mask": m}
        a, b = plain.run(["logits"], feed)[0], fused.run(["logits"], feed)[0]
        worst = max(worst, float(np.abs(a - b)[m.astype(bool)].max()))
    assert worst <= 1e-5


def test_bf16_copy_decodes_at_least_99_percent_of_pieces_like_fp32(test_ids):
    fp32 = PytorchBackend(TINY_STEP).infer(test_ids)
    bf16 = PytorchBackend(TINY_BF16).infer(test_ids)
    same = sum(int((a.argmax(-1) == b.argmax(-1)).sum()) for a, b in zip(fp32, bf16, strict=True))
    total = sum(len(a) for a in fp32)
    assert same / total >= 0.99


def test_fp32_torch_and_upstream_onnx_give_identical_runs_on_test_split(tmp_path, shared):
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint
    from mailwoman_eval.evaluate import EvalOptions, evaluate
    from mailwoman_eval.profiles import RUNTIME

    gset = load_golden(GOLDEN_V012 / "test", "v0.1.2/test")
    opts = EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010), use_cache=False)
    a = evaluate(resolve_checkpoint(str(TINY_STEP)), gset, opts, tmp_path / "a")
    b = evaluate(resolve_checkpoint(str(TINY / "onnx" / "model.onnx")), gset, opts, tmp_path / "b")  # + sidecar
    assert a.meta["decode"]["transitions"] == "learned" and b.meta["decode"]["transitions"] == "sidecar"
    assert [p["labels"] for p in a.predictions] == [p["labels"] for p in b.predictions]


def test_upstream_onnx_export_is_batchable_by_trial_and_int8_is_fed_padded(shared):
    fp32 = OnnxBackend(TINY / "onnx" / "model.onnx")
    assert fp32.batchable and fp32.info["padding"] == "within-batch" and not fp32.int8
    int8 = OnnxBackend(TINY / "onnx" / "model.int8.onnx")
    assert int8.int8 and int8.info["padding"] == "pad-to-128"
    assert int8.crf is not None and int8.crf.source == "sidecar"


def test_a_graph_with_a_fixed_sequence_length_is_fed_at_that_length(tmp_path, test_ids):
    fixed = OnnxBackend(fixed_width_onnx(tmp_path, MAX_LENGTH))
    assert fixed.fixed_width == MAX_LENGTH and not fixed.batchable
    assert fixed.info["padding"] == "pad-to-128" and fixed.info["fixed_sequence_length"] == MAX_LENGTH
    assert OnnxBackend(fixed.model_path, pad_to="128").info["padding"] == "pad-to-128"
    dynamic = OnnxBackend(TINY / "onnx" / "model.onnx", pad_to="128")
    rows = test_ids[:40]
    for a, b in zip(fixed.infer(rows), dynamic.infer(rows), strict=True):
        # the same feed as the dynamic graph padded to 128 (static shapes let onnxruntime fuse
        # differently: ulp-level differences, the same argmax)
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
        assert (a.argmax(-1) == b.argmax(-1)).all()
    with pytest.raises(MwevalError, match="fixes the sequence length at 128"):
        OnnxBackend(fixed.model_path, pad_to="own")
    short = OnnxBackend(fixed_width_onnx(tmp_path, 16))
    long_rows = [x for x in test_ids if len(x) > 16][:3]
    with pytest.raises(MwevalError, match="more pieces than the graph's fixed sequence length 16"):
        short.infer(long_rows)


@pytest.mark.parametrize("engine", ["onnx", "numpy", "torch"])
def test_rows_longer_than_the_position_table_are_refused_by_name(tmp_path, test_ids, engine):
    """A checkpoint with max_position_embeddings 16: upstream raises on longer rows as well; here
    it is one error naming the config, not a broadcast failure inside the engine."""
    pytest.importorskip("torch")
    d = short_position_checkpoint(tmp_path / "maxpos16", 16)
    b = PytorchBackend(d, engine=engine)
    short = [x for x in test_ids if len(x) <= 16][:5]
    assert [len(x) for x in b.infer(short)] == [len(x) for x in short]
    with pytest.raises(MwevalError, match="more pieces than the checkpoint's max_position_embeddings 16") as e:
        b.infer(test_ids[:50])
    assert "config.json" in str(e.value)


def test_en_us_package_zero_feeds_ten_side_channels_and_refuses_batches(shared):
    b = OnnxBackend(EN_US / "model.onnx", pad_to="own")
    assert len(b.info["zero_fed_inputs"]) == 10
    assert not b.batchable
    assert b.labels_source == "model-card.json labels" and len(b.labels) == 33
    assert any(w.startswith("OUT OF DISTRIBUTION") for w in b.warnings)
    assert b.info["package"]["version"] == "10.0.0" and b.info["model_card"]["version"] == "9.1.0"


def test_state_dict_not_matching_config_lists_the_keys(tmp_path, shared):
    d = tmp_path / "step-000001"
    shutil.copytree(TINY_STEP, d, ignore=shutil.ignore_patterns("optimizer.pt"))
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_hidden_layers"] = 3
    cfg["hidden_size"] = 32
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(MwevalError) as e:
        PytorchBackend(d)
    msg = e.value.one_line
    assert "missing keys: blocks.2.ln1.weight" in msg and "shape mismatches" in msg and "pytorch_model.bin" in msg


def test_recorded_sha256s_are_of_the_bytes_evaluated_when_the_checkpoint_is_rewritten_mid_load(tmp_path, monkeypatch, test_ids):
    """A checkpoint rewritten while it loads (a sweep over a live training run) is recorded with the
    sha256 of the bytes that were parsed, not of what is on disk after: config.json was hashed again
    after the weights were read, and the weights were parsed from the path."""
    import hashlib

    from mailwoman_eval.checkpoints import pytorch_dir

    step = tmp_path / "step-000300"
    shutil.copytree(TINY_STEP, step)
    other = sorted(p for p in TINY.glob("step-*") if p.name != TINY_STEP.name)[0]
    before = {f: hashlib.sha256((step / f).read_bytes()).hexdigest() for f in ("config.json", "pytorch_model.bin")}
    real = pytorch_dir.load_state_dict

    def rewritten_meanwhile(path, *args):
        shutil.copy(other / "pytorch_model.bin", step / "pytorch_model.bin")
        cfg = json.loads((step / "config.json").read_text(encoding="utf-8"))
        (step / "config.json").write_text(json.dumps({**cfg, "note": "rewritten"}), encoding="utf-8")
        return real(path, *args)

    monkeypatch.setattr(pytorch_dir, "load_state_dict", rewritten_meanwhile)
    backend = PytorchBackend(step, engine="numpy")
    assert backend.info["sha256"] == backend.info["files"]["pytorch_model.bin"] == before["pytorch_model.bin"]
    assert backend.info["files"]["config.json"] == before["config.json"]
    assert hashlib.sha256((step / "pytorch_model.bin").read_bytes()).hexdigest() != before["pytorch_model.bin"]
    # and the weights evaluated are the ones hashed
    ids = test_ids[:20]
    want = PytorchBackend(TINY_STEP, engine="numpy").infer(ids)
    assert all(np.array_equal(a, b) for a, b in zip(backend.infer(ids), want, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(PytorchBackend(other, engine="numpy").infer(ids), want, strict=True))
