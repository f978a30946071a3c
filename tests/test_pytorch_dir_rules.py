"""Upstream PyTorch checkpoint directories, rule by rule (upstream-formats.md §1.1 "dtype trap", §1.2
config.json keys, §1.5 state_dict names and shapes; README "Inputs": Checkpoints, PyTorch engines;
docs/robustness.md "Bad inputs" ckpt-* rows and "Hostile checkpoints"; the torchfile.py and
pytorch_dir.py docstrings): the torch-free reader gives what `torch.load` gives for every storage
dtype (bf16 widened exactly to float32) and reports the stored dtypes; empty, scalar, transposed,
offset and nn.Parameter tensors read as torch reads them; up to 4 tensors may view one storage and a
5th is refused; a tensor layout that is not non-negative ints of matching rank is refused before
numpy reads memory; archives re-zipped with any method zipfile reads load, a big-endian one, one
without a single data.pkl and a member inflating more than 100x are refused; the bytes the caller
read are parsed even when the file is gone; config.json values are positive ints, hidden_size a
multiple of the heads, pad_token_id null or in 0..vocab_size-1, a top-level non-object refused and a
config.json that is no regular file refused when read by path; id2label keys are 0..N-1, a config
without id2label gets the v0.4.0 labels; a class_weights buffer is expected exactly when configured
and not counted as a parameter; a checkpoint without CRF decodes without one; what PytorchBackend
records (stored dtypes, hashes, config subset, pad id) and its unknown-engine error.

Checkpoints are the real upstream tiny fp32/bf16 ones, edited through torch.save; hostile layouts are
data.pkl files written here in torch's own format (protocol 2, persistent storage ids).
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_BF16, TINY_STEP, error_text, need_shared, rezip

from mailwoman_eval.checkpoints.pytorch_dir import (
    PytorchBackend,
    check_state_dict,
    crf_from_state,
    labels_from_config,
    read_config,
)
from mailwoman_eval.checkpoints.torchfile import load_state_dict
from mailwoman_eval.labels import V040_LABELS

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny():
    """(config dict, torch state dict) of the upstream tiny fp32 checkpoint."""
    need_shared()
    cfg = json.loads((TINY_STEP / "config.json").read_text())
    return cfg, torch.load(TINY_STEP / "pytorch_model.bin", map_location="cpu", weights_only=True)


def step_dir(tmp: Path, cfg: dict, state: dict, name: str = "step-000001") -> Path:
    d = tmp / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    torch.save(state, d / "pytorch_model.bin")
    return d


def saved(obj, tmp: Path, name: str = "w.bin") -> Path:
    p = tmp / name
    torch.save(obj, p)
    return p


# --- data.pkl written by hand, in torch's format -------------------------------------------


def _rebuild_tensor_v2(*args):  # pickled under this module's name, renamed to torch._utils's
    raise AssertionError("never called")


class FloatStorage:  # pickled under this module's name, renamed to torch's
    pass


class _Tensor:
    def __init__(self, key: str, numel: int, offset, size, stride):
        self.key, self.numel, self.layout = key, numel, (offset, size, stride)

    def __reduce__(self):
        return _rebuild_tensor_v2, (_StorageRef(self.key, self.numel), *self.layout, False, collections.OrderedDict())


class _StorageRef:
    def __init__(self, key: str, numel: int):
        self.key, self.numel = key, numel


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", FloatStorage, obj.key, "cpu", obj.numel) if isinstance(obj, _StorageRef) else None


def crafted_bin(tensors: dict, storages: dict[str, np.ndarray]) -> bytes:
    """An archive whose data.pkl holds `tensors` (name -> _Tensor) over float32 `storages`."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(collections.OrderedDict(tensors))
    pkl = buf.getvalue()
    for ours, theirs in ((f"c{__name__}\n_rebuild_tensor_v2\n", "ctorch._utils\n_rebuild_tensor_v2\n"),
                         (f"c{__name__}\nFloatStorage\n", "ctorch\nFloatStorage\n")):
        assert ours.encode() in pkl
        pkl = pkl.replace(ours.encode(), theirs.encode())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for key, arr in storages.items():
            z.writestr(f"archive/data/{key}", np.asarray(arr, dtype="<f4").tobytes())
    return out.getvalue()


def test_a_hand_written_archive_reads_as_torch_reads_it(tmp_path):
    """The crafted format below is torch's own: torch.load and the reader agree on a good layout."""
    data = crafted_bin({"w": _Tensor("0", 6, 1, (2, 2), (1, 2))}, {"0": np.arange(6)})
    (tmp_path / "w.bin").write_bytes(data)
    ours, dtypes = load_state_dict(tmp_path / "w.bin")
    ref = torch.load(tmp_path / "w.bin", weights_only=True)
    assert ours["w"].tolist() == ref["w"].tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert dtypes == {"float32"}


# --- the reader: dtypes and layouts ----------------------------------------------------------


def test_every_storage_dtype_reads_as_torch_load_and_is_reported(tmp_path):
    """upstream-formats.md §1.1: bf16 tensors are widened exactly (upstream's loader upcasts); every
    other storage keeps its dtype, and the set of stored dtypes is returned."""
    g = torch.Generator().manual_seed(0)
    f = torch.randn(3, 5, generator=g) * 1000
    state = {
        "f32": f, "f64": f.double() / 7, "f16": f.half(), "bf16": f.bfloat16(),
        "i64": torch.tensor([-(2**40), 0, 2**40]), "i32": torch.tensor([-(2**30), 7], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16), "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
    }
    ours, dtypes = load_state_dict(saved(state, tmp_path))
    assert dtypes == {"float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"}
    for k, v in state.items():
        want = v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
        assert ours[k].dtype == want.dtype and ours[k].shape == want.shape, k
        assert np.array_equal(ours[k], want), k


def test_the_bf16_checkpoint_is_recorded_as_bf16_and_widened_exactly(tiny):
    """upstream-formats.md §1.1: the tiny-v040-bf16 copy stores bf16; every value read is a float32
    whose low 16 bits are 0, and is the fp32 checkpoint's value rounded to bf16."""
    b = PytorchBackend(TINY_BF16, engine="numpy")
    assert b.info["stored_dtypes"] == ["bfloat16"]
    assert PytorchBackend(TINY_STEP, engine="numpy").info["stored_dtypes"] == ["float32"]
    ours, _ = load_state_dict(TINY_BF16 / "pytorch_model.bin")
    w = ours["token_embeddings.weight"]
    assert w.dtype == np.float32 and not (w.view(np.uint32) & 0xFFFF).any()
    fp32 = tiny[1]["token_embeddings.weight"]
    assert np.array_equal(w, fp32.bfloat16().float().numpy())


def test_empty_scalar_transposed_and_parameter_tensors_read_as_torch_reads_them(tmp_path):
    """A state dict of nn.Parameters (torch._utils._rebuild_parameter is an allowed global), a 0-d
    tensor, a tensor with a 0-length axis and non-contiguous views."""
    w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state = {"p": torch.nn.Parameter(w.clone()), "s": torch.tensor(2.5), "e": torch.zeros(0, 4), "t": w.t(), "row": w[2, 1:]}
    ours, _ = load_state_dict(saved(state, tmp_path))
    assert ours["p"].tolist() == w.tolist()
    assert ours["s"].shape == () and float(ours["s"]) == 2.5
    assert ours["e"].shape == (0, 4)
    assert ours["t"].tolist() == w.t().tolist() and ours["row"].tolist() == [9.0, 10.0, 11.0]


def test_four_tensors_may_view_one_storage_and_a_fifth_is_refused(tmp_path):
    """torchfile.py: more than VIEW_FACTOR (4) times the storage elements read is refused; tied
    weights (2x) and up to 4 views load."""
    base = torch.arange(10, dtype=torch.float32)
    four = saved({f"v{i}": base[:] for i in range(4)}, tmp_path, "four.bin")
    state, _ = load_state_dict(four)
    assert [state[f"v{i}"].tolist() for i in range(4)] == [base.tolist()] * 4
    five = saved({f"v{i}": base[:] for i in range(5)}, tmp_path, "five.bin")
    assert error_text(load_state_dict, five) == (
        f"{five}: cannot read the state dict (its tensors hold 50 elements but its storages only 10 "
        "(more than 4 tensors viewing each storage))")


@pytest.mark.parametrize(("offset", "size", "stride"), [
    (-1, (4,), (1,)),         # before the storage
    (0, (4,), (-1,)),         # a negative stride walks backwards out of it
    (4, (-2,), (1,)),         # a negative size
    (0, (2, 2), (2,)),        # ranks disagree
    (True, (4,), (1,)),       # a bool is no offset
    (0.0, (4,), (1,)),        # nor a float
])
def test_a_malformed_tensor_layout_is_refused_before_memory_is_read(tmp_path, offset, size, stride):
    """torchfile.py `_rebuild_tensor_v2`: as_strided reads raw memory, so the layout must be
    non-negative ints with one stride per axis (docs/robustness.md ckpt-bin-short-storage)."""
    p = tmp_path / "bad.bin"
    p.write_bytes(crafted_bin({"w": _Tensor("0", 8, offset, size, stride)}, {"0": np.arange(8)}))
    assert error_text(load_state_dict, p) == (
        f"{p}: cannot read the state dict (malformed tensor layout (offset {offset!r}, size {size!r}, stride {stride!r}))")


def test_a_tensor_ending_at_its_storage_loads_and_one_element_beyond_is_refused(tmp_path):
    """torchfile.py: a corrupt file must not make as_strided read past the storage (robustness.md
    ckpt-bin-short-storage); the last element of the storage is still the tensor's."""
    p = tmp_path / "w.bin"
    p.write_bytes(crafted_bin({"w": _Tensor("0", 8, 4, (2, 2), (2, 1))}, {"0": np.arange(8)}))
    assert load_state_dict(p)[0]["w"].tolist() == [[4.0, 5.0], [6.0, 7.0]]
    p.write_bytes(crafted_bin({"w": _Tensor("0", 8, 5, (2, 2), (2, 1))}, {"0": np.arange(8)}))
    assert error_text(load_state_dict, p) == (
        f"{p}: cannot read the state dict (tensor (offset 5, size (2, 2), stride (2, 1)) lies outside its storage of 8 elements)")


def test_scalar_views_count_as_copies_too(tmp_path):
    """torchfile.py materialise: every tensor is a copy, 0-d ones included: 5 scalars over a
    1-element storage are refused like 5 full views."""
    p = tmp_path / "w.bin"
    p.write_bytes(crafted_bin({f"s{i}": _Tensor("0", 1, 0, (), ()) for i in range(4)}, {"0": [1.5]}))
    assert [float(v) for v in load_state_dict(p)[0].values()] == [1.5] * 4
    p.write_bytes(crafted_bin({f"s{i}": _Tensor("0", 1, 0, (), ()) for i in range(5)}, {"0": [1.5]}))
    assert error_text(load_state_dict, p) == (f"{p}: cannot read the state dict (its tensors hold 5 elements but its storages "
                                              "only 1 (more than 4 tensors viewing each storage))")


# --- the reader: the archive -----------------------------------------------------------------


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_an_archive_re_zipped_with_a_method_zipfile_reads_loads(tmp_path, method):
    """torchfile.read_entry refuses only methods zipfile lacks: a checkpoint re-zipped (weights
    deflate ~1.1x, far below the 100x bomb ratio) reads the same tensors."""
    w = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    src = saved({"w": w.bfloat16(), "b": w[0]}, tmp_path, "src.bin").read_bytes()
    p = tmp_path / "rz.bin"
    p.write_bytes(rezip(src, method))
    assert {i.compress_type for i in zipfile.ZipFile(p).infolist()} == {method}
    ours, dtypes = load_state_dict(p)
    assert dtypes == {"bfloat16", "float32"} and list(ours) == ["w", "b"]
    assert np.array_equal(ours["w"], w.bfloat16().float().numpy()) and np.array_equal(ours["b"], w[0].numpy())


def test_byte_order_member_absent_loads_and_big_endian_is_refused(tmp_path):
    """An archive without `byteorder` (torch before 1.10) is little-endian; a big-endian one is refused."""
    src = saved({"w": torch.arange(3.0)}, tmp_path, "src.bin").read_bytes()
    none = tmp_path / "none.bin"
    none.write_bytes(rezip(src, replace={"/byteorder": None}))
    assert load_state_dict(none)[0]["w"].tolist() == [0.0, 1.0, 2.0]
    big = tmp_path / "big.bin"
    big.write_bytes(rezip(src, replace={"/byteorder": b"big"}))
    assert error_text(load_state_dict, big) == f"{big}: big-endian torch archives are not supported"


@pytest.mark.parametrize("order", [b"little\n", b"LITTLE", b"", b"middle"])
def test_a_byte_order_other_than_little_or_big_is_refused_as_torch_does(tmp_path, order):
    """torch.load accepts exactly b"little" or b"big" and refuses the rest ("Unknown endianness
    type"); so does this reader, naming the value instead of calling it big-endian."""
    src = saved({"w": torch.arange(3.0)}, tmp_path, "src.bin").read_bytes()
    odd = tmp_path / "odd.bin"
    odd.write_bytes(rezip(src, replace={"/byteorder": order}))
    with pytest.raises(ValueError, match="Unknown endianness"):
        torch.load(odd, weights_only=True)
    assert error_text(load_state_dict, odd) == f"{odd}: unknown byte order {order!r} in the torch archive (torch writes 'little' or 'big')"


@pytest.mark.parametrize("pkls", [0, 2])
def test_an_archive_without_a_single_data_pkl_is_refused(tmp_path, pkls):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(pkls):
            z.writestr(f"a{i}/data.pkl", pickle.dumps({}, protocol=2))
        z.writestr("a0/byteorder", "little")
    p = tmp_path / "w.bin"
    p.write_bytes(buf.getvalue())
    assert error_text(load_state_dict, p) == f"{p}: torch archive has no single data.pkl"


def _deflated_member_at_ratio(lo: float, hi: float) -> tuple[bytes, zipfile.ZipInfo]:
    """A one-storage archive whose storage member, deflated, inflates between lo and hi times
    (plus the 64 KiB allowance): random floats then zeros, the zero run tuned by bisection."""
    rng = np.random.default_rng(0)
    head = rng.normal(size=2048).astype("<f4")

    def build(zeros: int):
        arr = np.concatenate([head, np.zeros(zeros, "<f4")])
        stored = crafted_bin({"w": _Tensor("0", arr.size, 0, (arr.size,), (1,))}, {"0": arr})
        data = rezip(stored, zipfile.ZIP_DEFLATED)
        info = zipfile.ZipFile(io.BytesIO(data)).getinfo("archive/data/0")
        return data, info, (info.file_size - (1 << 16)) / info.compress_size

    a, b = 0, 1 << 22
    while a < b:
        mid = (a + b) // 2
        data, info, ratio = build(mid)
        if lo < ratio < hi:
            return data, info
        a, b = (mid + 1, b) if ratio <= lo else (a, mid)
    raise AssertionError(f"no zero run gives a ratio in ({lo}, {hi})")


@pytest.mark.parametrize(("lo", "hi", "refused"), [(99.0, 100.0, False), (100.0, 101.0, True)])
def test_a_member_inflating_more_than_100_times_is_refused_and_less_loads(tmp_path, lo, hi, refused):
    """torchfile.py MAX_INFLATE_RATIO, docs/robustness.md ckpt-bin-storage-zip-bomb: a compressed
    member inflating more than 100x its compressed size (beyond a 64 KiB allowance) is refused."""
    data, info = _deflated_member_at_ratio(lo, hi)
    p = tmp_path / "w.bin"
    p.write_bytes(data)
    if refused:
        assert error_text(load_state_dict, p) == (f"{p}: cannot read the state dict (archive member archive/data/0 inflates "
                                                  f"{info.compress_size} bytes to {info.file_size} (a zip bomb?))")
    else:
        assert load_state_dict(p)[0]["w"].size == info.file_size // 4


def test_the_bytes_given_are_parsed_even_when_the_file_is_gone(tmp_path):
    """load_state_dict(path, data): the caller read (and hashed) the bytes; a checkpoint deleted
    since (a live run keeps its last N steps) is parsed from them, and the path may be a str."""
    p = saved({"w": torch.arange(3.0)}, tmp_path)
    data = p.read_bytes()
    p.unlink()
    assert load_state_dict(str(p), data)[0]["w"].tolist() == [0.0, 1.0, 2.0]
    assert error_text(load_state_dict, str(p)) == f"{p}: checkpoint weights not found"


def test_weights_read_by_path_must_be_a_regular_file(tmp_path):
    """docs/robustness.md pytorch_model.bin-links-to-dev-null, when the reader opens the file itself."""
    (tmp_path / "w.bin").symlink_to("/dev/null")
    assert error_text(load_state_dict, tmp_path / "w.bin") == f"{tmp_path}/w.bin: not a regular file (a device)"


@pytest.mark.parametrize(("module", "name"), [
    ("collections", "Counter"), ("typing", "OrderedDict"), ("torch._utils", "_rebuild_qtensor"), ("builtins", "_rebuild_tensor_v2"),
    ("builtins", "_rebuild_parameter"), ("torch", "Tensor"), ("builtins", "FloatStorage"),
])
def test_only_the_globals_a_state_dict_uses_are_allowed(tmp_path, module, name):
    """torchfile.py: the unpickler finds collections.OrderedDict, torch._utils' two rebuild functions
    and torch's storage types, and nothing else (docs/robustness.md ckpt-bin-pickled-module)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", f"\x80\x02c{module}\n{name}\n)R.".encode("latin-1"))
        z.writestr("archive/byteorder", "little")
    p = tmp_path / "w.bin"
    p.write_bytes(buf.getvalue())
    assert error_text(load_state_dict, p) == f"{p}: cannot read the state dict (global {module}.{name} is not allowed in a state dict)"


@pytest.mark.parametrize("numel", [-1, True, 8.0])
def test_a_storage_must_declare_a_non_negative_int_of_elements(tmp_path, numel):
    p = tmp_path / "w.bin"
    p.write_bytes(crafted_bin({"w": _Tensor("0", numel, 0, (8,), (1,))}, {"0": np.arange(8)}))
    assert error_text(load_state_dict, p) == f"{p}: cannot read the state dict (storage 0 declares {numel!r} elements)"


def test_a_legacy_file_read_by_path_is_named_as_legacy(tmp_path):
    """docs/robustness.md ckpt-bin-legacy-format, when the reader opens the file itself."""
    p = tmp_path / "old.bin"
    torch.save({"w": torch.arange(3.0)}, p, _use_new_zipfile_serialization=False)
    assert error_text(load_state_dict, p).startswith(f"{p}: a legacy torch.save file (the pre-1.6, non-zip format) is not supported")


# --- config.json -----------------------------------------------------------------------------


def cfg_file(tmp: Path, cfg) -> Path:
    p = tmp / "config.json"
    p.write_text(json.dumps(cfg))
    return p


@pytest.mark.parametrize(("changes", "message"), [
    ({"hidden_size": 0}, "config.json key 'hidden_size' must be a positive integer"),
    ({"num_labels": True}, "config.json key 'num_labels' must be a positive integer"),
    ({"intermediate_size": 128.0}, "config.json key 'intermediate_size' must be a positive integer"),
    ({"hidden_size": 64, "num_attention_heads": 3}, "hidden_size is not divisible by num_attention_heads"),
    ({"pad_token_id": 16000}, "config.json pad_token_id must be null or an integer in 0..vocab_size-1"),
    ({"pad_token_id": -1}, "config.json pad_token_id must be null or an integer in 0..vocab_size-1"),
    ({"pad_token_id": False}, "config.json pad_token_id must be null or an integer in 0..vocab_size-1"),
])
def test_config_values_are_refused_naming_the_key(tmp_path, tiny, changes, message):
    """upstream-formats.md §1.2; docs/robustness.md ckpt-config-bad-value, ckpt-config-pad-token-not-int."""
    p = cfg_file(tmp_path, {**tiny[0], **changes})
    assert error_text(read_config, p) == f"{p}: {message}"


def test_config_edge_values_are_accepted(tmp_path, tiny):
    """pad_token_id vocab_size-1 or null, one head, a hidden size the heads divide: all accepted."""
    for changes in ({"pad_token_id": 15999}, {"pad_token_id": None}, {"num_attention_heads": 1}, {"num_attention_heads": 64}):
        assert read_config(cfg_file(tmp_path, {**tiny[0], **changes}))["pad_token_id"] == {**tiny[0], **changes}["pad_token_id"]


@pytest.mark.parametrize("body", ["[1, 2]", '"config"', "null"])
def test_a_config_that_is_not_a_json_object_is_refused(tmp_path, body):
    p = tmp_path / "config.json"
    p.write_text(body)
    assert error_text(read_config, p) == f"{p}: config.json is not a JSON object"


def test_a_missing_config_read_by_path_is_named(tmp_path):
    assert error_text(read_config, tmp_path / "config.json") == f"{tmp_path}/config.json: checkpoint has no config.json"


def test_a_config_read_by_path_must_be_a_regular_file(tmp_path):
    """read_config(path) (sweep reads every step's this way): a directory or a device is refused by
    name before it is opened (docs/robustness.md config.json-links-to-dev-null)."""
    (tmp_path / "d" / "config.json").mkdir(parents=True)
    assert error_text(read_config, tmp_path / "d" / "config.json") == f"{tmp_path}/d/config.json: not a regular file (a directory)"
    (tmp_path / "config.json").symlink_to("/dev/null")
    assert error_text(read_config, tmp_path / "config.json") == f"{tmp_path}/config.json: not a regular file (a device)"


def test_id2label_keys_must_be_0_to_n_minus_1_and_no_id2label_means_the_v040_labels(tiny):
    """upstream-formats.md §1.2: V040's from_pretrained ignores id2label and uses its module labels."""
    cfg = tiny[0]
    shifted = {str(int(k) + 1): v for k, v in cfg["id2label"].items()}
    assert error_text(labels_from_config, {**cfg, "id2label": shifted}, "W") == "W: config.json id2label keys are not 0..N-1"
    for value in ("", 5, ["B-x"]):
        bad = {**cfg["id2label"], "20": value}
        assert error_text(labels_from_config, {**cfg, "id2label": bad}, "W") == "W: config.json id2label values must be non-empty strings"
    for no_labels in ({k: v for k, v in cfg.items() if k != "id2label"}, {**cfg, "id2label": {}}, {**cfg, "id2label": None}):
        assert labels_from_config(no_labels, "W") == (list(V040_LABELS), "v0.4.0 default (config.json has no id2label)")
    assert labels_from_config(cfg, "W") == ([cfg["id2label"][str(i)] for i in range(21)], "config.json id2label")


# --- the state dict against config.json ------------------------------------------------------


def test_layers_one_beyond_the_state_dict_list_keys_and_two_beyond_are_refused_at_once(tiny):
    """pytorch_dir.check_state_dict: one layer more than the state dict holds lists its missing keys
    (the first 8, then …); more is refused before the expected names are built."""
    cfg, state = tiny
    arrays = {k: v.numpy() for k, v in state.items()}
    msg = error_text(check_state_dict, arrays, {**cfg, "num_hidden_layers": 3}, "W")
    keys = [f"blocks.2.{n}" for n in ("ln1.weight", "ln1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
                                      "attn.out_proj.weight", "attn.out_proj.bias", "ln2.weight", "ln2.bias")]
    assert msg == "W: state dict does not match config.json — missing keys: " + ", ".join(keys) + " …"
    assert error_text(check_state_dict, arrays, {**cfg, "num_hidden_layers": 4}, "W") == (
        "W: state dict does not match config.json — config.json num_hidden_layers is 4, but the state dict holds 2 layers")


def test_each_list_of_problems_shows_its_limit_of_names_then_an_ellipsis(tiny):
    """Missing and unexpected keys and NaN tensors are listed up to 8, shape mismatches up to 6; " …"
    says there are more (docs/robustness.md ckpt-state-dict-* rows)."""
    cfg, state = tiny
    arrays = {k: v.numpy() for k, v in state.items()}
    names = [k for k in arrays if k.startswith("blocks.1.")]  # 12

    def msg(edit) -> str:  # what follows "state dict does not match config.json — " or "weights contain NaN (…): "
        text = error_text(check_state_dict, edit, cfg, "W")
        return text.split(" — ", 1)[1] if " — " in text else text.split(": ", 2)[2]

    for n, limit in ((8, 8), (9, 8)):
        gone = {k: v for k, v in arrays.items() if k not in names[:n]}
        assert msg(gone) == "missing keys: " + ", ".join(names[:limit]) + (" …" if n > limit else "")
        extra = {**arrays, **{f"extra.{i}": arrays["input_ln.bias"] for i in range(n)}}
        assert msg(extra) == "unexpected keys: " + ", ".join(f"extra.{i}" for i in range(limit)) + (" …" if n > limit else "")
        nan = {**arrays, **{k: np.full_like(arrays[k], np.nan) for k in names[:n]}}
        assert msg(nan) == ", ".join(names[:limit]) + (" …" if n > limit else "")
    for n, limit in ((6, 6), (7, 6)):
        wrong = {**arrays, **{k: arrays[k][..., :1] for k in names[:n]}}
        want = [f"{k} {tuple(arrays[k][..., :1].shape)}!={tuple(arrays[k].shape)}" for k in names[:limit]]
        assert msg(wrong) == "shape mismatches: " + ", ".join(want) + (" …" if n > limit else "")


def test_a_class_weights_buffer_is_expected_when_configured_and_not_counted_as_parameters(tmp_path, tiny):
    """upstream-formats.md §1.5: `class_weights` (a buffer) is in the state dict only if the config sets
    class_weights; like the CRF masks it is no parameter (8.87M for the shipped size)."""
    cfg, state = tiny
    weights = {lab: 1.0 for lab in cfg["id2label"].values()}
    d = step_dir(tmp_path, {**cfg, "class_weights": weights}, {**state, "class_weights": torch.ones(21)})
    b = PytorchBackend(d, engine="numpy")
    plain = PytorchBackend(TINY_STEP, engine="numpy")
    assert b.info["params"] == plain.info["params"] == sum(
        v.numel() for k, v in state.items() if k not in ("crf.transition_mask", "crf.start_mask"))
    msg = error_text(PytorchBackend, step_dir(tmp_path, {**cfg, "class_weights": weights}, state, "step-000002"), engine="numpy")
    assert msg.endswith("pytorch_model.bin: state dict does not match config.json — missing keys: class_weights")
    msg = error_text(PytorchBackend, step_dir(tmp_path, cfg, {**state, "class_weights": torch.ones(21)}, "step-000003"), engine="numpy")
    assert msg.endswith("pytorch_model.bin: state dict does not match config.json — unexpected keys: class_weights")


def test_weights_with_nan_are_refused_but_integer_buffers_and_minus_inf_masks_are_not(tiny):
    """docs/robustness.md ckpt-weights-nan and ckpt-crf-*: NaN anywhere in a float tensor and ±inf in
    the learned CRF scores are refused (naming the tensors, at most 8); -inf in the mask buffers is by design."""
    cfg, state = tiny
    arrays = {k: v.numpy() for k, v in state.items()}
    check_state_dict(arrays, cfg, "W")  # the real masks hold -inf
    assert np.isneginf(arrays["crf.transition_mask"]).sum() == 190 and np.isneginf(arrays["crf.start_mask"]).sum() == 10
    nan = dict(arrays)
    names = [k for k in arrays if k.startswith("blocks.0.")][:9]
    for k in names:
        nan[k] = np.full_like(arrays[k], np.nan)
    assert error_text(check_state_dict, nan, cfg, "W") == ("W: weights contain NaN (diverged training?): " + ", ".join(names[:8]) + " …")
    edge = {**arrays, "crf.end_transitions": np.full(21, np.finfo(np.float32).max, dtype=np.float32)}
    check_state_dict(edge, cfg, "W")  # float32's largest value is finite
    wide = {**arrays, "crf.end_transitions": np.full(21, 1e39, dtype=np.float64)}
    assert error_text(check_state_dict, wide, cfg, "W").endswith("buffers): crf.end_transitions")
    masks = {**arrays, "crf.start_mask": np.where(np.isneginf(arrays["crf.start_mask"]), np.inf, 0).astype(np.float32)}
    assert error_text(check_state_dict, masks, cfg, "W").endswith("buffers): crf.start_mask")


def test_a_checkpoint_without_a_crf_loads_and_decodes_without_one(tmp_path, tiny):
    """upstream-formats.md §1.4: without a CRF, predict falls back to per-token argmax."""
    cfg, state = tiny
    d = step_dir(tmp_path, {**cfg, "use_crf": False}, {k: v for k, v in state.items() if not k.startswith("crf.")})
    b = PytorchBackend(d, engine="numpy")
    assert b.crf is None and b.info["config"]["use_crf"] is False
    # upstream-formats.md §1.2: a config without use_crf (v0.2.0) has no CRF
    no_key = step_dir(tmp_path, {k: v for k, v in cfg.items() if k != "use_crf"},
                      {k: v for k, v in state.items() if not k.startswith("crf.")}, "step-000002")
    b = PytorchBackend(no_key, engine="numpy")
    assert b.crf is None and "use_crf" not in b.info["config"]
    crf = PytorchBackend(TINY_STEP, engine="numpy").crf
    assert crf.source == "learned" and crf.transitions.dtype == np.float32
    assert np.array_equal(crf.transitions, state["crf.transitions"].numpy())
    assert np.array_equal(crf.start, state["crf.start_transitions"].numpy())
    assert np.array_equal(crf.end, state["crf.end_transitions"].numpy())
    assert np.array_equal(crf.transition_mask, state["crf.transition_mask"].numpy())
    assert np.array_equal(crf.start_mask, state["crf.start_mask"].numpy())
    half = crf_from_state({k: v.numpy().astype(np.float16) for k, v in state.items() if k.startswith("crf.")})
    assert {a.dtype for a in (half.transitions, half.start, half.end)} == {np.dtype(np.float32)}  # scores decode in float32


# --- what PytorchBackend records ------------------------------------------------------------


def test_the_backend_records_hashes_dtypes_config_and_pad_id(tmp_path, tiny):
    cfg, state = tiny
    b = PytorchBackend(TINY_STEP, engine="numpy", threads=1)
    sha = {f: hashlib.sha256((TINY_STEP / f).read_bytes()).hexdigest() for f in ("config.json", "pytorch_model.bin")}
    assert b.info["format"] == "pytorch" and b.info["engine"] == "numpy" and b.threads == 1
    assert b.info["sha256"] == sha["pytorch_model.bin"] and b.info["files"] == sha
    assert b.info["config"] == {k: cfg[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                                   "intermediate_size", "max_position_embeddings", "num_labels", "use_crf")}
    assert b.pad_id == 0 and b.row_limit() == (128, "the checkpoint's max_position_embeddings", str(TINY_STEP / "config.json"))
    d = step_dir(tmp_path, {**cfg, "pad_token_id": 3}, state)
    assert PytorchBackend(d, engine="numpy").pad_id == 3


def test_an_unknown_engine_is_refused_by_name():
    need_shared()
    assert error_text(PytorchBackend, TINY_STEP, engine="jax") == "unknown engine 'jax' (onnx, numpy or torch)"


def test_the_torch_engine_without_torch_says_how_to_install_it(monkeypatch):
    """docs/robustness.md engine-torch-without-torch, from the backend itself (the CLI says it up front)."""
    import sys

    from mailwoman_eval.checkpoints.pytorch_dir import TORCH_MISSING

    need_shared()
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert error_text(PytorchBackend, TINY_STEP, engine="torch") == TORCH_MISSING


def test_stored_dtypes_of_a_mixed_checkpoint_are_listed_sorted(tmp_path, tiny):
    """run.json records the stored dtypes; a checkpoint mixing four is listed in one order, sorted."""
    cfg, state = tiny
    cast = {"blocks.0.": torch.bfloat16, "blocks.1.": torch.float16, "classifier.": torch.float64}
    mixed = {k: next((v.to(t) for p, t in cast.items() if k.startswith(p)), v) for k, v in state.items()}
    b = PytorchBackend(step_dir(tmp_path, cfg, mixed), engine="numpy")
    assert b.info["stored_dtypes"] == ["bfloat16", "float16", "float32", "float64"]
