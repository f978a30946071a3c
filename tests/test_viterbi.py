"""Viterbi against brute-force enumeration, for both arithmetic flavours and the argmax fallback."""

import itertools

import numpy as np
import pytest

from mailwoman_eval.decode import (
    CRFParams,
    build_transitions,
    python_masks,
    structural_masks,
    viterbi,
    viterbi_batch,
)
from mailwoman_eval.labels import bio_labels
from mailwoman_eval.profiles import RUNTIME, UPSTREAM_EVAL

LABELS = bio_labels(["a", "b"])  # O B-a I-a B-b I-b


def brute_force(em, trans, start, end):
    S, L = em.shape
    best, best_path = -np.inf, None
    for path in itertools.product(range(L), repeat=S):  # lexicographic order: first max = lowest ids
        s = start[path[0]] + em[0, path[0]]
        for t in range(1, S):
            s = s + trans[path[t - 1], path[t]] + em[t, path[t]]
        s = s + end[path[-1]]
        if s > best:
            best, best_path = s, path
    return np.array(best_path)


def random_crf(rng, n):
    return CRFParams(
        "learned",
        rng.normal(size=(n, n)).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
    )


@pytest.mark.parametrize("profile", [UPSTREAM_EVAL, RUNTIME])
@pytest.mark.parametrize("seed", range(25))
def test_viterbi_matches_brute_force(profile, seed):
    rng = np.random.default_rng(seed)
    S = int(rng.integers(1, 5))
    em = rng.normal(size=(S, len(LABELS))).astype(np.float32)
    tr = build_transitions(profile, LABELS, random_crf(rng, len(LABELS)))
    got = viterbi(em, tr)
    want = brute_force(em.astype(np.float64), tr.trans.astype(np.float64), tr.start.astype(np.float64), tr.end.astype(np.float64))
    assert got.tolist() == want.tolist()


def test_structural_only_never_produces_orphan_i():
    rng = np.random.default_rng(7)
    tr = build_transitions(RUNTIME, LABELS, None)
    assert tr.source == "structural"
    for _ in range(50):
        em = rng.normal(size=(6, len(LABELS))).astype(np.float32) * 5
        path = [LABELS[i] for i in viterbi(em, tr)]
        for prev, cur in zip(["O"] + path, path, strict=False):
            if cur.startswith("I-"):
                assert prev[2:] == cur[2:]


def test_upstream_eval_without_crf_is_argmax():
    em = np.array([[0.0, 0.0, 5.0, 0.0, 0.0]], dtype=np.float32)  # an orphan I-a wins the argmax
    tr = build_transitions(UPSTREAM_EVAL, LABELS, None)
    assert tr.source == "argmax"
    assert viterbi(em, tr).tolist() == [2]


def test_ties_go_to_the_lowest_index():
    em = np.zeros((3, len(LABELS)), dtype=np.float32)
    for profile in (UPSTREAM_EVAL, RUNTIME):
        zero = CRFParams("learned", np.zeros((5, 5), np.float32), np.zeros(5, np.float32), np.zeros(5, np.float32))
        assert viterbi(em, build_transitions(profile, LABELS, zero)).tolist() == [0, 0, 0]


def test_runtime_start_is_learned_without_the_start_mask():
    """classifier.ts: with learned params the start mask is NOT added, so a path may open on I-*."""
    n = len(LABELS)
    crf = CRFParams("sidecar", np.zeros((n, n), np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32))
    em = np.array([[0.0, 0.0, 9.0, 0.0, 0.0]], dtype=np.float32)
    assert viterbi(em, build_transitions(RUNTIME, LABELS, crf)).tolist() == [2]
    assert viterbi(em, build_transitions(UPSTREAM_EVAL, LABELS, crf)).tolist() != [2]


def test_masks_follow_each_rule():
    labels = ["O", "B-a", "I-a", "B-b", "I-b", "junk"]
    pt, ps = python_masks(labels)
    st, ss = structural_masks(labels)
    # I-a only after B-a / I-a
    assert np.isneginf(pt[0, 2]) and pt[1, 2] == 0 and pt[2, 2] == 0 and np.isneginf(pt[3, 2])
    assert st[0, 2] == -1e9 and st[1, 2] == 0
    # malformed `curr`: invalid in Python, valid in TS
    assert np.isneginf(pt[0, 5]) and st[0, 5] == 0
    assert np.isneginf(ps[2]) and ss[2] == -1e9 and ps[1] == 0
    assert int(np.isneginf(python_masks(bio_labels([f"t{i}" for i in range(10)]))[0]).sum()) == 190


def test_batch_equals_one_by_one_with_ragged_lengths():
    rng = np.random.default_rng(3)
    tr = build_transitions(UPSTREAM_EVAL, LABELS, random_crf(rng, len(LABELS)))
    lengths = np.array([1, 4, 2, 7])
    em = rng.normal(size=(4, 7, len(LABELS))).astype(np.float32)
    batch = viterbi_batch(em, lengths, tr)
    for r, n in enumerate(lengths):
        assert batch[r, :n].tolist() == viterbi(em[r, :n], tr).tolist()
        assert (batch[r, n:] == -1).all()
