"""The bundled demo works from a fresh clone: names resolve, the regression is real and findable."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailwoman_eval.checkpoints.resolve import BUNDLED_RUNS, resolve_checkpoint
from mailwoman_eval.cli import main
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.golden import BUNDLED_GOLDEN, resolve_golden

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (BUNDLED_RUNS / "regressed" / "step-002200").is_dir(), reason="demo runs not built")


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """Both shipped demo checkpoints evaluated on the bundled golden set by name, as a user types them."""
    out = tmp_path_factory.mktemp("demo")
    runs = {}
    for name in ("step-001800", "step-002200"):
        r = CliRunner().invoke(main, ["eval", "--ckpt", name, "--golden", "demo-v1", "--out", str(out / name), "-q", "--no-cache"])
        assert r.exit_code == 0, r.output
        runs[name] = out / name
    return runs


def test_names_resolve_without_configuration():
    assert resolve_checkpoint("step-002200").path == BUNDLED_RUNS / "regressed" / "step-002200"
    assert resolve_checkpoint("step-001800").path == BUNDLED_RUNS / "baseline" / "step-001800"
    assert resolve_checkpoint("baseline/step-001800").path == BUNDLED_RUNS / "baseline" / "step-001800"
    assert resolve_golden("demo-v1")[0] == BUNDLED_GOLDEN / "demo-v1"


def test_a_mistyped_name_gets_the_close_names(tmp_path, monkeypatch):
    monkeypatch.setenv("MWEVAL_CKPT_PATH", str(tmp_path))
    with pytest.raises(MwevalError) as e:
        resolve_checkpoint("regresed/step-002200")
    assert f"searched MWEVAL_CKPT_PATH ({tmp_path}); bundled demo runs ({BUNDLED_RUNS})" in str(e.value)
    assert str(e.value).endswith("did you mean regressed/step-002200, regressed/step-002000, regressed/step-001200?")
    with pytest.raises(MwevalError) as e:  # step-001400 is in both runs: ambiguous bare, so offered as RUN/STEP
        resolve_checkpoint("step-00140")
    assert "did you mean baseline/step-001400, regressed/step-001400, " in str(e.value)


def test_a_step_both_runs_keep_is_ambiguous_and_run_step_disambiguates():
    base = {p.name for p in (BUNDLED_RUNS / "baseline").glob("step-*")}
    reg = {p.name for p in (BUNDLED_RUNS / "regressed").glob("step-*")}
    assert len(base) >= 5 and len(reg) >= 5 and "step-002200" not in base and "step-001800" not in reg
    shared = sorted(base & reg)
    if shared:
        with pytest.raises(MwevalError, match="ambiguous"):
            resolve_checkpoint(shared[0])
        assert resolve_checkpoint(f"regressed/{shared[0]}").path == BUNDLED_RUNS / "regressed" / shared[0]


def test_tokenizer_found_beside_the_run(demo_runs):
    meta = json.loads((demo_runs["step-002200"] / "run.json").read_text())
    assert meta["tokenizer"]["source"] == "run dir"
    assert meta["checkpoint"]["labels_source"] == "config.json id2label"


def test_baseline_is_good_but_not_perfect(demo_runs):
    meta = json.loads((demo_runs["step-001800"] / "run.json").read_text())
    view = meta["metrics"]["views"]["excluding_adversarial"]
    assert view["macro_f1"] >= 0.70
    assert view["exact_match"] < 0.95


def test_every_error_bucket_has_real_members_on_the_baseline(demo_runs):
    r = CliRunner().invoke(main, ["diagnose", "--run", str(demo_runs["step-001800"]), "--json", "--no-html"])
    doc = json.loads(r.output)
    seen = set()
    for tag in doc["buckets"]["all"].values():
        for kind in ("FP", "FN"):
            seen |= set(tag[kind]["all_categories"])
    assert {"empty_pred", "hallucinated", "bio_slip", "num_confused", "other", "non_latin"} <= seen


def test_regressed_loses_postcode_recall_and_its_fns_are_mostly_empty(demo_runs, tmp_path):
    base = json.loads((demo_runs["step-001800"] / "run.json").read_text())["metrics"]["views"]["all"]["per_tag"]["postcode"]
    reg = json.loads((demo_runs["step-002200"] / "run.json").read_text())["metrics"]["views"]["all"]["per_tag"]["postcode"]
    assert reg["recall"] < base["recall"] - 0.03
    html = tmp_path / "report.html"
    r = CliRunner().invoke(main, ["diagnose", "--run", str(demo_runs["step-002200"]), "--json", "--out", str(html)])
    doc = json.loads(r.output)
    fn = doc["buckets"]["all"]["postcode"]["FN"]
    assert next(iter(fn["primary"])) == "empty_pred" and fn["primary"]["empty_pred"] / fn["total"] > 0.5
    top = next(h for h in doc["headline"] if h["tag"] == "postcode")
    assert top["fn_top"]["category"] == "empty_pred"
    text = html.read_text()
    head = text[: text.index('id="per-tag"')]  # the headline section precedes the per-tag table
    assert "postcode" in head and "empty_pred" in head


def test_gate_regressed_against_baseline_fails_on_postcode(demo_runs, tmp_path):
    r = CliRunner().invoke(main, ["gate", "--baseline", str(demo_runs["step-001800"]), "--candidate", str(demo_runs["step-002200"]), "--out", str(tmp_path / "g")])
    assert r.exit_code == 1
    verdict = json.loads((tmp_path / "g" / "verdict.json").read_text())
    assert verdict["results"]["excluding_adversarial"]["postcode"]["verdict"] == "FAIL"
    assert "postcode" in r.output.splitlines()[-1]


def test_a_verdict_the_seed_decides_says_so(demo_runs, tmp_path):
    """street's drop on the demo has a Holm p near alpha: WARN at seed 0, FAIL at seed 7 (2000
    resamples). Both verdicts say they are within Monte-Carlo error and what would settle it;
    postcode's FAIL (p far below alpha) does not."""
    got = {}
    for seed in (0, 7):
        out = tmp_path / f"g{seed}"
        CliRunner().invoke(main, ["gate", "--baseline", str(demo_runs["step-001800"]), "--candidate", str(demo_runs["step-002200"]),
                                  "--seed", str(seed), "--out", str(out)])
        got[seed] = json.loads((out / "verdict.json").read_text())["results"]["excluding_adversarial"]
    assert {got[0]["street"]["verdict"], got[7]["street"]["verdict"]} == {"WARN", "FAIL"}
    for seed in (0, 7):
        street = got[seed]["street"]
        assert street["seed_sensitive"] and "within Monte-Carlo error of alpha 0.05 at 2000 resamples" in street["reason"]
        assert re.search(r"about \d+ resamples \(--resamples\) would settle it", street["reason"])
        assert got[seed]["postcode"]["verdict"] == "FAIL" and not got[seed]["postcode"]["seed_sensitive"]
        assert "Monte-Carlo" not in got[seed]["postcode"]["reason"]


def test_gate_baseline_against_itself_passes_with_zero_deltas(demo_runs, tmp_path):
    r = CliRunner().invoke(main, ["gate", "--baseline", str(demo_runs["step-001800"]), "--candidate", str(demo_runs["step-001800"]), "--out", str(tmp_path / "g")])
    assert r.exit_code == 0
    rows = json.loads((tmp_path / "g" / "verdict.json").read_text())["results"]["excluding_adversarial"]
    assert rows and all(row["delta_pp"] == 0 for row in rows.values())


def test_compare_shows_the_postcode_regression_in_every_output(demo_runs, tmp_path):
    r = CliRunner().invoke(main, ["compare", str(demo_runs["step-001800"]), str(demo_runs["step-002200"]), "--out", str(tmp_path / "c")])
    assert r.exit_code == 0
    c = json.loads((tmp_path / "c" / "compare.json").read_text())
    f1 = c["views"]["excluding_adversarial"]["per_tag"]["postcode"]["f1"]
    assert f1["delta_pp"] < 0 and f1["ci95_pp"][1] < 0
    assert c["changes"]["postcode"]["newly_broken"] > c["changes"]["postcode"]["newly_fixed"]
    md = (tmp_path / "c" / "compare.md").read_text()
    # the what and the why before the tables: postcode first (largest drop), its FNs gone empty
    why = md.split("### 95% CI of Δ F1 below zero (unadjusted, per view)\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert why[0].startswith("- **postcode**: ") and "newly broken" in why[0] and "FN empty_pred 15 → 62" in why[0]
    html = (tmp_path / "c" / "compare.html").read_text()
    assert 'class="why"' in html
    # "By tag" opens with the real regressions, in the headline's order (it opened with cedex's noisy −6.6)
    blocks = re.findall(r'<section class="tagblock" id="[^"]*" data-tag="([^"]+)"[^>]*>', html)
    assert blocks[:4] == ["postcode", "house_number", "locality", "street"]
    assert (tmp_path / "c" / "compare.html").stat().st_size > 10_000


def test_golden_validator_and_manifest():
    r = CliRunner().invoke(main, ["golden", "validate", "demo-v1"])
    assert r.exit_code == 0 and "0 component values not found in raw" in r.output
    v = CliRunner().invoke(main, ["golden", "verify", "demo-v1", "--strict"])
    assert v.exit_code == 0 and "manifest OK" in v.output


def test_committed_demo_artifacts_fit_the_budget():
    total = sum(p.stat().st_size for p in (REPO / "demo").rglob("*") if p.is_file())
    assert total <= 50 * 1024 * 1024


@pytest.mark.slow
def test_the_readme_demo_command_runs_and_ends_with_the_report_path(tmp_path):
    """What scripts/demo.sh runs after installing: the headline command on the bundled assets."""
    p = subprocess.run(
        [sys.executable, "-m", "mailwoman_eval", "diagnose", "--ckpt", "step-002200", "--golden", "demo-v1", "--no-cache"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    last = p.stdout.strip().splitlines()[-2:]
    assert any(line.startswith("report: ") for line in last)
    report = tmp_path / next(line for line in last if line.startswith("report: "))[len("report: "):]
    assert report.is_file() and report.suffix == ".html"


def test_console_shows_a_dash_where_a_view_has_nothing_to_score(demo_runs, tmp_path):
    """subregion and cedex have no gold and no prediction among the adversarial rows: their F1
    there is 0/0, shown as "—" as in the HTML, not as a measured 0.0000. A view with no entries
    (a golden set without adversarial rows) gets "—" for its macro F1 too."""
    r = CliRunner().invoke(main, ["diagnose", "--run", str(demo_runs["step-002200"]), "--no-html", "-q"])
    assert r.exit_code == 0, r.output
    rows = {line.split()[0]: line.split()[1:] for line in r.output.splitlines() if line.startswith(("subregion ", "unit ", "macro F1"))}
    assert rows["subregion"][2] == "—" and rows["subregion"][3] != "—"  # the Δ is all vs excl: both measured
    assert rows["unit"][2] != "—"
    golden = tmp_path / "g"
    golden.mkdir()
    src = REPO / "golden" / "demo-v1" / "us.jsonl"
    (golden / "us.jsonl").write_text("".join(src.read_text().splitlines(keepends=True)[:40]))
    r = CliRunner().invoke(main, ["diagnose", "--ckpt", "step-002200", "--golden", str(golden), "--no-html", "-q"])
    assert r.exit_code == 0, r.output
    macro = next(line for line in r.output.splitlines() if line.startswith("macro F1"))
    assert macro.split()[4] == "—" and "—" not in macro.split()[2:4]  # all, excl adv measured; adv only empty


def test_the_demo_country_errors_are_flagged_as_the_instruments(demo_runs):
    """The regressed run's 22 country FPs are gold 'U.S.A.' against predicted 'U.S.A': runtime
    trims the '.', so no prediction can match. The headline and the buckets say so."""
    r = CliRunner().invoke(main, ["diagnose", "--run", str(demo_runs["step-002200"]), "--json", "--no-html"])
    doc = json.loads(r.output)
    fp = doc["buckets"]["all"]["country"]["FP"]
    assert fp["all_categories"]["gold_unreachable"] == fp["total"] == 22
    (h,) = [h for h in doc["headline"] if h["tag"] == "country"]
    assert h["gold_unreachable"]["fp"] == 22 and "gold unreachable under the profile: 22 FN, 22 FP" in h["text"]
    meta = json.loads((demo_runs["step-002200"] / "run.json").read_text())
    assert meta["audit"]["unreachable_under_profile"] >= 22


def test_compare_and_gate_take_checkpoint_paths_as_eval_does(tmp_path, monkeypatch):
    """README: for --ckpt "an existing path wins". compare and gate read every existing path as a
    run or a scores file: a step directory was "not an mweval run directory", an .onnx file "a
    scores JSON needs a candidate run"."""
    monkeypatch.chdir(tmp_path)  # evaluated checkpoints land in ./runs/
    base, cand = BUNDLED_RUNS / "baseline" / "step-001800", BUNDLED_RUNS / "regressed" / "onnx" / "model.int8.onnx"
    r = CliRunner().invoke(main, ["compare", str(base), str(cand), "--golden", "demo-v1", "--out", "c", "-q"])
    assert r.exit_code == 0, r.output
    c = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert c["base"]["label"] == "baseline/step-001800" and c["base"]["path"] == "runs/baseline-step-001800__demo-v1__runtime"
    assert c["cand"]["checkpoint_sha256"] == hashlib.sha256(cand.read_bytes()).hexdigest() and c["cand"]["transitions"] == "sidecar"
    r = CliRunner().invoke(main, ["gate", "--baseline", str(base), "--candidate", str(base), "--golden", "demo-v1", "--out", "g", "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["compare", str(base), str(cand), "--out", "c2"])
    assert r.exit_code == 2 and "not a run directory or a scores JSON; to evaluate it as a checkpoint, pass --golden" in r.output


def test_onnx_files_are_named_by_where_they_are_and_names_are_not_patterns(tmp_path, monkeypatch):
    """Every export is model.onnx or model.int8.onnx: named by the file alone, the two demo runs'
    exports shared one runs/ directory and one label. And a checkpoint name is a name: 'step-0018*'
    used to resolve as a glob."""
    assert resolve_checkpoint(str(BUNDLED_RUNS / "regressed" / "onnx" / "model.int8.onnx")).name == "regressed/onnx/model.int8.onnx"
    assert resolve_checkpoint(str(BUNDLED_RUNS / "baseline" / "onnx" / "model.onnx")).name == "baseline/onnx/model.onnx"
    assert resolve_checkpoint("step-001800").name == "baseline/step-001800"
    with pytest.raises(MwevalError, match="not found"):
        resolve_checkpoint("step-0018*")


def test_the_diagnose_console_says_fp_only_where_a_view_has_no_gold(demo_runs):
    """dependent_locality has no gold value among the adversarial rows, one false positive: the
    console printed F1 0.0000 there (the HTML says "FP only"), a score that measures nothing."""
    r = CliRunner().invoke(main, ["diagnose", "--run", str(demo_runs["step-002200"]), "--no-html"])
    assert r.exit_code == 0, r.output
    row = next(line for line in r.output.splitlines() if line.startswith("dependent_locality "))
    assert row.split()[1:5] == ["0.6400", "0.6667", "FP-only", "+0.0267"]
    assert "FP-only: no gold value in that view, only false positives" in r.output


def test_diagnose_replaces_only_reports_and_names_each_kind_of_report(demo_runs, tmp_path):
    """--out over any file was replaced without a word (with .errors.csv and .errors.parquet written
    beside it); the upstream scheme and --adversarial non-latin replaced the default report."""
    run = str(demo_runs["step-002200"])
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    r = CliRunner().invoke(main, ["diagnose", "--run", run, "--out", str(notes), "-q"])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        f"mweval: error: {notes}: exists and is not an mweval report; pass --force to replace it"]
    assert notes.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    r = CliRunner().invoke(main, ["diagnose", "--run", run, "--out", str(notes), "-q", "--force"])
    assert r.exit_code == 0, r.output
    assert notes.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert CliRunner().invoke(main, ["diagnose", "--run", run, "--out", str(notes), "-q"]).exit_code == 0  # a report now
    assert CliRunner().invoke(main, ["diagnose", "--run", run, "--no-html", "--force"]).exit_code == 2
    # an error table's name taken, with no report beside it that wrote it
    (tmp_path / "new.errors.csv").write_text("mine\n")
    r = CliRunner().invoke(main, ["diagnose", "--run", run, "--out", str(tmp_path / "new.html"), "-q"])
    assert r.exit_code == 2 and "new.errors.csv: exists, and no mweval report new.html beside it wrote it" in r.output
    assert (tmp_path / "new.errors.csv").read_text() == "mine\n" and not (tmp_path / "new.html").exists()
    # a symlinked --out: the report it names is updated, with its tables beside it (not beside the link)
    (tmp_path / "shared").mkdir()
    assert CliRunner().invoke(main, ["diagnose", "--run", run, "--out", str(tmp_path / "shared" / "r.html"), "-q"]).exit_code == 0
    (tmp_path / "link.html").symlink_to(tmp_path / "shared" / "r.html")
    stale = (tmp_path / "shared" / "r.errors.csv").stat().st_mtime_ns
    assert CliRunner().invoke(main, ["diagnose", "--run", run, "--out", str(tmp_path / "link.html"), "-q"]).exit_code == 0
    assert (tmp_path / "link.html").is_symlink() and not (tmp_path / "link.errors.csv").exists()
    assert (tmp_path / "shared" / "r.errors.csv").stat().st_mtime_ns != stale
    for extra in ([], ["--buckets", "upstream"], ["--adversarial", "non-latin"], ["--buckets", "upstream", "--adversarial", "non-latin"]):
        assert CliRunner().invoke(main, ["diagnose", "--run", run, "-q", *extra]).exit_code == 0
    assert sorted(p.name for p in Path("reports").glob("*.html")) == [
        "step-002200.html", "step-002200__adv-non-latin.html", "step-002200__buckets-upstream.html",
        "step-002200__buckets-upstream__adv-non-latin.html"]


def test_diagnose_of_a_checkpoint_says_whether_the_run_came_from_the_cache():
    lines = [CliRunner().invoke(main, ["diagnose", "--ckpt", "step-001800", "--golden", "demo-v1", "--no-html"]).output.splitlines()
             for _ in range(2)]
    runs = [[x for x in out if x.startswith("run: ")] for out in lines]
    assert runs[0][0].endswith(" (cache miss)") and runs[1][0].endswith(" (cache hit)"), runs
    out = CliRunner().invoke(main, ["diagnose", "--ckpt", "step-001800", "--golden", "demo-v1", "--no-html", "--no-cache"]).output
    assert next(x for x in out.splitlines() if x.startswith("run: ")).endswith(" (cache off)")
