"""Loading and feeding ONNX models, rule by rule (upstream-formats.md §5.1 "Export" and §10.3 "The
int8 graph and padding"; design.md "Decisions" (the padding row, and batch support decided by trial);
README "Inputs" and "ONNX feeding"; the docstrings of `checkpoints/onnx_backend.py` and
`checkpoints/backend.py`): int8 is detected and fed padded to 128 by default, `--pad-to own` feeds each
row at its own length, a fixed sequence axis is the width fed; the zero-fed side channels and the
model card's `requires` end up in the out-of-distribution warning; what run.json records about the
model (sha256 of every file read, card, package, padding); one session per worker unless the
own-length workers share one; where the label list comes from (--labels as a comma list, a JSON list
or object, a text file; model card; sidecar; the v0.4.0 default) and the refusals of a bad one; and
the row-length refusal shared by every backend.

Logits are checked against a bare onnxruntime session fed the same way, on the real published int8
en-us model (a handful of golden rows) and the tiny upstream export.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import EN_US, GOLDEN_V012, TINY, TOKENIZER_V010, error_text, fixed_width_onnx, need_shared

from mailwoman_eval.checkpoints.backend import (
    Backend,
    cpu_count,
    length_batches,
    pad_batch,
    ready,
    refuse_longer_than,
    run_batched,
)
from mailwoman_eval.checkpoints.onnx_backend import OnnxBackend, read_labels_arg, read_sidecar
from mailwoman_eval.golden import load_golden
from mailwoman_eval.labels import V040_LABELS
from mailwoman_eval.tokenizer import MAX_LENGTH, Tokenizer

FP32 = TINY / "onnx" / "model.onnx"
INT8 = TINY / "onnx" / "model.int8.onnx"
SIDECAR = TINY / "onnx" / "crf-transitions.json"
SIDE_CHANNELS = [
    "anchor_features", "anchor_confidence", "gazetteer_features", "gazetteer_confidence", "country_features",
    "country_confidence", "street_type_features", "street_type_confidence", "locality_surface_features",
    "locality_surface_confidence",
]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_labels() -> list[str]:
    return json.loads(SIDECAR.read_text())["labels"]


@pytest.fixture(scope="module")
def en_us():
    need_shared()
    return OnnxBackend(EN_US / "model.onnx")


@pytest.fixture(scope="module")
def en_us_rows():
    """Six golden rows in the en-us tokenizer's pieces, and an empty row."""
    need_shared()
    tok = Tokenizer(EN_US / "tokenizer.model")
    entries = load_golden(GOLDEN_V012 / "test").entries[:6]
    return [np.asarray(tok.encode(e.raw).ids[:MAX_LENGTH], dtype=np.int64) for e in entries] + [np.zeros(0, np.int64)]


@pytest.fixture(scope="module")
def tiny_rows():
    need_shared()
    tok = Tokenizer(TOKENIZER_V010)
    return [np.asarray(tok.encode(e.raw).ids[:MAX_LENGTH], dtype=np.int64) for e in load_golden(GOLDEN_V012 / "test").entries[:24]]


def bare_logits(model, ids, width: int | None) -> list[np.ndarray]:
    """What the runtime computes: batch 1, padded with id 0 / mask 0 to `width` (own length when
    None), float side channels all zero, logits sliced to the row's pieces."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model), sess_options=so, providers=["CPUExecutionProvider"])
    out = []
    for row in ids:
        n = len(row)
        w = width or max(n, 1)
        feed = {"input_ids": np.zeros((1, w), np.int64), "attention_mask": np.zeros((1, w), np.int64)}
        feed["input_ids"][0, :n], feed["attention_mask"][0, :n] = row, 1
        for i in sess.get_inputs():
            if i.name not in feed:
                feed[i.name] = np.zeros([1, w, *[d for d in i.shape[2:]]], np.float32)
        out.append(sess.run(["logits"], feed)[0][0, :n])
    return out


# what run.json records about an ONNX model (README "Inputs"; upstream-formats.md §5.1 packages)


def test_the_en_us_package_is_recorded_with_every_file_read_its_card_and_its_package(en_us):
    card = json.loads((EN_US / "model-card.json").read_text())
    digest = sha(EN_US / "model.onnx")
    assert en_us.info == {
        "format": "onnx",
        "sha256": digest,
        "files": {"model.onnx": digest, "model-card.json": sha(EN_US / "model-card.json")},
        "int8": True,
        "inputs": sorted(["input_ids", "attention_mask", *SIDE_CHANNELS]),
        "outputs": ["logits", "locale_logits"],
        "zero_fed_inputs": SIDE_CHANNELS,
        "model_card": {
            "version": "9.1.0",
            "lineage": card["model_lineage"][:200],
            "requires": ["anchor", "gazetteer", "country", "conventions", "street_type", "locality_surface"],
        },
        "package": {"name": "@mailwoman/neural-weights-en-us", "version": "10.0.0"},
        "batchable": False,
        "padding": "pad-to-128",
    }
    assert (en_us.labels, en_us.labels_source, en_us.crf) == (card["labels"], "model-card.json labels", None)
    assert en_us.warnings == [
        f"OUT OF DISTRIBUTION: 10 side-channel inputs are zero-fed ({', '.join(SIDE_CHANNELS)}); the model card "
        "declares anchor, gazetteer, country, conventions, street_type, locality_surface required, so these numbers "
        "do not measure the shipped model"
    ]
    assert (en_us.int8, en_us.pad_to, en_us.fixed_width, en_us.row_limit()) == (True, "128", None, None)


def test_a_card_without_requires_or_lineage_and_an_unreadable_package_json_are_recorded_as_such(tmp_path):
    """A card's `requires` names what the warning lists; without one the warning says "its side
    channels". package.json is informational: unreadable, it is left out, not an error."""
    need_shared()
    d = tmp_path / "pkg"
    d.mkdir()
    (d / "model.onnx").symlink_to(EN_US / "model.onnx")
    card = json.loads((EN_US / "model-card.json").read_text())
    card = {"version": "1.2.3", "labels": card["labels"], "requires": {"anchor": {"required": False}, "x": True}}
    (d / "model-card.json").write_text(json.dumps(card))
    (d / "package.json").write_text('{"name": "p"}')  # no version
    b = OnnxBackend(d / "model.onnx", pad_to="own")
    assert b.info["model_card"] == {"version": "1.2.3", "lineage": None}
    assert "package" not in b.info
    assert b.warnings[0].endswith("; the model card declares its side channels required, so these numbers do not measure "
                                  "the shipped model")


# int8 detection and padding (upstream-formats.md §10.3; design.md Decisions, padding row)


def test_en_us_logits_are_the_graphs_own_padded_to_128_by_default_and_at_own_length_when_asked(en_us, en_us_rows):
    """Padded to 128 (what ships) and at own length (faster) are each exactly what a bare
    onnxruntime session gives fed that way; the two differ (dynamic int8 scales see the padding)."""
    padded = en_us.infer(en_us_rows)
    own_backend = OnnxBackend(EN_US / "model.onnx", pad_to="own")
    assert (own_backend.pad_to, own_backend.info["padding"]) == ("own", "own-length")
    own = own_backend.infer(en_us_rows)
    for got, want in ((padded, bare_logits(EN_US / "model.onnx", en_us_rows, 128)),
                      (own, bare_logits(EN_US / "model.onnx", en_us_rows, None))):
        assert [x.shape for x in got] == [(len(r), 33) for r in en_us_rows]
        assert all(x.dtype == np.float32 for x in got)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    assert max(float(np.abs(a - b).max(initial=0)) for a, b in zip(padded, own, strict=True)) > 1e-3


def test_int8_is_detected_from_the_graph_and_decides_the_default_padding(tiny_rows):
    int8 = OnnxBackend(INT8)
    fp32 = OnnxBackend(FP32)
    assert (int8.int8, int8.pad_to, int8.info["padding"], int8.info["int8"]) == (True, "128", "pad-to-128", True)
    assert (fp32.int8, fp32.pad_to, fp32.info["padding"], fp32.info["int8"]) == (False, "batch", "within-batch", False)
    assert fp32.batchable and fp32.info["batchable"]
    # an fp32 graph padded to 128 on request: masked attention makes it the same as its own length
    padded = OnnxBackend(FP32, pad_to="128")
    assert padded.info["padding"] == "pad-to-128"
    rows = tiny_rows[:8]
    for a, b in zip(padded.infer(rows), bare_logits(FP32, rows, 128), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    for a, b in zip(int8.infer(rows), bare_logits(INT8, rows, 128), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_pad_to_takes_128_own_or_auto_only(tmp_path):
    need_shared()
    assert error_text(OnnxBackend, FP32, pad_to="64") == "--pad-to must be 128 or own, not '64'"
    assert error_text(OnnxBackend, FP32, pad_to="") == "--pad-to must be 128 or own, not ''"


def test_a_batchable_graph_runs_in_length_batches_and_an_empty_row_gets_no_logits(tiny_rows):
    b = OnnxBackend(FP32)
    rows = [*tiny_rows[:10], np.zeros(0, np.int64)]
    seen, handed = [], {}
    got = b.infer(rows, progress=seen.append, on_batch=lambda idx, lg: handed.update(zip(idx, lg, strict=True)))
    assert sum(seen) == len(rows)
    # infer's docstring: a batchable graph hands each batch to on_batch as it finishes
    assert sorted(handed) == list(range(len(rows))) and all(handed[i] is got[i] for i in handed)
    assert [x.shape for x in got] == [(len(r), len(b.labels)) for r in rows]
    for a, want in zip(got, bare_logits(FP32, rows, None), strict=True):
        np.testing.assert_allclose(a, want, atol=1e-4, rtol=0)


# sessions and threads (onnx_backend.py; README "ONNX feeding": two sessions on two cores)


@pytest.mark.parametrize(("threads", "workers", "pad_to", "n_sessions", "per", "shared"), [
    (2, None, "128", 2, 1, False),   # default: min(2, cores) workers, one single-threaded session each
    (2, 1, "128", 1, 2, False),      # one worker gets every core
    (4, 2, "own", 2, 2, False),      # own length, two threads each: a session each
    (2, 2, "own", 2, 1, True),       # own length, one core each: one shared session, arena off
    (2, 0, "128", 1, 2, False),      # at least one worker
    (1, 3, "128", 3, 1, False),      # at least one thread per session
    (1, 1, "own", 1, 1, False),      # own length, one worker: its own session, arena on
])
def test_each_worker_gets_a_session_with_its_share_of_the_threads(threads, workers, pad_to, n_sessions, per, shared):
    need_shared()
    b = OnnxBackend(INT8, pad_to=pad_to, threads=threads, workers=workers)
    sessions = [ready(s) for s in b.sessions]
    assert (b.workers, len(sessions)) == (n_sessions, n_sessions)
    assert sessions[0] is b.session
    assert len({id(s) for s in sessions}) == (1 if shared else n_sessions)
    for s in sessions:
        opts = s.get_session_options()
        assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (per, 1)
        assert opts.enable_cpu_mem_arena is (not shared)


def test_the_default_is_one_worker_per_core_this_process_may_run_on_up_to_two():
    need_shared()
    cores = len(os.sched_getaffinity(0))
    assert cpu_count() == cores
    b = OnnxBackend(INT8)
    assert b.workers == min(2, cores)
    assert ready(b.sessions[-1]).get_session_options().intra_op_num_threads == max(1, cores // min(2, cores))


# a fixed sequence axis (upstream-formats.md §5.1: the v0.1/v0.2 graphs baked in [1, 128])


def test_a_fixed_width_is_fed_at_that_width_and_longer_rows_are_refused_by_row_number(tmp_path, tiny_rows):
    need_shared()
    path = fixed_width_onnx(tmp_path, 24, side_channel=True)
    b = OnnxBackend(path)
    assert (b.fixed_width, b.pad_to, b.batchable) == (24, "128", False)
    assert (b.info["padding"], b.info["fixed_sequence_length"]) == ("pad-to-24", 24)
    assert b.row_limit() == (24, "the graph's fixed sequence length", str(path))
    assert b.info["zero_fed_inputs"] == ["anchor_features"]  # 50 values per position (1200 in all): fed [1, 24, 50] zeros
    short = [r for r in tiny_rows if len(r) <= 24][:4] + [np.arange(5, 29)]
    assert len(short[-1]) == 24
    seen = []
    got = b.infer(short, progress=seen.append)
    assert seen == [1] * len(short)
    for a, want in zip(got, bare_logits(path, short, 24), strict=True):
        np.testing.assert_allclose(a, want, atol=1e-5, rtol=0)
    rows = [np.arange(5, 29), np.arange(5, 30), np.arange(5, 10), np.arange(5, 40)]
    assert error_text(b.infer, rows) == (
        f"{path}: 2 entries have more pieces than the graph's fixed sequence length 24 (first: row 2, 25 pieces)")
    assert error_text(OnnxBackend, path, pad_to="own") == (
        f"{path}: the graph fixes the sequence length at 24; --pad-to own cannot feed it")


def test_row_limits_name_the_first_row_too_long_by_name_when_given():
    rows = [np.zeros(3), np.zeros(5), np.zeros(4), np.zeros(6)]
    assert refuse_longer_than(rows, 6, "a limit", "f") is None  # a row of exactly the limit is taken
    assert error_text(refuse_longer_than, rows, 4, "the limit", "f.onnx", names=["a", "b", "c", "d"]) == (
        "f.onnx: 2 entries have more pieces than the limit 4 (first: b, 5 pieces)")
    assert error_text(refuse_longer_than, rows, 3, "the limit", "f.onnx") == (
        "f.onnx: 3 entries have more pieces than the limit 3 (first: row 2, 5 pieces)")
    assert Backend([], "", None, {}).row_limit() is None
    Backend([], "", None, {}).check_rows(rows)  # no limit: nothing refused
    limited = Backend([], "", None, {})
    limited.row_limit = lambda: (5, "the checkpoint's max_position_embeddings", "config.json")
    assert error_text(limited.check_rows, rows, ["a", "b", "c", "d"]) == (
        "config.json: 1 entries have more pieces than the checkpoint's max_position_embeddings 5 (first: d, 6 pieces)")


# batching helpers (backend.py: length-bucketed batches, padding only within a batch)


def test_length_batches_cut_by_rows_and_by_padded_tokens():
    assert length_batches([3, 1, 2, 1, 0]) == [[4, 1, 3, 2, 0]]
    assert length_batches([5, 5, 5, 5, 5], max_rows=2) == [[0, 1], [2, 3], [4]]
    # 4 rows of 3 = 12 tokens fit; a 5th would not
    assert length_batches([3] * 5, max_tokens=12) == [[0, 1, 2, 3], [4]]
    # the longest row of the batch sets its width: 2 rows of 1 then a row of 6 would pad to 3 x 6 = 18
    assert length_batches([1, 1, 6], max_tokens=17) == [[0, 1], [2]]
    assert length_batches([1, 1, 6], max_tokens=18) == [[0, 1, 2]]
    assert length_batches([0, 0, 0], max_tokens=2) == [[0, 1], [2]]  # an empty row counts as width 1
    assert length_batches([]) == []


def test_pad_batch_pads_with_the_pad_id_and_masks_the_padding():
    ids = [np.array([7, 8, 9]), np.array([4]), np.array([], dtype=np.int64)]
    x, m = pad_batch(ids, [0, 1, 2], pad_id=3)
    assert x.tolist() == [[7, 8, 9], [4, 3, 3], [3, 3, 3]] and x.dtype == np.int64
    assert m.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]] and m.dtype == np.int64
    x, m = pad_batch(ids, [2], pad_id=0)
    assert (x.tolist(), m.tolist()) == ([[0]], [[0]])
    x, m = pad_batch(ids, [1], pad_id=0, width=4)
    assert (x.tolist(), m.tolist()) == ([[4, 0, 0, 0]], [[1, 0, 0, 0]])


def test_run_batched_gives_each_row_its_own_logits_in_order_from_every_forward():
    """Two forwards (two sessions) taking batches from one queue: each row's logits are its own,
    sliced to its length, whichever forward ran it; on_batch and progress see every row once."""
    ids = [np.arange(n, dtype=np.int64) + 1 for n in (3, 1, 4, 0, 2, 4, 1)]

    def forward(x, m):
        return np.stack([x * 10.0, m * 1.0], axis=-1)  # [B, S, 2]

    seen, rows_done = [], []
    out = run_batched([forward, forward], ids, 0, seen.append, max_rows=2, on_batch=lambda r, lg: rows_done.extend(r))
    assert sum(seen) == 7 and sorted(rows_done) == list(range(7))
    for row, got in zip(ids, out, strict=True):
        assert got.dtype == np.float32 and got.shape == (len(row), 2)
        assert got[:, 0].tolist() == (row * 10.0).tolist() and got[:, 1].tolist() == [1.0] * len(row)


# label lists (README "Inputs"; labels.check_labels; read_labels_arg's docstring)


def test_labels_arg_reads_a_comma_list_a_json_list_or_object_and_a_text_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    want = ["O", "B-street", "I-street"]
    assert read_labels_arg(" O, B-street ,,I-street ") == want
    assert read_labels_arg("B-street") == ["B-street"]  # one label, no comma, no file of that name
    # a comma list is never a file name: a tag with a slash or a file-like suffix, and a list too long for a path
    assert read_labels_arg("O,B-po/box,I-po/box") == ["O", "B-po/box", "I-po/box"]
    assert read_labels_arg("O,B-x.json") == ["O", "B-x.json"]
    many = ["O"] + [f"B-a_rather_long_tag_name_{i}" for i in range(20)]
    assert len(",".join(many)) > 255 and read_labels_arg(",".join(many)) == many
    (tmp_path / "l.json").write_text(json.dumps(want))
    assert read_labels_arg(str(tmp_path / "l.json")) == want
    (tmp_path / "o.json").write_text(json.dumps({"labels": want, "other": 1}))
    assert read_labels_arg(str(tmp_path / "o.json")) == want
    (tmp_path / "l.txt").write_text("O\n\n  B-street  \nI-street\n")
    assert read_labels_arg(str(tmp_path / "l.txt")) == want
    (tmp_path / "nosuffix").write_text("O\nB-street\nI-street\n")
    assert read_labels_arg("nosuffix") == want  # a file in the working directory
    for bad in ('{"labels": "O,B-x"}', '{"names": ["O", "B-x"]}', '["O", 3]', "7"):
        (tmp_path / "bad.json").write_text(bad)
        assert error_text(read_labels_arg, str(tmp_path / "bad.json")) == (
            f"{tmp_path / 'bad.json'}: --labels file holds no list of label strings")
    for missing in ("labels.json", "labels.txt", "dir/labels"):
        assert error_text(read_labels_arg, missing) == f"{missing}: --labels file not found"
    assert error_text(read_labels_arg, "O,B-x,B-x") == "--labels names 'B-x' more than once"
    (tmp_path / "dup.txt").write_text("O\nB-x\nB-x\n")
    assert error_text(read_labels_arg, str(tmp_path / "dup.txt")) == f"{tmp_path / 'dup.txt'}: --labels file names 'B-x' more than once"


def test_labels_come_from_labels_arg_then_the_card_then_the_sidecar_then_the_v040_default(tmp_path):
    need_shared()
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copyfile(FP32, bare / "model.onnx")
    b = OnnxBackend(bare / "model.onnx", pad_to="own")
    assert (b.labels, b.labels_source, b.crf) == (list(V040_LABELS), "v0.4.0 default (no model card, sidecar or --labels)", None)
    assert b.warnings == ["no label list found beside the ONNX model; assuming the v0.4.0 21-label list"]
    assert b.info["files"] == {"model.onnx": sha(FP32)} and "model_card" not in b.info and "package" not in b.info

    b = OnnxBackend(bare / "model.onnx", labels_arg=",".join(tiny_labels()), pad_to="own")
    assert (b.labels, b.labels_source, b.warnings) == (tiny_labels(), "--labels", [])
    b = OnnxBackend(bare / "model.onnx", labels_arg=tiny_labels(), pad_to="own")
    assert (b.labels, b.labels_source) == (tiny_labels(), "--labels")

    b = OnnxBackend(FP32)  # the sidecar beside it: its labels and its CRF
    assert (b.labels, b.labels_source, b.warnings) == (tiny_labels(), "crf-transitions.json labels", [])
    side = json.loads(SIDECAR.read_text())
    assert b.crf.source == "sidecar" and b.crf.transitions.dtype == np.float32
    assert np.array_equal(b.crf.transitions, np.asarray(side["transitions"], np.float32))
    assert np.array_equal(b.crf.start, np.asarray(side["start_transitions"], np.float32))
    assert np.array_equal(b.crf.end, np.asarray(side["end_transitions"], np.float32))
    assert b.info["files"] == {"model.onnx": sha(FP32), "crf-transitions.json": sha(SIDECAR)}

    swapped = tiny_labels()
    swapped[1], swapped[2] = swapped[2], swapped[1]
    assert error_text(OnnxBackend, FP32, labels_arg=swapped) == (
        f"{SIDECAR}: crf-transitions.json labels differ from the model's label list")
    assert error_text(OnnxBackend, bare / "model.onnx", labels_arg="O,B-x,I-x") == (
        f"{bare / 'model.onnx'}: ONNX logits have {len(V040_LABELS)} labels but the label list (--labels) has 3")


def test_a_sidecar_is_read_as_float32_and_refused_when_its_sizes_or_values_are_wrong(tmp_path):
    need_shared()
    labels, crf, digest = read_sidecar(SIDECAR)
    assert labels == tiny_labels() and crf.start.shape == (len(labels),) and crf.end.dtype == np.float32
    assert digest == sha(SIDECAR)
    side = json.loads(SIDECAR.read_text())
    p = tmp_path / "crf-transitions.json"
    short = {"labels": side["labels"], "transitions": [row[:-1] for row in side["transitions"][:-1]],
             "start_transitions": side["start_transitions"][:-1], "end_transitions": side["end_transitions"][:-1]}
    p.write_text(json.dumps(short))  # 20 x 20 parameters, consistent among themselves, for 21 labels
    assert error_text(read_sidecar, p) == f"{p}: crf-transitions.json size differs from its label list"
    p.write_text(json.dumps({**side, "end_transitions": [1e39] * len(labels)}))
    assert error_text(read_sidecar, p) == (
        f"{p}: crf-transitions.json `end_transitions` holds NaN, infinite or out-of-float32-range values")
    big = float(np.finfo(np.float32).max)
    p.write_text(json.dumps({**side, "end_transitions": [big, -big] + [0.0] * (len(labels) - 2)}))
    assert read_sidecar(p)[1].end[:2].tolist() == [big, -big]  # the float32 range itself is fine
    p.write_text(json.dumps({k: v for k, v in side.items() if k != "transitions"}))
    assert error_text(read_sidecar, p) == f"{p}: unreadable crf-transitions.json ('transitions')"


def test_a_model_card_or_sidecar_that_is_no_regular_file_is_refused_before_it_is_read(tmp_path):
    """fsutil.refuse_special_file: /dev/null read as a sidecar was "unreadable (Expecting value)"; a FIFO blocked forever."""
    need_shared()
    p = tmp_path / "crf-transitions.json"
    p.symlink_to("/dev/null")
    assert error_text(read_sidecar, p) == f"{p}: not a regular file (a device)"
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.onnx").symlink_to(FP32)
    (d / "model-card.json").symlink_to("/dev/null")
    assert error_text(OnnxBackend, d / "model.onnx") == f"{d / 'model-card.json'}: not a regular file (a device)"
    (d / "model-card.json").unlink()
    (d / "crf-transitions.json").symlink_to("/dev/null")
    assert error_text(OnnxBackend, d / "model.onnx") == f"{d / 'crf-transitions.json'}: not a regular file (a device)"
    (tmp_path / "model.onnx").mkdir()
    assert error_text(OnnxBackend, tmp_path / "model.onnx") == f"{tmp_path / 'model.onnx'}: not a regular file (a directory)"


def mixing_graph(tmp_path, how: str):
    """The tiny export with its logits changed only when several rows are fed together: `max` gives
    every row the batch's maximum, `first` / `second` shift only that row of a batch of two by +1,
    `collapse` returns the first row's logits alone for the whole batch."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    m = onnx.load(str(FP32))
    for node in m.graph.node:
        node.output[:] = ["raw" if o == "logits" else o for o in node.output]
    if how == "collapse":  # the first row's logits only, for the whole batch
        m.graph.node.extend([
            helper.make_node("Constant", [], ["first"], value=helper.make_tensor("first", TensorProto.INT64, [1], [0])),
            helper.make_node("Gather", ["raw", "first"], ["logits"], axis=0),
        ])
        extra = []
    elif how == "max":
        extra = [helper.make_node("ReduceMax", ["raw"], ["batch_max"], axes=[0], keepdims=1),
                 helper.make_node("Sub", ["batch_max", "raw"], ["gap"])]
    else:  # gap[r] = r (second) or B - 1 - r (first): 0 for a row fed alone
        consts = {"zero": 0, "one": 1}
        extra = [helper.make_node("Constant", [], [k], value=helper.make_tensor(k, TensorProto.INT64, [], [v]))
                 for k, v in consts.items()]
        extra += [
            helper.make_node("Constant", [], ["col"], value=helper.make_tensor("col", TensorProto.INT64, [3], [-1, 1, 1])),
            helper.make_node("Shape", ["raw"], ["shape"]),
            helper.make_node("Gather", ["shape", "zero"], ["B"], axis=0),
            helper.make_node("Range", ["zero", "B", "one"], ["r"]),
            helper.make_node("Sub", ["B", "one"], ["last"]),
            *([helper.make_node("Sub", ["last", "r"], ["pos"])] if how == "first" else [helper.make_node("Identity", ["r"], ["pos"])]),
            helper.make_node("Cast", ["pos"], ["posf"], to=TensorProto.FLOAT),
            helper.make_node("Reshape", ["posf", "col"], ["gap"]),
        ]
    if extra:
        m.graph.node.extend([*extra, helper.make_node("Add", ["raw", "gap"], ["logits"])])
    path = tmp_path / how / "model.onnx"
    path.parent.mkdir()
    onnx.save(m, str(path))
    shutil.copyfile(SIDECAR, path.parent / "crf-transitions.json")
    return path


@pytest.mark.parametrize("how", ["max", "first", "second", "collapse"])
def test_a_graph_that_runs_a_batch_but_changes_a_row_in_it_is_run_batch_1(tmp_path, tiny_rows, how):
    """Batch support is decided by trial: two rows as a batch must each agree with that row alone
    (design.md Parity; `_probe_batch`); a graph that accepts the batch but changes either row's
    logits in it is not batchable, and is run batch-1 at own length."""
    need_shared()
    b = OnnxBackend(mixing_graph(tmp_path, how))
    assert (b.batchable, b.pad_to, b.info["batchable"], b.info["padding"]) == (False, "own", False, "own-length")
    rows = tiny_rows[:6]
    for a, want in zip(b.infer(rows), bare_logits(FP32, rows, None), strict=True):
        np.testing.assert_allclose(a, want, atol=1e-5, rtol=0)


# refusals of graphs mweval cannot feed (upstream-formats.md §5.1: input_ids and attention_mask int64
# [batch, sequence], extra inputs float32 side channels; `logits` fetched by name)


def edited_tiny(tmp_path, name: str, edit) -> Path:
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(FP32))
    edit(m)
    path = tmp_path / name / "model.onnx"
    path.parent.mkdir()
    onnx.save(m, str(path))
    shutil.copyfile(SIDECAR, path.parent / "crf-transitions.json")
    return path


def one_label_graph(tmp_path, ids_width: int | str, mask_width: int | str, reshape_to: list[int] | None = None) -> Path:
    """A small hand-built graph: logits [B, S, 1] = the ids as floats (reshaped to `reshape_to`, if given)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT)]
    if reshape_to:
        nodes += [helper.make_node("Constant", [], ["to"], value=helper.make_tensor("to", TensorProto.INT64, [3], reshape_to)),
                  helper.make_node("Reshape", ["f", "to"], ["logits"])]
    else:
        nodes += [helper.make_node("Constant", [], ["ax"], value=helper.make_tensor("ax", TensorProto.INT64, [1], [2])),
                  helper.make_node("Unsqueeze", ["f", "ax"], ["logits"])]
    graph = helper.make_graph(
        nodes, "one-label",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", ids_width]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", mask_width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / f"one-label-{ids_width}-{mask_width}" / "model.onnx"
    path.parent.mkdir()
    onnx.save(model, str(path))
    return path


def test_inputs_mweval_cannot_feed_are_refused_by_name(tmp_path):
    need_shared()
    from onnx import TensorProto, helper

    def int_side_channel(m):
        m.graph.input.append(helper.make_tensor_value_info("flags", TensorProto.INT64, ["batch", "sequence"]))

    p = edited_tiny(tmp_path, "int-side", int_side_channel)
    assert error_text(OnnxBackend, p) == (
        f"{p}: ONNX input 'flags' has type tensor(int64); only float side channels can be zero-fed")

    def renamed_mask(m):
        for i in m.graph.input:
            if i.name == "attention_mask":
                i.name = "mask"
        for node in m.graph.node:
            node.input[:] = ["mask" if x == "attention_mask" else x for x in node.input]

    p = edited_tiny(tmp_path, "no-mask", renamed_mask)
    assert error_text(OnnxBackend, p) == f"{p}: ONNX graph has no `attention_mask` input"
    p = one_label_graph(tmp_path, 32, 16)
    assert error_text(OnnxBackend, p, labels_arg="B-x") == f"{p}: ONNX inputs fix different sequence lengths (32 and 16)"
    p = one_label_graph(tmp_path, 32, "sequence")  # one input fixes it: that is the width
    b = OnnxBackend(p, labels_arg="B-x")
    assert (b.fixed_width, b.info["padding"]) == (32, "pad-to-32")
    assert [x[:, 0].tolist() for x in b.infer([np.array([7, 9])])] == [[7.0, 9.0]]


def test_a_side_channel_with_a_named_trailing_axis_is_zero_fed_one_wide_and_warned_about(tmp_path, tiny_rows):
    need_shared()
    from onnx import TensorProto, helper

    def extra(m):
        m.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["batch", "sequence", "k"]))

    p = edited_tiny(tmp_path, "side", extra)
    b = OnnxBackend(p, pad_to="own")
    assert b.info["zero_fed_inputs"] == ["extra"] and b.info["inputs"] == ["attention_mask", "extra", "input_ids"]
    assert b.warnings == ["OUT OF DISTRIBUTION: 1 side-channel inputs are zero-fed (extra); the model card declares its "
                          "side channels required, so these numbers do not measure the shipped model"]
    rows = tiny_rows[:3]
    for a, want in zip(b.infer(rows), bare_logits(FP32, rows, None), strict=True):
        np.testing.assert_allclose(a, want, atol=1e-5, rtol=0)


def test_a_graph_failing_at_inference_is_one_error_naming_the_model(tmp_path):
    """Probed at width 8 (the probe's row) it runs; fed a row of 5 at own length onnxruntime fails."""
    need_shared()
    p = one_label_graph(tmp_path, "sequence", "sequence", reshape_to=[1, 8, 1])
    b = OnnxBackend(p, labels_arg="B-x")
    assert (b.batchable, b.pad_to) == (False, "own")
    assert error_text(b.infer, [np.arange(5, 10)]).startswith(f"{p}: ONNX inference failed (")
    assert [x[:, 0].tolist() for x in b.infer([np.arange(5, 13)])] == [[5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]]


def test_recorded_sha256s_of_the_sidecar_and_card_are_of_the_bytes_parsed_when_rewritten_mid_load(tmp_path, monkeypatch):
    """onnx_backend hashed crf-transitions.json and model-card.json again from disk after parsing them:
    a file rewritten in between was recorded with the new bytes' sha256, not that of the labels/CRF
    evaluated. Each is now read once (as pytorch_dir reads config.json and the weights)."""
    need_shared()
    from mailwoman_eval.checkpoints import onnx_backend

    d = tmp_path / "m"
    d.mkdir()
    (d / "model.onnx").symlink_to(FP32)
    shutil.copyfile(SIDECAR, d / "crf-transitions.json")
    (d / "model-card.json").write_text(json.dumps({"version": "1", "labels": tiny_labels()}))
    before = {f: sha(d / f) for f in ("crf-transitions.json", "model-card.json")}
    real = onnx_backend.read_sidecar

    def rewritten_meanwhile(path):
        got = real(path)  # parsed; then a writer replaces both files (a live export directory)
        side = json.loads(SIDECAR.read_text())
        (d / "crf-transitions.json").write_text(json.dumps({**side, "end_transitions": [5.0] * len(side["labels"])}))
        (d / "model-card.json").write_text(json.dumps({"version": "2", "labels": tiny_labels()}))
        return got

    monkeypatch.setattr(onnx_backend, "read_sidecar", rewritten_meanwhile)
    b = OnnxBackend(d / "model.onnx", pad_to="own")
    assert b.info["model_card"]["version"] == "1" and b.crf.end.tolist() == json.loads(SIDECAR.read_text())["end_transitions"]
    assert b.info["files"]["crf-transitions.json"] == before["crf-transitions.json"]
    assert b.info["files"]["model-card.json"] == before["model-card.json"]


# the workers (backend.run_workers, in_daemon docstrings)


def test_a_failing_second_worker_stops_the_first_and_the_error_waits_for_its_current_item():
    """run_workers: the first exception in a worker stops the queue (the other worker does not drain
    it), and is re-raised once the other workers have ended their current item. Worker 1 fails here:
    list(pool.map) alone would first wait for worker 0 to finish the whole queue. Counted in items."""
    import threading
    import time

    from mailwoman_eval.checkpoints.backend import run_workers, shared_queue
    from mailwoman_eval.errors import MwevalError

    take = shared_queue(range(2000))
    failed = threading.Event()
    done: list[int] = []

    def work(k: int) -> None:
        if k == 1:
            take()
            failed.set()
            raise MwevalError("worker 1 failed (test)")
        failed.wait(10)
        while (i := take()) is not None:
            time.sleep(0.001)
            done.append(i)

    with pytest.raises(MwevalError, match="worker 1 failed"):
        run_workers(work, 2, take)
    assert len(done) < 1000, len(done)  # not the whole queue (2000 items of >= 1 ms): a margin for a loaded machine
    assert take() is None

    take = shared_queue(range(10))
    taken, ended = threading.Event(), []

    def slow_item(k: int) -> None:
        if k == 0:
            taken.wait(10)
            raise MwevalError("worker 0 failed (test)")
        while take() is not None:
            taken.set()
            time.sleep(0.3)
            ended.append(k)

    with pytest.raises(MwevalError, match="worker 0 failed"):
        run_workers(slow_item, 2, take)
    assert ended == [1]  # worker 1's item ended before the error was re-raised; it took no other


def test_a_loader_in_a_daemon_thread_hands_its_result_or_its_error_to_the_caller():
    from mailwoman_eval.checkpoints.backend import in_daemon
    from mailwoman_eval.errors import MwevalError

    assert in_daemon(lambda a, b=0: a + b, 2, b=3).result(timeout=10) == 5

    def broken():
        raise MwevalError("cannot load (test)")

    with pytest.raises(MwevalError, match="cannot load"):
        in_daemon(broken).result(timeout=10)
