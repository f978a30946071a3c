"""Component-level scoring (upstream-formats.md §4, §10.1), per view, from run predictions.

Everything is computed from an outcome matrix: one row per entry, one column per scored tag,
so views, bootstraps and compare are index operations on arrays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mailwoman_eval.labels import tag_of
from mailwoman_eval.profiles import Profile
from mailwoman_eval.stats import prf_from_counts

NONE, TP, FP, FN, WRONG = 0, 1, 2, 3, 4  # WRONG = gold and pred present but different: FP and FN
VIEWS = ("all", "excluding_adversarial", "adversarial_only")


def outcome(gold: str | None, pred: str | None, profile: Profile) -> int:
    """eval.py per-tag rule: TP if same; FP if pred only; FN if gold only; a wrong value is FP and FN."""
    if gold and pred:
        return TP if profile.same(pred, gold) else WRONG
    if pred:
        return FP
    if gold:
        return FN
    return NONE


def outcome_row(
    gold: Mapping[str, str], pred: Mapping[str, str], tags: Sequence[str], profile: Profile, index: Mapping[str, int] | None = None
) -> list[int]:
    """One entry's outcome per tag. `index` (tag -> column, from `tag_index(tags)`) saves
    rebuilding it per entry."""
    # eval.py scores `{k: v for k, v in components.items() if k in ACTIVE_TAGS and v}` (unstripped)
    # against the prediction; outcome() only for the tags either side has (the rest stay NONE)
    index = index if index is not None else tag_index(tags)
    row = [NONE] * len(tags)
    for t in gold.keys() | pred.keys():
        k = index.get(t)
        if k is not None:
            g, p = gold.get(t), pred.get(t)
            if g or p:
                row[k] = outcome(g or None, p or None, profile)
    return row


def tag_index(tags: Sequence[str]) -> dict[str, int]:
    return {t: k for k, t in enumerate(tags)}


def outcome_matrix(rows: Sequence[Sequence[int]], n_tags: int) -> np.ndarray:
    return np.asarray(rows, dtype=np.int8).reshape(len(rows), n_tags)


def counts(out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = (out == TP).sum(0)
    fp = ((out == FP) | (out == WRONG)).sum(0)
    fn = ((out == FN) | (out == WRONG)).sum(0)
    return tp, fp, fn


def prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 as upstream's eval.py computes them (`stats.prf_from_counts`, +1e-9)."""
    return prf_from_counts(tp, fp, fn)


def seqeval_prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """seqeval's precision, recall, F1: exact division, 0 where a denominator is 0 (no 1e-9)."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return p, r, f


def exact_match_vector(out: np.ndarray) -> np.ndarray:
    """§10.1: no FP/FN on any scored tag AND the scored gold is non-empty (so at least one TP)."""
    clean = np.isin(out, (NONE, TP)).all(1)
    return clean & (out == TP).any(1)


@dataclass
class EntryVectors:
    """What a view's numbers are computed from; all arrays are indexed by entry."""

    tags: list[str]
    out: np.ndarray  # (n, T) outcomes
    conf_sum: np.ndarray  # (n,) sum of emission-argmax confidence over decoded pieces
    chosen_sum: np.ndarray  # (n,) sum of chosen-label confidence
    n_pieces: np.ndarray  # (n,) decoded pieces

    def subset(self, idx: np.ndarray) -> EntryVectors:
        return EntryVectors(self.tags, self.out[idx], self.conf_sum[idx], self.chosen_sum[idx], self.n_pieces[idx])


def summarize(v: EntryVectors) -> dict:
    """Per-tag table + micro/macro F1 + exact match + confidences for one view."""
    n = int(v.out.shape[0])
    tp, fp, fn = counts(v.out)
    p, r, f = prf(tp, fp, fn)
    support = tp + fn
    per_tag = {
        t: {
            "tp": int(tp[k]),
            "fp": int(fp[k]),
            "fn": int(fn[k]),
            "support": int(support[k]),
            "precision": round(float(p[k]), 6),
            "recall": round(float(r[k]), 6),
            "f1": round(float(f[k]), 6),
        }
        for k, t in enumerate(v.tags)
    }
    used = [t for k, t in enumerate(v.tags) if support[k] > 0]
    macro = float(np.mean([f[k] for k, t in enumerate(v.tags) if support[k] > 0])) if used else 0.0
    mp, mr, mf = prf(tp.sum(), fp.sum(), fn.sum())
    pieces = int(v.n_pieces.sum())
    return {
        "entries": n,
        "per_tag": per_tag,
        "micro": {"precision": round(float(mp), 6), "recall": round(float(mr), 6), "f1": round(float(mf), 6)},
        "macro_f1": round(macro, 6),
        "macro_f1_denominator": {"rule": "mean over tags with support > 0", "tags": used},
        "exact_match": round(float(exact_match_vector(v.out).sum()) / max(1, n), 6),
        "mean_token_confidence": round(float(v.conf_sum.sum()) / pieces, 6) if pieces else 0.0,
        "mean_chosen_confidence": round(float(v.chosen_sum.sum()) / pieces, 6) if pieces else 0.0,
    }


def tag_measured(stats: dict | None) -> bool:
    """A tag's P/R/F1 in a view (its `per_tag` entry) mean something only with gold values or
    predictions there; otherwise they are 0/0, stored as 0.0, and shown as "—", not as a score of 0."""
    return bool(stats) and bool(stats["support"] or stats["tp"] + stats["fp"])


def only_false_positives(stats: dict | None) -> bool:
    """Predictions of the tag in the view and no gold value: every one a false positive, recall 0/0,
    F1 0 measuring nothing; shown as "FP only", not as a score of 0."""
    return tag_measured(stats) and not stats["support"]


def view_masks(adversarial: np.ndarray) -> dict[str, np.ndarray]:
    return {"all": np.ones_like(adversarial, dtype=bool), "excluding_adversarial": ~adversarial, "adversarial_only": adversarial}


def summarize_views(v: EntryVectors, adversarial: np.ndarray) -> dict[str, dict]:
    return {name: summarize(v.subset(np.flatnonzero(mask))) for name, mask in view_masks(adversarial).items()}


def calibration(conf: np.ndarray, correct: np.ndarray) -> list[dict]:
    """10 equal buckets over emission-argmax confidence; bucket = min(9, int(conf*10)) (§10.1)."""
    idx = np.minimum(9, (conf * 10).astype(np.int64))
    out = []
    for b in range(10):
        m = idx == b
        n = int(m.sum())
        out.append({"low": b / 10, "high": (b + 1) / 10, "n": n, "acc": round(float(correct[m].mean()), 6) if n else None})
    return out


def invalid_bio_transitions(ids: np.ndarray, starts: np.ndarray, labels: Sequence[str]) -> int:
    """I-X not preceded by B-X/I-X of the same entry (or at its start), counted over many label
    paths at once. `ids`: the paths concatenated; `starts`: where each entry begins in `ids`."""
    if len(ids) == 0:
        return 0
    tag = np.array([lab[2:] if lab[:2] in ("B-", "I-") else "" for lab in labels], dtype=object)
    tag_id = np.unique(tag, return_inverse=True)[1]
    is_inside = np.array([lab.startswith("I-") for lab in labels])
    prev = np.concatenate([[-1], tag_id[ids][:-1]])
    prev[starts[starts < len(ids)]] = -1  # an empty last entry starts at len(ids)
    return int((is_inside[ids] & (prev != tag_id[ids])).sum())


def iob2_entities(ids: np.ndarray, labels: Sequence[str], starts: np.ndarray) -> set[tuple[int, str, int, int]]:
    """(entry, tag, start, end) of every entity by seqeval's strict IOB2 rule
    (`seqeval.scheme.Entities(..., IOB2)`), over many label paths at once, in array ops.

    `ids`: label ids of every entry's path, concatenated; `starts`: where each entry begins in
    `ids` (ascending; empty entries repeat the next offset). The rule: an entity opens only on B-x
    and takes the I-x after it, up to the first piece that is not I- of the same tag; an I- that no
    B- opened (orphan) belongs to no entity. So cut the pieces wherever a piece is not an I- of
    the previous piece's tag (or an entry begins): every run that begins with B- is one entity.
    seqeval walks each token in Python (~20 us), which made it the largest scoring cost; it stays
    the oracle in tests/test_properties.py. A label that is not O, B-x or I-x (seqeval raises a
    KeyError on it) opens no entity, as O.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    if n == 0:
        return set()
    lab_tags = [tag_of(lab) for lab in labels]
    tag_names = sorted({t for t in lab_tags if t is not None})
    tag_id = {t: k for k, t in enumerate(tag_names)}
    lab_tag = np.array([-1 if t is None else tag_id[t] for t in lab_tags], dtype=np.int64)
    lab_b = np.array([t is not None and lab[0] == "B" for t, lab in zip(lab_tags, labels, strict=True)], dtype=bool)
    lab_i = np.array([t is not None and lab[0] == "I" for t, lab in zip(lab_tags, labels, strict=True)], dtype=bool)
    tag, is_b = lab_tag[ids], lab_b[ids]
    cont = np.zeros(n, dtype=bool)
    cont[1:] = lab_i[ids[1:]] & (tag[1:] == tag[:-1])
    starts = np.asarray(starts, dtype=np.int64)
    cont[starts[starts < n]] = False
    heads = np.flatnonzero(~cont)
    ends = np.append(heads[1:], n)
    keep = is_b[heads]
    heads, ends = heads[keep], ends[keep]
    rows = np.searchsorted(starts, heads, side="right") - 1  # the last entry starting at or before
    offset = starts[rows]
    names = [tag_names[t] for t in tag[heads].tolist()]
    return set(zip(rows.tolist(), names, (heads - offset).tolist(), (ends - offset).tolist(), strict=True))


@dataclass
class LabelSequences:
    """Label strings of many sequences as ids into their own vocabulary, in one pass."""

    ids: np.ndarray  # every sequence's labels, concatenated
    vocab: list[str]  # id -> label string
    starts: np.ndarray  # where each sequence begins in `ids`

    @classmethod
    def of(cls, seqs: Sequence[Sequence[str]]) -> LabelSequences:
        index: dict[str, int] = {}
        ids = [index.setdefault(lab, len(index)) for seq in seqs for lab in seq]
        starts = np.cumsum([0] + [len(s) for s in seqs[:-1]]) if len(seqs) else np.zeros(0, dtype=np.int64)
        return cls(np.array(ids, dtype=np.int64), list(index), starts)

    def entities(self) -> set[tuple[int, str, int, int]]:
        return iob2_entities(self.ids, self.vocab, self.starts)


def seqeval_entities(seqs: Sequence[Sequence[str]]) -> set[tuple[int, str, int, int]]:
    """(entry, tag, start, end) of every entity of every label sequence (`iob2_entities` on strings)."""
    return LabelSequences.of(seqs).entities()


def seqeval_scores(gold_set: set[tuple], pred_set: set[tuple], tags: Sequence[str]) -> dict:
    """P/R/F1 from (entry, tag, start, end) entity sets.

    Entities by `seqeval.scheme.Entities` in strict IOB2 mode (an entity must open with B-), as
    `iob2_entities` reproduces it in array ops; seqeval's default (conlleval) mode is not used.
    seqeval itself is only the tests' oracle (it installs scikit-learn, which this package does not need).
    """
    hits = gold_set & pred_set
    n_gold, n_pred, n_tp = Counter(e[1] for e in gold_set), Counter(e[1] for e in pred_set), Counter(e[1] for e in hits)
    per_tag = {}
    for t in tags:
        pr, rc, f1 = seqeval_prf(np.array(n_tp[t]), np.array(n_pred[t] - n_tp[t]), np.array(n_gold[t] - n_tp[t]))
        per_tag[t] = {"precision": round(float(pr), 6), "recall": round(float(rc), 6), "f1": round(float(f1), 6), "support": n_gold[t]}
    tp = len(hits)
    pr, rc, f1 = seqeval_prf(np.array(tp), np.array(len(pred_set) - tp), np.array(len(gold_set) - tp))
    return {
        "mode": "seqeval.scheme IOB2 strict, entities over pieces (gold = upstream alignment)",
        "micro": {"precision": round(float(pr), 6), "recall": round(float(rc), 6), "f1": round(float(f1), 6)},
        "per_tag": per_tag,
    }
