"""Exit codes when the process is stopped or its reader goes away (real subprocesses: the signal and
the pipe are the operating system's). Ctrl-C and a closed stdout used to exit 1 — the gate's
"regression" code — even for a gate that passed; SIGTERM exited 143 without a word."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import GOLDEN_V012, TOKENIZER_V010, V040SIZE, need_shared

STOPPED = "unfinished outputs were not written"


def mweval(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mailwoman_eval", *map(str, args)], **kwargs)


@pytest.mark.parametrize(("sig", "code", "how"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_stopped_eval_says_so_in_one_line_and_exits_128_plus_the_signal(tmp_path, sig, code, how):
    need_shared()
    out = tmp_path / "out"
    p = mweval("eval", "--ckpt", V040SIZE, "--tokenizer", TOKENIZER_V010, "--golden", GOLDEN_V012, "--out", out, "--no-cache",
               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    note = p.stderr.readline()  # the progress note comes before the model loads; the evaluation takes seconds
    assert note.startswith("mweval: "), note
    time.sleep(0.5)
    p.send_signal(sig)
    rest = p.stderr.read()
    assert p.wait(timeout=120) == code, rest
    lines = [s for s in rest.splitlines() if s.strip() and not s.startswith("warning: ")]
    assert lines == [f"mweval: {how}; {STOPPED}"], rest
    assert not out.exists() and not [x for x in tmp_path.iterdir() if ".partial" in x.name]


def test_a_closed_stdout_keeps_the_commands_exit_code(tmp_path):
    """`mweval golden list | true`, and a gate that passes piped into a reader that quits: the
    command's own exit code (0), no traceback on stderr."""
    demo = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "mailwoman_eval", "eval", "--ckpt", "step-002200", "--golden", "demo-v1",
                        "--out", str(demo), "-q", "--no-cache"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    for args in (["golden", "list"], ["gate", "--baseline", demo, "--candidate", demo, "--out", tmp_path / "gate", "-q"]):
        r_fd, w_fd = os.pipe()
        os.close(r_fd)  # the reader is gone before the first line is written
        p = mweval(*args, stdout=w_fd, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        os.close(w_fd)
        err = p.stderr.read()
        assert p.wait(timeout=300) == 0, (args, err)
        assert all(s.startswith("warning: ") for s in err.splitlines()), (args, err)  # the same run on both sides says so
    assert (tmp_path / "gate" / "verdict.json").is_file()


@pytest.mark.parametrize(("stop", "code"), [(KeyboardInterrupt(), 130), (SystemExit(143), 143)])
def test_a_ctrl_c_or_sigterm_inside_an_import_exits_as_such_not_1(tmp_path, monkeypatch, stop, code):
    """sentencepiece's import, interrupted, raises "ImportError: initialization failed" caused by the
    KeyboardInterrupt (or by _terminated's SystemExit): a traceback and exit 1, the gate's
    "regression" code."""
    from click.testing import CliRunner

    import mailwoman_eval.evaluate as ev
    from mailwoman_eval.cli import main

    def interrupted_import(*a, **k):
        try:
            raise stop
        except BaseException as e:
            raise ImportError("initialization failed") from e

    monkeypatch.setattr(ev, "evaluate", interrupted_import)
    r = CliRunner().invoke(main, ["eval", "--ckpt", "step-002200", "--golden", "demo-v1", "-q", "--out", str(tmp_path / "r")])
    assert r.exit_code == code and "Traceback" not in r.stderr, (r.exit_code, r.stderr)
    if code == 130:
        assert r.stderr.strip() == f"mweval: interrupted; {STOPPED}"


def test_a_symlink_loop_is_one_line(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    p = subprocess.run([sys.executable, "-m", "mailwoman_eval", "eval", "--ckpt", "step-002200", "--golden", "demo-v1", "-q",
                        "--out", "loop"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and p.stderr.strip() == f"mweval: error: {tmp_path / 'loop'}: a symlink loop", p.stderr


# A loader that has not finished when the command ends: the real case is an onnxruntime session
# still being made in C++ past wait_briefly's bound, which aborts the process (exit 134, "terminate
# called without an active exception") if it returns while the interpreter finalizes. Here the
# loader waits on an Event nobody sets, and an atexit handler shows whether the interpreter
# finalized: it must not while a loader runs, and must as usual when none does.
LOADER_STILL_RUNNING = r"""
import atexit, sys, threading
import mailwoman_eval.evaluate as ev
atexit.register(lambda: sys.stderr.write("FINALIZED\n"))
if sys.argv[1] == "stuck":
    never = threading.Event()
    ev.load_backend = lambda *a, **k: never.wait()
    ev.wait_briefly = lambda futures, seconds=10.0: None
sys.argv = ["mweval", "eval", "--ckpt", "step-002200", "--golden", "demo-v1", "--out", sys.argv[2], "-q", "--no-cache"]
from mailwoman_eval.__main__ import run
run()
"""


@pytest.mark.parametrize("loader", ["stuck", "done"])
def test_a_command_ending_while_a_loader_runs_exits_with_its_code_without_finalizing(tmp_path, loader):
    out = tmp_path / "out"
    out.write_text("not a run\n")  # refused after the golden set loads, while the loaders work
    r = subprocess.run([sys.executable, "-c", LOADER_STILL_RUNNING, loader, str(out)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("mweval: error:") and str(out) in lines[0], r.stderr
    assert ("FINALIZED" in lines) == (loader == "done"), r.stderr
    assert out.read_text() == "not a run\n"
