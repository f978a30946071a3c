"""Hostile checkpoints: crafted model files that asked for gigabytes, hung, raised tracebacks or
scored F1 0 with exit 0. Each case drives the real CLI and must end with exit 2 and one stderr line
`mweval: error: <file>: <what>`, leaving nothing behind (docs/robustness.md, "Hostile checkpoints").

Memory bombs are built small: they declare huge sizes, and a guard fails the test if the code would
go on to allocate them, so the unfixed code fails fast instead of eating the machine. FIFOs run in a
subprocess with a timeout (the unfixed code blocked in open() forever), as do cases whose failure
passes through onnxruntime (it may print on file descriptor 2 behind Python's back).
"""

from __future__ import annotations

import collections
import functools
import io
import json
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from clicases import assert_one_line_error, invoke, snapshot, undocumented
from conftest import EN_US, TINY, TINY_STEP, TOKENIZER_V010, need_shared

GOOD = {
    "raw": "12 Main St, Springfield, IL 62701",
    "components": {"house_number": "12", "street": "Main St", "locality": "Springfield", "region": "IL", "postcode": "62701"},
}
GOOD2 = {
    "raw": "5 Rue de la Paix, 75002 Paris",
    "components": {"house_number": "5", "street": "Rue de la Paix", "postcode": "75002", "locality": "Paris"},
}
BIG_INT = "1" * 5000  # Python 3.11+: json refuses ints over 4300 digits with a plain ValueError
SIDECAR = TINY / "onnx" / "crf-transitions.json"


@dataclass
class Ctx:
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    def golden(self) -> Path:
        d = self.tmp / "g"
        d.mkdir(exist_ok=True)
        (d / "g.jsonl").write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD2) + "\n", encoding="utf-8")
        return d

    def eval(self, ckpt: Path, *extra: str, tokenizer: Path | None = TOKENIZER_V010) -> list[str]:
        args = ["eval", "--ckpt", str(ckpt), "--golden", str(self.golden()), "--out", str(self.out), "-q", "--no-cache"]
        return args + (["--tokenizer", str(tokenizer)] if tokenizer else []) + list(extra)

    def config(self, **changes) -> dict:
        cfg = json.loads((TINY_STEP / "config.json").read_text())
        cfg.update(changes)
        return cfg

    def ckpt(self, config: dict | str | None = None, bin_bytes: bytes | None = None, state: dict | None = None,
             name: str = "ck") -> Path:
        """A step dir: config.json (edited or verbatim) + weights (given bytes, a torch.save of `state`,
        or the tiny checkpoint's, linked)."""
        d = self.tmp / name
        d.mkdir()
        cfg = self.config() if config is None else config
        (d / "config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
        if state is not None:
            import torch

            torch.save(state, d / "pytorch_model.bin")
        elif bin_bytes is not None:
            (d / "pytorch_model.bin").write_bytes(bin_bytes)
        else:
            (d / "pytorch_model.bin").symlink_to(TINY_STEP / "pytorch_model.bin")
        return d

    def onnx_dir(self, card: dict | str | None = None, sidecar: dict | str | None = None, model: Path | None = None,
                 name: str = "onx") -> Path:
        """The tiny ONNX export (linked, or `model`) with an optional model card and CRF sidecar."""
        d = self.tmp / name
        d.mkdir()
        (d / "model.onnx").symlink_to(model or TINY / "onnx" / "model.onnx")
        for fname, obj in (("model-card.json", card), ("crf-transitions.json", sidecar)):
            if obj is not None:
                (d / fname).write_text(obj if isinstance(obj, str) else json.dumps(obj))
        return d


def tiny_state() -> dict:
    import torch

    return torch.load(TINY_STEP / "pytorch_model.bin", map_location="cpu", weights_only=True)


def sidecar(**changes) -> dict:
    obj = json.loads(SIDECAR.read_text())
    obj.update(changes)
    return obj


def card(labels) -> dict:
    return {"version": "0.0.1", "labels": labels}


def tiny_labels() -> list[str]:
    return json.loads(SIDECAR.read_text())["labels"]


# --- crafted archives ------------------------------------------------------------------------


def torch_bytes(obj, **kw) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def rezip(data: bytes, replace: dict[str, bytes] | None = None, method: int = zipfile.ZIP_STORED) -> bytes:
    """A torch archive rewritten: members whose name ends with a key of `replace` get its bytes."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            for suffix, new in (replace or {}).items():
                if info.filename.endswith(suffix):
                    body = new
            dst.writestr(info.filename, body, compress_type=method)
    return buf.getvalue()


def patch_member(data: bytes, suffix: str, flag_or: int = 0, method: int | None = None) -> bytes:
    """Set general-purpose flag bits or the compression method of one member, in its local header
    and its central directory entry (the archive stays otherwise valid)."""
    b = bytearray(data)
    for info in zipfile.ZipFile(io.BytesIO(data)).infolist():
        if info.filename.endswith(suffix):
            h = info.header_offset
            if flag_or:
                b[h + 6 : h + 8] = struct.pack("<H", struct.unpack("<H", b[h + 6 : h + 8])[0] | flag_or)
            if method is not None:
                b[h + 8 : h + 10] = struct.pack("<H", method)
    i = 0
    while (i := b.find(b"PK\x01\x02", i)) != -1:
        n = struct.unpack("<H", b[i + 28 : i + 30])[0]
        if bytes(b[i + 46 : i + 46 + n]).decode().endswith(suffix):
            if flag_or:
                b[i + 8 : i + 10] = struct.pack("<H", struct.unpack("<H", b[i + 8 : i + 10])[0] | flag_or)
            if method is not None:
                b[i + 10 : i + 12] = struct.pack("<H", method)
        i += 4
    return bytes(b)


def _rebuild_tensor_v2(*args):  # pickled under this module's name, then renamed to torch._utils's
    raise AssertionError("never called")


class _FakeTensor:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return _rebuild_tensor_v2, self.args


def list_storage_bin() -> bytes:
    """data.pkl passing `([0.0] * 16, "FloatStorage")` (a list) where a storage goes: the layout
    checks passed, then `arr.dtype` raised AttributeError."""
    obj = collections.OrderedDict(w=_FakeTensor(([0.0] * 16, "FloatStorage"), 0, (4,), (1,), False, collections.OrderedDict()))
    pkl = pickle.dumps(obj, protocol=2)
    ours = f"c{_rebuild_tensor_v2.__module__}\n{_rebuild_tensor_v2.__qualname__}\n".encode()
    assert ours in pkl
    pkl = pkl.replace(ours, b"ctorch._utils\n_rebuild_tensor_v2\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
    return buf.getvalue()


def shared_storage_bin() -> bytes:
    """600 tensors viewing one 1000-element storage (a 4 KB storage; each tensor was copied: 600x)."""
    import torch

    big = torch.zeros(1000)
    return torch_bytes({f"token_embeddings.weight{i}": big[:] for i in range(600)})


def bomb_storage_bin() -> bytes:
    """The tensor declares 4 elements (16 bytes); its storage member inflates to 4 MB of zeros
    (the audit's 1.5 MB file inflated 1.6 GB)."""
    import torch

    return rezip(torch_bytes({"token_embeddings.weight": torch.zeros(4)}), {"/data/0": bytes(4 << 20)}, zipfile.ZIP_DEFLATED)


def deflated_zeros_bin() -> bytes:
    """A storage of 1M zeros whose size matches its header, deflated ~1000x (a zip bomb that declares
    its size: the header could say 1e9 elements just as well)."""
    import torch

    return rezip(torch_bytes({"token_embeddings.weight": torch.zeros(1 << 20)}), method=zipfile.ZIP_DEFLATED)


# --- hand-built ONNX graphs ------------------------------------------------------------------


def onnx_graph(c: Ctx, variant: str, labels: int = 21, name: str = "model.onnx") -> Path:
    """logits = Gather(E, input_ids) * mask: per-piece scores from the piece id, then a tail that
    gives the variant's shape. Output shapes are left undeclared (onnxruntime warns on fd 2 when a
    declared shape disagrees with the actual one)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    E = np.random.default_rng(0).normal(size=(16000, labels)).astype(np.float32)
    ids_shape: list = ["B", "S"]
    out_type = TensorProto.FLOAT
    inputs_extra = []
    nodes = [
        helper.make_node("Gather", ["E", "input_ids"], ["g"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mf", "ax"], ["mu"]),
        helper.make_node("Mul", ["g", "mu"], ["g2"]),
    ]
    inits = [numpy_helper.from_array(E, "E"), numpy_helper.from_array(np.array([-1], dtype=np.int64), "ax")]
    if variant == "rank2":  # [B, L]
        nodes.append(helper.make_node("ReduceMean", ["g2"], ["logits"], axes=[1], keepdims=0))
    elif variant == "rank4":  # [B, 1, S, L]
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "ax1"))
        nodes.append(helper.make_node("Unsqueeze", ["g2", "ax1"], ["logits"]))
    elif variant == "seq2x":  # [B, 2S, L]
        nodes.append(helper.make_node("Concat", ["g2", "g2"], ["logits"], axis=1))
    elif variant == "seq1":  # [B, 1, L]
        nodes.append(helper.make_node("ReduceMean", ["g2"], ["logits"], axes=[1], keepdims=1))
    elif variant == "plain":
        nodes.append(helper.make_node("Identity", ["g2"], ["logits"]))
    elif variant in ("int64", "bool"):  # scores that are no logits: cast to float, they decoded without a word
        out_type = TensorProto.INT64 if variant == "int64" else TensorProto.BOOL
        nodes.append(helper.make_node("Cast", ["g2"], ["logits"], to=out_type))
    elif variant.startswith("fixed-"):  # input_ids / attention_mask declared [1, N]
        ids_shape = [1, int(variant.split("-")[1])]
        nodes.append(helper.make_node("Identity", ["g2"], ["logits"]))
    elif variant == "side-huge":  # a float side channel declared [B, S, 100000000]
        nodes.append(helper.make_node("Identity", ["g2"], ["logits"]))
        inputs_extra.append(helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["B", "S", 100_000_000]))
    else:
        raise ValueError(variant)
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ids_shape),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ids_shape), *inputs_extra],
        [helper.make_tensor_value_info("logits", out_type, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    d = c.tmp / f"onnx-{variant}"
    d.mkdir()
    onnx.save(model, str(d / name))
    return d / name


def onnx_with_labels(c: Ctx, variant: str, labels: int = 21) -> list[str]:
    path = onnx_graph(c, variant, labels)
    lab = ["O"] + [f"{p}-t{k}" for k in range(max(labels, 3) // 2) for p in "BI"]
    return c.eval(path, "--labels", ",".join(lab[: max(labels, 3)]))  # 0 labels: a valid list of 3


# --- guards: fail fast where the unfixed code would allocate gigabytes -------------------------


def guard_expected_shapes(c: Ctx) -> None:
    from mailwoman_eval.checkpoints import pytorch_dir

    real = pytorch_dir.expected_shapes

    def guarded(cfg):
        assert cfg["num_hidden_layers"] <= 1000, "expected_shapes was asked to build names for 1e9 layers"
        return real(cfg)

    c.monkeypatch.setattr(pytorch_dir, "expected_shapes", guarded)


def guard_onnx_allocations(c: Ctx) -> None:
    from mailwoman_eval.checkpoints.onnx_backend import OnnxBackend

    real_probe, real_zeros = OnnxBackend._probe_batch, OnnxBackend._zeros

    def probe(self):
        assert (self.fixed_width or 0) <= 100_000, f"probing at a fixed width of {self.fixed_width}"
        return real_probe(self)

    def zeros(self, B, S):
        for name, shape in self.extra_inputs:
            assert int(np.prod([d for d in shape[2:] if isinstance(d, int)], dtype=object)) <= 100_000, f"zero-feeding {name} {shape}"
        return real_zeros(self, B, S)

    c.monkeypatch.setattr(OnnxBackend, "_probe_batch", probe)
    c.monkeypatch.setattr(OnnxBackend, "_zeros", zeros)


# --- special files ---------------------------------------------------------------------------


def fifo(p: Path) -> Path:
    os.mkfifo(p)
    return p


def special_in_ckpt(c: Ctx, fname: str, kind: str) -> list[str]:
    """A step dir (or, for model.onnx, a weights package dir) whose `fname` is a FIFO or a symlink to
    /dev/null (a character device like /dev/zero, which never ends; /dev/null ends at once, so the
    unfixed code fails here without eating memory)."""
    if fname == "model.onnx":
        d = c.tmp / "pkg"
        d.mkdir()
        (d / "model-card.json").write_text(json.dumps(card(tiny_labels())))
    elif fname in ("model-card.json", "crf-transitions.json"):
        d = c.onnx_dir()
    else:
        d = c.ckpt()
    target = d / fname
    if target.exists() or target.is_symlink():
        target.unlink()
    if kind == "fifo":
        fifo(target)
    else:
        target.symlink_to("/dev/null")
    ckpt = d / "model.onnx" if fname in ("model-card.json", "crf-transitions.json") else d
    return c.eval(ckpt, tokenizer=None if fname == "tokenizer.model" else TOKENIZER_V010)


def edited_state(*pairs) -> dict:
    """The tiny state dict with each (key, value) pair filled in."""
    import torch

    state = tiny_state()
    for key, value in zip(pairs[::2], pairs[1::2], strict=True):
        state[key] = torch.full_like(state[key], value)
    return state


def lineage_card(c: Ctx, value) -> list[str]:
    return c.eval(c.onnx_dir(card={**card(tiny_labels()), "model_lineage": value}) / "model.onnx")


def labels_file(c: Ctx, labels: list[str] | str) -> str:
    p = c.tmp / "labels.json"
    p.write_text(labels if isinstance(labels, str) else json.dumps(labels))
    return str(p)


# --- the cases -------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], list[str]]
    expect: tuple[str, ...]  # the file named, then fragments of the message
    subprocess: bool = False
    guard: Callable[[Ctx], None] | None = None


E_CFG_LAYERS = "config.json num_hidden_layers is 1000000000, but the state dict holds 2 layers"

CASES = [
    # S1: absurd sizes in config.json
    Case("ckpt-config-layers-absurd", lambda c: c.eval(c.ckpt(config=c.config(num_hidden_layers=10**9))),
         ("ck/pytorch_model.bin", E_CFG_LAYERS), guard=guard_expected_shapes),
    # S2: many tensors viewing one storage
    Case("ckpt-bin-views-of-one-storage", lambda c: c.eval(c.ckpt(bin_bytes=shared_storage_bin())),
         ("ck/pytorch_model.bin", "cannot read the state dict", "its tensors hold 5000 elements but its storages only 1000")),
    # S3: zip-bombed storage members
    Case("ckpt-bin-storage-larger-than-declared", lambda c: c.eval(c.ckpt(bin_bytes=bomb_storage_bin())),
         ("ck/pytorch_model.bin", "cannot read the state dict", "holds 4194304 bytes, more than 16 (its header declares 4 elements of 4 bytes)")),
    Case("ckpt-bin-storage-zip-bomb", lambda c: c.eval(c.ckpt(bin_bytes=deflated_zeros_bin())),
         ("ck/pytorch_model.bin", "cannot read the state dict", "to 4194304 (a zip bomb?)")),
    # S4: ONNX inputs declaring huge sizes
    Case("onnx-fixed-length-absurd", lambda c: c.eval(onnx_graph(c, "fixed-20000000"), "--labels", ",".join(tiny_labels())),
         ("model.onnx", "ONNX inputs fix the sequence length at 20000000", "at most 4096"), guard=guard_onnx_allocations),
    Case("onnx-side-channel-absurd", lambda c: c.eval(onnx_graph(c, "side-huge"), "--labels", ",".join(tiny_labels())),
         ("model.onnx", "ONNX side-channel input 'feat' is declared", "100000000 values per position; at most 1024"),
         guard=guard_onnx_allocations),
    # S6: non-finite CRF parameters
    Case("crf-sidecar-nan", lambda c: c.eval(c.onnx_dir(sidecar=json.dumps(sidecar(transitions=[[float("nan")] * 21] * 21))) / "model.onnx"),
         ("onx/crf-transitions.json", "`transitions` holds NaN, infinite or out-of-float32-range values")),
    Case("crf-sidecar-infinity", lambda c: c.eval(c.onnx_dir(sidecar=json.dumps(sidecar(start_transitions=[float("-inf")] * 21))) / "model.onnx"),
         ("onx/crf-transitions.json", "`start_transitions` holds NaN, infinite")),
    Case("crf-sidecar-overflows-float32", lambda c: c.eval(c.onnx_dir(sidecar=sidecar(end_transitions=[1e300] * 21)) / "model.onnx"),
         ("onx/crf-transitions.json", "`end_transitions` holds NaN, infinite or out-of-float32-range values")),
    Case("ckpt-crf-transitions-posinf", lambda c: c.eval(c.ckpt(state=edited_state("crf.transitions", float("inf")))),
         ("ck/pytorch_model.bin", "CRF parameters hold infinite values", "crf.transitions")),
    Case("ckpt-crf-all-neginf", lambda c: c.eval(c.ckpt(state=edited_state("crf.start_transitions", float("-inf"),
                                                                             "crf.transitions", float("-inf")))),
         ("ck/pytorch_model.bin", "CRF parameters hold infinite values", "crf.transitions, crf.start_transitions")),
    Case("ckpt-crf-mask-posinf", lambda c: c.eval(c.ckpt(state=edited_state("crf.transition_mask", float("inf")))),
         ("ck/pytorch_model.bin", "CRF parameters hold infinite values", "crf.transition_mask")),
    # S7: label lists
    Case("labels-model-card-duplicates", lambda c: c.eval(c.onnx_dir(card=card(["O", "B-street", "I-street"] * 7)) / "model.onnx"),
         ("onx/model-card.json", "model-card.json labels names 'O', 'B-street', 'I-street' more than once")),
    Case("labels-model-card-not-strings", lambda c: c.eval(c.onnx_dir(card=card([None] * 21)) / "model.onnx"),
         ("onx/model-card.json", "model-card.json labels: label 0 is null, not a string")),
    Case("labels-model-card-empty", lambda c: c.eval(c.onnx_dir(card=card([])) / "model.onnx"),
         ("onx/model-card.json", "model-card.json labels is empty")),
    Case("labels-config-not-bio", lambda c: c.eval(c.ckpt(config=c.config(id2label={str(i): f"L{i}" for i in range(21)}))),
         ("ck/config.json", "config.json id2label: label 0 'L0' is neither O nor B-<tag> / I-<tag>")),
    Case("labels-config-duplicates", lambda c: c.eval(c.ckpt(config=c.config(
        id2label={str(i): lab for i, lab in enumerate(["O", "B-street", "I-street"] * 7)}))),
         ("ck/config.json", "config.json id2label names 'O', 'B-street', 'I-street' more than once")),
    Case("labels-config-no-b-label", lambda c: c.eval(c.ckpt(config=c.config(
        id2label={str(i): lab for i, lab in enumerate(["O"] + [f"I-t{k}" for k in range(20)])}))),
         ("ck/config.json", "config.json id2label has no B-<tag> label, so no tag would be scored")),
    Case("labels-sidecar-a-string", lambda c: c.eval(c.onnx_dir(sidecar=sidecar(labels="O" * 21)) / "model.onnx"),
         ("onx/crf-transitions.json", "crf-transitions.json labels is a string, not a list of labels")),
    Case("labels-sidecar-ints", lambda c: c.eval(c.onnx_dir(sidecar=sidecar(labels=list(range(21)))) / "model.onnx"),
         ("onx/crf-transitions.json", "crf-transitions.json labels: label 0 is a number, not a string")),
    Case("labels-arg-empty-tag", lambda c: c.eval(c.onnx_dir() / "model.onnx", "--labels", labels_file(c, ["O", "B-", *tiny_labels()[2:]])),
         ("labels.json", "--labels file: label 1 'B-' is neither O nor B-<tag> / I-<tag>")),
    Case("labels-arg-duplicates", lambda c: c.eval(c.onnx_dir() / "model.onnx", "--labels", ",".join(tiny_labels()[:19] + ["B-street", "I-street"])),
         ("mweval: error: --labels names 'B-street', 'I-street' more than once",)),
    # S11: logits of the wrong shape
    *[Case(f"onnx-logits-{v}", functools.partial(onnx_with_labels, variant=v),
           (f"onnx-{v}/model.onnx", "ONNX logits have shape", want), subprocess=True)
      for v, want in (("rank2", "[1, 21] for input [1, 8]"), ("rank4", "[1, 1, 8, 21] for input [1, 8]"),
                      ("seq2x", "[1, 16, 21] for input [1, 8]"), ("seq1", "[1, 1, 21] for input [1, 8]"))],
    *[Case(f"onnx-logits-{v}", functools.partial(onnx_with_labels, variant=v),
           (f"onnx-{v}/model.onnx", f"ONNX `logits` output is tensor({v}), not a float tensor"))
      for v in ("int64", "bool")],
    Case("onnx-logits-zero-labels", lambda c: onnx_with_labels(c, "plain", labels=0),
         ("onnx-plain/model.onnx", "ONNX logits have shape [1, 8, 0] for input [1, 8]", "labels >= 1"), subprocess=True),
    # S9: special files (FIFOs in a subprocess with a timeout: the unfixed code blocked forever)
    *[Case(f"{fname}-is-a-fifo" if kind == "fifo" else f"{fname}-links-to-dev-null", functools.partial(special_in_ckpt, fname=fname, kind=kind),
           (fname, "not a regular file", "(a FIFO)" if kind == "fifo" else "(a device)"), subprocess=kind == "fifo")
      for fname in ("config.json", "pytorch_model.bin", "model.onnx", "model-card.json", "crf-transitions.json", "tokenizer.model")
      for kind in ("fifo", "devnull")],
    # C1: integers over 4300 digits
    Case("ckpt-config-int-over-4300-digits", lambda c: c.eval(c.ckpt(config=json.dumps(c.config()).replace('"vocab_size": 16000', f'"vocab_size": {BIG_INT}'))),
         ("ck/config.json", "malformed config.json", "4300")),
    Case("onnx-model-card-int-over-4300-digits", lambda c: c.eval(c.onnx_dir(card=json.dumps(card(tiny_labels()))[:-1] + f', "n": {BIG_INT}}}') / "model.onnx"),
         ("onx/model-card.json", "malformed model-card.json", "4300")),
    Case("labels-arg-int-over-4300-digits", lambda c: c.eval(c.onnx_dir() / "model.onnx", "--labels", labels_file(c, f"[{BIG_INT}]")),
         ("labels.json", "malformed --labels JSON", "4300")),
    # C2: model_lineage not a string
    *[Case(f"onnx-model-card-lineage-{k}", functools.partial(lineage_card, value=v),
           ("onx/model-card.json", "malformed model-card.json (`model_lineage` is not a string)"))
      for k, v in (("number", 5), ("object", {}))],
    # C3: scalar start_transitions
    Case("crf-sidecar-scalar-start", lambda c: c.eval(c.onnx_dir(sidecar=sidecar(start_transitions=0.5)) / "model.onnx"),
         ("onx/crf-transitions.json", "unreadable crf-transitions.json (CRF parameter shapes disagree")),
    # C4: crafted pytorch_model.bin
    Case("ckpt-bin-list-as-storage", lambda c: c.eval(c.ckpt(bin_bytes=list_storage_bin())),
         ("ck/pytorch_model.bin", "cannot read the state dict (a tensor is rebuilt from tuple, not from a storage)")),
    Case("ckpt-bin-encrypted-pickle", lambda c: c.eval(c.ckpt(bin_bytes=patch_member((TINY_STEP / "pytorch_model.bin").read_bytes(), "/data.pkl", flag_or=1))),
         ("ck/pytorch_model.bin", "cannot read the state dict", "data.pkl is encrypted")),
    Case("ckpt-bin-encrypted-storage", lambda c: c.eval(c.ckpt(bin_bytes=patch_member((TINY_STEP / "pytorch_model.bin").read_bytes(), "/data/0", flag_or=1))),
         ("ck/pytorch_model.bin", "cannot read the state dict", "data/0 is encrypted")),
    Case("ckpt-bin-unknown-compression", lambda c: c.eval(c.ckpt(bin_bytes=patch_member((TINY_STEP / "pytorch_model.bin").read_bytes(), "/data.pkl", method=97))),
         ("ck/pytorch_model.bin", "cannot read the state dict", "uses compression method 97, which zipfile cannot read")),
    # M1: the legacy torch.save format
    Case("ckpt-bin-legacy-format", lambda c: c.eval(c.ckpt(bin_bytes=torch_bytes(tiny_state(), _use_new_zipfile_serialization=False))),
         ("ck/pytorch_model.bin", "a legacy torch.save file (the pre-1.6, non-zip format) is not supported; re-save it with a current torch")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_checkpoint(case: Case, tmp_path, monkeypatch):
    need_shared()
    monkeypatch.chdir(tmp_path)
    ctx = Ctx(tmp_path, monkeypatch)
    args = case.setup(ctx)
    if case.guard:
        case.guard(ctx)
    before = snapshot(tmp_path)
    assert_one_line_error(invoke(args, case.subprocess, timeout=60), case.expect, tmp_path, before)  # a FIFO must not hang it
    assert not ctx.out.exists()


def test_case_ids_are_unique_and_each_is_documented():
    assert len({c.id for c in CASES}) == len(CASES)
    assert undocumented([c.id for c in CASES]) == []


# --- what must stay accepted -------------------------------------------------------------------


def test_a_tag_with_a_hyphen_is_accepted(tmp_path, monkeypatch):
    """`B-a-b` is a well-formed label (the tag is `a-b`): the validator is no stricter than BIO."""
    need_shared()
    monkeypatch.chdir(tmp_path)
    c = Ctx(tmp_path, monkeypatch)
    id2label = {k: v.replace("house_number", "house-number") for k, v in c.config()["id2label"].items()}
    r = invoke(c.eval(c.ckpt(config=c.config(id2label=id2label))))
    assert r.exit_code == 0, r.stderr
    run = json.loads((c.out / "run.json").read_text())
    assert "house-number" in run["tags"]


def test_real_label_lists_pass_the_validator():
    need_shared()
    from mailwoman_eval.labels import V040_LABELS, check_labels

    cfg = json.loads((TINY_STEP / "config.json").read_text())
    for labels, what in ((json.loads((EN_US / "model-card.json").read_text())["labels"], "en-us model card"),
                         (tiny_labels(), "tiny sidecar"),
                         ([cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))], "tiny config"),
                         (V040_LABELS, "v0.4.0 default")):
        assert check_labels(labels, what, None) == list(labels)


def test_tied_weights_sharing_a_storage_still_load(tmp_path):
    """Two tensors over one storage (tied embeddings) are legitimate: only many views are refused."""
    import torch

    from mailwoman_eval.checkpoints.torchfile import load_state_dict

    w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    p = tmp_path / "tied.bin"
    torch.save({"a": w, "b": w, "c": w[1]}, p)
    state, _ = load_state_dict(p)
    assert state["a"].tolist() == state["b"].tolist() == w.tolist()
    assert state["c"].tolist() == w[1].tolist()


def test_a_fixed_length_within_the_bound_still_runs(tmp_path, monkeypatch):
    """A graph fixing its sequence axis at 256 (above upstream's 128, below the 4096 bound) evaluates."""
    need_shared()
    monkeypatch.chdir(tmp_path)
    c = Ctx(tmp_path, monkeypatch)
    r = invoke(c.eval(onnx_graph(c, "fixed-256"), "--labels", ",".join(tiny_labels())), True, timeout=60)
    assert r.exit_code == 0, r.stderr
    assert json.loads((c.out / "run.json").read_text())["checkpoint"]["fixed_sequence_length"] == 256
