"""Same inputs, same bytes: eval, diagnose, compare and gate run twice give identical outputs,
apart from run.json's `timings` block (design.md, "The run artifact")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import GOLDEN_V012, TINY, TINY_STEP, TOKENIZER_V010, need_shared

from mailwoman_eval.cli import main

pytestmark = pytest.mark.usefixtures("shared")


def cli(*args: str) -> tuple[str, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code in (0, 1), r.stderr  # gate may exit 1 by design
    return r.stdout, r.stderr


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def without_timings(run_json: bytes) -> dict:
    doc = json.loads(run_json)
    assert "timings" in doc
    doc.pop("timings")
    return doc


def run_twice(args: list[str], out: Path) -> tuple[tuple, tuple]:
    """Run a command twice into the same output path; return (stdout, files) of each run."""
    results = []
    for _ in range(2):
        stdout, _ = cli(*args)
        results.append((stdout, files(out) if out.is_dir() else {out.name: out.read_bytes()}))
    return results[0], results[1]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two evaluations of the tiny checkpoint on v0.1.2/test, without the cache, in two directories."""
    need_shared()
    base = tmp_path_factory.mktemp("det")
    outs = []
    for name in ("a", "b"):
        out = base / name
        cli("eval", "--ckpt", str(TINY_STEP), "--golden", str(GOLDEN_V012 / "test"), "--tokenizer", str(TOKENIZER_V010),
            "--no-cache", "-q", "--out", str(out))
        outs.append(out)
    return outs


def test_eval_twice_is_byte_identical_apart_from_timings(two_runs):
    a, b = (files(d) for d in two_runs)
    assert sorted(a) == sorted(b) == ["predictions.jsonl", "run.json"]
    assert a["predictions.jsonl"] == b["predictions.jsonl"]
    assert without_timings(a["run.json"]) == without_timings(b["run.json"])
    # and the only difference in the bytes is inside the timings block
    strip = lambda raw: [ln for ln in raw.decode().split("\n") if '"timings"' not in ln]  # noqa: E731
    ta = json.loads(a["run.json"])["timings"]
    lines_a = [ln for ln in strip(a["run.json"]) if not any(f'"{k}"' in ln for k in ta)]
    lines_b = [ln for ln in strip(b["run.json"]) if not any(f'"{k}"' in ln for k in ta)]
    assert lines_a == lines_b


def test_diagnose_twice_is_byte_identical(two_runs, tmp_path):
    run = two_runs[0]
    report = tmp_path / "reports"
    args = ["diagnose", "--run", str(run), "--json", "--out", str(report / "diag.html")]
    (out1, files1), (out2, files2) = run_twice(args, report)
    assert out1 == out2
    json.loads(out1)  # --json prints one JSON document
    assert "diag.html" in files1 and "diag.errors.csv" in files1
    assert files1 == files2
    for scheme in ("upstream",):
        a = cli("diagnose", "--run", str(run), "--buckets", scheme, "--no-html")[0]
        b = cli("diagnose", "--run", str(run), "--buckets", scheme, "--no-html")[0]
        assert a == b


def test_diagnose_of_two_identical_runs_differs_only_by_their_paths(two_runs):
    a, b = (cli("diagnose", "--run", str(d), "--json", "--no-html")[0] for d in two_runs)
    assert a.replace(str(two_runs[0]), "RUN") == b.replace(str(two_runs[1]), "RUN")


def test_compare_twice_is_byte_identical(two_runs, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", str(two_runs[0]), str(two_runs[1]), "--out", str(out), "--resamples", "1000"]
    (out1, files1), (out2, files2) = run_twice(args, out)
    assert out1 == out2
    assert "compare.json" in files1 and files1 == files2


def test_gate_twice_is_byte_identical(two_runs, tmp_path):
    out = tmp_path / "gate"
    th = tmp_path / "th.toml"
    th.write_text('[defaults]\nmin_support = 5\nviews = ["all", "excluding_adversarial"]\n')
    args = ["gate", "--baseline", str(two_runs[0]), "--candidate", str(two_runs[1]), "--thresholds", str(th), "--out", str(out)]
    (out1, files1), (out2, files2) = run_twice(args, out)
    assert out1 == out2
    assert sorted(files1) == ["junit.xml", "summary.md", "verdict.json"]
    assert files1 == files2
    assert json.loads(files1["verdict.json"])["verdict"] == "PASS"  # a run against its own rerun


def test_two_checkpoints_compare_and_gate_deterministically(tmp_path):
    """A real difference (step 150 vs step 300): still the same bytes on a rerun."""
    runs = []
    for step in ("step-000150", "step-000300"):
        out = tmp_path / step
        cli("eval", "--ckpt", str(TINY / step), "--golden", str(GOLDEN_V012 / "test"), "--tokenizer", str(TOKENIZER_V010),
            "-q", "--out", str(out))
        runs.append(out)
    gate_out = tmp_path / "gate"
    args = ["gate", "--baseline", str(runs[1]), "--candidate", str(runs[0]), "--out", str(gate_out)]
    first, second = run_twice(args, gate_out)
    assert first == second
    cmp_out = tmp_path / "cmp"
    first, second = run_twice(["compare", str(runs[1]), str(runs[0]), "--out", str(cmp_out)], cmp_out)
    assert first == second


def test_reports_of_two_separate_evaluations_are_byte_identical(two_runs, tmp_path):
    """No timestamp leaks into the report: same inputs, same report bytes (the footer names the run
    directory it was made from, which is the one difference between two evaluations' reports)."""
    pages = []
    for k, run in enumerate(two_runs):
        html = tmp_path / f"r{k}" / "report.html"
        cli("diagnose", "--run", str(run), "--out", str(html))
        page = html.read_bytes().replace(str(run).encode(), b"RUN")
        pages.append((page, html.with_name("report.errors.csv").read_bytes()))
    assert pages[0] == pages[1]
