"""The `mweval diagnose` report: its view model, built from a `Diagnosis` (headline numbers by
view, the per-tag table, per tag and kind the category bars with a spread of example rows, the
golden set's audit), rendered through common.py's environment (templates/diagnose.html.j2) into one
self-contained offline HTML file; the error table beside it holds the rows beyond the cap.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from urllib.parse import quote

from mailwoman_eval import __version__
from mailwoman_eval.buckets import RULES, ErrorRecord
from mailwoman_eval.fsutil import atomic_write_text
from mailwoman_eval.metrics import VIEWS, only_false_positives, tag_measured
from mailwoman_eval.report.common import (
    ADVERSARIAL_DEFINITIONS,
    CATEGORY_COLORS,
    FALLBACK_COLOR,
    LOW_CONFIDENCE,
    VIEW_KEYS,
    VIEW_TITLES,
    anchor,
    bar,
    environment,
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

EXAMPLE_CAP = 20  # example rows per tag × kind × primary category; the rest are in the CSV
FLAGS = ("non_latin", "gold_unreachable")  # flag categories, after the primary ones (non_latin is primary under upstream)


def headline_numbers(metrics: dict) -> dict:
    """Rows: macro F1, micro F1, exact match, mean token confidence, entries; cols: views + Δ.
    The Δ is between two views of one run (excluding adversarial − all): a difference, not better
    or worse, so the templates show it uncoloured."""
    views = [metrics[v] for v in VIEWS]
    has = [bool(m.get("entries")) for m in views]

    def row(label, get, note_fn=None, delta=True, fmt=pct):
        cells = []
        for m, ok in zip(views, has, strict=True):
            v = get(m) if ok else None
            cells.append({"text": fmt(v) if v is not None else "—", "note": note_fn(m) if note_fn and ok else ""})
        d = None
        if delta and has[0] and has[1]:
            d = get(views[1]) - get(views[0])
        return {"label": label, "cells": cells, "delta": d, "has_delta": delta}

    def denom(m):
        return f"over {len(m['macro_f1_denominator']['tags'])} tags"

    return {
        "columns": [VIEW_TITLES[v] for v in VIEWS],
        "rows": [
            row("macro F1", lambda m: m["macro_f1"], denom),
            row("micro F1", lambda m: m["micro"]["f1"]),
            row("exact match", lambda m: m["exact_match"]),
            row("mean token conf.", lambda m: m["mean_token_confidence"]),
            row("entries", lambda m: m["entries"], delta=False, fmt=lambda x: f"{x:,}"),
        ],
        "macro_rule": views[0]["macro_f1_denominator"]["rule"],
    }


def per_tag_rows(metrics: dict, tags: list[str]) -> list[dict]:
    rows = []
    for tag in tags:
        groups = []
        for v in VIEWS:
            t = metrics[v]["per_tag"].get(tag)
            if not tag_measured(t):
                groups.append({"empty": True, "support": t["support"] if t else 0, "fp": t["fp"] if t else 0})
            elif only_false_positives(t):
                groups.append({"empty": False, "fp_only": True, **t})
            else:
                groups.append({"empty": False, **t})
        fa = metrics["all"]["per_tag"][tag]
        fe = metrics["excluding_adversarial"]["per_tag"][tag]
        scored = [not g["empty"] and not g.get("fp_only") for g in groups]
        d = fe["f1"] - fa["f1"] if scored[0] and scored[1] else None
        rows.append({"tag": tag, "anchor": anchor("tag", tag), "groups": groups, "delta": d})
    return rows


def example(d, e: ErrorRecord) -> dict:
    p = d.run.predictions[e.entry]
    pl = pred_line(p, e.tag)
    return {
        "id": p["id"],
        "tag": e.tag,
        "file": p.get("file") or "",
        "country": p.get("country") or "",
        "ckey": p.get("country") or "(none)",
        "adv": bool(d.view_mask["adversarial_only"][e.entry]),
        "kind": e.kind,
        "primary": e.primary,
        "cats": list(e.categories),
        "other_tag": e.other_tag,
        "gold": e.gold,
        "pred": e.pred,
        "notes": p.get("notes") or "",
        "gold_line": gold_line(p["raw"], e.gold),
        "pred_line": pl,
        "truncated": bool(p.get("truncated")),
        "hidden": has_hidden(p["raw"], e.gold, e.pred),
    }


def sample_rows(errs: list[ErrorRecord], cap: int, masks: dict) -> list[ErrorRecord]:
    """Up to `cap` examples spread over the errors; then each view that has fewer than
    min(cap // 4, its errors) of them is topped up from its own errors, so the view filter shows
    examples wherever its counts are not zero (adversarial rows are a small share of a spread).
    A quarter, not `cap`: topped up to 20, the v0.4.0-size report had 1302 example rows, not 948;
    to 5, 1034."""
    groups = [[i for i, e in enumerate(errs) if masks[view][e.entry]] for view in ("excluding_adversarial", "adversarial_only")]
    return [errs[i] for i in top_up(set(spread(range(len(errs)), cap)), groups, max(1, cap // 4))]


def tag_blocks(d, cap: int) -> tuple[list[dict], dict]:
    by_key: dict[tuple[str, str, str], list[ErrorRecord]] = defaultdict(list)
    for e in d.errors:
        by_key[(e.tag, e.kind, e.primary)].append(e)
    b_all = d.buckets["all"]
    order = [h["tag"] for h in d.headline] + [t for t in d.tags if t not in {h["tag"] for h in d.headline}]
    filt = {"tag": set(), "cats": set(), "file": set(), "country": set()}
    blocks = []
    shown_total = 0
    for tag in order:
        kinds = []
        for kind in ("FN", "FP"):
            b = b_all[tag][kind]
            per_view = {v: d.buckets[v][tag][kind] for v in VIEWS}
            sections = []
            for i, cat in enumerate(b["primary"]):
                errs = by_key.get((tag, kind, cat), [])
                rows = [example(d, e) for e in sample_rows(errs, cap, d.view_mask)]
                shown_total += len(rows)
                for r in rows:
                    filt["file"].add(r["file"])
                    filt["country"].add(r["ckey"])
                    filt["cats"].update(r["cats"])
                counts = []
                for v, bv in per_view.items():
                    n = bv["primary"].get(cat, 0)
                    counts.append({"view": VIEW_KEYS[v], "count": n, "share": n / bv["total"] if bv["total"] else 0,
                                   "more": n - shown_in_view(rows, v)})
                sections.append({
                    "cat": cat,
                    "counts": counts,
                    "color": CATEGORY_COLORS.get(cat, FALLBACK_COLOR),
                    "anchor": anchor("ex", tag, kind, cat),
                    "rows": rows,
                    "open": i == 0,
                })
            hrefs = {s["cat"]: "#" + s["anchor"] for s in sections}
            kinds.append({
                "kind": kind,
                "total": b["total"],
                "views": [
                    {
                        "view": VIEW_KEYS[v],
                        "total": bv["total"],
                        "bar": bar(bv["primary"], bv["total"], 560, hrefs),
                        "secondary": bv["secondary"],
                        "num_confused_with": bv["num_confused_with"],
                    }
                    for v, bv in per_view.items()
                ],
                "sections": sections,
            })
        if any(k["total"] for k in kinds):
            filt["tag"].add(tag)
        metrics = []
        for v in VIEWS:
            t = d.metrics[v]["per_tag"].get(tag) or {"support": 0}
            metrics.append({"view": VIEW_KEYS[v], "measured": tag_measured(t), "fp_only": only_false_positives(t), **t})
        blocks.append({"tag": tag, "anchor": anchor("tag", tag), "kinds": kinds, "metrics": metrics,
                       "errors": sum(k["total"] for k in kinds)})
    filters = {
        "tag": [t for t in order if t in filt["tag"]],
        # dict.fromkeys: non_latin is a flag under the mweval scheme and primary under upstream's (listed once)
        "cats": [c for c in dict.fromkeys((*d.categories, *FLAGS)) if c in filt["cats"]] + sorted(filt["cats"] - set(d.categories) - set(FLAGS)),
        "file": sorted(filt["file"]),
        "country": sorted(filt["country"]),
        "shown": shown_total,
    }
    return blocks, filters


def audit(meta: dict) -> dict:
    a = meta.get("audit") or {}
    return {
        "outside": a.get("gold_tags_outside_labels") or {},
        "not_in_raw": a.get("values_not_in_raw", 0),
        "case_only": a.get("values_case_only_in_raw", 0),  # in raw, in another letter case only
        "absent": a.get("values_not_in_raw", 0) - a.get("values_case_only_in_raw", 0),  # not in raw in any case
        "not_in_raw_examples": a.get("values_not_in_raw_examples") or [],
        "unreachable": a.get("unreachable_under_profile", 0),
        "unreachable_examples": a.get("unreachable_examples") or [],
        "duplicates": a.get("duplicate_rows", 0),
        "manifest": a.get("manifest") or (meta.get("golden") or {}).get("manifest") or {},
        "profile": (meta.get("profile") or {}).get("name", "?"),
    }


def diagnose_context(d, csv_name: str, cap: int = EXAMPLE_CAP) -> dict:
    meta = d.run.meta
    blocks, filters = tag_blocks(d, cap)
    categories = list(d.categories)
    rules = RULES[d.scheme]
    cats_for_rules = categories + [c for c in rules if c not in categories]
    n_adv = int(d.view_mask["adversarial_only"].sum())
    focus = f"filtered to {len(d.tags)} of {len(d.run.tags)} tags: {', '.join(d.tags)}" if d.filtered else ""
    return {
        "title": f"{d.run.label} on {meta.get('golden', {}).get('name', '?')}" + (f" ({', '.join(d.tags)})" if d.filtered else "")
                 + " — mweval diagnose",
        "heading": d.run.label,
        "subheading": f"on {meta.get('golden', {}).get('name', '?')} · profile {d.run.profile.name} · buckets {d.scheme}"
                      + (f" · {focus}" if focus else ""),
        "focus": focus,
        "n_tags": len(d.run.tags),
        "provenance": provenance(meta, d.scheme, d.adversarial_mode),
        "profile_name": d.run.profile.name,
        "profile_description": (meta.get("profile") or {}).get("description", ""),
        "warnings": warning_items(d.warnings),
        "headline": [
            {**h, "anchor": anchor("tag", h["tag"]), "f1": d.metrics["all"]["per_tag"][h["tag"]]["f1"],
             "fp_only": only_false_positives(d.metrics["all"]["per_tag"][h["tag"]]),
             "fn_color": CATEGORY_COLORS.get((h.get("fn_top") or {}).get("category"), FALLBACK_COLOR),
             "fp_color": CATEGORY_COLORS.get((h.get("fp_top") or {}).get("category"), FALLBACK_COLOR),
             "fn_href": "#" + anchor("ex", h["tag"], "FN", h["fn_top"]["category"]) if h.get("fn_top") else None,
             "fp_href": "#" + anchor("ex", h["tag"], "FP", h["fp_top"]["category"]) if h.get("fp_top") else None}
            for h in d.headline
        ],
        "numbers": headline_numbers(d.metrics),
        "view_titles": [VIEW_TITLES[v] for v in VIEWS],
        "per_tag": per_tag_rows(d.metrics, d.tags),
        "blocks": blocks,
        "filters": filters,
        "n_errors": [{"view": VIEW_KEYS[v], "count": sum(b[k]["total"] for b in d.buckets[v].values() for k in b)} for v in VIEWS],
        "cap": cap,
        # sample_rows tops a view the spread leaves short up to this many; the spread's `cap` rows cannot leave
        # both views short, so a section shows at most cap + topup rows
        "topup": max(1, cap // 4),
        "csv_name": csv_name,
        "csv_href": quote(csv_name),
        "audit": audit(meta),
        "rules": [{"cat": c, "rule": rules[c], "color": CATEGORY_COLORS.get(c, FALLBACK_COLOR)} for c in cats_for_rules if c in rules],
        "scheme": d.scheme,
        "adversarial": {"mode": d.adversarial_mode, "definition": ADVERSARIAL_DEFINITIONS.get(d.adversarial_mode, d.adversarial_mode), "count": n_adv,
                        "entries": len(d.run.predictions)},
        "colors": CATEGORY_COLORS,
        "version": __version__,
        "run_path": str(d.run.path),
        "low_conf": LOW_CONFIDENCE,
    }


def render_diagnose_html(d, csv_name: str, cap: int = EXAMPLE_CAP) -> str:
    return environment().get_template("diagnose.html.j2").render(**diagnose_context(d, csv_name, cap))


def render_diagnose(d, path, csv_name: str) -> None:
    """Write the diagnose report for `d` to `path` (atomically); `csv_name` is the error table
    written beside it, linked relatively for the examples beyond the cap."""
    atomic_write_text(Path(path), render_diagnose_html(d, csv_name))
