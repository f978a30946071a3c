"""Paired bootstrap, Holm, the gate's rules and outputs (design.md Decisions, "Gate")."""

import json
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner
from runfactory import make_run, save_run, two_runs

from mailwoman_eval.cli import main
from mailwoman_eval.compare import compare, view_statistics
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.gate import Thresholds, gate, junit_xml, load_thresholds, markdown
from mailwoman_eval.metrics import FN, TP
from mailwoman_eval.stats import holm, one_sided_drop_p


def test_hand_computable_ci_two_entries():
    """Base right on both, cand wrong on entry 2. Resamples draw entry 2 zero, once or twice
    (p = 1/4, 1/2, 1/4): Δ exact match ∈ {0, −50, −100} pp and Δ F1 ∈ {0, −33.3, −100} pp."""
    bo = np.array([[TP], [TP]], dtype=np.int8)
    co = np.array([[TP], [FN]], dtype=np.int8)
    conf = (np.ones(2), np.ones(2))
    v = view_statistics(bo, co, conf, conf, ["postcode"], resamples=4000, seed=1)
    em = v["summary"]["exact_match"]
    assert em["delta_pp"] == -50.0 and em["ci95_pp"] == [-100.0, 0.0]
    f1 = v["per_tag"]["postcode"]["f1"]
    assert f1["delta_pp"] == pytest.approx(-33.3333, abs=1e-3) and f1["ci95_pp"] == [-100.0, 0.0]


def test_bootstrap_is_reproducible_and_ci_covers_observed_delta():
    base, cand = two_runs(300, 30)
    a = compare(base, cand, resamples=1000, seed=5)
    b = compare(base, cand, resamples=1000, seed=5)
    assert a == b
    f = a["views"]["all"]["per_tag"]["postcode"]["f1"]
    assert f["ci95_pp"][0] <= f["delta_pp"] <= f["ci95_pp"][1]
    assert f["p"] < 0.01


def test_holm_adjustment_hand_checked():
    assert holm(np.array([0.01, 0.04, 0.03])).tolist() == pytest.approx([0.03, 0.06, 0.06])


def test_one_sided_p_is_one_for_identical_runs():
    assert one_sided_drop_p(np.zeros((100, 1)), np.ones(1))[0] == 1.0


def test_one_sided_p_is_the_share_of_replicates_in_h0():
    samples = np.array([[-5.0], [-3.0], [-1.0], [0.0], [2.0]])  # -1, 0 and 2 lie in H0 (Δ* ≥ -1)
    assert one_sided_drop_p(samples, np.ones(1))[0] == pytest.approx((1 + 3) / 6)


def test_gate_does_not_call_a_one_entry_loss_significant():
    """Support 1, lost: Δ = −100 pp, but a third of the resamples do not draw the entry (Δ* = 0).
    The reflected p-value said p = 1/(B+1) and FAIL; the percentile test says p ≈ 0.37."""
    rows_b, rows_c = [], []
    for i in range(400):
        pc = f"{10000 + i}"
        gold = {"postcode": pc, **({"cedex": "CEDEX 9"} if i == 0 else {})}
        rows_b.append((f"Town {pc}", gold, gold, "us.jsonl"))
        rows_c.append((f"Town {pc}", gold, {"postcode": pc}, "us.jsonl"))
    base = make_run(rows_b, ["postcode", "cedex"], "runtime", "base")
    cand = make_run(rows_c, ["postcode", "cedex"], "runtime", "cand")
    v = gate(base, cand, Thresholds())
    r = v["results"]["excluding_adversarial"]["cedex"]
    assert r["support"] == 1 and r["delta_pp"] == -100.0
    assert 0.3 < r["p"] < 0.45 and r["verdict"] == "WARN" and "min_support" in r["reason"]
    assert v["verdict"] == "WARN"


def test_gate_identical_runs_pass_with_zero_deltas():
    base, _ = two_runs(100, 0)
    v = gate(base, base, Thresholds())
    r = v["results"]["excluding_adversarial"]["postcode"]
    assert v["verdict"] == "PASS" and r["delta_pp"] == 0 and r["ci95"] == [0, 0]


def test_gate_fails_a_real_regression():
    base, cand = two_runs(400, 60)
    v = gate(base, cand, Thresholds())
    r = v["results"]["excluding_adversarial"]["postcode"]
    assert v["verdict"] == "FAIL" and r["verdict"] == "FAIL" and r["p_holm"] < 0.05


def test_gate_warns_on_a_drop_inside_noise_on_a_small_subset():
    base, cand = two_runs(40, 2)  # Δ ≈ −2.6 pp > 1 pp allowed, but 40 entries cannot show it
    v = gate(base, cand, Thresholds())
    r = v["results"]["excluding_adversarial"]["postcode"]
    assert r["delta_pp"] < -1.0
    assert r["verdict"] == "WARN" and "but not significantly after Holm over 1 tests: p " in r["reason"]


def test_a_warn_says_when_the_ci_is_beyond_the_allowance_before_holm():
    """The demo's street drop: 95% CI −4.9..−1.4 pp, p 0.004, Holm p 0.0585 over 24 tests. It is a
    WARN (Holm does not reject), but not "within noise", which the CI beside it contradicted."""
    from mailwoman_eval.gate import DEFAULTS, judge

    row = {"delta_pp": -3.1, "ci95": [-4.9, -1.4], "p": 0.004, "p_holm": 0.0585, "support": 505, "cand_f1": 88.0}
    verdict, reason = judge(row, dict(DEFAULTS), 24)
    assert verdict == "WARN"
    assert reason == ("F1 dropped 3.10 pp (> 1.0 pp) but not significantly after Holm over 24 tests: p 0.0040, "
                      "Holm p 0.0585 ≥ alpha 0.05; its 95% CI -4.90..-1.40 is beyond -1.0 pp before the adjustment")


def test_gate_warns_below_min_support_and_fails_below_min_f1():
    base, cand = two_runs(20, 0)
    assert gate(base, cand, Thresholds())["results"]["excluding_adversarial"]["postcode"]["verdict"] == "WARN"
    t = Thresholds(tags={"postcode": {"min_f1": 99.0, "min_support": 10}})
    base, cand = two_runs(50, 1)
    r = gate(base, cand, t)["results"]["excluding_adversarial"]["postcode"]
    assert r["verdict"] == "FAIL" and "min_f1" in r["reason"]


def test_gated_view_excludes_adversarial_rows():
    base, cand = two_runs(300, 40, n_adv=40)  # every lost entry is adversarial
    v = gate(base, cand, Thresholds())
    assert v["results"]["excluding_adversarial"]["postcode"]["verdict"] == "PASS"
    t = Thresholds(defaults={**Thresholds().defaults, "views": ["all"]})
    assert gate(base, cand, t)["results"]["all"]["postcode"]["verdict"] == "FAIL"


def test_junit_and_markdown():
    base, cand = two_runs(400, 60)
    v = gate(base, cand, Thresholds())
    root = ET.fromstring(junit_xml(v))
    cases = root.findall(".//testcase")
    assert len(cases) == 1 and cases[0].get("name") == "postcode" and cases[0].find("failure") is not None
    md = markdown(v)
    assert "| verdict | tag |" in md and "|---|" in md and "postcode" in md


def test_a_gated_view_with_nothing_to_test_is_a_warn_not_a_pass():
    base, cand = two_runs(100, 100)  # the candidate predicts nothing, and no row is adversarial
    t = Thresholds(defaults={**Thresholds().defaults, "views": ["adversarial_only"]})
    v = gate(base, cand, t)
    assert v["results"] == {"adversarial_only": {}}
    assert v["untested_views"] == {"adversarial_only": "no entries in this view"}
    assert v["verdict"] == "WARN" and "nothing gated in view adversarial_only" in markdown(v)
    skipped = ET.fromstring(junit_xml(v)).findall(".//skipped")
    assert len(skipped) == 1 and skipped[0].get("message") == "no entries in this view"
    assert len(ET.fromstring(junit_xml(v, strict=True)).findall(".//failure")) == 1


def test_allow_mismatch_pairs_only_rows_that_are_the_same_address():
    """Ids are file:line: another golden version can hold another row under the same id."""
    from mailwoman_eval.compare import pair_runs

    base, _ = two_runs(50, 0)
    rows = [(p["raw"], p["gold"], {}) for p in base.predictions]
    rows[3] = ("Other Town 99999", {"postcode": "99999"}, {})  # same id us.jsonl:4, another row
    other = make_run(rows, ["postcode"], "runtime", golden_sha="h" * 64)
    pr = pair_runs(base, other, allow_mismatch=True)
    assert pr.n == 49 and 3 not in pr.bi.tolist()
    assert "1 baseline and 1 candidate entries have no same row (file, raw and gold) in the other run and are left out" in pr.mismatches


def test_a_row_removed_from_the_golden_set_leaves_out_that_row_only(tmp_path):
    """One row deleted from a golden file moves every later row up a line: paired by id, all of them
    were "different rows" and left out (301 of 649 on the demo); and a scores baseline refused the
    comparison outright (its row 20 was not in the candidate). Rows are paired by what they hold."""
    from mailwoman_eval.compare import pair_runs

    base, _ = two_runs(100, 0)
    rows = [(p["raw"], p["gold"], p["gold"] if i % 3 else {}) for i, p in enumerate(base.predictions)]
    del rows[19]
    cand = make_run(rows, ["postcode"], "runtime", "cand", golden_sha="h" * 64)
    pr = pair_runs(base, cand, allow_mismatch=True)
    assert pr.n == 99 and 19 not in pr.bi.tolist()
    assert [base.predictions[b]["raw"] for b in pr.bi] == [cand.predictions[c]["raw"] for c in pr.ci]
    assert pr.mismatches[1:] == ["1 baseline and 0 candidate entries have no same row (file, raw and gold) in the other run and are left out",
                                 "80 rows are paired across line numbers (the same file, raw and gold at another line)"]
    verdicts = [(v["results"], v["mismatch"][1:]) for v in gate_as_run_and_as_scores(base, cand, tmp_path)]
    assert verdicts[0] == verdicts[1] and verdicts[0][0]["excluding_adversarial"]["postcode"]["support"] == 99


def gate_as_run_and_as_scores(base, cand, tmp_path) -> list[dict]:
    """verdict.json of `gate --allow-mismatch` with the baseline as a run directory, then as its
    export-scores JSON (each exits 1: the candidates here regress)."""
    b, c = save_run(base, tmp_path / "b"), save_run(cand, tmp_path / "c")
    assert CliRunner().invoke(main, ["export-scores", "--run", str(b), "--out", str(tmp_path / "b.json")]).exit_code == 0
    verdicts = []
    for baseline in (b, tmp_path / "b.json"):
        out = tmp_path / f"g-{baseline.name}"
        r = CliRunner().invoke(main, ["gate", "--baseline", str(baseline), "--candidate", str(c), "--allow-mismatch", "--out", str(out)])
        assert r.exit_code == 1, r.output
        verdicts.append(json.loads((out / "verdict.json").read_text()))
    return verdicts


def test_different_label_sets_are_refused_without_claiming_a_comparison():
    """The refusal said "comparing the 1 common tags" while comparing nothing."""
    from mailwoman_eval.compare import pair_runs

    rows = [("Paris 75008", {"postcode": "75008", "locality": "Paris"}, {"postcode": "75008"})]
    base, cand = make_run(rows, ["postcode", "locality"], "runtime"), make_run(rows, ["postcode"], "runtime")
    with pytest.raises(MwevalError) as e:
        pair_runs(base, cand)
    assert str(e.value) == ("label sets differ (1 tags in common; baseline only: locality; candidate only: none) "
                            "(use --allow-mismatch to compare the common tags)")
    assert pair_runs(base, cand, allow_mismatch=True).tags == ["postcode"]


def test_runs_with_no_entries_in_common_are_refused(tmp_path):
    """Two golden versions whose every row changed: compare printed tables of 0 against 0 and gate
    said WARN (exit 0) having tested nothing."""
    base, _ = two_runs(30, 0)
    other = make_run([(f"Elsewhere {p['raw']}", p["gold"], p["gold"]) for p in base.predictions], ["postcode"], "runtime", golden_sha="h" * 64)
    b, c = save_run(base, tmp_path / "b"), save_run(other, tmp_path / "c")
    for cmd in (["gate", "--baseline", str(b), "--candidate", str(c), "--allow-mismatch", "--out", str(tmp_path / "g")],
                ["compare", str(b), str(c), "--allow-mismatch", "--out", str(tmp_path / "cmp")]):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 2, r.output
        assert "the runs have no entries in common to compare" in r.output and "30 baseline and 30 candidate entries have no same row" in r.output
    assert not (tmp_path / "g").exists() and not (tmp_path / "cmp").exists()


def test_a_scores_baseline_leaves_out_the_same_changed_rows_as_its_run(tmp_path):
    """A scores file has no raw or gold: it used to borrow the candidate's, so across golden
    versions every row looked unchanged, and a shuffled file compared different addresses
    (a real regression passed). Its row digests now pair rows as the run directory does: the two
    rows that swapped lines are paired with themselves, not left out, nor paired by line."""
    base, _ = two_runs(200, 0)
    rows = [(p["raw"], p["gold"], p["gold"] if i >= 40 else {}) for i, p in enumerate(base.predictions)]
    rows[150], rows[151] = rows[151], rows[150]  # another golden version: two rows swap lines (ids)
    cand = make_run(rows, ["postcode"], "runtime", "cand", golden_sha="h" * 64)
    verdicts = []
    for v in gate_as_run_and_as_scores(base, cand, tmp_path):
        assert "2 rows are paired across line numbers (the same file, raw and gold at another line)" in v["mismatch"]
        verdicts.append(v["results"])
    assert verdicts[0] == verdicts[1]
    assert verdicts[0]["excluding_adversarial"]["postcode"]["support"] == 200
    b, c = tmp_path / "b", tmp_path / "c"  # the run directories the helper saved
    # a scores file exported before row digests cannot tell rows apart: refused, not guessed
    old = json.loads((tmp_path / "b.json").read_text())
    for e in old["entries"]:
        del e["row"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    r = CliRunner().invoke(main, ["gate", "--baseline", str(tmp_path / "old.json"), "--candidate", str(c), "--allow-mismatch",
                                  "--out", str(tmp_path / "g-old")])
    assert r.exit_code == 2 and "records no row digests" in r.output and "export-scores" in r.output
    # ... while on the same golden version it still serves as a baseline
    same = CliRunner().invoke(main, ["gate", "--baseline", str(tmp_path / "old.json"), "--candidate", str(b), "--out", str(tmp_path / "g-same")])
    assert same.exit_code == 0, same.output


def test_the_same_tags_in_another_order_compare():
    from mailwoman_eval.compare import pair_runs

    base, cand = two_runs(20, 0)
    base.meta["tags"] = ["postcode", "street"]
    cand.meta["tags"] = ["street", "postcode"]
    assert pair_runs(base, cand).mismatches == []


def test_an_alpha_no_adjusted_p_can_reach_is_refused(tmp_path):
    """3 views x 1 tag, 2000 resamples: no Holm-adjusted p is below 3/2001 = 0.0015, so at alpha
    0.001 a 60-of-400 loss (no resample near the allowed drop) could never FAIL; it was a WARN
    "within noise" and exit 0."""
    base, cand = two_runs(400, 60, n_adv=40)
    b, c = save_run(base, tmp_path / "b"), save_run(cand, tmp_path / "c")
    t = tmp_path / "t.toml"
    t.write_text('[defaults]\nalpha = 0.001\nviews = ["all", "excluding_adversarial", "adversarial_only"]\n')
    args = ["gate", "--baseline", str(b), "--candidate", str(c), "--thresholds", str(t), "--out", str(tmp_path / "g")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and not (tmp_path / "g").exists()
    assert "alpha 0.001 cannot be reached for postcode (all) and 2 other tests: with 3 gated tests and 2000 resamples" in r.output
    assert "the smallest Holm-adjusted p is 0.0015; set resamples (--resamples, or in the thresholds) to at least 3000" in r.output
    text = t.read_text()
    t.write_text(text + "resamples = 2999\n")  # 3/3000 = alpha: still refused
    assert CliRunner().invoke(main, args).exit_code == 2
    t.write_text(text + "resamples = 3000\n")  # the count the message names is enough (it named 3001)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "FAIL: postcode" in r.output
    # --resamples on the command line does what the message says, over [defaults]
    t.write_text(text + "resamples = 2000\n")
    r = CliRunner().invoke(main, [*args, "--resamples", "3000", "--force"])
    assert r.exit_code == 1 and "FAIL: postcode" in r.output
    v = json.loads((tmp_path / "g" / "verdict.json").read_text())
    assert v["thresholds"]["defaults"]["resamples"] == 3000
    assert CliRunner().invoke(main, [*args, "--resamples", "999", "--force"]).exit_code == 2


def test_holm_runs_on_unrounded_p_values():
    """1/2001 = 0.00049975 rounds to 0.0005: Holm on the rounded p made alpha 0.0005 unreachable
    (a 60-of-400 loss was a WARN) although the refusal, on the exact floor, had let it through."""
    base, cand = two_runs(400, 60)
    t = Thresholds(defaults={**Thresholds().defaults, "alpha": 0.0005})
    r = gate(base, cand, t)["results"]["excluding_adversarial"]["postcode"]
    assert r["p"] == r["p_holm"] == 0.00049975  # 1/2001, not rounded up to the alpha it is compared with
    assert r["verdict"] == "FAIL" and "Holm p 0.0005 < alpha 0.0005" not in r["reason"] and "0.0004998" in r["reason"]


@pytest.mark.parametrize("text", ["max_drop_pp = nan", "alpha = nan", "max_drop_pp = inf", "[tags.postcode]\nmin_f1 = nan"])
def test_thresholds_refuse_non_finite_numbers(tmp_path, text):
    """TOML has nan and inf: a nan max_drop_pp failed every tag (improvements too) and wrote NaN
    into verdict.json; a nan min_f1 switched that rule off without a word."""
    t = tmp_path / "t.toml"
    t.write_text(("[defaults]\n" if not text.startswith("[") else "") + text + "\n")
    with pytest.raises(MwevalError, match="must be a finite number"):
        load_thresholds(str(t))


def test_a_hostile_tag_name_keeps_junit_parseable_and_the_markdown_tables_whole(tmp_path):
    """Tag names come from the checkpoint's config.json: a form feed made junit.xml unparseable,
    a `|` added a column to the summary table."""
    from mailwoman_eval.compare import markdown as compare_markdown

    tag = 'ce<dex>&"\x0c|\nx'
    base, cand = two_runs(400, 60, tag=tag)
    v = gate(base, cand, Thresholds())
    root = ET.fromstring(junit_xml(v))
    assert root.find(".//testcase").get("name") == 'ce<dex>&"\\x0c|\nx'  # a line break is XML; a form feed is not
    for md in (markdown(v), compare_markdown(compare(base, cand, resamples=1000))):
        row = next(line for line in md.splitlines() if "ce&lt;dex&gt;" in line and line.startswith("| "))
        assert "ce&lt;dex&gt;&amp;\"\\x0c\\|\\nx" in row
        header = next(line for line in md.splitlines() if line.startswith("| ") and "support" in line)
        assert row.replace("\\|", "").count("|") == header.count("|")


def test_a_tag_can_be_gated_in_its_own_views(tmp_path):
    """design.md: [tags.X] takes the same keys as [defaults], views included (it was refused)."""
    rows_b, rows_c = [], []
    for i in range(200):
        pc, town = f"{10000 + i}", f"Town{i}"
        f = "adversarial.jsonl" if i < 40 else "us.jsonl"
        gold = {"postcode": pc, "locality": town}
        rows_b.append((f"{town} {pc}", gold, gold, f))
        rows_c.append((f"{town} {pc}", gold, {"locality": town} if i < 30 else gold, f))  # postcode lost on adversarial rows
    base = make_run(rows_b, ["locality", "postcode"], "runtime", "base")
    cand = make_run(rows_c, ["locality", "postcode"], "runtime", "cand")
    t = tmp_path / "t.toml"
    t.write_text('[defaults]\nviews = ["excluding_adversarial"]\n[tags.postcode]\nviews = ["excluding_adversarial", "adversarial_only"]\n')
    v = gate(base, cand, load_thresholds(str(t)))
    assert {view: sorted(r) for view, r in v["results"].items()} == {
        "excluding_adversarial": ["locality", "postcode"], "adversarial_only": ["postcode"]}
    assert v["results"]["adversarial_only"]["postcode"]["verdict"] == "FAIL" and v["verdict"] == "FAIL"
    assert v["results"]["excluding_adversarial"]["postcode"]["verdict"] == "PASS"
    assert gate(base, cand, Thresholds())["verdict"] == "PASS"  # excluding adversarial only: nothing lost there
    t.write_text('[tags.postcode]\nviews = ["everything"]\n')
    with pytest.raises(MwevalError, match="views must be a non-empty list"):
        load_thresholds(str(t))


def test_junit_carries_the_mismatch_and_out_of_distribution_notes():
    """summary.md and verdict.json said MISMATCH and OUT OF DISTRIBUTION; junit.xml, what a CI
    shows, said nothing."""
    from mailwoman_eval.compare import pair_runs
    from mailwoman_eval.run import OOD_PREFIX

    base, _ = two_runs(50, 0)
    rows = [(p["raw"], p["gold"], p["gold"]) for p in base.predictions]
    cand = make_run(rows, ["postcode"], "runtime", "cand", golden_sha="h" * 64)
    cand.meta["warnings"] = [f"{OOD_PREFIX}: 10 side-channel inputs are zero-fed"]
    assert pair_runs(base, cand, allow_mismatch=True).mismatches
    suite = ET.fromstring(junit_xml(gate(base, cand, Thresholds(), allow_mismatch=True))).find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["mismatch"].startswith("golden sets differ") and props["out_of_distribution"] == "yes"
    err = suite.find("system-err").text
    assert err.startswith("MISMATCH (--allow-mismatch): golden sets differ") and f"candidate cand: {OOD_PREFIX}" in err
    assert list(suite)[0].tag == "properties" and list(suite)[-1].tag == "system-err"  # JUnit's element order
    clean = ET.fromstring(junit_xml(gate(base, base, Thresholds()))).find("testsuite")
    assert clean.find("properties") is None and clean.find("system-err") is None


def test_a_view_a_tag_adds_but_cannot_test_says_so():
    """cedex gated in adversarial_only, with no cedex gold there: the view is untested because no tag
    gated in it has a gold value there, not because no tag has one (postcode has)."""
    rows = [(f"Town {10000 + i} CEDEX {i % 9}", {"postcode": f"{10000 + i}", **({} if i < 20 else {"cedex": f"CEDEX {i % 9}"})},
             {"postcode": f"{10000 + i}"}, "adversarial.jsonl" if i < 20 else "fr.jsonl") for i in range(80)]
    run = make_run(rows, ["postcode", "cedex"], "runtime")
    t = Thresholds(tags={"cedex": {"views": ["excluding_adversarial", "adversarial_only"]}})
    v = gate(run, run, t)
    assert v["untested_views"] == {"adversarial_only": "no tag gated in this view has a gold value in it"}


def test_a_tag_gated_where_it_has_no_gold_is_a_warn_not_silently_dropped():
    """cedex, named in the thresholds and gated in adversarial_only, has no gold value there: the
    test was skipped without a word, so with postcode tested in that view the gate said PASS. It is
    a WARN row (support 0 < min_support), outside Holm, and summary.md and junit.xml say so. A tag
    gated by the defaults alone (every tag is) is listed as not gated instead: a label the golden
    set has no value of would make a run WARN against its own rerun."""
    rows = [(f"Town {10000 + i} CEDEX {i % 9}", {"postcode": f"{10000 + i}", **({} if i < 20 else {"cedex": f"CEDEX {i % 9}"})},
             {"postcode": f"{10000 + i}", **({"cedex": "CEDEX 1"} if i == 3 else {})}, "adversarial.jsonl" if i < 20 else "fr.jsonl")
            for i in range(80)]
    run = make_run(rows, ["postcode", "cedex"], "runtime")
    views = ["excluding_adversarial", "adversarial_only"]
    defaults = {**Thresholds().defaults, "min_support": 1, "views": views}
    v = gate(run, run, Thresholds(defaults=defaults))
    assert v["verdict"] == "PASS" and v["not_gated"] == {"adversarial_only": ["cedex"]} and "cedex" not in v["results"]["adversarial_only"]
    assert "> not gated in view adversarial_only, no gold value there: cedex" in markdown(v)
    t = Thresholds(defaults=defaults, tags={"cedex": {"max_drop_pp": 2.0}})
    v = gate(run, run, t)
    assert v["untested_views"] == {} and v["verdict"] == "WARN"
    row = v["results"]["adversarial_only"]["cedex"]
    assert row["verdict"] == "WARN" and row["support"] == 0 and row["p_holm"] is None
    assert row["reason"].startswith("support 0 < min_support 1: no gold value in this view") and "predicts it 1 times" in row["reason"]
    assert v["results"]["excluding_adversarial"]["cedex"]["verdict"] == "PASS"
    assert list(v["results"]["adversarial_only"]) == ["postcode", "cedex"]
    assert "| ⚠️ WARN | cedex | 0 | — | — | — | — | — | support 0" in markdown(v)
    failures = ET.fromstring(junit_xml(v, strict=True)).findall(".//failure")
    assert [f.get("message")[:9] for f in failures] == ["support 0"]


def test_thresholds_file(tmp_path):
    good = tmp_path / "t.toml"
    good.write_text('[defaults]\nmax_drop_pp = 0.5\nviews = ["all"]\n[tags.postcode]\nmin_f1 = 90.0\n')
    t = load_thresholds(str(good))
    assert t.for_tag("postcode") == {**t.defaults, "min_f1": 90.0} and t.defaults["max_drop_pp"] == 0.5
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults]\nmax_drop = 1\n")
    with pytest.raises(MwevalError, match="unknown key 'max_drop'"):
        load_thresholds(str(bad))
    bad.write_text("[defaults\n")
    with pytest.raises(MwevalError, match="malformed TOML"):
        load_thresholds(str(bad))
    bad.write_text('[defaults]\nviews = ["all", "all"]\n')  # would be tested twice, and count twice in Holm
    with pytest.raises(MwevalError, match="views lists a view more than once"):
        load_thresholds(str(bad))


def test_cli_gate_exit_codes_outputs_and_scores_baseline(tmp_path):
    base, cand = two_runs(400, 60)
    b = save_run(base, tmp_path / "base")
    c = save_run(cand, tmp_path / "cand")
    r = CliRunner().invoke(main, ["gate", "--baseline", str(b), "--candidate", str(c), "--out", str(tmp_path / "g")])
    assert r.exit_code == 1 and "FAIL: postcode" in r.output
    # the console is a plain table (the Markdown's reason column made ~400-character rows) with each
    # reason on its own line below; summary.md keeps the Markdown
    out = r.stdout.splitlines()
    assert out[0].startswith("gate: candidate ") and "|" not in r.stdout
    header = out.index("excluding_adversarial") + 1
    assert out[header].split() == ["verdict", "tag", "n", "base", "F1", "cand", "F1", "Δ", "pp", "95%", "CI", "Holm", "p"]
    assert out[header + 2].split()[:2] == ["FAIL", "postcode"]
    assert any(line.startswith("  postcode (FAIL): F1 dropped") for line in out)
    assert (tmp_path / "g" / "summary.md").read_text(encoding="utf-8").startswith("## ❌ mweval gate: FAIL")
    verdict = json.loads((tmp_path / "g" / "verdict.json").read_text())
    assert set(verdict) >= {"verdict", "baseline", "candidate", "profile", "golden", "thresholds", "results"}
    row = verdict["results"]["excluding_adversarial"]["postcode"]
    assert set(row) == {"base_f1", "cand_f1", "delta_pp", "ci95", "p", "p_holm", "support", "verdict", "reason", "seed_sensitive"}
    assert (tmp_path / "g" / "summary.md").stat().st_size < 1 << 20
    ET.parse(tmp_path / "g" / "junit.xml")
    # the same verdict from a committed scores JSON instead of the baseline run
    CliRunner().invoke(main, ["export-scores", "--run", str(b), "--out", str(tmp_path / "base.json")])
    r2 = CliRunner().invoke(main, ["gate", "--baseline", str(tmp_path / "base.json"), "--candidate", str(c), "--out", str(tmp_path / "g2")])
    assert r2.exit_code == 1
    v2 = json.loads((tmp_path / "g2" / "verdict.json").read_text())
    assert v2["results"] == verdict["results"]
    ok = CliRunner().invoke(main, ["gate", "--baseline", str(b), "--candidate", str(b), "--out", str(tmp_path / "g3")])
    assert ok.exit_code == 0


def test_cli_mismatched_golden_is_exit_2_with_one_line(tmp_path):
    base, cand = two_runs(50, 5)
    other = make_run([(p["raw"], p["gold"], {}) for p in cand.predictions], ["postcode"], "runtime", golden_sha="h" * 64)
    b = save_run(base, tmp_path / "b")
    c = save_run(other, tmp_path / "c")
    for cmd in (["gate", "--baseline", str(b), "--candidate", str(c), "--out", str(tmp_path / "g")], ["compare", str(b), str(c), "--out", str(tmp_path / "cmp")]):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 2
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and "golden sets differ" in lines[0]
    assert not (tmp_path / "g").exists() and not (tmp_path / "cmp").exists()
    r = CliRunner().invoke(main, ["compare", str(b), str(c), "--allow-mismatch", "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 0 and "MISMATCH" in r.output
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["mismatch"]


def test_the_strictest_unreachable_alpha_sets_the_resamples_asked_for():
    """Per-tag alphas: the message named the first stuck test's need (3000 for alpha 0.001) while
    street's 0.0005 needs 6000: raising resamples to the number given was refused again."""
    from mailwoman_eval.errors import MwevalError
    from mailwoman_eval.gate import refuse_unreachable_alpha

    def test(tag, alpha):
        return ("all", tag, {"thresholds": {"alpha": alpha, "resamples": 2000}})

    with pytest.raises(MwevalError) as e:
        refuse_unreachable_alpha([test("postcode", 0.001), test("street", 0.0005), test("locality", 0.05)], None)
    assert "alpha 0.0005 cannot be reached for street (all) and 1 other test" in str(e.value)
    assert "set resamples (--resamples, or in the thresholds) to at least 6000" in str(e.value)
    # an alpha no allowed resample count reaches: the advice is not a count that is refused in turn
    with pytest.raises(MwevalError) as e:
        refuse_unreachable_alpha([test("postcode", 1e-7)], None)
    assert "gate fewer views, or raise alpha (it would take 10000000 resamples, over the 1000000 allowed)" in str(e.value)
    assert "set resamples" not in str(e.value)


def test_category_shifts_are_counted_per_view_with_the_compares_adversarial_choice():
    """compare.json had the category shifts over all entries only, whatever view the reader chose.
    Hand-counted: rows 0-9 are adversarial.jsonl, rows 20-21 have a Cyrillic raw (adversarial
    only with --adversarial non-latin)."""

    rows_b, rows_c = [], []
    for i in range(40):
        pc = f"{10000 + i}"
        raw = f"Москва {pc}" if i in (20, 21) else f"Town {pc}"
        f = "adversarial.jsonl" if i < 10 else "us.jsonl"
        gold = {"postcode": pc}
        base = {} if i in (12, 13) else dict(gold)  # the base misses two non-adversarial postcodes
        cand = {} if i < 3 or 20 <= i < 25 else ({"postcode": "Town"} if i == 12 else dict(gold))
        rows_b.append((raw, gold, base, f))
        rows_c.append((raw, gold, cand, f))
    b = make_run(rows_b, ["postcode"], "runtime", "base")
    c = make_run(rows_c, ["postcode"], "runtime", "cand")

    res = compare(b, c, resamples=1000)
    sv = res["category_shifts_by_view"]
    assert sv["all"] == res["category_shifts"]  # older readers: the all-entries shifts under the old key
    adv, rest = sv["adversarial_only"]["postcode"], sv["excluding_adversarial"]["postcode"]
    assert adv["FN"] == {"base_total": 0, "cand_total": 3, "categories": {"empty_pred": {"base": 0, "cand": 3, "delta": 3}},
                         "moves": [{"from": "(none)", "to": "empty_pred", "count": 3}]}
    assert adv["FP"] == {"base_total": 0, "cand_total": 0, "categories": {}, "moves": []}
    assert rest["FN"] == {
        "base_total": 2, "cand_total": 6,
        "categories": {"empty_pred": {"base": 2, "cand": 5, "delta": 3}, "other": {"base": 0, "cand": 1, "delta": 1}},
        "moves": [{"from": "(none)", "to": "empty_pred", "count": 5}, {"from": "empty_pred", "to": "(none)", "count": 1},
                  {"from": "empty_pred", "to": "other", "count": 1}],
    }  # fmt: skip
    assert rest["FP"]["categories"] == {"other": {"base": 0, "cand": 1, "delta": 1}}

    # the views are those of the compare's --adversarial: the two Cyrillic rows move to adversarial only
    nl = compare(b, c, resamples=1000, adversarial="non-latin")["category_shifts_by_view"]
    assert nl["all"] == sv["all"]
    assert nl["adversarial_only"]["postcode"]["FN"]["categories"] == {"empty_pred": {"base": 0, "cand": 5, "delta": 5}}
    assert nl["excluding_adversarial"]["postcode"]["FN"]["categories"]["empty_pred"] == {"base": 2, "cand": 3, "delta": 1}


def test_a_pytorch_step_against_its_onnx_export_takes_the_options_of_each_side(tmp_path, shared):
    """--pad-to applies to the export, --engine to the step: the refusal of options a checkpoint
    cannot use (they were ignored without a word) refused this compare; it now refuses an option
    only when no checkpoint of the command can use it, before anything is evaluated. Two
    checkpoint paths plus --tokenizer were evaluated and then refused as 'saved runs'."""
    from conftest import GOLDEN_V012, TINY, TINY_STEP, TOKENIZER_V010

    common = ["--golden", str(GOLDEN_V012 / "test"), "--tokenizer", str(TOKENIZER_V010), "--resamples", "1000", "-q"]
    r = CliRunner().invoke(main, ["compare", str(TINY_STEP), str(TINY / "onnx" / "model.int8.onnx"), *common,
                                  "--pad-to", "own", "--engine", "numpy", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    from pathlib import Path

    runs = {json.loads(p.read_text())["checkpoint"]["format"]: json.loads(p.read_text()) for p in Path("runs").glob("*/run.json")}
    assert runs["onnx"]["decode"]["padding"] == "own-length" and runs["pytorch"]["checkpoint"]["engine"] == "numpy"
    r = CliRunner().invoke(main, ["gate", "--baseline", str(TINY_STEP), "--candidate", str(TINY / "step-000150"),
                                  *[a for a in common if a != "--resamples" and a != "1000"], "--pad-to", "own", "--out", str(tmp_path / "g")])
    assert r.exit_code == 2 and "--pad-to own applies to ONNX models" in r.output
    assert not (tmp_path / "g").exists()
    r = CliRunner().invoke(main, ["compare", str(TINY / "onnx" / "model.onnx"), str(TINY / "onnx" / "model.int8.onnx"), *common,
                                  "--engine", "torch", "--out", str(tmp_path / "e")])
    assert r.exit_code == 2 and "--engine torch applies to PyTorch checkpoints" in r.output


def test_a_run_compared_with_itself_says_every_delta_is_zero_by_construction(tmp_path):
    """A report of zeros reads like a measured "no change"; and the title says which side is which
    (it read "X vs Y", and swapped arguments made a regression read as an improvement)."""
    rows = [("12 Main St", {"postcode": "62701"}, {"postcode": "62701"})] * 4
    a = save_run(make_run(rows, ["postcode"], name="a"), tmp_path / "a")
    for args in (["compare", str(a), str(a), "--out", str(tmp_path / "c")],
                 ["gate", "--baseline", str(a), "--candidate", str(a), "--out", str(tmp_path / "g")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, r.output
        assert r.stderr.startswith("warning: the baseline and the candidate have identical predictions"), r.stderr
    b = save_run(make_run([*rows[:3], ("12 Main St", {"postcode": "62701"}, {})], ["postcode"], name="b"), tmp_path / "b")
    r = CliRunner().invoke(main, ["compare", str(a), str(b), "--out", str(tmp_path / "c2")])
    assert r.exit_code == 0 and "identical predictions" not in r.stderr
    md = (tmp_path / "c2" / "compare.md").read_text(encoding="utf-8")
    assert md.startswith("## mweval compare: candidate `b` vs baseline `a`")
    assert '<span class="sub">candidate</span> <bdi>b</bdi> <span class="sub">vs baseline</span> <bdi>a</bdi>' in (tmp_path / "c2" / "compare.html").read_text(encoding="utf-8")


def test_a_bootstrap_too_large_for_the_golden_set_is_refused_before_evaluating(tmp_path, shared, monkeypatch):
    """`--resamples 1000000` is allowed, but B x n is capped (stats.MAX_RESAMPLE_CELLS): on 456 rows
    at most 438596 resamples. Both checkpoints were evaluated (minutes on a real model) before the
    refusal; now it comes first, and an evaluation would fail this test."""
    from conftest import GOLDEN_V012, TINY, TINY_STEP, TOKENIZER_V010

    import mailwoman_eval.cli_compare as cc

    def no_evaluation(*a, **k):
        raise AssertionError("evaluated before the refusal")

    monkeypatch.setattr(cc, "run_eval", no_evaluation)
    sides = [str(TINY_STEP), str(TINY / "step-000150")]
    common = ["--golden", str(GOLDEN_V012 / "test"), "--tokenizer", str(TOKENIZER_V010), "-q", "--resamples", "1000000"]
    for cmd, out in ((["compare", *sides], "c"), (["gate", "--baseline", sides[0], "--candidate", sides[1]], "g")):
        r = CliRunner().invoke(main, [*cmd, *common, "--out", str(tmp_path / out)])
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1, r.output
        # compare resamples every view ("all": 456 rows); the gate its default view, without the adversarial rows
        n = 456 if cmd[0] == "compare" else sum(
            1 for f in (GOLDEN_V012 / "test").glob("*.jsonl") if f.stem != "adversarial" for line in f.read_text().splitlines()
            if line.strip() and not json.loads(line).get("notes", "").startswith(("kryptonite", "graceful")))
        assert f"1000000 resamples of {n} entries need about" in lines[0]
        assert f"at most {200_000_000 // n} resamples for this golden set" in lines[0]
        assert not (tmp_path / out).exists()
    # two checkpoints on one golden set pair every row, --allow-mismatch or not
    r = CliRunner().invoke(main, ["compare", *sides, *common, "--allow-mismatch", "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "1000000 resamples of 456 entries" in r.output, r.output
    # a tag's own views and resamples draw too (the defaults here are small)
    th = tmp_path / "th.toml"
    th.write_text('[defaults]\nviews = ["adversarial_only"]\n\n[tags.street]\nviews = ["all"]\nresamples = 1000000\n')
    r = CliRunner().invoke(main, ["gate", "--baseline", sides[0], "--candidate", sides[1], *common[:-2], "--thresholds", str(th),
                                  "--out", str(tmp_path / "g")])
    assert r.exit_code == 2 and "1000000 resamples of 456 entries" in r.output, r.output


def test_the_resamples_an_unreachable_alpha_asks_for_fit_the_golden_set():
    """The advice named a count that the size cap then refused (50000 resamples of 4561 rows)."""
    from mailwoman_eval.gate import refuse_unreachable_alpha

    tests = [("all", f"t{k}", {"thresholds": {"alpha": 0.001, "resamples": 2000}}) for k in range(50)]
    with pytest.raises(MwevalError) as e:
        refuse_unreachable_alpha(tests, None, 200_000_000 // 4561)
    assert "gate fewer views, or raise alpha (it would take 50000 resamples, over the 43850 allowed for this golden set)" in str(e.value)
    with pytest.raises(MwevalError) as e:
        refuse_unreachable_alpha(tests, None, 200_000_000 // 1000)
    assert "set resamples (--resamples, or in the thresholds) to at least 50000" in str(e.value)
