"""`mweval compare` / `mweval gate` at the command line, and what the HTML pages share
(report/common.py), rule by rule.

Report side (report/common.py module docstring "Safety rules"; design.md "Outputs"): golden and
model text is autoescaped in every template and never marked safe; C0 controls, DEL, lone
surrogates and the `HIDDEN` invisible chars are shown one char for one char (Control Pictures,
U+FFFD, ◌) while ZWJ/ZWNJ stay; and every number a reader sees: percentages with a dash for a
missing (None/NaN) value, signed percentage-point deltas with a real minus sign (U+2212) and no
"−0.0", the delta colour classes at their edge, the F1 heat tint clamped to [0, 1], short shas,
the commit with its "-dirty" mark, the stacked bars' geometry, the case-insensitive span offsets.

Command-line side (README "Compare and gate"; design.md Decisions "Gate"): exit 0 pass / 1 FAIL,
or WARN with --strict, or a view where nothing was gated with --strict / 2 bad input; the gate's
verdict line names what failed; `--resamples` on the command line sets the thresholds' default;
the MISMATCH warning on stderr; the files written (verdict.json, summary.md, junit.xml;
compare.json, compare.md, compare.html) and compare's default output directory.

Runs are hand-built (tests/runfactory.py); the pure formatting functions get small hand inputs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from markupsafe import Markup
from runfactory import make_run, save_run, two_runs

from mailwoman_eval.cli import main
from mailwoman_eval.report.common import (
    CATEGORY_COLORS,
    FALLBACK_COLOR,
    anchor,
    bar,
    commit_text,
    delta_class,
    display,
    environment,
    find_span,
    gold_line,
    has_hidden,
    heat,
    pct,
    short,
    signed_pp,
    spread,
    top_up,
)

MINUS = "\u2212"

# --- numbers a reader sees ---------------------------------------------------------------------


def test_pct_is_a_percentage_with_the_given_digits_and_a_dash_when_missing():
    assert pct(0.9876) == "98.8" and pct(0.9876, 2) == "98.76" and pct(0.9876, 0) == "99"
    assert pct(1.0) == "100.0" and pct(0.0) == "0.0" and pct(0) == "0.0"
    assert pct(None) == "—" and pct(float("nan")) == "—" and pct(float("nan"), 2) == "—"


def test_signed_pp_has_a_sign_a_real_minus_and_no_negative_zero():
    assert signed_pp(0.0123) == "+1.2" and signed_pp(-0.0123) == MINUS + "1.2"
    assert signed_pp(0.0123, 2) == "+1.23" and signed_pp(-0.0123, 2) == MINUS + "1.23"
    assert "-" not in signed_pp(-0.5) and signed_pp(-0.5) == MINUS + "50.0"
    # a delta that rounds to zero is shown unsigned, never "−0.0" / "+0.0"
    assert signed_pp(0.0) == "0.0" and signed_pp(-0.0004) == "0.0" and signed_pp(0.0004) == "0.0"
    assert signed_pp(-0.00004, 2) == "0.00" and signed_pp(-0.0001, 2) == MINUS + "0.01"
    assert signed_pp(None) == "—" and signed_pp(None, 2) == "—"
    assert signed_pp(float("nan")) == "—"  # was "+nan": a missing number is shown as pct shows it


def test_delta_class_is_neutral_below_the_epsilon_and_signed_from_it():
    assert delta_class(None) == "d0" and delta_class(0.0) == "d0" and delta_class(float("nan")) == "d0"  # NaN was "dneg"
    assert delta_class(0.0004) == "d0" and delta_class(-0.0004) == "d0"
    assert delta_class(0.0005) == "dpos" and delta_class(-0.0005) == "dneg"
    assert delta_class(0.3) == "dpos" and delta_class(-0.3) == "dneg"
    # the compare page's count deltas use eps 0.5: any change of one error is coloured
    assert delta_class(0, 0.5) == "d0" and delta_class(1, 0.5) == "dpos" and delta_class(-1, 0.5) == "dneg"


def test_heat_tints_red_to_green_by_the_square_of_f1_clamped():
    assert heat(None) == "" and heat(float("nan")) == ""  # NaN was tinted green
    assert heat(0.0) == "background:hsl(0 70% 93%)" and heat(1.0) == "background:hsl(125 70% 93%)"
    assert heat(0.5) == "background:hsl(31 70% 93%)"  # round(0.25 × 125) = 31
    assert heat(0.9) == "background:hsl(101 70% 93%)"  # round(0.81 × 125) = 101
    assert heat(1.7) == heat(1.0) and heat(-0.2) == heat(0.0)


def test_short_sha_and_commit_text():
    sha = "0123456789abcdef" * 4
    assert short(sha) == "0123456789ab" and short(sha, 7) == "0123456" and short(None) == "" and short("") == ""
    assert commit_text(None) == "" and commit_text("") == ""
    assert commit_text("0123456789abcdef") == " · 0123456789"
    assert commit_text("0123456789abcdef-dirty") == " · 0123456789-dirty"


# --- untrusted text ----------------------------------------------------------------------------


def test_display_maps_controls_del_surrogates_and_hidden_chars_one_for_one():
    assert display("a\x00b\x1bc\x1f") == "a\u2400b\u241bc\u241f"
    assert display("tab\there\nnext") == "tab\there\nnext"  # tab and newline stay
    assert display("x\x7f") == "x\u2421"
    assert display("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    spoof = "Main St\u202eevil.exe"
    assert display(spoof) == "Main St\u25ccevil.exe" and len(display(spoof)) == len(spoof)
    assert display("12\u200b3\u00ad\ufeff") == "12\u25cc3\u25cc\u25cc"
    assert display("\U000e0041") == "\u25cc"  # a tag char
    assert display("a\u200db\u200cc") == "a\u200db\u200cc"  # ZWJ / ZWNJ join emoji and shape scripts
    assert display("Ünïcödé 東京 ١٢") == "Ünïcödé 東京 ١٢"


def test_has_hidden_is_any_text_with_a_hidden_char():
    assert has_hidden("ok", "1\u200b2") and has_hidden(None, "\u202e")
    assert not has_hidden("ok", None, "") and not has_hidden() and not has_hidden("a\u200db")


def test_the_environment_escapes_every_value_and_shows_hidden_chars():
    env = environment()
    t = env.from_string('<p title="{{ x }}">{{ x }}</p>')
    hostile = '<script>alert("x")</script> & \'q\'\u202e\x07'
    out = t.render(x=hostile)
    assert "<script>" not in out and out.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;q&#39;\u25cc\u2407") == 2
    assert Path(env.loader.searchpath[0]).name == "templates"
    # markup built by the code itself is not remapped (it holds no row text)
    assert env.from_string("{{ m }}").render(m=Markup("<b>\x07</b>")) == "<b>\x07</b>"
    # the filters the templates use
    assert env.from_string("{{ a|pct }} {{ a|pct(2) }} {{ d|spp }} {{ d|dclass }} {{ n|pct }} {{ s|short }}").render(
        a=0.5, d=-0.02, n=None, s="f" * 64) == f"50.0 50.00 {MINUS}2.0 dneg — ffffffffffff"
    assert env.from_string("{{ f|heat }}").render(f=1.0) == "background:hsl(125 70% 93%)"


def test_find_span_exact_then_case_insensitive_in_raw_offsets():
    assert find_span("12 Main St", "Main") == (3, 7, False)
    assert find_span("12 MAIN St", "main") == (3, 7, True)
    assert find_span("12 Main St", "Elm") is None and find_span("12 Main St", "") is None
    # "İ".lower() is two chars; the offsets are raw's own
    assert find_span("İzmir Cd 5", "cd") == (6, 8, True) and "İzmir Cd 5"[6:8] == "Cd"
    assert find_span("x Caddesi 5", "CADDESI") == (2, 9, True)
    assert find_span("a.b a+b", "A+B") == (4, 7, True)  # the value is a literal, not a pattern


def test_gold_line_splits_raw_at_the_gold_value():
    assert gold_line("12 Main St", "Main") == {"pre": "12 ", "hl": "Main", "post": " St", "ci": False}
    assert gold_line("12 MAIN St", "Main") == {"pre": "12 ", "hl": "MAIN", "post": " St", "ci": True}
    assert gold_line("12 Main St", "Elm") == {"pre": "12 Main St", "hl": None, "post": "", "ci": False}


# --- view-model helpers ------------------------------------------------------------------------


def test_bar_segments_are_placed_end_to_end_in_the_given_order():
    b = bar({"empty_pred": 1, "weird": 2}, 3, 300, {"weird": "#w"})
    assert b["total"] == 3 and b["width"] == 300
    s1, s2 = b["segments"]
    assert (s1["cat"], s1["count"], s1["x"], s1["w"], s1["color"], s1["href"]) == ("empty_pred", 1, 0.0, 100.0, CATEGORY_COLORS["empty_pred"], None)
    assert (s2["cat"], s2["count"], s2["x"], s2["w"], s2["color"], s2["href"]) == ("weird", 2, 100.0, 200.0, FALLBACK_COLOR, "#w")
    assert s1["share"] == pytest.approx(1 / 3) and s2["share"] == pytest.approx(2 / 3)
    third = bar({"a": 1, "b": 1, "c": 1}, 3, 100)["segments"]
    assert [(s["x"], s["w"]) for s in third] == [(0.0, 33.33), (33.33, 33.33), (66.67, 33.33)]
    empty = bar({"a": 0}, 0, 100)["segments"][0]
    assert (empty["w"], empty["share"], empty["x"]) == (0, 0, 0.0)


def test_spread_and_top_up():
    assert spread(list(range(10)), 3) == [0, 3, 6] and spread([1, 2], 5) == [1, 2] and spread([1, 2, 3], 3) == [1, 2, 3]
    assert spread(list(range(10)), 0) == []
    # group 2 holds none of the chosen: it gets min(want, its size) of its own, spread over it
    assert top_up({0}, [[0, 1, 2], [10, 11, 12, 13]], 2) == [0, 1, 10, 12]
    assert top_up({0, 1}, [[0, 1, 2]], 2) == [0, 1]  # already enough
    assert top_up(set(), [[5]], 3) == [5]  # a group smaller than want gives what it has


def test_anchor_keeps_only_safe_id_chars():
    assert anchor("tag", "post code", "a/b") == "tag-post_code-a_b" and anchor("t") == "t"
    assert anchor("x", '"><script>') == "x-___script_"


# --- compare / gate at the command line --------------------------------------------------------


def gate_run(tmp_path, base, cand, *extra, out="g"):
    b, c = save_run(base, tmp_path / "b"), save_run(cand, tmp_path / "c")
    r = CliRunner().invoke(main, ["gate", "--baseline", str(b), "--candidate", str(c), "--out", str(tmp_path / out), *extra])
    return r, tmp_path / out


def last_line(r) -> str:
    return r.stdout.rstrip("\n").splitlines()[-1]


def test_gate_exit_1_names_the_failing_tags_and_writes_its_three_files(tmp_path):
    r, out = gate_run(tmp_path, *two_runs(400, 60, cand_name="kandidát"))
    assert r.exit_code == 1
    assert last_line(r) == f"verdict FAIL: postcode (excluding_adversarial) — written to {out.resolve()}/"
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "summary.md", "verdict.json"]
    v = json.loads((out / "verdict.json").read_text(encoding="utf-8"))
    assert v["verdict"] == "FAIL" and v["candidate"]["label"] == "kandidát"
    assert '"kandidát"' in (out / "verdict.json").read_text(encoding="utf-8")  # UTF-8, not \u escapes
    assert (out / "verdict.json").read_text(encoding="utf-8").endswith("}\n")
    assert (out / "verdict.json").read_text(encoding="utf-8").startswith('{\n  "')  # indented for a reader
    assert (out / "summary.md").read_text(encoding="utf-8").startswith("## ❌ mweval gate: FAIL")
    assert '<testsuite name="mweval-gate" tests="1" failures="1"' in (out / "junit.xml").read_text(encoding="utf-8")


def test_gate_pass_exits_0_with_a_bare_verdict_line(tmp_path):
    r, out = gate_run(tmp_path, *two_runs(100, 0, cand_name="cand2"))
    assert r.exit_code == 0, r.output
    assert last_line(r) == f"verdict PASS — written to {out.resolve()}/"
    assert json.loads((out / "verdict.json").read_text(encoding="utf-8"))["verdict"] == "PASS"


def test_gate_warn_exits_0_and_1_under_strict_where_junit_fails_it_too(tmp_path):
    base, cand = two_runs(20, 0)  # support 20 < min_support 30: WARN
    r, out = gate_run(tmp_path, base, cand)
    assert r.exit_code == 0 and last_line(r) == f"verdict WARN — written to {out.resolve()}/"
    assert 'failures="0"' in (out / "junit.xml").read_text(encoding="utf-8")
    r, out = gate_run(tmp_path, base, cand, "--strict", out="gs")
    assert r.exit_code == 1 and last_line(r) == f"verdict WARN: postcode (excluding_adversarial) — written to {out.resolve()}/"
    assert '<testsuite name="mweval-gate" tests="1" failures="1"' in (out / "junit.xml").read_text(encoding="utf-8")


def test_gate_strict_fails_a_view_where_nothing_was_gated(tmp_path):
    th = tmp_path / "t.toml"
    th.write_text('[defaults]\nviews = ["excluding_adversarial", "adversarial_only"]\n', encoding="utf-8")
    base, cand = two_runs(100, 0)  # no adversarial rows: nothing to gate there
    r, out = gate_run(tmp_path, base, cand, "--thresholds", str(th))
    assert r.exit_code == 0 and last_line(r) == f"verdict WARN — written to {out.resolve()}/"
    r, out = gate_run(tmp_path, base, cand, "--thresholds", str(th), "--strict", out="gs")
    assert r.exit_code == 1
    assert last_line(r) == f"verdict WARN: nothing gated (adversarial_only) — written to {out.resolve()}/"


def test_gate_resamples_on_the_command_line_is_the_default_resamples(tmp_path):
    r, out = gate_run(tmp_path, *two_runs(100, 0), "--resamples", "1000")
    assert r.exit_code == 0, r.output
    v = json.loads((out / "verdict.json").read_text(encoding="utf-8"))
    assert v["thresholds"]["defaults"]["resamples"] == 1000
    r, out = gate_run(tmp_path, *two_runs(100, 0), out="g2")
    assert json.loads((out / "verdict.json").read_text(encoding="utf-8"))["thresholds"]["defaults"]["resamples"] == 2000


def test_gate_and_compare_say_mismatch_on_stderr_when_allowed(tmp_path):
    base, cand = two_runs(50, 0)
    other = make_run([(p["raw"], p["gold"], {"postcode": p["gold"]["postcode"]}) for p in cand.predictions], ["postcode"],
                     "runtime", "cand", golden_sha="h" * 64)
    r, out = gate_run(tmp_path, base, other, "--allow-mismatch")
    warn_lines = [s for s in r.stderr.splitlines() if "MISMATCH" in s]
    assert len(warn_lines) == 1 and warn_lines[0].startswith("warning: MISMATCH — golden sets differ"), r.stderr
    assert "MISMATCH" not in r.stdout.splitlines()[-1]
    c = CliRunner().invoke(main, ["compare", str(tmp_path / "b"), str(tmp_path / "c"), "--allow-mismatch", "--resamples", "1000",
                                  "--out", str(tmp_path / "cmp")])
    assert c.exit_code == 0, c.output
    warn_lines = [s for s in c.stderr.splitlines() if "MISMATCH" in s]
    assert len(warn_lines) == 1 and warn_lines[0].startswith("warning: MISMATCH — golden sets differ"), c.stderr
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text(encoding="utf-8"))["mismatch"]


def test_gate_warns_when_both_sides_have_identical_predictions(tmp_path):
    base, _ = two_runs(100, 0)
    b = save_run(base, tmp_path / "b")
    r = CliRunner().invoke(main, ["gate", "--baseline", str(b), "--candidate", str(b), "--out", str(tmp_path / "g")])
    assert r.exit_code == 0
    assert r.stderr == (f"warning: the baseline and the candidate have identical predictions ({b} and {b}): "
                        "every delta is 0 by construction\n")


def test_compare_writes_its_three_files_in_the_default_directory_named_after_both_sides(tmp_path, monkeypatch):
    base, cand = two_runs(60, 6, base_name="ck/step-1", cand_name="ck/stép-2")
    for run in (base, cand):
        run.meta["golden"]["name"] = "demo/v1"
    b, c = save_run(base, tmp_path / "b"), save_run(cand, tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["compare", str(b), str(c), "--resamples", "1000"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "reports" / "compare__ck-stép-2__vs__ck-step-1__demo-v1__runtime"
    assert sorted(p.name for p in out.iterdir()) == ["compare.html", "compare.json", "compare.md"]
    md = (out / "compare.md").read_text(encoding="utf-8")
    assert r.stdout == md + f"\nwritten: {out}/compare.json, compare.md, compare.html\n"
    text = (out / "compare.json").read_text(encoding="utf-8")
    assert text.startswith('{\n  "') and text.endswith("}\n") and json.loads(text)["method"]["resamples"] == 1000
    assert "ck/stép-2" in text  # UTF-8, not \u escapes
    html = (out / "compare.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>\n")
    # postcode F1 100 → 2·54/(2·54+6) = 94.74: shown as 100.0, 94.7 and a real minus, never "-5.3" or "−0.0"
    assert "94.7" in html and f"{MINUS}5.3" in html and ">-5.3<" not in html and f"{MINUS}0.0<" not in html
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html) is None  # one offline file: nothing fetched
    assert r.stderr == ""


def test_gate_repeats_each_sides_warnings_on_stderr_the_loudest_first(tmp_path):
    base, cand = two_runs(100, 1)
    cand.meta["warnings"] = ["the tokenizer is not the one the checkpoint names", "OUT OF DISTRIBUTION: 10 side-channel inputs are zero-fed"]
    r, _ = gate_run(tmp_path, base, cand)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == ["warning: candidate cand: OUT OF DISTRIBUTION: 10 side-channel inputs are zero-fed",
                                     "warning: candidate cand: the tokenizer is not the one the checkpoint names"]


def test_compare_refuses_a_foreign_out_before_evaluating_a_checkpoint(tmp_path):
    """A non-empty --out that holds no compare.json is refused before any checkpoint is evaluated
    (README "Outputs": not after minutes of work): nothing reaches the run cache."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine", encoding="utf-8")
    r = CliRunner().invoke(main, ["compare", "step-001800", "step-002200", "--golden", "demo-v1", "--out", str(mine), "-q"])
    assert r.exit_code == 2
    assert r.output == (f"mweval: error: {mine}: output directory is not empty and holds no mweval compare.json; "
                        "refusing to write (use --force)\n")
    cache = Path(os.environ["MWEVAL_CACHE"])
    assert not cache.exists() or not any(cache.rglob("run.json"))
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
