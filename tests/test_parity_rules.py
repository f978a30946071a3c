"""parity's rules and the label-list rules under them, edge by edge (design.md Decisions "Parity";
README "Parity"; upstream-formats.md §2 label lists, §7 upstream's int8-vs-fp32 bar of 1.5 pp, §10.1
scored tags; the docstrings of parity.py and labels.py).

Label lists, agreement counting and the logit / F1 differences are checked on hand-built inputs; the
verdicts (thresholds at their exact edges, which rule an int8 and an fp32 export answer to, the gated-tag
support threshold) on real checkpoints against real ONNX exports: the tiny upstream checkpoint on golden
v0.1.2/test and the bundled demo runs on demo-v1.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import GOLDEN_ROOT, REPO, TINY, TINY_STEP, TOKENIZER_V010

from mailwoman_eval.decode import CRFParams
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.golden import load_golden
from mailwoman_eval.labels import STAGE2_TAGS, V040_LABELS, bio_labels, check_labels, tag_of, tags_from_labels
from mailwoman_eval.parity import (
    EXAMPLES,
    Decoded,
    ParityOptions,
    _agreement,
    _crf_diff,
    _f1_delta_pp,
    _logit_diff,
    markdown,
    onnx_labels_arg,
)
from mailwoman_eval.profiles import RUNTIME

DEMO_RUNS = REPO / "demo" / "runs"
needs_demo = pytest.mark.skipif(not (DEMO_RUNS / "regressed" / "onnx" / "model.int8.onnx").is_file(),
                                reason="bundled demo runs not trained yet")


# ---------------------------------------------------------------------------------------------
# label lists (upstream-formats.md §2, §10.1; labels.check_labels' docstring)


def test_the_default_label_list_is_upstreams_v040_stage2_list():
    """§2: V040 is "O" then B-/I- of the 10 STAGE2 tags in this order, 21 labels (the default when a
    checkpoint carries none)."""
    assert STAGE2_TAGS == ("country", "region", "locality", "dependent_locality", "postcode", "subregion", "cedex",
                           "venue", "street", "house_number")
    assert V040_LABELS == [
        "O", "B-country", "I-country", "B-region", "I-region", "B-locality", "I-locality",
        "B-dependent_locality", "I-dependent_locality", "B-postcode", "I-postcode", "B-subregion", "I-subregion",
        "B-cedex", "I-cedex", "B-venue", "I-venue", "B-street", "I-street", "B-house_number", "I-house_number",
    ]


def test_bio_labels_put_b_at_1_plus_2k_and_i_at_2_plus_2k():
    """§2: "O" first, then B-tag, I-tag for each tag in order."""
    assert bio_labels(["a", "b", "c"]) == ["O", "B-a", "I-a", "B-b", "I-b", "B-c", "I-c"]
    assert bio_labels([]) == ["O"]


@pytest.mark.parametrize(("label", "tag"), [
    ("B-street", "street"), ("I-street", "street"), ("B-a-b", "a-b"), ("I-x", "x"),
    ("O", None), ("B-", None), ("I-", None), ("X-street", None), ("B_street", None), ("b-street", None), ("", None),
])
def test_tag_of_takes_the_tag_of_b_and_i_labels_only(label, tag):
    """'B-street' -> 'street'; 'O' or a malformed label -> None (a tag with a hyphen is a tag)."""
    assert tag_of(label) == tag


def test_scored_tags_are_the_b_labels_in_order_of_first_appearance():
    """§10.1: the tag of each B-x in the label list, in order of first appearance; an I- label alone
    adds no tag."""
    assert tags_from_labels(["O", "I-x", "B-y", "I-y", "B-x", "I-x", "B-y", "I-z"]) == ["y", "x"]
    assert tags_from_labels(V040_LABELS) == list(STAGE2_TAGS)
    assert tags_from_labels(["O", "I-a"]) == []


def label_error(labels, where: str | None = "labels.json") -> MwevalError:
    with pytest.raises(MwevalError) as e:
        check_labels(labels, "the list", where)
    assert e.value.where == where
    return e.value


@pytest.mark.parametrize(("labels", "message"), [
    ("O,B-a,I-a", "the list is a string, not a list of labels"),
    (None, "the list is null, not a list of labels"),
    ({"0": "O"}, "the list is an object, not a list of labels"),
    (3, "the list is a number, not a list of labels"),
    (2.5, "the list is a number, not a list of labels"),
    (True, "the list is a boolean, not a list of labels"),
    ({"O", "B-a"}, "the list is set, not a list of labels"),
    ([], "the list is empty"),
    ((), "the list is empty"),
    (["O", "B-a", 7], "the list: label 2 is a number, not a string"),
    ([None, "B-a"], "the list: label 0 is null, not a string"),
    (["O", False], "the list: label 1 is a boolean, not a string"),
    (["O", ["B-a"]], "the list: label 1 is an array, not a string"),
    (["O", {"B-a": 1}], "the list: label 1 is an object, not a string"),
    (["O", "B-a", ""], "the list: label 2 '' is neither O nor B-<tag> / I-<tag>"),
    (["O", "B-"], "the list: label 1 'B-' is neither O nor B-<tag> / I-<tag>"),
    (["o", "B-a"], "the list: label 0 'o' is neither O nor B-<tag> / I-<tag>"),
    (["O", "E-a"], "the list: label 1 'E-a' is neither O nor B-<tag> / I-<tag>"),
    (["O", "B-" + "x" * 38], None),  # 40 characters: shown whole, and well-formed
    (["O", "Q" + "x" * 39], "the list: label 1 '" + "Q" + "x" * 39 + "' is neither O nor B-<tag> / I-<tag>"),
    (["O", "Q" + "x" * 40], "the list: label 1 '" + "Q" + "x" * 39 + "…' is neither O nor B-<tag> / I-<tag>"),
    (["O", "B-a", "I-a", "B-a", "O", "B-a"], "the list names 'B-a', 'O' more than once"),
    (["O", "I-a", "O"], "the list names 'O' more than once"),  # duplicates are named before the missing B-
    (["O", "I-a"], "the list has no B-<tag> label, so no tag would be scored"),
    (["I-a"], "the list has no B-<tag> label, so no tag would be scored"),
])
def test_check_labels_says_what_is_wrong(labels, message):
    """check_labels: a list of distinct non-empty strings, each O, B-<tag> or I-<tag>, with at least
    one B-<tag>; anything else is a one-line MwevalError naming the source and its file."""
    if message is None:
        assert check_labels(labels, "the list", None) == labels
        return
    e = label_error(labels)
    assert e.message == message
    assert str(e) == f"labels.json: {message}"


def test_check_labels_shows_six_duplicates_then_an_ellipsis():
    """More than six labels named twice: the first six in order of their second appearance, then " …"."""
    tags = [f"t{i}" for i in range(8)]
    once = bio_labels(tags)
    assert label_error(once + [f"B-t{i}" for i in (7, 6, 5, 4, 3, 2, 1)], None).message == (
        "the list names 'B-t7', 'B-t6', 'B-t5', 'B-t4', 'B-t3', 'B-t2' … more than once")
    assert label_error(once + [f"B-t{i}" for i in (7, 6, 5, 4, 3, 2)], None).message == (
        "the list names 'B-t7', 'B-t6', 'B-t5', 'B-t4', 'B-t3', 'B-t2' more than once")
    assert label_error(once + ["B-t1", "B-t1", "B-t1"], None).message == "the list names 'B-t1' more than once"


def test_the_first_bad_label_is_named_before_any_duplicate():
    """Labels are checked in order (a string, then its form); duplicates only once every label is well formed."""
    assert label_error(["O", "O", 5]).message == "the list: label 2 is a number, not a string"
    assert label_error(["O", "O", "x", 5]).message == "the list: label 2 'x' is neither O nor B-<tag> / I-<tag>"


def test_well_formed_lists_come_back_as_lists():
    """A tuple is accepted and returned as a list; a tag with a hyphen is well formed."""
    out = check_labels(("O", "B-a-b", "I-a-b"), "the list", None)
    assert out == ["O", "B-a-b", "I-a-b"] and isinstance(out, list)
    assert check_labels(["B-x"], "the list", None) == ["B-x"]


# ---------------------------------------------------------------------------------------------
# agreement, max |Δlogit| and the F1 change (design.md "Parity": agreement = % of pieces with the
# same decoded label, and % of entries identical; README: parity.json rounds to 4 places)


LABELS = bio_labels(["a", "b"])  # O B-a I-a B-b I-b


def golden(tmp_path, raws):
    d = tmp_path / "g"
    d.mkdir()
    (d / "us.jsonl").write_text("".join(json.dumps({"raw": r, "components": {}}) + "\n" for r in raws), encoding="utf-8")
    return load_golden(d, "hand")


def one_hot(path):
    x = np.zeros((len(path), len(LABELS)), dtype=np.float32)
    x[np.arange(len(path)), path] = 1.0
    return x


def decoded(paths, logits=None):
    paths = [np.asarray(p, dtype=np.int64) for p in paths]
    logits = logits if logits is not None else [one_hot(p) for p in paths]
    n = len(paths)
    return Decoded(logits, paths, np.zeros((n, 2), dtype=np.int8), np.zeros(n), np.array([len(p) for p in paths]))


def test_agreement_counts_pieces_and_whole_entries(tmp_path):
    """4 of 6 pieces and 1 of 3 entries decode alike: 66.6667% and 33.3333% (4 places), the counts
    beside them, and one example per differing entry with its differing pieces."""
    gset = golden(tmp_path, ["12 Main", "Paris 75001", "Lyon"])
    pieces = [["▁12", "▁Main"], ["▁Paris", "▁7", "5001"], ["▁Lyon"]]
    ref = decoded([[3, 1], [1, 3, 4], [1]])
    art_paths = [[3, 1], [1, 3, 3], [2]]
    # the artifact's emission argmax differs from the reference's on one piece only (the last entry's)
    art = decoded(art_paths, [one_hot([3, 1]), one_hot([1, 3, 4]), one_hot([2])])
    a = _agreement(ref, art, gset, LABELS, pieces)
    assert {k: v for k, v in a.items() if k != "examples"} == {
        "pieces_pct": 66.6667, "entries_pct": 33.3333, "argmax_pieces_pct": 83.3333,
        "pieces_total": 6, "pieces_differ": 2, "entries_total": 3, "entries_differ": 2,
    }
    assert a["examples"] == [
        {"id": "us.jsonl:2", "raw": "Paris 75001", "differing_pieces": 1,
         "pieces": [{"i": 2, "piece": "5001", "ref": "I-b", "artifact": "B-b"}]},
        {"id": "us.jsonl:3", "raw": "Lyon", "differing_pieces": 1,
         "pieces": [{"i": 0, "piece": "▁Lyon", "ref": "B-a", "artifact": "I-a"}]},
    ]


def test_identical_decodes_agree_on_every_piece_and_entry(tmp_path):
    gset = golden(tmp_path, ["12 Main", "Lyon"])
    ref = decoded([[3, 4], [1]])
    a = _agreement(ref, decoded([[3, 4], [1]]), gset, LABELS, [["▁12", "▁Main"], ["▁Lyon"]])
    assert (a["pieces_pct"], a["entries_pct"], a["argmax_pieces_pct"], a["pieces_differ"], a["entries_differ"], a["examples"]) == (
        100.0, 100.0, 100.0, 0, 0, [])


def test_examples_stop_at_the_cap_but_every_entry_is_counted(tmp_path):
    """parity.json lists at most EXAMPLES differing entries; the counts cover all of them."""
    n = EXAMPLES + 5
    gset = golden(tmp_path, [f"{i} Main" for i in range(n)])
    a = _agreement(decoded([[1]] * n), decoded([[3]] * n), gset, LABELS, [["▁x"]] * n)
    assert len(a["examples"]) == EXAMPLES and a["examples"][-1]["id"] == f"us.jsonl:{EXAMPLES}"
    assert (a["entries_differ"], a["pieces_differ"], a["entries_pct"]) == (n, n, 0.0)


def test_logit_difference_is_the_largest_and_mean_absolute_difference(tmp_path):
    """max |Δlogit| over every piece and label, the entry it is in, and the mean |Δ| over all values."""
    gset = golden(tmp_path, ["a", "b", "c"])
    ref_logits = [np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32), np.array([[5.0, 5.0]], dtype=np.float32),
                  np.array([[1.0, 1.0]], dtype=np.float32)]
    art_logits = [np.array([[0.0, 1.5], [2.0, 3.0]], dtype=np.float32), np.array([[5.0, 2.0]], dtype=np.float32),
                  np.array([[0.0, 1.0]], dtype=np.float32)]
    ref, art = decoded([[0, 1], [0], [0]], ref_logits), decoded([[0, 1], [0], [0]], art_logits)
    assert _logit_diff(ref, art, gset) == {"max_abs_diff": 3.0, "mean_abs_diff": 4.5 / 8, "worst_entry": "us.jsonl:2"}
    assert _logit_diff(art, ref, gset)["max_abs_diff"] == 3.0  # absolute: the sign of Δ does not matter
    same = _logit_diff(ref, ref, gset)
    assert same["max_abs_diff"] == 0.0 and same["mean_abs_diff"] == 0.0


def test_the_f1_change_is_artifact_minus_reference_in_pp():
    """Δ = artifact − reference, in pp, unrounded: 44/48 -> 43/48 (one value wrong: one FP and one FN)."""
    assert _f1_delta_pp({"tp": [44, 43], "fp": [4, 5], "fn": [4, 5]}) == pytest.approx(-100 / 48, abs=1e-6)
    assert _f1_delta_pp({"tp": [43, 44], "fp": [5, 4], "fn": [5, 4]}) == pytest.approx(100 / 48, abs=1e-6)
    assert _f1_delta_pp({"tp": [10, 10], "fp": [0, 0], "fn": [0, 0]}) == 0.0


def test_crf_difference_is_the_largest_over_transitions_start_and_end():
    """A sidecar's CRF is compared with the checkpoint's over all three parts."""
    z = CRFParams("learned", np.zeros((3, 3), np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32))

    def crf(t=0.0, s=0.0, e=0.0):
        tr, st, en = np.zeros((3, 3), np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)
        tr[1, 2], st[0], en[2] = t, s, e
        return CRFParams("sidecar", tr, st, en)

    assert _crf_diff(crf(t=0.5, s=-0.25, e=0.125), z) == 0.5
    assert _crf_diff(crf(t=0.125, s=-0.75, e=0.5), z) == 0.75
    assert _crf_diff(crf(t=0.125, s=0.25, e=-1.0), z) == 1.0
    assert _crf_diff(z, z) == 0.0


# ---------------------------------------------------------------------------------------------
# which label list goes to the ONNX backend (parity.onnx_labels_arg's docstring)


@pytest.mark.parametrize(("beside", "from_checkpoint"), [
    ({}, True),
    ({"crf-transitions.json": "{}"}, False),
    ({"model-card.json": json.dumps({"labels": ["O", "B-a", "I-a"]})}, False),
    ({"model-card.json": json.dumps({"version": "1.0.0"})}, True),  # a card without labels
    ({"model-card.json": "{not json"}, False),  # a card that does not parse is the backend's to refuse
    ({"model-card.json": json.dumps(["O", "B-a"])}, False),
])
def test_the_checkpoints_labels_go_to_the_backend_only_when_nothing_beside_the_onnx_has_a_list(tmp_path, beside, from_checkpoint):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"")
    for name, text in beside.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    got = onnx_labels_arg(onnx, ["O", "B-x", "I-x"])
    if from_checkpoint:
        assert got == (["O", "B-x", "I-x"], "checkpoint (no label list in a model card or sidecar beside the ONNX)")
    else:
        assert got == (None, None)


# ---------------------------------------------------------------------------------------------
# the verdicts, on real checkpoints and their real exports (design.md "Parity"; README "Parity")

TEST_SET = GOLDEN_ROOT / "v0.1.2" / "test"
FP32 = TINY / "onnx" / "model.onnx"
INT8 = TINY / "onnx" / "model.int8.onnx"
TINY_150 = TINY / "step-000150"  # the step before the exported one: a neighbouring step's exports


def run_parity(ckpt, onnx, gold=TEST_SET, name="v0.1.2/test", tokenizer=TOKENIZER_V010, **opts) -> dict:
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint
    from mailwoman_eval.parity import parity

    return parity(resolve_checkpoint(str(ckpt)), list(onnx), load_golden(gold, name),
                  ParityOptions(profile=RUNTIME, tokenizer=str(tokenizer) if tokenizer else None, **opts))


def test_default_thresholds_are_the_documented_ones():
    """design.md / README: gated tags have support ≥ 30; int8 within 1.5 pp (upstream's bar, §7) and
    ≥ 99.5% of pieces; fp32 ≥ 99.9% of pieces."""
    o = ParityOptions(profile=RUNTIME)
    assert (o.max_delta_pp, o.min_agreement, o.min_agreement_int8, o.min_support) == (1.5, 99.9, 99.5, 30)


def test_own_exports_pass_the_default_rules_which_the_document_states(shared):
    """The tiny checkpoint against its own fp32 and int8 exports, with the default options."""
    doc = run_parity(TINY_STEP, [FP32, INT8])
    fp32, int8 = doc["artifacts"]
    assert (fp32["kind"], int8["kind"]) == ("fp32", "int8")
    assert fp32["rule"] == "fp32: at least 99.9% of pieces decode to the reference's label"
    assert int8["rule"] == ("int8: every gated tag (support ≥ 30) within ±1.5 pp F1 of the reference, "
                            "and at least 99.5% of pieces decode to the reference's label")
    documented = ("max_delta_pp", "min_agreement_pct", "min_agreement_int8_pct", "min_support")
    assert [doc["thresholds"][k] for k in documented] == [1.5, 99.9, 99.5, 30]
    assert fp32["agreement"]["pieces_pct"] == 100.0 and fp32["agreement"]["entries_differ"] == 0
    assert 0 < int8["agreement"]["pieces_differ"] < int8["agreement"]["pieces_total"] * 0.005
    for a in (fp32, int8):
        assert a["gated_tags"] == [t for t in doc["tags"] if a["f1"][t]["support"] >= 30]
        assert all(a["f1"][t]["gated"] == (t in a["gated_tags"]) for t in doc["tags"])
        assert a["max_abs_delta_pp_gated"] == max(abs(a["f1"][t]["delta_pp"]) for t in a["gated_tags"])
        assert (a["verdict"], a["reasons"], a["warnings"]) == ("PASS", [], [])  # the sidecar beside them is this checkpoint's CRF
    assert (doc["verdict"], doc["failed"], doc["exit_code"]) == ("PASS", [], 0)
    assert doc["tags"] == list(STAGE2_TAGS)
    assert (doc["view"], doc["warnings"], doc["golden"]["manifest"]) == ("all", [], "ok")  # a set on its manifest: no warning
    assert [(a["labels_source"], a["zero_fed_inputs"]) for a in (fp32, int8)] == [("crf-transitions.json labels", [])] * 2
    assert fp32["macro_f1"]["base"] == fp32["macro_f1"]["cand"] > 0 and fp32["macro_f1"]["delta_pp"] == 0.0
    md = markdown(doc)
    assert "**model.onnx**:" not in md and "**model.int8.onnx**:" not in md  # nothing to say for either


def test_full_agreement_meets_a_floor_of_100_percent(shared):
    """The floor is a floor: agreement equal to it passes (fp32 export, 100% of pieces alike)."""
    doc = run_parity(TINY_STEP, [FP32], min_agreement=100.0)
    (a,) = doc["artifacts"]
    assert a["agreement"]["pieces_differ"] == 0 and (a["verdict"], a["reasons"]) == ("PASS", [])


def test_the_f1_bar_is_for_int8_only_and_each_kind_has_its_own_floor(shared):
    """A neighbouring step's exports (step-000300's, against step-000150) with no F1 allowance at all
    and both agreement floors at 0: the fp32 export answers only to the piece floor and passes; the
    int8 export fails on every gated tag whose F1 moved. The sidecar beside them is step-000300's CRF,
    so both warn that it differs from the checkpoint's."""
    doc = run_parity(TINY_150, [FP32, INT8], max_delta_pp=0.0, min_agreement=0.0, min_agreement_int8=0.0)
    fp32, int8 = doc["artifacts"]
    assert fp32["verdict"] == "PASS" and fp32["reasons"] == []
    assert fp32["max_abs_delta_pp_gated"] > 0  # F1 moved, and the fp32 rule does not look at it
    moved = [t for t in int8["gated_tags"] if int8["f1"][t]["delta_pp"] != 0]
    assert moved and int8["verdict"] == "FAIL"
    assert [r.split(" F1 moved ")[0] for r in int8["reasons"]] == moved
    assert (doc["verdict"], doc["failed"], doc["exit_code"]) == ("FAIL", ["model.int8.onnx"], 1)
    for a in (fp32, int8):
        (w,) = a["warnings"]
        assert w.startswith("crf-transitions.json beside the ONNX differs from the checkpoint's CRF (max |Δ| ")
    md = markdown(doc)  # parity.md says why, artifact by artifact
    assert f"**model.onnx**: warning: {fp32['warnings'][0]}" in md
    assert f"**model.int8.onnx**: {'; '.join(int8['reasons'])}; warning: {int8['warnings'][0]}" in md


def test_int8_answers_to_its_own_agreement_floor_not_the_fp32_one(shared):
    """--min-agreement (fp32) does not apply to an int8 export, and --min-agreement-int8 does."""
    loose = run_parity(TINY_STEP, [INT8], min_agreement=100.0, min_agreement_int8=0.0, max_delta_pp=100.0)
    assert loose["artifacts"][0]["verdict"] == "PASS"
    strict = run_parity(TINY_STEP, [INT8, FP32], min_agreement=0.0, min_agreement_int8=100.0, max_delta_pp=100.0)
    int8, fp32 = strict["artifacts"]
    ag = int8["agreement"]
    shown = f"{100 * (ag['pieces_total'] - ag['pieces_differ']) / ag['pieces_total']:.3f}"
    assert (int8["verdict"], int8["reasons"]) == ("FAIL", [f"piece agreement {shown}% < 100.0%"])
    assert fp32["verdict"] == "PASS"  # 100% alike, and the int8 floor is not its floor


def test_only_gated_tags_count_toward_the_f1_bar(shared):
    """With no tag reaching the support threshold nothing is gated: the F1 bar has nothing to fail."""
    doc = run_parity(TINY_150, [INT8], max_delta_pp=0.0, min_agreement_int8=0.0, min_support=10**6)
    (a,) = doc["artifacts"]
    assert a["gated_tags"] == [] and a["max_abs_delta_pp_gated"] == 0.0
    assert not any(r["gated"] for r in a["f1"].values()) and any(r["delta_pp"] != 0 for r in a["f1"].values())
    assert (a["verdict"], a["reasons"]) == ("PASS", [])


def po_box_delta_pp() -> float:
    """README: the regressed demo step-002200's own int8 export moves po_box 44/48 -> 43/48 (one wrong value)."""
    from mailwoman_eval.stats import f1_from_counts

    return float(f1_from_counts(np.float64(43), np.float64(5), np.float64(5)) - f1_from_counts(np.float64(44), np.float64(4), np.float64(4))) * 100


@needs_demo
@pytest.mark.parametrize(("min_support", "max_delta_pp", "reasons"), [
    (48, 2.08, ["po_box F1 moved -2.0833 pp (> 2.08 pp)"]),  # po_box has support 48: gated at 48
    (49, 2.08, []),  # ... and not at 49
    (48, abs(po_box_delta_pp()), []),  # a move equal to the allowance is within it
])
def test_the_gated_support_and_the_f1_allowance_are_inclusive_edges(min_support, max_delta_pp, reasons):
    """Gated = support ≥ min_support; an int8 export fails when a gated tag moves by *more than* the
    allowance."""
    doc = run_parity(DEMO_RUNS / "regressed" / "step-002200", [DEMO_RUNS / "regressed" / "onnx" / "model.int8.onnx"],
                     gold=REPO / "golden" / "demo-v1", name="demo-v1", tokenizer=None,
                     min_support=min_support, max_delta_pp=max_delta_pp)
    (a,) = doc["artifacts"]
    assert a["f1"]["po_box"]["support"] == 48 and a["f1"]["po_box"]["delta_pp"] == -2.0833
    assert a["f1"]["po_box"]["gated"] == (min_support <= 48) == ("po_box" in a["gated_tags"])
    assert a["reasons"] == reasons and a["verdict"] == ("FAIL" if reasons else "PASS")
    # parity.md says why when it fails (no sidecar warning here: the sidecar beside it is this run's)
    assert (f"**model.int8.onnx**: {'; '.join(reasons)}" in markdown(doc)) == bool(reasons)


# ---------------------------------------------------------------------------------------------
# what parity refuses before running anything


def test_bad_artifact_lists_are_refused(tmp_path, shared):
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint
    from mailwoman_eval.parity import parity

    gset = load_golden(TEST_SET, "v0.1.2/test")
    opts = ParityOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010))
    ref = resolve_checkpoint(str(TINY_STEP))
    with pytest.raises(MwevalError) as e:
        parity(ref, [], gset, opts)
    assert str(e.value) == "give at least one --onnx FILE"
    other = tmp_path / "model.bin"
    shutil.copyfile(FP32, other)
    with pytest.raises(MwevalError) as e:
        parity(ref, [FP32, other], gset, opts)
    assert (e.value.message, e.value.where) == ("not an .onnx file", str(other))
    with pytest.raises(MwevalError) as e:
        parity(resolve_checkpoint(str(FP32)), [FP32], gset, opts)
    assert e.value.message == f"--ckpt must be a PyTorch checkpoint (step) directory, not an onnx ({FP32})"


@needs_demo
def test_a_tokenizer_larger_than_the_models_embedding_is_refused(shared):
    """The 16000-piece v0.1.0 tokenizer with the demo checkpoint (3000 embedding rows)."""
    with pytest.raises(MwevalError) as e:
        run_parity(DEMO_RUNS / "baseline" / "step-001800", [DEMO_RUNS / "baseline" / "onnx" / "model.onnx"],
                   gold=REPO / "golden" / "demo-v1", name="demo-v1")
    assert (e.value.message, e.value.where) == (
        "tokenizer vocab 16000 is larger than the model's embedding (3000 rows)", str(TOKENIZER_V010))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning")
def test_a_reference_with_non_finite_logits_is_refused_not_scored(tmp_path, shared):
    """Nothing decodes from NaN or infinity (as in evaluate): finite weights whose logits overflow float32
    (NaN weights are refused when the checkpoint loads)."""
    torch = pytest.importorskip("torch")
    d = tmp_path / "step-nan"
    d.mkdir()
    shutil.copyfile(TINY_STEP / "config.json", d / "config.json")
    state = torch.load(TINY_STEP / "pytorch_model.bin", map_location="cpu", weights_only=True)
    state["classifier.weight"][3] = 3e38
    torch.save(state, d / "pytorch_model.bin")
    with pytest.raises(MwevalError) as e:
        run_parity(d, [FP32], gold=golden(tmp_path, ["Paris 75001", "12 Main St"]).path, name="hand")
    assert e.value.message.startswith("the model produced NaN or infinite logits for 2 of 2 entries (first: us.jsonl:1)")
    assert e.value.where == str(d)


def test_reference_rows_beyond_its_position_table_are_refused_by_entry(tmp_path, shared):
    """The reference's rows are checked with the entries' names (file:line), not row numbers."""
    pytest.importorskip("torch")
    from conftest import short_position_checkpoint

    d = short_position_checkpoint(tmp_path / "maxpos8", 8)
    gset = golden(tmp_path, ["Paris", "1600 Pennsylvania Avenue NW, Washington, DC 20500"])
    with pytest.raises(MwevalError) as e:
        run_parity(d, [FP32], gold=gset.path, name="hand")
    assert e.value.message.startswith("1 entries have more pieces than the checkpoint's max_position_embeddings 8 (first: us.jsonl:2, ")


def test_a_checkpoint_without_a_crf_is_decoded_without_one_whatever_sits_beside_the_onnx(tmp_path, shared):
    """Every model is decoded with the checkpoint's transitions (design.md "Parity"): with no CRF in
    the checkpoint that is the structural mask, and the sidecar beside the export is neither used
    nor compared."""
    torch = pytest.importorskip("torch")
    d = tmp_path / "step-nocrf"
    d.mkdir()
    cfg = json.loads((TINY_STEP / "config.json").read_text())
    cfg["use_crf"] = False
    (d / "config.json").write_text(json.dumps(cfg))
    state = torch.load(TINY_STEP / "pytorch_model.bin", map_location="cpu", weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("crf.")}, d / "pytorch_model.bin")
    doc = run_parity(d, [FP32], gold=golden(tmp_path, ["Paris 75001", "12 Main St, Springfield, IL 62701"]).path, name="hand")
    (a,) = doc["artifacts"]
    assert doc["decode"]["transitions"] == "structural"
    assert (a["sidecar_crf_max_abs_diff"], a["warnings"], a["verdict"]) == (None, [], "PASS")
