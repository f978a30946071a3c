"""Atomic file output and hashing: a reader never sees a half-written file."""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailwoman_eval.errors import MwevalError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _current_umask()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync, then rename over it (`write_files` of one)."""
    write_files({Path(path): data})


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_files(files: dict[Path, bytes]) -> None:
    """Several files that belong together (a report and its error tables): every one is written to
    a temp file first and renamed only when all are, so a failure (a full disk on the third) leaves
    none of them new beside an old one."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            if path.is_symlink():  # the file it names is updated, as a run directory's symlink is; the link stays
                path = Path(os.path.realpath(path))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                temps.append((tmp, path))
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; outputs are shared like any file
            except OSError as e:  # disk full, quota, I/O error: the user's to fix, not a bug
                raise MwevalError(f"cannot write: {e.strerror or e}", where=str(path)) from None
        with signals_deferred():  # all renamed, or (on an error) the rest not
            for tmp, path in temps:
                try:
                    os.replace(tmp, path)
                except OSError as e:
                    raise MwevalError(f"cannot write: {e.strerror or e}", where=str(path)) from None
    finally:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass  # renamed


def refuse_special_file(path: str | os.PathLike) -> None:
    """Refuse an input file (config.json, pytorch_model.bin, model.onnx, model-card.json,
    crf-transitions.json, tokenizer.model) that exists and is not a regular file: opening a FIFO
    blocks forever (a thread stuck there outlived SIGTERM), and /dev/zero never ends. `os.stat`
    follows symlinks and does not open the file. A missing path is left to the caller."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
        raise MwevalError(f"not a regular file ({kind})", where=str(Path(path)))


def refuse_overwriting_inputs(outputs, inputs, option: str = "--out") -> None:
    """An output path that is one of the command's input files (or directories) would destroy what
    it reads: `diagnose --run R --out R/run.json` replaced the run with its report, `--force` or not."""
    ins = {Path(p).resolve() for p in inputs}
    for out in outputs:
        if Path(out).resolve() in ins:
            raise MwevalError(f"{option} would overwrite an input of this command; write elsewhere", where=str(out))


def check_output_dir(out: Path, marker: str, force: bool, hint: str = "use --force") -> None:
    """Refuse early (before minutes of work) an `out` that `output_dir` would refuse. design.md
    Decisions: an existing directory holding an output of the same kind (its `marker` file) is
    replaced; a non-empty directory that does not is refused unless `force`. `hint`: what the
    refusal tells the user to do (a command without --force says otherwise)."""
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


@contextmanager
def output_dir(out: Path, marker: str, force: bool) -> Iterator[Path]:
    """`check_output_dir`, then the caller writes every file into the directory this yields (a
    staging directory beside `out`), which is moved into place once all are written
    (`move_into_place`). A failure, an interrupt or a kill leaves `out` as it was: never half of a
    new output (which a rerun would refuse) or old files beside new ones (a compare.md of one run
    next to the compare.json of another)."""
    check_output_dir(out, marker, force)
    if out.is_symlink():  # `--out runs/latest` -> an earlier run: write the run it points to, keep the link
        out = Path(os.path.realpath(out))
    staging = staging_dir(out)
    try:
        yield staging
        move_into_place(staging, out, marker)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise unstaged(e, staging, out) from None


def unstaged(e: BaseException, staging: Path, final: Path) -> BaseException:
    """`e`, naming the file under `final` the user asked for instead of the staging directory
    (removed by the time the message is read)."""
    if isinstance(e, MwevalError) and e.where and e.where.startswith(str(staging)):
        return MwevalError(e.message, where=str(final) + e.where[len(str(staging)) :])
    return e


def staging_dir(final: Path, what: str = "output directory") -> Path:
    """An empty directory beside `final` (same filesystem, so `replace_dir_atomically` is two
    renames), with the permissions a plain mkdir would give (mkdtemp makes 0700). Its name holds
    this process's id: staging directories of processes that no longer run (killed before they
    could clean up) are removed here."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(final)
        path = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-{os.getpid()}-", dir=final.parent))
        os.chmod(path, 0o777 & ~UMASK)
    except OSError as e:
        raise MwevalError(f"cannot create {what}: {e.strerror}", where=str(final.parent)) from None
    return path


def ascii_int(text: str, max_digits: int) -> int | None:
    """`text` as a number when it is 1 to `max_digits` ASCII digits, else None. str.isdigit() alone
    also takes what int() refuses ("²"), and int() refuses over 4300 digits: for names and ids
    that are the user's text."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= max_digits else None


def remove_stale_staging(final: Path) -> None:
    """Staging (`.NAME.partial-PID-*`) and replaced outputs (`.NAME.old-PID-*`) that a killed process
    left beside `final`."""
    for kind in ("partial", "old"):
        for old in final.parent.glob(f".{glob.escape(final.name)}.{kind}-*"):
            pid = ascii_int(old.name[len(final.name) + len(kind) + 3 :].split("-", 1)[0], 9)
            if pid is not None and pid != os.getpid() and not _running(pid):
                _remove(old)  # a replaced output may be a file or a symlink, which rmtree leaves


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process holds that id
        return True
    return True


def move_into_place(staging: Path, out: Path, marker: str) -> None:
    """A previous output of the same kind (or an empty directory) is replaced whole. A directory of
    other files (accepted with --force) keeps them: only the names written are replaced."""
    try:
        if not out.exists() or (out / marker).is_file() or not any(out.iterdir()):
            replace_dir_atomically(staging, out)
            return
        with signals_deferred():  # all the names, or (on an error) the rest not
            for item in sorted(staging.iterdir()):
                target = out / item.name
                if target.is_dir() and not target.is_symlink():
                    replace_dir_atomically(item, target)
                else:
                    os.replace(item, target)
        staging.rmdir()
    except OSError as e:
        raise MwevalError(f"cannot move the output into place: {e.strerror or e}", where=str(out)) from None


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the renames inside are done, then act as they would have: one
    between the two renames of `replace_dir_atomically` left no run directory at all (the old one
    moved aside, the new one not in yet), one between `write_files`' renames a new report beside
    the old error tables. Python runs signal handlers in the main thread only, so only there."""
    got: list[int] = []
    old: dict[int, object] = {}
    sigs = (signal.SIGINT, signal.SIGTERM)
    try:
        # a handler not set from Python (None) could not be put back: left alone then. signal.signal()
        # runs a pending handler first, so a signal can raise here: what was replaced is put back below
        if threading.current_thread() is threading.main_thread() and all(signal.getsignal(s) is not None for s in sigs):
            for s in sigs:
                old[s] = signal.signal(s, lambda signum, frame: got.append(signum))
        yield
    finally:
        raised: BaseException | None = None
        for s, handler in old.items():  # every one put back, even if a signal comes in meanwhile
            try:
                signal.signal(s, handler)
            except BaseException as e:  # noqa: BLE001 - re-raised once all are restored
                raised = raised or e
        if raised is not None:
            raise raised
        if got:
            signal.raise_signal(got[0])  # now, to the handler it was meant for


def replace_dir_atomically(staging: Path, final: Path) -> None:
    """Move a fully written `staging` directory into place as `final`. If that fails, the previous
    `final` is put back. Another process may put a `final` there between the two renames (two runs
    of one command at once): then it is tried again, and the last one wins. Signals wait (`signals_deferred`)."""
    with signals_deferred():
        _replace_dir(staging, final)


def _replace_dir(staging: Path, final: Path) -> None:
    for attempt in range(10):
        backup = None
        if final.exists():
            backup = final.with_name(f".{final.name}.old-{os.getpid()}-{attempt}")
            try:
                os.replace(final, backup)
            except FileNotFoundError:  # the other process moved it first
                backup = None
        try:
            os.replace(staging, final)
        except OSError as e:
            if backup is not None:
                try:
                    os.replace(backup, final)  # the previous output stays what a reader finds
                except OSError:  # another process's is there now
                    _remove(backup)
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST) and attempt < 9:
                continue
            raise
        if backup is not None:
            _remove(backup)
        return


def _remove(path: Path) -> None:
    """A directory with what it holds, or a file or a symlink itself (rmtree refuses a symlink, and
    with ignore_errors left a `.NAME.old-PID-N` link behind for good)."""
    if path.is_symlink() or not path.is_dir():
        try:
            path.unlink()
        except OSError:
            pass
    else:
        shutil.rmtree(path, ignore_errors=True)
