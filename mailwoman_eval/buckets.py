"""Error categories for each false positive / false negative of each tag.

Two named schemes (design.md Decisions, upstream-formats.md §8 and §10.2):
- `upstream`: diagnose_regression.py exactly — errors by case-sensitive `p != g` after strip,
  one category, first match wins: non_latin (any char > U+007F in raw) → empty_pred → case_only
  → bio_slip (substring either way, or pred minus edge `[^\\w]+` == gold) → num_confused
  (postcode only, both digits after removing '-') → other.
- `default`: errors by the run's profile comparison (so counts match the metrics table); a
  primary category by precedence empty_pred → hallucinated → case_only → bio_slip → num_confused
  → other, plus every category the error qualifies for; `non_latin` is script-based and only a
  flag (never primary), as is `gold_unreachable` (the gold value cannot be predicted under the profile).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import regex

from mailwoman_eval.decode import trim_boundary
from mailwoman_eval.golden import has_non_latin_letters
from mailwoman_eval.profiles import Profile

SCHEMES = ("default", "upstream")
DEFAULT_CATEGORIES = ("empty_pred", "hallucinated", "case_only", "bio_slip", "num_confused", "other")
UPSTREAM_CATEGORIES = ("non_latin", "empty_pred", "case_only", "bio_slip", "num_confused", "other")

RULES = {
    "default": {
        "empty_pred": "False negative with nothing predicted for the tag.",
        "hallucinated": "False positive where the gold has no value for the tag.",
        "case_only": "Prediction and gold differ only in letter case (an error only under the case-sensitive upstream-eval profile).",
        "bio_slip": "Prediction and gold differ only by leading/trailing punctuation (any char that is not a letter, combining mark or number), or by whole whitespace-separated words added or missing at either end or both: the shorter value's words are a run of the longer one's, punctuation differing only on the outer sides of that run (compared case-folded under a case-insensitive profile).",
        "num_confused": "Both values are numeric after removing spaces and '-', or a numeric gold value was taken by another tag (FN) / a numeric prediction is another tag's gold value (FP); the other tag is recorded.",
        "other": "None of the above: a different value.",
        "non_latin": "Flag, never primary: the raw text has letters of a script other than Latin/Common/Inherited (Unicode script property), so accented French is Latin.",
        "gold_unreachable": "Flag, never primary: no prediction can equal this gold value under the profile (listed in the golden audit with the reason; e.g. runtime always trims a trailing '.', so gold 'U.S.A.' is never matched). The error is the instrument's, not the model's.",
    },
    "upstream": {
        "non_latin": "Any char of raw with code point > 127 (really non-ASCII: accented French lands here). Checked first.",
        "empty_pred": "Nothing predicted and a gold value exists.",
        "case_only": "pred.lower() == gold.lower() and pred != gold.",
        "bio_slip": "One is a substring of the other (and they differ), or pred with leading/trailing [^\\w]+ removed equals gold.",
        "num_confused": "Tag is postcode and both pred and gold are digits once '-' is removed.",
        "other": "None of the above (a FP with empty gold lands here or in non_latin).",
    },
}

# design.md's "punctuation" at a value's edge: whitespace, punctuation and symbols ("#12", "№12",
# "+Paris" as ASCII's string.punctuation has "#+$|"), not combining marks: a word that lost its
# final virama or a combining accent is another spelling, not a boundary slip
_EDGE_PUNCT = regex.compile(r"^[^\p{L}\p{M}\p{N}]+|[^\p{L}\p{M}\p{N}]+$")
_UPSTREAM_EDGE = re.compile(r"^[^\w]+|[^\w]+$")  # Python `re` on str: \w is Unicode-aware, as upstream


def unreachable_reason(value: str, raw: str, profile: Profile) -> str | None:
    """Why no prediction can ever equal this gold value under the profile, or None. Predictions
    are spans of raw: under upstream-eval (exact) a value must be in raw as written; under runtime
    (case-folded) in raw in any case, and unchanged by trimBoundary, which always trims
    leading/trailing non-word chars ("U.S.A." -> "U.S.A"). The audit lists these values, and the
    errors on them carry the `gold_unreachable` flag."""
    v = value.strip()
    if not v:  # counted as a gold value (upstream-formats §10.1), but no predicted span strips to ""
        return "only whitespace"
    if profile.compare == "exact":
        if v in raw:
            return None
        return "case differs from raw" if v.lower() in raw.lower() else "not in raw"
    if v.lower() not in raw.lower():
        return "not in raw"
    if trim_boundary(v, 0, len(v)) != (0, len(v)):
        return "leading/trailing non-word chars are always trimmed"
    return None


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    entry: int  # index into the run's predictions
    tag: str
    kind: str  # "FP" | "FN"
    gold: str  # stripped
    pred: str  # stripped
    primary: str
    categories: tuple[str, ...]
    other_tag: str | None = None  # num_confused: the tag that took the gold value / whose gold was taken


def _numeric(x: str) -> bool:
    y = re.sub(r"[\s-]", "", x)
    return bool(y) and y.isdecimal()


def _num_norm(x: str) -> str:
    return re.sub(r"[\s-]", "", x)


def _edge_strip(x: str) -> str:
    return _EDGE_PUNCT.sub("", x)


_LEAD_PUNCT = regex.compile(r"^[^\p{L}\p{M}\p{N}]+")
_TRAIL_PUNCT = regex.compile(r"[^\p{L}\p{M}\p{N}]+$")


def _token_matches(short: str, long: str, lead: bool, trail: bool) -> bool:
    """Tokens equal, except for punctuation on an outer side of the shared words: where the added
    words join ("Main St" in "Main St, Springfield": "St" matches "St,") or at the value's edge."""
    if lead:
        short, long = _LEAD_PUNCT.sub("", short), _LEAD_PUNCT.sub("", long)
    if trail:
        short, long = _TRAIL_PUNCT.sub("", short), _TRAIL_PUNCT.sub("", long)
    return bool(short) and short == long


def is_bio_slip(pred: str, gold: str, fold: bool) -> bool:
    """design.md: pred and gold differ only by leading/trailing punctuation, or by whole
    whitespace-separated words added/missing at either end (read as either or both: the shorter
    value's words are a contiguous run of the longer's). Punctuation inside the shared words
    ("St. Paul" vs "St Paul") is neither: only the outer sides of the shared words may differ so."""
    if not pred or not gold:
        return False
    p, g = (pred.lower(), gold.lower()) if fold else (pred, gold)
    if p == g:
        return False
    if _edge_strip(p) == _edge_strip(g) and _edge_strip(p):
        return True
    pt, gt = p.split(), g.split()
    short, long = (pt, gt) if len(pt) < len(gt) else (gt, pt)
    n = len(short)
    if n == 0 or n == len(long):
        return False
    return any(
        all(_token_matches(short[j], long[i + j], lead=j == 0, trail=j == n - 1) for j in range(n))
        for i in range(len(long) - n + 1)
    )


def classify_default(
    tag: str,
    kind: str,
    gold: str,
    pred: str,
    raw: str,
    pred_all: Mapping[str, str],
    gold_all: Mapping[str, str],
    fold: bool,
    gold_unreachable: bool = False,
    gold_present: bool | None = None,
) -> tuple[str, tuple[str, ...], str | None]:
    """`gold` is stripped; `gold_present` says whether the entry has a gold value at all (a
    whitespace-only value counts as one, §10.1: the FP then is a wrong value, not a hallucination)."""
    cats: list[str] = []
    other: str | None = None
    if kind == "FN" and not pred:
        cats.append("empty_pred")
    if kind == "FP" and not (bool(gold) if gold_present is None else gold_present):
        cats.append("hallucinated")
    if pred and gold and pred != gold and pred.lower() == gold.lower():
        cats.append("case_only")
    if is_bio_slip(pred, gold, fold):
        cats.append("bio_slip")
    numeric = pred and gold and _numeric(pred) and _numeric(gold)
    if kind == "FN" and gold and _numeric(gold):
        other = next((t for t, v in pred_all.items() if t != tag and v and _num_norm(v) == _num_norm(gold)), None)
    elif kind == "FP" and pred and _numeric(pred):
        other = next((t for t, v in gold_all.items() if t != tag and v and _num_norm(v.strip()) == _num_norm(pred)), None)
    if numeric or other:
        cats.append("num_confused")
    primary = next((c for c in DEFAULT_CATEGORIES if c in cats), "other")
    if not cats:
        cats.append("other")
    if has_non_latin_letters(raw):
        cats.append("non_latin")
    if gold_unreachable:
        cats.append("gold_unreachable")
    return primary, tuple(cats), other


def classify_upstream(raw: str, gold: str, pred: str, tag: str) -> str:
    """diagnose_regression.py `classify_error`, first match wins (upstream-formats.md §10.2)."""
    if any(ord(c) > 127 for c in raw):
        return "non_latin"
    if not pred and gold:
        return "empty_pred"
    if pred and gold and pred.lower() == gold.lower() and pred != gold:
        return "case_only"
    if pred and gold and (pred in gold or gold in pred) and pred != gold:
        return "bio_slip"
    if pred and gold and _UPSTREAM_EDGE.sub("", pred) == gold:
        return "bio_slip"
    if tag == "postcode" and pred and gold and pred.replace("-", "").isdigit() and gold.replace("-", "").isdigit():
        return "num_confused"
    return "other"


def bucket_errors(predictions: Sequence[dict], tags: Sequence[str], profile: Profile, scheme: str = "default") -> list[ErrorRecord]:
    """Every FP and FN of every tag, in entry order then tag order (FP before FN), classified."""
    if scheme not in SCHEMES:
        raise ValueError(scheme)
    fold = profile.compare == "casefold"
    out: list[ErrorRecord] = []
    for i, p in enumerate(predictions):
        gold_all = p["gold"]
        pred_all = {t: c["value"] for t, c in p["pred"].items()}
        for tag in tags:
            g = (gold_all.get(tag) or "").strip()
            pr = (pred_all.get(tag) or "").strip()
            if scheme == "upstream":
                # diagnose_regression.py: gold is the raw components dict; comparison is `p != g`.
                # One category per error (first match wins): its categories are its primary alone.
                if pr and (not g or pr != g):
                    cat = classify_upstream(p["raw"], g, pr, tag)
                    out.append(ErrorRecord(i, tag, "FP", g, pr, cat, (cat,)))
                if g and (not pr or pr != g):
                    cat = classify_upstream(p["raw"], g, pr, tag)
                    out.append(ErrorRecord(i, tag, "FN", g, pr, cat, (cat,)))
                continue
            # default: errors exactly as the metrics count them under the run's profile
            graw = gold_all.get(tag)
            has_g = bool(graw)
            same = has_g and bool(pr) and profile.same(pr, graw)
            lost = has_g and not same and unreachable_reason(graw, p["raw"], profile) is not None
            for kind, cond in (("FP", bool(pr) and not same), ("FN", has_g and not same)):
                if cond:
                    prim, cats, other = classify_default(tag, kind, g, pr, p["raw"], pred_all, gold_all, fold, lost, has_g)
                    out.append(ErrorRecord(i, tag, kind, g, pr, prim, cats, other))
    for e in out:
        if e.primary not in RULES[scheme]:
            raise AssertionError(e)
    return out
