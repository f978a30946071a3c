"""Property tests (hypothesis): tokenizer spans, Viterbi, boundary trim, span decoding, metric and
compare/gate invariance. Example counts are kept small so the file runs in well under 30 s."""

from __future__ import annotations

import functools
import itertools
import json
import unicodedata
from unittest import mock

import numpy as np
from conftest import TOKENIZER_V010, need_shared
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runfactory import make_run

from mailwoman_eval import compare as compare_mod
from mailwoman_eval import gate as gate_mod
from mailwoman_eval.decode import CRFParams, build_transitions, components_from_labels, trim_boundary, viterbi
from mailwoman_eval.labels import bio_labels
from mailwoman_eval.metrics import FN, FP, NONE, TP, WRONG, EntryVectors, seqeval_entities, summarize
from mailwoman_eval.profiles import RUNTIME, UPSTREAM_EVAL
from mailwoman_eval.run import Run
from mailwoman_eval.stats import resample_weights

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILES = st.sampled_from([RUNTIME, UPSTREAM_EVAL])


@functools.cache
def tokenizer():
    from mailwoman_eval.tokenizer import Tokenizer

    return Tokenizer(TOKENIZER_V010)


# ---------------------------------------------------------------------------------------------
# tokenizer spans

# Printable text: letters, digits, punctuation, symbols (emoji included), and plain spaces.
# Control and format characters are left out: SentencePiece's normalizer drops them, so they are
# legitimately covered by no piece (the eval still scores such rows as text; see test_bad_inputs).
TEXT_CHARS = st.one_of(
    st.sampled_from(list(" ,.-/#'0123456789")),
    st.characters(min_codepoint=0x20, max_codepoint=0x2FFFF, categories=("L", "M", "N", "P", "S")),
    st.characters(categories=("Lu", "Ll", "Nd")),
)
NFKC_STABLE_TEXT = st.text(TEXT_CHARS, min_size=1, max_size=40).filter(lambda s: unicodedata.normalize("NFKC", s) == s)


@FAST
@given(NFKC_STABLE_TEXT)
def test_tokenizer_spans_are_monotone_in_range_and_cover_every_non_space_char(raw):
    need_shared()
    enc = tokenizer().encode(raw)
    assert len(enc.pieces) == len(enc.ids) == len(enc.begin) == len(enc.end)
    for b, e in zip(enc.begin, enc.end, strict=True):
        assert 0 <= b <= e <= len(raw)
    assert list(enc.begin) == sorted(enc.begin) and list(enc.end) == sorted(enc.end)
    covered = set()
    for b, e in zip(enc.begin, enc.end, strict=True):
        covered.update(range(b, e))
    missing = [i for i, ch in enumerate(raw) if not ch.isspace() and i not in covered]
    assert not missing, (raw, missing, list(zip(enc.pieces, enc.begin, enc.end, strict=True)))


# ---------------------------------------------------------------------------------------------
# Viterbi against brute force

LABELS = bio_labels(["a", "b"])  # O B-a I-a B-b I-b
L = len(LABELS)
SCORE = st.floats(-8, 8, allow_nan=False, width=32) | st.sampled_from([0.0, 1.0, -1.0])  # ties on purpose


def path_score(path, em, tr) -> float:
    s = float(tr.start[path[0]]) + float(em[0, path[0]])
    for t in range(1, len(path)):
        s += float(tr.trans[path[t - 1], path[t]]) + float(em[t, path[t]])
    return s + float(tr.end[path[-1]])


@settings(max_examples=80, deadline=None)
@given(
    profile=PROFILES,
    length=st.integers(1, 4),
    data=st.data(),
)
def test_viterbi_equals_brute_force_enumeration(profile, length, data):
    arr = lambda *shape: np.array(data.draw(st.lists(SCORE, min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),  # noqa: E731
                                  dtype=np.float32).reshape(shape)
    em = arr(length, L)
    crf = CRFParams("learned", arr(L, L), arr(L), arr(L))
    tr = build_transitions(profile, LABELS, crf)
    scores = {p: path_score(p, em, tr) for p in itertools.product(range(L), repeat=length)}
    best = max(scores.values())
    got = tuple(int(i) for i in viterbi(em, tr))
    # float32 (python-masked) vs float64 (structural) arithmetic: equal up to rounding
    assert abs(scores[got] - best) <= 1e-4 * (1 + abs(best)), (got, scores[got], best)
    runner_up = sorted(scores.values())[-2] if len(scores) > 1 else -np.inf
    if best - runner_up > 1e-3 * (1 + abs(best)):  # a unique optimum: the very same path
        assert scores[got] == best


@settings(max_examples=120, deadline=None)
@given(rows=st.integers(1, 4), width=st.integers(1, 6), data=st.data())
def test_mask_only_viterbi_equals_the_dense_pass_exactly(rows, width, data):
    """No learned CRF + runtime profile = transitions that are only the 0/-1e9 mask: the O(L) pass
    must give the dense pass's paths, ties and the fallback (scores near 1e9) included."""
    from mailwoman_eval import decode

    labels = bio_labels(["a", "b", "c"])
    tr = build_transitions(RUNTIME, labels, None)
    assert decode._mask_only_plan(tr) is not None
    values = SCORE | st.sampled_from([2e9, -2e9, 1e9])
    em = np.array(data.draw(st.lists(values, min_size=rows * width * len(labels), max_size=rows * width * len(labels))))
    em = em.reshape(rows, width, len(labels))
    lengths = np.array(data.draw(st.lists(st.integers(1, width), min_size=rows, max_size=rows)))
    fast = decode.viterbi_batch(em, lengths, tr)
    with mock.patch.object(decode, "_mask_only_plan", lambda tr: None):
        dense = decode.viterbi_batch(em, lengths, tr)
    assert np.array_equal(fast, dense)


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 5), width=st.integers(1, 6), data=st.data())
def test_argmax_shortcut_takes_only_rows_where_it_is_the_viterbi_path(rows, width, data):
    """Mask-only transitions: a row's argmax is used only where it is provably Viterbi's path;
    ties, near-ties (1 ulp apart) and logits near the 1e9 penalty go to Viterbi."""
    from mailwoman_eval import decode

    labels = bio_labels(["a", "b", "c"])
    tr = build_transitions(RUNTIME, labels, None)
    near = float(np.nextafter(np.float32(1.0), np.float32(2.0)))
    values = SCORE | st.sampled_from([near, 2e9, -2e9, 1e9])
    lengths = data.draw(st.lists(st.integers(0, width), min_size=rows, max_size=rows))
    logits = [
        np.array(data.draw(st.lists(values, min_size=n * len(labels), max_size=n * len(labels))), dtype=np.float32).reshape(n, len(labels))
        for n in lengths
    ]
    got = decode.argmax_paths_if_exact(logits, tr)
    for x, path in zip(logits, got, strict=True):
        if path is not None:
            assert path.tolist() == decode.viterbi(x, tr).tolist()
    if sum(lengths):  # the piece scores, computed in chunks of any size, give the same rows
        chunked = decode.argmax_paths_if_exact(logits, tr, decode.piece_scores(logits, chunk=data.draw(st.integers(1, 4))))
        assert [None if p is None else p.tolist() for p in chunked] == [None if p is None else p.tolist() for p in got]
    # it does take the easy rows: a clear, valid argmax path
    clear = np.full((3, len(labels)), -5.0, dtype=np.float32)
    clear[0, labels.index("B-a")] = clear[1, labels.index("I-a")] = clear[2, labels.index("O")] = 5.0
    assert decode.argmax_paths_if_exact([clear], tr)[0] is not None
    # B-a then I-a 0 vs B-b 1e-30: argmax says B-b, but 1000 + 1e-30 == 1000 in float64, so Viterbi
    # sees a tie and its first-index rule says I-a; the gap guard must leave this row to Viterbi
    erased = np.full((2, len(labels)), -5.0, dtype=np.float32)
    erased[0, labels.index("B-a")], erased[1, labels.index("I-a")], erased[1, labels.index("B-b")] = 1000.0, 0.0, 1e-30
    assert labels.index("I-a") < labels.index("B-b") and decode.viterbi(erased, tr).tolist() != erased.argmax(1).tolist()
    assert decode.argmax_paths_if_exact([erased], tr)[0] is None
    crf = CRFParams("learned", np.full((7, 7), 0.5, np.float32), np.zeros(7, np.float32), np.zeros(7, np.float32))
    assert decode.argmax_paths_if_exact([clear], build_transitions(RUNTIME, labels, crf))[0] is None  # a learned CRF: never


# ---------------------------------------------------------------------------------------------
# boundary trim and span decoding

RAW_CHARS = st.sampled_from(list("ab Z9,.-'/ \t()#éß\u00a0\u200d\u2028") + ["\U0001f600", "\U00010400", "中"])
RAW = st.text(RAW_CHARS, min_size=1, max_size=30)


@FAST
@given(RAW, st.data())
def test_trim_boundary_is_idempotent_and_stays_inside_its_span(raw, data):
    start = data.draw(st.integers(0, len(raw)))
    end = data.draw(st.integers(start, len(raw)))
    got = trim_boundary(raw, start, end)
    if got is None:
        return
    s, e = got
    assert start <= s < e <= end
    assert trim_boundary(raw, s, e) == (s, e)
    assert trim_boundary(raw, start, e) == (s, e) and trim_boundary(raw, s, end) == (s, e)


SPAN_LABELS = bio_labels(["a", "b", "c"]) + ["junk"]


@FAST
@given(RAW, PROFILES, st.data())
def test_decoded_spans_never_overlap_and_index_raw(raw, profile, data):
    n = data.draw(st.integers(1, 12))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), min_size=n + 1, max_size=n + 1)))
    begin, end = cuts[:-1], cuts[1:]  # monotone, contiguous, zero-width pieces allowed (byte fallback)
    labels = data.draw(st.lists(st.sampled_from(SPAN_LABELS), min_size=n, max_size=n))
    conf = data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    comps = components_from_labels(raw, labels, begin, end, conf, profile)
    for tag, c in comps.items():
        assert c.tag == tag and raw[c.start : c.end] == c.value
        assert 0 <= c.start <= c.end <= len(raw)
        if profile is RUNTIME:
            assert c.value and trim_boundary(raw, c.start, c.end) == (c.start, c.end)
        else:
            assert c.value == c.value.strip()
    spans = sorted((c.start, c.end) for c in comps.values() if c.end > c.start)
    for (_, e1), (s2, _) in itertools.pairwise(spans):
        assert e1 <= s2


# ---------------------------------------------------------------------------------------------
# confidences skip the full softmax division: bit for bit what softmax-then-pick gives


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=6),
    st.integers(0, 2**32 - 1),
    st.sampled_from([1e-3, 1.0, 30.0, 1e4]),
    st.sampled_from([1, 2, 5, 2048]),
)
def test_piece_confidences_equal_softmax_bit_for_bit(lengths, seed, scale, chunk):
    from mailwoman_eval.decode import label_probabilities, piece_scores
    from mailwoman_eval.evaluate import piece_statistics

    labels = bio_labels(["street", "postcode"])
    rng = np.random.default_rng(seed)
    logits = [(rng.standard_normal((n, len(labels))) * scale).astype(np.float32) for n in lengths]
    if lengths[0]:
        logits[0][0, :2] = logits[0][0, 2]  # a tie for the best label
    paths = [rng.integers(0, len(labels), n) for n in lengths]
    stats = piece_statistics(logits, paths, labels)
    flat = np.concatenate(logits).astype(np.float64)
    probs = flat - flat.max(-1, keepdims=True)  # the plain softmax, as the oracle
    np.exp(probs, out=probs)
    probs /= probs.sum(-1, keepdims=True)
    path = np.concatenate(paths).astype(np.int64)
    assert np.array_equal(stats.amax_all, probs.max(-1))
    assert [c for row in stats.chosen for c in row] == np.round(probs[np.arange(len(path)), path], 6).tolist()
    if len(path):  # unrounded, computed in chunks of pieces (chunks reuse their float64 scratch)
        amax, chosen = label_probabilities(piece_scores(logits, chunk), path)
        assert np.array_equal(amax, probs.max(-1)) and np.array_equal(chosen, probs[np.arange(len(path)), path])


# ---------------------------------------------------------------------------------------------
# the seqeval metric's entities come from array ops over all paths at once: the same entities as
# seqeval over whole sequences (row boundaries, empty rows, orphan I-, B- after another tag)

BIO_LABELS = st.sampled_from(["O", "B-street", "I-street", "B-postcode", "I-postcode", "I-region"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(BIO_LABELS, max_size=14), min_size=1, max_size=12))
def test_iob2_entities_equal_seqeval_on_whole_sequences(seqs):
    from seqeval.scheme import IOB2, Entities

    whole = Entities([list(s) for s in seqs], IOB2, suffix=False).entities
    expected = {(i, e.tag, e.start, e.end) for i, ents in enumerate(whole) for e in ents}
    assert seqeval_entities(seqs) == expected


# ---------------------------------------------------------------------------------------------
# metrics and compare/gate are functions of the entries, not of their order

OUTCOMES = st.sampled_from([NONE, TP, FP, FN, WRONG])


@FAST
@given(st.integers(1, 25).flatmap(lambda n: st.tuples(
    st.lists(st.lists(OUTCOMES, min_size=3, max_size=3), min_size=n, max_size=n),
    st.permutations(range(n)),
    st.lists(st.integers(0, 12), min_size=n, max_size=n),
)))
def test_summarize_is_invariant_to_entry_order(args):
    rows, perm, pieces = args
    tags = ["postcode", "region", "street"]

    def vectors(order):
        out = np.array([rows[i] for i in order], dtype=np.int8).reshape(len(order), 3)
        n_p = np.array([pieces[i] for i in order], dtype=np.int64)
        return EntryVectors(tags, out, n_p * 0.5, n_p * 0.25, n_p)  # binary fractions: exact sums

    a, b = summarize(vectors(range(len(rows)))), summarize(vectors(perm))
    assert a == b


TAGS = ["postcode", "region", "street"]
VALUES = st.sampled_from(["10001", "NY", "ny", "Main St", "Main St.", "Elm"])
COMPS = st.dictionaries(st.sampled_from(TAGS), VALUES, max_size=3)


def permuted(run: Run, perm) -> Run:
    """The same entries (ids travel with them) in another order."""
    return Run(run.path, run.meta, [run.predictions[i] for i in perm])


def exact_conf(run: Run) -> Run:
    for p in run.predictions:  # binary fractions, so sums do not depend on the order of addition
        p["conf"], p["amax_conf"] = [0.5], [0.75]
    return run


def sort_changes(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    for t in doc.get("changes", {}).values():
        t["broken"].sort(key=lambda x: x["id"])
        t["fixed"].sort(key=lambda x: x["id"])
    return doc


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 10).flatmap(lambda n: st.tuples(
        st.lists(st.tuples(COMPS, COMPS, COMPS), min_size=n, max_size=n),
        st.permutations(range(n)),
    )),
    st.sampled_from(["runtime", "upstream-eval"]),
)
def test_compare_and_gate_are_invariant_when_both_runs_are_permuted_alike(args, profile):
    rows, perm = args
    raw = lambda g, b, c: " ".join(sorted({*g.values(), *b.values(), *c.values()})) or "x"  # noqa: E731
    base = exact_conf(make_run([(raw(g, b, c), g, b) for g, b, c in rows], TAGS, profile, "base"))
    cand = exact_conf(make_run([(raw(g, b, c), g, c) for g, b, c in rows], TAGS, profile, "cand"))
    n = len(rows)
    th = gate_mod.Thresholds()

    plain_c = compare_mod.compare(base, cand, resamples=1000, seed=3)
    plain_g = gate_mod.gate(base, cand, th, seed=3)
    pb, pc = permuted(base, perm), permuted(cand, perm)
    perm_c = compare_mod.compare(pb, pc, resamples=1000, seed=3)
    perm_g = gate_mod.gate(pb, pc, th, seed=3)

    # Observed numbers do not depend on entry order at all.
    for view in plain_c["views"]:
        for tag, r in plain_c["views"][view]["per_tag"].items():
            q = perm_c["views"][view]["per_tag"][tag]
            assert (r["support"], r["tp"], r["fp"], r["fn"]) == (q["support"], q["tp"], q["fp"], q["fn"])
            for m in ("precision", "recall", "f1"):
                assert (r[m]["base"], r[m]["cand"], r[m]["delta_pp"]) == (q[m]["base"], q[m]["cand"], q[m]["delta_pp"])
    for view, rows_ in plain_g["results"].items():
        for tag, r in rows_.items():
            q = perm_g["results"][view][tag]
            assert (r["base_f1"], r["cand_f1"], r["delta_pp"], r["support"]) == (q["base_f1"], q["cand_f1"], q["delta_pp"], q["support"])
    assert plain_c["category_shifts"] == perm_c["category_shifts"]

    # CIs and p-values come from seeded draws assigned to entries by position. Give each entry
    # the draws it had before the permutation, and every number (verdicts included) is identical.
    def weights_following_the_entries(size, resamples, seed):
        w = resample_weights(size, resamples, seed)
        return w[:, list(perm)] if size == n else w

    with mock.patch.object(compare_mod, "resample_weights", weights_following_the_entries), \
         mock.patch.object(gate_mod, "resample_weights", weights_following_the_entries):
        perm_c = compare_mod.compare(pb, pc, resamples=1000, seed=3)
        perm_g = gate_mod.gate(pb, pc, th, seed=3)
    assert sort_changes(perm_c) == sort_changes(plain_c)
    assert perm_g == plain_g


@FAST
@given(RAW, st.data())
def test_gold_bio_is_paint_then_piece_tags_then_bio(raw, data):
    """gold_bio is the fused, faster form of the three documented steps; it must give their labels
    (whitespace-led pieces, zero-width byte-fallback pieces, values found or not, overlaps)."""
    need_shared()
    from mailwoman_eval.align import bio_from_piece_tags, gold_bio, paint_components, piece_tags

    enc = tokenizer().encode(raw)
    tags = ["a", "b", "c"]
    comps = {}
    for tag in data.draw(st.lists(st.sampled_from(tags + ["outside"]), max_size=4, unique=True)):
        s = data.draw(st.integers(0, len(raw)))
        e = data.draw(st.integers(s, len(raw)))
        comps[tag] = data.draw(st.sampled_from([raw[s:e], raw[s:e].upper(), "zz"]))
    limit = data.draw(st.sampled_from([None, 3]))
    want = bio_from_piece_tags(piece_tags(raw, enc, paint_components(raw, comps, tags), limit))
    assert gold_bio(raw, comps, tags, enc, limit) == want
    assert gold_bio(raw, comps, frozenset(tags), enc, limit) == want


def test_a_components_confidence_is_the_mean_of_unrounded_piece_confidences(tmp_path):
    """§5.2: a component's confidence is the mean of softmax[chosen] over its pieces. It was the
    mean of the values already rounded to 1e-6 for predictions.jsonl (off by 1e-6 in ~15% of
    components on tiny v0.1.2)."""
    import json

    from conftest import TOKENIZER_V010

    from mailwoman_eval.decode import build_transitions
    from mailwoman_eval.evaluate import RowDecoder, piece_statistics
    from mailwoman_eval.golden import load_golden
    from mailwoman_eval.profiles import RUNTIME
    from mailwoman_eval.tokenizer import Tokenizer

    (tmp_path / "us.jsonl").write_text(json.dumps({"raw": "Main Street", "components": {"street": "Main Street"}}) + "\n")
    entries = load_golden(tmp_path).entries
    enc = Tokenizer(TOKENIZER_V010).encode("Main Street")
    assert len(enc.ids) == 3
    labels = ["O", "B-street", "I-street"]
    # chosen probabilities ~0.9000004, 0.9000004, 0.9000009: rounded first (0.9, 0.9, 0.900001), their
    # mean is 0.9000003 -> 0.9; unrounded it is 0.9000006 -> 0.900001
    want = [0.9000004, 0.9000004, 0.9000009]
    logits = np.zeros((3, 3), dtype=np.float32)
    for j, p in enumerate(want):  # softmax over (0, x, 0) at label 1 or 2 = e^x / (e^x + 2)
        logits[j, 1 if j == 0 else 2] = np.log(2 * p / (1 - p))
    decoder = RowDecoder(entries, [enc], labels, ["street"], build_transitions(RUNTIME, labels, None), RUNTIME)
    decoder([0], [logits])
    rec = decoder.predictions[0]
    assert rec["labels"] == ["B-street", "I-street", "I-street"]
    exact = piece_statistics([logits], [np.array([1, 2, 2])], labels).chosen_exact[0]
    assert rec["pred"]["street"]["confidence"] == round(sum(exact) / 3, 6)
    assert round(sum(rec["conf"]) / 3, 6) != rec["pred"]["street"]["confidence"]  # the case tells the two apart


@given(st.integers(min_value=40, max_value=3000), st.sampled_from([0.8, 0.9, 0.95, 0.99]), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_percentile_ci_leaves_as_many_replicates_out_below_as_above(B, level, seed):
    """floor(B·(1−level)/2) replicates each side, whatever the floating-point value of (1−level)/2
    (0.025000000000000022 for 0.95: np.quantile's interval was symmetric at B = 2000 only by it)."""
    from mailwoman_eval.stats import percentile_ci

    samples = np.random.default_rng(seed).permutation(B).astype(np.float64)[:, None]  # distinct values
    lo, hi = percentile_ci(samples, level)
    want = int(np.floor(B * (1 - level) / 2 + 1e-9))
    assert int((samples < lo).sum()) == want == int((samples > hi).sum())
    if (B, level) == (2000, 0.95):
        assert (lo[0], hi[0]) == (50.0, 1949.0)  # the 51st and the 1950th of 0..1999


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.integers(0, 6))
@settings(max_examples=300, deadline=None)
def test_signed_never_prints_a_negative_zero(x, digits):
    """Deltas print with their sign; one that rounds to zero printed "-0.0000" (diagnose's Δ of a
    macro F1 on the v0.4.0-size checkpoint)."""
    from mailwoman_eval.console import signed

    text = signed(x, digits)
    assert text[0] in "+-" and float(text) == round(x, digits)
    assert not (float(text) == 0 and text.startswith("-")), text
    assert text == f"{x:+.{digits}f}" or float(text) == 0.0
