"""Render a diagnosis or a comparison as ONE self-contained offline HTML file (sweep.py renders its page
with the same jinja2 environment and safety rules).

Safety rules (golden rows and model output are untrusted text):
- jinja2 autoescaping is on for every template; nothing from a golden row or the model is ever
  marked `|safe`. Highlighting is done here by splitting the raw string at char offsets into
  plain-text segments; the templates escape each segment.
- Raw strings sit in `<bdi>` (plus CSS `unicode-bidi: isolate`), so a row cannot reorder the
  rest of the page.
- Display only: C0 control chars (U+0000–U+001F except tab and newline) and DEL are shown as
  their Control Pictures (U+2400 + code, U+2421 for DEL), lone surrogates as U+FFFD, and the
  invisible chars that make two values look alike or reorder what follows them (`HIDDEN`: bidi
  controls and marks, zero-width space, word joiner, BOM, soft hyphen, tag chars …) as U+25CC ◌, so gold
  "Main St" + U+202E + "evil.exe" no longer shows as "Main St exe.live", nor "12" + U+200B + "3"
  as "123". ZWJ and ZWNJ stay: they join emoji and shape Arabic and Indic script. The mapping
  is one char to one char, so offsets are unchanged; it is applied to every rendered value by
  the environment's `finalize` (data attributes included, so a highlighted element's text
  still equals its `data-value`). The CSV beside the report keeps the exact text.
- No external resources: inline CSS, a small inline script, inline SVG.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from mailwoman_eval import __version__
from mailwoman_eval.buckets import RULES, ErrorRecord
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
from mailwoman_eval.metrics import VIEWS, only_false_positives, tag_measured
from mailwoman_eval.run import OOD_PREFIX

TEMPLATES = Path(__file__).resolve().parent / "templates"

EXAMPLE_CAP = 20  # example rows per tag × kind × primary category; the rest are in the CSV
LOW_CONFIDENCE = 0.5  # pieces whose chosen-label probability is below this are marked

VIEW_TITLES = {"all": "all", "excluding_adversarial": "excl. adversarial", "adversarial_only": "adversarial only"}

# Fixed color per category (both schemes), so the same category looks the same in every report.
CATEGORY_COLORS = {
    "empty_pred": "#d1495b",
    "hallucinated": "#ed8b3a",
    "case_only": "#e9c46a",
    "bio_slip": "#3d7ecb",
    "num_confused": "#8e6bbf",
    "other": "#8d99a6",
    "non_latin": "#2a9d8f",
    "gold_unreachable": "#6d597a",
}
FALLBACK_COLOR = "#5c6773"
FLAGS = ("non_latin", "gold_unreachable")  # categories that are never primary, after the primary ones

ADVERSARIAL_DEFINITIONS = {
    "default": "rows of adversarial.jsonl, and rows whose notes start with “kryptonite/” or “graceful/”",
    "non-latin": "rows of adversarial.jsonl, rows whose notes start with “kryptonite/” or “graceful/”, "
    "and rows whose raw text has letters of a non-Latin script",
}

# --- display-only text mapping (see module docstring) ----------------------------------------
_DISPLAY = {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A)}
_DISPLAY[0x7F] = 0x2421
_DISPLAY.update({c: 0xFFFD for c in range(0xD800, 0xE000)})
# Unicode's format chars (category Cf) that render as nothing or reorder text: soft hyphen, bidi
# marks, embeddings, overrides and isolates, zero-width space, word joiner, invisible operators,
# deprecated format chars, BOM, interlinear annotation, Egyptian/shorthand/musical format
# controls, and the tag chars that can carry a whole invisible string; plus the other default-
# ignorable chars that render blank (combining grapheme joiner, Hangul fillers, Khmer inherent
# vowels). Kept: ZWNJ/ZWJ (they shape scripts and join emoji), the prepended concatenation marks
# (visible), variation selectors (they pick emoji and CJK forms). tests/test_report_html.py checks
# every Cf char is one or the other.
HIDDEN = (
    0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x200B, 0x200E, 0x200F, *range(0x202A, 0x202F),
    *range(0x2060, 0x2065), *range(0x2066, 0x2070), 0x3164, 0xFEFF, 0xFFA0, *range(0xFFF9, 0xFFFC), *range(0x13430, 0x13439),
    *range(0x1BCA0, 0x1BCA4), *range(0x1D173, 0x1D17B), 0xE0001, *range(0xE0020, 0xE0080),
)  # fmt: skip
KEPT_FORMAT = (0x200C, 0x200D, *range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD)
_DISPLAY.update(dict.fromkeys(HIDDEN, 0x25CC))
_HIDDEN_CHARS = re.compile("[" + "".join(map(chr, HIDDEN)) + "]")


def has_hidden(*texts: str | None) -> bool:
    """Some text holds a char `display` shows as ◌ (the row's "hidden" chip)."""
    return any(t and _HIDDEN_CHARS.search(t) for t in texts)


def display(text: str) -> str:
    """Control chars as Control Pictures, lone surrogates as U+FFFD, `HIDDEN` chars as ◌; same length."""
    return text.translate(_DISPLAY)


def _finalize(value):
    if isinstance(value, str) and not isinstance(value, Markup):
        return display(value)
    return value


# --- formatting filters ------------------------------------------------------------------------


def pct(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x * 100:.{digits}f}"


def signed_pp(x, digits: int = 1) -> str:
    if x is None:
        return "—"
    v = x * 100
    if round(v, digits) == 0:
        return f"{0:.{digits}f}"
    return f"{v:+.{digits}f}".replace("-", "−")


def delta_class(x, eps: float = 0.0005) -> str:
    if x is None or abs(x) < eps:
        return "d0"
    return "dpos" if x > 0 else "dneg"


def heat(f1) -> str:
    """Background tint for an F1 cell: red (0) → amber → green (1)."""
    if f1 is None:
        return ""
    hue = int(round(max(0.0, min(1.0, f1)) ** 2 * 125))
    return f"background:hsl({hue} 70% 93%)"


def short(sha: str | None, n: int = 12) -> str:
    return (sha or "")[:n]


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True, default=True),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(pct=pct, spp=signed_pp, dclass=delta_class, heat=heat, short=short)
    return env


# --- text segmentation -------------------------------------------------------------------------


def find_span(raw: str, value: str) -> tuple[int, int, bool] | None:
    """Where `value` sits in `raw`: exact `raw.find`, else a case-insensitive search.

    Returns (start, end, case_insensitive) in Python char offsets, or None when absent. The
    case-insensitive fallback uses a regex over `raw` itself, so offsets stay right even where
    `str.lower()` would change the length (e.g. "İ").
    """
    if not value:
        return None
    i = raw.find(value)
    if i >= 0:
        return i, i + len(value), False
    m = re.search(re.escape(value), raw, re.IGNORECASE)
    if m and m.end() > m.start():
        return m.start(), m.end(), True
    return None


def gold_line(raw: str, gold: str) -> dict:
    span = find_span(raw, gold)
    if span is None:
        return {"pre": raw, "hl": None, "post": "", "ci": False}
    a, b, ci = span
    return {"pre": raw[:a], "hl": raw[a:b], "post": raw[b:], "ci": ci}


def pred_line(p: dict, tag: str) -> dict:
    """The raw string split at piece boundaries and at the predicted span of `tag`.

    Returns {pre, hl, post} lists of (text, title, cls) runs (hl is None without a prediction)
    and `value`, the exact text of the highlighted part. Each run is the part of one piece (or
    of uncovered text) on one side of the highlight; zero-width pieces (byte fallback) are
    listed in the title of the run holding their position.
    """
    raw = p["raw"]
    n = len(raw)
    pieces, spans, labels, conf = p.get("pieces") or [], p.get("spans") or [], p.get("labels") or [], p.get("conf") or []
    pr = p["pred"].get(tag)
    start = end = None
    if pr and pr.get("value"):
        s, e = pr.get("start"), pr.get("end")
        if isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= n and raw[s:e] == pr["value"]:
            start, end = s, e
        else:  # a prediction whose offsets do not match its value: locate it instead
            found = find_span(raw, pr["value"])
            if found and not found[2]:
                start, end = found[0], found[1]
    owner = [-1] * n
    zero_at: dict[int, list[int]] = defaultdict(list)
    for k, span in enumerate(spans[: len(labels)]):
        a, b = max(0, span[0]), min(n, span[1])
        if b > a:
            for c in range(a, b):
                owner[c] = k
        else:
            zero_at[min(a, n - 1)].append(k)

    def info(k: int) -> str:
        lab = labels[k] if k < len(labels) else "?"
        cf = conf[k] if k < len(conf) else None
        return f"{pieces[k] if k < len(pieces) else '?'} → {lab}" + (f" p={cf:.2f}" if cf is not None else "")

    def cls(k: int) -> str:
        if k < 0 or k >= len(labels):
            return "u"
        lab = labels[k]
        c = "o" if lab == "O" else ("b" if lab.startswith("B-") else "i")
        if lab[2:] == tag:
            c += " m"
        if k < len(conf) and conf[k] < LOW_CONFIDENCE:
            c += " lc"
        return c

    out: dict[str, list] = {"pre": [], "hl": [], "post": []}
    i = 0
    while i < n:
        k = owner[i]
        region = "pre" if start is None or i < start else ("hl" if i < end else "post")
        j = i + 1
        limit = n if start is None else (start if i < start else (end if i < end else n))
        while j < limit and owner[j] == k:
            j += 1
        ks = ([k] if k >= 0 else []) + [z for pos in range(i, j) for z in zero_at.get(pos, ())]
        ks = sorted(set(ks))
        title = "\n".join(info(x) for x in ks) if ks else ""
        out[region].append((raw[i:j], title, cls(k)))
        i = j
    value = raw[start:end] if start is not None else None
    return {
        "pre": out["pre"],
        "hl": out["hl"] if start is not None else None,
        "post": out["post"],
        "value": value,
        "confidence": pr.get("confidence") if pr else None,
    }


# --- view models -------------------------------------------------------------------------------


def anchor(prefix: str, *parts: str) -> str:
    return "-".join([prefix] + [re.sub(r"[^A-Za-z0-9_]", "_", x) for x in parts])


def provenance(meta: dict, scheme: str | None = None, adversarial_mode: str | None = None) -> list[dict]:
    """Key/value items of the header (reusable by other reports): {key, value, title, mono}."""
    ck = meta.get("checkpoint", {})
    gd = meta.get("golden", {})
    pf = meta.get("profile", {})
    dc = meta.get("decode", {})
    tk = meta.get("tokenizer", {})
    man = (gd.get("manifest") or {}).get("status", "?")
    items = [
        {"key": "checkpoint", "value": f"{ck.get('name', '?')}", "title": ck.get("path", "")},
        {"key": "kind / format", "value": " · ".join(str(x) for x in (ck.get("kind"), ck.get("format"), "int8" if ck.get("int8") else None) if x)},
        {"key": "checkpoint sha256", "value": short(ck.get("sha256")), "title": ck.get("sha256", ""), "mono": True},
        {"key": "labels", "value": f"{len(ck.get('labels') or [])} from {ck.get('labels_source', '?')}"},
        {"key": "golden", "value": f"{gd.get('name', '?')} · {gd.get('rows', '?')} rows · {len(gd.get('files') or {})} files · MANIFEST {man}", "title": gd.get("path", "")},
        {"key": "golden sha256", "value": short(gd.get("sha256")), "title": gd.get("sha256", ""), "mono": True},
        {"key": "tokenizer sha256", "value": short(tk.get("sha256")), "title": f"{tk.get('sha256', '')} ({tk.get('source', '')}) {tk.get('path', '')}", "mono": True,
         "cmp": tk.get("sha256")},  # two runs share a tokenizer when the bytes match, wherever it lies
        {"key": "profile", "value": pf.get("name", "?"), "title": pf.get("description", "")},
        {"key": "decode", "value": f"transitions {dc.get('transitions', '?')} · padding {dc.get('padding', '?')} · max {dc.get('max_length', '?')} pieces"},
    ]
    if scheme:
        items.append({"key": "bucket scheme", "value": scheme})
    if adversarial_mode:
        items.append({"key": "adversarial", "value": adversarial_mode, "title": ADVERSARIAL_DEFINITIONS.get(adversarial_mode, "")})
    items.append({"key": "mweval", "value": f"{meta.get('mweval_version', '?')} (run) · {__version__} (report)" + commit_text(meta.get("mweval_git_commit")),
                  "title": meta.get("mweval_git_commit") or ""})
    # No timestamp here: a report of the same inputs is byte-identical (timings stay in run.json).
    return items


def commit_text(commit: str | None) -> str:
    """" · <10 hex>" of the commit the run was made with, keeping run.py's "-dirty" mark (the
    package had uncommitted changes)."""
    if not commit:
        return ""
    return f" · {commit[:10]}" + ("-dirty" if commit.endswith("-dirty") else "")


def warning_items(warnings: list[str]) -> list[dict]:
    return [{"text": w, "loud": w.startswith(OOD_PREFIX)} for w in warnings or []]


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


def bar(counts: dict[str, int], total: int, width: int, href: dict[str, str] | None = None) -> dict:
    """A stacked horizontal bar: segments in the given (count-descending) order."""
    segs, x = [], 0.0
    for cat, n in counts.items():
        w = width * n / total if total else 0
        segs.append({
            "cat": cat,
            "count": n,
            "share": n / total if total else 0,
            "x": round(x, 2),
            "w": round(w, 2),
            "color": CATEGORY_COLORS.get(cat, FALLBACK_COLOR),
            "href": (href or {}).get(cat),
        })
        x += w
    return {"segments": segs, "total": total, "width": width}


def spread(items: list, cap: int) -> list:
    """Up to `cap` items evenly spaced over the list (deterministic; covers every file)."""
    n = len(items)
    if n <= cap:
        return list(items)
    return [items[i * n // cap] for i in range(cap)]


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


# the view filter's <select> values; every per-view count in the page carries one as data-view
VIEW_KEYS = {"all": "", "excluding_adversarial": "0", "adversarial_only": "1"}


def shown_in_view(rows: list[dict], view: str) -> int:
    """How many of the example rows (each with its `adv` flag) the view filter shows for `view`."""
    return sum(1 for r in rows if view == "all" or r["adv"] == (view == "adversarial_only"))


def top_up(chosen: set[int], groups: list[list[int]], want: int) -> list[int]:
    """`chosen` indices plus, for each group (the indices one view shows) holding fewer than
    min(want, its size) of them, more of its own, spread over it; sorted."""
    chosen = set(chosen)
    for group in groups:
        need = min(want, len(group))
        have = sum(1 for i in group if i in chosen)
        for i in spread(group, need):
            if have >= need:
                break
            if i not in chosen:
                chosen.add(i)
                have += 1
    return sorted(chosen)


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
        "cats": [c for c in (*d.categories, *FLAGS) if c in filt["cats"]] + sorted(filt["cats"] - set(d.categories) - set(FLAGS)),
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


# =============================================================================================
# `mweval compare` report: the same layout, CSS and macros; view model built from the
# `compare()` result dict plus the two runs (for provenance and the predicted spans).

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
