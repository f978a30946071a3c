"""BIO label lists and tag helpers (upstream-formats.md §2)."""

from __future__ import annotations

from collections.abc import Sequence

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
