"""Gold labels on pieces, by upstream's alignment rule (upstream-formats.md §3 and §4).

Chars are painted with a tag; each piece takes the tag of the first non-whitespace char of its
span (O when the span is empty or all whitespace), then B/I are recomputed: I-t when the
previous piece has the same tag t, else B-t. So adjacent same-tag entities merge and zero-width
byte-fallback pieces are O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from mailwoman_eval.tokenizer import Encoding


def paint_components(raw: str, components: Mapping[str, str], tags: Iterable[str]) -> list[str | None]:
    """eval.py `golden_to_bio_labels` painting: first occurrence `raw.find(value)`, case-sensitive,
    components in dict order, later ones overwrite; a value not found is skipped."""
    active = tags if isinstance(tags, frozenset | set) else set(tags)
    chars: list[str | None] = [None] * len(raw)
    for tag, value in components.items():
        if tag not in active or not value:
            continue
        i = raw.find(value)
        if i < 0:
            continue
        chars[i : i + len(value)] = [tag] * len(value)
    return chars


def paint_spans(raw: str, spans: Iterable[tuple[str, int, int]]) -> list[str | None]:
    """Paint exact (tag, start, end) char spans (training data knows its spans)."""
    chars: list[str | None] = [None] * len(raw)
    for tag, s, e in spans:
        for k in range(s, e):
            chars[k] = tag
    return chars


def piece_tags(raw: str, enc: Encoding, char_tags: Sequence[str | None], limit: int | None = None) -> list[str | None]:
    n = len(enc) if limit is None else min(limit, len(enc))
    out: list[str | None] = []
    for b, e in zip(enc.begin[:n], enc.end[:n], strict=True):
        span = raw[b:e]
        lead = len(span) - len(span.lstrip())  # str.lstrip() strips exactly the str.isspace() chars
        out.append(char_tags[b + lead] if lead < len(span) else None)
    return out


def bio_from_piece_tags(tags: Sequence[str | None]) -> list[str]:
    out: list[str] = []
    prev: str | None = None
    for t in tags:
        if t is None:
            out.append("O")
        else:
            out.append(f"I-{t}" if prev == t else f"B-{t}")
        prev = t
    return out


def gold_bio(raw: str, components: Mapping[str, str], tags: Iterable[str], enc: Encoding, limit: int | None = None) -> list[str]:
    """Gold BIO label per piece, exactly as upstream eval aligns it: `piece_tags` and
    `bio_from_piece_tags` in one pass (this runs for every entry of every evaluation; pass `tags`
    as a frozenset to skip building one)."""
    chars = paint_components(raw, components, tags)
    n = len(enc) if limit is None else min(limit, len(enc))
    out: list[str] = []
    prev: str | None = None
    for b, e in zip(enc.begin[:n], enc.end[:n], strict=True):
        while b < e and raw[b].isspace():  # what piece_tags' lstrip() skips, without the copies
            b += 1
        t = chars[b] if b < e else None
        if t is None:
            out.append("O")
        else:
            out.append(("I-" if t == prev else "B-") + t)
        prev = t
    return out
