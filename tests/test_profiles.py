"""Hand-checked rules of both profiles (design.md Decisions; upstream-formats.md §4, §5.3, §10.1)."""

import json

import numpy as np
import pytest
from conftest import TINY_STEP, TOKENIZER_V010, need_shared

from mailwoman_eval.decode import components_from_labels, label_spans, trim_boundary
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.metrics import (
    FN,
    FP,
    NONE,
    TP,
    WRONG,
    EntryVectors,
    exact_match_vector,
    outcome_row,
    summarize,
)
from mailwoman_eval.profiles import PROFILES, RUNTIME, UPSTREAM_EVAL, get_profile


def words(raw):
    """Pieces = whitespace-led words with Python-style spans (leading space included)."""
    begin, end, i = [], [], 0
    for w in raw.split(" "):
        b = i - 1 if i > 0 else 0
        begin.append(b)
        end.append(i + len(w))
        i += len(w) + 1
    return begin, end


def decode(raw, labels, profile):
    b, e = words(raw)
    comps = components_from_labels(raw, labels, b, e, [0.9] * len(labels), profile)
    return {t: c.value for t, c in comps.items()}


# ---- upstream-eval ---------------------------------------------------------------------------

def test_upstream_first_span_per_tag_only():
    raw = "Paris Lyon Nice"
    got = decode(raw, ["B-locality", "O", "B-locality"], UPSTREAM_EVAL)
    assert got == {"locality": "Paris"}


def test_upstream_strips_whitespace_but_not_punctuation():
    raw = "Main St, Paris"
    got = decode(raw, ["B-street", "I-street", "O"], UPSTREAM_EVAL)
    assert got == {"street": "Main St,"}


def test_upstream_comparison_is_case_sensitive():
    assert outcome_row({"locality": "PARIS"}, {"locality": "Paris"}, ["locality"], UPSTREAM_EVAL) == [WRONG]
    assert outcome_row({"locality": "PARIS"}, {"locality": "Paris"}, ["locality"], RUNTIME) == [TP]


def test_wrong_value_counts_as_fp_and_fn():
    v = EntryVectors(["postcode"], np.array([[WRONG]], dtype=np.int8), np.zeros(1), np.zeros(1), np.ones(1))
    m = summarize(v)["per_tag"]["postcode"]
    assert (m["tp"], m["fp"], m["fn"], m["support"]) == (0, 1, 1, 1)


def test_outcome_codes():
    row = outcome_row(
        {"a": "x", "b": "y", "c": "  "}, {"a": "x", "d": "z", "c": "q"}, ["a", "b", "c", "d", "e"], UPSTREAM_EVAL
    )
    # whitespace-only gold is "non-empty" (eval.py keeps values unstripped) so c is a wrong value
    assert row == [TP, FN, WRONG, FP, NONE]


def test_exact_match_needs_nonempty_gold_and_divides_by_all_entries():
    out = np.array(
        [
            [TP, NONE],  # counts
            [NONE, NONE],  # no gold: does not count, but is in the denominator
            [TP, FP],  # extra prediction breaks it
            [TP, TP],  # counts
        ],
        dtype=np.int8,
    )
    assert exact_match_vector(out).tolist() == [True, False, False, True]
    v = EntryVectors(["a", "b"], out, np.zeros(4), np.zeros(4), np.ones(4))
    assert summarize(v)["exact_match"] == 0.5


def test_orphan_i_opens_a_span_and_o_closes_it():
    spans = label_spans(["I-a", "I-a", "O", "I-a", "B-b", "I-a"])
    assert [(s.tag, s.first, s.last) for s in spans] == [("a", 0, 1), ("a", 3, 3), ("b", 4, 4), ("a", 5, 5)]


def test_truncation_to_128_pieces_scores_gold_beyond_as_fn(tmp_path):
    need_shared()
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint
    from mailwoman_eval.evaluate import EvalOptions, evaluate
    from mailwoman_eval.golden import load_golden

    filler = " ".join(["Foo"] * 140)
    raw = f"{filler} 12 Main St, Springfield, IL 62701"
    gdir = tmp_path / "g"
    gdir.mkdir()
    (gdir / "us.jsonl").write_text(json.dumps({"raw": raw, "components": {"postcode": "62701", "locality": "Springfield"}}) + "\n")
    run = evaluate(
        resolve_checkpoint(str(TINY_STEP)),
        load_golden(gdir),
        EvalOptions(profile=UPSTREAM_EVAL, tokenizer=str(TOKENIZER_V010), use_cache=False),
        tmp_path / "run",
    )
    p = run.predictions[0]
    assert p["truncated"] is True and p["n_pieces"] > 128 and len(p["labels"]) == 128
    assert run.meta["counts"]["truncated"] == 1
    per_tag = run.meta["metrics"]["views"]["all"]["per_tag"]
    assert per_tag["postcode"]["fn"] == 1 and per_tag["locality"]["fn"] == 1
    assert any("truncated" in w for w in run.meta["warnings"])


# ---- runtime trimBoundary ------------------------------------------------------------------

def test_trim_leading_and_trailing_punctuation():
    raw = ", 7647"
    assert trim_boundary(raw, 0, len(raw)) == (2, 6)
    assert decode("LE TRÉPORT, 76470", ["O", "B-postcode", "I-postcode"], RUNTIME) == {"postcode": "TRÉPORT, 76470"}
    assert decode("(Paris),", ["B-locality"], RUNTIME) == {"locality": "Paris"}


def test_all_punctuation_span_is_dropped_and_a_later_span_survives():
    raw = "-- Paris"
    got = decode(raw, ["B-locality", "B-locality"], RUNTIME)
    assert got == {"locality": "Paris"}
    assert trim_boundary(", .", 0, 3) is None


def test_word_internal_hyphen_and_accents_are_kept():
    raw = "Sainte-Livrade-sur-Lot, Montréal."
    assert decode(raw, ["B-locality", "B-region"], RUNTIME) == {"locality": "Sainte-Livrade-sur-Lot", "region": "Montréal"}


def test_trim_works_per_utf16_code_unit_so_astral_edges_are_trimmed():
    raw = "𠀀Paris𠀀"  # a non-BMP letter: its surrogates fail /[\p{L}\p{N}]/u in the TS runtime
    assert trim_boundary(raw, 0, len(raw)) == (1, 6)


def test_upstream_keeps_punctuation_runtime_trims_it():
    raw = "Paris, 75008,"
    labels = ["B-locality", "B-postcode"]
    assert decode(raw, labels, UPSTREAM_EVAL) == {"locality": "Paris,", "postcode": "75008,"}
    assert decode(raw, labels, RUNTIME) == {"locality": "Paris", "postcode": "75008"}


def test_value_and_offsets_stay_in_sync():
    raw = "  (Main St),  Paris"
    b, e = [0, 7, 11], [6, 11, 19]
    comps = components_from_labels(raw, ["B-street", "I-street", "B-locality"], b, e, [1, 1, 1], RUNTIME)
    for c in comps.values():
        assert raw[c.start : c.end] == c.value
    assert comps["street"].value == "Main St"



def test_invalid_bio_transitions_counted_per_entry():
    from mailwoman_eval.labels import bio_labels
    from mailwoman_eval.metrics import invalid_bio_transitions

    labels = bio_labels(["a", "b"])  # O B-a I-a B-b I-b
    paths = [[2, 2, 0], [1, 2, 4], [3, 4, 2]]  # I-a at start (1); I-b after I-a (1); I-a after I-b (1)
    ids = np.array(sum(paths, []))
    # the second entry starts with B-a: the I-a that ended entry 1 must not count as its predecessor
    assert invalid_bio_transitions(ids, np.array([0, 3, 6]), labels) == 3
    assert invalid_bio_transitions(np.array([2, 2]), np.array([0, 1]), labels) == 2


def test_no_crf_choice_is_the_profiles_no_crf_field():
    """Without learned transitions the recorded `no_crf` decides (not `transitions`): a profile that
    says "structural" there gets the structural BIO mask, one that says "argmax" gets argmax."""
    from dataclasses import replace

    from mailwoman_eval.decode import build_transitions
    from mailwoman_eval.labels import V040_LABELS

    labels = list(V040_LABELS)
    assert build_transitions(UPSTREAM_EVAL, labels, None).flavour == "argmax"
    assert build_transitions(RUNTIME, labels, None).flavour == "structural"
    swapped_up = build_transitions(replace(UPSTREAM_EVAL, no_crf="structural"), labels, None)
    assert swapped_up.flavour == "structural" and swapped_up.trans is not None
    assert np.isin(swapped_up.trans, (0.0, -1e9)).all() and (swapped_up.trans == -1e9).any()
    assert build_transitions(replace(RUNTIME, no_crf="argmax"), labels, None).flavour == "argmax"


def test_precision_recall_f1_round_as_eval_py_does_at_the_sixth_decimal():
    """upstream-formats.md §4: precision tp/(tp+fp+1e-9). tp=3, fp=125 is 0.0234375 exactly, which
    exact division reports as 0.023438 and eval.py as 0.023437; run.json and compare.json agree
    with eval.py."""
    from mailwoman_eval.compare import view_statistics

    out = np.zeros((128 + 4, 1), dtype=np.int8)
    out[:3, 0] = TP
    out[3:128, 0] = FP
    out[128:, 0] = NONE
    n = out.shape[0]
    v = EntryVectors(["a"], out, np.zeros(n), np.zeros(n), np.ones(n, dtype=np.int64))
    s = summarize(v)
    assert s["per_tag"]["a"]["precision"] == round(3 / (3 + 125 + 1e-9), 6) == 0.023437
    assert s["per_tag"]["a"]["recall"] == round(3 / (3 + 0 + 1e-9), 6) == 1.0
    assert s["micro"]["precision"] == 0.023437
    conf = (np.zeros(n), np.ones(n))
    c = view_statistics(out, out, conf, conf, ["a"], 1000, 0)
    assert c["per_tag"]["a"]["precision"]["base"] == 0.023437
    assert c["per_tag"]["a"]["f1"]["base"] == s["per_tag"]["a"]["f1"]
    assert c["per_tag"]["a"]["f1"]["delta_pp"] == 0.0  # equal counts: exactly no change


def test_the_first_astral_letter_is_trimmed_like_any_surrogate_pair():
    """U+10000 (LINEAR B SYLLABLE B008 A, a letter) is the first code point above the BMP: in UTF-16
    it is two surrogates, and each fails /[\\p{L}\\p{N}]/u, so trimBoundary trims it at an edge.
    The BMP's last letters stay (U+FFDC HALFWIDTH HANGUL LETTER I)."""
    raw = "\U00010000Paris\U00010000"
    assert trim_boundary(raw, 0, len(raw)) == (1, 6)
    assert trim_boundary("\uffdcParis\uffdc", 0, 7) == (0, 7)


def test_upstream_strip_removes_trailing_whitespace_exactly_and_confidence_is_the_spans_own_mean():
    """eval.py `raw[first.char_begin:last.char_end].strip()`: a span whose last piece ends on
    whitespace (a bare '▁' piece labelled I-) loses that whitespace only. A component's confidence
    is the mean over the span's own pieces (§5.2), not over a piece after it."""
    raw = "Main St  Paris"
    begin, end = [0, 4, 7, 8], [4, 7, 8, 14]  # 'Main', ' St', ' ', ' Paris'
    conf = [0.25, 0.75, 0.5, 1.0]
    for profile in (UPSTREAM_EVAL, RUNTIME):
        comps = components_from_labels(raw, ["B-street", "I-street", "I-street", "B-locality"], begin, end, conf, profile)
        assert (comps["street"].value, comps["street"].start, comps["street"].end) == ("Main St", 0, 7)
        assert comps["street"].confidence == 0.5  # (0.25 + 0.75 + 0.5) / 3
        assert (comps["locality"].value, comps["locality"].confidence) == ("Paris", 1.0)
    comps = components_from_labels(raw, ["B-street", "I-street", "O", "O"], begin, end, conf, UPSTREAM_EVAL)
    assert comps["street"].confidence == 0.5  # (0.25 + 0.75) / 2: the O piece after it is not counted


# ---- the profile records themselves (design.md Decisions, profiles table) ---------------------

def test_the_two_profiles_record_the_designs_choices():
    assert (UPSTREAM_EVAL.name, UPSTREAM_EVAL.transitions, UPSTREAM_EVAL.no_crf, UPSTREAM_EVAL.spans, UPSTREAM_EVAL.compare) == \
        ("upstream-eval", "python-masked", "argmax", "strip", "exact")
    assert (RUNTIME.name, RUNTIME.transitions, RUNTIME.no_crf, RUNTIME.spans, RUNTIME.compare) == \
        ("runtime", "structural", "structural", "trim-boundary", "casefold")
    assert list(PROFILES) == ["runtime", "upstream-eval"] and get_profile("runtime") is RUNTIME
    assert get_profile("upstream-eval") is UPSTREAM_EVAL
    assert RUNTIME.to_json() == {"name": "runtime", "transitions": "structural", "no_crf": "structural",
                                 "spans": "trim-boundary", "compare": "casefold", "description": RUNTIME.description}
    with pytest.raises(MwevalError, match="unknown profile 'upstream'"):
        get_profile("upstream")


def test_both_comparisons_strip_whitespace_on_both_sides_and_only_runtime_folds_case():
    """upstream-eval: `p.strip() == g.strip()`, case-sensitive; runtime: `p.strip().lower() ==
    g.strip().lower()` (the TS harness's trim().toLowerCase(): lower, not casefold, so ß ≠ SS)."""
    for profile in (UPSTREAM_EVAL, RUNTIME):
        assert profile.same(" Paris\t", "Paris") and profile.same("Paris", "\nParis ")
        assert not profile.same("Paris,", "Paris") and not profile.same("Pa ris", "Paris")
    assert not UPSTREAM_EVAL.same("paris", "Paris") and RUNTIME.same(" PARIS", "paris ")
    assert RUNTIME.same("ÉVRY", "évry") and not RUNTIME.same("STRASSE", "Straße")
