"""Outputs land whole or not at all: a failure, Ctrl-C, SIGTERM or a kill mid-write leaves the
previous output as it was, never half of a new one or old files beside new ones."""

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailwoman_eval.cli import main
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import output_dir, replace_dir_atomically, staging_dir, write_files

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_an_interrupted_write_leaves_no_directory_and_no_staging(tmp_path):
    """SIGTERM now unwinds as SystemExit (below): the staging directory goes, `out` never appears
    (a half-written `out` made the next run refuse it as 'not empty and holds no run.json')."""
    out = tmp_path / "o"
    with pytest.raises(SystemExit), output_dir(out, "run.json", False) as d:
        (d / "predictions.jsonl").write_text("x\n")
        raise SystemExit(143)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_failed_rewrite_keeps_every_old_file_and_names_the_real_path(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    out.mkdir()
    for name in ("compare.md", "compare.html", "compare.json"):
        (out / name).write_text("old " + name)
    real = os.replace

    def replace(src, dst, *a, **k):  # the staging directory cannot be moved into place
        if Path(dst) == out and ".partial-" in Path(src).name:
            raise ENOSPC
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(MwevalError) as e, output_dir(out, "compare.json", False) as d:
        for name in ("compare.md", "compare.html", "compare.json"):
            (d / name).write_text("new " + name)
    assert str(out) in str(e.value) and ".partial-" not in str(e.value)
    assert sorted(p.read_text() for p in out.iterdir()) == ["old compare.html", "old compare.json", "old compare.md"]
    assert [p.name for p in tmp_path.iterdir()] == ["cmp"]


def test_staging_left_by_a_killed_process_is_removed_and_a_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".o.partial-{int(dead.stdout)}-abc"
    live = tmp_path / f".o.partial-{os.getppid()}-def"  # pytest's parent: running
    other = tmp_path / ".other.partial-1-x"
    backup = tmp_path / f".o.old-{int(dead.stdout)}-0"  # killed between the two renames of a replacement
    # names no mweval process made (int() refuses "²"; os.kill a pid of 30 digits): kept, no traceback
    odd = [tmp_path / f".o.partial-{pid}-x" for pid in ("²", "9" * 30, "", "-1")]
    for d in (stale, live, other, backup, *odd):
        (d / "runs").mkdir(parents=True)
    s = staging_dir(tmp_path / "o")
    assert not stale.exists() and not backup.exists() and live.exists() and other.exists() and s.is_dir()
    assert all(d.is_dir() for d in odd)


def test_two_processes_moving_into_one_place_both_finish(tmp_path, monkeypatch):
    """The other run's directory appears between our two renames: we retry, last one wins
    (it was OSError 'Directory not empty', a traceback from two `golden pull`s at once)."""
    final = tmp_path / "v"
    final.mkdir()
    (final / "old").write_text("old")
    mine = staging_dir(final)
    (mine / "new").write_text("mine")
    real = os.replace
    raced = []

    def replace(src, dst, *a, **k):
        if Path(src) == mine and not raced:
            raced.append(1)
            final.mkdir()
            (final / "theirs").write_text("theirs")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    replace_dir_atomically(mine, final)
    assert [p.name for p in final.iterdir()] == ["new"] and raced
    assert [p.name for p in tmp_path.iterdir()] == ["v"]


def test_report_and_tables_are_renamed_only_when_all_are_written(tmp_path, monkeypatch):
    """diagnose on a full disk: the HTML failed after the CSV and Parquet were in place, new
    tables beside a stale report."""
    files = {tmp_path / "r.html": b"<html>", tmp_path / "r.errors.csv": b"a,b\n", tmp_path / "r.errors.parquet": b"PAR1"}
    real = os.fdopen
    calls = []

    def fdopen(fd, *a, **k):
        calls.append(fd)
        if len(calls) == 3:
            os.close(fd)
            raise ENOSPC
        return real(fd, *a, **k)

    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(MwevalError, match="r.errors.parquet: cannot write"):
        write_files(files)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_files(files)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == files


def test_sigterm_unwinds_like_ctrl_c():
    """The CLI turns SIGTERM (a CI timeout, kill) into SystemExit so cleanup runs; Python's default
    handler ended the process on the spot and left staging and half-written directories."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        CliRunner().invoke(main, ["golden", "list"])
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        with pytest.raises(SystemExit) as e:
            handler(signal.SIGTERM, None)
        assert e.value.code == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_full_cache_disk_is_a_warning_not_a_failed_command(tmp_path, monkeypatch):
    """The run directory was written, then storing it in the cache hit ENOSPC: write_files says that
    as an MwevalError, which the cache store did not catch, so eval, diagnose, gate and sweep all
    exited 2 (gate's "bad input", not its verdict) naming a staging path that no longer existed."""
    from mailwoman_eval.checkpoints.resolve import BUNDLED_RUNS

    if not (BUNDLED_RUNS / "regressed" / "step-002200").is_dir():
        pytest.skip("demo runs not built")
    cache = tmp_path / "cache"
    monkeypatch.setenv("MWEVAL_CACHE", str(cache))
    real = os.fdopen

    def fdopen(fd, *a, **k):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(cache)):
            os.close(fd)
            raise ENOSPC
        return real(fd, *a, **k)

    monkeypatch.setattr(os, "fdopen", fdopen)
    r = CliRunner().invoke(main, ["eval", "--ckpt", "step-002200", "--golden", "demo-v1", "--out", str(tmp_path / "run"), "-q"])
    assert r.exit_code == 0, r.output
    assert f"warning: the run cache at {cache} cannot be written (No space left on device)" in r.stderr
    assert (tmp_path / "run" / "run.json").is_file() and not list((cache / "runs").iterdir())


def ctrl_c_after_the_first_rename(monkeypatch) -> None:
    """os.replace does its rename, and the first one is followed by a Ctrl-C to the process."""
    real = os.replace
    calls = []

    def replace(a, b):
        calls.append(b)
        real(a, b)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # to the process, as Ctrl-C

    monkeypatch.setattr(os, "replace", replace)


def test_a_ctrl_c_between_the_renames_waits_for_them(tmp_path, monkeypatch):
    """A signal after the old run directory was moved aside and before the new one was moved in
    left no directory at all (and the next eval deleted the backup as stale)."""
    final, staging = tmp_path / "run", tmp_path / ".run.staging"
    final.mkdir()
    (final / "run.json").write_text("old")
    staging.mkdir()
    (staging / "run.json").write_text("new")
    ctrl_c_after_the_first_rename(monkeypatch)  # the old one is aside then
    with pytest.raises(KeyboardInterrupt):
        replace_dir_atomically(staging, final)
    assert (final / "run.json").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_between_a_reports_renames_waits_for_them(tmp_path, monkeypatch):
    files = {tmp_path / "r.html": b"<html>new", tmp_path / "r.errors.csv": b"new\n"}
    for p in files:
        p.write_bytes(b"old")
    ctrl_c_after_the_first_rename(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        write_files(files)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == files  # both new, not a new report beside old tables


def test_a_symlinked_report_updates_the_file_it_names(tmp_path):
    """diagnose --out LINK replaced the link with a regular file (a run directory's link was kept)."""
    (tmp_path / "shared").mkdir()
    target = tmp_path / "shared" / "r.html"
    target.write_bytes(b"old")
    (tmp_path / "r.html").symlink_to(target)
    write_files({tmp_path / "r.html": b"new"})
    assert (tmp_path / "r.html").is_symlink() and target.read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["r.html"]


def test_a_ctrl_c_between_the_renames_into_a_forced_directory_waits_for_them(tmp_path, monkeypatch):
    """--force into a directory of other files moves each name in on its own: a Ctrl-C after the
    first left predictions.jsonl new and no run.json."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    ctrl_c_after_the_first_rename(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        with output_dir(out, "run.json", force=True) as d:
            (d / "predictions.jsonl").write_text("new")
            (d / "run.json").write_text("new")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"notes.txt": "mine", "predictions.jsonl": "new", "run.json": "new"}


def test_handlers_are_put_back_when_a_signal_comes_in_while_they_are_swapped(monkeypatch):
    """signal.signal() runs a pending handler first: a SIGTERM arriving between the two swaps raised
    outside the try and left Ctrl-C recorded, and so swallowed, for good."""
    from mailwoman_eval.fsutil import signals_deferred

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    real = signal.signal
    calls = []

    def swap(s, h):
        calls.append(s)
        if len(calls) == 2:  # the second swap: a pending SIGTERM's handler runs before it changes anything
            raise SystemExit(143)
        return real(s, h)

    monkeypatch.setattr(signal, "signal", swap)
    with pytest.raises(SystemExit):
        with signals_deferred():
            pass
    monkeypatch.undo()
    assert {s: signal.getsignal(s) for s in before} == before
