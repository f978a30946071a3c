"""What the report pages share: the jinja2 `environment()` (templates/, autoescaped, with the
formatting filters), the display-only text mapping, the split of a raw string at a value's span for
highlighting, the provenance header, the warnings banner, the category colours, the stacked bar and
the spread of example rows. diagnose_page.py and compare_page.py build their view models from
these; sweep_page.py renders its page with the same environment and safety rules.

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

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from mailwoman_eval import __version__
from mailwoman_eval.run import OOD_PREFIX

TEMPLATES = Path(__file__).resolve().parent / "templates"

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


def missing(x) -> bool:
    """No number to show: None, or NaN (a cell a reader sees as "—", not "+nan" tinted green)."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x, digits: int = 1) -> str:
    if missing(x):
        return "—"
    return f"{x * 100:.{digits}f}"


def signed_pp(x, digits: int = 1) -> str:
    if missing(x):
        return "—"
    v = x * 100
    if round(v, digits) == 0:
        return f"{0:.{digits}f}"
    return f"{v:+.{digits}f}".replace("-", "−")


def delta_class(x, eps: float = 0.0005) -> str:
    if missing(x) or abs(x) < eps:
        return "d0"
    return "dpos" if x > 0 else "dneg"


def heat(f1) -> str:
    """Background tint for an F1 cell: red (0) → amber → green (1)."""
    if missing(f1):
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
