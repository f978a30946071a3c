"""The `mweval compare` HTML regression report: offline, escaped, the right headline, readable in Chromium.

Runs are hand-built (tests/runfactory.py), so nothing here needs a model or the shared data, but
one check on the bundled demo pair (skipped when the demo runs are not built).
Browser tests skip without headless Chromium (fail with MWEVAL_REQUIRE_BROWSER=1), like the
diagnose report's.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from runfactory import make_run, save_run
from test_report_html import assert_offline, browser, dump_dom, dump_dom_with_filter, probe, screenshot  # noqa: F401 (fixture)

from mailwoman_eval.checkpoints.resolve import BUNDLED_RUNS
from mailwoman_eval.cli import main
from mailwoman_eval.compare import compare
from mailwoman_eval.report.compare_page import fmt_ci, fmt_pp, render_compare_html
from mailwoman_eval.run import load_run

SCRIPT = "<script>document.title='PWNED'</script>"
RLO = "\u202e"
N, LOST, N_ADV = 400, 60, 40


def build_pair(tmp_path: Path, base_sha: str = "g" * 64, cand_sha: str = "g" * 64) -> tuple[Path, Path]:
    """400 entries with locality + postcode; base is right on all; the candidate loses the postcode
    of 60 non-adversarial entries (the first one with a hostile raw) and keeps every locality."""
    rows_b, rows_c = [], []
    for i in range(N):
        pc = f"{10000 + i}"
        raw = f"{SCRIPT} Town {pc}" if i == N_ADV else (f"{RLO}Town {pc}" if i == N_ADV + 2 else f"Town {pc}")
        f = "adversarial.jsonl" if i < N_ADV else "us.jsonl"
        gold = {"locality": "Town", "postcode": pc}
        lost = N_ADV <= i < N_ADV + LOST
        rows_b.append((raw, gold, dict(gold), f))
        rows_c.append((raw, gold, {"locality": "Town"} if lost else dict(gold), f))
    base = make_run(rows_b, ["locality", "postcode"], "runtime", "base-ckpt", golden_sha=base_sha)
    cand = make_run(rows_c, ["locality", "postcode"], "runtime", "cand-ckpt", golden_sha=cand_sha)
    return save_run(base, tmp_path / "base"), save_run(cand, tmp_path / "cand")


def run_compare(base: Path, cand: Path, out: Path, *extra: str):
    r = CliRunner().invoke(main, ["compare", str(base), str(cand), "--out", str(out), "--resamples", "1000", *extra])
    return r


@pytest.fixture
def report(tmp_path) -> Path:
    base, cand = build_pair(tmp_path)
    r = run_compare(base, cand, tmp_path / "cmp")
    assert r.exit_code == 0, r.output
    return tmp_path / "cmp" / "compare.html"


class Sections(HTMLParser):
    """Text of elements with an id (nested ones included in their ancestors)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, str | None]] = []
        self.text: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        if tag in ("meta", "br", "img", "input", "link"):
            return
        i = dict(attrs).get("id")
        self.open.append((tag, i))
        if i:
            self.text.setdefault(i, "")

    def handle_endtag(self, tag):
        while self.open:
            t, _ = self.open.pop()
            if t == tag:
                break

    def handle_data(self, data):
        for _, i in self.open:
            if i:
                self.text[i] += data


def sections(html: str) -> dict[str, str]:
    s = Sections()
    s.feed(html)
    s.close()
    return {k: re.sub(r"\s+", " ", v) for k, v in s.text.items()}


def test_compare_html_written_offline_and_headline(report):
    html = report.read_text(encoding="utf-8")
    assert_offline(html)
    assert html.count("<script") == 1  # ours, at the end of the body
    assert "MISMATCH" not in html
    sec = sections(html)
    # postcode regressed for real in "all" and "excluding adversarial"; nothing in adversarial only
    reg, imp = sec["regressions"], sec["improvements"]
    assert "postcode F1" in reg and "locality" not in reg
    assert re.search(r"postcode F1 −\d+\.\d pp \[−\d+\.\d, −\d+\.\d\] all entries", reg), reg
    assert "excluding adversarial" in reg and "adversarial only" not in reg
    assert "postcode" not in imp
    # one row per tag in the per-tag table; four summary rows
    p = probe(html)
    assert p.per_tag_rows == 2
    assert len(re.findall(r"<tr", html.split('id="summary"')[1].split("</table>")[0])) == 2 + 4
    # the two runs' provenance and the method
    assert '<bdi class="rl">base-ckpt</bdi>' in html and '<bdi class="rl">cand-ckpt</bdi>' in html
    assert "1,000 (seed 0)" in sec["method"]


def test_forest_has_a_point_per_tag_and_view(report):
    html = report.read_text(encoding="utf-8")
    # every view has entries (40 adversarial), so 2 tags × 3 views points with CI bars
    svg = html.split('<svg class="forest"')[1].split("</svg>")[0]
    assert svg.count("<circle") == 6
    assert svg.count('class="pt-sneg"') == 2  # postcode: all and excluding adversarial
    assert svg.count('class="zero"') == 3


def test_hostile_raw_in_newly_broken_row_is_escaped_text(report):
    html = report.read_text(encoding="utf-8")
    assert SCRIPT not in html
    rows = [r for r in html.split('<tr class="ex"')[1:] if 'data-change="broken"' in r.split(">", 1)[0]]
    assert len(rows) == 25  # capped
    assert 'data-tag="postcode"' in rows[0]
    assert "&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;" in rows[0]
    # inside <bdi> (direction-isolated), and the RLO itself shown as ◌ (it reversed the rest of its row)
    assert "<bdi" in rows[0] and RLO not in html
    rlo_rows = [r for r in html.split('<tr class="ex"')[1:] if "\u25ccTown" in r]
    assert rlo_rows and all("hidden \u25cc</span>" in r for r in rlo_rows)
    assert re.search(r"newly broken</span> <b data-view=\"\">60</b>", html)
    assert "35 more not shown" in html
    # newly fixed: none
    assert 'data-change="fixed"' not in html


def test_mismatch_banner(tmp_path):
    base, cand = build_pair(tmp_path, base_sha="g" * 64, cand_sha="h" * 64)
    r = run_compare(base, cand, tmp_path / "refused")
    assert r.exit_code == 2 and not (tmp_path / "refused" / "compare.html").exists()
    r = run_compare(base, cand, tmp_path / "cmp", "--allow-mismatch")
    assert r.exit_code == 0, r.output
    html = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    sec = sections(html)
    assert "MISMATCH" in sec["mismatch"] and "golden sets differ" in sec["mismatch"]
    assert 'role="alert" id="mismatch"' in html
    assert re.search(r'<tr class="must"><th scope="row">golden sha256', html)


def test_scores_baseline_renders_without_pieces(tmp_path):
    base, cand = build_pair(tmp_path)
    scores = tmp_path / "base-scores.json"
    r = CliRunner().invoke(main, ["export-scores", "--run", str(base), "--out", str(scores)])
    assert r.exit_code == 0, r.output
    r = run_compare(scores, cand, tmp_path / "cmp")
    assert r.exit_code == 0, r.output
    html = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    assert "(scores)" in html and "postcode F1" in sections(html)["regressions"]


def test_render_is_deterministic_and_formats_signs(tmp_path):
    base, cand = build_pair(tmp_path)
    b, c = load_run(base), load_run(cand)
    res = compare(b, c, resamples=1000, seed=3)
    assert render_compare_html(res, b, c) == render_compare_html(res, b, c)
    assert fmt_pp(-12.34) == "−12.3" and fmt_pp(0.04) == "0.0" and fmt_pp(1.0) == "+1.0"
    assert fmt_ci([0.04, 3.3]) == "[+0.04, +3.3]" and fmt_ci([-2.0, -0.001]) == "[−2.0, −0.001]"  # a non-zero endpoint never prints as 0.0
    assert fmt_ci([-14.1, -10.5]) == "[−14.1, −10.5]"
    from mailwoman_eval.report.compare_page import compare_summary_rows, delta_cell

    assert delta_cell({"delta_pp": -0.014, "ci95_pp": [-0.1, 0.05], "p": 0.5})["text"] == "−0.01"  # it printed "0.0"
    conf = next(r for r in compare_summary_rows(res) if r["label"] == "mean token conf.")
    assert all(g["d"]["cls"] == "ns" for g in conf["groups"] if not g["empty"])  # not green for a surer model


@pytest.mark.browser
def test_compare_report_in_browser(browser, report, tmp_path):  # noqa: F811
    dom = dump_dom(tmp_path, report)
    p = probe(dom)
    assert p.title.strip() and "PWNED" not in p.title
    assert "cand-ckpt vs base-ckpt" in p.title
    assert p.scripts == 1
    assert p.per_tag_rows == 2
    assert SCRIPT in "".join(p.text)  # shown as text
    assert_offline(dom)
    png = screenshot(tmp_path, report, "compare.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000


@pytest.mark.browser
def test_compare_filters_hide_rows(browser, report, tmp_path):  # noqa: F811
    """The shared filter script: the view filter hides rows of the other view."""
    src = report.read_text(encoding="utf-8")
    after = probe(dump_dom_with_filter(tmp_path, src, "adv", "1")).example_rows
    assert len(after) == 25 and all(hidden for _, hidden in after)  # every lost postcode is non-adversarial


def test_markdown_keeps_golden_text_as_text_and_shows_what_f1_cannot(tmp_path):
    """compare.md (printed to the console too) pasted golden-derived text in raw: a tag name from
    the golden set in a warning rendered an <img> on GitHub, a newline split the quote, a backtick
    broke every code span after it, and an ESC sequence reached the terminal. A tag with no data
    read 0.00 → 0.00, and a tag with no gold that gained 30 false positives read Δ +0.00."""
    evil = "<img src=x onerror=alert(1)>|x\n`\x1b]0;pwned\x07"
    rows_b, rows_c = [], []
    for i in range(100):
        gold = {"postcode": f"{10000 + i}"}
        rows_b.append((f"Town {10000 + i}", gold, dict(gold)))
        rows_c.append((f"Town {10000 + i}", gold, {**gold, **({"cedex": "Town"} if i < 30 else {})}))
    base = make_run(rows_b, ["postcode", "cedex", "subregion"], "runtime", "base")
    cand = make_run(rows_c, ["postcode", "cedex", "subregion"], "runtime", "cand")
    for run in (base, cand):
        run.meta["warnings"] = [f"gold tags outside the checkpoint's label set are not scored: {evil} (1)"]
        run.meta["golden"]["name"] = "ev`il|<img src=x onerror=alert(3)>"
    b, c = save_run(base, tmp_path / "b"), save_run(cand, tmp_path / "c")
    r = CliRunner().invoke(main, ["compare", str(b), str(c), "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "cmp" / "compare.md").read_text(encoding="utf-8")
    for text in (md, r.stdout):
        assert "<img" not in text and "\x1b" not in text and "\x07" not in text
        assert "&lt;img src=x onerror=alert(1)&gt;\\|x\\n\\`\\x1b]0;pwned\\x07" in text
        assert "Golden ev\\`il\\|&lt;img src=x onerror=alert(3)&gt; · profile `runtime`" in text
    quotes = [line for line in md.splitlines() if line.startswith(">")]
    assert quotes == [quotes[0], ">", quotes[2]] and all("gold tags outside" in q for q in (quotes[0], quotes[2]))
    assert "| subregion | 0 | — | — | — | — | — |" in md
    assert "- **cedex** (all): FP 0 → 30" in md and "- **cedex** (excluding adversarial): FP 0 → 30" in md
    page = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    assert "New false positives on tags with no gold value" in page and "FP 0 → 30 (all entries)" in page


def test_a_fixed_row_that_moved_shows_the_baselines_own_prediction(tmp_path):
    """Across golden versions rows are paired by what they hold, so a pair can sit at two line
    numbers: the wrong side of a newly fixed row was looked up by the candidate's id, which in the
    baseline is another address (its prediction was drawn over this row's raw)."""
    from mailwoman_eval.report.compare_page import compare_blocks

    rows_b = [(f"Town {10000 + i}", {"postcode": f"{10000 + i}"}, {"postcode": f"{10000 + i}"} if i != 10 else {"postcode": "Town"})
              for i in range(40)]
    rows_c = [(raw, gold, dict(gold)) for raw, gold, _ in rows_b]
    del rows_c[3]  # one row removed before it: the fixed row is us.jsonl:11 in the baseline, us.jsonl:10 in the candidate
    base = make_run(rows_b, ["postcode"], "runtime", "base")
    cand = make_run(rows_c, ["postcode"], "runtime", "cand", golden_sha="h" * 64)
    b, c = load_run(save_run(base, tmp_path / "b")), load_run(save_run(cand, tmp_path / "c"))
    res = compare(b, c, resamples=1000, allow_mismatch=True)
    (item,) = res["changes"]["postcode"]["fixed"]
    assert (item["id"], item["base_id"], item["base"], item["cand"]) == ("us.jsonl:10", "us.jsonl:11", "Town", "10010")
    block = next(x for x in compare_blocks(res, b, c) if x["tag"] == "postcode")
    (row,) = next(x for x in block["lists"] if x["change"] == "fixed")["rows"]
    assert row["side"] == "base" and row["side_line"]["value"] == "Town"  # the baseline's own span of its own row


def test_broken_and_fixed_counts_follow_the_view_filter(tmp_path):
    """The By-tag counts were over all entries whatever view the filter showed (55 broken on the
    demo's adversarial-only view, which holds 3)."""
    rows_b, rows_c = [], []
    for i in range(100):
        gold = {"postcode": f"{10000 + i}"}
        f = "adversarial.jsonl" if i < 20 else "us.jsonl"
        rows_b.append((f"Town {10000 + i}", gold, dict(gold), f))
        rows_c.append((f"Town {10000 + i}", gold, {} if i < 5 or 50 <= i < 60 else dict(gold), f))
    b = load_run(save_run(make_run(rows_b, ["postcode"], "runtime", "base"), tmp_path / "b"))
    c = load_run(save_run(make_run(rows_c, ["postcode"], "runtime", "cand"), tmp_path / "c"))
    res = compare(b, c, resamples=1000)
    assert {v: x["newly_broken"] for v, x in res["changes"]["postcode"]["by_view"].items()} == {
        "all": 15, "excluding_adversarial": 10, "adversarial_only": 5}
    html = render_compare_html(res, b, c)
    for view, n in (("", 15), ("0", 10), ("1", 5)):
        hidden = " hidden" if view else ""
        assert f'<span class="counts" data-view="{view}"{hidden}>newly broken <b class="broken">{n}</b>' in html
        assert f'<b data-view="{view}"{hidden}>{n}</b>' in html


def shifts_by_view_pair(tmp_path: Path):
    """200 entries, half adversarial: the candidate loses 20 postcodes of the non-adversarial half
    and finds the 20 the base missed in the adversarial half. Over all entries nothing moved (20
    empty_pred FNs in each run): only the views show what changed."""
    rows_b, rows_c = [], []
    for i in range(200):
        gold = {"postcode": f"{10000 + i}"}
        f = "adversarial.jsonl" if i < 100 else "us.jsonl"
        rows_b.append((f"Town {10000 + i}", gold, {} if i < 20 else dict(gold), f))
        rows_c.append((f"Town {10000 + i}", gold, {} if 100 <= i < 120 else dict(gold), f))
    b = load_run(save_run(make_run(rows_b, ["postcode"], "runtime", "base"), tmp_path / "b"))
    c = load_run(save_run(make_run(rows_c, ["postcode"], "runtime", "cand"), tmp_path / "c"))
    return b, c


def shift_divs(html: str) -> dict[str, str]:
    """The postcode block's category-shift element per data-view, as rendered."""
    block = re.split(r'<section class="tagblock" id="[^"]*" data-tag="postcode"[^>]*>', html)[1].split("</section>", 1)[0]
    found = re.findall(r'<div class="shifts" data-view="([01]?)"( hidden(?:="")?)?>(.*?)\n    </div>', block, re.S)
    return {view: body for view, _, body in found} | {"hidden": [v for v, h, _ in found if h]}


def test_category_shifts_follow_the_view_filter(tmp_path):
    """The By-tag category bars, counts, totals and moves were over all entries whatever view the
    filter showed; the page said so. Now one set per view, switched like the broken/fixed counts."""
    from mailwoman_eval.compare import markdown

    b, c = shifts_by_view_pair(tmp_path)
    res = compare(b, c, resamples=1000)
    html = render_compare_html(res, b, c)
    divs = shift_divs(html)
    assert sorted(k for k in divs if k != "hidden") == ["", "0", "1"] and divs["hidden"] == ["0", "1"]
    assert "<b>20 → 20</b>" in divs[""] and "empty_pred 20 → 20" in divs[""]  # all entries: nothing to see
    assert "<b>0 → 20</b>" in divs["0"] and "empty_pred 0 → 20" in divs["0"] and "(none) → empty_pred <b>20</b>" in divs["0"]
    assert "<b>20 → 0</b>" in divs["1"] and "empty_pred 20 → 0" in divs["1"] and "empty_pred → (none) <b>20</b>" in divs["1"]
    assert "the category shifts are over all entries" not in html
    assert "the category shifts and the broken and fixed counts follow the view filter" in sections(html)["changes"]
    # the why of the regression gives the numbers of the view it regressed in, and says which
    why = "excluding adversarial: 20 newly broken, 0 newly fixed; FN empty_pred 0 → 20"
    assert f'<div class="why">{why}</div>' in html
    # then, as postcode rose in adversarial only: that view, named (the two lists do not contradict)
    assert f"- **postcode**: {why}; also above zero: adversarial only (+11.1 pp); the views hold different entries" in markdown(res)


@pytest.mark.browser
def test_category_shifts_switch_with_the_view_in_browser(browser, tmp_path):  # noqa: F811
    """The shared filter script shows the chosen view's category shifts and hides the others."""
    b, c = shifts_by_view_pair(tmp_path)
    src = render_compare_html(compare(b, c, resamples=1000), b, c)
    for view in ("0", "1"):
        divs = shift_divs(dump_dom_with_filter(tmp_path, src, "adv", view))
        assert sorted(divs["hidden"]) == sorted({"", "0", "1"} - {view}), view
    assert "<b>20 → 0</b>" in divs["1"]


def test_a_compare_json_without_per_view_shifts_still_renders(tmp_path):
    """compare.json of an older mweval has category_shifts (all entries) only, and perhaps no
    changes.by_view either: the report shows all entries and says the views have none."""
    from mailwoman_eval.compare import markdown

    b, c = shifts_by_view_pair(tmp_path)
    res = compare(b, c, resamples=1000)
    del res["category_shifts_by_view"]
    html = render_compare_html(res, b, c)
    divs = shift_divs(html)
    assert list(divs) == ["", "hidden"] and divs["hidden"] == [] and "<b>20 → 20</b>" in divs[""]
    assert html.count("category shifts of this view: not in this compare.json") == 2
    assert "the category shifts are over all entries (an older compare.json has no others)" in html
    why = "all entries: 20 newly broken, 20 newly fixed"  # named: not the view the tag regressed in
    assert f'<div class="why">{why}</div>' in html and f"- **postcode**: {why}; also above zero: " in markdown(res)
    for ch in res["changes"].values():
        del ch["by_view"]
    assert f'<div class="why">{why}</div>' in render_compare_html(res, b, c)


@pytest.mark.skipif(not (BUNDLED_RUNS / "regressed" / "step-002200").is_dir(), reason="demo runs not built")
def test_per_view_category_shifts_add_up_on_the_demo_pair(tmp_path):
    """The shipped demo pair (bundled checkpoints on the bundled demo-v1, 89 adversarial rows):
    each view's category counts are the errors of its own entries, bucketed on their own, and the
    two partial views add up to all entries."""
    from mailwoman_eval.buckets import bucket_errors

    runs = []
    for name in ("step-001800", "step-002200"):
        r = CliRunner().invoke(main, ["eval", "--ckpt", name, "--golden", "demo-v1", "--out", str(tmp_path / name), "-q", "--no-cache"])
        assert r.exit_code == 0, r.output
        runs.append(load_run(tmp_path / name))
    b, c = runs
    for mode in ("default", "non-latin"):
        res = compare(b, c, resamples=1000, adversarial=mode)
        sv = res["category_shifts_by_view"]
        assert sv["all"] == res["category_shifts"]
        adv = c.adversarial_mask(mode)
        assert 0 < adv.sum() < len(adv) and b.ids == c.ids
        for view, keep in (("excluding_adversarial", ~adv), ("adversarial_only", adv)):
            for who, run in (("base", b), ("cand", c)):
                errs = bucket_errors([p for p, k in zip(run.predictions, keep, strict=True) if k], run.tags, run.profile)
                for t in res["tags"]:
                    for kind in ("FP", "FN"):
                        own = Counter(e.primary for e in errs if e.tag == t and e.kind == kind)
                        got = {cat: x[who] for cat, x in sv[view][t][kind]["categories"].items() if x[who]}
                        assert got == dict(own), (mode, view, who, t, kind)
        moved = 0
        for t in res["tags"]:
            for kind in ("FP", "FN"):
                a, x, y = (sv[v][t][kind] for v in ("all", "excluding_adversarial", "adversarial_only"))
                for side in ("base_total", "cand_total"):
                    assert a[side] == x[side] + y[side]
                for cat, n in a["categories"].items():
                    for side in ("base", "cand"):
                        assert n[side] == x["categories"].get(cat, {}).get(side, 0) + y["categories"].get(cat, {}).get(side, 0)
                m = Counter({(mv["from"], mv["to"]): mv["count"] for mv in a["moves"]})
                assert m == Counter({(mv["from"], mv["to"]): mv["count"] for mv in x["moves"]}) + Counter(
                    {(mv["from"], mv["to"]): mv["count"] for mv in y["moves"]})
                moved += y["cand_total"] + y["base_total"]
        assert moved > 0  # the adversarial rows have errors of their own: the views differ from all entries


def test_every_view_lists_and_shows_its_newly_broken_entries(tmp_path):
    """compare.json listed the first 200 newly broken entries of all views together: a view whose
    entries came after them (here the adversarial file, sorted last) had none listed, so its
    filter showed a count and no row, and hid the tag's block. Each partial view now lists its
    first 200, and the page tops each view up to 5 of its own rows."""
    rows_b, rows_c = [], []
    for i in range(260):
        f = "zz-adversarial.jsonl" if i >= 250 else "us.jsonl"
        gold = {"postcode": f"{10000 + i}"}
        raw = f"Town {10000 + i}"
        rows_b.append((raw, gold, dict(gold), f))
        rows_c.append((raw, gold, {}, f))
    base, cand = (make_run(rows, ["postcode"], "runtime", name) for rows, name in ((rows_b, "b"), (rows_c, "c")))
    for run in (base, cand):
        for p in run.predictions:
            p["adversarial"] = p["file"] == "zz-adversarial.jsonl"
    res = compare(base, cand, resamples=1000)
    ch = res["changes"]["postcode"]
    assert ch["newly_broken"] == 260 and ch["by_view"]["adversarial_only"]["newly_broken"] == 10
    listed = [it["adversarial"] for it in ch["broken"]]
    assert listed.count(False) == 200 and listed.count(True) == 10
    b_dir, c_dir = save_run(base, tmp_path / "b"), save_run(cand, tmp_path / "c")
    r = run_compare(b_dir, c_dir, tmp_path / "cmp")
    assert r.exit_code == 0, r.output
    html = (tmp_path / "cmp" / "compare.html").read_text()
    shown = re.findall(r'<tr class="ex[^"]*"[^>]*data-adv="(\d)"', html)
    assert shown.count("1") >= 5 and shown.count("0") >= 20


def test_the_view_filter_keeps_a_block_whose_errors_moved_category_in_the_view(browser, tmp_path):  # noqa: F811
    """A tag wrong in both runs, in another way (an empty prediction, then a wrong value), has
    category shifts in the view and no newly broken or fixed entry: the filter hid its block
    because no example row was left. Hidden still: a block with nothing in the chosen view."""
    rows_b, rows_c = [], []
    for i in range(60):
        f = "adversarial.jsonl" if i < 30 else "us.jsonl"
        pc = f"{10000 + i}"
        raw = f"Town {pc} Main"
        gold = {"locality": "Town", "postcode": pc}
        # adversarial rows: postcode missed in base, mis-valued in cand (wrong in both); the others right in both
        rows_b.append((raw, gold, {"locality": "Town"} if i < 30 else dict(gold), f))
        rows_c.append((raw, gold, {"locality": "Town", "postcode": "Main"} if i < 30 else dict(gold), f))
    b, c = (make_run(rows, ["locality", "postcode"], "runtime", n) for rows, n in ((rows_b, "b"), (rows_c, "c")))
    res = compare(b, c, resamples=1000)
    assert res["changes"]["postcode"]["newly_broken"] == res["changes"]["postcode"]["newly_fixed"] == 0
    assert res["category_shifts_by_view"]["adversarial_only"]["postcode"]["FN"]["moves"]
    src = render_compare_html(res, b, c)
    assert 'data-tag="postcode" data-views="1"' in src and 'data-tag="locality" data-views=""' in src
    dom = dump_dom_with_filter(tmp_path, src, "adv", "1")
    blocks = dict(re.findall(r'<section class="tagblock" id="[^"]*" data-tag="(\w+)"[^>]*?( hidden(?:="")?)?>', dom))
    assert blocks["postcode"] == "" and blocks["locality"].strip().startswith("hidden")
