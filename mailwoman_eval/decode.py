"""Logits -> labels -> components: Viterbi, span building, boundary trim.

Viterbi is hand-written (it is the domain): vectorized over a batch and over labels, a Python
loop only over time steps. Two arithmetic flavours are kept apart on purpose:
- `python-masked` mirrors upstream crf.py in float32 with the same addition order, so ties and
  rounding land where torch puts them (upstream-formats.md §1.6);
- `structural` mirrors the TS viterbi.ts in float64 (JS numbers), strict `>` (first index wins).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mailwoman_eval.labels import tag_of
from mailwoman_eval.profiles import Profile

TS_NEG_INF = -1e9  # viterbi.ts NEG_INF


@dataclass(frozen=True)
class CRFParams:
    """Learned CRF parameters as stored (raw, unmasked), from a checkpoint or a sidecar."""

    source: str  # "learned" (pytorch_model.bin) | "sidecar" (crf-transitions.json)
    transitions: np.ndarray  # (L, L) row = prev, col = curr
    start: np.ndarray  # (L,)
    end: np.ndarray  # (L,)
    transition_mask: np.ndarray | None = None  # the stored crf.transition_mask buffer, if any
    start_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.start.shape[0] if self.start.ndim == 1 else -1  # a scalar start has no shape[0]
        if n < 0 or self.transitions.shape != (n, n) or self.end.shape != (n,):
            raise ValueError(f"CRF parameter shapes disagree (transitions {self.transitions.shape}, start {self.start.shape}, "
                             f"end {self.end.shape}; expected (L, L), (L,), (L,))")


@dataclass(frozen=True)
class Transitions:
    """What Viterbi actually uses, and where it came from (recorded in the run)."""

    source: str  # "learned" | "sidecar" | "structural" | "argmax"
    flavour: str  # "python-masked" | "structural" | "argmax"
    trans: np.ndarray | None
    start: np.ndarray | None
    end: np.ndarray | None


def python_valid(prev: str, curr: str) -> bool:
    """crf.py `_is_valid_transition`: malformed `curr` is invalid."""
    if curr == "O":
        return True
    t = tag_of(curr)
    if t is None:
        return False
    return curr.startswith("B-") or tag_of(prev) == t


def ts_valid(prev: str, curr: str) -> bool:
    """viterbi.ts `buildBIOTransitionMask`: like Python, except a malformed `to` counts as valid."""
    t = tag_of(curr)
    if curr == "O" or t is None or curr.startswith("B-"):
        return True
    return tag_of(prev) == t


def _masks(labels: Sequence[str], valid, neg: float, dtype) -> tuple[np.ndarray, np.ndarray]:
    trans = np.array([[0.0 if valid(p, c) else neg for c in labels] for p in labels], dtype=dtype)
    start = np.array([neg if lab.startswith("I-") else 0.0 for lab in labels], dtype=dtype)
    return trans, start


def python_masks(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """crf.py buffers: -inf on invalid transitions and on starting with I-* (float32, as stored)."""
    return _masks(labels, python_valid, -np.inf, np.float32)


def structural_masks(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """viterbi.ts buildBIOTransitionMask / buildBIOStartMask: -1e9 (JS numbers: float64)."""
    return _masks(labels, ts_valid, TS_NEG_INF, np.float64)


def build_transitions(profile: Profile, labels: Sequence[str], crf: CRFParams | None) -> Transitions:
    """design.md Decisions, profile table, rows 'transitions'."""
    n = len(labels)
    if crf is None:  # no learned transitions anywhere: the profile's `no_crf` choice
        if profile.no_crf == "argmax":
            return Transitions("argmax", "argmax", None, None, None)
        tmask, smask = structural_masks(labels)
        return Transitions("structural", "structural", tmask, smask, np.zeros(n))
    if profile.transitions == "python-masked":
        tmask, smask = python_masks(labels)
        if crf.transition_mask is not None:  # what upstream actually adds: the buffer stored in the .bin
            tmask = crf.transition_mask.astype(np.float32)
        if crf.start_mask is not None:
            smask = crf.start_mask.astype(np.float32)
        return Transitions(
            crf.source,
            "python-masked",
            crf.transitions.astype(np.float32) + tmask,
            crf.start.astype(np.float32) + smask,
            crf.end.astype(np.float32),
        )
    tmask, smask = structural_masks(labels)
    # classifier.ts: transitions = mask + learned; start = learned start WITHOUT the start mask.
    return Transitions(
        crf.source,
        "structural",
        tmask + crf.transitions.astype(np.float64),
        crf.start.astype(np.float64),
        crf.end.astype(np.float64),
    )


def viterbi_batch(emissions: np.ndarray, lengths: np.ndarray, tr: Transitions) -> np.ndarray:
    """Best label path per row. emissions (B, S, L) raw logits; returns (B, S) int, -1 past length."""
    B, S, L = emissions.shape
    path = np.full((B, S), -1, dtype=np.int64)
    if B == 0 or S == 0:
        return path
    if tr.flavour == "argmax":
        am = emissions.argmax(-1)
        valid = np.arange(S)[None, :] < lengths[:, None]
        return np.where(valid, am, -1)
    dtype = np.float32 if tr.flavour == "python-masked" else np.float64
    em = emissions.astype(dtype, copy=False)
    score = tr.start.astype(dtype)[None, :] + em[:, 0]
    active = np.arange(S)[None, :] < lengths[:, None]
    plan = _mask_only_plan(tr) if tr.flavour == "structural" else None
    forward = (plan and _forward_mask_only(em, score, active, plan)) or _forward_dense(em, score, active, tr, dtype)
    score, back = forward
    final = score + tr.end.astype(dtype)[None, :]
    cur = final.argmax(1)
    rows = np.arange(B)
    for t in range(S - 1, -1, -1):
        on = t < lengths
        path[on, t] = cur[on]
        if t > 0:
            cur = np.where(on, back[rows, t, cur], cur)
    return path


def _forward_dense(em: np.ndarray, score: np.ndarray, active: np.ndarray, tr: Transitions, dtype) -> tuple[np.ndarray, np.ndarray]:
    B, S, L = em.shape
    # Candidates are laid out [row, to, from] so the max over `from` runs along contiguous memory
    # (1.5x faster than reducing axis 1); argmax keeps the first best `from` either way.
    trans_t = np.ascontiguousarray(tr.trans.astype(dtype).T)
    back = np.zeros((B, S, L), dtype=np.int16)
    for t in range(1, S):
        if tr.flavour == "python-masked":
            cand = score[:, None, :] + trans_t[None] + em[:, t, :, None]  # crf.py order of additions
        else:
            cand = score[:, None, :] + trans_t[None]  # viterbi.ts: max_j(dp + trans) + e
        best_prev = cand.argmax(2)
        best = np.take_along_axis(cand, best_prev[:, :, None], 2)[:, :, 0]
        if tr.flavour != "python-masked":
            best = best + em[:, t]
        back[:, t] = best_prev
        score = np.where(active[:, t, None], best, score)
    return score, back


def _mask_only_plan(tr: Transitions) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """For transitions that are only the structural mask (0 or -1e9: no learned CRF, e.g. the
    en-us package): the labels any label may precede ("free"), and for each other label the few
    it may follow (I-x: B-x, I-x). None when the transitions are anything else."""
    trans = tr.trans
    if trans is None or not np.all((trans == 0.0) | (trans == TS_NEG_INF)):
        return None
    allowed = trans == 0.0  # [from, to]
    free = np.flatnonzero(allowed.all(0))
    restricted = np.flatnonzero(~allowed.all(0))
    sources = [np.flatnonzero(allowed[:, k]) for k in restricted]
    if any(len(x) == 0 for x in sources) or max((len(x) for x in sources), default=0) > 8:
        return None
    width = max((len(x) for x in sources), default=1)
    # pad by repeating the last source: a repeat comes after the original, so argmax still names it
    src = np.array([list(x) + [x[-1]] * (width - len(x)) for x in sources], dtype=np.int64).reshape(len(restricted), width)
    return free, restricted, src


def _forward_mask_only(em: np.ndarray, score: np.ndarray, active: np.ndarray, plan) -> tuple[np.ndarray, np.ndarray] | None:
    """The structural forward pass in O(L) per step instead of O(L^2), same numbers.

    With a 0/-1e9 mask, a free label's best source is the argmax of the previous scores (adding 0
    changes nothing), and a restricted label's is the best of its allowed sources, provided every
    disallowed source loses even before its -1e9: that is checked at each step (max score - 1e9 <
    the allowed best), and on failure the caller redoes the batch with the dense pass. Ties go to
    the first index, as the dense argmax does."""
    free, restricted, src = plan
    B, S, L = em.shape
    back = np.zeros((B, S, L), dtype=np.int16)
    best = np.empty((B, L), dtype=score.dtype)
    prev = np.empty((B, L), dtype=np.int64)
    r_idx = np.arange(len(restricted))[None, :]
    for t in range(1, S):
        top, top_at = score.max(1), score.argmax(1)
        cand = score[:, src]  # (B, R, width)
        pick = cand.argmax(2)
        allowed_best = np.take_along_axis(cand, pick[:, :, None], 2)[:, :, 0]
        if np.any(top[:, None] + TS_NEG_INF >= allowed_best):
            return None
        best[:, free], prev[:, free] = top[:, None], top_at[:, None]
        best[:, restricted], prev[:, restricted] = allowed_best, src[r_idx, pick]
        back[:, t] = prev
        score = np.where(active[:, t, None], best + em[:, t], score)
    return score, back


class PieceScores(NamedTuple):
    """Per piece of every row (rows joined in order), from one pass over the logits in float64:
    what the argmax shortcut and the confidences need, so neither keeps a float64 copy of all
    the logits."""

    logits: np.ndarray  # (pieces, labels) the rows' logits joined, as the model gave them
    best: np.ndarray  # (pieces,) argmax label (first index on ties)
    top: np.ndarray  # its logit (float64), the row's max
    gap: np.ndarray  # the best logit minus the second best (inf with one label)
    size: np.ndarray  # max |logit|
    total: np.ndarray  # softmax denominator: sum over labels of exp(logit - best logit)
    finite: bool  # every logit is finite


CHUNK_PIECES = 2048


def piece_scores(logits: Sequence[np.ndarray], chunk: int = CHUNK_PIECES) -> PieceScores | None:
    """None when there are no pieces at all.

    Computed `chunk` pieces at a time: the float64 temporaries (0.5 MB) are reused from one chunk
    to the next, where the whole-array version touched ~60 MB of fresh memory per run, and each
    page of it faulted in (cold, en-us: 56-98 ms against 38 ms). Every value is row-wise, so the
    chunking changes no bit (tests/test_properties.py)."""
    if not logits or sum(map(len, logits)) == 0:
        return None
    joined = np.concatenate(logits)
    n = len(joined)
    best = np.empty(n, dtype=np.int64)
    best_logit, gap, size, total = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    finite = True
    for a in range(0, n, chunk):
        v = joined[a : a + chunk].astype(np.float64)
        finite = finite and bool(np.isfinite(v).all())
        at = np.arange(len(v))
        k = v.argmax(1)
        top = v[at, k]  # = the row's max
        best[a : a + chunk], best_logit[a : a + chunk] = k, top
        size[a : a + chunk] = np.maximum(top, -v.min(1))
        v[at, k] = -np.inf  # the second best without a copy (np.partition per row is 5x slower)
        gap[a : a + chunk] = top - v.max(1)
        v[at, k] = top
        v -= top[:, None]
        np.exp(v, out=v)  # after exp(x - max) the best label is exp(0) = 1.0 exactly
        total[a : a + chunk] = v.sum(-1)
    return PieceScores(joined, best, best_logit, gap, size, total, finite)


def label_probabilities(scores: PieceScores, path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probability of the best label and of the `path` label per piece, without dividing
    every label: max(softmax) = 1.0 / total and the chosen label's is exp(z_chosen) / total, the
    same float64 operations on the same operands as softmax-then-pick, so the same bits."""
    chosen_logit = scores.logits[np.arange(len(path)), path].astype(np.float64)
    chosen = np.exp(chosen_logit - scores.top) / scores.total
    return 1.0 / scores.total, chosen


def argmax_paths_if_exact(logits: Sequence[np.ndarray], tr: Transitions, scores: PieceScores | None = None) -> list[np.ndarray | None]:
    """Each row's per-piece argmax where it provably is the Viterbi path, else None (the caller
    runs Viterbi on those rows). Only for structural transitions that are just the 0/-1e9 mask
    (no learned CRF: the en-us package), where ~90% of rows qualify; otherwise all None.

    With such transitions a BIO-valid argmax path scores the sum of the per-piece maxima, and
    every other label at piece t scores at most that sum minus the gap between the best and the
    second-best logit at t (paths through a -1e9 transition lose by ~1e9). Rounding of float64
    running sums (<= 128 additions) stays far below 1e-9 x (1 + the row's sum of max |logit|), so
    a row is taken only when every gap exceeds that. A tie, or a gap rounding can erase (1e-30
    next to 1000), goes to Viterbi, whose first-index rule then decides; tests/test_properties.py
    checks both against viterbi."""
    n = len(logits)
    out: list[np.ndarray | None] = [None] * n
    if n == 0 or tr.flavour != "structural" or _mask_only_plan(tr) is None:
        return out
    start, end = np.asarray(tr.start), np.asarray(tr.end)
    if not (np.all((start == 0.0) | (start == TS_NEG_INF)) and np.all(end == 0.0)) or start.shape[0] < 2:
        return out
    lengths = np.fromiter(map(len, logits), dtype=np.int64, count=n)
    if lengths.sum() == 0:
        return out
    scores = scores or piece_scores(logits)
    best, gap, size = scores.best, scores.gap, scores.size
    row = np.repeat(np.arange(n), lengths)
    tol = 1e-9 * (1.0 + np.bincount(row, weights=size, minlength=n))
    offsets = np.cumsum(lengths) - lengths
    first = np.zeros(len(best), dtype=bool)
    first[offsets[lengths > 0]] = True
    allowed = tr.trans == 0.0
    step_ok = np.where(first, start[best] == 0.0, allowed[np.roll(best, 1), best])
    piece_ok = step_ok & (gap > tol[row])
    bad_rows = np.bincount(row, weights=~piece_ok, minlength=n)
    for i in np.flatnonzero((bad_rows == 0) & (lengths > 0)).tolist():
        out[i] = best[offsets[i] : offsets[i] + lengths[i]]
    return out


def viterbi(emissions: np.ndarray, tr: Transitions) -> np.ndarray:
    """One sequence (S, L) -> (S,) label ids."""
    return viterbi_batch(emissions[None], np.array([emissions.shape[0]]), tr)[0]


# ---------------------------------------------------------------------------------------------
# Spans


class Span(NamedTuple):  # a NamedTuple: built ~70k times per run, 3x cheaper than a frozen dataclass
    tag: str
    first: int  # piece index, inclusive
    last: int  # piece index, inclusive


_LABEL_INFO: dict[str, tuple[str | None, bool]] = {}  # label -> (tag, is B-); labels repeat


def _label_info(lab: str) -> tuple[str | None, bool]:
    info = _LABEL_INFO.get(lab)
    if info is None:
        info = _LABEL_INFO[lab] = (tag_of(lab), lab.startswith("B-"))
    return info


def label_spans(labels: Sequence[str]) -> list[Span]:
    """Open on B-t, or on I-t when the open tag differs (orphan I); extend on I-t; close on O.

    Both eval.py `decode_components` and V040 `emitSpans` group pieces this way.
    """
    spans: list[Span] = []
    tag: str | None = None
    first = 0
    info = _LABEL_INFO
    for i, lab in enumerate(labels):
        t, is_b = info[lab] if lab in info else _label_info(lab)
        if t is None:
            if tag is not None:
                spans.append(Span(tag, first, i - 1))
            tag = None
            continue
        if is_b or t != tag:
            if tag is not None:
                spans.append(Span(tag, first, i - 1))
            tag, first = t, i
    if tag is not None:
        spans.append(Span(tag, first, len(labels) - 1))
    return spans


@functools.lru_cache(maxsize=65536)
def _is_word_unit(ch: str) -> bool:
    """`/[\\p{L}\\p{N}]/u` tested on one UTF-16 code unit: an astral char's surrogates never match."""
    return ord(ch) <= 0xFFFF and unicodedata.category(ch)[0] in "LN"


def trim_boundary(raw: str, start: int, end: int) -> tuple[int, int] | None:
    """V040 `trimBoundary`: advance/retreat past chars that are not a letter or number; None if empty."""
    s, e = start, end
    while s < e and not _is_word_unit(raw[s]):
        s += 1
    while e > s and not _is_word_unit(raw[e - 1]):
        e -= 1
    return (s, e) if s < e else None


def _strip_span(raw: str, start: int, end: int) -> tuple[int, int]:
    s, e = start, end
    while s < e and raw[s].isspace():
        s += 1
    while e > s and raw[e - 1].isspace():
        e -= 1
    return s, e


class Component(NamedTuple):
    tag: str
    value: str
    start: int
    end: int
    confidence: float


def components_from_labels(
    raw: str,
    labels: Sequence[str],
    begin: Sequence[int],
    end: Sequence[int],
    conf: Sequence[float],
    profile: Profile,
) -> dict[str, Component]:
    """First span per tag (upstream-eval) or first surviving trimmed span per tag (runtime)."""
    out: dict[str, Component] = {}
    for sp in label_spans(labels):
        if sp.tag in out:
            continue
        s, e = begin[sp.first], end[sp.last]
        piece_conf = conf[sp.first : sp.last + 1]
        c = float(sum(piece_conf)) / len(piece_conf)  # node confidence = mean over its tokens (§5.2)
        if profile.spans == "strip":
            # eval.py: raw[first.char_begin:last.char_end].strip(); the first span wins even if empty.
            s, e = _strip_span(raw, s, max(s, e))
        else:
            trimmed = trim_boundary(raw, s, max(s, e))
            if trimmed is None:
                continue  # a span that trims to empty is dropped; a later span of the tag may survive
            s, e = trimmed
        out[sp.tag] = Component(sp.tag, raw[s:e], s, e, c)
    return out
