"""The view models of the `mweval compare` and `mweval sweep` HTML pages, cell by cell
(report/compare_page.py, report/sweep_page.py): which number lands in which cell, with which sign
and rounding; the order of tags, blocks and list rows; which examples are shown; the MISMATCH
banner; the peak step marked on the sweep page and its tie; missing values.

Compare inputs are hand-built runs (tests/runfactory.py) saved and loaded as real run
directories, compared with a fixed seed; the sweep input is `mweval sweep` over the bundled demo
run `regressed` (skipped when the demo runs are not built).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from runfactory import make_run, save_run

from mailwoman_eval.checkpoints.resolve import BUNDLED_RUNS
from mailwoman_eval.cli import main
from mailwoman_eval.compare import compare
from mailwoman_eval.report.compare_page import (
    compare_blocks,
    compare_context,
    compare_headline,
    compare_summary_rows,
    compare_tag_rows,
    delta_cell,
    fmt_ci,
    fmt_p,
    fmt_pp,
    forest,
    nice_step,
    order_view,
    provenance_pair,
    render_compare_html,
    shift_kind,
)
from mailwoman_eval.run import load_run

TAGS = ["locality", "postcode", "region", "unit", "cedex"]


def rich_runs(tmp_path: Path, cand_conf: float | None = None, base_name: str = "base-ckpt", cand_sha: str = "g" * 64):
    """200 entries, the first 40 adversarial. The candidate loses the postcode of entries 40–79
    (a regression), finds the locality the baseline missed on 80–109 (an improvement), loses the
    region of two entries (a drop within noise) and predicts a unit on the first 5 adversarial
    entries, where no row has one (FP only); no row has a cedex and no run predicts one (empty)."""
    rows_b, rows_c = [], []
    for i in range(200):
        pc = f"{10000 + i}"
        f = "adversarial.jsonl" if i < 40 else "us.jsonl"
        raw = f"Main Town Hill {pc} Unit"
        gold = {"locality": "Town", "postcode": pc, "region": "Hill"}
        b, c = dict(gold), dict(gold)
        if 40 <= i < 80:
            c.pop("postcode")
        if 80 <= i < 110:
            b.pop("locality")
        if i in (150, 151):
            c.pop("region")
        if i < 5:
            c["unit"] = "Unit"
        rows_b.append((raw, gold, b, f))
        rows_c.append((raw, gold, c, f))
    base = make_run(rows_b, TAGS, "runtime", base_name)
    cand = make_run(rows_c, TAGS, "runtime", "cand-ckpt", golden_sha=cand_sha)
    if cand_conf is not None:
        for p in cand.predictions:
            p["conf"] = p["amax_conf"] = [cand_conf]
    return load_run(save_run(base, tmp_path / "base")), load_run(save_run(cand, tmp_path / "cand"))


@pytest.fixture
def rich(tmp_path):
    b, c = rich_runs(tmp_path)
    return compare(b, c, resamples=1000, seed=0), b, c


# ---------------------------------------------------------------------------------------------
# numbers: signs, rounding, p-values


def test_signed_points_round_to_an_unsigned_zero_and_p_takes_a_fourth_decimal_below_001():
    assert fmt_pp(None) == fmt_pp(float("nan")) == "—"
    assert fmt_pp(-0.04) == "0.0" and fmt_pp(0.04) == "0.0"  # no "−0.0" / "+0.0"
    assert fmt_pp(-0.06) == "−0.1" and fmt_pp(2.5, 2) == "+2.50" and fmt_pp(-3.0, 0) == "−3"
    assert fmt_pp(0.004, 2) == "0.00" and fmt_pp(-12.0) == "−12.0"
    # a CI endpoint that is not zero takes up to two more decimals, never more; zero stays 0.0
    assert fmt_ci([0.0, 0.0]) == "[0.0, 0.0]"
    assert fmt_ci([-0.004, 0.03]) == "[−0.004, +0.03]"
    assert fmt_ci([-0.0004, 0.3]) == "[0.000, +0.3]"
    assert fmt_ci([0.004, 1.0], 2) == "[+0.004, +1.00]"
    assert fmt_p(None) == "—" and fmt_p(0.01) == "0.010" and fmt_p(0.0099) == "0.0099" and fmt_p(0.5) == "0.500"
    assert fmt_p(1 / 1001) == "0.0010"
    cell = delta_cell({"delta_pp": -0.04, "ci95_pp": [-0.2, -0.01], "p": 0.004}, 1, "F1", "more")
    assert cell == {"text": "−0.04", "ci": "[−0.2, −0.01]", "cls": "sneg", "p": "0.0040",
                    "title": "Δ F1 −0.04 pp, 95% CI [−0.2, −0.01], p 0.0040\nmore"}
    assert delta_cell({"delta_pp": 0.0, "ci95_pp": [-1.0, 2.0], "p": 1.0}, 2, "macro F1")["title"] == \
        "Δ macro F1 0.00 pp, 95% CI [−1.00, +2.00], p 1.000"


def test_forest_ticks_are_nice_steps():
    assert [nice_step(x) for x in (10, 7, 0.3, 26, 0)] == [2, 2, 0.1, 10, 1.0]
    assert nice_step(40, target=4) == 10 and nice_step(2.2) == 0.5


# ---------------------------------------------------------------------------------------------
# the per-tag and summary tables


def test_per_tag_cells_hold_each_views_f1_delta_and_ci_in_the_tag_order(rich):
    c, _, _ = rich
    rows = compare_tag_rows(c)
    assert [r["tag"] for r in rows] == TAGS and [r["anchor"] for r in rows][:2] == ["tag-locality", "tag-postcode"]
    loc, pc, reg, unit, cedex = rows
    g = loc["groups"][0]
    assert (g["base"], g["cand"], g["support"]) == (0.918919, 1.0, 200)
    assert g["d"] == {"text": "+8.1", "ci": "[+5.5, +11.1]", "cls": "spos", "p": "0.0010",
                      "title": "Δ F1 +8.1 pp, 95% CI [+5.5, +11.1], p 0.0010\n"
                               "Δ precision 0.0 pp [0.0, 0.0] · Δ recall +15.0 pp [+10.5, +20.0]\n"
                               "base tp 170 fp 0 fn 30 → cand tp 200 fp 0 fn 0"}
    g = pc["groups"][1]  # excluding adversarial
    assert (g["base"], g["cand"], g["support"]) == (1.0, 0.857143, 160)
    assert (g["d"]["text"], g["d"]["ci"], g["d"]["cls"]) == ("−14.3", "[−19.0, −10.0]", "sneg")
    assert g["d"]["title"].endswith("base tp 160 fp 0 fn 0 → cand tp 120 fp 0 fn 40")
    assert [x["d"]["cls"] for x in reg["groups"]] == ["ns", "ns", "ns"]  # CI [−1.3, 0.0]: touches zero
    assert reg["groups"][0]["d"]["ci"] == "[−1.3, 0.0]" and pc["groups"][2]["d"]["text"] == "0.0"
    # no gold unit anywhere: FP only where the candidate predicted one, empty where nothing was
    fp = {"empty": False, "fp_only": True, "fp": [0, 5], "support": 0,
          "title": "no gold value in this view: recall is 0/0 and F1 0 in both runs; false positives base 0 → cand 5"}
    assert unit["groups"] == [fp, {"empty": True, "support": 0}, fp]
    assert cedex["groups"] == [{"empty": True, "support": 0}] * 3


def test_summary_rows_in_their_order_with_the_macro_tag_count_and_confidence_never_coloured(tmp_path):
    b, c = rich_runs(tmp_path, cand_conf=0.99)  # a surer candidate: its confidence CI lies above zero
    res = compare(b, c, resamples=1000, seed=0)
    rows = compare_summary_rows(res)
    assert [r["label"] for r in rows] == ["macro F1", "micro F1", "exact match", "mean token conf."]
    macro = rows[0]["groups"]
    assert [g["note"] for g in macro] == ["over 3 tags"] * 3
    assert (macro[0]["base"], macro[0]["cand"], macro[0]["d"]["text"], macro[0]["d"]["ci"]) == (0.972973, 0.961288, "−1.17", "[−2.79, +0.40]")
    em = rows[2]["groups"][0]
    assert (em["base"], em["cand"], em["d"]["text"], em["d"]["cls"], em["note"]) == (0.85, 0.765, "−8.50", "sneg", "")
    conf = rows[3]["groups"][0]
    assert res["views"]["all"]["summary"]["mean_token_confidence"]["ci95_pp"][0] > 0  # the CI excludes zero ...
    assert (conf["base"], conf["cand"], conf["d"]["text"], conf["d"]["cls"]) == (0.9, 0.99, "+9.00", "ns")  # ... not green


def test_a_view_without_entries_is_blank_in_every_table(tmp_path):
    rows = [(f"Town {10000 + i}", {"postcode": f"{10000 + i}"}, {"postcode": f"{10000 + i}"}) for i in range(30)]
    b = load_run(save_run(make_run(rows, ["postcode"], "runtime", "b"), tmp_path / "b"))
    c = load_run(save_run(make_run(rows[:-3] + [(r, g, {}) for r, g, _ in rows[-3:]], ["postcode"], "runtime", "c"), tmp_path / "c"))
    res = compare(b, c, resamples=1000)
    assert res["views"]["adversarial_only"]["entries"] == 0
    for row in compare_summary_rows(res):
        assert row["groups"][2] == {"empty": True} and not row["groups"][0]["empty"], row["label"]
    (pc,) = compare_tag_rows(res)
    assert pc["groups"][2] == {"empty": True, "support": 0} and pc["groups"][0]["d"]["text"] == "−5.3"
    fo = forest(res)
    assert [p["has"] for p in fo["panels"]] == [True, True, False]
    assert fo["panels"][2]["title"] == "adversarial only (0)" and fo["panels"][2]["rows"][0]["text"] == "—"
    assert order_view(res) == "excluding_adversarial"


# ---------------------------------------------------------------------------------------------
# the headline


def test_headline_lists_each_significant_tag_with_its_views_and_the_noise_worst_first(rich):
    c, _, _ = rich
    h = compare_headline(c)
    (reg,) = h["regressions"]
    assert reg["tag"] == "postcode" and reg["anchor"] == "tag-postcode"
    assert reg["text"] == "postcode F1 −11.1 pp [−14.6, −8.1] all entries · −14.3 pp [−19.0, −10.0] excluding adversarial"
    assert reg["parts"][0]["title"] == "base 100.0 → cand 88.9 · n 200 · p 0.0010 (200 entries)"
    assert reg["why"] == "all entries: 40 newly broken, 0 newly fixed; FN empty_pred 0 → 40"
    assert reg["note"] is None
    (imp,) = h["improvements"]
    assert imp["text"] == "locality F1 +8.1 pp [+5.5, +11.1] all entries · +10.3 pp [+6.7, +14.3] excluding adversarial"
    assert "why" not in imp
    assert (h["n_reg"], h["n_imp"], h["tests"]) == (2, 2, 9)  # 3 measured tags × 3 views
    # region's drop is within noise: listed worst first (the view with the larger drop)
    assert [x["text"] for x in h["noise"]] == ["region −0.6 pp (excluding adversarial)", "region −0.5 pp (all entries)"]
    assert h["noise"][0]["title"] == "base 100.0 → cand 99.4 · n 160 · p 0.279 (160 entries) · 95% CI [−1.6, 0.0] excluding adversarial"
    assert [(g["tag"], g["view"], g["base"], g["cand"], g["words"]) for g in h["new_fps"]] == [
        ("unit", "all", 0, 5, "all entries"), ("unit", "adversarial_only", 0, 5, "adversarial only")]


def test_headline_orders_the_largest_drop_and_the_largest_rise_first_ties_by_tag_order(tmp_path):
    """street and postcode lose the same 30 entries (the same Δ): the label list's order decides;
    locality, last in the label list, loses 50 and leads. unit and region gain, region more."""
    tags = ["street", "postcode", "unit", "region", "locality"]
    rows_b, rows_c = [], []
    for i in range(300):
        raw = f"Main {10000 + i} U{i} Hill Town"
        gold = {"street": "Main", "postcode": f"{10000 + i}", "unit": f"U{i}", "region": "Hill", "locality": "Town"}
        b, c = dict(gold), dict(gold)
        if i < 30:
            c.pop("street")
            c.pop("postcode")
        if i < 50:
            c.pop("locality")
        if 100 <= i < 120:
            b.pop("unit")
        if 100 <= i < 140:
            b.pop("region")
        rows_b.append((raw, gold, b))
        rows_c.append((raw, gold, c))
    b = load_run(save_run(make_run(rows_b, tags, "runtime", "b"), tmp_path / "b"))
    c = load_run(save_run(make_run(rows_c, tags, "runtime", "c"), tmp_path / "c"))
    res = compare(b, c, resamples=1000, seed=1)
    h = compare_headline(res)
    assert [r["tag"] for r in h["regressions"]] == ["locality", "street", "postcode"]
    assert [r["tag"] for r in h["improvements"]] == ["region", "unit"]
    # the By-tag blocks follow the headline, then the rest by Δ F1 (none here)
    assert [x["tag"] for x in compare_blocks(res, b, c)] == ["locality", "street", "postcode", "unit", "region"]


# ---------------------------------------------------------------------------------------------
# the forest chart


def test_forest_puts_each_point_on_its_side_of_zero_and_skips_tags_with_nothing_anywhere(rich):
    c, _, _ = rich
    fo = forest(c)
    assert (fo["width"], fo["height"], fo["top"], fo["bottom"]) == (1198, 140, 34, 114)  # 4 rows: cedex has no row
    assert [(x["tag"], x["y"]) for x in fo["labels"]] == [("locality", 44.0), ("postcode", 64.0), ("region", 84.0), ("unit", 104.0)]
    all_, excl, adv = fo["panels"]
    assert [p["title"] for p in fo["panels"]] == ["all (200)", "excl. adversarial (160)", "adversarial only (40)"]
    assert [(p["x0"], p["x1"]) for p in fo["panels"]] == [(150, 470), (510, 830), (870, 1190)]
    for p in fo["panels"]:
        assert p["x0"] < p["zero"] < p["x1"]
        ticks = [t for t in p["ticks"] if t["zero"]]
        assert len(ticks) == 1 and ticks[0]["x"] == p["zero"]
        assert all(p["x0"] <= t["x"] <= p["x1"] for t in p["ticks"])
    assert [t["label"] for t in all_["ticks"]] == ["−10", "0", "+10"]
    assert [t["label"] for t in adv["ticks"]] == ["−1.0", "−0.5", "0.0", "+0.5", "+1.0"]  # at least 2 pp of room
    loc, pc, reg, unit = all_["rows"]
    assert loc["cls"] == "spos" and all_["zero"] < loc["lo"] < loc["d"] < loc["hi"]
    assert pc["cls"] == "sneg" and pc["lo"] < pc["d"] < pc["hi"] < all_["zero"]
    assert reg["cls"] == "ns" and reg["lo"] < reg["d"] < reg["hi"] == all_["zero"]
    assert pc["title"] == "postcode, all entries: Δ F1 −11.1 pp [−14.6, −8.1], p 0.0010; base 100.0 → cand 88.9; n 200"
    assert unit == {"y": 104.0, "empty": True, "tag": "unit", "text": "FP only 0 → 5",
                    "title": "unit, all entries: no gold value, F1 0 in both runs; false positives base 0 → cand 5"}
    assert excl["rows"][3] == {"y": 104.0, "empty": True, "tag": "unit", "text": "—", "title": "unit, excluding adversarial: nothing to score"}
    # the scale of a view is its own: the widest CI end reaches the panel's inner edge less 5%
    assert excl["rows"][1]["lo"] == pytest.approx(excl["x0"] + 6 + 0.05 / 1.1 * (320 - 12), abs=0.1)


# ---------------------------------------------------------------------------------------------
# the By-tag blocks: order, counts, examples


def test_blocks_put_regressions_first_then_the_worst_delta_and_unused_tags_last(rich):
    c, b, cand = rich
    blocks = compare_blocks(c, b, cand)
    assert [x["tag"] for x in blocks] == ["postcode", "region", "unit", "locality", "cedex"]
    pc, reg, unit, loc, cedex = blocks
    assert [x["views"] for x in blocks] == ["0", "0", "1", "0", ""]
    assert pc["head"] == [{"view": "", "broken": 40, "fixed": 0}, {"view": "0", "broken": 40, "fixed": 0},
                          {"view": "1", "broken": 0, "fixed": 0}]
    assert pc["changed"] == 40 and cedex["changed"] == 0
    broken, fixed = pc["lists"]
    assert (broken["change"], broken["count"], broken["listed"], broken["open"], broken["anchor"]) == ("broken", 40, 40, True, "chg-postcode-broken")
    assert broken["counts"] == [{"view": "", "count": 40, "more": 15}, {"view": "0", "count": 40, "more": 15},
                                {"view": "1", "count": 0, "more": 0}]
    assert (fixed["count"], fixed["open"], fixed["rows"]) == (0, False, [])
    # 25 of the 40 lost postcodes, spread over the list: the first and the last are shown
    ids = [r["id"] for r in broken["rows"]]
    assert len(ids) == 25 and ids[0] == "us.jsonl:41" and ids[-1] == "us.jsonl:79" and len(set(ids)) == 25
    row = broken["rows"][0]
    assert (row["tag"], row["change"], row["side"], row["adv"], row["gold"], row["base"], row["cand"]) == (
        "postcode", "broken", "cand", False, "10040", "10040", "")
    assert row["gold_line"] == {"pre": "Main Town Hill ", "hl": "10040", "post": " Unit", "ci": False}
    # a fixed entry shows the baseline, the run that was wrong; a fixed list is closed
    (lb, lf) = loc["lists"]
    assert (lb["count"], lf["count"], lf["open"], len(lf["rows"])) == (0, 30, False, 25)
    assert lf["rows"][0]["side"] == "base" and (lf["rows"][0]["base"], lf["rows"][0]["cand"]) == ("", "Town")
    # the unit FPs are adversarial entries: each shown, counted in adversarial only
    ub = unit["lists"][0]
    assert [r["id"] for r in ub["rows"]] == [f"adversarial.jsonl:{i}" for i in range(1, 6)] and all(r["adv"] for r in ub["rows"])
    assert [n["count"] for n in ub["counts"]] == [5, 0, 5]
    # the per-view F1 line of the block head skips the views with nothing to score
    assert [(f["view"], f.get("fp_only"), f["d"].get("text")) for f in unit["f1s"]] == [("all", [0, 5], None), ("adversarial only", [0, 5], None)]
    assert [(f["view"], f["d"]["text"], f["d"]["cls"]) for f in pc["f1s"]] == [
        ("all", "−11.1", "sneg"), ("excl. adversarial", "−14.3", "sneg"), ("adversarial only", "0.0", "ns")]
    assert cedex["f1s"] == []
    sh = pc["shifts"][1]
    assert sh["view"] == "0" and sh["has_errors"] and not pc["shifts"][2]["has_errors"]
    fn = sh["kinds"][0]
    assert (fn["kind"], fn["base_total"], fn["cand_total"], fn["delta"], fn["moved"], fn["more_moves"]) == ("FN", 0, 40, 40, 40, 0)
    assert fn["moves"] == [{"from": "(none)", "to": "empty_pred", "count": 40}]


def test_a_wrong_side_without_pieces_is_highlighted_where_its_value_sits(tmp_path):
    """A run without pieces (a scores file, an older run): the wrong run's value is found in the raw."""
    rows_b = [(f"Main {10000 + i} Town", {"postcode": f"{10000 + i}"}, {"postcode": f"{10000 + i}"}) for i in range(20)]
    rows_c = [(raw, gold, {"postcode": "Main"} if i < 2 else dict(gold)) for i, (raw, gold, _) in enumerate(rows_b)]
    b, c = (load_run(save_run(make_run(r, ["postcode"], "runtime", n), tmp_path / n)) for r, n in ((rows_b, "b"), (rows_c, "c")))
    for p in c.predictions:
        p.pop("pieces")
    res = compare(b, c, resamples=1000)
    (block,) = compare_blocks(res, b, c)
    row = block["lists"][0]["rows"][0]
    assert row["side"] == "cand" and row["side_line"] == {
        "pre": [("", "", "")], "hl": [("Main", "", "")], "post": [(" 10000 Town", "", "")], "value": "Main", "confidence": 0.9}


def test_moves_beyond_six_are_counted_not_listed():
    """shift_kind reads compare.json's category_shifts: a kind with 8 moves shows 6 and says 2 more."""
    moves = [{"from": "(none)", "to": f"c{k}", "count": 10 - k} for k in range(8)]
    s = {"base_total": 3, "cand_total": 55, "categories": {"c0": {"base": 3, "cand": 10, "delta": 7}}, "moves": moves}
    k = shift_kind(s, "FP")
    assert (k["delta"], k["moved"], k["more_moves"], len(k["moves"])) == (52, sum(range(3, 11)), 2, 6)
    assert k["moves"] == moves[:6]
    (base_bar, cand_bar) = (bar for _, bar in k["bars"])
    # bars on one scale per kind: the smaller total is the shorter bar
    assert sum(s["w"] for s in base_bar["segments"]) < sum(s["w"] for s in cand_bar["segments"])
    empty = shift_kind(None, "FN")
    assert (empty["base_total"], empty["cand_total"], empty["delta"], empty["moves"], empty["more_moves"], empty["moved"]) == (0, 0, 0, [], 0, 0)


def test_order_view_falls_back_to_all_when_every_entry_is_adversarial(tmp_path):
    """Blocks are ordered by the excluding-adversarial Δ; with no such entry, by all entries'."""
    rows_b, rows_c = [], []
    for i in range(100):
        raw, gold = f"Main Town {10000 + i}", {"street": "Main", "locality": "Town", "postcode": f"{10000 + i}"}
        rows_b.append((raw, gold, dict(gold), "adversarial.jsonl"))
        c = dict(gold)
        if i < 2:
            c.pop("street")
        if i < 1:
            c.pop("locality")
        rows_c.append((raw, gold, c, "adversarial.jsonl"))
    tags = ["locality", "postcode", "street"]
    b, c = (load_run(save_run(make_run(r, tags, "runtime", n), tmp_path / n)) for r, n in ((rows_b, "b"), (rows_c, "c")))
    res = compare(b, c, resamples=1000)
    assert order_view(res) == "all" and compare_context(res, b, c)["order_view"] == "all entries"
    assert not compare_headline(res)["regressions"]
    assert [x["tag"] for x in compare_blocks(res, b, c)] == ["street", "locality", "postcode"]


# ---------------------------------------------------------------------------------------------
# the page context: title, provenance, mismatch, warnings, filters; escaping


def test_context_names_both_runs_counts_the_shown_rows_and_filters_changed_tags(rich):
    c, b, cand = rich
    ctx = compare_context(c, b, cand)
    assert ctx["title"] == "cand-ckpt vs base-ckpt on hand — mweval compare"
    assert ctx["subheading"] == "on hand · profile runtime · 1,000 paired bootstrap resamples"
    assert (ctx["base_label"], ctx["cand_label"], ctx["mismatch"], ctx["warnings"], ctx["scope"]) == ("base-ckpt", "cand-ckpt", [], [], None)
    assert ctx["entries"] == [{"view": "all", "words": "all entries", "n": 200},
                              {"view": "excl. adversarial", "words": "excluding adversarial", "n": 160},
                              {"view": "adversarial only", "words": "adversarial only", "n": 40}]
    assert ctx["filters"] == {"tag": ["postcode", "region", "unit", "locality"], "shown": 25 + 2 + 5 + 25}
    assert (ctx["cap"], ctx["topup"], ctx["shifts_by_view"], ctx["order_view"]) == (25, 5, True, "excluding adversarial")
    assert ctx["view_titles"] == ["all", "excl. adversarial", "adversarial only"]


def test_provenance_pair_marks_what_differs_and_what_makes_the_comparison_unfair(tmp_path):
    b, c = rich_runs(tmp_path, cand_sha="h" * 64)
    rows = {r["key"]: r for r in provenance_pair(b, c)}
    assert list(rows)[0] == "run" and rows["run"]["base"] == "base (run)" and rows["run"]["cand"] == "cand (run)"
    assert rows["run"]["base_title"] == str(tmp_path / "base") and not rows["run"]["differs"]
    assert rows["checkpoint"]["differs"] and not rows["checkpoint"]["must"]
    assert (rows["checkpoint"]["base"], rows["checkpoint"]["cand"]) == ("base-ckpt", "cand-ckpt")
    assert rows["golden sha256"]["differs"] and rows["golden sha256"]["must"] and rows["golden sha256"]["mono"]
    assert (rows["golden sha256"]["base"], rows["golden sha256"]["cand"]) == ("g" * 12, "h" * 12)
    assert not rows["profile"]["differs"] and not rows["profile"]["must"]
    assert sum(r["must"] for r in rows.values()) == 1


def test_mismatch_banner_lists_what_differs_and_warnings_name_their_run(tmp_path):
    b, c = rich_runs(tmp_path, base_name="<img src=x onerror=alert(1)>", cand_sha="h" * 64)
    b.meta["warnings"] = ["gold tags outside the checkpoint's label set are not scored: <b>x</b> (1)"]
    res = compare(b, c, resamples=1000, allow_mismatch=True)
    ctx = compare_context(res, b, c)
    assert ctx["mismatch"] == res["mismatch"] and ctx["mismatch"] and any("golden" in m for m in ctx["mismatch"])
    (w,) = ctx["warnings"]
    assert w["text"].startswith("base (<img src=x onerror=alert(1)>): gold tags outside")
    html = render_compare_html(res, b, c)
    assert 'role="alert" id="mismatch"' in html and "⚠ MISMATCH" in html
    banner = html.split('id="mismatch"')[1].split("</section>")[0]
    for m in ctx["mismatch"]:
        assert f"<li>{m}</li>" in banner
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html and "<b>x</b>" not in html
    assert "<title>cand-ckpt vs &lt;img src=x onerror=alert(1)&gt; on hand — mweval compare</title>" in html
    same = render_compare_html(compare(*rich_runs(tmp_path / "same"), resamples=1000), *rich_runs(tmp_path / "same2"))
    assert 'id="mismatch"' not in same


def test_the_page_puts_each_number_in_its_cell(rich):
    c, b, cand = rich
    html = render_compare_html(c, b, cand)
    head = re.sub(r"\s+", " ", html.split('id="headline"')[1].split('id="numbers"')[0])
    assert "1 tag with the 95% CI of Δ F1 below zero</b> (2 tag × view)" in head
    assert "1 tag with it above zero</b> (2 tag × view)" in head and "each of the 9 tag × view intervals" in head
    assert 'Drops within noise (CI includes zero): <a href="#tag-region"' in head
    assert '<a href="#tag-unit">unit</a> FP 0 → 5 (all entries), <a href="#tag-unit">unit</a> FP 0 → 5 (adversarial only).' in head
    blocks = re.findall(r'<section class="tagblock" id="tag-(\w+)" data-tag="\w+" data-views="([01 ]*)">', html)
    assert blocks == [("postcode", "0"), ("region", "0"), ("unit", "1"), ("locality", "0"), ("cedex", "")]
    assert '<span id="fcount" class="hint">57 example rows</span>' in html
    assert html.count('<tr class="ex') == 57
    assert ('<p class="more" data-view="">15 more not shown (40 listed in <a href="compare.json">compare.json</a>)</p>'
            '<p class="more" data-view="0" hidden>15 more not shown</p>') in html


# ---------------------------------------------------------------------------------------------
# the sweep page

SWEEP_READY = (BUNDLED_RUNS / "regressed" / "step-002200").is_dir()
needs_demo = pytest.mark.skipif(not SWEEP_READY, reason="demo runs not built")


@pytest.fixture(scope="module")
def demo_sweep(tmp_path_factory):
    """`mweval sweep` over the bundled demo run `regressed` on demo-v1: sweep.json, sweep.html and
    the run's learning rates (train_log.csv; the §10.4 schedule reproduces it)."""
    from mailwoman_eval.learning_rate import learning_rates
    from mailwoman_eval.sweep import find_steps

    out = tmp_path_factory.mktemp("sweep") / "s"
    run = BUNDLED_RUNS / "regressed"
    r = CliRunner().invoke(main, ["sweep", str(run), "--golden", "demo-v1", "--out", str(out), "-q", "--jobs", "1", "--no-cache"])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    return doc, learning_rates(run, find_steps(run)), (out / "sweep.html").read_text(encoding="utf-8")


@needs_demo
def test_sweep_tag_rows_give_peak_last_and_distance_from_peak_with_the_earliest_tied_peak(demo_sweep):
    from mailwoman_eval.report.sweep_page import page_context

    doc, lr, _ = demo_sweep
    ctx = page_context(doc, lr)
    rows = {r["tag"]: r for r in ctx["tag_rows"]}
    assert [r["tag"] for r in ctx["tag_rows"]] == doc["tags"]
    # country's F1 is 0.871642 at steps 2000 and 2200: the peak is the earlier step
    assert rows["country"]["peak"] == {"step": 2000, "f1": 0.871642} and rows["country"]["from_peak"] == 0.0
    hn = rows["house_number"]
    assert hn["peak"] == {"step": 1400, "f1": 0.938012} and hn["last"] == 0.933333 and hn["support"] == 419
    assert hn["from_peak"] == pytest.approx(0.933333 - 0.938012) and hn["from_peak"] < 0
    assert hn["drift"] == doc["drift"]["per_tag"]["house_number"] == 0.009357
    assert set(ctx["colors"]) == set(doc["tags"])  # every tag has data in this run
    assert ctx["window_steps"] == {1200, 1400, 1600, 2000, 2200}
    assert ctx["lr_text"] == {1200: "8.57e-4", 1400: "6.43e-4", 1600: "4.38e-4", 2000: "1.19e-4", 2200: "3.04e-5"}
    assert ctx["of_peak"] == {1200: "57%", 1400: "43%", 1600: "29%", 2000: "8%", 2200: "2%"}
    assert ctx["guard_loud"] and ctx["title"] == "regressed on demo-v1 — mweval sweep"
    prov = {p["key"]: p["value"] for p in ctx["provenance"]}
    assert prov["checkpoints"] == "5 steps (1200–2200)" and prov["golden"] == "demo-v1 · 649 rows"
    assert prov["golden sha256"] == doc["golden"]["sha256"][:12] and prov["macro F1 view"] == doc["view"].replace("_", " ")
    assert prov["peak LR"] == f"1.50e-3 ({lr.peak_source})" and prov["LR from"] == "train_log.csv"


@needs_demo
def test_sweep_page_marks_the_peak_step_only_and_signs_the_distance_from_it(demo_sweep):
    doc, _, html = demo_sweep
    steps = html.split('<section id="steps"')[1].split("</table>")[0]
    pk = re.findall(r'<th scope="row" class="l win">(\d+)</th>(?:(?!</tr>).)*?<td class="win pk">', steps, re.S)
    assert pk == ["2000"] == [str(doc["peaks"]["macro_f1"]["step"])]
    peaks = re.sub(r"\s+", " ", html.split('<section id="peaks"')[1].split("</table>")[0])
    # macro F1: peak 80.83 at 2000, last 80.73: −0.10 pp, red
    assert '<td class="pk">80.83</td><td>2000</td><td>80.73</td><td class="dneg">−0.10</td><td>2.38</td>' in peaks
    assert re.search(r"house_number</span></th><td class=\"n\">419</td> <td>93.80</td><td>1400</td><td>93.33</td><td class=\"dneg\">−0.47</td><td>0.94</td>", peaks), peaks


@needs_demo
def test_sweep_f1_chart_marks_one_peak_dot_per_line_on_a_shared_scale(demo_sweep):
    from mailwoman_eval.report.sweep_page import (
        CHART_W,
        MACRO_COLOR,
        MARGIN_B,
        MARGIN_L,
        MARGIN_R,
        MARGIN_T,
        f1_chart,
    )

    doc, _, _ = demo_sweep
    c = f1_chart(doc)
    assert c["height"] == 320 and (c["x0"], c["x1"], c["y0"], c["y1"]) == (MARGIN_L, CHART_W - MARGIN_R, 320 - MARGIN_B, MARGIN_T)
    names = [s["name"] for s in c["series"]]
    assert names == doc["tags"] + ["macro F1"]
    macro = c["series"][-1]
    assert (macro["color"], macro["width"], macro["cls"]) == (MACRO_COLOR, 3.2, "macro") and MACRO_COLOR == "#111"  # the peaks table's chip
    for s in c["series"]:
        peak = doc["peaks"]["macro_f1"] if s["name"] == "macro F1" else doc["peaks"]["per_tag"][s["name"]]
        marked = [d for d in s["dots"] if d["peak"]]
        assert len(marked) == 1 and f"step {peak['step']} " in marked[0]["title"], s["name"]
        assert len(s["dots"]) == 5 and len(s["lines"]) == 1
    # 0.0 (subregion at 1200) and 1.0 (cedex at 1200) are in the data: the scale is 0–100%
    y = {d["title"]: d["y"] for s in c["series"] for d in s["dots"]}
    assert y["subregion · step 1200 · F1 0.00"] == c["y0"] and y["cedex · step 1200 · F1 100.00"] == c["y1"]
    assert y["macro F1 · step 2000 · 80.83"] == round(c["y0"] + 0.808265 * (c["y1"] - c["y0"]), 2)
    assert [t["label"] for t in c["xticks"]] == ["1200", "1400", "1600", "2000", "2200"]
    xs = [t["x"] for t in c["xticks"]]
    assert xs == sorted(xs) and c["x0"] < xs[0] and xs[-1] < c["x1"]
    assert [t["label"] for t in c["yticks"]] == ["0", "20", "40", "60", "80", "100"]
    assert c["band"] == {"x": xs[0], "w": round(xs[-1] - xs[0], 2), "title": "drift window: last 5 evaluated steps (1200–2200)"}
    assert len(c["labels"]) == len(c["series"])


@needs_demo
def test_sweep_lr_chart_reds_the_steps_below_the_floor_and_draws_the_logged_curve(demo_sweep):
    from mailwoman_eval.report.sweep_page import lr_chart

    doc, lr, _ = demo_sweep
    c = lr_chart(doc, lr)
    assert c["curve_source"] == "train_log.csv" and c["curve"]
    assert [d["low"] for d in c["dots"]] == [True] * 5  # every step below 60% of 1.5e-3
    assert c["dots"][0]["title"] == "step 1200 · LR 8.57e-4 (57% of peak) · train_log.csv"
    assert c["peak"]["label"] == "peak 1.50e-3" and c["floor"]["label"] == "60% of peak"
    assert c["y1"] < c["peak"]["y"] < c["floor"]["y"] < c["y0"]
    assert c["floor"]["y"] == pytest.approx(c["y0"] + 0.0009 / (0.0015 * 1.08) * (c["y1"] - c["y0"]), abs=0.01)
    ys = [d["y"] for d in c["dots"]]
    assert ys == sorted(ys)  # a decaying LR: each later dot lower (a larger y)
    # a floor above every LR: none is red; the guard off: no floor line
    off = {**doc, "guard": {**doc["guard"], "threshold_lr": 1e-5}}
    assert [d["low"] for d in lr_chart(off, lr)["dots"]] == [False] * 5
    none = {**doc, "guard": {**doc["guard"], "threshold_lr": None}}
    assert lr_chart(none, lr)["floor"] is None and not any(d["low"] for d in lr_chart(none, lr)["dots"])
    # without the log, the schedule draws the curve; with neither and no known LR, there is no chart
    sched = lr_chart(doc, dataclasses.replace(lr, log={}))
    assert sched["curve_source"] == "§10.4 schedule" and sched["curve"].count(",") > 100
    blank = {**doc, "steps": [{**r, "lr": None} for r in doc["steps"]]}
    assert lr_chart(blank, dataclasses.replace(lr, log={}, schedule=None)) is None


@needs_demo
def test_sweep_missing_values_break_the_line_and_a_tag_without_data_gets_no_colour(demo_sweep):
    from mailwoman_eval.report.sweep_page import page_context, render_html

    doc, lr, _ = demo_sweep
    doc = json.loads(json.dumps(doc))
    for r in doc["steps"]:
        r["f1"]["cedex"] = None
        if r["step"] == 1600:
            r["f1"]["venue"] = None
    doc["peaks"]["per_tag"]["cedex"] = None
    doc["drift"]["per_tag"]["cedex"] = None
    ctx = page_context(doc, lr)
    assert "cedex" not in ctx["colors"] and ctx["colors"]["venue"]
    cedex = next(r for r in ctx["tag_rows"] if r["tag"] == "cedex")
    assert (cedex["color"], cedex["peak"], cedex["last"], cedex["from_peak"]) == (None, None, None, None)
    venue = next(s for s in ctx["f1_chart"]["series"] if s["name"] == "venue")
    assert len(venue["lines"]) == 2 and len(venue["dots"]) == 4  # 1200–1400, then 2000–2200
    assert [len(line.split()) for line in venue["lines"]] == [2, 2]
    assert "cedex" not in [s["name"] for s in ctx["f1_chart"]["series"]]
    html = render_html(doc, lr)
    assert '<td class="na" colspan="5">no gold support in this view</td>' in html
    row1600 = html.split('<section id="steps"')[1].split(">1600</th>")[1].split("</tr>")[0]
    assert row1600.count("<td class=\"win\">—</td>") == 2  # venue and cedex


@needs_demo
def test_sweep_page_escapes_the_run_name_and_the_warnings(demo_sweep):
    from mailwoman_eval.report.sweep_page import render_html

    doc, lr, _ = demo_sweep
    evil = "<script>alert(1)</script>"
    doc = {**doc, "run": {"name": evil, "path": "/x/" + evil}, "warnings": [f"step {evil} skipped"]}
    html = render_html(doc, lr)
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == html.count("</script>") and "<title>&lt;script&gt;alert(1)&lt;/script&gt; on demo-v1 — mweval sweep</title>" in html


def test_sweep_tag_colours_are_distinct_while_the_palette_lasts():
    from mailwoman_eval.report.sweep_page import PALETTE, tag_colors

    names = [f"zz{k}" for k in range(len(PALETTE))]
    cols = tag_colors(names)
    assert sorted(cols) == sorted(names) and len(set(cols.values())) == len(PALETTE)
    # a known tag keeps its own entry; the hashed ones take the others
    mixed = tag_colors(names[:15] + ["country"])
    assert mixed["country"] == PALETTE[0] and len(set(mixed.values())) == 16


def test_sweep_end_labels_of_the_two_top_lines_are_pushed_apart_too():
    """Two lines ending at the same height at the top of the plot: the second label goes LABEL_GAP below the first."""
    from mailwoman_eval.report.sweep_page import LABEL_GAP, end_labels

    series = [{"name": n, "color": "#123456", "cls": "tag", "dots": [{"x": 700.0, "y": 50.0}]} for n in ("a", "b")]
    labels = end_labels(series, x1=772.0, top=16.0, bottom=286.0)
    assert [(lab["name"], lab["y0"], lab["y"]) for lab in labels] == [("a", 50.0, 50.0), ("b", 50.0, 50.0 + LABEL_GAP)]
