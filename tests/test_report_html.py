"""The diagnose HTML report: offline, escaped, offsets right for any Unicode, readable in Chromium.

Browser tests need headless Chromium; they skip with a reason when it is absent, and fail
instead when MWEVAL_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EN_US, GOLDEN_ROOT, TINY_STEP, TOKENIZER_V010, need_shared
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwoman_eval.cli import main
from mailwoman_eval.diagnose import diagnose
from mailwoman_eval.report.common import display, find_span, pred_line
from mailwoman_eval.report.diagnose_page import render_diagnose
from mailwoman_eval.run import Run, load_run

MAX_REPORT_BYTES = 5 * 1024 * 1024
EXTERNAL_REF = re.compile(r"""\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?\s*[a-zA-Z][a-zA-Z0-9+.\-]*:""", re.I)


# ---------------------------------------------------------------------------------------------
# helpers


def chromium() -> str:
    """Path of a headless-capable Chromium; skip without one (fail when MWEVAL_REQUIRE_BROWSER=1)."""
    explicit = os.environ.get("MWEVAL_CHROMIUM")
    candidates = [explicit] if explicit else []
    candidates += ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell"]
    for name in candidates:
        path = shutil.which(name) if name else None
        if path:
            return path
    msg = "headless Chromium not found (apt-get install chromium, or set MWEVAL_CHROMIUM)"
    if os.environ.get("MWEVAL_REQUIRE_BROWSER") == "1":
        pytest.fail(msg + " and MWEVAL_REQUIRE_BROWSER=1")
    pytest.skip(msg)


@pytest.fixture
def browser() -> str:
    return chromium()


def run_chromium(tmp_path: Path, html: Path, *mode: str, height: int = 3000) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    profile.mkdir()
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", f"--window-size=1400,{height}", *mode, html.resolve().as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def dump_dom(tmp_path: Path, html: Path) -> str:
    return run_chromium(tmp_path, html, "--dump-dom").stdout


def dump_dom_with_filter(tmp_path: Path, src: str, select: str, value: str) -> str:
    """The DOM after the report's filter script has reacted to choosing `value` in `select`."""
    driver = (
        f"<script>var s=document.querySelector('#filters select[name={select}]');"
        f"s.value='{value}';s.dispatchEvent(new Event('change'));</script></body>"
    )
    driven = tmp_path / "driven.html"
    driven.write_text(src.replace("</body>", driver), encoding="utf-8")
    return dump_dom(tmp_path, driven)


def screenshot(tmp_path: Path, html: Path, name: str = "report.png") -> Path:
    png = tmp_path / name
    run_chromium(tmp_path, html, f"--screenshot={png}")
    return png


class DomProbe(HTMLParser):
    """Collects what the tests check in a (dumped) document."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.title = ""
        self.text: list[str] = []
        self.scripts = 0
        self.attrs_seen: set[str] = set()
        self.per_tag_rows = 0
        self.marks: list[dict] = []  # {cls, value, match, text}
        self.example_rows: list[tuple[str, bool]] = []  # (data-tag, hidden)
        self._open_marks: list[dict] = []

    def _inside(self, tag: str, **want) -> bool:
        return any(t == tag and all(a.get(k) == v for k, v in want.items()) for t, a in self.stack)

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        self.attrs_seen.update(a)
        if tag == "script":
            self.scripts += 1
        if tag == "tr" and self.stack and self.stack[-1][0] == "tbody" and self._inside("table", id="per-tag"):
            self.per_tag_rows += 1
        if tag == "tr" and "ex" in a.get("class", "").split():
            self.example_rows.append((a.get("data-tag", ""), "hidden" in a))
        if tag == "mark" and "hl" in a.get("class", "").split():
            m = {"cls": a.get("class", ""), "value": a.get("data-value"), "match": a.get("data-match"), "text": ""}
            self.marks.append(m)
            self._open_marks.append(m)
        if tag not in self.VOID:
            self.stack.append((tag, a))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        while self.stack:
            t, a = self.stack.pop()
            if t == "mark" and "hl" in a.get("class", "").split():
                self._open_marks.pop()
            if t == tag:
                break

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "title" and len(self.stack) >= 2 and self.stack[-2][0] == "head":
            self.title += data
        if not self._inside("script") and not self._inside("style"):
            self.text.append(data)
        for m in self._open_marks:
            m["text"] += data


def probe(html_text: str) -> DomProbe:
    p = DomProbe()
    p.feed(html_text)
    p.close()
    return p


def assert_offline(html: str) -> None:
    bad = EXTERNAL_REF.findall(html)
    assert not bad, f"external or scripted references: {bad[:5]}"
    assert not re.search(r"url\(\s*['\"]?\s*[a-zA-Z][a-zA-Z0-9+.\-]*:", html), "CSS url() with a scheme"
    assert "@import" not in html


def assert_marks_exact(p: DomProbe) -> int:
    """Every highlighted span's text equals its value (case-insensitively only when marked so)."""
    assert p.marks, "no highlighted spans found"
    for m in p.marks:
        assert m["value"] is not None, m
        if m["match"] == "ci":
            assert m["text"].lower() == m["value"].lower(), m
        else:
            assert m["text"] == m["value"], m
    return len(p.marks)


# ---------------------------------------------------------------------------------------------
# (a) acceptance on the real en-us model


@pytest.mark.slow
@pytest.mark.browser
def test_en_us_report_acceptance(tmp_path, monkeypatch):
    need_shared()
    chromium()
    monkeypatch.setenv("MWEVAL_GOLDEN_PATH", str(GOLDEN_ROOT))
    run_dir, html = tmp_path / "run", tmp_path / "rep" / "en-us.html"
    runner = CliRunner()
    r = runner.invoke(main, ["eval", "--ckpt", str(EN_US), "--golden", "v0.1.2", "--pad-to", "own", "--out", str(run_dir), "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["diagnose", "--run", str(run_dir), "--out", str(html), "-q"])
    assert r.exit_code == 0, r.output
    assert html.is_file() and (html.parent / "en-us.errors.csv").is_file()

    size = html.stat().st_size
    assert size <= MAX_REPORT_BYTES, f"report is {size / 1e6:.2f} MB"
    source = html.read_text(encoding="utf-8")
    assert_offline(source)
    assert 'href="en-us.errors.csv"' in source

    run = load_run(run_dir)
    d = diagnose(run)
    render_diagnose(d, tmp_path / "again.html", "again.errors.csv")  # speed: scripts/bench.py, not a test
    assert (tmp_path / "again.html").read_bytes() == source.encode("utf-8").replace(b"en-us.errors.csv", b"again.errors.csv")

    dom = dump_dom(tmp_path, html)
    p = probe(dom)
    assert len(run.tags) == 16
    assert p.per_tag_rows == 16
    assert p.scripts == 1
    assert "OUT OF DISTRIBUTION" in "".join(p.text)
    assert_marks_exact(p)

    png = screenshot(tmp_path, html)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a blank 1400x3000 page compresses to a few KB


# ---------------------------------------------------------------------------------------------
# (b) hostile text

SCRIPT = "<script>document.title='PWNED'</script>"
IMG = "\"><img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
JS_URL = "javascript:alert(1)"
TEMPLATE = "{{ 7*7 }} Pizza {% raw %}"
RLO = "\u202e"
ZWJ = "👩\u200d💻"
COMBINING = "Cafe\u0301"
CJK = "𠀋"


def hostile_rows() -> list[dict]:
    us = "US"
    return [
        {"raw": f"{SCRIPT} 10 Main St, Springfield, IL 62701", "country": us, "notes": SCRIPT,
         "components": {"venue": SCRIPT, "house_number": "10", "street": "Main St", "locality": "Springfield", "region": "IL", "postcode": "62701"}},
        {"raw": f"{IMG} 22 Oak Ave, Portland, OR 97201", "country": IMG, "notes": IMG,
         "components": {"venue": IMG, "house_number": "22", "street": "Oak Ave", "locality": "Portland", "region": "OR", "postcode": "97201"}},
        {"raw": f"{JS_URL} Cafe, 5 Elm St, Boston, MA 02101", "country": us, "notes": f"see {JS_URL}",
         "components": {"venue": f"{JS_URL} Cafe", "house_number": "5", "street": "Elm St", "locality": "Boston", "region": "MA", "postcode": "02101"}},
        {"raw": f"{TEMPLATE}, 7 Pine Rd, Austin, TX 73301", "country": us, "notes": "{{ 7*7 }} {% raw %}",
         "components": {"venue": TEMPLATE, "house_number": "7", "street": "Pine Rd", "locality": "Austin", "region": "TX", "postcode": "73301"}},
        {"raw": f"{RLO}Cafe Reverse, 9 Birch Ln, Denver, CO 80201", "country": us, "notes": f"RLO {RLO} here",
         "components": {"venue": f"{RLO}Cafe Reverse", "house_number": "9", "street": "Birch Ln", "locality": "Denver", "region": "CO", "postcode": "80201"}},
        {"raw": f"{ZWJ} Hub, 12 Main St, Seattle, WA 98101", "country": us, "notes": f"zwj {ZWJ}",
         "components": {"venue": f"{ZWJ} Hub", "house_number": "12", "street": "Main St", "locality": "Seattle", "region": "WA", "postcode": "98101"}},
        {"raw": f"{COMBINING} Rouge, 3 Rue de la Paix, 75002 Paris, France", "country": "FR", "notes": "combining mark",
         "components": {"venue": f"{COMBINING} Rouge", "house_number": "3", "street": "Rue de la Paix", "postcode": "75002", "locality": "Paris", "country": "France"}},
        {"raw": f"{CJK} Tower, 1 Chome, Tokyo 100-0001", "country": "JP", "notes": f"astral CJK {CJK}",
         "components": {"venue": f"{CJK} Tower", "locality": "Tokyo", "postcode": "100-0001"}},
        {"raw": "🏠 42 Elm St 🚀, Austin, TX 73301", "country": us, "notes": "astral emoji 🏠🚀",
         "components": {"house_number": "42", "street": "Elm St", "locality": "Austin", "region": "TX", "postcode": "73301"}},
        {"raw": "Bell\u0007 Plaza 𠀋👩\u200d💻, 5 MAIN ST, Austin, TX 73301", "country": us, "notes": "control \u0001 char",
         "components": {"venue": "Bell\u0007 Plaza 𠀋👩\u200d💻", "street": "main st", "house_number": "5", "locality": "Austin",
                        "postcode": "73301", "<img src=y onerror=alert(2)>": "Austin"}},
    ]  # fmt: skip


@pytest.fixture
def hostile_report(tmp_path) -> tuple[Path, Path]:
    need_shared()
    gold = tmp_path / "hostile-golden"
    gold.mkdir()
    (gold / "us.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in hostile_rows()), encoding="utf-8")
    run_dir, html = tmp_path / "run", tmp_path / "rep" / "hostile.html"
    runner = CliRunner()
    r = runner.invoke(main, ["eval", "--ckpt", str(TINY_STEP), "--tokenizer", str(TOKENIZER_V010), "--golden", str(gold),
                             "--out", str(run_dir), "-q", "--no-cache"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["diagnose", "--run", str(run_dir), "--out", str(html), "-q"])
    assert r.exit_code == 0, r.output
    return run_dir, html


def test_hostile_text_source(hostile_report):
    _, html = hostile_report
    src = html.read_text(encoding="utf-8")
    assert_offline(src)
    assert src.count("<script") == 1  # ours, at the end of the body
    assert "&lt;script&gt;document.title=" in src
    assert "<img" not in src and "onerror=\"document" not in src
    assert "{{ 7*7 }} Pizza {% raw %}" in src
    assert "<bdi" in src and "unicode-bidi: isolate" in src
    assert "\u0007" not in src and "\u0001" not in src and "\u2407" in src  # BEL shown as ␇ (display only)
    # an RLO reversed what followed it inside its row ("Main St" + RLO + "evil.exe" read "Main St exe.live"):
    # invisible chars are shown as ◌, and the row says so
    assert "\u202e" not in src and "\u25ccCafe Reverse" in src
    assert "hidden \u25cc</span>" in src
    for s in (ZWJ, COMBINING, CJK, "🏠"):
        assert s in src


@pytest.mark.browser
def test_hostile_text_in_browser(browser, hostile_report, tmp_path):
    run_dir, html = hostile_report
    dom = dump_dom(tmp_path, html)
    p = probe(dom)
    assert p.title.strip() and "PWNED" not in p.title
    assert "data-pwned" not in p.attrs_seen
    assert p.scripts == 1
    text = "".join(p.text)
    assert "<script>document.title='PWNED'</script>" in text
    assert "onerror=\"document.body.setAttribute('data-pwned','1')\"" in text
    assert "{{ 7*7 }} Pizza {% raw %}" in text and "49 Pizza" not in text
    assert JS_URL in text
    assert_offline(dom)
    n = assert_marks_exact(p)
    # every value of the run that is highlighted somewhere is highlighted exactly: check the
    # astral / combining / ZWJ ones did get highlighted at all
    values = {m["value"] for m in p.marks}
    assert display(f"{CJK} Tower") in values or any(CJK in v for v in values), values
    assert any(ZWJ in v for v in values), values
    assert any(COMBINING in v for v in values), values
    assert any("\u2407" in v for v in values), values  # BEL shown as its Control Picture, in text and value alike
    assert n >= 20
    screenshot(tmp_path, html, "hostile.png")


@pytest.mark.browser
def test_filters_hide_rows(browser, hostile_report, tmp_path):
    """The inline filter script: choosing a tag hides every example row of the other tags."""
    _, html = hostile_report
    src = html.read_text(encoding="utf-8")
    before = probe(src).example_rows
    after = probe(dump_dom_with_filter(tmp_path, src, "tag", "street")).example_rows
    assert len(after) == len(before) and not any(h for _, h in before)
    assert any(t == "street" for t, _ in after)
    assert all(hidden == (t != "street") for t, hidden in after)


class ViewProbe(HTMLParser):
    """Per tag block: each per-view element's (data-view, hidden, text), and the example rows'
    (kind, primary category, adversarial, hidden)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tag = ""
        self.views: list[dict] = []  # {tag, cls, view, hidden, text}
        self.rows: list[dict] = []
        self._open: list[tuple[str, dict | None]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "section" and "tagblock" in a.get("class", ""):
            self.tag = a["data-tag"]
        item = None
        if "data-view" in a:
            item = {"tag": self.tag, "cls": a.get("class", ""), "view": a["data-view"], "hidden": "hidden" in a, "text": ""}
            self.views.append(item)
        if tag == "tr" and "ex" in a.get("class", "").split():
            self.rows.append({"tag": a.get("data-tag"), "kind": a.get("data-kind"), "cats": a.get("data-cats", "").split(),
                              "adv": a.get("data-adv"), "hidden": "hidden" in a})
        if tag not in DomProbe.VOID:
            self._open.append((tag, item))

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if any(t == "svg" for t, _ in self._open):
            return  # the bars' tooltips
        for _, item in self._open:
            if item is not None:
                item["text"] += " " + data  # text nodes apart: "FN", "68", "empty_pred", "62" …


@pytest.mark.browser
def test_the_view_filter_shows_each_views_own_counts(browser, tmp_path):
    """Choosing a view swaps every category count, bar and per-tag F1 of the error section for
    that view's (diagnose's buckets of the view), and each category the view has errors in keeps
    example rows to show: adversarial rows are a small share of a sample spread over all errors."""
    run_dir, html = tmp_path / "run", tmp_path / "demo.html"
    r = CliRunner().invoke(main, ["eval", "--ckpt", "step-002200", "--golden", "demo-v1", "--out", str(run_dir), "-q", "--no-cache"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["diagnose", "--run", str(run_dir), "--out", str(html), "-q"])
    assert r.exit_code == 0, r.output
    d = diagnose(load_run(run_dir))
    keys = {"": "all", "0": "excluding_adversarial", "1": "adversarial_only"}
    src = html.read_text(encoding="utf-8")
    for want, view in keys.items():
        dom = src if want == "" else dump_dom_with_filter(tmp_path, src, "adv", want)
        p = ViewProbe()
        p.feed(dom)
        assert p.views
        assert all(v["hidden"] == (v["view"] != want) for v in p.views), want
        shown = [v for v in p.views if not v["hidden"]]
        bars = [v for v in shown if "barrow" in v["cls"]]
        assert len(bars) == 2 * sum(1 for t in d.tags if d.buckets["all"][t]["FN"]["total"] or d.buckets["all"][t]["FP"]["total"])
        for b in bars:  # "FN 8 <bar> empty_pred 5 62% …": the kind, the total, then each category's count
            words = b["text"].split()
            kind, total = words[0], int(words[1])
            bucket = d.buckets[view][b["tag"]][kind]
            assert total == bucket["total"], (view, b["tag"], kind)
            for cat, n in bucket["primary"].items():
                assert f"{cat} {n} " in " ".join(words) + " ", (view, b["tag"], kind, cat)
        metrics = {v["tag"]: v["text"] for v in shown if "tm" in v["cls"]}
        for tag, text in metrics.items():
            assert " ".join(text.split()).endswith(f"n {d.metrics[view]['per_tag'][tag]['support']}"), (view, tag, text)
        more = sum(int(v["text"].split()[0]) for v in shown if "more" in v["cls"].split())
        in_view = sum(b["total"] for t in d.tags for b in d.buckets[view][t].values())
        assert more + sum(not x["hidden"] for x in p.rows) == in_view, view  # each error: an example row or "N more"
        assert str(in_view) in [v["text"].strip() for v in shown if v["text"].strip().isdigit()], view  # "N errors" of the view
        if want:
            visible = {(x["tag"], x["kind"], x["cats"][0]) for x in p.rows if not x["hidden"]}
            assert all(x["adv"] == {"0": "0", "1": "1"}[want] for x in p.rows if not x["hidden"])
            for tag in d.tags:
                for kind in ("FN", "FP"):
                    for cat in d.buckets[view][tag][kind]["primary"]:
                        assert (tag, kind, cat) in visible, (view, tag, kind, cat)
    adversarial = d.metrics["adversarial_only"]["per_tag"]
    assert any(t["support"] for t in adversarial.values()) and d.buckets["adversarial_only"] != d.buckets["all"]


def test_examples_are_topped_up_for_views_the_spread_misses():
    """100 errors, two of them on adversarial entries (3 and 57): a spread of 20 over all of them
    (0, 5, …, 95) has neither, so the adversarial view would show counts and no example."""
    from types import SimpleNamespace

    from mailwoman_eval.report.diagnose_page import sample_rows

    errs = [SimpleNamespace(entry=i) for i in range(100)]
    adv = [i in (3, 57) for i in range(100)]
    masks = {"excluding_adversarial": [not a for a in adv], "adversarial_only": adv}
    rows = sample_rows(errs, 20, masks)
    assert [e.entry for e in rows] == sorted({*range(0, 100, 5), 3, 57})
    assert sample_rows(errs[:10], 20, masks) == errs[:10]  # fewer than the cap: all of them, once


# ---------------------------------------------------------------------------------------------
# (c) escaping without a browser, on a hand-made run


def tiny_run(raw: str, gold: dict, pred: dict, tmp_path: Path) -> Run:
    pieces, spans, labels = [], [], []
    for m in re.finditer(r"\S+", raw):
        pieces.append("▁" + m.group())
        spans.append([m.start() - (1 if m.start() else 0), m.end()])
        labels.append("O")
    pred_full = {t: {"value": v, "start": raw.index(v), "end": raw.index(v) + len(v), "confidence": 0.5} for t, v in pred.items()}
    entry = {
        "id": "x.jsonl:1", "file": "x.jsonl", "line": 1, "raw": raw, "country": "US", "source": None, "notes": "",
        "adversarial": False, "non_latin": False, "truncated": False, "n_pieces": len(pieces), "gold": gold,
        "pred": pred_full, "pieces": pieces, "spans": spans, "labels": labels, "gold_labels": labels,
        "conf": [0.5] * len(pieces), "amax_conf": [0.5] * len(pieces),
    }  # fmt: skip
    meta = {
        "schema": "mweval.run/1", "mweval_version": "test", "checkpoint": {"name": "hand-made", "labels": ["O", "B-venue", "I-venue"]},
        "golden": {"name": "hand", "sha256": "0" * 64, "rows": 1, "files": {}}, "profile": {"name": "runtime"},
        "decode": {}, "tags": ["venue"], "audit": {}, "warnings": [],
    }  # fmt: skip
    return Run(tmp_path, meta, [entry])


def test_script_raw_is_escaped_text(tmp_path):
    raw = "<script>alert(1)</script>"
    run = tiny_run(raw, {"venue": raw}, {"venue": "<script>alert(1)</script>"[:8]}, tmp_path)
    d = diagnose(run)
    assert d.errors
    out = tmp_path / "r.html"
    render_diagnose(d, out, "r.errors.csv")
    html = out.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1
    assert_offline(html)
    p = probe(html)
    assert_marks_exact(p)
    assert p.per_tag_rows == 1


# ---------------------------------------------------------------------------------------------
# segmentation: offsets stay right for any Unicode

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40) | st.sampled_from(
    [f"{ZWJ} Hub 5", f"{COMBINING} {CJK}𠀋 ok", f"a{RLO}b\u0001c", "İstanbul İST"]
)


@settings(max_examples=150, deadline=None)
@given(TEXT, st.data())
def test_pred_line_segments_cover_raw(raw, data):
    n = len(raw)
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(a + 1, n))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, n), max_size=8))) | {0, n})
    spans = [[cuts[i], cuts[i + 1]] for i in range(len(cuts) - 1)] + [[cuts[-1], cuts[-1]]]  # + a zero-width piece
    p = {
        "raw": raw, "pred": {"t": {"value": raw[a:b], "start": a, "end": b, "confidence": 0.3}},
        "pieces": [raw[x:y] or "<0xF0>" for x, y in spans], "spans": spans,
        "labels": ["B-t"] + ["I-t"] * (len(spans) - 1), "conf": [0.4] * len(spans),
    }  # fmt: skip
    line = pred_line(p, "t")
    pre = "".join(t for t, _, _ in line["pre"])
    hl = "".join(t for t, _, _ in line["hl"])
    post = "".join(t for t, _, _ in line["post"])
    assert pre + hl + post == raw
    assert hl == line["value"] == raw[a:b]
    assert len(display(raw)) == n


def test_find_span_case_insensitive_keeps_offsets():
    raw = "İİ Main Street"
    a, b, ci = find_span(raw, "main street")
    assert ci and raw[a:b] == "Main Street"
    assert find_span(raw, "Main") == (3, 7, False)
    assert find_span(raw, "nowhere") is None


def test_invisible_chars_are_shown_not_obeyed():
    """An RLO made gold "Main St" + U+202E + "evil.exe" read "Main St exe.live", and a zero-width
    space made "12" + U+200B + "3" look like the "123" beside it; joiners stay (they build emoji)."""
    from mailwoman_eval.report.common import has_hidden

    assert display("Main St\u202eevil.exe") == "Main St\u25ccevil.exe"
    assert display("12\u200b3") == "12\u25cc3" and display("\ufeffRue\u00ad") == "\u25ccRue\u25cc"
    assert display("👩\u200d💻 \u0645\u200c") == "👩\u200d💻 \u0645\u200c"
    assert has_hidden(None, "12\u200b3") and not has_hidden("👩\u200d💻", None, "")


def test_example_tables_have_column_headers(hostile_report):
    """The column titles were a div above the lists: a screen reader read the cells without them."""
    import re

    _, html = hostile_report
    src = html.read_text(encoding="utf-8")
    tables = src.split('<table class="ex">')[1:]
    assert tables
    for t in tables:
        body = t.split("</table>")[0]
        head = re.search(r'<thead class="sr-only"><tr>(.*?)</tr></thead>', body)
        assert head and head.group(1).count('<th scope="col">') == 4
        # the widths the fixed layout needs come from <col>s: the header row is not laid out
        assert body.startswith('<colgroup><col class="meta"><col class="cats"><col class="vals"><col></colgroup>')
        assert all(r.count("<td") == 4 for r in body.split('<tr class="ex"')[1:])


def test_every_format_char_is_shown_as_hidden_or_kept_on_purpose():
    """Tag chars (U+E0020-E007F, "ASCII smuggling"), U+206A-206F, U+034F and U+180E rendered as
    nothing and were not marked; every Cf char is now either shown as ◌ or kept for a reason."""
    import unicodedata

    from mailwoman_eval.report.common import HIDDEN, KEPT_FORMAT, has_hidden

    cf = {c for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"}
    assert cf <= set(HIDDEN) | set(KEPT_FORMAT), sorted(hex(c) for c in cf - set(HIDDEN) - set(KEPT_FORMAT))
    assert not set(HIDDEN) & set(KEPT_FORMAT)
    for c in (0xE0041, 0x206A, 0x034F, 0x180E, 0x3164):
        assert display(f"12{chr(c)}3") == "12\u25cc3" and has_hidden(f"12{chr(c)}3")
    assert display("❤\ufe0f") == "❤\ufe0f"  # a variation selector picks the emoji form
