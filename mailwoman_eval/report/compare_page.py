"""The `mweval compare` regression report: the diagnose report's layout, CSS and macros, with a view
model built from the `compare()` result dict plus the two runs (for provenance and the predicted
spans): the headline's regressions and improvements, the summary and per-tag Δ with their 95% CIs,
the forest chart, and per tag the category shifts and the newly broken / newly fixed entries;
rendered through common.py's environment (templates/compare.html.j2) into one self-contained
offline HTML file.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from mailwoman_eval import __version__
from mailwoman_eval.compare import (
    VIEW_WORDS,
    f1_measured,
    fp_only,
    interval_count,
    new_fps_without_gold,
    opposite_note,
    regressed_tags,
    significance,
    summary_scope,
    tag_empty,
    what_changed,
)
from mailwoman_eval.fsutil import atomic_write_text
from mailwoman_eval.metrics import VIEWS
from mailwoman_eval.report.common import (
    ADVERSARIAL_DEFINITIONS,
    CATEGORY_COLORS,
    FALLBACK_COLOR,
    VIEW_KEYS,
    VIEW_TITLES,
    anchor,
    bar,
    environment,
    find_span,
    gold_line,
    has_hidden,
    pct,
    pred_line,
    provenance,
    shown_in_view,
    spread,
    top_up,
    warning_items,
)

CHANGE_CAP = 25  # newly broken / newly fixed rows shown per tag and list; the rest are counted
CHANGE_TOPUP = 5  # ... plus up to this many of a view the spread leaves with fewer
MOVES_CAP = 6  # category moves shown per tag and kind
SUMMARY_LABELS = {
    "macro_f1": "macro F1",
    "micro_f1": "micro F1",
    "exact_match": "exact match",
    "mean_token_confidence": "mean token conf.",
}
MUST_MATCH = {"golden", "golden sha256", "profile"}  # provenance keys that make a comparison unfair
FOREST = {"label_w": 150, "panel_w": 320, "gap": 40, "row_h": 20, "top": 34, "bottom": 26}  # 1198 px: shown at native size, fits a 1366 px window


def fmt_pp(x, digits: int = 1) -> str:
    """A value already in percentage points, signed, with a true minus sign."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if round(x, digits) == 0:
        return f"{0:.{digits}f}"
    return f"{x:+.{digits}f}".replace("-", "−")


def _endpoint(x, digits: int) -> str:
    # an endpoint that is not zero never prints as "0.0": the reader checks its sign
    d = digits
    while x and round(x, d) == 0 and d < digits + 2:
        d += 1
    return fmt_pp(x, d)


def fmt_ci(ci, digits: int = 1) -> str:
    return f"[{_endpoint(ci[0], digits)}, {_endpoint(ci[1], digits)}]"


def fmt_p(p) -> str:
    if p is None:
        return "—"
    return f"{p:.3f}" if p >= 0.01 else f"{p:.4f}"


def delta_cell(block: dict, digits: int = 1, what: str = "F1", extra: str = "") -> dict:
    text = _endpoint(block["delta_pp"], digits)  # a Δ that is not zero never prints as 0.0, as the CI ends
    ci = fmt_ci(block["ci95_pp"], digits)
    title = f"Δ {what} {text} pp, 95% CI {ci}, p {fmt_p(block['p'])}" + (f"\n{extra}" if extra else "")
    return {"text": text, "ci": ci, "cls": significance(block), "title": title, "p": fmt_p(block["p"])}


def compare_tag_rows(c: dict) -> list[dict]:
    rows = []
    for tag in c["tags"]:
        groups = []
        for v in VIEWS:
            view = c["views"][v]
            r = view["per_tag"].get(tag)
            if tag_empty(view, tag):
                groups.append({"empty": True, "support": r["support"] if r else 0})
                continue
            if fp_only(view, tag):  # no gold: F1 0 in both runs measures nothing; the FP counts do
                groups.append({"empty": False, "fp_only": True, "fp": r["fp"], "support": 0,
                               "title": f"no gold value in this view: recall is 0/0 and F1 0 in both runs; "
                                        f"false positives base {r['fp'][0]} → cand {r['fp'][1]}"})
                continue
            pr, rc = r["precision"], r["recall"]
            extra = (
                f"Δ precision {_endpoint(pr['delta_pp'], 1)} pp {fmt_ci(pr['ci95_pp'])} · Δ recall {_endpoint(rc['delta_pp'], 1)} pp {fmt_ci(rc['ci95_pp'])}\n"
                f"base tp {r['tp'][0]} fp {r['fp'][0]} fn {r['fn'][0]} → cand tp {r['tp'][1]} fp {r['fp'][1]} fn {r['fn'][1]}"
            )
            groups.append({"empty": False, "base": r["f1"]["base"], "cand": r["f1"]["cand"], "support": r["support"],
                           "d": delta_cell(r["f1"], 1, "F1", extra)})
        rows.append({"tag": tag, "anchor": anchor("tag", tag), "groups": groups})
    return rows


def compare_summary_rows(c: dict) -> list[dict]:
    rows = []
    scope = summary_scope(c)
    for key, label in SUMMARY_LABELS.items():
        groups = []
        for v in VIEWS:
            s = c["views"][v]["summary"].get(key)
            if not c["views"][v].get("entries") or s is None:
                groups.append({"empty": True})
                continue
            note = f"over {len(c['views'][v].get('macro_f1_tags') or [])} tags" if key == "macro_f1" else ""
            if scope and key != "mean_token_confidence":  # across label sets: the common tags only, for both runs
                common = c["label_sets"]["common"]
                note = f"over {len(c['views'][v].get('macro_f1_tags') or [])} of the {common} common tags" if note else f"over the {common} common tags"
            d = delta_cell(s, 2, label)
            if key == "mean_token_confidence":
                d["cls"] = "ns"  # a surer model is not a better one (the regressed demo step is surer): no green or red
            groups.append({"empty": False, "base": s["base"], "cand": s["cand"], "d": d, "note": note})
        rows.append({"label": label, "groups": groups})
    return rows


def compare_headline(c: dict) -> dict:
    """Tags whose F1 CI excludes zero, grouped by tag, with every view where it does."""
    found: dict[str, dict[str, list]] = {"sneg": defaultdict(list), "spos": defaultdict(list)}
    noise: list[dict] = []
    for v in VIEWS:
        view = c["views"][v]
        for tag in c["tags"]:
            if not f1_measured(view, tag):  # F1 0 in both runs: no interval to read
                continue
            r = view["per_tag"][tag]
            f = r["f1"]
            cls = significance(f)
            part = {
                "view": v,
                "words": VIEW_WORDS[v],
                "delta": f["delta_pp"],
                "text": f"{fmt_pp(f['delta_pp'])} pp {fmt_ci(f['ci95_pp'])} {VIEW_WORDS[v]}",
                "title": f"base {pct(f['base'])} → cand {pct(f['cand'])} · n {r['support']} · p {fmt_p(f['p'])} ({view['entries']} entries)",
            }
            if cls in found:
                found[cls][tag].append(part)
            elif f["delta_pp"] < 0:
                noise.append({"tag": tag, **part})

    def items(kind: str, sign: int) -> list[dict]:
        out = []
        for tag, parts in found[kind].items():
            # a tag on both lists (below zero in one view, above in another) says so on each
            out.append({"tag": tag, "anchor": anchor("tag", tag), "parts": parts,
                        "text": f"{tag} F1 " + " · ".join(p["text"] for p in parts),
                        "key": min(sign * p["delta"] for p in parts), "note": opposite_note(c, tag, kind)})
        return sorted(out, key=lambda x: (x["key"], c["tags"].index(x["tag"])))

    regs, imps = items("sneg", 1), items("spos", -1)
    for r in regs:  # the why, as compare.md says it: entries broken and fixed, the largest category shifts
        r["why"] = what_changed(c, r["tag"])
    noise.sort(key=lambda x: (x["delta"], x["tag"]))
    return {
        "regressions": regs,
        "improvements": imps,
        "n_reg": sum(len(x["parts"]) for x in regs),
        "n_imp": sum(len(x["parts"]) for x in imps),
        "noise": [{"tag": x["tag"], "anchor": anchor("tag", x["tag"]), "text": f"{x['tag']} {fmt_pp(x['delta'])} pp ({x['words']})",
                   "title": x["title"] + " · 95% CI " + x["text"].split(" pp ", 1)[1]} for x in noise],
        "tests": interval_count(c),
        "new_fps": [{**g, "anchor": anchor("tag", g["tag"]), "words": VIEW_WORDS[g["view"]]} for g in new_fps_without_gold(c)],
    }


def nice_step(span: float, target: int = 5) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def forest(c: dict) -> dict:
    """Per view a panel: per tag the Δ F1 point and its 95% CI bar against a zero line (inline SVG)."""
    g = FOREST
    tags = [t for t in c["tags"] if not all(tag_empty(c["views"][v], t) for v in VIEWS)]
    height = g["top"] + g["row_h"] * max(len(tags), 1) + g["bottom"]
    panels = []
    for k, v in enumerate(VIEWS):
        view = c["views"][v]
        x0 = g["label_w"] + k * (g["panel_w"] + g["gap"])
        x1 = x0 + g["panel_w"]
        blocks = {t: view["per_tag"][t]["f1"] for t in tags if f1_measured(view, t)}
        lo = min([0.0] + [b["ci95_pp"][0] for b in blocks.values()] + [b["delta_pp"] for b in blocks.values()])
        hi = max([0.0] + [b["ci95_pp"][1] for b in blocks.values()] + [b["delta_pp"] for b in blocks.values()])
        if hi - lo < 2.0:  # at least 2 pp of room
            mid = (hi + lo) / 2
            lo, hi = min(lo, mid - 1.0), max(hi, mid + 1.0)
        pad = (hi - lo) * 0.05  # nothing drawn on the panel edge
        lo, hi = lo - pad, hi + pad
        step = nice_step(hi - lo)
        inner0, inner1 = x0 + 6, x1 - 6

        def sx(x, lo=lo, hi=hi, inner0=inner0, inner1=inner1):
            return round(inner0 + (x - lo) / (hi - lo) * (inner1 - inner0), 1)

        ticks = []
        for i in range(math.ceil(lo / step), math.floor(hi / step) + 1):
            t = i * step
            ticks.append({"x": sx(t), "label": fmt_pp(t, 0 if step >= 1 else 1), "zero": abs(t) < step * 1e-6})
        rows = []
        for i, t in enumerate(tags):
            y = g["top"] + i * g["row_h"] + g["row_h"] / 2
            b = blocks.get(t)
            if b is None:
                r = view["per_tag"].get(t)
                if fp_only(view, t):
                    rows.append({"y": y, "empty": True, "tag": t, "text": f"FP only {r['fp'][0]} → {r['fp'][1]}",
                                 "title": f"{t}, {VIEW_WORDS[v]}: no gold value, F1 0 in both runs; false positives "
                                          f"base {r['fp'][0]} → cand {r['fp'][1]}"})
                else:
                    rows.append({"y": y, "empty": True, "tag": t, "text": "—", "title": f"{t}, {VIEW_WORDS[v]}: nothing to score"})
                continue
            r = view["per_tag"][t]
            rows.append({
                "y": y, "empty": False, "tag": t, "cls": significance(b),
                "lo": sx(b["ci95_pp"][0]), "hi": sx(b["ci95_pp"][1]), "d": sx(b["delta_pp"]),
                "title": f"{t}, {VIEW_WORDS[v]}: Δ F1 {fmt_pp(b['delta_pp'])} pp {fmt_ci(b['ci95_pp'])}, p {fmt_p(b['p'])}; "
                         f"base {pct(b['base'])} → cand {pct(b['cand'])}; n {r['support']}",
            })  # fmt: skip
        panels.append({"title": f"{VIEW_TITLES[v]} ({view['entries']:,})", "x0": x0, "x1": x1, "zero": sx(0.0), "ticks": ticks,
                       "rows": rows, "has": bool(view.get("entries")), "mid": (x0 + x1) / 2})
    width = g["label_w"] + len(VIEWS) * g["panel_w"] + (len(VIEWS) - 1) * g["gap"] + 8
    labels = [{"tag": t, "anchor": anchor("tag", t), "y": g["top"] + i * g["row_h"] + g["row_h"] / 2} for i, t in enumerate(tags)]
    return {"width": width, "height": height, "panels": panels, "labels": labels, "top": g["top"],
            "bottom": height - g["bottom"], "row_h": g["row_h"], "label_w": g["label_w"]}


def provenance_pair(base, cand) -> list[dict]:
    """Rows {key, base, cand, titles, mono, differs, must} from the two runs' provenance items."""
    ib = {it["key"]: it for it in provenance(base.meta)}
    ic = {it["key"]: it for it in provenance(cand.meta)}
    keys = list(ic) + [k for k in ib if k not in ic]
    rows = [{
        "key": "run", "base": f"{base.path.name or base.path} ({base.meta.get('source', 'run')})",
        "cand": f"{cand.path.name or cand.path} ({cand.meta.get('source', 'run')})",
        "base_title": str(base.path), "cand_title": str(cand.path), "mono": False, "differs": False, "must": False,
    }]  # fmt: skip
    for k in keys:
        b, c = ib.get(k, {}), ic.get(k, {})
        bv, cv = b.get("value", "—"), c.get("value", "—")
        differs = (b.get("cmp") or b.get("title") or bv) != (c.get("cmp") or c.get("title") or cv)
        rows.append({"key": k, "base": bv, "cand": cv, "base_title": b.get("title", ""), "cand_title": c.get("title", ""),
                     "mono": bool(b.get("mono") or c.get("mono")), "differs": differs, "must": differs and k in MUST_MATCH})
    return rows


def _bar_scaled(cats: dict, side: str, total: int, scale: int, width: int) -> dict:
    counts = {cat: v[side] for cat, v in cats.items() if v[side]}
    b = bar(counts, total, width)
    f = total / scale if scale else 0
    for s in b["segments"]:
        s["x"], s["w"] = round(s["x"] * f, 2), round(s["w"] * f, 2)
    return b


def side_line(p: dict | None, tag: str, raw: str) -> dict:
    """The raw line of one run with its predicted span of `tag` (pieces on hover when the run has them)."""
    if p is not None and p.get("pieces") and p.get("spans") and p.get("raw") == raw:
        return pred_line(p, tag)
    pr = (p or {}).get("pred", {}).get(tag) or {}
    found = find_span(raw, pr.get("value") or "")
    if found is None or found[2]:
        return {"pre": [(raw, "", "")], "hl": None, "post": [], "value": None, "confidence": pr.get("confidence")}
    a, b, _ = found
    return {"pre": [(raw[:a], "", "")], "hl": [(raw[a:b], "", "")], "post": [(raw[b:], "", "")], "value": raw[a:b],
            "confidence": pr.get("confidence")}


def change_rows(items: list[dict], tag: str, change: str, by_base: dict, by_cand: dict) -> list[dict]:
    side = "cand" if change == "broken" else "base"  # the run that is wrong on this entry
    rows = []
    # spread over the listed entries, then each partial view topped up from its own (as diagnose's
    # `sample_rows`): adversarial entries are a small share of a spread
    groups = [[i for i, it in enumerate(items) if bool(it.get("adversarial")) == flag] for flag in (False, True)]
    for it in (items[i] for i in top_up(set(spread(range(len(items)), CHANGE_CAP)), groups, CHANGE_TOPUP)):
        p = by_cand.get(it["id"]) if side == "cand" else by_base.get(it.get("base_id", it["id"]))
        rows.append({
            "id": it["id"], "tag": tag, "change": change, "adv": bool(it.get("adversarial")),
            "gold": it["gold"], "base": it["base"], "cand": it["cand"], "side": side,
            "gold_line": gold_line(it["raw"], it["gold"]), "side_line": side_line(p, tag, it["raw"]),
            "hidden": has_hidden(it["raw"], it["gold"], it["base"], it["cand"]),
        })  # fmt: skip
    return rows


def order_view(c: dict) -> str:
    """The view the tag blocks are sorted by: the gate's default view, unless it is empty."""
    return "excluding_adversarial" if c["views"]["excluding_adversarial"].get("entries") else "all"


def shift_kind(s: dict | None, kind: str) -> dict:
    """One tag and kind's category shift (compare.json `category_shifts…`) as bars, chips and moves."""
    s = s or {"base_total": 0, "cand_total": 0, "categories": {}, "moves": []}
    scale = max(s["base_total"], s["cand_total"])
    cats = s["categories"]
    return {
        "kind": kind, "base_total": s["base_total"], "cand_total": s["cand_total"],
        "delta": s["cand_total"] - s["base_total"],
        "bars": [("base", _bar_scaled(cats, "base", s["base_total"], scale, 300)),
                 ("cand", _bar_scaled(cats, "cand", s["cand_total"], scale, 300))],
        "cats": [{"cat": k, "color": CATEGORY_COLORS.get(k, FALLBACK_COLOR), **v} for k, v in cats.items()],
        "moves": s["moves"][:MOVES_CAP], "more_moves": max(0, len(s["moves"]) - MOVES_CAP),
        "moved": sum(m["count"] for m in s["moves"]),
    }  # fmt: skip


def compare_blocks(c: dict, base, cand) -> list[dict]:
    by_base = {p["id"]: p for p in base.predictions}
    by_cand = {p["id"]: p for p in cand.predictions}
    gated = c["views"][order_view(c)]

    real = regressed_tags(c)

    def key(t):  # real regressions first (as the headline lists them), tags without data last; then the worst Δ F1
        unused = all(tag_empty(c["views"][v], t) for v in VIEWS)
        rank = real.index(t) if t in real else len(real)
        return (rank, unused, gated["per_tag"][t]["f1"]["delta_pp"] if f1_measured(gated, t) else 0.0,
                c["tags"].index(t))

    order = sorted(c["tags"], key=key)
    by_view = c.get("category_shifts_by_view")
    blocks = []
    for tag in order:
        shifts = []  # per view, for the view filter (compare.json of older mweval: all entries only)
        for v in VIEWS if by_view else ("all",):
            per_kind = (by_view[v] if by_view else c["category_shifts"]).get(tag, {})
            kinds = [shift_kind(per_kind.get(kind), kind) for kind in ("FN", "FP")]
            shifts.append({"view": VIEW_KEYS[v], "kinds": kinds, "has_errors": any(k["base_total"] or k["cand_total"] for k in kinds)})
        ch = c["changes"].get(tag) or {"newly_broken": 0, "newly_fixed": 0, "broken": [], "fixed": []}
        lists = []
        for change, key, count in (("broken", "broken", ch["newly_broken"]), ("fixed", "fixed", ch["newly_fixed"])):
            rows = change_rows(ch[key], tag, change, by_base, by_cand)
            counts = []  # per view, for the view filter (compare.json of older mweval: all entries only)
            for v in VIEWS if "by_view" in ch else ("all",):
                n = ch["by_view"][v][f"newly_{change}"] if "by_view" in ch else count
                counts.append({"view": VIEW_KEYS[v], "count": n, "more": n - shown_in_view(rows, v)})
            lists.append({"change": change, "count": count, "counts": counts, "rows": rows,
                          "listed": len(ch[key]), "anchor": anchor("chg", tag, change), "open": change == "broken" and count > 0})
        f1s = []
        for v in VIEWS:
            view = c["views"][v]
            if tag_empty(view, tag):
                continue
            if fp_only(view, tag):
                fp = view["per_tag"][tag]["fp"]
                f1s.append({"view": VIEW_TITLES[v], "fp_only": fp, "d": {"title": "no gold value in this view: F1 0 in both runs; "
                                                                              f"false positives base {fp[0]} → cand {fp[1]}"}})
                continue
            f = view["per_tag"][tag]["f1"]
            f1s.append({"view": VIEW_TITLES[v], "base": f["base"], "cand": f["cand"], "d": delta_cell(f)})
        head = [{"view": b["view"], "broken": b["count"], "fixed": f["count"]} for b, f in zip(lists[0]["counts"], lists[1]["counts"], strict=True)]
        # the partial views the block has something in (changed entries or errors), for the view
        # filter: a tag wrong in both runs in other categories has shifts and no broken/fixed row
        views = None
        if by_view and "by_view" in ch:
            busy = {h["view"] for h in head if h["broken"] or h["fixed"]} | {sh["view"] for sh in shifts if sh["has_errors"]}
            views = " ".join(k for k in ("0", "1") if k in busy)
        blocks.append({"tag": tag, "anchor": anchor("tag", tag), "shifts": shifts, "lists": lists, "f1s": f1s, "head": head,
                       "changed": ch["newly_broken"] + ch["newly_fixed"], "views": views})
    return blocks


def compare_context(c: dict, base, cand) -> dict:
    golden = c["cand"]["golden"]["name"]
    blocks = compare_blocks(c, base, cand)
    warnings = []
    for who, run in (("base", base), ("cand", cand)):
        for w in warning_items(run.meta.get("warnings") or []):
            warnings.append({**w, "text": f"{who} ({run.label}): {w['text']}"})
    m = c["method"]
    return {
        "title": f"{c['cand']['label']} vs {c['base']['label']} on {golden} — mweval compare",
        "base_label": c["base"]["label"],
        "cand_label": c["cand"]["label"],
        "subheading": f"on {golden} · profile {c['cand']['profile']} · {m['resamples']:,} paired bootstrap resamples",
        "provenance": provenance_pair(base, cand),
        "mismatch": c.get("mismatch") or [],
        "warnings": warnings,
        "method": m,
        "adversarial": ADVERSARIAL_DEFINITIONS.get(m.get("adversarial"), m.get("adversarial")),
        "entries": [{"view": VIEW_TITLES[v], "words": VIEW_WORDS[v], "n": c["views"][v]["entries"]} for v in VIEWS],
        "headline": compare_headline(c),
        "view_titles": [VIEW_TITLES[v] for v in VIEWS],
        "per_tag": compare_tag_rows(c),
        "summary": compare_summary_rows(c),
        "scope": summary_scope(c),
        "forest": forest(c),
        "blocks": blocks,
        "filters": {"tag": [b["tag"] for b in blocks if b["changed"]],
                    "shown": sum(len(x["rows"]) for b in blocks for x in b["lists"])},
        "cap": CHANGE_CAP,
        "topup": CHANGE_TOPUP,
        "shifts_by_view": "category_shifts_by_view" in c,
        "order_view": VIEW_WORDS[order_view(c)],
        "colors": CATEGORY_COLORS,
        "version": __version__,
    }


def render_compare_html(c: dict, base, cand) -> str:
    return environment().get_template("compare.html.j2").render(**compare_context(c, base, cand))


def render_compare(c: dict, base, cand, path: Path) -> None:
    """Write the regression report of `mweval compare` (one self-contained file, atomically)."""
    atomic_write_text(Path(path), render_compare_html(c, base, cand))
