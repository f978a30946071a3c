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


# ---- pinned by mutation testing: the transitions table, ragged/empty inputs, the fast paths --------


def test_transitions_are_the_profile_tables_sums():
    """design.md Decisions, 'transitions' rows, with a learned CRF: upstream-eval = learned + crf.py's
    -inf masks (start mask added, end unmasked); runtime = learned + the -1e9 structural mask, the
    learned start WITHOUT the start mask, the learned end. Without a CRF, runtime = the mask alone,
    the structural start mask and a zero end."""
    n = len(LABELS)  # O B-a I-a B-b I-b
    learned = np.arange(n * n, dtype=np.float32).reshape(n, n) / 8  # distinct, exact in float32
    start = np.array([0.5, -0.25, 0.75, 1.5, -2.0], np.float32)
    end = np.array([-0.5, 0.25, 1.25, -1.5, 2.0], np.float32)
    crf = CRFParams("sidecar", learned, start, end)

    rt = build_transitions(RUNTIME, LABELS, crf)
    assert (rt.source, rt.flavour) == ("sidecar", "structural")
    assert rt.trans[1, 3] == learned[1, 3] == 1.0  # B-a -> B-b allowed: the learned value, added (not subtracted)
    assert rt.trans[3, 4] == learned[3, 4]  # B-b -> I-b allowed
    assert rt.trans[0, 2] == -1e9 + float(learned[0, 2]) == -999999999.75  # O -> I-a forbidden: -1e9 plus the learned value
    assert rt.trans[3, 2] == -1e9 + float(learned[3, 2])  # B-b -> I-a forbidden
    assert rt.start.tolist() == start.tolist()  # I-a, I-b keep their learned start: no start mask
    assert rt.end.tolist() == end.tolist()

    up = build_transitions(UPSTREAM_EVAL, LABELS, crf)
    assert (up.source, up.flavour) == ("sidecar", "python-masked")
    assert up.trans[1, 3] == learned[1, 3] and np.isneginf(up.trans[0, 2]) and np.isneginf(up.trans[3, 2])
    assert up.start[[0, 1, 3]].tolist() == start[[0, 1, 3]].tolist() and np.isneginf(up.start[[2, 4]]).all()
    assert up.end.tolist() == end.tolist()  # end unmasked

    bare = build_transitions(RUNTIME, LABELS, None)
    assert (bare.source, bare.flavour) == ("structural", "structural")
    assert bare.trans[1, 3] == 0.0 and bare.trans[0, 2] == -1e9
    assert bare.start.tolist() == [0.0, 0.0, -1e9, 0.0, -1e9] and bare.end.tolist() == [0.0] * n


def test_runtime_adds_learned_transitions_to_the_structural_mask_in_the_path():
    """A learned bonus for B-a -> B-b outweighs a small emission preference for O at step 2."""
    n = len(LABELS)
    trans = np.zeros((n, n), np.float32)
    trans[1, 3] = 2.0
    crf = CRFParams("sidecar", trans, np.zeros(n, np.float32), np.zeros(n, np.float32))
    em = np.array([[0.0, 3.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    for profile in (RUNTIME, UPSTREAM_EVAL):
        assert viterbi(em, build_transitions(profile, LABELS, crf)).tolist() == [1, 3]  # B-a, B-b (not B-a, O)


@pytest.mark.parametrize("profile,crf", [(UPSTREAM_EVAL, None), (RUNTIME, None), (UPSTREAM_EVAL, "crf"), (RUNTIME, "crf")])
def test_pieces_past_each_rows_length_are_minus_one_and_empty_inputs_decode_to_nothing(profile, crf):
    rng = np.random.default_rng(11)
    tr = build_transitions(profile, LABELS, random_crf(rng, len(LABELS)) if crf else None)
    em = rng.normal(size=(3, 4, len(LABELS))).astype(np.float32)
    lengths = np.array([4, 1, 2])
    batch = viterbi_batch(em, lengths, tr)
    for r, n in enumerate(lengths):
        assert batch[r, :n].tolist() == viterbi(em[r, :n], tr).tolist()
        assert batch[r, n:].tolist() == [-1] * (4 - n)
    if tr.flavour == "argmax":
        assert batch[0].tolist() == em[0].argmax(1).tolist()
    assert viterbi(np.zeros((0, len(LABELS)), np.float32), tr).tolist() == []
    assert viterbi_batch(np.zeros((0, 4, len(LABELS)), np.float32), np.zeros(0, np.int64), tr).shape == (0, 4)


def test_mask_only_pass_equals_the_dense_pass_on_many_random_rows():
    """The O(L) structural pass (no learned CRF) against the dense O(L^2) one, rows of real-looking
    size: every path identical, so a wrong source or score in the fast pass shows."""
    from unittest import mock

    from mailwoman_eval import decode

    labels = bio_labels(["a", "b", "c", "d"])
    tr = build_transitions(RUNTIME, labels, None)
    assert decode._mask_only_plan(tr) is not None
    rng = np.random.default_rng(5)
    em = (rng.normal(size=(300, 12, len(labels))) * 2).astype(np.float32)
    lengths = rng.integers(1, 13, size=300)
    fast = decode.viterbi_batch(em, lengths, tr)
    with mock.patch.object(decode, "_mask_only_plan", lambda tr: None):
        dense = decode.viterbi_batch(em, lengths, tr)
    assert np.array_equal(fast, dense)
    assert (fast != em.argmax(-1)).any()  # the mask does change paths here: not a test of argmax


def test_mask_only_pass_leaves_an_exact_tie_with_a_forbidden_source_to_the_dense_pass():
    """viterbi.ts (strict >, first index wins): O scores 1e9 and B-a 0 at step 1, so I-a at step 2
    ties between O (1e9 - 1e9) and B-a (0 + 0), I-b between O and B-b: the first index, O, is the
    backpointer. The fast pass must detect the tie (>=, not >) and give the dense pass's path."""
    tr = build_transitions(RUNTIME, LABELS, None)
    em = np.array([[1e9, 0.0, -5.0, 0.0, -5.0], [0.0, 0.0, 2e9, 0.0, 0.0]])  # B-b 0 too: I-b ties the same way
    assert viterbi(em, tr).tolist() == [0, 2]


def test_argmax_shortcut_is_not_taken_when_a_learned_end_can_change_the_path():
    """Runtime with a sidecar whose transitions are all 0 (so only the mask remains) but whose end
    transitions are learned: the argmax path O, O loses to O, B-b once end[B-b] = 5 is added."""
    from mailwoman_eval import decode

    n = len(LABELS)
    end = np.array([0.0, 0.0, 0.0, 5.0, 0.0], np.float32)
    crf = CRFParams("sidecar", np.zeros((n, n), np.float32), np.zeros(n, np.float32), end)
    tr = build_transitions(RUNTIME, LABELS, crf)
    x = np.array([[3.0, 0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    assert viterbi(x, tr).tolist() == [0, 3]
    assert decode.argmax_paths_if_exact([x], tr) == [None]
    # and a learned start the same way
    start = np.array([0.0, 0.0, 0.0, 5.0, 0.0], np.float32)
    tr = build_transitions(RUNTIME, LABELS, CRFParams("sidecar", np.zeros((n, n), np.float32), start, np.zeros(n, np.float32)))
    assert viterbi(x, tr).tolist() == [3, 0]
    assert decode.argmax_paths_if_exact([x], tr) == [None]


def test_crf_parameters_of_disagreeing_shapes_are_refused():
    """A sidecar whose transitions are (L-1, L-1) next to a start and end of L (the label count
    read_sidecar checks) must be refused here, not reach Viterbi."""
    n = len(LABELS)
    ok = np.zeros(n, np.float32)
    with pytest.raises(ValueError, match="shapes disagree"):
        CRFParams("sidecar", np.zeros((n - 1, n - 1), np.float32), ok, ok)
    with pytest.raises(ValueError, match="shapes disagree"):
        CRFParams("sidecar", np.zeros((n, n), np.float32), ok, np.zeros(n - 1, np.float32))
