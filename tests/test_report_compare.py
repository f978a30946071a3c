"""The `mweval compare` HTML regression report: offline, escaped, the right headline, readable in Chromium.

Runs are hand-built (tests/runfactory.py), so nothing here needs a model or the shared data.
Browser tests skip without headless Chromium (fail with MWEVAL_REQUIRE_BROWSER=1), like the
diagnose report's.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from runfactory import make_run, save_run
from test_report_html import assert_offline, browser, dump_dom, dump_dom_with_filter, probe, screenshot  # noqa: F401 (fixture)

from mailwoman_eval.cli import main
from mailwoman_eval.compare import compare
from mailwoman_eval.report.render import fmt_ci, fmt_pp, render_compare_html
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
    assert "<bdi" in rows[0] and RLO in html  # kept, inside <bdi> (direction-isolated)
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
    from mailwoman_eval.report.render import compare_summary_rows, delta_cell

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
    from mailwoman_eval.report.render import compare_blocks

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
