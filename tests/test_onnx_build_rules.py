"""The three engines of a PyTorch checkpoint, pinned to the upstream module and to each other.

onnx_build.py (the default engine's graph, built from the state dict), numpy_encoder.py (the numpy
engine's forward) and model.py (the upstream-compatible nn.Module that `--engine torch` runs and
scripts/train_demo.py trains), against upstream-formats.md §1.2 (config.json keys and the defaults
of missing ones), §1.4 (forward: positions from 0, pre-norm blocks, key-padding mask, LayerNorm eps
1e-5, exact GELU; loss: CE + crf_loss_weight × CRF NLL, per_sequence or per_token), §1.5 (the
v0.4.0 parameter count) and §1.6 (CRF masks, U(-0.1, 0.1) init), and the module docstrings (the
fused BiasGelu graph is the default, weights go out as external data; numpy's erf accuracy).

The truth is upstream's: the real tiny and v0.4.0-size checkpoints under ../shared, torch's own
nn.MultiheadAttention / LayerNorm / GELU, and, for the loss, a float64 forward algorithm over the
real checkpoint's CRF on golden v0.1.2 rows with their gold labels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import GOLDEN_V012, TINY_STEP, TOKENIZER_V010, V040SIZE, need_shared

from mailwoman_eval.align import gold_bio
from mailwoman_eval.checkpoints.backend import pad_batch
from mailwoman_eval.checkpoints.numpy_encoder import NumpyEncoder, erf, gelu, layer_norm
from mailwoman_eval.checkpoints.onnx_build import build_encoder_onnx
from mailwoman_eval.checkpoints.pytorch_dir import PytorchBackend, labels_from_config, read_config
from mailwoman_eval.checkpoints.torchfile import load_state_dict
from mailwoman_eval.golden import load_golden
from mailwoman_eval.labels import STAGE2_TAGS, V040_LABELS
from mailwoman_eval.tokenizer import MAX_LENGTH, Tokenizer


@pytest.fixture(scope="module")
def rows() -> list[tuple[np.ndarray, np.ndarray]]:
    """(piece ids, gold label ids) of golden v0.1.2/test, truncated to 128 pieces as upstream eval does."""
    need_shared()
    tok = Tokenizer(TOKENIZER_V010)
    index = {lab: i for i, lab in enumerate(V040_LABELS)}
    out = []
    for e in load_golden(GOLDEN_V012 / "test").entries:
        enc = tok.encode(e.raw)
        gold = gold_bio(e.raw, e.components, STAGE2_TAGS, enc, MAX_LENGTH)
        out.append((np.asarray(enc.ids[:MAX_LENGTH], dtype=np.int64), np.asarray([index[g] for g in gold], dtype=np.int64)))
    return out


def checkpoint(d) -> tuple[dict[str, np.ndarray], dict, list[str]]:
    state, _ = load_state_dict(d / "pytorch_model.bin")
    cfg = read_config(d / "config.json")
    return state, cfg, labels_from_config(cfg, str(d))[0]


def torch_model(cfg: dict, labels: list[str], state: dict[str, np.ndarray] | None = None):
    torch = pytest.importorskip("torch")
    from mailwoman_eval.checkpoints.model import MailwomanCoarseEncoder

    model = MailwomanCoarseEncoder(cfg, labels)
    if state is not None:
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    return model.eval()


def torch_logits(model, x: np.ndarray, m: np.ndarray | None) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(x), None if m is None else torch.from_numpy(m)).numpy()


def onnx_session(state: dict[str, np.ndarray], cfg: dict, **kw):
    """An onnxruntime session on the built graph; `external=True` feeds the weights as PytorchBackend does."""
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    if kw.pop("external", False):
        weights: dict[str, np.ndarray] = {}
        graph = build_encoder_onnx(state, cfg, external=weights, **kw)
        so.add_external_initializers(list(weights), [ort.OrtValue.ortvalue_from_numpy(a) for a in weights.values()])
        sess = ort.InferenceSession(graph, sess_options=so, providers=["CPUExecutionProvider"])
        return lambda x, m, keep=weights: sess.run(["logits"], {"input_ids": x, "attention_mask": m})[0]
    sess = ort.InferenceSession(build_encoder_onnx(state, cfg, **kw), sess_options=so, providers=["CPUExecutionProvider"])
    return lambda x, m: sess.run(["logits"], {"input_ids": x, "attention_mask": m})[0]


# --- the forward pass ------------------------------------------------------------------------


def test_every_engine_gives_torchs_logits_at_the_v040_size_through_the_public_loader(rows):
    """§1.4 at the real size (6 layers, 4 heads of 64): the default onnx engine, numpy and torch give
    the same logits to <= 1e-4 and the same argmax on length-bucketed padded batches."""
    pytest.importorskip("torch")
    ids = [x for x, _ in rows[:96]]
    out = {e: PytorchBackend(V040SIZE, engine=e).infer(ids) for e in ("onnx", "numpy", "torch")}
    for engine in ("onnx", "numpy"):
        diff = max(float(np.abs(a - b).max()) for a, b in zip(out[engine], out["torch"], strict=True))
        assert diff <= 1e-4, engine
        assert all((a.argmax(-1) == b.argmax(-1)).all() for a, b in zip(out[engine], out["torch"], strict=True)), engine
    assert [a.shape for a in out["onnx"]] == [(len(x), 21) for x in ids]


@pytest.mark.parametrize("engine", ["onnx-fused", "onnx-plain", "numpy", "torch"])
def test_padding_is_hidden_by_the_attention_mask_whatever_ids_it_holds(rows, engine):
    """The key-padding mask (attention_mask == 0), not the pad id, keeps padding out of every real
    position: a batch padded with arbitrary ids gives each row's logits at its own length, and a row
    with no padding gives the same logits with the mask all ones as with no mask (upstream's default)."""
    state, cfg, labels = checkpoint(TINY_STEP)
    if engine == "torch":
        model = torch_model(cfg, labels, state)

        def forward(x, m):
            return torch_logits(model, x, m)
    elif engine == "numpy":
        forward = NumpyEncoder(state, cfg)
    else:
        forward = onnx_session(state, cfg, external=True) if engine == "onnx-fused" else onnx_session(state, cfg, fused=False)
    picked = [i for i in range(len(rows)) if 3 <= len(rows[i][0]) <= 40][:24]
    x, m = pad_batch([r[0] for r in rows], picked, 0)
    assert (m == 0).sum() > 100  # real padding in this batch
    x[m == 0] = (np.arange(x.size).reshape(x.shape) * 7919 % 15000 + 500)[m == 0]  # not the pad id
    batched = forward(x, m)
    assert batched.shape == (len(picked), x.shape[1], 21) and batched.dtype == np.float32
    for r, i in enumerate(picked):
        n = len(rows[i][0])
        alone = forward(rows[i][0][None], np.ones((1, n), dtype=np.int64))[0]
        np.testing.assert_allclose(batched[r, :n], alone, atol=2e-5, rtol=0)
    if engine == "torch":
        full = rows[picked[0]][0][None]
        np.testing.assert_allclose(torch_logits(model, full, None), torch_logits(model, full, np.ones_like(full)), atol=1e-5, rtol=0)


def test_positions_start_at_zero_and_the_whole_table_is_usable(rows):
    """§1.4: position i of a row adds position_embeddings[i] (no offset) and a row as long as the table
    (max_position_embeddings, 128 here) runs on every engine; one piece more is refused by name by
    numpy and torch, as upstream raises."""
    pytest.importorskip("torch")
    state, cfg, labels = checkpoint(TINY_STEP)
    assert cfg["max_position_embeddings"] == 128
    long_row = np.concatenate([r[0] for r in rows])[:128][None]
    mask = np.ones_like(long_row)
    model = torch_model(cfg, labels, state)
    want = torch_logits(model, long_row, mask)
    np.testing.assert_allclose(NumpyEncoder(state, cfg)(long_row, mask), want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_session(state, cfg, external=True)(long_row, mask), want, atol=1e-4, rtol=0)
    over = np.concatenate([long_row, long_row[:, :1]], axis=1)
    with pytest.raises(ValueError, match="^sequence of 129 pieces exceeds max_position_embeddings 128$"):
        NumpyEncoder(state, cfg)(over, np.ones_like(over))
    with pytest.raises(ValueError, match="^sequence of 129 pieces exceeds max_position_embeddings$"):
        torch_logits(model, over, np.ones_like(over))


def test_numpy_erf_gelu_and_layer_norm_are_the_exact_ones_at_float32():
    """numpy_encoder: erf within the documented 5.3e-7 of the true erf over [-8, 8], odd and 0 at 0;
    GELU the exact-erf one torch's nn.GELU() computes (not the tanh approximation); LayerNorm with
    eps 1e-5 (§1.4), visible on rows whose variance is of the order of eps."""
    torch = pytest.importorskip("torch")
    x = np.linspace(-8, 8, 160001, dtype=np.float32)
    true = np.array([math.erf(float(v)) for v in x])
    assert np.abs(erf(x).astype(np.float64) - true).max() <= 5.3e-7
    assert erf(np.float32(0.0)) == 0.0 and np.array_equal(erf(-x), -erf(x))
    got = gelu(x)
    np.testing.assert_allclose(got, torch.nn.functional.gelu(torch.from_numpy(x)).numpy(), atol=2e-6, rtol=0)
    assert abs(float(gelu(np.float32(1.0))) - 0.8413447460685429) < 1e-6  # exact: x·Φ(x); tanh form gives 0.841192
    rng = np.random.default_rng(7)
    rows = (rng.standard_normal((6, 64)) * np.array([1e-3, 3e-3, 1e-2, 0.1, 1.0, 10.0])[:, None] + 0.5).astype(np.float32)
    w, b = rng.standard_normal(64).astype(np.float32), rng.standard_normal(64).astype(np.float32)
    want = torch.nn.functional.layer_norm(torch.from_numpy(rows), (64,), torch.from_numpy(w), torch.from_numpy(b), eps=1e-5).numpy()
    np.testing.assert_allclose(layer_norm(rows, w, b), want, atol=2e-5, rtol=1e-5)


# --- the graph's structure (onnx_build docstring, docs/benchmarks.md) ---------------------------


def test_the_default_graph_is_the_fused_one_with_the_weights_outside_it():
    """build_encoder_onnx: by default the FFN's bias + GELU is one com.microsoft BiasGelu per layer (no
    Erf), `fused=False` is the plain Erf graph without the contrib domain; with `external`, the large
    weights are declared external (the serialized graph holds none of the ~35 MB) and handed back by
    name, as float32 arrays of the state dict's values (the projections transposed)."""
    import onnx

    state, cfg, _ = checkpoint(V040SIZE)
    weights: dict[str, np.ndarray] = {}
    fused = onnx.load_from_string(build_encoder_onnx(state, cfg, external=weights))
    ops = [n.op_type for n in fused.graph.node]
    assert ops.count("BiasGelu") == 6 and "Erf" not in ops
    assert {n.domain for n in fused.graph.node if n.op_type == "BiasGelu"} == {"com.microsoft"}
    assert ops.count("LayerNormalization") == 2 * 6 + 2
    assert {a.f for n in fused.graph.node if n.op_type == "LayerNormalization" for a in n.attribute if a.name == "epsilon"} == {
        np.float32(1e-5)
    }
    plain = onnx.load_from_string(build_encoder_onnx(state, cfg, fused=False))
    ops = [n.op_type for n in plain.graph.node]
    assert ops.count("Erf") == 6 and "BiasGelu" not in ops
    assert {o.domain for o in plain.opset_import} == {""} and {o.domain for o in fused.opset_import} == {"", "com.microsoft"}
    assert [i.name for i in fused.graph.input] == ["input_ids", "attention_mask"] and [o.name for o in fused.graph.output] == ["logits"]
    external = [t.name for t in fused.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert sorted(external) == sorted(weights) and "token_embeddings.weight" in weights
    assert sum(a.nbytes for a in weights.values()) > 35_000_000 > fused.ByteSize() * 100
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in weights.values())
    np.testing.assert_array_equal(weights["blocks.3.ff.0.weight.T"], state["blocks.3.ff.0.weight"].T)
    np.testing.assert_array_equal(weights["token_embeddings.weight"], state["token_embeddings.weight"])


# --- model.py: configuration, parameters, loss -------------------------------------------------

OPTIONAL = ("hidden_dropout_prob", "pad_token_id", "use_crf", "label_smoothing", "crf_loss_weight", "crf_normalization", "class_weights")


def test_the_v040_config_builds_8874232_parameters_and_missing_keys_take_the_v020_defaults():
    """§1.5: the v0.4.0-size config builds 8,874,232 parameters (CRF masks are buffers, not counted).
    §1.2: without the optional keys the model has no CRF, dropout 0.1 (MHA's too), pad id 0; a null
    pad_token_id means 0, and the pad id's embedding row starts at zero (padding_idx). §1.6: the CRF
    starts from U(-0.1, 0.1) and holds the BIO masks as persistent buffers."""
    torch = pytest.importorskip("torch")
    from mailwoman_eval.checkpoints.model import count_parameters
    from mailwoman_eval.decode import python_masks

    _, cfg, labels = checkpoint(V040SIZE)
    torch.manual_seed(0)
    full = torch_model(cfg, labels)
    assert count_parameters(full) == 8_874_232
    crf = full.crf
    for p in (crf.transitions.detach(), crf.start_transitions.detach(), crf.end_transitions.detach()):
        assert -0.1 <= float(p.min()) < -0.05 and 0.05 < float(p.max()) <= 0.1
    mask, start = python_masks(labels)
    assert np.array_equal(crf.transition_mask.numpy(), mask) and np.array_equal(crf.start_mask.numpy(), start)
    assert {"crf.transition_mask", "crf.start_mask"} <= set(full.state_dict())
    bare = {k: v for k, v in cfg.items() if k not in OPTIONAL}
    model = torch_model(bare, labels)
    assert model.crf is None and model.class_weights is None
    assert count_parameters(model) == 8_874_232 - 483
    drops = [mod.p for mod in model.modules() if isinstance(mod, torch.nn.Dropout)] + [b.attn.dropout for b in model.blocks]
    assert drops == [0.1] * (1 + 6 * 2 + 6)
    assert torch_model({**cfg, "hidden_dropout_prob": 0.25}, labels).input_dropout.p == 0.25
    for pad, want in ((None, 0), (0, 0), (3, 3)):
        m = torch_model({**bare, "pad_token_id": pad}, labels)
        assert m.pad_token_id == want and m.token_embeddings.padding_idx == want
        assert not m.token_embeddings.weight[want].any() and m.token_embeddings.weight[want + 1].any()


def crf_nll(logits: np.ndarray, gold: np.ndarray, state: dict[str, np.ndarray]) -> float:
    """-log p(gold | logits) under upstream's CRF (§1.6), in float64 by the forward algorithm."""
    trans = state["crf.transitions"].astype(np.float64) + state["crf.transition_mask"]
    start = state["crf.start_transitions"].astype(np.float64) + state["crf.start_mask"]
    end = state["crf.end_transitions"].astype(np.float64)
    e = logits.astype(np.float64)
    alpha = start + e[0]
    for t in range(1, len(e)):
        alpha = np.logaddexp.reduce(alpha[:, None] + trans, axis=0) + e[t]
    log_z = np.logaddexp.reduce(alpha + end)
    score = start[gold[0]] + e[0, gold[0]] + end[gold[-1]]
    score += sum(trans[gold[t - 1], gold[t]] + e[t, gold[t]] for t in range(1, len(e)))
    assert np.isfinite(score)  # gold_bio's labels are valid BIO paths
    return float(log_z - score)


def cross_entropy(logits: np.ndarray, gold: np.ndarray, weight: np.ndarray, smoothing: float) -> float:
    """torch's documented CE with class weights and label smoothing, mean over the weighted targets."""
    z = logits.astype(np.float64)
    lp = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
    den = weight[gold].sum()
    hit = (weight[gold] * -lp[np.arange(len(gold)), gold]).sum() / den
    smooth = (-(lp * weight).sum(1)).sum() / lp.shape[1] / den
    return float((1 - smoothing) * hit + smoothing * smooth)


@pytest.mark.parametrize(
    "changes, weight, smoothing, norm",
    [
        ({}, 0.05, 0.0, "per_sequence"),  # the checkpoint's own config
        ({"crf_loss_weight": None, "crf_normalization": None, "label_smoothing": None, "class_weights": None}, 0.1, 0.0, "per_sequence"),
        ({"crf_normalization": "per_token", "label_smoothing": 0.1, "class_weights": {"B-street": 2.0, "I-locality": 0.5}}, 0.05, 0.1,
         "per_token"),
        ({"use_crf": False}, 0.0, 0.0, "per_sequence"),
    ],
    ids=["checkpoint-config", "defaults", "per-token-smoothed-weighted", "no-crf"],
)
def test_the_training_loss_is_cross_entropy_plus_the_weighted_crf_nll(rows, changes, weight, smoothing, norm):
    """§1.4: loss = CE(ignore_index -100, label_smoothing, weight=class_weights) + crf_loss_weight × CRF
    NLL, the NLL averaged over sequences (per_sequence, the default) or summed over real pieces
    (per_token); missing keys default to 0.1, per_sequence, 0.0 (§1.2). Real tiny weights, a batch of
    golden rows of different lengths padded with label -100, gold labels as upstream aligns them."""
    torch = pytest.importorskip("torch")
    state, cfg, labels = checkpoint(TINY_STEP)
    cfg = {k: v for k, v in {**cfg, **changes}.items() if v is not None or k == "class_weights"}
    keep = {k: v for k, v in state.items() if cfg.get("use_crf") or not k.startswith("crf.")}
    class_weights = np.array([float((cfg.get("class_weights") or {}).get(lab, 1.0)) for lab in labels])
    if cfg.get("class_weights"):  # a label the dict does not name weighs 1
        np.testing.assert_array_equal(torch_model(cfg, labels).class_weights.numpy(), class_weights.astype(np.float32))
        keep["class_weights"] = class_weights.astype(np.float32)
    model = torch_model(cfg, labels, keep)
    picked = [0, 5, 9, 17, 33, 61, 80, 120]
    x, m = pad_batch([r[0] for r in rows], picked, 0)
    y = np.full(x.shape, -100, dtype=np.int64)
    for r, i in enumerate(picked):
        y[r, : len(rows[i][1])] = rows[i][1]
    assert len({len(rows[i][0]) for i in picked}) > 4 and (m == 0).any()
    logits = torch_logits(model, x, m)
    real = m.astype(bool)
    want = cross_entropy(logits[real], y[real], class_weights, smoothing)
    if weight:
        nll = [crf_nll(logits[r, : m[r].sum()], y[r, : m[r].sum()], state) for r in range(len(picked))]
        want += weight * (sum(nll) / m.sum() if norm == "per_token" else float(np.mean(nll)))
    with torch.no_grad():
        got = float(model.loss(torch.from_numpy(x), torch.from_numpy(m), torch.from_numpy(y)))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_a_gold_path_the_bio_masks_forbid_costs_a_large_finite_loss_not_inf(rows):
    """model.py's CRF NLL: the -inf BIO masks are replaced by a large finite negative in the gold path
    score, so gold labels that start on I-* or put I-street after O (a row a bad realignment could
    produce) cost a large loss that still trains, not inf / NaN for the whole batch."""
    torch = pytest.importorskip("torch")
    state, cfg, labels = checkpoint(TINY_STEP)
    model = torch_model(cfg, labels, state)
    picked = [0, 5]
    x, m = pad_batch([r[0] for r in rows], picked, 0)
    y = np.full(x.shape, -100, dtype=np.int64)
    for r, i in enumerate(picked):
        y[r, : len(rows[i][1])] = rows[i][1]
    valid = float(model.loss(torch.from_numpy(x), torch.from_numpy(m), torch.from_numpy(y)).detach())
    y[0, 0] = labels.index("I-street")  # starts on I-*
    first_o = int(np.flatnonzero(y[1] == 0)[0])
    y[1, first_o + 1] = labels.index("I-street")  # O then I-street
    assert y[1, first_o] == 0 and m[1, first_o + 1] == 1
    bad = float(model.loss(torch.from_numpy(x), torch.from_numpy(m), torch.from_numpy(y)).detach())
    assert math.isfinite(bad) and bad > valid + cfg["crf_loss_weight"] * 1000


def test_sharp_attention_with_scores_in_the_hundreds_still_gives_torchs_logits(rows):
    """A checkpoint whose attention logits reach the hundreds (here: the tiny one with its query
    projections scaled by 40) overflows a softmax that exponentiates raw scores; the numpy and onnx
    engines' softmax is the stable one torch's is, and the logits still agree."""
    pytest.importorskip("torch")
    state, cfg, labels = checkpoint(TINY_STEP)
    H = cfg["hidden_size"]
    for i in range(cfg["num_hidden_layers"]):
        w = state[f"blocks.{i}.attn.in_proj_weight"].copy()
        w[:H] *= 40
        state[f"blocks.{i}.attn.in_proj_weight"] = w
    picked = [i for i in range(len(rows)) if 20 <= len(rows[i][0]) <= 40][:8]
    x, m = pad_batch([r[0] for r in rows], picked, 0)
    want = torch_logits(torch_model(cfg, labels, state), x, m)
    real = m.astype(bool)
    assert np.isfinite(want).all()
    for got in (NumpyEncoder(state, cfg)(x, m), onnx_session(state, cfg, external=True)(x, m)):
        np.testing.assert_allclose(got[real], want[real], atol=5e-4, rtol=0)
