"""What the bad-input tests share (test_bad_inputs.py, test_hostile_checkpoints.py): running the
CLI, a snapshot of a directory that never opens a FIFO or a device, the one-line error rule, and the
check that every case is in docs/robustness.md."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from mailwoman_eval.cli import main

ROBUSTNESS = Path(__file__).resolve().parents[1] / "docs" / "robustness.md"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def invoke(args: list[str], in_subprocess: bool = False, timeout: float = 300) -> Result:
    """In process (click's runner, a traceback fails the test), or `python -m mailwoman_eval` where a
    native library could print on file descriptor 2 behind Python's back."""
    if in_subprocess:
        p = subprocess.run([sys.executable, "-m", "mailwoman_eval", *args], capture_output=True, text=True, timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr)
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    return Result(r.exit_code, r.stdout, r.stderr)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root with its kind, mode and content hash: 'nothing changed' is equality.
    FIFOs and devices are recorded by their mode, never opened."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = "link:" + os.readlink(p)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = f"dir:{st.st_mode:o}"
        elif stat.S_ISREG(st.st_mode):
            out[rel] = "file:" + hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = f"special:{st.st_mode:o}"
    return out


def one_line_error(r, *fragments: str) -> str:
    """docs/robustness.md's rule for a result (ours or click's): exit 2, one stderr line
    `mweval: error: …` holding every fragment, nothing on stdout. Returns the line."""
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = r.stderr.splitlines()
    assert r.exit_code == 2, (r.exit_code, r.stderr, r.stdout)
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("mweval: error: "), lines[0]
    assert r.stdout == "", "an error left partial output on stdout"
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


def assert_one_line_error(r: Result, expect: tuple[str, ...], root: Path, before: dict[str, str]) -> None:
    """`one_line_error`, and nothing under `root` created or changed."""
    one_line_error(r, *expect)
    assert snapshot(root) == before, "an error left partial output behind"
    assert not list(root.rglob("*.tmp")), "a temp file was left behind"


def undocumented(ids: list[str]) -> list[str]:
    """The case ids that have no row in docs/robustness.md."""
    doc = ROBUSTNESS.read_text(encoding="utf-8")
    return [i for i in ids if f"| `{i}` |" not in doc]
