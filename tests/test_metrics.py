"""metrics.py values pinned to their oracles: the seqeval cross-check against seqeval itself on a
real run, and summarize()'s per-tag, micro and macro figures on hand-countable outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from mailwoman_eval.metrics import FN, FP, NONE, TP, WRONG, EntryVectors, summarize


def test_the_seqeval_cross_check_equals_seqeval_strict_iob2_on_the_tiny_run(tiny_test_run):
    """run.json's `seqeval` block (entities by `iob2_entities`, P/R/F1 by `seqeval_prf`) against
    seqeval's own strict-IOB2 report over the same gold and decoded label paths (tiny checkpoint,
    golden v0.1.2/test, runtime profile)."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    got = tiny_test_run.meta["metrics"]["seqeval"]
    gold = [p["gold_labels"] for p in tiny_test_run.predictions]
    pred = [p["labels"] for p in tiny_test_run.predictions]
    want = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    measured = [t for t in got["per_tag"] if t in want]
    assert len(measured) >= 5  # the tiny run has entities of most tags
    for tag in got["per_tag"]:
        g = got["per_tag"][tag]
        if tag not in want:  # neither gold nor predicted entities of the tag: all zero
            assert g == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}, tag
            continue
        w = want[tag]
        assert g["support"] == w["support"], tag
        for k, wk in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert g[k] == pytest.approx(w[wk], abs=1e-6), (tag, k)
    # micro over all entities; at least one tag is imperfect, so P, R and F1 differ from 1 and 0
    micro = want["micro avg"]
    for k, wk in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
        assert got["micro"][k] == pytest.approx(micro[wk], abs=1e-6), k
    assert 0 < got["micro"]["precision"] < 1 and 0 < got["micro"]["recall"] < 1
    assert got["micro"]["precision"] != got["micro"]["recall"]


def test_summarize_per_tag_micro_and_macro_by_hand():
    """Four tags over four entries: a gets TP, TP, WRONG (tp 2, fp 1, fn 1); b gets FN, FN, TP
    (tp 1, fn 2); c only FP (no gold: support 0, left out of the macro mean); d one TP (support 1,
    in the macro mean). Values as eval.py computes them (+1e-9), rounded to 6 places."""
    out = np.array(
        [
            [TP, FN, NONE, NONE],
            [TP, FN, FP, NONE],
            [WRONG, TP, NONE, NONE],
            [NONE, NONE, NONE, TP],
        ],
        dtype=np.int8,
    )
    v = EntryVectors(["a", "b", "c", "d"], out, np.array([1.5, 0.5, 0.25, 0.0]), np.array([1.0, 0.5, 0.0, 0.0]), np.array([2, 1, 1, 0]))
    s = summarize(v)
    a, b, c, d = (s["per_tag"][t] for t in "abcd")
    assert (a["tp"], a["fp"], a["fn"], a["support"]) == (2, 1, 1, 3)
    assert (a["precision"], a["recall"], a["f1"]) == (0.666667, 0.666667, 0.666667)
    assert (b["tp"], b["fp"], b["fn"], b["support"]) == (1, 0, 2, 3)
    assert (b["precision"], b["recall"], b["f1"]) == (1.0, 0.333333, 0.5)
    assert (c["tp"], c["fp"], c["fn"], c["support"]) == (0, 1, 0, 0)
    assert (c["precision"], c["recall"], c["f1"]) == (0.0, 0.0, 0.0)
    assert (d["tp"], d["support"], d["f1"]) == (1, 1, 1.0)
    # micro pools tp 4, fp 2, fn 3: P 4/6, R 4/7, F1 8/13
    assert s["micro"] == {"precision": 0.666667, "recall": 0.571429, "f1": 0.615385}
    # macro: mean over tags with support > 0 (a, b and d), not c
    assert s["macro_f1"] == round((2 / 3 + 0.5 + 1.0) / 3, 6) == 0.722222
    assert s["macro_f1_denominator"]["tags"] == ["a", "b", "d"]
    assert s["entries"] == 4 and s["exact_match"] == 0.25  # only the last entry: all its gold right, nothing extra
    assert s["mean_token_confidence"] == 0.5625 and s["mean_chosen_confidence"] == 0.375  # 2.25 / 4 pieces, 1.5 / 4


def test_seqeval_prf_divides_exactly_and_is_zero_only_where_a_denominator_is():
    """seqeval's P/R/F1 (zero_division=0): tp/(tp+fp), tp/(tp+fn), 2PR/(P+R), no 1e-9."""
    from mailwoman_eval.metrics import seqeval_prf

    p, r, f = seqeval_prf(np.array([1, 1, 0, 1, 1]), np.array([2, 0, 0, 3, 0]), np.array([0, 3, 0, 1, 0]))
    assert p.tolist() == [1 / 3, 1.0, 0.0, 0.25, 1.0]
    assert r.tolist() == [1.0, 0.25, 0.0, 0.5, 1.0]
    assert f.tolist() == pytest.approx([0.5, 0.4, 0.0, 1 / 3, 1.0], abs=1e-15)


def test_calibration_has_ten_equal_buckets_and_a_confidence_of_one_lands_in_the_last():
    """upstream-formats.md §4 / §10.1: 10 equal buckets [i/10, (i+1)/10) keyed low, high, n, acc;
    bucket index min(9, int(conf*10)), so 1.0 lands in the last bucket."""
    from mailwoman_eval.metrics import calibration

    conf = np.array([1.0, 0.95, 0.9, 0.05, 0.0, 0.5, 0.55])
    correct = np.array([True, False, True, True, False, True, True])
    cal = calibration(conf, correct)
    assert [(b["low"], b["high"]) for b in cal] == [(i / 10, (i + 1) / 10) for i in range(10)]
    assert [b["n"] for b in cal] == [2, 0, 0, 0, 0, 2, 0, 0, 0, 3]
    assert sum(b["n"] for b in cal) == len(conf)  # every piece in some bucket, 1.0 included
    assert cal[0]["acc"] == 0.5 and cal[5]["acc"] == 1.0 and cal[9]["acc"] == round(2 / 3, 6) == 0.666667


def test_invalid_bio_transitions_counts_a_lone_i_piece_and_nothing_in_no_pieces():
    from mailwoman_eval.labels import bio_labels
    from mailwoman_eval.metrics import invalid_bio_transitions

    labels = bio_labels(["a", "b"])  # O B-a I-a B-b I-b
    assert invalid_bio_transitions(np.array([2]), np.array([0]), labels) == 1  # one entry, one piece: I-a opens it
    assert invalid_bio_transitions(np.array([1]), np.array([0]), labels) == 0
    assert invalid_bio_transitions(np.zeros(0, np.int64), np.array([0]), labels) == 0
