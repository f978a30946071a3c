"""The CLI shell's own rules (cli.py, cli_runs.py): option defaults, what is passed to the library,
exit codes and one-line messages.

- README "Bundled demo assets": `golden validate` exits 1 when a value is not a substring of raw,
  `--ignore-case` fails only on values in raw in no letter case; its `--limit` (default 20, 0: all)
  lists values while the counts cover every one (the option's help).
- README "Inputs" / design.md Decisions: a manifest mismatch warns, `golden verify --strict` exits 2
  with the problems in its one error line; `golden list` names an unreadable set and says why.
- `mweval eval --out` help: the default run directory is runs/<ckpt>__<golden>__<profile>/, plus
  __pad-128/__pad-own and __<engine> when given; the profile defaults to runtime, the engine to onnx;
  the last line says the cache hit, miss or off (--no-cache).
- `mweval diagnose` help and body: --examples-per-bucket 3 and --seed 42 by default, both refused
  with --json; --out/--force refused with --no-html; --run excludes --ckpt/--golden; a saved run
  refuses evaluation options; the default report is reports/<run>[__tags][__buckets-upstream]
  [__adv-non-latin].html.
- README "Sweep" / "Parity": sweep follows `excluding_adversarial` with --window 5 and --lr-floor 0.6;
  parity runs the reference on numpy with 1.5 pp / 99.9% / 99.5% / support 30.
- Every user error: exit 2 and one stderr line `mweval: error: WHERE: WHAT`, nothing on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from clicases import one_line_error
from click.testing import CliRunner
from conftest import GOLDEN_V012, TINY, TINY_STEP, TOKENIZER_V010, need_shared

from mailwoman_eval.cli import main


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_set(root: Path, rows: list[dict], name: str = "us.jsonl") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def small_set(tmp_path_factory) -> Path:
    """The first 15 rows of each v0.1.2/test file (35 rows, adversarial ones among them)."""
    need_shared()
    root = tmp_path_factory.mktemp("golden") / "small"
    root.mkdir()
    for f in sorted((GOLDEN_V012 / "test").glob("*.jsonl")):
        (root / f.name).write_text("\n".join(f.read_text(encoding="utf-8").splitlines()[:15]) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def small_run(small_set, tmp_path_factory) -> Path:
    """The tiny checkpoint evaluated with every default on the small set (read-only)."""
    out = tmp_path_factory.mktemp("small_run") / "run"
    r = cli("eval", "--ckpt", TINY_STEP, "--tokenizer", TOKENIZER_V010, "--golden", small_set, "--out", out, "--no-cache", "-q")
    assert r.exit_code == 0, r.stderr
    return out


# ---------------------------------------------------------------------------------------------
# golden validate

CASE_ONLY = {"raw": "1 Main St, Springfield", "components": {"house_number": "1", "street": "Main St", "locality": "springfield"}}


def missing(i: int) -> dict:
    return {"raw": f"{i} Oak Ave, Boston", "components": {"house_number": str(i), "street": "Elm Rd", "locality": "Boston"}}


def test_validate_lists_20_values_by_default_counts_all_and_exits_1(tmp_path):
    g = write_set(tmp_path / "g", [CASE_ONLY] + [missing(i) for i in range(2, 25)])
    r = cli("golden", "validate", g)
    assert r.exit_code == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "us.jsonl:1: locality 'springfield' is in raw only in another case: '1 Main St, Springfield'"
    assert lines[1] == "us.jsonl:2: street 'Elm Rd' is not in raw: '2 Oak Ave, Boston'"
    assert lines[19] == "us.jsonl:20: street 'Elm Rd' is not in raw: '20 Oak Ave, Boston'"
    assert lines[20:] == [
        "… 4 more (--limit 0 lists all)",
        "g: 24 rows, 24 component values not found in raw (1 only in another case, 23 not at all)",
        "by tag: street 23, locality 1",
    ]
    every = cli("golden", "validate", g, "--limit", "0")
    assert every.exit_code == 1
    assert len([s for s in every.stdout.splitlines() if s.startswith("us.jsonl:")]) == 24
    assert "more (--limit 0 lists all)" not in every.stdout
    exact = cli("golden", "validate", g, "--limit", "24")  # as many as there are: no "… 0 more"
    assert exact.stdout == every.stdout
    fewer = cli("golden", "validate", g, "--limit", "3")
    assert fewer.stdout.splitlines()[3] == "… 21 more (--limit 0 lists all)"


def test_validate_ignore_case_fails_only_on_values_in_no_letter_case(tmp_path):
    case_only = write_set(tmp_path / "c", [CASE_ONLY])
    r = cli("golden", "validate", case_only)
    assert r.exit_code == 1
    assert "c: 1 rows, 1 component values not found in raw (1 only in another case, 0 not at all)" in r.stdout
    r = cli("golden", "validate", case_only, "--ignore-case")
    assert r.exit_code == 0, r.stdout
    assert r.stdout.splitlines()[-1] == "by tag: locality 1"
    both = write_set(tmp_path / "b", [CASE_ONLY, missing(2)])
    assert cli("golden", "validate", both, "--ignore-case").exit_code == 1
    clean = write_set(tmp_path / "ok", [{"raw": "1 Main St", "components": {"house_number": "1", "street": "Main St"}}])
    r = cli("golden", "validate", clean)
    assert r.exit_code == 0
    assert r.stdout == "ok: 1 rows, 0 component values not found in raw (0 only in another case, 0 not at all)\n"


def test_validate_refuses_a_negative_limit_in_one_line(tmp_path):
    g = write_set(tmp_path / "g", [CASE_ONLY])
    line = one_line_error(cli("golden", "validate", g, "--limit", "-1"))
    assert line == ("mweval: error: mweval golden validate: Invalid value for '--limit': -1 is not in the range x>=0. "
                    "Try 'mweval golden validate --help'.")


# ---------------------------------------------------------------------------------------------
# golden verify / list

def test_verify_ok_and_absent_manifest(tmp_path):
    r = cli("golden", "verify", "demo-v1")
    assert r.exit_code == 0
    out = r.stdout.splitlines()
    assert out[0] == "adversarial.jsonl  89 rows  sha256 8e3a02833fbd743e6813a842a0b59467e2fd706cbc655840bb9c9d17041eac47"
    assert len(out) == 4 and out[3].startswith("demo-v1: manifest OK (") and out[3].endswith("MANIFEST.json)")
    g = write_set(tmp_path / "plain", [CASE_ONLY, CASE_ONLY])
    r = cli("golden", "verify", g)
    assert r.exit_code == 0
    assert r.stdout.splitlines()[1:] == ["plain: 1 rows repeat an earlier row (same raw and components)",
                                         "plain: no manifest to verify against"]


def test_verify_mismatch_warns_and_exits_0_strict_exits_2_with_the_problems(tmp_path):
    g = tmp_path / "demo-copy"
    shutil.copytree(Path(__file__).resolve().parents[1] / "golden" / "demo-v1", g)
    with (g / "us.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(CASE_ONLY) + "\n")
    r = cli("golden", "verify", g)
    assert r.exit_code == 0, r.stderr
    warnings = r.stderr.splitlines()
    assert warnings and all(w.startswith("warning: ") for w in warnings)
    last = r.stdout.splitlines()[-1]
    assert last.startswith(f"demo-copy: manifest mismatch ({len(warnings)} problems, ") and last.endswith("MANIFEST.json)")
    line = one_line_error(cli("golden", "verify", g, "--strict"), "demo-copy: manifest mismatch (")
    for w in warnings:
        assert w.removeprefix("warning: ") in line


def test_list_names_an_unreadable_set_and_says_why_below_the_table(tmp_path, monkeypatch):
    root = tmp_path / "sets"
    write_set(root / "fine", [CASE_ONLY, CASE_ONLY, CASE_ONLY])
    (root / "broken").mkdir()
    (root / "broken" / "us.jsonl").write_text("{not json\n", encoding="utf-8")
    monkeypatch.setenv("MWEVAL_GOLDEN_PATH", str(root))
    r = cli("golden", "list")
    assert r.exit_code == 0
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:]}
    assert rows["fine"][1:4] == ["3", "1", "absent"]
    assert rows["broken"][1] == "unreadable"
    assert rows["demo-v1"][1:4] == ["649", "3", "ok"]
    (err,) = r.stderr.splitlines()
    assert err.startswith("error: broken: ") and "us.jsonl:1" in err


# ---------------------------------------------------------------------------------------------
# eval

def test_eval_defaults_name_the_run_directory_and_say_the_cache(small_set, small_run):
    base = ["eval", "--ckpt", TINY_STEP, "--tokenizer", TOKENIZER_V010, "--golden", small_set, "-q"]
    off = cli(*base, "--no-cache", "--out", "elsewhere")  # neither reuses nor stores a cached run
    assert off.stdout.splitlines()[-1] == f"run written to {Path('elsewhere').resolve()}/ (cache off)"
    first = cli(*base)
    assert first.exit_code == 0, first.stderr
    run = Path("runs") / "tiny-v040-step-000300__small__runtime"
    meta = json.loads((run / "run.json").read_text())
    assert meta["profile"]["name"] == "runtime" and meta["checkpoint"]["engine"] == "onnx"
    assert meta["decode"]["padding"] == "within-batch"
    assert first.stdout.splitlines()[0] == ("tiny-v040/step-000300 on small — profile runtime, transitions learned, "
                                            "labels from config.json id2label")
    assert first.stdout.splitlines()[-1] == f"run written to {run.resolve()}/ (cache miss)"
    assert cli(*base).stdout.splitlines()[-1] == f"run written to {run.resolve()}/ (cache hit)"
    # the same numbers as the session's run, written with every default and --no-cache
    assert (run / "predictions.jsonl").read_bytes() == (small_run / "predictions.jsonl").read_bytes()


def test_eval_names_the_profile_and_engine_in_the_default_directory(small_set):
    base = ["eval", "--ckpt", TINY_STEP, "--tokenizer", TOKENIZER_V010, "--golden", small_set, "-q", "--no-cache"]
    assert cli(*base, "--engine", "numpy", "--profile", "upstream-eval").exit_code == 0
    run = Path("runs") / "tiny-v040-step-000300__small__upstream-eval__numpy"
    meta = json.loads((run / "run.json").read_text())
    assert meta["checkpoint"]["engine"] == "numpy" and meta["profile"]["name"] == "upstream-eval"
    assert sorted(os.listdir("runs")) == [run.name]


def test_eval_without_quiet_says_what_it_evaluates_on_stderr(small_set, tmp_path):
    r = cli("eval", "--ckpt", TINY_STEP, "--tokenizer", TOKENIZER_V010, "--golden", small_set, "--no-cache", "--out", tmp_path / "r")
    assert r.exit_code == 0
    assert r.stderr.splitlines()[0] == "mweval: tiny-v040/step-000300 (pytorch) on small (35 rows), profile runtime"
    q = cli("eval", "--ckpt", TINY_STEP, "--tokenizer", TOKENIZER_V010, "--golden", small_set, "--no-cache", "--out", tmp_path / "q", "-q")
    assert q.stderr == ""


def test_eval_passes_labels_and_force_to_the_library(small_set):
    onnx = ["eval", "--ckpt", TINY / "onnx" / "model.onnx", "--tokenizer", TOKENIZER_V010, "--golden", small_set, "-q", "--no-cache"]
    one_line_error(cli(*onnx, "--labels", "a,b", "--out", "l"), "--labels: label 0 'a' is neither O nor B-<tag> / I-<tag>")
    assert not Path("l").exists()
    Path("notes").mkdir()
    Path("notes/mine.txt").write_text("mine")
    assert one_line_error(cli(*onnx, "--out", "notes")) == ("mweval: error: notes: output directory is not empty and holds no mweval "
                                                     "run.json; refusing to write (use --force)")
    r = cli(*onnx, "--out", "notes", "--force")
    assert r.exit_code == 0, r.stderr
    assert (Path("notes") / "run.json").is_file()


def test_diagnose_passes_ckpt_root_to_the_lookup(small_set):
    need_shared()
    r = cli("diagnose", "--ckpt", "tiny-v040/step-000300", "--ckpt-root", TINY.parent, "--tokenizer", TOKENIZER_V010,
            "--golden", small_set, "--no-html", "-q", "--no-cache")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[-1] == f"run: {Path('runs/tiny-v040-step-000300__small__runtime').resolve()} (cache off)"


def test_a_missing_required_option_is_one_usage_line():
    line = one_line_error(cli("eval", "--golden", "demo-v1"))
    assert line == "mweval: error: mweval eval: Missing option '--ckpt'. Try 'mweval eval --help'."


# ---------------------------------------------------------------------------------------------
# diagnose

def test_diagnose_console_defaults_are_3_examples_and_seed_42(tiny_test_run):
    small_run = tiny_test_run.path  # 456 rows: categories with more than 3 errors to sample from
    default = cli("diagnose", "--run", small_run, "--no-html")
    assert default.exit_code == 0, default.stderr
    assert default.stdout == cli("diagnose", "--run", small_run, "--no-html", "--examples-per-bucket", "3", "--seed", "42").stdout
    assert default.stdout != cli("diagnose", "--run", small_run, "--no-html", "--examples-per-bucket", "2").stdout
    assert default.stdout != cli("diagnose", "--run", small_run, "--no-html", "--seed", "41").stdout
    none = cli("diagnose", "--run", small_run, "--no-html", "--examples-per-bucket", "0")  # counts only
    assert none.exit_code == 0 and "    - raw  : " in default.stdout and "    - raw  : " not in none.stdout
    assert "report:" not in default.stdout and "run:" not in default.stdout
    assert not Path("reports").exists()


SAVED_RUN = "applies only when a checkpoint is evaluated, and every input here is a saved run"


@pytest.mark.parametrize(("extra", "what"), [
    (["--json", "--seed", "1"], "--seed chooses the console's examples; --json prints none"),
    (["--json", "--examples-per-bucket", "3"], "--examples-per-bucket chooses the console's examples; --json prints none"),
    (["--json", "--examples-per-bucket", "1", "--seed", "1"],
     "--examples-per-bucket and --seed choose the console's examples; --json prints none"),
    (["--out", "r.html", "--no-html"], "--out names the HTML report, which --no-html skips"),
    (["--force", "--no-html"], "--force replaces a report file that is not an mweval report, which --no-html does not write"),
    (["--ckpt", "step-002200"], "give either --run or --ckpt/--golden, not both"),
    (["--golden", "demo-v1"], "give either --run or --ckpt/--golden, not both"),
    (["--engine", "numpy"], f"--engine {SAVED_RUN}"),
    (["--no-cache"], f"--no-cache {SAVED_RUN}"),
    (["--tokenizer", "t.model"], f"--tokenizer {SAVED_RUN}"),
    (["--labels", "O"], f"--labels {SAVED_RUN}"),
    (["--pad-to", "auto"], f"--pad-to {SAVED_RUN}"),
    (["--ckpt-root", "."], f"--ckpt-root {SAVED_RUN}"),
    (["--profile", "upstream-eval"], "--profile upstream-eval, but {run} was scored with profile runtime; a saved run is not "
                                     "re-scored (evaluate its checkpoint with --ckpt to change the profile)"),
])
def test_diagnose_refuses_options_it_would_ignore(small_run, extra, what):
    line = one_line_error(cli("diagnose", "--run", small_run, *extra))
    assert line == "mweval: error: " + what.format(run=small_run)
    assert not Path("reports").exists() and not Path("runs").exists()


def test_diagnose_needs_a_run_or_a_checkpoint_and_a_golden_set():
    for args in ([], ["--ckpt", "step-002200"], ["--golden", "demo-v1"]):
        line = one_line_error(cli("diagnose", *args))
        assert line == "mweval: error: give --run DIR, or both --ckpt and --golden"


def test_diagnose_accepts_the_profile_the_run_was_scored_with(small_run):
    r = cli("diagnose", "--run", small_run, "--no-html", "--profile", "runtime", "-q")
    assert r.exit_code == 0, r.stderr


def test_diagnose_default_report_names_carry_the_focus(small_run):
    r = cli("diagnose", "--run", small_run, "-q")
    assert r.exit_code == 0, r.stderr
    report = Path("reports") / "run.html"
    assert r.stdout.splitlines()[-2:] == [
        f"report: {report.resolve()}",
        f"error table: {Path('reports/run.errors.csv').resolve()}, {Path('reports/run.errors.parquet').resolve()}",
    ]
    r = cli("diagnose", "--run", small_run, "-q", "--tags", "street,region", "--adversarial", "non-latin")
    assert r.exit_code == 0, r.stderr
    assert (Path("reports") / "run__street+region__adv-non-latin.html").is_file()
    up = cli("diagnose", "--run", small_run, "--buckets", "upstream")
    assert up.exit_code == 0, up.stderr
    name = Path("reports") / "run__buckets-upstream.html"
    assert name.is_file()
    assert "report:" not in up.stdout and f"report: {name.resolve()}" in up.stderr.splitlines()
    assert up.stderr.splitlines()[0] == "loaded 35 golden entries"
    quiet = cli("diagnose", "--run", small_run, "--buckets", "upstream", "-q")
    assert quiet.stdout == up.stdout and "report:" not in quiet.stderr and "loaded" not in quiet.stderr
    assert sorted(p.name for p in Path("reports").iterdir()) == sorted(
        f"{stem}{ext}" for stem in ("run", "run__street+region__adv-non-latin", "run__buckets-upstream")
        for ext in (".html", ".errors.csv", ".errors.parquet"))


def test_diagnose_json_lists_the_outputs_it_wrote(small_run):
    r = cli("diagnose", "--run", small_run, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["outputs"] == [str(Path("reports") / f"run{ext}") for ext in (".html", ".errors.csv", ".errors.parquet")]
    assert json.loads(cli("diagnose", "--run", small_run, "--json", "--no-html").stdout)["outputs"] == []


def test_diagnose_refuses_to_replace_a_file_that_is_not_its_report(small_run):
    Path("mine.html").write_text("<html>my notes</html>")
    one_line_error(cli("diagnose", "--run", small_run, "--out", "mine.html"), "mine.html: exists and is not an mweval report; pass --force")
    assert Path("mine.html").read_text() == "<html>my notes</html>"
    assert cli("diagnose", "--run", small_run, "--out", "mine.html", "--force", "-q").exit_code == 0
    Path("t").mkdir()
    Path("t/x.errors.csv").write_text("mine")
    one_line_error(cli("diagnose", "--run", small_run, "--out", "t/x.html"), "t/x.errors.csv: exists, and no mweval report x.html beside it")
    assert not Path("t/x.html").exists()


def test_diagnose_of_a_checkpoint_says_where_the_run_went(small_set):
    r = cli("diagnose", "--ckpt", TINY_STEP, "--tokenizer", TOKENIZER_V010, "--golden", small_set, "--no-html", "-q", "--no-cache")
    assert r.exit_code == 0, r.stderr
    run = Path("runs") / "tiny-v040-step-000300__small__runtime"
    assert r.stdout.splitlines()[-1] == f"run: {run.resolve()} (cache off)"
    assert json.loads((run / "run.json").read_text())["checkpoint"]["engine"] == "onnx"


# ---------------------------------------------------------------------------------------------
# sweep and parity defaults

def test_sweep_defaults_follow_the_readme(small_set, tmp_path):
    run = tmp_path / "train"
    run.mkdir()
    for step in ("step-000150", "step-000300"):
        os.symlink(TINY / step, run / step)
    (run / "step-000400").mkdir()  # no weights: skipped, and said on stderr even with -q
    shutil.copyfile(TINY / "train_log.csv", run / "train_log.csv")
    r = cli("sweep", run, "--golden", small_set, "--tokenizer", TOKENIZER_V010, "-q", "--no-cache")
    assert r.exit_code == 0, r.stderr
    assert [w for w in r.stderr.splitlines() if w.startswith("warning: ") and "step-000400" in w], r.stderr
    out = Path("reports") / "sweep__train__small"
    assert r.stdout.splitlines()[-1] == f"written: {out.resolve()}/sweep.html, sweep.csv, sweep.json, runs/"
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["view"] == "excluding_adversarial" and doc["profile"] == "runtime"
    assert doc["options"] == {"window": 5, "lr_floor": 0.6, "min_peak": None, "max_drift": None, "verdict": False}
    assert doc["drift"]["window_requested"] == 5
    engines = {json.loads(p.read_text())["checkpoint"]["engine"] for p in (out / "runs").glob("*/run.json")}
    assert engines == {"onnx"}
    # --no-cache stored nothing: the same sweep with the cache misses both steps, then hits them
    for expect in ("miss", "hit"):
        r = cli("sweep", run, "--golden", small_set, "--tokenizer", TOKENIZER_V010, "-q", "--jobs", "1", "--out", f"c-{expect}")
        assert r.exit_code == 0, r.stderr
        assert json.loads(Path(f"c-{expect}/sweep.json").read_text())["timings"]["cache"] == {"150": expect, "300": expect}
    r = cli("sweep", run, "--golden", small_set, "--tokenizer", TOKENIZER_V010, "-q", "--jobs", "1", "--out", "np",
            "--engine", "numpy", "--view", "all", "--window", "1", "--lr-floor", "0")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(Path("np/sweep.json").read_text())
    assert doc["view"] == "all" and doc["options"]["window"] == 1 and doc["options"]["lr_floor"] == 0
    assert {json.loads(p.read_text())["checkpoint"]["engine"] for p in Path("np/runs").glob("*/run.json")} == {"numpy"}


def test_parity_defaults_follow_the_readme(small_set):
    need_shared()
    r = cli("parity", "--ckpt", TINY_STEP, "--onnx", TINY / "onnx" / "model.onnx", "--golden", small_set,
            "--tokenizer", TOKENIZER_V010, "-q")
    assert r.exit_code == 0, r.stderr
    out = Path("reports") / "parity__tiny-v040-step-000300__small"
    assert r.stdout.splitlines()[-1] == f"written: {out.resolve()}/parity.json, parity.md"
    doc = json.loads((out / "parity.json").read_text())
    assert doc["reference"]["engine"] == "numpy" and doc["profile"] == "runtime"
    assert doc["artifacts"][0]["padding"] == "within-batch"  # --pad-to auto: an fp32 graph is fed within the batch
    th = doc["thresholds"]
    assert (th["max_delta_pp"], th["min_agreement_pct"], th["min_agreement_int8_pct"], th["min_support"]) == (1.5, 99.9, 99.5, 30)
    as_json = cli("parity", "--ckpt", TINY_STEP, "--onnx", TINY / "onnx" / "model.onnx", "--golden", small_set,
                  "--tokenizer", TOKENIZER_V010, "-q", "--json", "--out", "p2", "--pad-to", "128")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["thresholds"] == th
    assert json.loads(as_json.stdout)["artifacts"][0]["padding"] == "pad-to-128"
