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

MAX_PICKLE_BYTES = 64 << 20  # the pickle holds names and layouts, not weights

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


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    arr, dtype_name = storage
    size, stride = tuple(size), tuple(stride)
    # as_strided reads raw memory without checks: a corrupt file must not make it read past the storage
    ints = all(isinstance(x, int) and not isinstance(x, bool) for x in (offset, *size, *stride))
    if not ints or len(size) != len(stride) or offset < 0 or any(x < 0 for x in (*size, *stride)):
        raise ValueError(f"malformed tensor layout (offset {offset!r}, size {size!r}, stride {stride!r})")
    last = offset + sum((n - 1) * st for n, st in zip(size, stride, strict=True)) if all(size) else offset - 1
    if last >= len(arr):
        raise ValueError(f"tensor (offset {offset}, size {size}, stride {stride}) lies outside its storage of {len(arr)} elements")
    if len(size) == 0:
        return arr[offset : offset + 1].reshape(()).copy()
    if int(np.prod(size, dtype=object)) > len(arr):
        # stride-0 (expanded) views hold more elements than their storage: the copy below would
        # materialize them (a 323 KB file asked for 477 GiB). No state-dict parameter is one.
        raise ValueError(f"tensor of size {size} holds more elements than its storage of {len(arr)} (an expanded view)")
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
        self.cache: dict[str, tuple[np.ndarray, str]] = {}
        self.dtypes: set[str] = set()

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
        _, stype, key, _location, _numel = pid
        name = stype.name if isinstance(stype, _StorageType) else str(stype)
        if key not in self.cache:
            raw = self.zf.read(f"{self.prefix}/data/{key}")
            dt = _STORAGE_DTYPES[name]
            if dt == "bfloat16":
                # bf16 is the top half of a float32: widen exactly (upstream's loader upcasts too).
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype=np.dtype(dt).newbyteorder("<"))
            self.dtypes.add("bfloat16" if dt == "bfloat16" else np.dtype(dt).name)
            self.cache[key] = (arr, name)
        return self.cache[key]


def load_state_dict(path: str | Path, data: bytes | None = None) -> tuple[dict[str, np.ndarray], set[str]]:
    """(name -> float32/int array, set of stored dtypes). `data`: the file's bytes when the caller
    read them (and hashed those). Errors name the file."""
    path = Path(path)
    if data is None and not path.is_file():
        raise MwevalError("checkpoint weights not found", where=str(path))
    try:
        zf = zipfile.ZipFile(path if data is None else io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as e:
        raise MwevalError(f"not a torch.save zip archive (truncated or corrupt?): {e}", where=str(path)) from None
    with zf:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise MwevalError("torch archive has no single data.pkl", where=str(path))
        prefix = pkls[0][: -len("/data.pkl")]
        byteorder = f"{prefix}/byteorder"
        if byteorder in zf.namelist() and zf.read(byteorder).strip() != b"little":
            raise MwevalError("big-endian torch archives are not supported", where=str(path))
        try:
            if zf.getinfo(pkls[0]).file_size > MAX_PICKLE_BYTES:
                raise ValueError(f"data.pkl is {zf.getinfo(pkls[0]).file_size} bytes; a state dict's is a few KB")
            data = zf.read(pkls[0])
            # Counted opcodes (BINBYTES8, BYTEARRAY8, ...) make the C unpickler allocate their length
            # before it reads: one corrupt length asked for gigabytes (MemoryError, or the OOM killer).
            # pickletools walks the opcodes in Python and says when a length runs past the data.
            for _ in pickletools.genops(data):
                pass
            up = _Unpickler(io.BytesIO(data), zf, prefix)
            obj = up.load()
        except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError, zipfile.BadZipFile, OSError,
                MemoryError, OverflowError, RecursionError) as e:
            detail = " ".join(str(e).split())[:240] or type(e).__name__
            raise MwevalError(f"cannot read the state dict ({detail})", where=str(path)) from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        raise MwevalError("file does not hold a state dict (a mapping of names to tensors)", where=str(path))
    return dict(obj), up.dtypes
