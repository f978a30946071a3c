"""Atomic outputs, rule by rule (design.md Decisions "Outputs"; README "Bad input"; the fsutil.py
docstrings): written files and output directories get the permissions a plain open/mkdir would give
under the process umask (not mkstemp's 0600 / mkdtemp's 0700); a symlinked output is written
through, the link kept; a forced directory of other files keeps them and only the names written are
replaced; a directory replaced by `replace_dir_atomically` leaves no backup, and a symlink standing
where the directory goes is removed as a link (the directory it pointed to is not emptied);
this process's own staging is never removed as stale; an error inside a staging directory names the
path the user asked for; and `sha256_file` hashes files of more than one read block.

Each rule is checked on real files in a temporary directory.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from conftest import error_text

from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import (
    atomic_write_text,
    check_output_dir,
    output_dir,
    refuse_overwriting_inputs,
    remove_stale_staging,
    replace_dir_atomically,
    sha256_file,
    staging_dir,
    unstaged,
    write_files,
)


@pytest.fixture
def umask_026():
    """A umask that differs from the usual 022 in the group and other bits (and leaves other's x),
    so that a mode computed from another constant or another umask shows."""
    from mailwoman_eval import fsutil

    old = os.umask(0o026)
    saved = fsutil.UMASK
    fsutil.UMASK = 0o026  # read once at import, as the process's umask is set once at start
    try:
        yield
    finally:
        fsutil.UMASK = saved
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_reading_the_umask_leaves_it_as_it_was():
    from mailwoman_eval import fsutil

    before = os.umask(0o027)
    try:
        assert fsutil._current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # reading it did not change it
    finally:
        os.umask(before)


def test_written_files_and_output_directories_get_the_umasks_permissions(tmp_path, umask_026):
    write_files({tmp_path / "a.html": b"<p>a</p>", tmp_path / "sub" / "deeper" / "b.csv": b"x\n"})
    assert mode(tmp_path / "a.html") == 0o640 and mode(tmp_path / "sub" / "deeper" / "b.csv") == 0o640
    atomic_write_text(tmp_path / "c.md", "é\n")
    assert (tmp_path / "c.md").read_bytes() == "é\n".encode() and mode(tmp_path / "c.md") == 0o640
    with output_dir(tmp_path / "run", "run.json", False) as d:
        (d / "run.json").write_text("{}")
    assert mode(tmp_path / "run") == 0o751
    staging = staging_dir(tmp_path / "other")
    assert mode(staging) == 0o751 and staging.name.startswith(f".other.partial-{os.getpid()}-")


def test_no_temporary_file_is_left_beside_what_was_written(tmp_path):
    write_files({tmp_path / "a": b"1", tmp_path / "b": b"2"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_outputs_are_written_from_a_worker_thread_too(tmp_path):
    """Signal handlers can only be swapped in the main thread: elsewhere the renames go ahead
    without (signal.signal raised ValueError there)."""
    import threading

    errors: list[BaseException] = []

    def write() -> None:
        try:
            write_files({tmp_path / "a": b"1"})
            with output_dir(tmp_path / "run", "run.json", False) as d:
                (d / "run.json").write_text("{}")
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            errors.append(e)

    t = threading.Thread(target=write)
    t.start()
    t.join(30)
    assert errors == [] and (tmp_path / "a").read_bytes() == b"1" and (tmp_path / "run" / "run.json").is_file()


def test_a_symlinked_output_file_is_written_through_and_the_link_kept(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "report.html").write_text("old")
    (tmp_path / "report.html").symlink_to(tmp_path / "real" / "report.html")
    atomic_write_text(tmp_path / "report.html", "new")
    assert (tmp_path / "report.html").is_symlink()
    assert (tmp_path / "real" / "report.html").read_text() == "new"


def test_a_symlinked_output_directory_gets_the_run_and_the_link_stays(tmp_path):
    target = tmp_path / "runs" / "step-1"
    target.mkdir(parents=True)
    (target / "run.json").write_text("old")
    (tmp_path / "latest").symlink_to(target)
    with output_dir(tmp_path / "latest", "run.json", False) as d:
        (d / "run.json").write_text("new")
    assert (tmp_path / "latest").is_symlink() and (target / "run.json").read_text() == "new"


def test_a_forced_directory_of_other_files_keeps_them_and_only_the_names_written_are_replaced(tmp_path):
    out = tmp_path / "mine"
    (out / "tables").mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    (out / "tables" / "stale.csv").write_text("from before")
    (out / "report.html").write_text("old")
    with pytest.raises(MwevalError, match="holds no mweval run.json"):
        check_output_dir(out, "run.json", False)
    with output_dir(out, "run.json", True) as d:
        (d / "report.html").write_text("new")
        (d / "tables").mkdir()
        (d / "tables" / "a.csv").write_text("a")
    assert (out / "notes.txt").read_text() == "keep me" and (out / "report.html").read_text() == "new"
    assert sorted(p.name for p in (out / "tables").iterdir()) == ["a.csv"]  # a directory written is replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # the staging directory is gone


@pytest.mark.parametrize("there", ["a directory", "a file"])
def test_what_stood_where_the_directory_goes_is_replaced_and_no_backup_stays(tmp_path, there):
    final = tmp_path / "out"
    if there == "a directory":
        final.mkdir()
        (final / "old.jsonl").write_text("old")
    else:
        final.write_text("a file of the same name")
    staging = staging_dir(final)
    (staging / "run.json").write_text("{}")
    replace_dir_atomically(staging, final)
    assert sorted(p.name for p in final.iterdir()) == ["run.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_symlink_where_the_directory_goes_is_removed_as_a_link_not_emptied(tmp_path):
    """The link is moved aside and removed once the new directory is in place: what it pointed to is
    someone else's directory, and must keep its files (and no `.NAME.old-PID-N` link may stay)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep")
    final = tmp_path / "out"
    final.symlink_to(elsewhere)
    staging = tmp_path / "staged"
    staging.mkdir()
    (staging / "run.json").write_text("{}")
    replace_dir_atomically(staging, final)
    assert not final.is_symlink() and sorted(p.name for p in final.iterdir()) == ["run.json"]
    assert (elsewhere / "precious.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "out"]


def test_staging_of_live_processes_is_kept_and_they_are_not_signalled(tmp_path):
    """A live process is asked with signal 0, which sends nothing: another signal there would hang
    up (or kill) the process that is writing."""
    import subprocess
    import sys

    final = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = tmp_path / f".out.partial-{child.pid}-abc"
        theirs.mkdir()
        mine = tmp_path / f".out.partial-{os.getpid()}-abc"
        mine.mkdir()
        remove_stale_staging(final)
        assert theirs.is_dir() and mine.is_dir()
        with pytest.raises(subprocess.TimeoutExpired):  # still running: not signalled (a SIGHUP ends it at once)
            child.wait(timeout=1)
    finally:
        child.kill()
        child.wait()


def test_stale_staging_and_backups_are_removed_whatever_they_are(tmp_path):
    """A killed process's backup of a replaced output may be a directory, a file or a symlink (the
    output it replaced); rmtree removed only directories, and left the others for good."""
    final = tmp_path / "out"
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep.txt").write_text("keep")
    dead = 999999999  # no process has that id (pid_max is at most 2**22)
    (tmp_path / f".out.partial-{dead}-x").mkdir()
    (tmp_path / f".out.old-{dead}-0").write_text("a replaced file")
    (tmp_path / f".out.old-{dead}-1").symlink_to(tmp_path / "target")
    (tmp_path / ".out.old-²-0").mkdir()  # not a process id: left alone
    remove_stale_staging(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.old-²-0", "target"]
    assert (tmp_path / "target" / "keep.txt").read_text() == "keep"


def test_an_error_inside_the_staging_directory_names_the_path_asked_for(tmp_path):
    final = tmp_path / "out"
    staging = tmp_path / ".out.partial-1-x"
    e = unstaged(MwevalError("cannot write: No space left on device", where=str(staging / "tables" / "a.csv")), staging, final)
    assert str(e) == f"{final / 'tables' / 'a.csv'}: cannot write: No space left on device"
    other = MwevalError("bad", where=str(tmp_path / "input.jsonl") + ":3")
    assert unstaged(other, staging, final) is other
    plain = KeyboardInterrupt()
    assert unstaged(plain, staging, final) is plain
    nowhere = MwevalError("no file named")
    assert unstaged(nowhere, staging, final) is nowhere
    with pytest.raises(MwevalError) as got, output_dir(final, "run.json", False) as d:
        raise MwevalError("cannot write: disk full", where=str(d / "predictions.jsonl"))
    assert str(got.value) == f"{final / 'predictions.jsonl'}: cannot write: disk full"


def test_an_output_that_is_an_input_is_refused_by_its_option(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    assert error_text(refuse_overwriting_inputs, [tmp_path / "x.html", run / "." / "run.json"], [run / "run.json"], "--html") == (
        f"{run / '.' / 'run.json'}: --html would overwrite an input of this command; write elsewhere")
    assert error_text(refuse_overwriting_inputs, [run], [run]).endswith(": --out would overwrite an input of this command; write elsewhere")
    refuse_overwriting_inputs([tmp_path / "elsewhere"], [run / "run.json"])  # no error


def test_an_output_path_that_is_a_file_or_under_an_unwritable_place_is_refused_early(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    f.chmod(0o755)  # writable and executable, still not a directory
    assert error_text(check_output_dir, f, "run.json", True) == f"{f}: output path exists and is not a directory"
    assert error_text(check_output_dir, f / "sub" / "run", "run.json", False) == (
        f"{f / 'sub' / 'run'}: cannot create output directory: {f} is not a writable directory")
    check_output_dir(tmp_path / "new" / "deeper", "run.json", False)  # a path yet to be made under a writable one
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", "run.json", False)  # an empty directory is taken
    assert error_text(staging_dir, f / "run") == f"{f}: cannot create output directory: File exists"
    assert error_text(staging_dir, f / "v0.1.2", "the golden data directory") == (
        f"{f}: cannot create the golden data directory: File exists")


def test_a_socket_is_not_a_regular_file(tmp_path):
    import socket

    from mailwoman_eval.fsutil import refuse_special_file

    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        assert error_text(refuse_special_file, path) == f"{path}: not a regular file (a socket)"
    refuse_special_file(tmp_path / "missing")  # left to the caller


def test_sha256_file_hashes_every_block(tmp_path):
    data = os.urandom(1 << 20) + b"tail"  # more than one 1 MiB read
    (tmp_path / "big.bin").write_bytes(data)
    assert sha256_file(tmp_path / "big.bin") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()
