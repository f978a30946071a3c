"""What the reports say matches what they measured (the HTML audit's wording findings): compare's
"CI below zero" is unadjusted and per view, summary numbers across label sets are over the common
tags, a --tags report says it is filtered, a tag without gold is not a measured 0.0, and the smaller
wording of diagnose, gate, parity and sweep.

Runs are hand-built (tests/runfactory.py) where the rule is the point, the bundled demo where the
audit saw it.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from runfactory import make_run, save_run
from test_report_compare import sections

from mailwoman_eval.checkpoints.resolve import BUNDLED_RUNS
from mailwoman_eval.cli import main
from mailwoman_eval.compare import compare, markdown
from mailwoman_eval.diagnose import console, diagnose, to_json
from mailwoman_eval.report.compare_page import render_compare_html
from mailwoman_eval.report.diagnose_page import (
    EXAMPLE_CAP,
    diagnose_context,
    render_diagnose_html,
)
from mailwoman_eval.run import load_run

DEMO_READY = (BUNDLED_RUNS / "regressed" / "step-002200").is_dir()
needs_demo = pytest.mark.skipif(not DEMO_READY, reason="demo runs not built")


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


# ---------------------------------------------------------------------------------------------
# compare: the headline's "CI below zero" is unadjusted and per view (audit #5)


def opposite_pair(tmp_path: Path) -> tuple[Path, Path]:
    """400 entries, 40 adversarial. The candidate loses the postcode of 60 non-adversarial entries
    and finds it on the 20 adversarial ones the baseline missed: postcode's F1 CI is below zero in
    "all" and "excluding adversarial" and above zero in "adversarial only". On the adversarial rows
    the candidate also predicts a unit that no row has (FP only there)."""
    rows_b, rows_c = [], []
    for i in range(400):
        pc, f = f"{10000 + i}", "adversarial.jsonl" if i < 40 else "us.jsonl"
        raw = f"Town {pc} Unit 4"
        gold = {"locality": "Town", "postcode": pc} if i < 40 else {"locality": "Town", "postcode": pc, "unit": "4"}
        base = {"locality": "Town"} if i < 20 else dict(gold)
        cand = {t: v for t, v in gold.items() if t != "postcode" or not 40 <= i < 100}
        if i < 3:
            cand["unit"] = "4"
        rows_b.append((raw, gold, base, f))
        rows_c.append((raw, gold, cand, f))
    tags = ["locality", "postcode", "unit"]
    b = save_run(make_run(rows_b, tags, "runtime", "base-ckpt"), tmp_path / "base")
    c = save_run(make_run(rows_c, tags, "runtime", "cand-ckpt"), tmp_path / "cand")
    return b, c


def test_compare_headline_says_unadjusted_and_names_the_views_of_a_tag_on_both_lists(tmp_path):
    base, cand = opposite_pair(tmp_path)
    r = cli("compare", base, cand, "--out", tmp_path / "cmp", "--resamples", "1000")
    assert r.exit_code == 0, r.output
    html = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    md = (tmp_path / "cmp" / "compare.md").read_text(encoding="utf-8")
    sec = sections(html)
    # no "regressed for real": the intervals are unadjusted, and gate (Holm) may call the drop a WARN
    for text in (html, md):
        assert "for real" not in text and "Real regressions" not in text
    head = sec["headline"]
    assert "1 tag with the 95% CI of Δ F1 below zero" in head and "1 tag with it above zero" in head
    assert "unadjusted, per view" in head and "mweval gate" in head and "Holm" in head
    n = int(re.search(r"each of the (\d+) tag × view intervals", head).group(1))
    assert n == 2 * 3 + 1 * 2  # locality and postcode in 3 views, unit in 2 (FP only in adversarial only: no interval)
    assert f"each of the {n} tag × view intervals" in md
    # postcode is on both lists: each names the other's views, so they do not read as a contradiction
    reg, imp = sec["regressions"], sec["improvements"]
    assert "postcode F1" in reg and "postcode F1" in imp
    assert re.search(r"also above zero: adversarial only \(\+\d+\.\d pp\); the views hold different entries", reg), reg
    assert re.search(r"also below zero: all entries \(−\d+\.\d pp\), excluding adversarial \(−\d+\.\d pp\)", imp), imp
    assert "### 95% CI of Δ F1 below zero (unadjusted, per view)" in md and "### 95% CI of Δ F1 above zero (unadjusted, per view)" in md
    below = md.split("### 95% CI of Δ F1 below zero (unadjusted, per view)\n\n", 1)[1].split("\n\n", 1)[0]
    assert below.startswith("- **postcode**: ") and "also above zero: adversarial only (+" in below
    above = md.split("### 95% CI of Δ F1 above zero (unadjusted, per view)\n\n", 1)[1].split("\n\n", 1)[0]
    assert above.startswith("- **postcode**: adversarial only +") and "also below zero: all entries (-" in above
    # regressed_tags keeps its meaning (a CI below zero in some view): compare.json is unchanged in that
    c = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert c["views"]["adversarial_only"]["per_tag"]["postcode"]["f1"]["ci95_pp"][0] > 0


@needs_demo
def test_demo_compare_says_what_gate_says_about_street(tmp_path):
    """The audit: compare said street "regressed for real" in bold red while gate, on the same pair,
    rated it WARN (Holm). The compare headline now says the CI is unadjusted and points at gate."""
    base, cand = BUNDLED_RUNS / "baseline" / "step-001800", BUNDLED_RUNS / "regressed" / "step-002200"
    r = cli("compare", base, cand, "--golden", "demo-v1", "--out", tmp_path / "c", "-q")
    assert r.exit_code == 0, r.output
    html = (tmp_path / "c" / "compare.html").read_text(encoding="utf-8")
    sec = sections(html)
    assert "street F1" in sec["regressions"] and "for real" not in html
    assert "may call the same drop a WARN" in sec["headline"]
    # locality: below zero in two views, above zero in adversarial only; both entries name the others
    assert "also above zero: adversarial only (+5.3 pp)" in sec["regressions"]
    assert "also below zero: all entries (−2.7 pp), excluding adversarial (−4.0 pp)" in sec["improvements"]


# ---------------------------------------------------------------------------------------------
# compare across label sets: the summary is over the common tags, and says so (audit #6)


def label_pair(tmp_path: Path) -> tuple[Path, Path]:
    rows = []
    for i in range(60):
        raw = f"Town {10000 + i} Unit {i}"
        gold = {"locality": "Town", "postcode": f"{10000 + i}", "unit": f"{i}"}
        rows.append((raw, gold, {"locality": "Town", "postcode": f"{10000 + i}"}))  # never the unit
    b = save_run(make_run(rows, ["locality", "postcode", "unit"], "runtime", "base-ckpt"), tmp_path / "base")
    c = save_run(make_run(rows, ["locality", "postcode"], "runtime", "cand-ckpt"), tmp_path / "cand")
    return b, c


def test_compare_across_label_sets_says_the_summary_is_over_the_common_tags(tmp_path):
    base, cand = label_pair(tmp_path)
    r = cli("compare", base, cand, "--out", tmp_path / "refused", "--resamples", "1000")
    assert r.exit_code == 2 and "baseline only: unit; candidate only: none" in r.output
    r = cli("compare", base, cand, "--out", tmp_path / "cmp", "--resamples", "1000", "--allow-mismatch")
    assert r.exit_code == 0, r.output
    c = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert c["label_sets"] == {"same": False, "common": 2, "base_only": ["unit"], "cand_only": []}
    # the baseline's own macro F1 is over 3 tags (unit at 0); here it is over the 2 in common
    assert c["views"]["all"]["summary"]["macro_f1"]["base"] == pytest.approx(1.0)
    assert any("only the 2 tags both runs score are compared" in m for m in c["mismatch"])
    html = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    sec = sections(html)
    scope = "over the 2 tags both runs score (1 more in the baseline's label set, 0 in the candidate's)"
    assert scope in sec["mismatch"] and "summary numbers (macro/micro F1, exact match)" in sec["mismatch"]
    assert "Common tags only" in sec["scope"] and scope in sec["scope"]
    assert sec["numbers"].count("over 2 of the 2 common tags") == 2 and sec["numbers"].count("over the 2 common tags") == 2 * 2
    # (macro F1; micro F1 and exact match; in the two views with entries)
    md = (tmp_path / "cmp" / "compare.md").read_text(encoding="utf-8")
    assert f"> **Summary rows** (macro_f1, micro_f1, exact_match): {scope}" in md
    # same label sets: no such note anywhere
    same = compare(load_run(base), load_run(base), resamples=1000)
    assert same["label_sets"]["same"] and "Summary rows" not in markdown(same)
    assert "Common tags only" not in render_compare_html(same, load_run(base), load_run(base))


# ---------------------------------------------------------------------------------------------
# a tag with no gold in a view: "FP only", not a red 0.0 (audit #11)


def test_a_tag_without_gold_in_a_view_is_fp_only_in_compare_tables_forest_and_md(tmp_path):
    base, cand = opposite_pair(tmp_path)
    b, c = load_run(base), load_run(cand)
    res = compare(b, c, resamples=1000)
    html = render_compare_html(res, b, c)
    row = html.split('id="per-tag"')[1].split('data-tag="unit"')[1].split("</tr>")[0]
    assert "FP only (0)" in row and "FP only (3)" in row  # adversarial only: base 0, cand 3 false positives
    assert "0.0<" not in row.split("FP only")[1]
    svg = html.split('<svg class="forest"')[1].split("</svg>")[0]
    assert svg.count("<circle") == 2 * 3 + 2  # no dot at 0 with a CI of [0, 0] for unit in adversarial only
    assert "FP only 0 → 3" in svg
    block = html.split('id="tag-unit"')[1].split("</h3>")[0]
    assert "adversarial only FP only 0 → 3" in block
    md = markdown(res)
    adv = md.split("### adversarial only")[1]
    assert "| unit | 0 | FP only (0) | FP only (3) | — | — | — |" in adv


def test_a_tag_without_gold_in_a_view_is_fp_only_in_the_diagnose_tables(tmp_path):
    base, cand = opposite_pair(tmp_path)
    d = diagnose(load_run(cand))
    html = render_diagnose_html(d, "x.errors.csv")
    row = html.split('id="per-tag"')[1].split('href="#tag-unit"')[1].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[-3:-1] == ["FP only (3)", "0"] and cells[-4] == "—"  # adversarial only: F1, n; recall 0/0
    assert "hsl(0 " not in row.split("FP only")[0].rsplit("</td>", 3)[-1]  # the cell is not heat-red
    # Δ F1 excl − all: unit is measured in both (FP 3 only in "all"): printed, between views, so not coloured
    assert cells[-1] == "+0.4" and '<td class="dview">+0.4</td>' in row
    block = html.split('id="tag-unit"')[1].split("</h3>")[0]
    assert "FP only: 3 false positives, no gold value (F1 —)" in block
    assert to_json(d)["metrics"]["adversarial_only"]["per_tag"]["unit"]["f1"] == 0.0  # the JSON is unchanged


# ---------------------------------------------------------------------------------------------
# diagnose: --tags says so; the whole-run numbers are labelled (audit #7)


def test_a_tags_report_says_it_is_filtered_and_labels_the_whole_run_numbers(tmp_path):
    base, cand = opposite_pair(tmp_path)
    r = cli("diagnose", "--run", cand, "--tags", "postcode", "--out", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    sec = sections(html)
    assert "filtered to 1 of 3 tags: postcode" in html.split("<h1>")[1].split("</h1>")[0]
    assert "(postcode) — mweval diagnose" in html.split("<title>")[1].split("</title>")[0]
    assert "the headline numbers are the whole run’s, over all 3 tags" in sec["focus"]
    assert "whole run: all 3 tags, not only the chosen ones" in sec["numbers"]
    assert "errors in the chosen tags" in sec["errors"]
    assert "filtered to --tags postcode (1 of 3 tags); macro F1 is the whole run's" in r.output
    assert re.search(r"^macro F1 \(all tags\) ", r.output, re.M)
    doc = json.loads(cli("diagnose", "--run", cand, "--tags", "postcode", "--json", "--no-html").output)
    assert doc["tags_filter"] == ["postcode"]
    full = cli("diagnose", "--run", cand, "--out", tmp_path / "full.html")
    assert "filtered to" not in (tmp_path / "full.html").read_text(encoding="utf-8") and "macro F1 (all tags)" not in full.output
    assert json.loads(cli("diagnose", "--run", cand, "--json", "--no-html").output)["tags_filter"] is None


# ---------------------------------------------------------------------------------------------
# diagnose: golden audit, headline order, example cap, between-view Δ (audit #12, #13)


def test_golden_audit_splits_case_only_from_absent(tmp_path):
    run = load_run(opposite_pair(tmp_path)[1])
    run.meta["audit"] = {"values_not_in_raw": 2663, "values_case_only_in_raw": 2660}
    html = render_diagnose_html(diagnose(run), "x.errors.csv")
    audit = sections(html)["audit"]
    assert re.search(r"2660\s*gold values that differ from raw only in letter case", audit)
    assert re.search(r"(?<!\d)3\s*gold values absent from raw \(in any case\)", audit)
    assert "not found verbatim" not in audit


def test_the_headline_puts_a_tag_failing_by_false_positives_first(tmp_path):
    """en-us street_suffix had 1544 FP and 0 FN and sat at the bottom of a headline sorted by FN."""
    rows = [(f"Town {i}", {"locality": "Town"} if i else {"locality": "Town", "postcode": "1"},
             {"locality": "Town", "unit": f"{i}"} if i < 9 else {"locality": "Town"}) for i in range(20)]
    run = make_run(rows, ["locality", "postcode", "unit"], "runtime")
    d = diagnose(run)
    assert [h["tag"] for h in d.headline] == ["unit", "postcode"]  # 9 FP, 0 FN before 1 FN
    html = render_diagnose_html(d, "x.errors.csv")
    assert "most errors (FN + FP) first" in html
    head = html.split('id="headline"')[1].split("</table>")[0]
    assert head.index("#tag-unit") < head.index("#tag-postcode")
    assert '<td class="f1 na" title="no gold value' in head  # unit has no gold: "FP only", not a red 0.0
    assert console(d).split("headline:\n", 1)[1].startswith("  unit FN 0; FP 9")


def test_the_example_hint_states_the_most_rows_a_section_shows(tmp_path):
    """"up to 20 examples per category" with 21 shown: the top-up for a short view adds rows."""
    rows = []
    for i in range(200):
        f = "adversarial.jsonl" if i % 40 == 7 else "us.jsonl"  # 5 adversarial errors; a spread of 20 misses most
        rows.append((f"Town {i}", {"locality": "Town", "postcode": f"{i}"}, {"locality": "Town"}, f))
    d = diagnose(make_run(rows, ["locality", "postcode"], "runtime"))
    ctx = diagnose_context(d, "x.errors.csv")
    most = max(len(s["rows"]) for b in ctx["blocks"] for k in b["kinds"] for s in k["sections"])
    limit = EXAMPLE_CAP + ctx["topup"]
    assert EXAMPLE_CAP < most <= limit
    html = render_diagnose_html(d, "x.errors.csv")
    assert f"examples per category: {EXAMPLE_CAP} spread over its errors, topped up to {ctx['topup']} for a view" in html
    assert f"(so up to {limit} rows)" in html and "up to 20 examples per category" not in html


def test_the_between_view_delta_is_not_coloured_as_better_or_worse(tmp_path):
    d = diagnose(load_run(opposite_pair(tmp_path)[1]))
    html = render_diagnose_html(d, "x.errors.csv")
    numbers = html.split('class="num headline-numbers"')[1].split("</table>")[0]
    deltas = re.findall(r'<td class="([^"]*)">[^<]*</td></tr>', numbers)
    assert deltas and set(deltas) == {"dview"}
    pertag = html.split('id="per-tag"')[1].split("</table>")[0]
    assert "dpos" not in pertag and "dneg" not in pertag


# ---------------------------------------------------------------------------------------------
# gate, parity and sweep text (audit #13, #10)


def test_gate_summary_uses_one_minus_sign_and_four_decimals_for_p():
    from mailwoman_eval.gate import DEFAULTS, fmt_p, judge

    row = {"delta_pp": -4.25, "ci95": [-11.3, -2.1], "p": 0.1714, "p_holm": 1.0, "support": 107, "cand_f1": 71.4}
    _, reason = judge(row, dict(DEFAULTS), 12)
    assert "Holm p 1.0000 ≥ alpha 0.05" in reason and "Holm p 1 " not in reason
    assert "beyond -1.0 pp" in reason and "−" not in reason
    assert fmt_p(1 / 2001, 0.0005) == "0.0004998" and fmt_p(0.0585, 0.05) == "0.0585" and fmt_p(0.05001, 0.05) == "0.05001"


@needs_demo
def test_demo_gate_summary_is_consistent(tmp_path):
    r = cli("gate", "--baseline", "step-001800", "--candidate", "step-002200", "--golden", "demo-v1", "--out", tmp_path / "g", "-q")
    assert r.exit_code == 1, r.output
    md = (tmp_path / "g" / "summary.md").read_text(encoding="utf-8")
    assert "−" not in md  # ASCII minus throughout, as the table's numbers
    assert not re.search(r"Holm p \d(?:\.\d{1,3})?[ ;,]", md)  # "Holm p 1" beside "1.0000"
    assert "Holm p 1.0000 ≥ alpha 0.05" in md


@needs_demo
def test_parity_md_gives_counts_for_entries_as_for_pieces(tmp_path):
    run = BUNDLED_RUNS / "baseline"
    r = cli("parity", "--ckpt", run / "step-001800", "--onnx", run / "onnx" / "model.int8.onnx", "--golden", "demo-v1",
            "--out", tmp_path / "p", "-q")
    assert r.exit_code == 0, r.output
    md = (tmp_path / "p" / "parity.md").read_text(encoding="utf-8")
    doc = json.loads((tmp_path / "p" / "parity.json").read_text())
    ag = doc["artifacts"][0]["agreement"]
    assert f"{ag['entries_pct']:.2f}% ({ag['entries_differ']} of {ag['entries_total']} differ)" in md
    assert f"({ag['pieces_differ']} of {ag['pieces_total']} differ)" in md


def test_lr_has_one_notation():
    from mailwoman_eval.learning_rate import fmt_lr

    assert fmt_lr(0.000857) == "8.57e-4" and fmt_lr(3.04e-5) == "3.04e-5" and fmt_lr(1e-3) == "1.00e-3" and fmt_lr(0.0) == "0"
    shown = [fmt_lr(x) for x in (0.000857, 3.04e-5, 2.5e-4, 9.99e-4)]
    assert all(re.fullmatch(r"\d\.\d\de-\d", s) for s in shown)


needs_demo_runs = pytest.mark.skipif(not (BUNDLED_RUNS / "regressed" / "train_log.csv").is_file(), reason="demo runs not built")


def demo_sweep_html(tmp_path) -> str:
    """The sweep page of the demo's regressed run."""
    r = cli("sweep", BUNDLED_RUNS / "regressed", "--golden", "demo-v1", "--out", tmp_path / "s", "-q")
    assert r.exit_code == 0, r.output
    return (tmp_path / "s" / "sweep.html").read_text(encoding="utf-8")


@needs_demo_runs
def test_demo_sweep_page_prints_lr_in_one_notation(tmp_path):
    html = demo_sweep_html(tmp_path)
    steps = html.split('id="steps"')[1].split("</table>")[0]
    lrs = re.findall(r'<td class="(?:win )?(?:low)?">([^<]*)</td>\s*<td(?: class="win")?>[^<]*%', steps)
    assert lrs and all(re.fullmatch(r"\d\.\d\de-\d", x) for x in lrs), lrs
    assert not re.search(r">0\.000\d", steps)
    chart = html.split('id="lr-chart"')[1].split("</svg>")[0] if 'id="lr-chart"' in html else html.split("Learning rate")[1].split("</svg>")[0]
    assert not re.search(r">0\.00\d", chart)  # the axis too: "1.5e-3", not "0.0015" beside a "peak 1.50e-3"


def _lab(hex_color: str) -> tuple[float, float, float]:
    h = hex_color.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    rgb = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    x, y, z = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, 0.2126 * r + 0.7152 * g + 0.0722 * b, (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def test_sweep_tag_colours_belong_to_the_tag_not_its_position():
    from mailwoman_eval.report.sweep_page import MACRO_COLOR, PALETTE, TAG_COLOR_ORDER, tag_colors

    demo = ["country", "region", "locality", "dependent_locality", "postcode", "subregion", "cedex", "venue", "street",
            "house_number", "unit", "po_box"]
    tiny = demo[:10]
    en_us = list(TAG_COLOR_ORDER)
    a, b, c = tag_colors(demo), tag_colors(tiny), tag_colors(en_us)
    for t in tiny:
        assert a[t] == b[t] == c[t]
    assert len(set(c.values())) == len(en_us) == len(PALETTE)  # every upstream tag its own colour
    assert tag_colors(["cedex"]) == {"cedex": a["cedex"]} and tag_colors(["venue", "cedex"])["venue"] == a["venue"]
    odd = tag_colors(["zeta", "alpha", "country"])
    assert odd == tag_colors(["country", "alpha", "zeta"]) and len(set(odd.values())) == 3  # hashed, no collision
    # none near the macro line's #111, none near another
    assert all(_lab(p)[0] >= 40 for p in PALETTE) and _lab(MACRO_COLOR)[0] < 10
    assert min(math.dist(_lab(p), _lab(q)) for p, q in itertools.combinations(PALETTE, 2)) >= 25


# ---------------------------------------------------------------------------------------------
# asides: -q with --buckets upstream; the dirty flag of the commit


@needs_demo
def test_quiet_upstream_diagnose_writes_nothing_to_stderr(tmp_path):
    r = cli("diagnose", "--ckpt", "step-002200", "--golden", "demo-v1", "--buckets", "upstream", "-q", "--out", tmp_path / "u.html")
    assert r.exit_code == 0, r.output
    assert r.stderr == "" and r.stdout.startswith("\n=== TAG: ")
    loud = cli("diagnose", "--ckpt", "step-002200", "--golden", "demo-v1", "--buckets", "upstream", "--out", tmp_path / "v.html")
    assert "loaded 649 golden entries" in loud.stderr and "report: " in loud.stderr and loud.stdout == r.stdout


def test_the_commit_carries_a_dirty_flag_for_uncommitted_changes(tmp_path, monkeypatch):
    from mailwoman_eval import run as run_module
    from mailwoman_eval.report.common import provenance

    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    (repo / "mailwoman_eval").mkdir()
    (repo / "mailwoman_eval" / "a.py").write_text("x = 1\n")
    (repo / "README.md").write_text("r\n")
    git("add", "mailwoman_eval/a.py", "README.md")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    monkeypatch.setattr(run_module, "REPO_ROOT", repo)
    head = run_module.git_commit()
    assert re.fullmatch(r"[0-9a-f]{40}", head)
    (repo / "new.txt").write_text("untracked\n")
    assert run_module.git_commit() == head  # untracked files do not count, as git describe --dirty
    (repo / "README.md").write_text("edited\n")
    assert run_module.git_commit() == head  # nor files that do not make the numbers
    (repo / "mailwoman_eval" / "a.py").write_text("x = 2\n")
    assert run_module.git_commit() == head + "-dirty" == run_module.git_commit()  # the same tree, the same string
    # installed inside another project's checkout: that project's HEAD is not mweval's
    monkeypatch.setattr(run_module, "REPO_ROOT", repo / "mailwoman_eval")
    assert run_module.git_commit() is None
    monkeypatch.setattr(run_module, "REPO_ROOT", repo)
    item = next(i for i in provenance({"mweval_git_commit": head + "-dirty"}) if i["key"] == "mweval")
    assert item["value"].endswith(f" · {head[:10]}-dirty")
    clean = next(i for i in provenance({"mweval_git_commit": head}) if i["key"] == "mweval")
    assert clean["value"].endswith(f" · {head[:10]}")


def _series(name: str, last_y: float, x: float = 700.0) -> dict:
    return {"name": name, "color": "#123456", "cls": "macro" if name == "macro F1" else "tag",
            "dots": [{"x": 100.0, "y": 50.0}, {"x": x, "y": last_y}]}


def test_sweep_end_labels_name_every_line_in_order_without_overlap():
    """The F1 chart's lines are told apart by name, not only colour: one label per line at its last
    point's height, pushed apart to LABEL_GAP, in the order of the points, inside the plot."""
    from mailwoman_eval.report.sweep_page import LABEL_GAP, end_labels

    # five lines ending within 6 px of each other near the bottom, one far above, one without points
    series = [_series(f"t{k}", 280.0 + k) for k in range(5)] + [_series("macro F1", 40.0)]
    series.append({"name": "empty", "color": "#000", "cls": "tag", "dots": []})
    labels = end_labels(series, x1=772.0, top=16.0, bottom=286.0)
    assert [lab["name"] for lab in labels] == ["macro F1", "t0", "t1", "t2", "t3", "t4"]  # top to bottom, no "empty"
    ys = [lab["y"] for lab in labels]
    assert all(b - a >= LABEL_GAP - 1e-9 for a, b in zip(ys, ys[1:], strict=False)), ys
    assert ys[-1] == 286.0 and ys[0] == 40.0  # pushed up from the bottom edge; the lone label stays at its line
    assert [lab["y0"] for lab in labels][1:] == [280.0, 281.0, 282.0, 283.0, 284.0]  # leaders start at the lines
    assert all(lab["x"] > 772.0 for lab in labels)
    # lines far apart keep their own heights
    apart = end_labels([_series("a", 100.0), _series("b", 200.0)], x1=772.0, top=16.0, bottom=286.0)
    assert [(lab["name"], lab["y"]) for lab in apart] == [("a", 100.0), ("b", 200.0)]
    # a line ending at an earlier step is labelled at its own last point's height
    early = end_labels([_series("early", 150.0, x=300.0)], x1=772.0, top=16.0, bottom=286.0)
    assert early[0]["y"] == early[0]["y0"] == 150.0


@needs_demo_runs
def test_demo_sweep_chart_names_each_line(tmp_path):
    html = demo_sweep_html(tmp_path)
    chart = html.split('aria-label="per-tag and macro F1 against training step"')[1].split("</svg>")[0]
    named = re.findall(r'<g class="endlabel">.*?<text[^>]*>([^<]*)</text>', chart)
    lines = re.findall(r"<g><title>([^<]*)</title>", chart)
    assert named and sorted(named) == sorted(lines), (named, lines)
    ys = sorted(float(y) for y in re.findall(r'<g class="endlabel">.*?<text x="[^"]*" y="([^"]*)"', chart))
    assert all(b - a >= 11.99 for a, b in zip(ys, ys[1:], strict=False)), ys  # LABEL_GAP apart: no two overlap


def test_sweep_chart_grows_to_fit_one_label_per_line():
    """30 tags with data: the plot is made tall enough that every end label sits inside it, 12 px apart."""
    from mailwoman_eval.report.sweep_page import LABEL_GAP, f1_chart

    tags = [f"tag{k:02d}" for k in range(30)]
    steps = [{"step": s, "macro_f1": 0.9, "f1": {t: 0.9 + k * 1e-4 for k, t in enumerate(tags)}} for s in (100, 200)]
    doc = {"steps": steps, "tags": tags, "peaks": {"per_tag": {}, "macro_f1": {"step": 200}}, "drift": {"steps": [100, 200]}}
    c = f1_chart(doc)
    ys = sorted(lab["y"] for lab in c["labels"])
    assert len(ys) == 31 and c["height"] > 320
    assert c["y1"] <= ys[0] and ys[-1] <= c["y0"], (ys[0], ys[-1], c["y1"], c["y0"])
    assert all(b - a >= LABEL_GAP - 1e-9 for a, b in zip(ys, ys[1:], strict=False))
