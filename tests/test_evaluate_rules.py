"""`mweval eval` from checkpoint to run, rule by rule (design.md "The run artifact — the one seam" and
Decisions "Profiles" rows "comparison" and "tags scored", "Both profiles truncate to 128 pieces";
README "The run directory"; docs/robustness.md rows golden-unknown-tag, golden-component-whitespace-only,
golden-value-not-in-raw, golden-duplicate-rows, golden-manifest-sha256-mismatch, golden-raw-over-128-pieces):
the golden audit (each hazard counted once, examples capped at 200, per profile), the warnings and
counts a run records, every predictions.jsonl field against its entry, its encoding and the model's
own logits (labels are the Viterbi path of the row's logits alone, confidences its softmax), decoding
in batches in any order giving the same records, non-finite logits refused by entry, and a cache hit
recording where this command found its inputs.

Runs use the real tiny upstream checkpoint and tokenizer on small hand-written golden sets.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import TINY, TINY_STEP, TOKENIZER_V010, error_text, need_shared

from mailwoman_eval.align import gold_bio
from mailwoman_eval.decode import CRFParams, build_transitions, components_from_labels, viterbi
from mailwoman_eval.evaluate import (
    EvalOptions,
    RowDecoder,
    audit,
    decode_paths,
    evaluate,
    piece_statistics,
    refuse_nonfinite,
    short_gil_switch,
)
from mailwoman_eval.golden import load_golden
from mailwoman_eval.profiles import RUNTIME, UPSTREAM_EVAL
from mailwoman_eval.tokenizer import MAX_LENGTH

TAGS = ["country", "region", "locality", "postcode", "street", "house_number"]
ADDRESS = {"house_number": "12", "street": "Main St", "locality": "Springfield", "region": "IL", "postcode": "62701"}
ROWS = [  # us.jsonl, line by line
    {"raw": "12 Main St, Springfield, IL 62701", "components": ADDRESS, "country": "US", "source": "hand", "notes": "n1"},
    {"raw": "10 Rue de la Paix, PARIS", "components": {"locality": "Paris", "street": "Rue de la Paix"}},
    {"raw": "5 Rue X, Marseille", "components": {"locality": "Lyon", "country": "", "unit": "4B"}},
    {"raw": "Apt 4B, floor 3, 1 Elm St, Boston, U.S.A.", "components": {"unit": "4B", "floor": "3", "country": "U.S.A.", "region": "  "}},
    {"raw": "12 Main St, Springfield, IL 62701", "components": ADDRESS},  # a duplicate of line 1
    {"raw": " ".join(["Foo"] * 140) + " Springfield 62701", "components": {"postcode": "62701"}},  # > 128 pieces
    {"raw": "東京都千代田区丸の内1-1", "components": {"region": "東京都"}},
    {"raw": " ".join(["Foo"] * 61) + " Springfield, 62701", "components": {"postcode": "62701"}},  # 128 pieces: all kept
    {"raw": "14 Main St, Springfield, IL 62701", "components": {**ADDRESS, "house_number": "14"}},
]
DEMO_RUN = Path(__file__).resolve().parents[1] / "demo" / "runs" / "regressed"
ADVERSARIAL = {"raw": "Paris Paris", "components": {"locality": "Paris"}}


def write_set(directory: Path, manifest: str | None = None) -> Path:
    """The hand-written set; `manifest`: None, "ok" (it matches) or "bad" (a wrong row count and sha256)."""
    directory.mkdir(parents=True)
    us = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS).encode()
    (directory / "us.jsonl").write_bytes(us)
    (directory / "adversarial.jsonl").write_text(json.dumps(ADVERSARIAL) + "\n")
    if manifest:
        sha = hashlib.sha256(us).hexdigest() if manifest == "ok" else "0" * 64
        files = {"us.jsonl": {"sha256": sha, "entries": len(ROWS)}, "adversarial.jsonl": {"entries": 1 if manifest == "ok" else 2}}
        (directory / "MANIFEST.json").write_text(json.dumps({"files": files}))
    return directory


def without_manifest(aud: dict) -> dict:
    return {k: v for k, v in aud.items() if k != "manifest"}


# ---- the golden audit ------------------------------------------------------------------------

def test_the_audit_counts_each_gold_hazard_once_under_runtime(tmp_path):
    gset = load_golden(write_set(tmp_path / "g"))
    assert list(audit(gset, TAGS, RUNTIME)["gold_tags_outside_labels"]) == ["floor", "unit"]  # sorted by tag, not by first sight
    assert without_manifest(audit(gset, TAGS, RUNTIME)) == {
        "gold_tags_outside_labels": {"floor": 1, "unit": 2},  # empty values are not gold values
        "values_not_in_raw": 2,
        "values_case_only_in_raw": 1,
        "values_not_in_raw_examples": [
            {"id": "us.jsonl:2", "tag": "locality", "value": "Paris", "case_only": True},
            {"id": "us.jsonl:3", "tag": "locality", "value": "Lyon", "case_only": False},
        ],
        "unreachable_under_profile": 3,
        "unreachable_examples": [  # "Paris" is reachable case-folded
            {"id": "us.jsonl:3", "tag": "locality", "value": "Lyon", "reason": "not in raw"},
            {"id": "us.jsonl:4", "tag": "country", "value": "U.S.A.", "reason": "leading/trailing non-word chars are always trimmed"},
            {"id": "us.jsonl:4", "tag": "region", "value": "  ", "reason": "only whitespace"},
        ],
        "duplicate_rows": 1,
    }


def test_the_audit_lists_what_upstream_eval_cannot_reach(tmp_path):
    gset = load_golden(write_set(tmp_path / "g"))
    aud = audit(gset, TAGS, UPSTREAM_EVAL)
    assert aud["unreachable_under_profile"] == 3
    assert aud["unreachable_examples"] == [  # case-sensitive and untrimmed: "U.S.A." is reachable, "Paris" is not
        {"id": "us.jsonl:2", "tag": "locality", "value": "Paris", "reason": "case differs from raw"},
        {"id": "us.jsonl:3", "tag": "locality", "value": "Lyon", "reason": "not in raw"},
        {"id": "us.jsonl:4", "tag": "region", "value": "  ", "reason": "only whitespace"},
    ]
    assert aud["values_not_in_raw"] == 2 and aud["values_case_only_in_raw"] == 1  # the same under either profile
    assert aud["manifest"] == {"status": "absent", "manifest": None, "problems": []}


def test_audit_examples_stop_at_200_but_every_value_is_counted(tmp_path):
    g = tmp_path / "g"
    g.mkdir()
    rows = [{"raw": f"{i} Rue X", "components": {"locality": "Lyon"}} for i in range(201)]
    (g / "fr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    aud = audit(load_golden(g), TAGS, RUNTIME)
    assert aud["values_not_in_raw"] == 201 and aud["unreachable_under_profile"] == 201
    assert len(aud["values_not_in_raw_examples"]) == 200 and len(aud["unreachable_examples"]) == 200
    assert aud["values_not_in_raw_examples"][-1]["id"] == "fr.jsonl:200"
    assert aud["unreachable_examples"][-1]["id"] == "fr.jsonl:200"


# ---- one evaluation of the hand-written set ---------------------------------------------------

@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    """The tiny checkpoint on the hand-written set (with a manifest that does not match), and the
    model's logits for every row, got from the backend directly."""
    need_shared()
    from mailwoman_eval.checkpoints.resolve import load_backend, resolve_checkpoint
    from mailwoman_eval.tokenizer import Tokenizer

    base = tmp_path_factory.mktemp("hand")
    gset = load_golden(write_set(base / "g", manifest="bad"))
    ref = resolve_checkpoint(str(TINY_STEP))
    began = time.perf_counter()
    run = evaluate(ref, gset, EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010), use_cache=False), base / "run")
    took = time.perf_counter() - began
    tok = Tokenizer(TOKENIZER_V010)
    encodings = tok.encode_many([e.raw for e in gset.entries])
    backend = load_backend(ref)
    logits = backend.infer([np.asarray(enc.ids[:MAX_LENGTH], dtype=np.int64) for enc in encodings])
    transitions = build_transitions(RUNTIME, backend.labels, backend.crf)
    return SimpleNamespace(
        run=run, took=took, gset=gset, encodings=encodings, logits=logits, labels=backend.labels, transitions=transitions, backend=backend
    )


def test_the_run_warns_of_each_hazard_in_the_order_the_docs_give(hand):
    run, gset = hand.run, hand.gset
    sha = hashlib.sha256((gset.path / "us.jsonl").read_bytes()).hexdigest()
    assert run.meta["warnings"] == [
        "gold tags outside the checkpoint's label set are not scored: floor (1), unit (2)",
        "golden set does not match its manifest: adversarial.jsonl: 1 rows != manifest 2; "
        f"us.jsonl: sha256 {sha[:12]}… != manifest 000000000000…",
        "1 entries exceed 128 pieces and were truncated (scored as upstream does)",
    ]
    assert run.meta["audit"]["manifest"]["status"] == "mismatch"
    assert run.meta["audit"]["gold_tags_outside_labels"] == {"floor": 1, "unit": 2}


def test_the_run_counts_entries_flags_and_decoded_pieces(hand):
    run, encodings, logits, labels = hand.run, hand.encodings, hand.logits, hand.labels
    counts = run.meta["counts"]
    assert {k: counts[k] for k in ("entries", "adversarial", "non_latin", "truncated")} == {
        "entries": 10, "adversarial": 1, "non_latin": 1, "truncated": 1,
    }  # fmt: skip
    assert counts["pieces_decoded"] == sum(min(len(enc), MAX_LENGTH) for enc in encodings) == sum(map(len, logits))
    assert counts["invalid_bio_decoded"] == 0  # the structural mask forbids O -> I-x
    argmax = [x.argmax(1) for x in logits]
    lone_i = sum(
        1
        for path in argmax
        for k, lab in enumerate(labels[j] for j in path)
        if lab.startswith("I-") and (k == 0 or labels[path[k - 1]][2:] != lab[2:])
    )
    assert counts["invalid_bio_argmax"] == lone_i > 0


def test_every_record_carries_its_entry_and_its_first_128_pieces(hand):
    run, gset, encodings = hand.run, hand.gset, hand.encodings
    assert [p["id"] for p in run.predictions] == [e.id for e in gset.entries]
    for p, e, enc in zip(run.predictions, gset.entries, encodings, strict=True):
        kept = min(len(enc), MAX_LENGTH)
        assert (p["file"], p["line"], p["raw"], p["gold"]) == (e.file, e.line, e.raw, e.components)
        assert (p["country"], p["source"], p["notes"]) == (e.country, e.source, e.notes)
        assert (p["adversarial"], p["non_latin"]) == (e.adversarial, e.non_latin)
        assert p["n_pieces"] == len(enc) and p["truncated"] == (len(enc) > MAX_LENGTH)
        assert p["pieces"] == list(enc.pieces[:kept])
        assert p["spans"] == [[b, x] for b, x in zip(enc.begin[:kept], enc.end[:kept], strict=True)]
        assert len(p["labels"]) == len(p["gold_labels"]) == len(p["conf"]) == len(p["amax_conf"]) == kept
        for c in p["pred"].values():
            assert p["raw"][c["start"] : c["end"]] == c["value"] and c["confidence"] == round(c["confidence"], 6)
    first = run.predictions[1]  # us.jsonl:1 (adversarial.jsonl sorts first)
    assert (first["country"], first["source"], first["notes"]) == ("US", "hand", "n1")
    assert [p["n_pieces"] for p in run.predictions][-4:-1] == [285, 22, 128]  # the limit itself is not truncation
    assert [p["truncated"] for p in run.predictions] == [False] * 6 + [True, False, False, False]
    assert [p["adversarial"] for p in run.predictions] == [True] + [False] * 9  # adversarial.jsonl sorts first


def test_labels_are_the_viterbi_path_of_the_rows_own_logits_and_confidences_its_softmax(hand):
    run, gset, encodings, logits, labels, transitions = hand.run, hand.gset, hand.encodings, hand.logits, hand.labels, hand.transitions
    for p, e, enc, x in zip(run.predictions, gset.entries, encodings, logits, strict=True):
        assert p["labels"] == [labels[k] for k in viterbi(x, transitions)]
        z = x.astype(np.float64)
        prob = np.exp(z - z.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        path = [labels.index(lab) for lab in p["labels"]]
        assert p["conf"] == pytest.approx(prob[np.arange(len(x)), path].tolist(), abs=1e-6)
        assert p["amax_conf"] == pytest.approx(prob.max(1).tolist(), abs=1e-6)
        chosen = np.exp(z[np.arange(len(x)), path] - z.max(1)) / np.exp(z - z.max(1, keepdims=True)).sum(1)
        comps = components_from_labels(e.raw, p["labels"], enc.begin, enc.end, chosen.tolist(), RUNTIME)
        assert p["pred"] == {t: {"value": c.value, "start": c.start, "end": c.end, "confidence": round(c.confidence, 6)}
                             for t, c in comps.items()}
        assert p["gold_labels"] == gold_bio(e.raw, e.components, set(run.meta["tags"]), enc, limit=MAX_LENGTH)


def test_the_seqeval_cross_check_counts_each_entitys_own_row(hand):
    """README "The run directory": seqeval's strict IOB2 over the gold and decoded label paths, entry by
    entry; the last row (predicted right) must not be read as part of the row before it."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    run = hand.run
    gold = [p["gold_labels"] for p in run.predictions]
    pred = [p["labels"] for p in run.predictions]
    assert pred[-1] == gold[-1] and "B-house_number" in pred[-1]
    want = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    got = run.meta["metrics"]["seqeval"]
    for tag in ("house_number", "street", "locality", "region", "postcode"):
        assert got["per_tag"][tag]["support"] == want[tag]["support"], tag
        for k, wk in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert got["per_tag"][tag][k] == pytest.approx(want[tag][wk], abs=1e-6), (tag, k)
    assert got["micro"]["f1"] == pytest.approx(want["micro avg"]["f1-score"], abs=1e-6)


def test_a_duplicate_row_gets_the_same_record_but_its_own_id(hand):
    run = hand.run
    a, b = run.predictions[1], run.predictions[5]  # us.jsonl lines 1 and 5
    assert (a["id"], b["id"]) == ("us.jsonl:1", "us.jsonl:5")
    assert {k: v for k, v in a.items() if k not in ("id", "line", "country", "source", "notes")} == {
        k: v for k, v in b.items() if k not in ("id", "line", "country", "source", "notes")
    }
    assert run.meta["audit"]["duplicate_rows"] == 1


# ---- RowDecoder: any batches, any order -------------------------------------------------------

def test_decoding_in_batches_in_any_order_then_finish_gives_the_same_records(hand):
    run, gset, encodings, logits, labels, transitions = hand.run, hand.gset, hand.encodings, hand.logits, hand.labels, hand.transitions
    tags = run.meta["tags"]
    whole = RowDecoder(gset.entries, encodings, labels, tags, transitions, RUNTIME)
    whole(range(len(logits)), logits)
    parts = RowDecoder(gset.entries, encodings, labels, tags, transitions, RUNTIME)
    for rows in ([6, 2], [5, 0, 3]):  # rows 1, 4, 7, 8 and 9 are left to finish
        parts(rows, [logits[i] for i in rows])
    assert [i for i, p in enumerate(parts.predictions) if p is None] == [1, 4, 7, 8, 9]
    parts.finish(logits)
    assert parts.predictions == whole.predictions == run.predictions
    assert parts.outcome_rows == whole.outcome_rows
    for a, b in zip(parts.paths, whole.paths, strict=True):
        assert a.tolist() == b.tolist()
    for a, b in zip(parts.amax, whole.amax, strict=True):
        assert a.tolist() == b.tolist()
    assert len(parts.invalid) == 3 and len(whole.invalid) == 1
    assert tuple(map(sum, zip(*parts.invalid, strict=True))) == whole.invalid[0]
    assert whole.invalid[0] == (run.meta["counts"]["invalid_bio_argmax"], run.meta["counts"]["invalid_bio_decoded"])


def test_a_batch_with_non_finite_logits_is_not_decoded_and_the_refusal_names_the_first_row(hand):
    run, gset, encodings, logits, labels, transitions = hand.run, hand.gset, hand.encodings, hand.logits, hand.labels, hand.transitions
    dec = RowDecoder(gset.entries, encodings, labels, run.meta["tags"], transitions, RUNTIME)
    bad = [x.copy() for x in logits]
    bad[2][0, 3] = np.nan
    bad[4][1, 0] = np.inf
    dec([0, 1], bad[:2])
    assert not dec.nonfinite and dec.predictions[0] is not None
    with np.errstate(invalid="ignore"):  # inf - inf in the softmax of a row that is then refused
        dec([2, 3, 4], bad[2:5])
    assert dec.nonfinite and dec.predictions[2:5] == [None, None, None] and dec.invalid == dec.invalid[:1]
    assert error_text(refuse_nonfinite, bad, gset.entries, "ck/model") == (
        "ck/model: the model produced NaN or infinite logits for 2 of 10 entries (first: us.jsonl:2)"
    )
    refuse_nonfinite(logits, gset.entries, "ck/model")  # all finite: returns


def test_the_gil_switch_interval_is_shortened_inside_and_restored_after_even_on_error():
    before = sys.getswitchinterval()
    with short_gil_switch():
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert sys.getswitchinterval() == before
    with pytest.raises(KeyError), short_gil_switch(0.002):
        assert sys.getswitchinterval() == pytest.approx(0.002)
        raise KeyError("x")
    assert sys.getswitchinterval() == before


# ---- decode_paths and piece_statistics on hand-made logits -------------------------------------

LABELS = ["O", "B-a", "I-a", "B-b", "I-b"]


def test_decode_paths_batches_by_length_and_pads_only_within_a_batch():
    rng = np.random.default_rng(7)
    lengths = [5, 1, 9, 3, 7, 2, 8]
    logits = [rng.normal(size=(n, len(LABELS))).astype(np.float32) * 3 for n in lengths]
    crf = CRFParams("learned", rng.normal(size=(5, 5)), rng.normal(size=5), rng.normal(size=5))
    for tr in (build_transitions(RUNTIME, LABELS, crf), build_transitions(RUNTIME, LABELS, None)):
        expected = [viterbi(x, tr).tolist() for x in logits]
        for per_batch in (1, 2, 3, 256):
            got = decode_paths(logits, tr, len(LABELS), rows_per_batch=per_batch)
            assert [p.tolist() for p in got] == expected, (tr.source, per_batch)


def test_piece_statistics_splits_softmax_confidences_per_entry_and_counts_lone_i():
    a = np.array([[0.0, 3.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 2.0]], dtype=np.float32)  # argmax B-a, I-b
    b = np.array([[0.0, 0.0, 4.0, 0.0, 0.0]], dtype=np.float32)  # argmax I-a at the entry's start
    c = np.array([[0.0, 0.0, 5.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0, 0.0]], dtype=np.float32)
    paths = [np.array([1, 3]), np.array([0]), np.array([1, 2, 2])]
    stats = piece_statistics([a, b, c], paths, LABELS)

    def softmax(x):
        e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    assert stats.labels == [["B-a", "B-b"], ["O"], ["B-a", "I-a", "I-a"]]
    for r, (x, path) in enumerate(zip([a, b, c], paths, strict=True)):
        p = softmax(x)
        assert stats.chosen_exact[r] == pytest.approx(p[np.arange(len(x)), path].tolist(), rel=1e-12)
        assert stats.chosen[r] == [round(v, 6) for v in p[np.arange(len(x)), path].tolist()]
        assert stats.amax[r] == [round(v, 6) for v in p.max(1).tolist()]
        assert stats.amax_rows[r].tolist() == pytest.approx(p.max(1).tolist(), rel=1e-12)
    assert len(stats.amax_all) == 6
    # argmax: I-b after B-a (1), I-a opening entry b (1), I-a opening entry c after b's I-a (1), I-a after O (1)
    assert (stats.invalid_argmax, stats.invalid_decoded) == (4, 0)
    empty = piece_statistics([], [], LABELS)
    assert (empty.labels, empty.chosen, empty.amax, empty.amax_rows, len(empty.amax_all)) == ([], [], [], [], 0)
    assert (empty.invalid_argmax, empty.invalid_decoded) == (0, 0)


def test_run_json_records_the_backends_checkpoint_info_labels_environment_and_calibration(hand):
    import onnxruntime
    import sentencepiece

    from mailwoman_eval.metrics import calibration

    run, backend = hand.run, hand.backend
    ck = run.meta["checkpoint"]
    assert {k: ck[k] for k in backend.info} == json.loads(json.dumps(backend.info))
    assert (ck["labels"], ck["labels_source"]) == (hand.labels, backend.labels_source)
    assert (ck["path"], ck["kind"]) == (str(TINY_STEP), "pytorch")
    env = run.meta["environment"]
    assert env["platform"] == platform.system().lower() + "-" + platform.machine()
    assert (env["numpy"], env["onnxruntime"], env["sentencepiece"]) == (np.__version__, onnxruntime.__version__, sentencepiece.__version__)
    amax = np.concatenate([1.0 / np.exp(x.astype(np.float64) - x.max(1, keepdims=True)).sum(1) for x in hand.logits])
    correct = np.concatenate([[a == g for a, g in zip(p["labels"], p["gold_labels"], strict=True)] for p in run.predictions])
    assert correct.any() and not correct.all()
    assert run.meta["metrics"]["calibration"] == json.loads(json.dumps(calibration(amax, correct)))


def test_torch_is_in_the_environment_only_when_the_torch_engine_computed_the_run(tmp_path):
    """environment() recorded torch whenever anything in the process had imported it: the same run
    got another run.json and cache key in a script (or a test session) that imported torch."""
    need_shared()
    import torch

    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint

    gset = load_golden(write_set(tmp_path / "g"))
    envs = {}
    for engine in ("onnx", "torch"):
        opts = EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010), use_cache=False, engine=engine)
        envs[engine] = evaluate(resolve_checkpoint(str(TINY_STEP)), gset, opts, tmp_path / engine).meta["environment"]
    assert "torch" in sys.modules and "torch" not in envs["onnx"]
    base = {k: v for k, v in envs["onnx"].items() if k != "onnx"}
    assert envs["torch"] == {**base, "torch": torch.__version__}


def test_the_onnx_package_is_in_the_environment_when_it_wrote_the_graph_that_ran(tmp_path, shared):
    """A PyTorch checkpoint's default engine runs a graph the onnx package writes (onnx_build), so
    its version is part of what turned the inputs into numbers; an ONNX model file's is not."""
    import onnx

    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint

    gset = load_golden(write_set(tmp_path / "g"))
    opts = EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010), use_cache=False)
    built = evaluate(resolve_checkpoint(str(TINY_STEP)), gset, opts, tmp_path / "built")
    assert built.meta["checkpoint"]["engine"] == "onnx" and built.meta["environment"]["onnx"] == onnx.__version__
    numpy_opts = EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010), use_cache=False, engine="numpy")
    assert "onnx" not in evaluate(resolve_checkpoint(str(TINY_STEP)), gset, numpy_opts, tmp_path / "np").meta["environment"]
    exported = evaluate(resolve_checkpoint(str(TINY / "onnx" / "model.onnx")), gset, opts, tmp_path / "file")
    assert exported.meta["checkpoint"]["kind"] == "onnx" and "onnx" not in exported.meta["environment"]


def test_the_timings_block_adds_up_and_is_rounded_to_the_microsecond(hand):
    t = hand.run.meta["timings"]
    assert t["cache"] == "miss" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t["started_at"])
    parts = ("load_and_tokenize_s", "inference_s", "decode_s", "score_s")
    for k in (*parts, "total_s", "rows_per_s"):
        assert isinstance(t[k], float) and t[k] >= 0 and round(t[k], 6) == t[k], k
    assert sum(t[k] for k in parts) <= t["total_s"] + 4e-6 and t["total_s"] <= hand.took  # measured within the call
    # 10 entries over a time measured a little after total_s, within the call
    assert 10 / hand.took <= t["rows_per_s"] <= 10 / (t["total_s"] - 1e-6) + 1e-6  # (each rounded to 1e-6)


# ---- options and outputs -------------------------------------------------------------------

def test_eval_options_default_to_the_documented_choices():
    opts = EvalOptions(profile=RUNTIME)
    assert (opts.tokenizer, opts.labels, opts.pad_to, opts.engine) == (None, None, "auto", "onnx")
    assert (opts.threads, opts.workers, opts.use_cache, opts.force, opts.force_hint) == (None, None, True, False, "use --force")


@pytest.mark.parametrize("hint", [None, "pass --overwrite"])
def test_a_non_empty_out_is_refused_with_the_callers_hint(tmp_path, hint):
    need_shared()
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint

    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    opts = EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010), use_cache=False)
    if hint:
        opts.force_hint = hint
    gset = load_golden(write_set(tmp_path / "g"))
    assert error_text(evaluate, resolve_checkpoint(str(TINY_STEP)), gset, opts, out) == (
        f"{out}: output directory is not empty and holds no mweval run.json; refusing to write ({hint or 'use --force'})"
    )
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_tokenizer_is_refused_only_when_its_vocab_is_larger_than_the_models_embedding(tmp_path):
    need_shared()
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint

    demo_ckpt, demo_tok = DEMO_RUN / "step-002200", DEMO_RUN / "tokenizer.model"  # 3000 rows / pieces
    gset = load_golden(write_set(tmp_path / "g"))
    opts = EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010), use_cache=False)
    assert error_text(evaluate, resolve_checkpoint(str(demo_ckpt)), gset, opts, tmp_path / "big") == (
        f"{TOKENIZER_V010}: tokenizer vocab 16000 is larger than the model's embedding (3000 rows)"
    )
    assert not (tmp_path / "big").exists()
    opts.tokenizer = str(demo_tok)  # 3000 pieces into the tiny checkpoint's 16000 rows: every id fits
    run = evaluate(resolve_checkpoint(str(TINY_STEP)), gset, opts, tmp_path / "small")
    assert run.meta["tokenizer"]["vocab_size"] == 3000 and run.meta["counts"]["entries"] == 10


def test_force_never_writes_into_the_golden_set_or_its_split_root(tmp_path):
    need_shared()
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint

    ref = resolve_checkpoint(str(TINY_STEP))
    opts = EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010), use_cache=False, force=True)
    dev = write_set(tmp_path / "set" / "dev")
    before = sorted(p.name for p in dev.iterdir())
    for out in (dev, dev.parent):
        assert error_text(evaluate, ref, lambda: load_golden(dev), opts, out) == (
            f"{out}: --out would overwrite an input of this command; write elsewhere"
        )
    assert sorted(p.name for p in dev.iterdir()) == before and sorted(p.name for p in dev.parent.iterdir()) == ["dev"]


# ---- the run cache --------------------------------------------------------------------------

def test_a_cache_hit_records_where_this_command_found_its_inputs(tmp_path):
    need_shared()
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint

    first = evaluate(resolve_checkpoint(str(TINY_STEP)), load_golden(write_set(tmp_path / "a", "ok"), "hand"),
                     EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010)), tmp_path / "run-a")
    # the same bytes found by other paths: a symlinked checkpoint and tokenizer, a copy of the golden
    # set whose manifest (found elsewhere) checks the same
    (tmp_path / "ck").symlink_to(TINY_STEP)
    (tmp_path / "tok.model").symlink_to(TOKENIZER_V010)
    copy = load_golden(write_set(tmp_path / "c", "ok"), "hand")
    began = time.perf_counter()
    hit = evaluate(resolve_checkpoint(str(tmp_path / "ck")), lambda: copy,
                   EvalOptions(profile=RUNTIME, tokenizer=str(tmp_path / "tok.model")), tmp_path / "run-c")
    took = time.perf_counter() - began
    assert first.meta["timings"]["cache"] == "miss" and hit.meta["timings"]["cache"] == "hit"
    assert hit.meta["timings"]["cache_key"] == first.meta["timings"]["cache_key"]
    assert isinstance(hit.meta["timings"]["total_s"], float) and 0 <= hit.meta["timings"]["total_s"] <= took  # within the call
    assert hit.meta["checkpoint"] == {**first.meta["checkpoint"], "path": str(tmp_path / "ck")}
    assert hit.meta["tokenizer"] == {**first.meta["tokenizer"], "path": str(tmp_path / "tok.model")}
    assert hit.meta["golden"] == copy.to_json() and hit.meta["golden"]["path"] == str(tmp_path / "c")
    assert hit.meta["audit"]["manifest"] == {"status": "ok", "manifest": str(tmp_path / "c" / "MANIFEST.json"), "problems": []}
    assert hit.predictions == first.predictions
    same = {k: v for k, v in hit.meta.items() if k not in ("timings", "golden", "checkpoint", "tokenizer", "audit")}
    assert same == {k: v for k, v in first.meta.items() if k not in ("timings", "golden", "checkpoint", "tokenizer", "audit")}
    assert {**hit.meta["audit"], "manifest": None} == {**first.meta["audit"], "manifest": None}
    # the manifest's check is an input: the same rows with a manifest that does not match are a miss
    bad = load_golden(write_set(tmp_path / "b", "bad"), "hand")
    miss = evaluate(resolve_checkpoint(str(TINY_STEP)), bad, EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010)),
                    tmp_path / "run-b")
    assert miss.meta["timings"]["cache"] == "miss"
