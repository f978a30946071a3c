"""Profiles: the named set of choices that turn logits into scored components.

design.md Decisions, "Profiles". Every run records its profile; compare/gate refuse to mix them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mailwoman_eval.errors import MwevalError


@dataclass(frozen=True)
class Profile:
    name: str
    transitions: str  # "python-masked" (upstream crf.py) | "structural" (TS viterbi.ts)
    no_crf: str  # what to do without learned transitions: "argmax" | "structural"
    spans: str  # "strip" (eval.py decode_components) | "trim-boundary" (V040 trimBoundary)
    compare: str  # "exact" (case-sensitive, stripped) | "casefold" (strip + lower)
    description: str

    def to_json(self) -> dict:
        return asdict(self)

    def same(self, pred: str, gold: str) -> bool:
        if self.compare == "exact":
            return pred.strip() == gold.strip()
        return pred.strip().lower() == gold.strip().lower()


UPSTREAM_EVAL = Profile(
    name="upstream-eval",
    transitions="python-masked",
    no_crf="argmax",
    spans="strip",
    compare="exact",
    description=(
        "upstream eval.py: learned CRF Viterbi with crf.py's -inf masks (start mask added, end unmasked), "
        "argmax without a CRF; first span per tag, whitespace strip only; case-sensitive match"
    ),
)

RUNTIME = Profile(
    name="runtime",
    transitions="structural",
    no_crf="structural",
    spans="trim-boundary",
    compare="casefold",
    description=(
        "V040 shipped decoder: Viterbi with the structural BIO mask (-1e9) plus learned/sidecar transitions "
        "(learned start without the start mask, learned end), trimBoundary spans (per UTF-16 code unit), "
        "first surviving span per tag in text order (not the TS tree DFS); trimmed case-insensitive match"
    ),
)

PROFILES = {p.name: p for p in (RUNTIME, UPSTREAM_EVAL)}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise MwevalError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
