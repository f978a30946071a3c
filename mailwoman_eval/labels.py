"""BIO label lists and tag helpers (upstream-formats.md §2)."""

from __future__ import annotations

from collections.abc import Sequence

from mailwoman_eval.errors import MwevalError

STAGE2_TAGS = (
    "country",
    "region",
    "locality",
    "dependent_locality",
    "postcode",
    "subregion",
    "cedex",
    "venue",
    "street",
    "house_number",
)


def bio_labels(tags: Sequence[str]) -> list[str]:
    """"O" then B-t, I-t per tag: id(B-t) = 1 + 2k, id(I-t) = 2 + 2k."""
    out = ["O"]
    for t in tags:
        out += [f"B-{t}", f"I-{t}"]
    return out


V040_LABELS = bio_labels(STAGE2_TAGS)  # the 21-label default when a checkpoint carries none


def tag_of(label: str) -> str | None:
    """'B-street' -> 'street'; 'O' or a malformed label -> None."""
    if len(label) > 2 and label[1] == "-" and label[0] in "BI":
        return label[2:]
    return None


def tags_from_labels(labels: Sequence[str]) -> list[str]:
    """Scored tags: the tag of each B-x in label order, first appearance (upstream-formats.md §10.1)."""
    seen: list[str] = []
    for lab in labels:
        if lab.startswith("B-") and lab[2:] not in seen:
            seen.append(lab[2:])
    return seen


def _kind(x: object) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "a boolean"
    if isinstance(x, int | float):
        return "a number"
    if isinstance(x, str):
        return "a string"
    if isinstance(x, dict):
        return "an object"
    if isinstance(x, list | tuple):
        return "an array"
    return type(x).__name__


def _show(label: str) -> str:
    return repr(label if len(label) <= 40 else label[:40] + "…")


def check_labels(labels: object, what: str, where: str | None) -> list[str]:
    """The one check every label-list source goes through (config.json id2label, model-card.json
    `labels`, crf-transitions.json `labels`, --labels): a list of distinct non-empty strings, each
    `O`, `B-<tag>` or `I-<tag>`, with at least one `B-<tag>` (the scored tags are the B- ones).
    Anything else evaluated with exit 0: duplicates scored one tag twice, a list without B- labels
    scored nothing (F1 0). `B-a-b` (a tag with a hyphen) is a well-formed label. `what` names the
    source in the message, `where` is its file."""
    if not isinstance(labels, list | tuple):
        raise MwevalError(f"{what} is {_kind(labels)}, not a list of labels", where=where)
    if not labels:
        raise MwevalError(f"{what} is empty", where=where)
    for i, lab in enumerate(labels):
        if not isinstance(lab, str):
            raise MwevalError(f"{what}: label {i} is {_kind(lab)}, not a string", where=where)
        if lab != "O" and tag_of(lab) is None:
            raise MwevalError(f"{what}: label {i} {_show(lab)} is neither O nor B-<tag> / I-<tag>", where=where)
    seen: set[str] = set()
    dups = [lab for lab in labels if lab in seen or seen.add(lab)]
    if dups:
        shown = list(dict.fromkeys(dups))
        raise MwevalError(f"{what} names {', '.join(map(_show, shown[:6]))}{' …' if len(shown) > 6 else ''} more than once",
                          where=where)
    if not any(lab.startswith("B-") for lab in labels):
        raise MwevalError(f"{what} has no B-<tag> label, so no tag would be scored", where=where)
    return list(labels)
