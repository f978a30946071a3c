"""The gate's verdict rules, edge by edge (design.md Decisions, "Gate"): FAIL when the Holm-adjusted
p < alpha, or candidate F1 < min_f1 with support ≥ min_support; WARN when support < min_support, or
Δ < −max_drop_pp without significance; else PASS. Thresholds TOML defaults and per-tag overrides,
Holm over the gated (view, tag) tests, and the exit codes (0 pass / 1 FAIL, or WARN with --strict)."""

import json

import pytest
from click.testing import CliRunner
from runfactory import make_run, save_run

from mailwoman_eval.cli import main
from mailwoman_eval.gate import DEFAULTS, Thresholds, gate, judge, load_thresholds

TH = dict(DEFAULTS)  # max_drop_pp 1.0, min_support 30, alpha 0.05


def row(delta=0.0, p_holm=0.5, support=100, cand_f1=95.0, ci95=(-0.5, 0.5), p=None):
    return {"delta_pp": delta, "ci95": list(ci95), "p": p_holm if p is None else p, "p_holm": p_holm, "support": support,
            "cand_f1": cand_f1}


def verdict(r, th=TH, exact=None):
    return judge(r, th, 1, exact)[0]


def test_the_design_defaults():
    assert DEFAULTS == {"max_drop_pp": 1.0, "min_support": 30, "alpha": 0.05, "views": ["excluding_adversarial"], "resamples": 2000}
    assert Thresholds().for_tag("postcode") == DEFAULTS and Thresholds().views() == ["excluding_adversarial"]


def test_fail_needs_the_adjusted_p_strictly_below_alpha():
    assert verdict(row(delta=-5.0, p_holm=0.0499)) == "FAIL"
    assert verdict(row(delta=-5.0, p_holm=0.05)) == "WARN"  # = alpha: not significant, a drop beyond the allowance
    assert verdict(row(delta=-5.0, p_holm=0.0499), {**TH, "alpha": 0.01}) == "WARN"  # the tag's alpha is the one used


def test_a_significant_drop_fails_even_below_min_support():
    # FAIL comes first: support < min_support is a WARN only when nothing FAILs
    assert verdict(row(delta=-50.0, p_holm=0.001, support=5)) == "FAIL"
    assert verdict(row(delta=-50.0, p_holm=0.2, support=5)) == "WARN"


def test_support_below_min_support_is_a_warn_at_the_edge():
    assert verdict(row(support=29)) == "WARN"
    assert verdict(row(support=30)) == "PASS"
    assert verdict(row(support=9), {**TH, "min_support": 10}) == "WARN"
    assert verdict(row(support=10), {**TH, "min_support": 10}) == "PASS"


def test_min_f1_fails_only_strictly_below_and_with_enough_support():
    th = {**TH, "min_f1": 90.0}
    assert verdict(row(cand_f1=89.99), th) == "FAIL"
    assert judge(row(cand_f1=89.99), th)[1].startswith("candidate F1 89.99 < min_f1 90.0")
    assert verdict(row(cand_f1=90.0), th) == "PASS"
    assert verdict(row(cand_f1=89.99, support=30), th) == "FAIL"  # support = min_support is enough
    assert verdict(row(cand_f1=89.99, support=29), th) == "WARN"  # too few to gate: a WARN, not a FAIL
    assert verdict(row(cand_f1=10.0)) == "PASS"  # no min_f1, no floor


def test_a_drop_beyond_the_allowance_without_significance_is_a_warn_at_the_edge():
    assert verdict(row(delta=-1.0001, p_holm=0.3)) == "WARN"
    assert verdict(row(delta=-1.0, p_holm=0.3)) == "PASS"  # exactly the allowance: allowed
    assert verdict(row(delta=-1.5, p_holm=0.3), {**TH, "max_drop_pp": 2.0}) == "PASS"
    assert verdict(row(delta=-2.5, p_holm=0.3), {**TH, "max_drop_pp": 2.0}) == "WARN"
    assert verdict(row(delta=+3.0, p_holm=1.0)) == "PASS"
    # the unadjusted CI is named only when it lies wholly beyond the allowance
    assert "its 95% CI" not in judge(row(delta=-1.5, p_holm=0.3, ci95=(-5.0, 2.0)), TH)[1]
    assert "its 95% CI" not in judge(row(delta=-1.5, p_holm=0.3, ci95=(-5.0, -1.0)), TH)[1]
    assert judge(row(delta=-1.5, p_holm=0.3, ci95=(-5.0, -1.01)), TH)[1].endswith("; its 95% CI -5.00..-1.01 is beyond -1.0 pp before the adjustment")


def test_decisions_use_the_unrounded_figures_when_given():
    # the row holds what is printed; `exact` what is decided on
    assert verdict(row(delta=-5.0, p_holm=0.05), exact={"p_holm": 0.04999, "cand_f1": 95.0, "delta_pp": -5.0}) == "FAIL"
    assert verdict(row(delta=-5.0, p_holm=0.0499), exact={"p_holm": 0.05, "cand_f1": 95.0, "delta_pp": -5.0}) == "WARN"
    th = {**TH, "min_f1": 90.0}
    assert verdict(row(cand_f1=90.0), th, {"p_holm": 0.5, "cand_f1": 89.99996, "delta_pp": 0.0}) == "FAIL"
    assert verdict(row(cand_f1=89.9), th, {"p_holm": 0.5, "cand_f1": 90.0, "delta_pp": 0.0}) == "PASS"
    assert verdict(row(delta=-1.0, p_holm=0.3), exact={"p_holm": 0.3, "cand_f1": 95.0, "delta_pp": -1.00004}) == "WARN"
    assert verdict(row(delta=-1.1, p_holm=0.3), exact={"p_holm": 0.3, "cand_f1": 95.0, "delta_pp": -1.0}) == "PASS"


def test_per_tag_overrides_win_over_the_defaults_for_that_tag_only():
    t = Thresholds(defaults={**DEFAULTS, "max_drop_pp": 2.0}, tags={"postcode": {"max_drop_pp": 0.5, "min_f1": 90.0}})
    assert t.for_tag("postcode") == {**DEFAULTS, "max_drop_pp": 0.5, "min_f1": 90.0}
    assert t.for_tag("street") == {**DEFAULTS, "max_drop_pp": 2.0}
    # the union of the views every tag is gated in, in the order of VIEWS
    t = Thresholds(defaults={**DEFAULTS, "views": ["adversarial_only"]}, tags={"postcode": {"views": ["all"]}})
    assert t.views() == ["all", "adversarial_only"]


def test_the_toml_keeps_the_defaults_it_does_not_set_and_overrides_per_tag(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text('[defaults]\nalpha = 0.01\n[tags.postcode]\nmax_drop_pp = 0.5\nmin_support = 5\n[tags.street]\nmin_f1 = 80.0\n')
    t = load_thresholds(str(p))
    assert t.defaults == {**DEFAULTS, "alpha": 0.01}
    assert t.for_tag("postcode") == {**DEFAULTS, "alpha": 0.01, "max_drop_pp": 0.5, "min_support": 5}
    assert t.for_tag("street") == {**DEFAULTS, "alpha": 0.01, "min_f1": 80.0}
    assert t.for_tag("locality") == {**DEFAULTS, "alpha": 0.01}
    assert t.file == str(p) and Thresholds().file is None
    assert load_thresholds(None).for_tag("x") == DEFAULTS


def two_runs(n, lost, n_adv=0):
    rows_b, rows_c = [], []
    for i in range(n):
        pc = f"{10000 + i}"
        f = "adversarial.jsonl" if i < n_adv else "us.jsonl"
        rows_b.append((f"Town {pc}", {"postcode": pc}, {"postcode": pc}, f))
        rows_c.append((f"Town {pc}", {"postcode": pc}, {} if i < lost else {"postcode": pc}, f))
    return make_run(rows_b, ["postcode"], "runtime", "base"), make_run(rows_c, ["postcode"], "runtime", "cand")


def test_holm_counts_every_gated_view_tag_test():
    """The same tag in two identical views (no adversarial rows): two tests, each p doubled by Holm."""
    base, cand = two_runs(200, 6)
    one = gate(base, cand, Thresholds(), seed=1)["results"]["excluding_adversarial"]["postcode"]
    assert one["p_holm"] == one["p"] and "over 1 tests" in one["reason"]
    v = gate(base, cand, Thresholds(defaults={**DEFAULTS, "views": ["all", "excluding_adversarial"]}), seed=1)
    rows = [v["results"][view]["postcode"] for view in ("all", "excluding_adversarial")]
    for r in rows:
        assert r["p"] == one["p"] and r["p_holm"] == pytest.approx(min(1.0, 2 * one["p"]), abs=1e-8)
        assert r["delta_pp"] == one["delta_pp"] and r["support"] == one["support"] == 200
        assert "over 2 tests" in r["reason"]


def test_gate_fields_are_the_observed_f1s_and_their_difference():
    base, cand = two_runs(400, 60)  # cand recall 340/400, precision 1
    r = gate(base, cand, Thresholds())["results"]["excluding_adversarial"]["postcode"]
    f1 = 2 * 340 / (340 + 400) * 100
    assert r["base_f1"] == 100.0 and r["cand_f1"] == pytest.approx(f1, abs=1e-4)
    assert r["delta_pp"] == pytest.approx(f1 - 100.0, abs=1e-4) and r["support"] == 400
    assert r["ci95"][0] < r["delta_pp"] < r["ci95"][1] < 0
    assert r["verdict"] == "FAIL" and r["seed_sensitive"] is False
    assert r["reason"].startswith("F1 dropped 8.11 pp (> 1.0 pp allowed), significant: Holm p ") and r["reason"].endswith("< alpha 0.05")


def test_a_per_tag_min_f1_in_the_gate_and_the_overall_verdict(tmp_path):
    base, cand = two_runs(100, 0)
    p = tmp_path / "t.toml"
    p.write_text("[tags.postcode]\nmin_f1 = 99.6\n")
    v = gate(base, cand, load_thresholds(str(p)))
    assert v["verdict"] == "PASS"  # F1 100 is above the floor
    base, cand = two_runs(100, 1)  # F1 99.50: below, with support 100 ≥ 30; the drop itself is not significant
    v = gate(base, cand, load_thresholds(str(p)))
    assert v["results"]["excluding_adversarial"]["postcode"]["verdict"] == "FAIL" and v["verdict"] == "FAIL"
    assert gate(base, cand, Thresholds())["verdict"] == "PASS"  # without the floor



def test_min_f1_is_judged_on_the_exact_f1_from_counts(tmp_path):
    """eval.py's 1e-9 guards put a perfect F1 at 99.99999995 pp: `min_f1 = 100` failed a candidate
    that got every postcode right ("candidate F1 100.00 < min_f1 100.0"). The floor takes the exact
    F1, 2tp / (2tp + fp + fn), against the floor as typed."""
    base, cand = two_runs(100, 0)
    r = gate(base, cand, Thresholds(tags={"postcode": {"min_f1": 100.0}}))["results"]["excluding_adversarial"]["postcode"]
    assert r["cand_f1"] == 100.0 and r["verdict"] == "PASS"
    # 1 of 200 lost: exact F1 = 2·199 / (2·199 + 1) = 99.7493734…%; a floor a hair above it fails, one at
    # the rounded figure printed to 4 places (99.7494, above the exact value) fails too, one below passes
    base, cand = two_runs(200, 1)
    exact = 200 * 199 / (2 * 199 + 1)
    for floor, verdict in ((99.7494, "FAIL"), (99.7493, "PASS"), (100, "FAIL")):
        r = gate(base, cand, Thresholds(tags={"postcode": {"min_f1": floor}}))["results"]["excluding_adversarial"]["postcode"]
        assert r["verdict"] == verdict, (floor, r)
        if verdict == "FAIL":
            assert r["reason"].startswith(("candidate F1 99.749373 <", "candidate F1 99.75 <")) and f"< min_f1 {floor}" in r["reason"]
    assert 99.7493 < exact < 99.7494
    # the reason prints enough places never to show the two as equal
    assert judge(row(cand_f1=89.99999), {**TH, "min_f1": 90.0})[1].startswith("candidate F1 89.999990 < min_f1 90.0")

def gate_cli(tmp_path, base, cand, *extra):
    b, c = save_run(base, tmp_path / "b"), save_run(cand, tmp_path / "c")
    out = tmp_path / ("g" + "".join(extra).replace("-", ""))
    r = CliRunner().invoke(main, ["gate", "--baseline", str(b), "--candidate", str(c), "--out", str(out), *extra])
    return r, json.loads((out / "verdict.json").read_text())


def test_exit_codes_pass_warn_and_strict(tmp_path):
    """Exit 0 on PASS; a WARN exits 0, and 1 with --strict; a FAIL exits 1 either way."""
    base, cand = two_runs(20, 0)  # support 20 < 30: WARN
    r, v = gate_cli(tmp_path, base, cand)
    assert v["verdict"] == "WARN" and r.exit_code == 0
    r, v = gate_cli(tmp_path, base, cand, "--strict")
    assert v["verdict"] == "WARN" and r.exit_code == 1 and "postcode (excluding_adversarial)" in r.output
    base, cand = two_runs(100, 0)
    r, v = gate_cli(tmp_path / "p", base, cand, "--strict")
    assert v["verdict"] == "PASS" and r.exit_code == 0
    base, cand = two_runs(400, 60)
    r, v = gate_cli(tmp_path / "f", base, cand)
    assert v["verdict"] == "FAIL" and r.exit_code == 1


def test_an_untested_view_is_a_warn_and_fails_only_under_strict(tmp_path):
    base, cand = two_runs(100, 0)  # no adversarial rows
    p = tmp_path / "t.toml"
    p.write_text('[defaults]\nviews = ["excluding_adversarial", "adversarial_only"]\n')
    r, v = gate_cli(tmp_path, base, cand, "--thresholds", str(p))
    assert v["verdict"] == "WARN" and v["untested_views"] == {"adversarial_only": "no entries in this view"} and r.exit_code == 0
    r, v = gate_cli(tmp_path, base, cand, "--thresholds", str(p), "--strict")
    assert r.exit_code == 1 and "nothing gated (adversarial_only)" in r.output


def test_a_view_without_entries_is_said_once_as_untested(tmp_path):
    """Not per tag as well: no not-gated list, no WARN row per tag, for a tag named or not."""
    base, cand = two_runs(100, 0)
    for t in (Thresholds(defaults={**DEFAULTS, "views": ["excluding_adversarial", "adversarial_only"]}),
              Thresholds(defaults={**DEFAULTS, "views": ["excluding_adversarial", "adversarial_only"]}, tags={"postcode": {"min_f1": 50.0}})):
        v = gate(base, cand, t)
        assert v["untested_views"] == {"adversarial_only": "no entries in this view"} and v["not_gated"] == {}
        assert v["results"]["adversarial_only"] == {} and v["verdict"] == "WARN"
        assert v["results"]["excluding_adversarial"]["postcode"]["verdict"] == "PASS"


def test_gate_refuses_runs_of_other_golden_sets_unless_told():
    from mailwoman_eval.errors import MwevalError

    base, _ = two_runs(50, 0)
    other = make_run([(p["raw"], p["gold"], p["gold"]) for p in base.predictions], ["postcode"], "runtime", "cand", golden_sha="h" * 64)
    with pytest.raises(MwevalError, match="golden sets differ"):
        gate(base, other, Thresholds())
    assert gate(base, other, Thresholds(), allow_mismatch=True)["mismatch"]


def test_the_bootstrap_interval_is_in_percentage_points_hand_computable():
    """Base right on both entries, the candidate wrong on the second: a resample draws it 0, 1 or 2
    times (1/4, 1/2, 1/4), so Δ F1 ∈ {0, −33.3, −100} pp: the 95% interval is [−100, 0], and the
    one-sided p is the share of resamples with Δ* ≥ −1, about 1/4."""
    rows = [("Town 1", {"postcode": "1"}), ("Town 2", {"postcode": "2"})]
    base = make_run([(r, g, g) for r, g in rows], ["postcode"], "runtime", "base")
    cand = make_run([(r, g, g if i == 0 else {}) for i, (r, g) in enumerate(rows)], ["postcode"], "runtime", "cand")
    r = gate(base, cand, Thresholds(defaults={**DEFAULTS, "resamples": 4000}), seed=1)["results"]["excluding_adversarial"]["postcode"]
    assert r["ci95"] == [-100.0, 0.0] and r["delta_pp"] == pytest.approx(-100 / 3, abs=1e-4)
    assert 0.22 < r["p"] < 0.28 and r["verdict"] == "WARN"  # support 2 < 30


def test_a_named_tag_without_gold_in_a_view_is_a_warn_outside_holm():
    """cedex is named in the thresholds but has no gold value in the view: a WARN row with nothing
    computed, and not one of the tests Holm counts (postcode's drop is judged over 1 test)."""
    rows_b, rows_c = [], []
    for i in range(200):
        pc = f"{10000 + i}"
        rows_b.append((f"Town {pc}", {"postcode": pc}, {"postcode": pc}))
        rows_c.append((f"Town {pc}", {"postcode": pc}, {} if i < 6 else {"postcode": pc}))
    base = make_run(rows_b, ["postcode", "cedex"], "runtime", "base")
    cand = make_run(rows_c, ["postcode", "cedex"], "runtime", "cand")
    v = gate(base, cand, Thresholds(tags={"cedex": {"max_drop_pp": 2.0}}), seed=1)
    pc, cedex = v["results"]["excluding_adversarial"]["postcode"], v["results"]["excluding_adversarial"]["cedex"]
    assert pc["p_holm"] == pc["p"] and "over 1 tests" in pc["reason"]
    assert {k: cedex[k] for k in ("base_f1", "cand_f1", "delta_pp", "ci95", "p", "p_holm", "support", "seed_sensitive", "verdict")} == {
        "base_f1": None, "cand_f1": None, "delta_pp": None, "ci95": None, "p": None, "p_holm": None, "support": 0,
        "seed_sensitive": False, "verdict": "WARN"}
    assert v["verdict"] == "WARN" and v["untested_views"] == {} and v["not_gated"] == {}


def test_junit_counts_an_untested_view_as_skipped_or_under_strict_failed():
    from xml.etree import ElementTree as ET

    from mailwoman_eval.gate import junit_xml

    base, cand = two_runs(400, 60)  # postcode FAILs in excluding_adversarial; adversarial_only has no entries
    v = gate(base, cand, Thresholds(defaults={**DEFAULTS, "views": ["excluding_adversarial", "adversarial_only"]}))
    for strict, failures, skipped in ((False, "1", "1"), (True, "2", "0")):
        root = ET.fromstring(junit_xml(v, strict=strict))
        suite = root.find("testsuite")
        assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("2", failures, skipped, "0")
        assert (root.get("tests"), root.get("failures")) == ("2", failures)


def test_an_alpha_below_one_over_a_tags_own_resamples_plus_one_is_refused():
    """A tag's bootstrap p is at least 1/(B+1) with its own B, whatever another tag resamples."""
    from mailwoman_eval.errors import MwevalError
    from mailwoman_eval.gate import refuse_unreachable_alpha

    def tests(b):
        return [("all", "postcode", {"thresholds": {"alpha": 0.0005, "resamples": b}}),
                ("all", "street", {"thresholds": {"alpha": 0.05, "resamples": 100_000}})]

    with pytest.raises(MwevalError, match="alpha 0.0005 cannot be reached for postcode"):
        refuse_unreachable_alpha(tests(1999), None)  # 1/2000 = alpha
    refuse_unreachable_alpha(tests(2000), None)  # 1/2001 < alpha, and 2/100001 too


def test_seed_note_flags_an_adjusted_p_within_two_monte_carlo_errors_of_alpha():
    """se(p) = sqrt(p(1-p)/B), carried to the Holm p in proportion: p 0.02, Holm p 0.045, B 2000 gives
    ±2·0.045·sqrt(0.98/40) = ±0.014 around alpha 0.05; 4·0.045²·0.98/(0.02·0.005²) = 15876 resamples
    would put alpha outside it."""
    from mailwoman_eval.gate import seed_note

    assert seed_note(0.02, 0.045, 0.05, 2000) == (
        "Holm p 0.0450 is within Monte-Carlo error of alpha 0.05 at 2000 resamples (±0.014): another --seed can give "
        "another verdict; about 15876 resamples (--resamples) would settle it")
    assert "(±0.017)" in seed_note(0.02, 0.055, 0.05, 2000)  # above alpha as well as below
    assert seed_note(0.02, 0.03, 0.05, 2000) is None and seed_note(0.02, 0.09, 0.05, 2000) is None  # gap ≥ 2 errors
    assert "(±0.007)" in seed_note(0.02, 0.045, 0.05, 8000)  # 4x the resamples: half the error, still over the gap
    assert seed_note(0.02, 0.045, 0.05, 16000) is None  # ±0.00498 < 0.005
    assert seed_note(0.02, 0.05, 0.05, 2000).endswith("far more resamples would be needed to settle it")  # on alpha
    # no note for p at its bounds (no Monte-Carlo error to speak of) or a Holm p of 1
    assert seed_note(0.0, 0.0, 0.05, 2000) is None and seed_note(1.0, 1.0, 0.05, 2000) is None
    assert seed_note(0.5, 1.0, 0.99, 2000) is None


@pytest.mark.parametrize("line, ok", [
    ("min_support = 0", True), ("min_support = -1", False), ("min_support = 1.5", False), ("min_support = true", False),
    ("alpha = 0.5", True), ("alpha = 0", False), ("alpha = 1", False), ("alpha = 0.0", False), ("alpha = 1.0", False),
    ("min_f1 = 0", True), ("min_f1 = 100", True), ("min_f1 = 1.5", True), ("min_f1 = 100.5", False), ("min_f1 = -0.5", False),
    ("min_f1 = 0.95", False), ("min_f1 = 1.0", False),  # fractions: a floor of 0.95 % never fires
    ("max_drop_pp = 0", True), ("max_drop_pp = -0.1", False),
    ("resamples = 1000", True), ("resamples = 999", False), ("resamples = 1000000", True), ("resamples = 1000001", False),
])
def test_threshold_values_at_the_edges_of_their_ranges(tmp_path, line, ok):
    from mailwoman_eval.errors import MwevalError

    p = tmp_path / "t.toml"
    for section in ("[defaults]", "[tags.postcode]"):
        p.write_text(f"{section}\n{line}\n")
        if ok:
            load_thresholds(str(p))
        else:
            with pytest.raises(MwevalError):
                load_thresholds(str(p))
