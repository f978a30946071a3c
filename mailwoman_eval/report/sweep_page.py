"""The `mweval sweep` page: its view model, built from the sweep.json document and the run's
`LRInfo` (macro and per-tag F1 against the step and the learning rate curve, as inline SVG charts
with the drift window and the guard's floor; the provenance, per-tag and per-step tables), rendered
through common.py's environment (templates/sweep.html.j2) into one self-contained offline HTML
file. Each tag keeps its colour in every sweep page.
"""

from __future__ import annotations

import hashlib
import math

from mailwoman_eval import __version__
from mailwoman_eval.labels import STAGE2_TAGS
from mailwoman_eval.learning_rate import LRInfo, fmt_lr
from mailwoman_eval.report.common import environment
from mailwoman_eval.sweep import pct_pair

# One colour per tag, the same in every sweep page: the tags of the upstream label lists (the v0.4.0
# stage-2 tags, then the en-us model's others) each own an entry, in this order; any other tag takes
# the free entry its name hashes to. Colours were assigned by position among the tags with data, so
# cedex was pink in one page and brown in another. Every entry is far lighter than the macro line's
# #111 (CIE L* >= 40; the old #393b79 was 27) and at least 25 CIE76 ΔE from every other (the old
# #3182bd was 4.6 from #1f77b4); tests/test_report_wording.py checks both.
MACRO_COLOR = "#111"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f", "#a6761d", "#009e73", "#ff9896", "#637939", "#aec7e8", "#e7298a")
TAG_COLOR_ORDER = STAGE2_TAGS + ("street_prefix", "street_suffix", "unit", "po_box", "intersection_a", "intersection_b")


def tag_colors(tags: list[str]) -> dict[str, str]:
    """{tag: colour} for a page's tags: known tags by their place in TAG_COLOR_ORDER, others by a hash of
    the name (sha256, not Python's salted hash), moved to the next free entry when taken (colours repeat
    only past len(PALETTE) tags)."""
    out: dict[str, str] = {}
    used: set[int] = set()
    for t in tags:
        if t in TAG_COLOR_ORDER:
            k = TAG_COLOR_ORDER.index(t) % len(PALETTE)
            out[t] = PALETTE[k]
            used.add(k)
    for t in sorted(t for t in tags if t not in out):
        k = int(hashlib.sha256(t.encode("utf-8")).hexdigest(), 16) % len(PALETTE)
        if len(used) < len(PALETTE):
            while k in used:
                k = (k + 1) % len(PALETTE)
        used.add(k)
        out[t] = PALETTE[k]
    return out


# MARGIN_R holds the F1 chart's end labels (the longest upstream tag, intersection_a, is ~85 px at
# 11 px); the LR chart keeps the same margins so both charts put a step at the same x.
CHART_W, MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 900, 58, 140, 12, 34
LABEL_GAP = 12  # px between the centres of two end labels (11 px text)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, v = [], first
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 12))
        v += step
    return ticks


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float):
        if hi <= lo:
            lo, hi = lo - 1, hi + 1
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        return round(self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a), 2)


def _segments(xs: list[float], ys: list[float | None]) -> list[str]:
    """SVG polyline point strings, broken where a value is missing."""
    out, cur = [], []
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            if cur:
                out.append(" ".join(cur))
            cur = []
        else:
            cur.append(f"{x},{y}")
    if cur:
        out.append(" ".join(cur))
    return out


def end_labels(series: list[dict], x1: float, top: float, bottom: float, gap: float = LABEL_GAP) -> list[dict]:
    """A label per line right of the plot, at the height of the line's last point, so a line is
    told by its name and not only by its colour. Labels closer than `gap` are pushed apart (down
    first, then up where they would leave the plot), keeping their order; each gets a leader, in the
    line's colour, from the plot's edge at the height of the line's last point."""
    ends = sorted(
        ((s["dots"][-1]["y"], k, s) for k, s in enumerate(series) if s["dots"]),
        key=lambda e: (e[0], e[1]),
    )
    if not ends:
        return []
    ys = [max(top, min(bottom, y)) for y, _, _ in ends]
    for i in range(1, len(ys)):  # down the list: at least `gap` below the previous label
        ys[i] = max(ys[i], ys[i - 1] + gap)
    if ys[-1] > bottom:  # past the bottom: push back up from there
        ys[-1] = bottom
        for i in range(len(ys) - 2, -1, -1):
            ys[i] = min(ys[i], ys[i + 1] - gap)
    # f1_chart makes the plot tall enough for every label, so none is pushed above it
    return [
        {"name": s["name"], "color": s["color"], "cls": s["cls"], "y0": y0,
         "x": round(x1 + 26, 2), "y": round(ly, 2)}
        for (y0, _, s), ly in zip(ends, ys, strict=True)
    ]


def _x_axis(doc: dict) -> tuple[_Scale, list[dict]]:
    steps = [r["step"] for r in doc["steps"]]
    lo, hi = min(steps), max(steps)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.03
    x = _Scale(lo - pad, hi + pad, MARGIN_L, CHART_W - MARGIN_R)
    ticks = steps if len(steps) <= 12 else [t for t in nice_ticks(lo, hi, 8) if lo <= t <= hi]
    return x, [{"x": x(t), "label": f"{t:g}"} for t in ticks]


def steps_span(steps: list[int], noun: str = "step") -> str:
    """"5 steps (1200–2200)", or "1 step (1600)" for one."""
    n = len(steps)
    return f"{n} {noun} ({steps[0]})" if n == 1 else f"{n} {noun}s ({steps[0]}–{steps[-1]})"


def _window_band(doc: dict, x: _Scale) -> dict:
    ws = doc["drift"]["steps"]
    a, b = x(ws[0]), x(ws[-1])
    if b - a < 10:
        a, b = a - 5, b + 5
    return {"x": a, "w": round(b - a, 2), "title": f"drift window: last {steps_span(ws, 'evaluated step')}"}


def f1_chart(doc: dict, height: int = 320) -> dict:
    x, xticks = _x_axis(doc)
    rows = doc["steps"]
    tags = [t for t in doc["tags"] if any(r["f1"][t] is not None for r in rows)]
    # taller when the end labels (a line per tag with data, and macro F1) would not fit beside the plot
    height = max(height, MARGIN_T + 4 + (len(tags) + 1) * LABEL_GAP + MARGIN_B)
    vals = [r["macro_f1"] for r in rows] + [r["f1"][t] for r in rows for t in tags if r["f1"][t] is not None]
    lo = max(0.0, math.floor((min(vals) - 0.02) * 20) / 20)
    hi = min(1.0, math.ceil((max(vals) + 0.02) * 20) / 20)
    y = _Scale(lo, hi, height - MARGIN_B, MARGIN_T)
    xs = [x(r["step"]) for r in rows]
    series = []
    colors = tag_colors(doc["tags"])
    for t in tags:
        ys = [y(r["f1"][t]) if r["f1"][t] is not None else None for r in rows]
        pk = doc["peaks"]["per_tag"].get(t)
        series.append({
            "name": t, "color": colors[t], "width": 1.6, "cls": "tag",
            "lines": _segments(xs, ys),
            "dots": [{"x": xx, "y": yy, "peak": pk is not None and r["step"] == pk["step"],
                      "title": f"{t} · step {r['step']} · F1 {r['f1'][t] * 100:.2f}"}
                     for xx, yy, r in zip(xs, ys, rows, strict=True) if yy is not None],
        })
    mk = doc["peaks"]["macro_f1"]
    ys = [y(r["macro_f1"]) for r in rows]
    series.append({
        "name": "macro F1", "color": MACRO_COLOR, "width": 3.2, "cls": "macro", "lines": _segments(xs, ys),
        "dots": [{"x": xx, "y": yy, "peak": r["step"] == mk["step"], "title": f"macro F1 · step {r['step']} · {r['macro_f1'] * 100:.2f}"}
                 for xx, yy, r in zip(xs, ys, rows, strict=True)],
    })
    yticks = [{"y": y(t), "label": f"{t * 100:.0f}" if abs(t * 100 - round(t * 100)) < 1e-6 else f"{t * 100:.1f}"}
              for t in nice_ticks(lo, hi, 5)]
    return {"width": CHART_W, "height": height, "x0": MARGIN_L, "x1": CHART_W - MARGIN_R, "y0": height - MARGIN_B,
            "y1": MARGIN_T, "xticks": xticks, "yticks": yticks, "series": series, "band": _window_band(doc, x),
            "ylabel": "F1 (%)", "labels": end_labels(series, CHART_W - MARGIN_R, MARGIN_T + 4, height - MARGIN_B)}


def lr_chart(doc: dict, lr: LRInfo, height: int = 200) -> dict | None:
    rows = doc["steps"]
    known = [r["lr"] for r in rows if r["lr"] is not None]
    if not known and not lr.log:
        return None
    x, xticks = _x_axis(doc)
    peak = lr.peak or max(known)
    y = _Scale(0.0, peak * 1.08, height - MARGIN_B, MARGIN_T)
    lo, hi = x.lo, x.hi
    if lr.log:
        pts = [(s, v) for s, v in lr.log.items() if lo <= s <= hi]
        curve_source = "train_log.csv"
    elif lr.schedule is not None:
        pts = [(lo + (hi - lo) * i / 200, 0.0) for i in range(201)]
        pts = [(s, lr.schedule.lr(int(round(s)))) for s, _ in pts if s >= 0]
        curve_source = "§10.4 schedule"
    else:
        pts, curve_source = [], None
    curve = " ".join(f"{x(s)},{y(v)}" for s, v in pts)
    floor = doc["guard"]["threshold_lr"]
    dots = []
    for r in rows:
        if r["lr"] is None:
            continue
        low = floor is not None and r["lr"] < floor
        dots.append({"x": x(r["step"]), "y": y(r["lr"]), "low": low,
                     "title": f"step {r['step']} · LR {fmt_lr(r['lr'])}" + (f" ({r['lr'] / peak:.0%} of peak)" if peak else "")
                     + f" · {r['lr_source']}"})
    yticks = [{"y": y(t), "label": fmt_lr(t, 1)} for t in nice_ticks(0.0, peak * 1.08, 4)]  # the notation of the table
    return {"width": CHART_W, "height": height, "x0": MARGIN_L, "x1": CHART_W - MARGIN_R, "y0": height - MARGIN_B,
            "y1": MARGIN_T, "xticks": xticks, "yticks": yticks, "curve": curve, "curve_source": curve_source,
            "dots": dots, "band": _window_band(doc, x),
            "floor": {"y": y(floor), "label": f"{doc['guard']['lr_floor']:.0%} of peak"} if floor else None,  # none at --lr-floor 0, or at a peak LR of 0 (the guard cannot check)
            "peak": {"y": y(peak), "label": f"peak {fmt_lr(peak)}"}}


def page_context(doc: dict, lr: LRInfo) -> dict:
    rows = doc["steps"]
    tags = doc["tags"]
    last = rows[-1]
    tag_rows = []
    has_data = {t for t in tags if any(r["f1"][t] is not None for r in rows)}
    colors = {t: c for t, c in tag_colors(tags).items() if t in has_data}  # no line, no swatch
    for t in tags:
        pk = doc["peaks"]["per_tag"].get(t)
        tag_rows.append({"tag": t, "color": colors.get(t), "support": last["support"][t], "peak": pk,
                         "last": last["f1"][t], "drift": doc["drift"]["per_tag"][t],
                         "from_peak": (last["f1"][t] - pk["f1"]) if pk and last["f1"][t] is not None else None})
    g = doc["guard"]
    prov = [
        {"key": "run", "value": doc["run"]["name"], "title": doc["run"]["path"]},
        {"key": "golden", "value": f"{doc['golden']['name']} · {doc['golden']['rows']} rows", "title": doc["golden"]["sha256"]},
        {"key": "golden sha256", "value": doc["golden"]["sha256"][:12], "title": doc["golden"]["sha256"], "mono": True},
        {"key": "profile", "value": doc["profile"]},
        {"key": "macro F1 view", "value": doc["view"].replace("_", " ")},
        {"key": "tokenizer sha256", "value": doc["tokenizer"]["sha256"][:12], "title": doc["tokenizer"]["path"], "mono": True},
        {"key": "transitions", "value": doc["transitions"]},
        {"key": "LR from", "value": "; ".join(doc["lr"]["sources"])},
        {"key": "peak LR", "value": "unknown" if lr.peak is None else f"{fmt_lr(lr.peak)} ({lr.peak_source})"},
        {"key": "checkpoints", "value": steps_span([r["step"] for r in rows])},
    ]
    v = doc["verdict"]
    return {
        "title": f"{doc['run']['name']} on {doc['golden']['name']} — mweval sweep",
        "version": __version__,
        "doc": doc,
        "provenance": prov,
        "warnings": [{"text": w, "loud": False} for w in doc["warnings"]],
        "guard": g,
        "guard_loud": g["status"] in ("fired", "unknown"),
        "verdict": v,
        "f1_chart": f1_chart(doc),
        "lr_chart": lr_chart(doc, lr),
        "tag_rows": tag_rows,
        "colors": colors,
        "rows": rows,
        "tags": tags,
        "window_steps": set(doc["drift"]["steps"]),
        "lr_text": {r["step"]: fmt_lr(r["lr"]) for r in rows if r["lr"] is not None},
        "of_peak": {r["step"]: pct_pair(r["lr_fraction_of_peak"], g["lr_floor"])[0] for r in rows if r["lr_fraction_of_peak"] is not None},
    }


def render_html(doc: dict, lr: LRInfo) -> str:
    return environment().get_template("sweep.html.j2").render(**page_context(doc, lr))
