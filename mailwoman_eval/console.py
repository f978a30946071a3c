"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]
    align = align or ("l" + "r" * (len(headers) - 1))
    lines = []
    for n, r in enumerate(cells):
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align, strict=True)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:.4f}"
    return "" if c is None else str(c)


def per_tag_table(view: dict, tags: Sequence[str]) -> str:
    rows = []
    for t in tags:
        m = view["per_tag"][t]
        rows.append([t, m["precision"], m["recall"], m["f1"], m["support"], m["tp"], m["fp"], m["fn"]])
    out = table(["tag", "precision", "recall", "f1", "support", "tp", "fp", "fn"], rows)
    used = len(view["macro_f1_denominator"]["tags"])
    out += (
        f"\nmicro F1 {view['micro']['f1']:.4f}   macro F1 {view['macro_f1']:.4f} (mean over {used} tags with support > 0)"
        f"   exact match {view['exact_match']:.4f}   mean token confidence {view['mean_token_confidence']:.4f}"
        f"   entries {view['entries']}"
    )
    return out
