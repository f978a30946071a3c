"""compare's rules, edge by edge (design.md "Profiles", "Gate"; README "Compare and gate"): what it
refuses, how it pairs rows, that its per-tag and summary numbers are each run's own (run.json's),
the paired-bootstrap CI and p, entries newly broken and fixed, category shifts, and which tags the
lists of CIs below / above zero name, in which order.

Runs are hand-built (tests/runfactory.py) where the rule is the point, the bundled demo pair
(step-001800 vs step-002200 on demo-v1) where the numbers must add up on a real comparison.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from runfactory import make_run

from mailwoman_eval.checkpoints.resolve import BUNDLED_RUNS
from mailwoman_eval.cli import main
from mailwoman_eval.compare import (
    compare,
    entry_changes,
    f1_measured,
    fp_only,
    new_fps_without_gold,
    opposite_note,
    pair_runs,
    regressed_tags,
    significance,
    summary_scope,
    tag_empty,
    view_statistics,
    views_where,
    what_changed,
)
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.metrics import FN, FP, NONE, TP, VIEWS, WRONG, view_masks
from mailwoman_eval.run import load_run

DEMO_READY = (BUNDLED_RUNS / "regressed" / "step-002200").is_dir()
needs_demo = pytest.mark.skipif(not DEMO_READY, reason="demo runs not built")

ONE = (np.ones(1), np.ones(1))


def postcode_runs(n, lost=(), found=(), adversarial=(), tag="postcode", **kw):
    """n entries with a gold `tag`; the baseline misses entries `found`, the candidate those `lost`."""
    rows_b, rows_c = [], []
    for i in range(n):
        pc = f"{10000 + i}"
        f = "adversarial.jsonl" if i in adversarial else "us.jsonl"
        rows_b.append((f"Town {pc}", {tag: pc}, {} if i in found else {tag: pc}, f))
        rows_c.append((f"Town {pc}", {tag: pc}, {} if i in lost else {tag: pc}, f))
    return make_run(rows_b, [tag], "runtime", "base", **kw), make_run(rows_c, [tag], "runtime", "cand", **kw)


def f1_row(delta, ci, support=100, fp=(0, 0)):
    return {"support": support, "f1": {"delta_pp": delta, "ci95_pp": list(ci)}, "tp": [support, support], "fp": list(fp)}


def doc(views: dict[str, dict], tags: list[str]) -> dict:
    """A compare.json skeleton: `views` {view: {tag: per-tag row}}; views not given hold the tags unchanged."""
    full = {v: {"entries": 100, "per_tag": views.get(v, {t: f1_row(0.0, (-1.0, 1.0)) for t in tags})} for v in VIEWS}
    return {"tags": tags, "views": full}


# ---------------------------------------------------------------------------------------------
# what compare refuses (design.md "Profiles": compare/gate refuse to mix profiles or golden hashes)


def test_different_profiles_are_refused_unless_allowed():
    """The profile is part of the number: a runtime run against an upstream-eval run is two instruments."""
    base, _ = postcode_runs(20)
    rows = [(p["raw"], p["gold"], {"postcode": p["gold"]["postcode"]}) for p in base.predictions]
    other = make_run(rows, ["postcode"], "upstream-eval", "cand")
    with pytest.raises(MwevalError, match="profiles differ: runtime vs upstream-eval"):
        pair_runs(base, other)
    with pytest.raises(MwevalError, match="profiles differ"):
        compare(base, other, resamples=1000)
    pr = pair_runs(base, other, allow_mismatch=True)
    assert pr.mismatches == ["profiles differ: runtime vs upstream-eval"] and pr.n == 20


def test_different_golden_sets_are_refused_unless_allowed():
    base, _ = postcode_runs(20)
    _, cand = postcode_runs(20, golden_sha="h" * 64)
    with pytest.raises(MwevalError, match="golden sets differ"):
        pair_runs(base, cand)
    assert pair_runs(base, cand, allow_mismatch=True).mismatches[0].startswith("golden sets differ")


def test_the_same_runs_pair_entry_by_entry_with_no_mismatch_note():
    base, cand = postcode_runs(20, lost={3})
    pr = pair_runs(base, cand)
    assert pr.mismatches == [] and pr.bi.tolist() == pr.ci.tolist() == list(range(20))
    assert compare(base, cand, resamples=1000)["mismatch"] is None


def test_fewer_than_1000_resamples_are_refused():
    """README: --resamples N, 1000 to 1,000,000: fewer cannot place a 95% interval's ends."""
    base, cand = postcode_runs(20, lost={3})
    with pytest.raises(MwevalError, match="at least 1000"):
        compare(base, cand, resamples=999)
    assert compare(base, cand, resamples=1000)["method"]["resamples"] == 1000


def test_entries_of_another_run_are_paired_by_id_only_when_allowed():
    """Same golden hash, different entries (a run of a subset): refused, then the common ids only."""
    base, _ = postcode_runs(30)
    _, cand = postcode_runs(30)
    cand.predictions[:] = cand.predictions[10:]  # the candidate scored rows 11..30 only
    with pytest.raises(MwevalError, match="runs have different entries"):
        pair_runs(base, cand)
    pr = pair_runs(base, cand, allow_mismatch=True)
    assert pr.n == 20 and pr.bi.tolist() == list(range(10, 30)) and pr.ci.tolist() == list(range(20))
    assert pr.mismatches == ["entries differ; comparing the 20 entries with the same id"]


def test_repeated_rows_pair_the_kth_copy_with_the_kth_across_golden_versions():
    """design comment in pair_runs: rows are paired by what they are, the k-th copy of a repeated
    row with the k-th. Three copies of one address, a row inserted before them in the new version."""
    rows = [("Town 10000", {"postcode": "10000"}, {"postcode": "10000"})] * 3 + [("Town 20000", {"postcode": "20000"}, {})]
    base = make_run(rows, ["postcode"], "runtime", "base")
    cand = make_run([("Elsewhere 1", {"postcode": "1"}, {}), *rows], ["postcode"], "runtime", "cand", golden_sha="h" * 64)
    pr = pair_runs(base, cand, allow_mismatch=True)
    assert list(zip(pr.bi.tolist(), pr.ci.tolist(), strict=True)) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert "0 baseline and 1 candidate entries have no same row (file, raw and gold) in the other run and are left out" in pr.mismatches
    assert "4 rows are paired across line numbers (the same file, raw and gold at another line)" in pr.mismatches


def test_label_sets_that_differ_compare_the_common_tags_and_say_so():
    rows = [("Paris 75008", {"postcode": "75008", "locality": "Paris"}, {"postcode": "75008", "locality": "Paris"})] * 3
    base = make_run(rows, ["postcode", "locality"], "runtime")
    cand = make_run(rows, ["unit", "postcode"], "runtime")
    c = compare(base, cand, resamples=1000, allow_mismatch=True)
    assert c["tags"] == ["postcode"] and list(c["views"]["all"]["per_tag"]) == ["postcode"]
    assert c["label_sets"] == {"same": False, "common": 1, "base_only": ["locality"], "cand_only": ["unit"]}
    assert summary_scope(c) == ("over the 1 tags both runs score (1 more in the baseline's label set, 1 in the candidate's), "
                                "so they differ from each run's own report")
    same = compare(base, base, resamples=1000)
    assert same["label_sets"]["same"] is True and summary_scope(same) is None


# ---------------------------------------------------------------------------------------------
# the statistics of one view


def test_counts_precision_recall_and_f1_are_pooled_per_tag():
    """tp/fp/fn per run, a WRONG value counting as one FP and one FN (metrics.py), and P/R/F1 of the pooled counts."""
    bo = np.array([[TP], [TP], [WRONG], [FN], [NONE]], dtype=np.int8)
    co = np.array([[TP], [FP], [TP], [TP], [FP]], dtype=np.int8)
    conf = (np.ones(5), np.ones(5))
    r = view_statistics(bo, co, conf, conf, ["unit"], resamples=1000, seed=0)["per_tag"]["unit"]
    assert r["support"] == 4 and r["tp"] == [2, 3] and r["fp"] == [1, 2] and r["fn"] == [2, 0]
    assert r["precision"]["base"] == pytest.approx(2 / 3, abs=1e-6) and r["precision"]["cand"] == pytest.approx(3 / 5, abs=1e-6)
    assert r["recall"]["base"] == pytest.approx(1 / 2, abs=1e-6) and r["recall"]["cand"] == pytest.approx(1.0, abs=1e-6)
    assert r["f1"]["base"] == pytest.approx(4 / 7, abs=1e-6) and r["f1"]["cand"] == pytest.approx(6 / 8, abs=1e-6)
    assert r["f1"]["delta_pp"] == pytest.approx((6 / 8 - 4 / 7) * 100, abs=1e-3)
    assert r["precision"]["delta_pp"] == pytest.approx((3 / 5 - 2 / 3) * 100, abs=1e-3)


def test_identical_runs_have_zero_deltas_zero_width_intervals_and_p_one():
    bo = np.array([[TP, FN], [WRONG, NONE], [TP, TP], [FP, TP]], dtype=np.int8)
    conf = (np.array([3.0, 2.0, 1.0, 2.5]), np.array([4.0, 2.0, 2.0, 3.0]))
    v = view_statistics(bo, bo.copy(), conf, conf, ["a", "b"], resamples=1000, seed=3)
    for block in [*(r[m] for r in v["per_tag"].values() for m in ("precision", "recall", "f1")), *v["summary"].values()]:
        assert block["delta_pp"] == 0 and block["ci95_pp"] == [0, 0] and block["p"] == 1.0


def test_macro_f1_is_over_the_tags_with_gold_values_in_the_view():
    """metrics.summarize: "mean over tags with support > 0"; a tag with no gold value (here only
    false positives) would pull the macro F1 down with a 0 that measures nothing."""
    bo = np.array([[TP, NONE, NONE], [TP, NONE, TP], [FN, FP, NONE]], dtype=np.int8)
    co = np.array([[TP, NONE, NONE], [FN, FP, FN], [FN, FP, NONE]], dtype=np.int8)
    ones = (np.ones(3), np.ones(3))
    v = view_statistics(bo, co, ones, ones, ["postcode", "unit", "po_box"], 1000, 0)
    assert v["macro_f1_tags"] == ["postcode", "po_box"]  # po_box: support 1 counts
    assert v["summary"]["macro_f1"]["base"] == pytest.approx((0.8 + 1.0) / 2, abs=1e-6)
    assert v["summary"]["macro_f1"]["cand"] == pytest.approx((0.5 + 0.0) / 2, abs=1e-6)


def test_micro_f1_exact_match_and_confidence_summaries():
    """micro F1 pools every tag's counts; exact match is §10.1's (no FP/FN and a gold value) over
    all entries; mean token confidence is pieces-weighted: Σ conf / Σ pieces."""
    bo = np.array([[TP, NONE], [TP, FP], [NONE, NONE], [FN, TP]], dtype=np.int8)
    co = np.array([[TP, TP], [TP, NONE], [TP, NONE], [FN, TP]], dtype=np.int8)
    bconf = (np.array([0.9, 1.8, 0.5, 2.0]), np.array([1.0, 2.0, 1.0, 4.0]))
    cconf = (np.array([1.0, 2.0, 1.0, 4.0]), np.array([1.0, 2.0, 1.0, 4.0]))
    s = view_statistics(bo, co, bconf, cconf, ["a", "b"], resamples=1000, seed=0)["summary"]
    assert s["micro_f1"]["base"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1), abs=1e-6)  # tp 3, fp 1, fn 1
    assert s["micro_f1"]["cand"] == pytest.approx(2 * 5 / (2 * 5 + 0 + 1), abs=1e-6)  # tp 5, fp 0, fn 1
    assert s["exact_match"]["base"] == 0.25 and s["exact_match"]["cand"] == 0.75
    assert s["exact_match"]["delta_pp"] == 50.0
    assert s["mean_token_confidence"]["base"] == pytest.approx(5.2 / 8, abs=1e-6)
    assert s["mean_token_confidence"]["cand"] == 1.0
    assert s["mean_token_confidence"]["delta_pp"] == pytest.approx((1 - 5.2 / 8) * 100, abs=1e-3)
    lo, hi = s["mean_token_confidence"]["ci95_pp"]
    assert 0 < lo <= s["mean_token_confidence"]["delta_pp"] <= hi


def test_a_clear_drop_has_a_ci_below_zero_and_a_small_p():
    base, cand = postcode_runs(300, lost=set(range(30)))
    f = compare(base, cand, resamples=2000)["views"]["all"]["per_tag"]["postcode"]["f1"]
    assert f["delta_pp"] == pytest.approx((2 * 270 / (2 * 270 + 30) - 1) * 100, abs=1e-3)
    assert f["ci95_pp"][0] < f["delta_pp"] < f["ci95_pp"][1] < 0
    assert f["p"] == pytest.approx(1 / 2001, abs=1e-6)  # no resample is as far from Δ as 0 is
    assert significance(f) == "sneg"


def test_the_views_split_the_entries_by_the_adversarial_mask():
    base, cand = postcode_runs(100, lost={0, 1, 50}, adversarial=set(range(20)))
    c = compare(base, cand, resamples=1000)
    assert {v: c["views"][v]["entries"] for v in VIEWS} == {"all": 100, "excluding_adversarial": 80, "adversarial_only": 20}
    assert {v: c["views"][v]["per_tag"]["postcode"]["fn"] for v in VIEWS} == {
        "all": [0, 3], "excluding_adversarial": [0, 1], "adversarial_only": [0, 2]}


def test_a_view_with_no_entries_has_zero_rows_not_errors():
    """No adversarial row: adversarial only holds nothing, so every number in it is 0 (as run.json's
    summarize says: a confidence of no pieces is 0.0), no interval has width, and no macro F1 is made
    of no tag."""
    base, cand = postcode_runs(30, lost={1})
    v = compare(base, cand, resamples=1000)["views"]["adversarial_only"]
    assert v["entries"] == 0 and v["macro_f1_tags"] == [] and "macro_f1" not in v["summary"]
    assert set(v["summary"]) == {"micro_f1", "exact_match", "mean_token_confidence"}
    for block in v["summary"].values():
        assert (block["base"], block["cand"], block["delta_pp"], block["ci95_pp"]) == (0.0, 0.0, 0.0, [0.0, 0.0])
    assert tag_empty(v, "postcode") and not fp_only(v, "postcode") and not f1_measured(v, "postcode")


@pytest.mark.parametrize("change", ["lost", "found"])
def test_a_one_entry_view_resamples_that_entry_every_time(change):
    """One adversarial entry, lost (or found) by the candidate: every resample draws it, so exact
    match and F1 move by 100 pp in every replicate, and the interval is the point."""
    base, cand = postcode_runs(30, adversarial={0}, **{change: {0}})
    v = compare(base, cand, resamples=1000)["views"]["adversarial_only"]
    d = -100.0 if change == "lost" else 100.0
    assert v["entries"] == 1
    for block in (v["summary"]["exact_match"], v["per_tag"]["postcode"]["recall"], v["summary"]["micro_f1"]):
        assert block["delta_pp"] == pytest.approx(d, abs=1e-4)
        assert block["ci95_pp"] == [pytest.approx(d, abs=1e-4)] * 2


def test_a_tag_is_empty_fp_only_or_measured_in_a_view():
    """tag_empty: no gold value and no prediction in either run; fp_only: no gold value but false
    positives; f1_measured: gold values, so F1 and its interval mean something."""
    view = {"entries": 10, "per_tag": {"none": {"support": 0, "tp": [0, 0], "fp": [0, 0]},
                                       "fps": {"support": 0, "tp": [0, 0], "fp": [0, 1]},
                                       "gold": {"support": 3, "tp": [0, 0], "fp": [0, 0]}}}
    assert [tag_empty(view, t) for t in ("none", "fps", "gold", "absent")] == [True, False, False, True]
    assert [fp_only(view, t) for t in ("none", "fps", "gold", "absent")] == [False, True, False, False]
    assert [f1_measured(view, t) for t in ("none", "fps", "gold")] == [False, False, True]
    assert tag_empty({**view, "entries": 0}, "gold") and not fp_only({**view, "entries": 0}, "fps")


# ---------------------------------------------------------------------------------------------
# significance and the lists of CIs below / above zero


def test_significance_needs_the_whole_interval_strictly_on_one_side():
    assert significance({"ci95_pp": [-4.0, -0.01]}) == "sneg"
    assert significance({"ci95_pp": [-4.0, 0.0]}) == "ns"  # touches zero: not below it
    assert significance({"ci95_pp": [0.0, 3.0]}) == "ns"
    assert significance({"ci95_pp": [0.01, 3.0]}) == "spos"
    assert significance({"ci95_pp": [-1.0, 1.0]}) == "ns"


def test_regressed_tags_are_listed_largest_drop_first_by_their_worst_view():
    c = doc({"all": {"a": f1_row(-2.0, (-3, -1)), "b": f1_row(-5.0, (-8, -2)), "c": f1_row(-1.0, (-2, 0.5)), "d": f1_row(-2.0, (-3, -1))},
             "adversarial_only": {"a": f1_row(-9.0, (-15, -3)), "b": f1_row(1.0, (-1, 3)), "c": f1_row(0.0, (-1, 1)),
                                  "d": f1_row(-2.0, (-3, -1))}}, ["d", "c", "b", "a"])
    assert regressed_tags(c) == ["a", "b", "d"]  # a: −9 in adversarial only; c's CI reaches above zero


def test_regressed_tags_break_ties_in_the_tag_order():
    c = doc({"all": {"x": f1_row(-2.0, (-3, -1)), "y": f1_row(-2.0, (-3, -1))}}, ["y", "x"])
    assert regressed_tags(c) == ["y", "x"]
    small = doc({"all": {"a": f1_row(-0.5, (-0.9, -0.1)), "b": f1_row(-0.8, (-1.2, -0.2))}}, ["a", "b"])
    assert regressed_tags(small) == ["b", "a"]  # drops under 1 pp are ordered by their size too


def test_a_tag_without_gold_in_a_view_is_not_listed_below_zero_there():
    """F1 0 → 0 with support 0 measures nothing: no CI of it is read."""
    c = doc({"all": {"u": f1_row(-3.0, (-5, -1), support=0, fp=(0, 4))}}, ["u"])
    assert regressed_tags(c) == [] and views_where(c, "u", "sneg") == []


def test_views_where_names_the_views_in_the_reports_order():
    rows = {"a": f1_row(3.0, (1, 5))}
    c = doc({"adversarial_only": rows, "all": rows, "excluding_adversarial": {"a": f1_row(-3.0, (-5, -1))}}, ["a"])
    assert views_where(c, "a", "spos") == ["all", "adversarial_only"]
    assert views_where(c, "a", "sneg") == ["excluding_adversarial"]


def test_opposite_note_names_the_other_lists_views_and_nothing_when_there_are_none():
    c = doc({"all": {"a": f1_row(-2.5, (-4, -1)), "b": f1_row(-2.0, (-4, -1))},
             "adversarial_only": {"a": f1_row(5.25, (1, 9)), "b": f1_row(0.0, (-1, 1))}}, ["a", "b"])
    assert opposite_note(c, "a", "sneg") == ("also above zero: adversarial only (+5.2 pp); the views hold different "
                                             "entries, so both can be true")
    assert opposite_note(c, "a", "spos") == ("also below zero: all entries (−2.5 pp); the views hold different entries, "
                                             "so both can be true")
    assert opposite_note(c, "b", "sneg") is None


def test_new_false_positives_on_a_tag_without_gold_are_listed_per_view():
    """F1 is 0 in both runs there; the FP count is what shows the change (README: "FP only")."""
    grown = {"u": f1_row(0.0, (0, 0), support=0, fp=(1, 4)), "v": f1_row(0.0, (0, 0), support=0, fp=(2, 2)),
             "w": f1_row(0.0, (0, 0), support=5, fp=(0, 9))}
    c = doc({"adversarial_only": grown}, ["u", "v", "w"])
    assert new_fps_without_gold(c) == [{"tag": "u", "view": "adversarial_only", "base": 1, "cand": 4}]


# ---------------------------------------------------------------------------------------------
# entries newly broken and fixed


def test_newly_broken_and_fixed_entries_carry_both_runs_values():
    """Right = no FP and no FN for the tag (nothing expected and nothing said counts as right)."""
    rows_b = [("Town 10000", {"postcode": "10000"}, {"postcode": "10000"}),   # right -> wrong value: broken
              ("Town 10001", {"postcode": "10001"}, {"postcode": "999"}),     # wrong -> right: fixed
              ("Town 10002", {}, {}),                                         # nothing -> a false positive: broken
              ("Town 10003", {"postcode": "10003"}, {}),                      # missed in both: no change
              ("Town 10004", {"postcode": "10004"}, {"postcode": "10004"})]   # right in both
    rows_c = [("Town 10000", {"postcode": "10000"}, {"postcode": "1000"}),
              ("Town 10001", {"postcode": "10001"}, {"postcode": "10001"}),
              ("Town 10002", {}, {"postcode": "10002"}),
              ("Town 10003", {"postcode": "10003"}, {"postcode": "3"}),
              ("Town 10004", {"postcode": "10004"}, {"postcode": "10004"})]
    base, cand = make_run(rows_b, ["postcode"], "runtime", "b"), make_run(rows_c, ["postcode"], "runtime", "c")
    ch = compare(base, cand, resamples=1000)["changes"]["postcode"]
    assert (ch["newly_broken"], ch["newly_fixed"]) == (2, 1)
    assert [(x["id"], x["gold"], x["base"], x["cand"]) for x in ch["broken"]] == [
        ("us.jsonl:1", "10000", "10000", "1000"), ("us.jsonl:3", "", "", "10002")]
    assert [(x["id"], x["base_id"], x["raw"], x["base"], x["cand"], x["adversarial"]) for x in ch["fixed"]] == [
        ("us.jsonl:2", "us.jsonl:2", "Town 10001", "999", "10001", False)]


def test_changes_are_counted_per_view_and_add_up():
    base, cand = postcode_runs(60, lost={1, 2, 30, 31, 32}, found={3, 40}, adversarial=set(range(10)))
    ch = compare(base, cand, resamples=1000)["changes"]["postcode"]
    assert ch["by_view"] == {"all": {"newly_broken": 5, "newly_fixed": 2},
                             "excluding_adversarial": {"newly_broken": 3, "newly_fixed": 1},
                             "adversarial_only": {"newly_broken": 2, "newly_fixed": 1}}
    assert [x["adversarial"] for x in ch["broken"]] == [True, True, False, False, False]


def test_the_listing_limit_applies_to_each_partial_view_on_its_own():
    """README: the first 200 of each list in each of the two partial views (here: a limit of 2)."""
    base, cand = postcode_runs(12, lost=set(range(12)), adversarial={0, 5, 6, 11})
    pr = pair_runs(base, cand)
    bo, co = pr.outcomes()
    adv = view_masks(pr.adversarial("default"))["adversarial_only"]
    ch = entry_changes(pr, bo, co, adv, limit=2)["postcode"]
    assert ch["newly_broken"] == 12 and ch["by_view"]["adversarial_only"]["newly_broken"] == 4
    assert [x["id"] for x in ch["broken"]] == ["adversarial.jsonl:1", "us.jsonl:2", "us.jsonl:3", "adversarial.jsonl:6"]
    fixed = entry_changes(pr, co, bo, adv, limit=2)["postcode"]  # the same entries, the runs swapped: all fixed
    assert fixed["newly_fixed"] == 12 and fixed["by_view"]["adversarial_only"]["newly_fixed"] == 4
    assert [x["id"] for x in fixed["fixed"]] == [x["id"] for x in ch["broken"]] and fixed["broken"] == []


# ---------------------------------------------------------------------------------------------
# category shifts and the one-line why


def test_category_shifts_count_each_runs_errors_and_the_moves_between_categories():
    rows_b, rows_c = [], []
    for i in range(6):
        raw, gold = f"Main St {i}", {"street": "Main St"}
        rows_b.append((raw, gold, {} if i < 3 else {"street": "Main St"}))
        rows_c.append((raw, gold, {"street": "Main"} if i < 2 else ({} if i < 5 else {"street": "Main St"})))
    base, cand = make_run(rows_b, ["street"], "runtime", "b"), make_run(rows_c, ["street"], "runtime", "c")
    c = compare(base, cand, resamples=1000)
    fn = c["category_shifts"]["street"]["FN"]
    assert (fn["base_total"], fn["cand_total"]) == (3, 5)
    assert fn["categories"] == {"empty_pred": {"base": 3, "cand": 3, "delta": 0}, "bio_slip": {"base": 0, "cand": 2, "delta": 2}}
    assert fn["moves"] == [{"from": "(none)", "to": "empty_pred", "count": 2}, {"from": "empty_pred", "to": "bio_slip", "count": 2}]
    fp = c["category_shifts"]["street"]["FP"]
    assert (fp["base_total"], fp["cand_total"]) == (0, 2) and fp["moves"] == [{"from": "(none)", "to": "bio_slip", "count": 2}]
    assert what_changed(c, "street") == "all entries: 2 newly broken, 0 newly fixed; FN bio_slip 0 → 2; FP bio_slip 0 → 2"
    assert what_changed(c, "street", top=1) == "all entries: 2 newly broken, 0 newly fixed; FN bio_slip 0 → 2"


def test_what_changed_takes_its_numbers_from_the_view_the_tag_regressed_in():
    base, cand = postcode_runs(200, lost=set(range(40)), adversarial=set(range(50)))
    c = compare(base, cand, resamples=1000)
    assert views_where(c, "postcode", "sneg") == ["all", "adversarial_only"]
    c["views"]["all"]["per_tag"]["postcode"]["f1"]["ci95_pp"] = [-30.0, 1.0]  # as if only adversarial_only were below zero
    assert what_changed(c, "postcode") == "adversarial only: 40 newly broken, 0 newly fixed; FN empty_pred 0 → 40"


# ---------------------------------------------------------------------------------------------
# the bundled demo pair: compare's numbers are each run's own, and its lists add up


@pytest.fixture(scope="module")
def demo_compare(tmp_path_factory):
    """compare step-001800 vs step-002200 on demo-v1 through the CLI, which also writes both runs to ./runs/."""
    if not DEMO_READY:
        pytest.skip("demo runs not built")
    where = tmp_path_factory.mktemp("democmp")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(where)
        mp.setenv("MWEVAL_CACHE", str(where / "cache"))
        r = CliRunner().invoke(main, ["compare", "step-001800", "step-002200", "--golden", "demo-v1", "--out", str(where / "c"), "-q"])
        assert r.exit_code == 0, r.output
    c = json.loads((where / "c" / "compare.json").read_text(encoding="utf-8"))
    runs = {side: load_run(where / "runs" / name) for side, name in (
        ("base", "baseline-step-001800__demo-v1__runtime"), ("cand", "regressed-step-002200__demo-v1__runtime"))}
    return c, runs


@needs_demo
def test_demo_compare_numbers_are_each_runs_own(demo_compare):
    """Same golden set, profile and labels: each side's P/R/F1, counts and summary rows in every view
    are the ones its run.json reports (the same formula, prf_from_counts); Δ is cand − base in pp."""
    c, runs = demo_compare
    assert c["label_sets"]["same"] and c["mismatch"] is None
    for side, run in runs.items():
        k = 0 if side == "base" else 1
        for view in VIEWS:
            own, cv = run.meta["metrics"]["views"][view], c["views"][view]
            assert cv["entries"] == own["entries"]
            assert cv["macro_f1_tags"] == own["macro_f1_denominator"]["tags"]
            for t in c["tags"]:
                r, o = cv["per_tag"][t], own["per_tag"][t]
                assert r["support"] == o["support"]
                assert (r["tp"][k], r["fp"][k], r["fn"][k]) == (o["tp"], o["fp"], o["fn"]), (side, view, t)
                for m in ("precision", "recall", "f1"):
                    assert r[m][side] == o[m], (side, view, t, m)
            s = cv["summary"]
            assert s["macro_f1"][side] == own["macro_f1"]
            assert s["micro_f1"][side] == own["micro"]["f1"]
            assert s["exact_match"][side] == own["exact_match"]
            assert s["mean_token_confidence"][side] == own["mean_token_confidence"]
    for view in VIEWS:
        cv = c["views"][view]
        for block in [*(r[m] for r in cv["per_tag"].values() for m in ("precision", "recall", "f1")), *cv["summary"].values()]:
            assert block["delta_pp"] == pytest.approx((block["cand"] - block["base"]) * 100, abs=2e-4)
            lo, hi = block["ci95_pp"]
            assert lo <= block["delta_pp"] <= hi and 0 < block["p"] <= 1


@needs_demo
def test_demo_changes_account_for_the_difference_in_right_entries(demo_compare):
    """Per tag and view, newly fixed − newly broken = (entries right in the candidate) − (right in the
    baseline), right meaning no FP and no FN for the tag; the partial views add up to all entries."""
    c, runs = demo_compare
    adv = runs["cand"].adversarial_mask("default")
    masks = view_masks(adv)
    tags = c["tags"]
    right = {side: np.isin(run.outcomes[:, [run.tags.index(t) for t in tags]], (NONE, TP)) for side, run in runs.items()}
    for k, t in enumerate(tags):
        ch = c["changes"][t]
        assert ch["by_view"]["all"] == {"newly_broken": ch["newly_broken"], "newly_fixed": ch["newly_fixed"]}
        for view in VIEWS:
            m = masks[view]
            b, x = right["base"][m, k], right["cand"][m, k]
            assert ch["by_view"][view] == {"newly_broken": int((b & ~x).sum()), "newly_fixed": int((~b & x).sum())}, (t, view)
        assert len(ch["broken"]) == ch["newly_broken"] and len(ch["fixed"]) == ch["newly_fixed"]  # fewer than 200 each


@needs_demo
def test_demo_category_totals_are_the_false_positives_and_negatives_of_each_view(demo_compare):
    """Every FP and FN the tables count is bucketed once (default scheme: errors as the profile counts them)."""
    c, _ = demo_compare
    assert c["category_shifts"] == c["category_shifts_by_view"]["all"]
    for view in VIEWS:
        for t in c["tags"]:
            r = c["views"][view]["per_tag"][t]
            for kind, counts in (("FP", r["fp"]), ("FN", r["fn"])):
                s = c["category_shifts_by_view"][view][t][kind]
                assert [s["base_total"], s["cand_total"]] == counts, (view, t, kind)
                assert sum(x["base"] for x in s["categories"].values()) == counts[0]
                assert all(x["delta"] == x["cand"] - x["base"] for x in s["categories"].values())
                out_of = {}
                for mv in s["moves"]:
                    assert mv["from"] != mv["to"]
                    out_of[mv["from"]] = out_of.get(mv["from"], 0) + mv["count"]
                    out_of[mv["to"]] = out_of.get(mv["to"], 0) - mv["count"]
                for cat, x in s["categories"].items():
                    assert out_of.get(cat, 0) == -x["delta"], (view, t, kind, cat)


@needs_demo
def test_demo_lists_street_among_the_tags_below_zero(demo_compare):
    """The demo's regression (README): postcode and street lose F1, largest drop first."""
    c, _ = demo_compare
    listed = regressed_tags(c)
    drops = [min(c["views"][v]["per_tag"][t]["f1"]["delta_pp"] for v in views_where(c, t, "sneg")) for t in listed]
    assert "street" in listed and "postcode" in listed and drops == sorted(drops)
