"""Upstream PyTorch checkpoint directories: `config.json` + `pytorch_model.bin` (upstream-formats.md §1).

Three engines run the same weights, none needs torch except `torch`: `onnx` (default: the encoder
graph built from the state dict and run by onnxruntime, see onnx_build.py — the fastest here),
`numpy` (numpy_encoder.py) and `torch` (the upstream-compatible nn.Module in model.py). All load
the state dict strictly and agree with upstream's own ONNX export to ≤ 1e-4 (tests).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mailwoman_eval.checkpoints.backend import (
    Backend,
    OnBatch,
    Progress,
    cpu_count,
    in_background,
    run_batched,
)
from mailwoman_eval.checkpoints.torchfile import load_state_dict
from mailwoman_eval.decode import CRFParams
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import refuse_special_file, sha256_bytes
from mailwoman_eval.labels import V040_LABELS, check_labels

REQUIRED_CONFIG = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "num_labels",
)


def read_config(path: Path, data: bytes | None = None) -> dict:
    """config.json, checked; `data` is its bytes when the caller read them (to hash what it parsed)."""
    if data is None:
        refuse_special_file(path)
    try:
        cfg = json.loads((path.read_bytes() if data is None else data).decode("utf-8"))
    except FileNotFoundError:
        raise MwevalError("checkpoint has no config.json", where=str(path)) from None
    # ValueError: Python 3.11+ refuses integers of over 4300 digits with a plain ValueError
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise MwevalError(f"malformed config.json ({e})", where=str(path)) from None
    if not isinstance(cfg, dict):
        raise MwevalError("config.json is not a JSON object", where=str(path))
    missing = [k for k in REQUIRED_CONFIG if k not in cfg]
    if missing:
        raise MwevalError(f"config.json is missing keys: {', '.join(missing)}", where=str(path))
    for k in REQUIRED_CONFIG:
        if not isinstance(cfg[k], int) or isinstance(cfg[k], bool) or cfg[k] <= 0:
            raise MwevalError(f"config.json key {k!r} must be a positive integer", where=str(path))
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise MwevalError("hidden_size is not divisible by num_attention_heads", where=str(path))
    pad = cfg.get("pad_token_id")
    if pad is not None and (not isinstance(pad, int) or isinstance(pad, bool) or not 0 <= pad < cfg["vocab_size"]):
        raise MwevalError("config.json pad_token_id must be null or an integer in 0..vocab_size-1", where=str(path))
    return cfg


def labels_from_config(cfg: dict, where: str) -> tuple[list[str], str]:
    id2label = cfg.get("id2label")
    if id2label:
        if not isinstance(id2label, dict):
            raise MwevalError("config.json id2label is not an object of id -> label", where=where)
        try:
            labels = [id2label[str(i)] for i in range(len(id2label))]
        except KeyError:
            raise MwevalError("config.json id2label keys are not 0..N-1", where=where) from None
        if not all(isinstance(x, str) and x for x in labels):
            raise MwevalError("config.json id2label values must be non-empty strings", where=where)
        source = "config.json id2label"
        check_labels(labels, source, where)
    else:
        labels = list(V040_LABELS)
        source = "v0.4.0 default (config.json has no id2label)"
    if len(labels) != cfg["num_labels"]:
        raise MwevalError(f"{len(labels)} labels ({source}) but num_labels = {cfg['num_labels']}", where=where)
    return labels, source


def expected_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """state_dict names and shapes for a V040 config (upstream-formats.md §1.5)."""
    V, H, F, L = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"], cfg["num_labels"]
    shapes: dict[str, tuple[int, ...]] = {
        "token_embeddings.weight": (V, H),
        "position_embeddings.weight": (cfg["max_position_embeddings"], H),
        "input_ln.weight": (H,),
        "input_ln.bias": (H,),
    }
    for i in range(cfg["num_hidden_layers"]):
        p = f"blocks.{i}."
        shapes.update(
            {
                p + "ln1.weight": (H,),
                p + "ln1.bias": (H,),
                p + "attn.in_proj_weight": (3 * H, H),
                p + "attn.in_proj_bias": (3 * H,),
                p + "attn.out_proj.weight": (H, H),
                p + "attn.out_proj.bias": (H,),
                p + "ln2.weight": (H,),
                p + "ln2.bias": (H,),
                p + "ff.0.weight": (F, H),
                p + "ff.0.bias": (F,),
                p + "ff.3.weight": (H, F),
                p + "ff.3.bias": (H,),
            }
        )
    shapes.update({"final_ln.weight": (H,), "final_ln.bias": (H,), "classifier.weight": (L, H), "classifier.bias": (L,)})
    if cfg.get("use_crf", False):
        shapes.update(
            {
                "crf.transitions": (L, L),
                "crf.start_transitions": (L,),
                "crf.end_transitions": (L,),
                "crf.transition_mask": (L, L),
                "crf.start_mask": (L,),
            }
        )
    if cfg.get("class_weights"):
        shapes["class_weights"] = (L,)
    return shapes


_BLOCK = re.compile(r"blocks\.(\d+)\.")
F32_MAX = float(np.finfo(np.float32).max)


def check_state_dict(state: dict[str, np.ndarray], cfg: dict, where: str) -> None:
    """strict=True semantics, with every missing/unexpected/mis-shaped key listed in one line."""
    # The expected names are built per layer: a config claiming 1e9 layers built a dict of 12e9
    # names (a MemoryError, or minutes and gigabytes for 1e6). More than one layer beyond those the
    # state dict holds is refused before any is built; one beyond lists its missing keys as before.
    held = len({m[1] for k in state if (m := _BLOCK.match(k))})
    if cfg["num_hidden_layers"] > held + 1:
        raise MwevalError(f"state dict does not match config.json — config.json num_hidden_layers is {cfg['num_hidden_layers']}, "
                          f"but the state dict holds {held} layers", where=where)
    want = expected_shapes(cfg)
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    wrong = [f"{k} {tuple(state[k].shape)}!={want[k]}" for k in want if k in state and tuple(state[k].shape) != want[k]]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:8])}{' …' if len(unexpected) > 8 else ''}")
    if wrong:
        problems.append(f"shape mismatches: {', '.join(wrong[:6])}{' …' if len(wrong) > 6 else ''}")
    if problems:
        raise MwevalError("state dict does not match config.json — " + "; ".join(problems), where=where)
    # A diverged run saves NaN weights: they decode to all-O (or NaN confidences) without a word.
    # (-inf is fine: the CRF mask buffers hold it by design.)
    nan = [k for k, v in state.items() if v.dtype.kind == "f" and np.isnan(v).any()]
    if nan:
        raise MwevalError(f"weights contain NaN (diverged training?): {', '.join(nan[:8])}{' …' if len(nan) > 8 else ''}", where=where)
    # A learned CRF is finite: +inf or -inf transitions (or values float32 cannot hold) turn every
    # path score into inf/NaN, and every F1 was 0 with exit 0. -inf belongs in the mask buffers
    # (crf.transition_mask, crf.start_mask), which are added to the learned scores; +inf there too
    # would win every path.
    learned = ("crf.transitions", "crf.start_transitions", "crf.end_transitions")
    bad = [k for k in learned if k in state and not np.all(np.abs(state[k].astype(np.float64)) <= F32_MAX)]
    bad += [k for k in ("crf.transition_mask", "crf.start_mask") if k in state and np.isposinf(state[k]).any()]
    if bad:
        raise MwevalError(f"CRF parameters hold infinite values (learned scores must be finite; -inf belongs only in the mask "
                          f"buffers): {', '.join(bad)}", where=where)


def crf_from_state(state: dict[str, np.ndarray]) -> CRFParams | None:
    if "crf.transitions" not in state:
        return None
    return CRFParams(
        source="learned",
        transitions=state["crf.transitions"].astype(np.float32),
        start=state["crf.start_transitions"].astype(np.float32),
        end=state["crf.end_transitions"].astype(np.float32),
        transition_mask=state.get("crf.transition_mask"),
        start_mask=state.get("crf.start_mask"),
    )


def _read(path: Path, missing: str) -> bytes:
    refuse_special_file(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MwevalError(missing, where=str(path)) from None
    except OSError as e:
        raise MwevalError(f"cannot read {path.name}: {e.strerror}", where=str(path)) from None


class PytorchBackend(Backend):
    def __init__(self, ckpt_dir: Path, engine: str = "onnx", threads: int | None = None):
        cfg_path = ckpt_dir / "config.json"
        bin_path = ckpt_dir / "pytorch_model.bin"
        # Each file is read once, and what is recorded is the sha256 of the bytes evaluated: hashing
        # the file again could record a checkpoint rewritten in the meantime (a sweep of a live run).
        cfg_bytes = _read(cfg_path, "checkpoint has no config.json")
        cfg = read_config(cfg_path, cfg_bytes)
        labels, source = labels_from_config(cfg, str(cfg_path))
        bin_bytes = _read(bin_path, "checkpoint has no pytorch_model.bin")
        bin_sha = in_background(sha256_bytes, bin_bytes)  # hashing 35 MB runs without the GIL, beside the parse
        state, dtypes = load_state_dict(bin_path, bin_bytes)
        check_state_dict(state, cfg, str(bin_path))
        self.config = cfg
        self.config_path = cfg_path
        self.threads = threads or cpu_count()
        self.engine = engine
        info = {
            "format": "pytorch",
            "engine": engine,
            "sha256": bin_sha.result(),
            "files": {"config.json": sha256_bytes(cfg_bytes), "pytorch_model.bin": None},
            "stored_dtypes": sorted(dtypes),
            "params": int(sum(v.size for k, v in state.items() if not k.endswith("_mask") and k != "class_weights")),
            "config": {k: cfg[k] for k in REQUIRED_CONFIG + ("use_crf",) if k in cfg},
        }
        info["files"]["pytorch_model.bin"] = info["sha256"]
        super().__init__(
            labels=labels,
            labels_source=source,
            crf=crf_from_state(state),
            info=info,
            embedding_rows=cfg["vocab_size"],
            pad_id=cfg.get("pad_token_id") or 0,
        )
        if engine == "onnx":
            self._forward = _onnx_forward(state, cfg, self.threads)
        elif engine == "numpy":
            from mailwoman_eval.checkpoints.numpy_encoder import NumpyEncoder

            self._forward = NumpyEncoder(state, cfg)
        elif engine == "torch":
            self._forward = _torch_forward(state, cfg, labels, self.threads)
        else:
            raise MwevalError(f"unknown engine {engine!r} (onnx, numpy or torch)")

    max_rows = 64  # rows per length-bucketed batch; 1 = the batch-1 path (tests compare the two)

    def row_limit(self) -> tuple[int, str, str]:
        # upstream raises on a sequence longer than its position table too; said before inference,
        # not as a broadcast failure deep in onnxruntime / numpy / torch
        return int(self.config["max_position_embeddings"]), "the checkpoint's max_position_embeddings", str(self.config_path)

    def infer(self, ids: Sequence[np.ndarray], progress: Progress | None = None, on_batch: OnBatch | None = None) -> list[np.ndarray]:
        self.check_rows(ids)
        return run_batched(self._forward, ids, self.pad_id, progress, max_rows=self.max_rows, on_batch=on_batch)


def _onnx_forward(state: dict[str, np.ndarray], cfg: dict, threads: int) -> list:
    """One onnxruntime session per core (up to 2), each single-threaded; run_batched alternates batches."""
    import onnxruntime as ort

    from mailwoman_eval.checkpoints.onnx_build import build_encoder_onnx

    weights: dict[str, np.ndarray] = {}
    graph = build_encoder_onnx(state, cfg, external=weights)
    # the sessions read the weights from these arrays (no copy); the closures below keep them alive
    values = [ort.OrtValue.ortvalue_from_numpy(a) for a in weights.values()]
    n = max(1, min(2, threads))

    def make_forward():
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, threads // n)
        so.inter_op_num_threads = 1
        so.add_external_initializers(list(weights), values)
        session = ort.InferenceSession(graph, sess_options=so, providers=["CPUExecutionProvider"])
        return lambda x, m, s=session, keep=(weights, values): s.run(["logits"], {"input_ids": x, "attention_mask": m})[0]

    # the others are made in threads alongside the first (C++, no GIL); a bad graph fails here
    others = [in_background(make_forward) for _ in range(n - 1)]
    return [make_forward()] + others


TORCH_MISSING = ("--engine torch needs torch: pip install -e '.[torch]' in a checkout (torch==2.13.0, the CPU build); "
                 "--engine onnx and numpy need none")


def _torch_forward(state: dict[str, np.ndarray], cfg: dict, labels: list[str], threads: int):
    try:
        import torch
    except ImportError:
        raise MwevalError(TORCH_MISSING) from None
    from mailwoman_eval.checkpoints.model import MailwomanCoarseEncoder

    torch.set_num_threads(threads)
    model = MailwomanCoarseEncoder(cfg, labels)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    model.eval()

    def forward(x: np.ndarray, m: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x), torch.from_numpy(m)).numpy()

    return forward
