"""Shared fixtures. Upstream data is read in place from ../shared (MWEVAL_SHARED overrides).

Tests that need it skip with a reason when it is absent; `.ci/run` sets MWEVAL_REQUIRE_SHARED=1
so that in CI an absent ../shared fails instead of silently skipping.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MWEVAL_SHARED", REPO.parent / "shared")).resolve()
UPSTREAM = SHARED / "upstream"
TOKENIZER_V010 = UPSTREAM / "tokenizer" / "tokenizer-v0.1.0.model"
TINY = UPSTREAM / "checkpoints" / "tiny-v040"
TINY_STEP = TINY / "step-000300"
TINY_BF16 = UPSTREAM / "checkpoints" / "tiny-v040-bf16" / "step-000300"
V040SIZE = UPSTREAM / "checkpoints" / "v040size-random" / "step-002200"
EN_US = UPSTREAM / "weights" / "en-us-10.0.0"
GOLDEN_ROOT = UPSTREAM / "golden"
GOLDEN_V012 = GOLDEN_ROOT / "v0.1.2"


def need_shared() -> None:
    if not UPSTREAM.is_dir():
        if os.environ.get("MWEVAL_REQUIRE_SHARED") == "1":
            pytest.fail(f"upstream test data missing at {UPSTREAM} (MWEVAL_REQUIRE_SHARED=1)")
        pytest.skip(f"upstream test data not found at {UPSTREAM} (set MWEVAL_SHARED)")


def error_text(fn, *args, **kwargs) -> str:
    """The one-line message (`where: what`) of the MwevalError that `fn(*args, **kwargs)` must raise."""
    from mailwoman_eval.errors import MwevalError

    with pytest.raises(MwevalError) as e:
        fn(*args, **kwargs)
    return str(e.value)


@pytest.fixture
def shared() -> Path:
    need_shared()
    return UPSTREAM


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own cache, user data dir and working directory (commands write runs/ and
    reports/ where they run: not into the checkout), and no inherited search paths."""
    base = tmp_path_factory.mktemp("env")
    monkeypatch.chdir(base)
    monkeypatch.setenv("MWEVAL_CACHE", str(base / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))
    monkeypatch.delenv("MWEVAL_GOLDEN_PATH", raising=False)
    monkeypatch.delenv("MWEVAL_CKPT_PATH", raising=False)


@pytest.fixture(scope="session")
def tiny_test_run(tmp_path_factory):
    """One runtime-profile run of the tiny upstream checkpoint on golden v0.1.2/test (shared, read-only)."""
    need_shared()
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint
    from mailwoman_eval.evaluate import EvalOptions, evaluate
    from mailwoman_eval.golden import load_golden
    from mailwoman_eval.profiles import RUNTIME

    out = tmp_path_factory.mktemp("tinyrun") / "run"
    gset = load_golden(GOLDEN_V012 / "test", "v0.1.2/test")
    opts = EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010), use_cache=False)
    return evaluate(resolve_checkpoint(str(TINY_STEP)), gset, opts, out)


def short_position_checkpoint(dest: Path, positions: int) -> Path:
    """The tiny checkpoint with its position table cut to `positions` rows (config and weights
    agree), written with torch into `dest`: golden rows longer than that cannot be embedded."""
    import torch

    dest.mkdir(parents=True)
    cfg = json.loads((TINY_STEP / "config.json").read_text())
    cfg["max_position_embeddings"] = positions
    (dest / "config.json").write_text(json.dumps(cfg))
    state = torch.load(TINY_STEP / "pytorch_model.bin", map_location="cpu", weights_only=True)
    state["position_embeddings.weight"] = state["position_embeddings.weight"][:positions].clone()
    torch.save(state, dest / "pytorch_model.bin")
    return dest


def fixed_width_onnx(tmp_path: Path, width: int, side_channel: bool = False) -> Path:
    """The tiny upstream export with its inputs fixed at [1, width], as v0.1/v0.2 graphs fixed them
    at [1, 128] (upstream-formats.md §5.1); `side_channel`: plus an unused float input
    `anchor_features` fixed at [1, width, 50]. Written with its sidecar into tmp_path/fixed<width>."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    m = onnx.load(str(TINY / "onnx" / "model.onnx"))
    if side_channel:
        m.graph.input.append(helper.make_tensor_value_info("anchor_features", TensorProto.FLOAT, [1, width, 50]))
    for i in m.graph.input:
        dims = i.type.tensor_type.shape.dim
        dims[0].ClearField("dim_param")
        dims[0].dim_value = 1
        dims[1].ClearField("dim_param")
        dims[1].dim_value = width
    d = tmp_path / f"fixed{width}"
    d.mkdir()
    onnx.save(m, str(d / "model.onnx"))
    shutil.copyfile(TINY / "onnx" / "crf-transitions.json", d / "crf-transitions.json")
    return d / "model.onnx"


def rezip(src: bytes, method: int = zipfile.ZIP_STORED, replace: dict[str, bytes | None] | None = None) -> bytes:
    """A torch archive rewritten with `method`; members whose name ends with a key of `replace` get
    its bytes (None: the member is left out)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            body = zin.read(info)
            for suffix, new in (replace or {}).items():
                if info.filename.endswith(suffix):
                    body = new
            if body is not None:
                zout.writestr(info.filename, body, compress_type=method)
    return buf.getvalue()
