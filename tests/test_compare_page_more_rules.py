"""More of the `mweval compare` page's view model (report/compare_page.py), beyond
tests/test_compare_sweep_page_rules.py: the title of each view's F1 in a By-tag block, the raw line
of a wrong run without pieces when its value is not in the raw, the view filter of an older
compare.json, the forest's room around a view with a narrow span, and a golden hash that differs
only past the 12 characters shown.

Inputs are hand-built runs (tests/runfactory.py) saved and loaded as real run directories and
compared with a fixed seed.
"""

from __future__ import annotations

import pytest
from runfactory import make_run, save_run
from test_compare_sweep_page_rules import rich, rich_runs  # noqa: F401 (fixture)
from test_report_compare import shifts_by_view_pair

from mailwoman_eval.compare import compare
from mailwoman_eval.report.compare_page import (
    compare_blocks,
    compare_context,
    compare_headline,
    forest,
    provenance_pair,
    render_compare_html,
)
from mailwoman_eval.run import load_run


def saved(tmp_path, rows, tags, name):
    return load_run(save_run(make_run(rows, tags, "runtime", name), tmp_path / name))


def test_a_blocks_f1_line_titles_each_view_with_its_delta_ci_and_p(rich):  # noqa: F811
    c, b, cand = rich
    pc = compare_blocks(c, b, cand)[0]
    assert [f["d"]["title"] for f in pc["f1s"]] == [
        "Δ F1 −11.1 pp, 95% CI [−14.6, −8.1], p 0.0010",
        "Δ F1 −14.3 pp, 95% CI [−19.0, −10.0], p 0.0010",
        "Δ F1 0.0 pp, 95% CI [0.0, 0.0], p 1.000",
    ]
    html = render_compare_html(c, b, cand)
    assert ('<span class="vf" title="Δ F1 −11.1 pp, 95% CI [−14.6, −8.1], p 0.0010">all 100.0 → 88.9 '
            '<span class="sneg">(−11.1)</span></span>') in html


def test_a_wrong_run_without_pieces_is_not_highlighted_where_its_value_is_not_in_the_raw(tmp_path):
    """The candidate (no pieces, as a scores file or an older run) gets the locality wrong: it
    predicts nothing, a value found only in another case, or a value not in the raw at all. The
    raw line is shown whole with no highlight; only a value found as written is highlighted."""
    tags = ["locality"]
    rows_b = [(f"Main {10000 + i} Town", {"locality": "Town"}, {"locality": "Town"}) for i in range(20)]
    wrong = {0: {}, 1: {"locality": "MAIN"}, 2: {"locality": "Elsewhere"}, 3: {"locality": "Main"}}
    rows_c = [(raw, gold, wrong.get(i, pred)) for i, (raw, gold, pred) in enumerate(rows_b)]
    b, c = saved(tmp_path, rows_b, tags, "b"), saved(tmp_path, rows_c, tags, "c")
    for p in c.predictions:
        p.pop("pieces")
    res = compare(b, c, resamples=1000, seed=0)
    (block,) = compare_blocks(res, b, c)
    broken = block["lists"][0]["rows"]
    assert [(r["id"], r["side"], r["cand"]) for r in broken] == [
        ("us.jsonl:1", "cand", ""), ("us.jsonl:2", "cand", "MAIN"), ("us.jsonl:3", "cand", "Elsewhere"), ("us.jsonl:4", "cand", "Main")]
    assert broken[0]["side_line"] == {"pre": [("Main 10000 Town", "", "")], "hl": None, "post": [], "value": None, "confidence": None}
    for r in broken[1:3]:
        raw = f"Main {10000 + int(r['id'].split(':')[1]) - 1} Town"
        assert r["side_line"] == {"pre": [(raw, "", "")], "hl": None, "post": [], "value": None, "confidence": 0.9}
    assert broken[3]["side_line"]["hl"] == [("Main", "", "")] and broken[3]["side_line"]["value"] == "Main"
    html = render_compare_html(res, b, c)
    assert html.count('<tr class="ex') == 4


def test_an_older_compare_json_without_per_view_shifts_never_hides_a_block_by_view(rich):  # noqa: F811
    """Without per-view category shifts the page cannot tell which views a block has errors in:
    no block gets a data-views list (the view filter keeps it), its shifts are all entries'."""
    c, b, cand = rich
    del c["category_shifts_by_view"]
    assert all("by_view" in ch for ch in c["changes"].values())  # the counts per view are still there
    blocks = compare_blocks(c, b, cand)
    assert [x["views"] for x in blocks] == [None] * 5
    assert [[s["view"] for s in x["shifts"]] for x in blocks] == [[""]] * 5
    html = render_compare_html(c, b, cand)
    assert "data-views=" not in html and '<section class="tagblock" id="tag-postcode" data-tag="postcode">' in html


def postcode_panel(tmp_path, lost: int) -> tuple[dict, dict]:
    """The all-entries forest panel and F1 block of 100 postcodes, `lost` of them lost by the candidate."""
    tags = ["postcode"]
    rows_b = [(f"Town {10000 + i}", {"postcode": f"{10000 + i}"}, {"postcode": f"{10000 + i}"}) for i in range(100)]
    rows_c = [(raw, gold, {} if i < lost else pred) for i, (raw, gold, pred) in enumerate(rows_b)]
    b, c = saved(tmp_path / str(lost), rows_b, tags, "b"), saved(tmp_path / str(lost), rows_c, tags, "c")
    res = compare(b, c, resamples=1000, seed=0)
    return forest(res)["panels"][0], res["views"]["all"]["per_tag"]["postcode"]["f1"]


def test_a_view_spanning_less_than_2_pp_is_widened_on_both_sides_alike(tmp_path):
    """The forest gives a view at least 2 pp of room, added around the middle of what it draws:
    1 of 100 postcodes lost, a CI from about −1.5 up to 0, drawn in the middle of the panel, not
    stretched to its edges."""
    edge = 0.05 / 1.1 * (320 - 12)
    panel, f1 = postcode_panel(tmp_path, 1)
    assert f1["ci95_pp"][1] == 0.0 and 0.5 < -f1["ci95_pp"][0] < 2.0
    (row,) = panel["rows"]
    assert row["hi"] == panel["zero"] and (row["lo"] + row["hi"]) / 2 == pytest.approx(panel["mid"], abs=0.1)
    assert panel["x0"] + 6 + edge + 1 < row["lo"]


def test_golden_hashes_that_differ_past_the_shown_12_characters_still_make_the_comparison_unfair(tmp_path):
    b, c = rich_runs(tmp_path, cand_sha="g" * 63 + "h")
    row = next(r for r in provenance_pair(b, c) if r["key"] == "golden sha256")
    assert (row["base"], row["cand"]) == ("g" * 12, "g" * 12)  # the cells show the same prefix ...
    assert row["differs"] and row["must"]  # ... the full hashes differ: a red row
    # the same hash in both runs: no row is marked but the run directories' checkpoints
    same = provenance_pair(*rich_runs(tmp_path / "same"))
    assert [r["key"] for r in same if r["differs"]] == ["checkpoint"] and not any(r["must"] for r in same)


def test_forest_labels_link_to_their_tag_blocks(rich):  # noqa: F811
    c, b, cand = rich
    assert [x["anchor"] for x in forest(c)["labels"]] == ["tag-locality", "tag-postcode", "tag-region", "tag-unit"]
    svg = render_compare_html(c, b, cand).split('id="forest"')[1].split("</section>")[0]
    assert all(f'href="#tag-{t}"' in svg for t in ("locality", "postcode", "region", "unit")) and "#tagX" not in svg


def test_a_tag_with_as_many_entries_fixed_as_broken_is_changed_and_in_the_tag_filter(tmp_path):
    """20 postcodes broken and 20 fixed: nothing moved over all entries, 40 entries changed."""
    b, c = shifts_by_view_pair(tmp_path)
    res = compare(b, c, resamples=1000, seed=0)
    ctx = compare_context(res, b, c)
    (block,) = ctx["blocks"]
    assert (block["head"][0], block["changed"]) == ({"view": "", "broken": 20, "fixed": 20}, 40)
    assert ctx["filters"] == {"tag": ["postcode"], "shown": 40}


def test_the_headline_puts_first_the_tag_with_the_largest_drop_in_any_view(tmp_path):
    """street loses 20 of the 40 adversarial entries (a large drop there, a small one over all);
    postcode 24 of the 160 others (a larger drop over all, a smaller worst drop). street leads."""
    tags = ["postcode", "street"]
    rows_b, rows_c = [], []
    for i in range(200):
        raw, gold = f"Main {10000 + i} Town", {"street": "Main", "postcode": f"{10000 + i}"}
        c = dict(gold)
        if i < 20:
            c.pop("street")
        if 40 <= i < 64:
            c.pop("postcode")
        f = "adversarial.jsonl" if i < 40 else "us.jsonl"
        rows_b.append((raw, gold, dict(gold), f))
        rows_c.append((raw, gold, c, f))
    res = compare(saved(tmp_path, rows_b, tags, "b"), saved(tmp_path, rows_c, tags, "c"), resamples=1000, seed=0)
    regs = compare_headline(res)["regressions"]
    assert [r["tag"] for r in regs] == ["street", "postcode"]
    assert [[p["view"] for p in r["parts"]] for r in regs] == [["all", "adversarial_only"], ["all", "excluding_adversarial"]]
    worst = [min(p["delta"] for p in r["parts"]) for r in regs]
    least = [max(p["delta"] for p in r["parts"]) for r in regs]
    assert worst[0] < worst[1] and least[0] > least[1]  # by the largest drop, not the smallest
