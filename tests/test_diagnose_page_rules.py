"""The diagnose report's view model (report/diagnose_page.py), rule by rule, on the tiny upstream
checkpoint's real run over golden v0.1.2/test (456 entries, 5 of them adversarial) and on hand-built
runs where a branch needs it: which number lands in which cell of the headline-numbers and per-tag
tables (three views and the excl − all Δ), the error blocks' order, the category sections with their
per-view counts, "N more" and example rows, the top-up of examples for a view the spread misses,
the filters, the golden audit, and what a view without entries shows."""

from __future__ import annotations

import html as htmllib
import re
from types import SimpleNamespace

import pytest
from runfactory import make_run

from mailwoman_eval.diagnose import diagnose
from mailwoman_eval.metrics import VIEWS
from mailwoman_eval.report.diagnose_page import (
    EXAMPLE_CAP,
    diagnose_context,
    render_diagnose_html,
    sample_rows,
)

TINY_TAGS = ["country", "region", "locality", "dependent_locality", "postcode", "subregion", "cedex", "venue", "street",
             "house_number"]  # fmt: skip


def table(page: str, marker: str) -> list[list[str]]:
    """The text of every cell of the table that starts after `marker`, row by row (tags dropped,
    entities decoded, whitespace collapsed)."""
    body = page.split(marker, 1)[1].split("</table>", 1)[0]
    rows = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)
        rows.append([" ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in cells])
    return rows


def section(ctx: dict, tag: str, kind: str, cat: str) -> dict:
    block = next(b for b in ctx["blocks"] if b["tag"] == tag)
    return next(s for s in next(k for k in block["kinds"] if k["kind"] == kind)["sections"] if s["cat"] == cat)


@pytest.fixture(scope="module")
def tiny(tiny_test_run):
    d = diagnose(tiny_test_run)
    return SimpleNamespace(d=d, ctx=diagnose_context(d, "tiny errors.csv"), html=render_diagnose_html(d, "tiny errors.csv"))


# ---------------------------------------------------------------------------------------------
# headline numbers and the per-tag table


def test_numbers_table_shows_each_views_numbers_and_the_excl_minus_all_delta(tiny):
    views = tiny.d.run.meta["metrics"]["views"]
    assert [views[v]["entries"] for v in VIEWS] == [456, 451, 5]
    assert table(tiny.html, 'class="num headline-numbers"') == [
        ["", "all", "excl. adversarial", "adversarial only", "Δ excl − all (pp)"],
        ["macro F1", "78.4 over 8 tags", "78.4 over 8 tags", "77.3 over 6 tags", "+0.01"],
        ["micro F1", "82.4", "82.5", "80.8", "+0.03"],
        ["exact match", "57.9", "58.1", "40.0", "+0.20"],
        ["mean token conf.", "83.4", "83.5", "79.0", "+0.07"],
        ["entries", "456", "451", "5", ""],  # a count, no Δ
    ]
    assert tiny.ctx["numbers"]["macro_rule"] == "mean over tags with support > 0"
    assert "Macro F1 = mean over tags with support &gt; 0 (the denominator" in tiny.html
    exact = tiny.ctx["numbers"]["rows"][2]
    assert exact["delta"] == pytest.approx(views["excluding_adversarial"]["exact_match"] - views["all"]["exact_match"], abs=1e-6)


def test_a_view_without_entries_shows_dashes_and_the_delta_needs_both_compared_views():
    plain = [(f"Town {10000 + i}", {"postcode": f"{10000 + i}"}, {"postcode": f"{10000 + i}"} if i % 4 else {}) for i in range(8)]
    no_adv = table(render_diagnose_html(diagnose(make_run(plain, ["postcode"], "runtime")), "x.csv"), 'class="num headline-numbers"')
    assert no_adv[1:] == [
        ["macro F1", "85.7 over 1 tags", "85.7 over 1 tags", "—", "0.00"],
        ["micro F1", "85.7", "85.7", "—", "0.00"],
        ["exact match", "75.0", "75.0", "—", "0.00"],
        ["mean token conf.", "90.0", "90.0", "—", "0.00"],
        ["entries", "8", "8", "—", ""],
    ]
    adv = [(*r, "adversarial.jsonl") for r in plain]
    all_adv = table(render_diagnose_html(diagnose(make_run(adv, ["postcode"], "runtime")), "x.csv"), 'class="num headline-numbers"')
    assert all_adv[1] == ["macro F1", "85.7 over 1 tags", "—", "85.7 over 1 tags", "—"]
    assert [r[2] for r in all_adv[1:]] == ["—"] * 5 and [r[4] for r in all_adv[1:]] == ["—"] * 4 + [""]


def test_per_tag_table_has_each_views_scores_dashes_where_nothing_is_measured_and_the_f1_delta(tiny):
    rows = table(tiny.html, 'id="per-tag"')
    assert rows[1] == ["P", "R", "F1", "n"] * 3
    body = {r[0]: r[1:] for r in rows[2:]}
    assert list(body) == TINY_TAGS
    # country: measured in all and excl, no gold or prediction among the adversarial entries
    assert body["country"] == ["83.3", "95.2", "88.9", "21", "83.3", "95.2", "88.9", "21", "—", "—", "—", "0", "0.0"]
    assert body["subregion"] == ["—", "—", "—", "0"] * 3 + ["—"]  # never in gold nor predicted: no Δ either
    assert body["venue"] == ["52.2", "32.1", "39.8", "109", "52.3", "32.4", "40.0", "105", "50.0", "25.0", "33.3", "4", "+0.2"]
    assert body["house_number"][-5:] == ["100.0", "100.0", "100.0", "5", "−0.2"]
    per_tag = {r["tag"]: r for r in tiny.ctx["per_tag"]}
    m = tiny.d.metrics
    assert per_tag["venue"]["delta"] == pytest.approx(
        m["excluding_adversarial"]["per_tag"]["venue"]["f1"] - m["all"]["per_tag"]["venue"]["f1"])
    assert per_tag["country"]["groups"][2] == {"empty": True, "support": 0, "fp": 0}
    assert per_tag["subregion"]["delta"] is None and per_tag["country"]["delta"] == 0.0
    assert per_tag["venue"]["anchor"] == "tag-venue" and 'href="#tag-venue">venue</a>' in tiny.html


# ---------------------------------------------------------------------------------------------
# the headline and the error blocks


def test_headline_links_each_tags_dominant_categories_to_their_example_sections(tiny):
    head = {h["tag"]: h for h in tiny.ctx["headline"]}
    assert list(head) == ["locality", "street", "venue", "house_number", "region", "postcode", "country", "dependent_locality"]
    loc = head["locality"]
    assert (loc["fn_href"], loc["fp_href"]) == ("#ex-locality-FN-empty_pred", "#ex-locality-FP-other")
    assert loc["anchor"] == "tag-locality" and '<a class="htag" href="#tag-locality">locality</a>' in tiny.html
    assert (loc["fn_color"], loc["fp_color"]) == ("#d1495b", "#8d99a6")
    assert loc["f1"] == tiny.d.metrics["all"]["per_tag"]["locality"]["f1"] and loc["fp_only"] is False
    assert head["country"]["fp_href"] == "#ex-country-FP-hallucinated" and head["country"]["fp_color"] == "#ed8b3a"
    for h in head.values():  # every link lands on a section of the page
        assert f'id="{h["fn_href"][1:]}"' in tiny.html and f'id="{h["fp_href"][1:]}"' in tiny.html
    rows = table(tiny.html, 'id="headline"')
    assert rows[1] == ["locality", "69.5", "138", "77% empty_pred (106) 5 unreachable", "33", "61% other (20) 5 unreachable"]


def test_a_headline_tag_without_false_negatives_has_no_fn_link():
    rows = [(f"Town {i}", {"locality": "Town"}, {"locality": "Town", "unit": f"{i}"} if i < 3 else {"locality": "Town"})
            for i in range(6)]
    d = diagnose(make_run(rows, ["locality", "unit"], "runtime"))
    ctx = diagnose_context(d, "x.csv")
    (unit,) = ctx["headline"]
    assert unit["tag"] == "unit" and unit["fn_href"] is None and unit["fp_href"] == "#ex-unit-FP-hallucinated"
    assert unit["fn_color"] == "#5c6773" and unit["fp_only"] is True  # no gold unit: FP only, not a red 0.0
    assert ctx["filters"]["tag"] == ["unit"]  # a tag with false positives only is offered in the tag filter
    (loc, fp_only) = ctx["per_tag"]
    assert [g.get("fp_only", False) for g in fp_only["groups"]] == [True, True, False] and fp_only["delta"] is None
    assert loc["delta"] == 0.0
    unit_row = {r[0]: r[1:] for r in table(render_diagnose_html(d, "x.csv"), 'id="per-tag"')[2:]}["unit"]
    assert unit_row == ["0.0", "—", "FP only (3)", "0"] * 2 + ["—", "—", "—", "0", "—"]


def test_the_per_tag_delta_needs_a_score_in_both_compared_views():
    """postcode has gold values on adversarial entries only: scored in "all", nothing to score in
    "excluding adversarial", so there is no excl − all Δ (a dash, not −F1)."""
    rows = [(f"Town {i}", {"locality": "Town"}, {"locality": "Town"}) for i in range(6)]
    rows += [(f"Town {10000 + i}", {"locality": "Town", "postcode": f"{10000 + i}"},
              {"locality": "Town", "postcode": f"{10000 + i}"} if i % 2 else {"locality": "Town"}, "adversarial.jsonl")
             for i in range(4)]  # fmt: skip
    d = diagnose(make_run(rows, ["locality", "postcode"], "runtime"))
    body = {r[0]: r[1:] for r in table(render_diagnose_html(d, "x.csv"), 'id="per-tag"')[2:]}
    assert body["postcode"] == ["100.0", "50.0", "66.7", "4", "—", "—", "—", "0", "100.0", "50.0", "66.7", "4", "—"]
    assert body["locality"][-1] == "0.0"


def test_error_blocks_follow_the_headline_then_the_run_order_with_sections_in_bucket_order(tiny):
    blocks = tiny.ctx["blocks"]
    order = [h["tag"] for h in tiny.ctx["headline"]]
    assert [b["tag"] for b in blocks] == order + ["subregion", "cedex"]
    assert tiny.ctx["filters"]["tag"] == order  # tags without errors are not offered in the filter
    for b in blocks:
        assert b["anchor"] == f"tag-{b['tag']}" and f'id="tag-{b["tag"]}" data-tag="{b["tag"]}"' in tiny.html
        assert b["errors"] == sum(1 for e in tiny.d.errors if e.tag == b["tag"])
        assert [k["kind"] for k in b["kinds"]] == ["FN", "FP"]
        for k in b["kinds"]:
            bucket = tiny.d.buckets["all"][b["tag"]][k["kind"]]
            assert k["total"] == bucket["total"]
            assert [s["cat"] for s in k["sections"]] == list(bucket["primary"])
            assert [s["open"] for s in k["sections"]] == [i == 0 for i in range(len(k["sections"]))]
            for s in k["sections"]:
                assert s["anchor"] == f"ex-{b['tag']}-{k['kind']}-{s['cat']}"
            assert [v["view"] for v in k["views"]] == ["", "0", "1"]
            for v, view in zip(k["views"], VIEWS, strict=True):
                bv = tiny.d.buckets[view][b["tag"]][k["kind"]]
                assert v["total"] == bv["total"] and v["secondary"] == bv["secondary"]
                assert [(g["cat"], g["count"], g["href"]) for g in v["bar"]["segments"]] == [
                    (c, n, f"#ex-{b['tag']}-{k['kind']}-{c}") for c, n in bv["primary"].items()]
                assert v["bar"]["width"] == 560
    country = next(b for b in blocks if b["tag"] == "country")  # no gold country among the adversarial entries
    assert [(t["view"], t["measured"], t["support"]) for t in country["metrics"]] == [("", True, 21), ("0", True, 21), ("1", False, 0)]
    quiet = next(b for b in blocks if b["tag"] == "cedex")
    assert quiet["errors"] == 0 and all(k["total"] == 0 and k["sections"] == [] for k in quiet["kinds"])
    cedex = tiny.html.split('id="tag-cedex"')[1].split("</section>")[0]
    assert '<span class="ok">no errors</span>' in cedex and "F1 — · P — · R — · n 0" in cedex
    assert [n["count"] for n in tiny.ctx["n_errors"]] == [515, 505, 10] == [
        sum(1 for e in tiny.d.errors if tiny.d.view_mask[v][e.entry]) for v in VIEWS]


def test_a_category_section_counts_each_view_and_says_how_many_errors_it_does_not_show(tiny):
    s = section(tiny.ctx, "locality", "FN", "empty_pred")
    assert len(s["rows"]) == EXAMPLE_CAP == 20  # 106 errors, one adversarial: the spread holds it
    assert [(c["view"], c["count"], c["more"]) for c in s["counts"]] == [("", 106, 86), ("0", 105, 86), ("1", 1, 0)]
    assert [c["share"] for c in s["counts"]] == [106 / 138, 105 / 136, 1 / 2]
    assert s["color"] == "#d1495b" and s["open"] is True
    page = tiny.html.split('id="ex-locality-FN-empty_pred"')[1].split("</details>")[0]
    assert '<p class="more" data-view="">86 more — see <a href="tiny%20errors.csv">full CSV</a></p>' in page
    assert '<p class="more" data-view="0" hidden>86 more' in page and 'class="more" data-view="1"' not in page
    assert '<span class="vis hint">20 shown</span>' in page
    assert "<b>106</b> <span class=\"share\">77% of locality FN</span>" in page
    # a view with no error of the tag and kind: its share is 0, not a division by zero
    hn = section(tiny.ctx, "house_number", "FN", "empty_pred")
    assert [(c["count"], c["share"], c["more"]) for c in hn["counts"]] == [(9, 9 / 16, 0), (9, 9 / 16, 0), (0, 0, 0)]
    assert "<b>0</b> <span class=\"share\">0% of house_number FN</span>" in tiny.html
    # the rows are the section's own errors, in the order of the run
    errs = [e for e in tiny.d.errors if (e.tag, e.kind, e.primary) == ("locality", "FN", "empty_pred")]
    ids = [r["id"] for r in s["rows"]]
    assert ids == [tiny.d.run.predictions[e.entry]["id"] for e in errs if tiny.d.run.predictions[e.entry]["id"] in ids]
    assert sum(r["adv"] for r in s["rows"]) == 1


def test_example_rows_carry_the_entrys_file_country_view_notes_and_values(tiny):
    s = section(tiny.ctx, "venue", "FP", "bio_slip")
    (adv,) = [r for r in s["rows"] if r["adv"]]
    pred = next(p for p in tiny.d.run.predictions if p["id"] == "adversarial.jsonl:4")
    assert {k: adv[k] for k in ("id", "tag", "file", "country", "ckey", "kind", "primary", "cats", "other_tag", "gold", "pred",
                                "truncated", "hidden")} == {
        "id": "adversarial.jsonl:4", "tag": "venue", "file": "adversarial.jsonl", "country": "US", "ckey": "US", "kind": "FP",
        "primary": "bio_slip", "cats": ["bio_slip"], "other_tag": None, "gold": "Paris, Texas Steakhouse",
        "pred": "Texas Steakhouse", "truncated": False, "hidden": False}  # fmt: skip
    assert adv["notes"] == pred["notes"] and adv["notes"].startswith("kryptonite/place-shaped-venue: venue 'Paris, Texas")
    assert adv["gold_line"]["hl"] == "Paris, Texas Steakhouse" and adv["pred_line"]["value"] == "Texas Steakhouse"
    page = tiny.html.split('id="ex-venue-FP-bio_slip"')[1].split("</details>")[0]
    tr = page.split('data-kind="FP" data-cats="bio_slip" data-file="adversarial.jsonl"')[1].split("</tr>")[0]
    assert tr.startswith(' data-country="US" data-adv="1">')
    assert '<span class="cc">US</span><span class="adv">adv</span>' in tr
    assert "venue &#39;Paris, Texas Steakhouse&#39; contains a place-shaped substring" in tr  # notes, escaped
    fr = next(r for r in section(tiny.ctx, "locality", "FN", "empty_pred")["rows"] if r["file"] == "fr.jsonl")
    assert (fr["country"], fr["ckey"], fr["adv"], fr["notes"]) == ("FR", "FR", False, "")
    assert f'data-file="fr.jsonl" data-country="FR" data-adv="0">\n<td class="meta"><bdi class="id">{fr["id"]}</bdi>' in tiny.html


def test_an_entry_without_country_file_or_notes_is_filed_under_none():
    rows = [("Town 10001", {"postcode": "10001"}, {}), ("Town 10002", {"postcode": "10002"}, {})]
    run = make_run(rows, ["postcode"], "runtime")
    run.predictions[0].update(country=None, file=None, notes=None)  # a golden row without country (golden.py keeps None)
    ctx = diagnose_context(diagnose(run), "x.csv")
    first, second = section(ctx, "postcode", "FN", "empty_pred")["rows"]
    assert (first["country"], first["ckey"], first["file"], first["notes"]) == ("", "(none)", "", "")
    assert (second["country"], second["ckey"], second["file"]) == ("US", "US", "us.jsonl")
    assert ctx["filters"]["country"] == ["(none)", "US"] and ctx["filters"]["file"] == ["", "us.jsonl"]


def test_filters_list_what_the_example_rows_hold_in_scheme_order_and_count_them(tiny):
    f = tiny.ctx["filters"]
    assert f["cats"] == ["empty_pred", "hallucinated", "bio_slip", "num_confused", "other", "non_latin", "gold_unreachable"]
    assert f["file"] == ["adversarial.jsonl", "fr.jsonl", "us.jsonl"] and f["country"] == ["FR", "US"]
    rows = [r for b in tiny.ctx["blocks"] for k in b["kinds"] for s in k["sections"] for r in s["rows"]]
    assert f["shown"] == len(rows) == 329 == tiny.html.count('<tr class="ex"')
    assert '<span id="fcount" class="hint">329 example rows</span>' in tiny.html
    assert '<select name="country"><option value="">all</option><option>FR</option><option>US</option></select>' in tiny.html


def test_the_category_filter_offers_each_category_once_under_the_upstream_scheme(tiny_test_run):
    """non_latin is primary under --buckets upstream and a flag under mweval's: the filter listed it
    twice (once as each). Primary categories come in the scheme's order, then the flags."""
    d = diagnose(tiny_test_run, scheme="upstream")
    cats = diagnose_context(d, "x.csv")["filters"]["cats"]
    assert cats == [c for c in d.categories if c in cats] and cats[0] == "non_latin" and len(cats) == len(set(cats))


# ---------------------------------------------------------------------------------------------
# how many examples: the cap, and the top-up for a view the spread misses


def test_sample_rows_tops_a_missed_view_up_to_a_quarter_of_the_cap():
    errs = [SimpleNamespace(entry=i) for i in range(200)]
    adv = [i % 20 == 3 for i in range(200)]  # 10 adversarial errors: 3, 23, …, 183; the spread takes 0, 10, 20, …
    masks = {"excluding_adversarial": [not a for a in adv], "adversarial_only": adv}
    rows = [e.entry for e in sample_rows(errs, 20, masks)]
    assert rows == sorted({*range(0, 200, 10), 3, 43, 83, 123, 163})  # 20 spread + 5 (= 20 // 4) of the adversarial ones
    assert [e.entry for e in sample_rows(errs, 3, masks)] == [0, 3, 66, 133]  # 3 // 4 = 0: still at least one
    assert [e.entry for e in sample_rows(errs, 8, masks)] == [0, 3, 25, 50, 75, 100, 103, 125, 150, 175]  # 8 // 4 = 2


def test_a_smaller_cap_shows_fewer_rows_and_says_so(tiny):
    ctx = diagnose_context(tiny.d, "x.csv", cap=3)
    assert (ctx["cap"], ctx["topup"]) == (3, 1)
    s = section(ctx, "locality", "FN", "empty_pred")
    assert [(c["count"], c["more"]) for c in s["counts"]] == [(106, 103), (105, 103), (1, 0)]  # the spread of 3 holds the adversarial one
    assert sum(r["adv"] for r in s["rows"]) == 1
    assert (tiny.ctx["cap"], tiny.ctx["topup"]) == (20, 5)
    assert "examples per category: 20 spread over its errors, topped up to 5 for a view the spread leaves with fewer " \
           "(so up to 25 rows)" in tiny.html


# ---------------------------------------------------------------------------------------------
# the page around the tables: title, adversarial line, rules, audit, CSV link


def test_title_adversarial_line_rules_and_csv_link(tiny, tiny_test_run):
    ctx = tiny.ctx
    assert ctx["title"] == "tiny-v040/step-000300 on v0.1.2/test — mweval diagnose"
    assert "<title>tiny-v040/step-000300 on v0.1.2/test — mweval diagnose</title>" in tiny.html
    assert ctx["subheading"] == "on v0.1.2/test · profile runtime · buckets default" and ctx["focus"] == ""
    assert (ctx["n_tags"], ctx["profile_name"], ctx["scheme"]) == (10, "runtime", "default")
    assert ctx["profile_description"].startswith("V040 shipped decoder: Viterbi with the structural BIO mask")
    assert '<p class="pdesc"><b>profile runtime</b>: V040 shipped decoder: Viterbi' in tiny.html
    assert ctx["adversarial"]["count"] == 5 and ctx["adversarial"]["entries"] == 456 and ctx["adversarial"]["mode"] == "default"
    assert "adversarial.jsonl, and rows whose notes start with “kryptonite/” or “graceful/”: 5 of 456 entries" in tiny.html
    assert (ctx["csv_name"], ctx["csv_href"]) == ("tiny errors.csv", "tiny%20errors.csv")
    assert '<a href="tiny%20errors.csv">tiny errors.csv</a>' in tiny.html
    assert [r["cat"] for r in ctx["rules"]] == ["empty_pred", "hallucinated", "case_only", "bio_slip", "num_confused", "other",
                                               "non_latin", "gold_unreachable"]
    assert ctx["run_path"] == str(tiny_test_run.path)
    wide = diagnose(tiny_test_run, adversarial="non-latin")
    wctx = diagnose_context(wide, "x.csv")
    n = int(sum(bool(p["adversarial"] or p["non_latin"]) for p in tiny_test_run.predictions))
    assert n > 5 and wctx["adversarial"]["count"] == n and wctx["adversarial"]["mode"] == "non-latin"
    assert "rows whose raw text has letters of a non-Latin script" in wctx["adversarial"]["definition"]
    up = diagnose_context(diagnose(tiny_test_run, scheme="upstream"), "x.csv")
    assert [r["cat"] for r in up["rules"]] == ["non_latin", "empty_pred", "case_only", "bio_slip", "num_confused", "other"]
    assert up["subheading"] == "on v0.1.2/test · profile runtime · buckets upstream"


def test_filtered_report_names_the_chosen_tags(tiny_test_run):
    ctx = diagnose_context(diagnose(tiny_test_run, tags="street,venue"), "x.csv")
    assert ctx["focus"] == "filtered to 2 of 10 tags: street, venue"
    assert ctx["title"] == "tiny-v040/step-000300 on v0.1.2/test (street, venue) — mweval diagnose"
    assert ctx["subheading"].endswith("buckets default · filtered to 2 of 10 tags: street, venue")
    assert [b["tag"] for b in ctx["blocks"]] == ["street", "venue"] and [r["tag"] for r in ctx["per_tag"]] == ["street", "venue"]


def test_golden_audit_numbers_from_the_run_and_defaults_when_the_run_has_none(tiny):
    a = tiny.ctx["audit"]
    assert (a["outside"], a["not_in_raw"], a["case_only"], a["absent"]) == ({"po_box": 1}, 234, 234, 0)
    assert (a["unreachable"], a["duplicates"], a["profile"], a["manifest"]["status"]) == (5, 0, "runtime", "ok")
    assert len(a["not_in_raw_examples"]) == 200 and a["not_in_raw_examples"][0]["id"] == "fr.jsonl:23"
    assert [x["id"] for x in a["unreachable_examples"]] == ["us.jsonl:205", "us.jsonl:215", "us.jsonl:216", "us.jsonl:242",
                                                           "us.jsonl:263"]
    audit = tiny.html.split('id="audit"')[1].split("</section>")[0]
    assert "values unreachable under <code>runtime</code> — first 5 of 5" in audit
    assert "values not verbatim in raw (case only, or absent) — first 200 of 234" in audit
    run = make_run([("Town 10001", {"postcode": "10001"}, {})], ["postcode"], "runtime")
    run.meta["golden"]["manifest"] = {"status": "missing", "problems": []}
    bare = diagnose_context(diagnose(run), "x.csv")["audit"]
    assert bare == {"outside": {}, "not_in_raw": 0, "case_only": 0, "absent": 0, "not_in_raw_examples": [], "unreachable": 0,
                    "unreachable_examples": [], "duplicates": 0, "manifest": {"status": "missing", "problems": []},
                    "profile": "runtime"}  # fmt: skip
    del run.meta["golden"]["manifest"]
    assert diagnose_context(diagnose(run), "x.csv")["audit"]["manifest"] == {}  # no MANIFEST check recorded anywhere
