"""More rules of the `mweval sweep` page's view model (report/sweep_page.py), beyond
tests/test_compare_sweep_page_rules.py: the colour of tags outside the upstream lists, the x axis
of short and long sweeps, the F1 scale of a sweep that never reaches 0 or 100%, the drift-window
band of a single step, and the learning-rate chart where the LR is unknown at a step, where no
peak LR is known, where it is 0 everywhere, and where the §10.4 schedule draws the curve; a tag
missing at the last step; the SVG point lists.

The input is `mweval sweep` over the bundled demo run `regressed` (the module fixture of
tests/test_compare_sweep_page_rules.py), reshaped where a rule needs another shape of sweep.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib

import pytest
from test_compare_sweep_page_rules import demo_sweep, needs_demo  # noqa: F401  (demo_sweep: a fixture)

from mailwoman_eval.report.sweep_page import (
    MARGIN_B,
    PALETTE,
    end_labels,
    f1_chart,
    lr_chart,
    nice_ticks,
    page_context,
    render_html,
    tag_colors,
)


def with_steps(doc: dict, steps: list[int]) -> dict:
    """The demo sweep with its rows at `steps` (row k takes the scores of demo row k mod 5); the
    drift window is the last five of them and every peak sits at the last step."""
    doc = copy.deepcopy(doc)
    src = doc["steps"]
    doc["steps"] = [{**copy.deepcopy(src[k % len(src)]), "step": s} for k, s in enumerate(steps)]
    doc["drift"]["steps"] = steps[-5:]
    doc["drift"]["window"] = len(doc["drift"]["steps"])
    doc["peaks"]["macro_f1"]["step"] = steps[-1]
    for pk in doc["peaks"]["per_tag"].values():
        pk["step"] = steps[-1]
    return doc


def test_tags_outside_the_upstream_lists_take_their_hashed_colour_in_name_order():
    """x1 and x2 both hash to entry 5: the name first in sorted order keeps it, whatever the page's tag order."""
    assert [int(hashlib.sha256(t.encode()).hexdigest(), 16) % len(PALETTE) for t in ("x1", "x2")] == [5, 5]
    expected = {"x1": PALETTE[5], "x2": PALETTE[6]}
    assert tag_colors(["x2", "x1"]) == expected == tag_colors(["x1", "x2"])


def test_nice_ticks_of_an_empty_range_is_the_one_value_and_others_are_round_steps():
    assert nice_ticks(0.0, 0.0, 4) == [0.0] and nice_ticks(3.0, 2.0) == [3.0]
    assert nice_ticks(0.55, 0.85, 5) == [0.6, 0.7, 0.8]
    assert nice_ticks(100, 1300, 8) == [200, 400, 600, 800, 1000, 1200]
    # 0.1 + 0.1 + 0.1 overshoots 0.3 by 4e-17: the last tick is still there
    assert nice_ticks(0.0, 0.3, 3) == [0.0, 0.1, 0.2, 0.3]


@needs_demo
def test_up_to_twelve_steps_each_get_a_tick_beyond_that_round_steps_do(demo_sweep):  # noqa: F811
    doc, _, _ = demo_sweep
    twelve = f1_chart(with_steps(doc, list(range(100, 1300, 100))))
    assert [t["label"] for t in twelve["xticks"]] == [str(s) for s in range(100, 1300, 100)]
    thirteen = f1_chart(with_steps(doc, list(range(0, 1300, 100))))
    assert [t["label"] for t in thirteen["xticks"]] == ["0", "200", "400", "600", "800", "1000", "1200"]
    xs = [d["x"] for d in thirteen["series"][-1]["dots"]]
    # the ticks sit where the dots of their steps sit, the first and last step included
    assert [t["x"] for t in thirteen["xticks"]] == xs[::2]
    # and none falls outside the steps: 1400 would be the next round step
    assert [t["label"] for t in f1_chart(with_steps(doc, list(range(100, 1400, 100))))["xticks"]] == [
        "200", "400", "600", "800", "1000", "1200"]


@needs_demo
def test_a_one_step_sweep_has_its_tick_mid_plot_and_a_visible_window_band(demo_sweep):  # noqa: F811
    doc, lr, _ = demo_sweep
    one = with_steps(doc, [1600])
    c = f1_chart(one)
    assert [t["label"] for t in c["xticks"]] == ["1600"]
    assert end_labels([{"name": "none", "color": "#123456", "cls": "tag", "dots": []}], c["x1"], 16.0, 286.0) == []
    mid = c["xticks"][0]["x"]
    assert mid == round((c["x0"] + c["x1"]) / 2, 2)
    assert [d["x"] for d in c["series"][-1]["dots"]] == [mid] and c["series"][-1]["dots"][0]["peak"]
    band = c["band"]
    assert band["w"] > 0 and band["x"] + band["w"] / 2 == pytest.approx(mid)
    assert band["title"] == "drift window: last 1 evaluated step (1600)"  # was "1 evaluated steps (1600–1600)"
    ctx = page_context(one, lr)
    prov = {p["key"]: p["value"] for p in ctx["provenance"]}
    assert [p["key"] for p in ctx["provenance"] if p.get("mono")] == ["golden sha256", "tokenizer sha256"]
    assert prov["checkpoints"] == "1 step (1600)" and ctx["lr_chart"]["xticks"][0]["x"] == mid
    html = render_html(one, lr)
    assert "over the last 1 evaluated step <b>" in html and "over the last 1 evaluated step (step 1600)" in html


@needs_demo
def test_the_f1_scale_rounds_out_to_five_points_beyond_the_data(demo_sweep):  # noqa: F811
    """Scores squeezed into 60–80%: the scale runs 55–85% (0.02 margin, rounded out to 5 points)."""
    doc, _, _ = demo_sweep
    doc = copy.deepcopy(doc)
    for r in doc["steps"]:
        r["macro_f1"] = 0.6 + 0.2 * r["macro_f1"]
        r["f1"] = {t: 0.6 + 0.2 * v for t, v in r["f1"].items()}
    c = f1_chart(doc)
    assert [t["label"] for t in c["yticks"]] == ["60", "70", "80"]
    span = c["y1"] - c["y0"]
    assert [t["y"] for t in c["yticks"]] == [round(c["y0"] + (v - 0.55) / 0.3 * span, 2) for v in (0.6, 0.7, 0.8)]
    macro = c["series"][-1]
    assert macro["lines"] == [" ".join(f"{d['x']},{d['y']}" for d in macro["dots"])]  # SVG points: "x,y x,y …"
    assert [d["y"] for d in macro["dots"]] == [round(c["y0"] + (r["macro_f1"] - 0.55) / 0.3 * span, 2) for r in doc["steps"]]
    # the lowest value (subregion at 1200, 0.6) and the highest (cedex at 1200, 0.8): inside, not on the edges
    ys = [d["y"] for s in c["series"] for d in s["dots"]]
    assert c["y1"] < min(ys) and max(ys) < c["y0"]


@needs_demo
def test_a_step_with_an_unknown_lr_gets_no_dot_and_question_marks_in_its_row(demo_sweep):  # noqa: F811
    doc, lr, _ = demo_sweep
    doc = copy.deepcopy(doc)
    r1600 = doc["steps"][2]
    r1600.update(lr=None, lr_fraction_of_peak=None, lr_source="unknown")
    c = lr_chart(doc, lr)
    assert [d["title"].split(" · ")[0] for d in c["dots"]] == ["step 1200", "step 1400", "step 2000", "step 2200"]
    assert [d["low"] for d in c["dots"]] == [True] * 4
    ctx = page_context(doc, lr)
    assert 1600 not in ctx["lr_text"] and 1600 not in ctx["of_peak"] and ctx["lr_text"][2000] == "1.19e-4"
    html = render_html(doc, lr)
    row = html.split('<section id="steps"')[1].split(">1600</th>")[1].split("</tr>")[0]
    assert row.startswith('\n  <td class="win ">?</td>\n  <td class="win">?</td>\n  <td class="l win">unknown</td>'), row


@needs_demo
def test_without_a_known_peak_lr_the_largest_step_lr_is_the_peak(demo_sweep):  # noqa: F811
    doc, lr, _ = demo_sweep
    nopeak = dataclasses.replace(lr, peak=None)
    c = lr_chart(doc, nopeak)
    assert c["peak"]["label"] == "peak 8.57e-4"
    assert c["dots"][0]["title"] == "step 1200 · LR 8.57e-4 (100% of peak) · train_log.csv"
    assert c["dots"][0]["y"] == c["peak"]["y"]
    two = {**doc, "lr": {**doc["lr"], "sources": ["train_log.csv", "unknown"]}}
    prov = {p["key"]: p["value"] for p in page_context(two, nopeak)["provenance"]}
    assert prov["peak LR"] == "unknown" and prov["LR from"] == "train_log.csv; unknown"


@needs_demo
def test_a_log_draws_the_chart_even_when_no_evaluated_step_has_an_lr(demo_sweep):  # noqa: F811
    doc, lr, _ = demo_sweep
    blank = copy.deepcopy(doc)
    for r in blank["steps"]:
        r.update(lr=None, lr_fraction_of_peak=None)
    c = lr_chart(blank, lr)
    assert c is not None and c["dots"] == [] and c["curve_source"] == "train_log.csv" and c["curve"]
    assert c["peak"]["label"] == "peak 1.50e-3"


@needs_demo
def test_lr_zero_everywhere_gives_a_chart_without_shares_of_peak(demo_sweep):  # noqa: F811
    doc, lr, _ = demo_sweep
    zero = copy.deepcopy(doc)
    for r in zero["steps"]:
        r["lr"] = 0.0
    zero["guard"] = {**zero["guard"], "threshold_lr": 0.0}
    c = lr_chart(zero, dataclasses.replace(lr, peak=None, log={}, schedule=None))
    assert c["curve"] == "" and c["curve_source"] is None and c["floor"] is None
    assert [t["label"] for t in c["yticks"]] == ["0"] and c["peak"]["label"] == "peak 0"
    assert [d["title"] for d in c["dots"]][:2] == ["step 1200 · LR 0 · train_log.csv", "step 1400 · LR 0 · train_log.csv"]
    assert not any(d["low"] for d in c["dots"])


@needs_demo
def test_the_lr_chart_puts_lr_zero_on_its_axis_and_the_schedule_curve_on_the_schedule(demo_sweep):  # noqa: F811
    doc, lr, _ = demo_sweep
    c = lr_chart(doc, lr)
    assert c["y0"] == c["height"] - MARGIN_B and c["yticks"][0] == {"y": c["y0"], "label": "0"}
    # up to 8% above the peak (1.62e-3), in steps of 5e-4, in the table's notation with one decimal
    assert [t["label"] for t in c["yticks"]] == ["0", "5.0e-4", "1.0e-3", "1.5e-3"]
    assert c["yticks"][-1]["y"] == pytest.approx(c["y0"] + 1.5 / 1.62 * (c["y1"] - c["y0"]), abs=0.01)
    f1 = f1_chart(doc)  # both charts put a step at the same x
    assert (c["x0"], c["x1"], c["xticks"], c["band"]) == (f1["x0"], f1["x1"], f1["xticks"], f1["band"])
    sched = lr_chart(doc, dataclasses.replace(lr, log={}))
    pts = [tuple(map(float, p.split(","))) for p in sched["curve"].split()]
    assert len(pts) == 201
    # the curve spans the padded x range: 1170 to 2230 (3% of 1000 steps each side)
    scale = (sched["y1"] - sched["y0"]) / (0.0015 * 1.08)
    for (_, py), step in ((pts[0], 1170), (pts[100], 1700), (pts[-1], 2230)):
        assert py == pytest.approx(sched["y0"] + lr.schedule.lr(step) * scale, abs=0.01), step
    assert [p[1] for p in pts] == sorted(p[1] for p in pts)  # the cosine tail only decays
    # the logged curve shows the logged steps within the padded range only
    logged = [tuple(map(float, p.split(","))) for p in c["curve"].split()]
    assert len(logged) == len([s for s in lr.log if 1170 <= s <= 2230])


@needs_demo
def test_a_tag_without_support_at_the_last_step_keeps_its_peak_and_has_no_distance_from_it(demo_sweep):  # noqa: F811
    doc, lr, _ = demo_sweep
    doc = copy.deepcopy(doc)
    doc["steps"][-1]["f1"]["venue"] = None  # no venue in the last step's gold
    doc["steps"][-1]["support"]["venue"] = 0
    doc["steps"][2]["f1"]["venue"] = None  # nor at 1600: the line breaks there and stops at 2000
    ctx = page_context(doc, lr)
    venue = next(r for r in ctx["tag_rows"] if r["tag"] == "venue")
    assert venue["peak"] == doc["peaks"]["per_tag"]["venue"] and (venue["last"], venue["from_peak"]) == (None, None)
    assert ctx["colors"]["venue"] == tag_colors(doc["tags"])["venue"]
    line = next(s for s in ctx["f1_chart"]["series"] if s["name"] == "venue")
    pts = [f"{d['x']},{d['y']}" for d in line["dots"]]
    assert len(pts) == 3 and line["lines"] == [" ".join(pts[:2]), pts[2]]
    prov = {p["key"]: p["value"] for p in ctx["provenance"]}
    assert prov["tokenizer sha256"] == doc["tokenizer"]["sha256"][:12] == "c13c51ccefb4"
    html = render_html(doc, lr)
    peaks = html.split('<section id="peaks"')[1].split("</table>")[0]
    row = peaks.split(">venue</span></th>")[1].split("</tr>")[0]
    # peak 72.46 at 2000, last and last − peak blank (uncoloured), drift over the window kept
    assert row == '<td class="n">0</td>\n<td>72.46</td><td>2000</td><td>—</td><td class="d0">—</td><td>3.02</td>\n', row
