"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from mailwoman_eval.metrics import only_false_positives, tag_measured

FP_ONLY_LEGEND = "FP-only: no gold value in that view, only false positives (F1 0 measures nothing; not in its macro F1)"


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


def signed(x: float, digits: int) -> str:
    """x with its sign, to `digits` decimals, and no "-0.00": a value that rounds to zero is +0.00."""
    return f"{round(float(x), digits) + 0.0:+.{digits}f}"  # float(): numpy's round differs from Python's at halves


def value_and_threshold(value: float, threshold: float, digits: tuple[int, ...] = (4, 6, 8, 10, 12), scale: float = 1.0,
                        unit: str = "") -> tuple[str, str]:
    """A value and its threshold printed to the fewest of `digits` decimals that do not print them
    equal unless they are ("0.0069 is not ≤ 0.0069" for a drift of 0.006934; a threshold of
    0.8293351 against 0.829335 needs 7 decimals, so the defaults print 8, and digits=(3, ..., 7, 8)
    prints 7)."""
    for d in digits:
        a, b = f"{value * scale:.{d}f}{unit}", f"{threshold * scale:.{d}f}{unit}"
        if a != b or value == threshold:
            break
    return a, b


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:.4f}"
    return "" if c is None else str(c)


def per_tag_table(view: dict, tags: Sequence[str]) -> str:
    """A tag with no gold value and no prediction in the view, or a view with no entries, has
    nothing measured: "—", as the diagnose console and the HTML show it, not a score of 0. A tag
    with predictions and no gold value: its precision (0) is measured, its recall is 0/0 ("—") and
    its F1 "FP-only", as in the diagnose console."""
    rows = []
    for t in tags:
        m = view["per_tag"][t]
        if only_false_positives(m):
            scores = [m["precision"], "—", "FP-only"]
        else:
            scores = [m["precision"], m["recall"], m["f1"]] if tag_measured(m) else ["—"] * 3
        rows.append([t, *scores, m["support"], m["tp"], m["fp"], m["fn"]])
    out = table(["tag", "precision", "recall", "f1", "support", "tp", "fp", "fn"], rows)
    if any(r[3] == "FP-only" for r in rows):
        out += f"\n{FP_ONLY_LEGEND}"
    used = len(view["macro_f1_denominator"]["tags"])

    def num(x: float, measured: bool) -> str:
        return f"{x:.4f}" if measured else "—"

    some = view["entries"] > 0
    out += (
        f"\nmicro F1 {num(view['micro']['f1'], some)}   macro F1 {num(view['macro_f1'], used > 0)} (mean over {used} tags with support > 0)"
        f"\nexact match {num(view['exact_match'], some)}   mean token confidence {num(view['mean_token_confidence'], some)}"
        f"   entries {view['entries']}"
    )
    return out
