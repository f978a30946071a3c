"""Read a `torch.save`d state dict into numpy arrays without importing torch.

`import torch` alone costs 2-3 s here; evaluation only needs the tensors. The zip layout is
`<prefix>/data.pkl` (a pickle whose tensors refer to storages by persistent id) plus
`<prefix>/data/<key>` raw little-endian storages. The unpickler below is restricted to the few
globals a state dict uses (like `torch.load(weights_only=True)`), so a hostile file cannot run code.
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
import zipfile
from pathlib import Path

import numpy as np

from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import refuse_special_file

MAX_PICKLE_BYTES = 64 << 20  # the pickle holds names and layouts, not weights
VIEW_FACTOR = 4  # tensor elements copied per storage element read: tied weights make 2
# torch.save stores members uncompressed; float weights re-zipped deflate ~1.1x. A member inflating
# more than this is refused before it is read (runs of zeros deflate ~1000x).
MAX_INFLATE_RATIO = 100
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
# torch.save before 1.6 (or _use_new_zipfile_serialization=False) writes a bare pickle that opens
# with PROTO 2 and this magic number (a LONG1): not a zip archive.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name


class _Storage:
    """A storage as `persistent_load` made it: the only thing a tensor may be rebuilt from (a pickle
    cannot build one: find_class never returns this class). A list passed in its place was read."""

    def __init__(self, arr: np.ndarray, name: str, loader: _Unpickler):
        self.arr, self.name, self.loader = arr, name, loader


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise ValueError(f"a tensor is rebuilt from {type(storage).__name__}, not from a storage")
    arr = storage.arr
    size, stride = tuple(size), tuple(stride)
    # as_strided reads raw memory without checks: a corrupt file must not make it read past the storage
    ints = all(isinstance(x, int) and not isinstance(x, bool) for x in (offset, *size, *stride))
    if not ints or len(size) != len(stride) or offset < 0 or any(x < 0 for x in (*size, *stride)):
        raise ValueError(f"malformed tensor layout (offset {offset!r}, size {size!r}, stride {stride!r})")
    last = offset + sum((n - 1) * st for n, st in zip(size, stride, strict=True)) if all(size) else offset - 1
    if last >= len(arr):
        raise ValueError(f"tensor (offset {offset}, size {size}, stride {stride}) lies outside its storage of {len(arr)} elements")
    if len(size) == 0:
        storage.loader.materialise(1)
        return arr[offset : offset + 1].reshape(()).copy()
    numel = int(np.prod(size, dtype=object))
    if numel > len(arr):
        # stride-0 (expanded) views hold more elements than their storage: the copy below would
        # materialize them (a 323 KB file asked for 477 GiB). No state-dict parameter is one.
        raise ValueError(f"tensor of size {size} holds more elements than its storage of {len(arr)} (an expanded view)")
    storage.loader.materialise(numel)
    itemsize = arr.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        arr[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.array(view)  # contiguous copy


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, zf: zipfile.ZipFile, prefix: str):
        super().__init__(fh)
        self.zf = zf
        self.prefix = prefix
        self.cache: dict[str, _Storage] = {}
        self.dtypes: set[str] = set()
        self.stored = 0  # elements in the storages read so far
        self.copied = 0  # elements of the tensors built from them (each one is a copy)

    def materialise(self, numel: int) -> None:
        """Every tensor is copied out of its storage: 600 tensors viewing one 4 MB storage asked for
        2.4 GB from a 16 KB file. Tied weights share a storage twice; more than VIEW_FACTOR times the
        storages read is refused before the copy."""
        self.copied += numel
        if self.copied > VIEW_FACTOR * self.stored:
            raise ValueError(f"its tensors hold {self.copied} elements but its storages only {self.stored} "
                             f"(more than {VIEW_FACTOR} tensors viewing each storage)")

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a state dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        _, stype, key, _location, numel = pid
        name = stype.name if isinstance(stype, _StorageType) else str(stype)
        if not isinstance(key, str):
            raise pickle.UnpicklingError(f"storage key {key!r} is not a string")
        if key not in self.cache:
            dt = _STORAGE_DTYPES[name]
            if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
                raise ValueError(f"storage {key} declares {numel!r} elements")
            itemsize = 2 if dt == "bfloat16" else np.dtype(dt).itemsize
            raw = read_entry(self.zf, f"{self.prefix}/data/{key}", numel * itemsize,
                             f"its header declares {numel} elements of {itemsize} bytes")
            if dt == "bfloat16":
                # bf16 is the top half of a float32: widen exactly (upstream's loader upcasts too).
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype=np.dtype(dt).newbyteorder("<"))
            self.dtypes.add("bfloat16" if dt == "bfloat16" else np.dtype(dt).name)
            self.cache[key] = _Storage(arr, name, self)
            self.stored += len(arr)
        return self.cache[key]


def read_entry(zf: zipfile.ZipFile, name: str, limit: int, declared: str) -> bytes:
    """One archive member, refused before it is inflated when it is larger than `limit` bytes (a
    1.5 MB file inflated a 1.6 GB storage whose tensor declared 4 elements), compressed far beyond
    what weights compress to (a zip bomb), encrypted, or compressed by a method zipfile lacks."""
    info = zf.getinfo(name)
    if info.flag_bits & 0x1:
        raise ValueError(f"archive member {name} is encrypted")
    if info.compress_type not in _ZIP_METHODS:
        raise ValueError(f"archive member {name} uses compression method {info.compress_type}, which zipfile cannot read")
    if info.file_size > limit:
        raise ValueError(f"archive member {name} holds {info.file_size} bytes, more than {limit} ({declared})")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_INFLATE_RATIO * info.compress_size + (1 << 16):
        raise ValueError(f"archive member {name} inflates {info.compress_size} bytes to {info.file_size} (a zip bomb?)")
    return zf.read(info)


def load_state_dict(path: str | Path, data: bytes | None = None) -> tuple[dict[str, np.ndarray], set[str]]:
    """(name -> float32/int array, set of stored dtypes). `data`: the file's bytes when the caller
    read them (and hashed those). Errors name the file."""
    path = Path(path)
    if data is None:
        refuse_special_file(path)
        if not path.is_file():
            raise MwevalError("checkpoint weights not found", where=str(path))
    try:
        zf = zipfile.ZipFile(path if data is None else io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as e:
        if _is_legacy(path, data):
            raise MwevalError("a legacy torch.save file (the pre-1.6, non-zip format) is not supported; "
                              "re-save it with a current torch (torch.save(torch.load(f), f))", where=str(path)) from None
        raise MwevalError(f"not a torch.save zip archive (truncated or corrupt?): {e}", where=str(path)) from None
    with zf:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise MwevalError("torch archive has no single data.pkl", where=str(path))
        prefix = pkls[0][: -len("/data.pkl")]
        byteorder = f"{prefix}/byteorder"
        try:
            order = read_entry(zf, byteorder, 16, "a byte order") if byteorder in zf.namelist() else b"little"
            if order == b"big":
                raise MwevalError("big-endian torch archives are not supported", where=str(path))
            if order != b"little":  # torch.load refuses these too ("Unknown endianness type")
                raise MwevalError(f"unknown byte order {order!r} in the torch archive (torch writes 'little' or 'big')",
                                  where=str(path))
            if zf.getinfo(pkls[0]).file_size > MAX_PICKLE_BYTES:
                raise ValueError(f"data.pkl is {zf.getinfo(pkls[0]).file_size} bytes; a state dict's is a few KB")
            data = read_entry(zf, pkls[0], MAX_PICKLE_BYTES, "the pickle")
            # Counted opcodes (BINBYTES8, BYTEARRAY8, ...) make the C unpickler allocate their length
            # before it reads: one corrupt length asked for gigabytes (MemoryError, or the OOM killer).
            # pickletools walks the opcodes in Python and says when a length runs past the data.
            for _ in pickletools.genops(data):
                pass
            up = _Unpickler(io.BytesIO(data), zf, prefix)
            obj = up.load()
        except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError, zipfile.BadZipFile, OSError,
                MemoryError, OverflowError, RecursionError, NotImplementedError, RuntimeError) as e:
            detail = " ".join(str(e).split())[:240] or type(e).__name__
            raise MwevalError(f"cannot read the state dict ({detail})", where=str(path)) from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        raise MwevalError("file does not hold a state dict (a mapping of names to tensors)", where=str(path))
    return dict(obj), up.dtypes


def _is_legacy(path: Path, data: bytes | None) -> bool:
    if data is None:
        try:
            with open(path, "rb") as f:
                data = f.read(len(_LEGACY_MAGIC))
        except OSError:
            return False
    return data.startswith(_LEGACY_MAGIC)
