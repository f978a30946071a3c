"""Atomic file output and hashing: a reader never sees a half-written file."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailwoman_eval.errors import MwevalError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync, then rename over it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise MwevalError(f"cannot write: {e.strerror}", where=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are shared like any file
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):  # disk full, quota, I/O error: the user's to fix, not a bug
            raise MwevalError(f"cannot write: {e.strerror or e}", where=str(path)) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_output_dir(out: Path, marker: str, force: bool, hint: str = "use --force") -> None:
    """Refuse early (before minutes of work) an `out` that `prepare_output_dir` would refuse.
    `hint`: what the refusal tells the user to do (a command without --force says otherwise)."""
    if out.exists() and not out.is_dir():
        raise MwevalError("output path exists and is not a directory", where=str(out))
    if out.is_dir() and any(out.iterdir()) and not (out / marker).exists() and not force:
        raise MwevalError(
            f"output directory is not empty and holds no mweval {marker}; refusing to write ({hint})",
            where=str(out),
        )
    base = out
    while not base.exists() and base.parent != base:
        base = base.parent
    if base != out and (not base.is_dir() or not os.access(base, os.W_OK | os.X_OK)):
        raise MwevalError(f"cannot create output directory: {base} is not a writable directory", where=str(out))


def prepare_output_dir(out: Path, marker: str, force: bool) -> None:
    """Check `out` may receive an mweval output whose marker file is `marker`, and create it.

    design.md Decisions: an existing directory holding an output of the same kind is replaced;
    a non-empty directory that does not is refused unless `force`.
    """
    check_output_dir(out, marker, force)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MwevalError(f"cannot create output directory: {e.strerror}", where=str(out)) from None
    if not os.access(out, os.W_OK):
        raise MwevalError("output directory is not writable", where=str(out))


@contextmanager
def output_dir(out: Path, marker: str, force: bool) -> Iterator[Path]:
    """`prepare_output_dir`, then the caller's writes; if they fail, a directory this call
    created is removed, so no half-written output (that a rerun would refuse) is left behind."""
    created = not out.exists()
    prepare_output_dir(out, marker, force)
    try:
        yield out
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def staging_dir(final: Path, what: str = "output directory") -> Path:
    """An empty directory beside `final` (same filesystem, so `replace_dir_atomically` is two
    renames), with the permissions a plain mkdir would give (mkdtemp makes 0700)."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
        os.chmod(path, 0o777 & ~_UMASK)
    except OSError as e:
        raise MwevalError(f"cannot create {what}: {e.strerror}", where=str(final.parent)) from None
    return path


def replace_dir_atomically(staging: Path, final: Path) -> None:
    """Move a fully written `staging` directory into place as `final`."""
    backup = None
    if final.exists():
        backup = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, backup)
    os.replace(staging, final)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
