"""Batched and batch-1 inference give the same predictions (speed must not change a number)."""

import json

import numpy as np
import pytest
from conftest import GOLDEN_V012, TINY, TINY_STEP, TOKENIZER_V010, need_shared

from mailwoman_eval.checkpoints.backend import length_batches
from mailwoman_eval.checkpoints.onnx_backend import OnnxBackend
from mailwoman_eval.checkpoints.pytorch_dir import PytorchBackend
from mailwoman_eval.decode import build_transitions, viterbi_batch
from mailwoman_eval.golden import load_golden
from mailwoman_eval.profiles import RUNTIME, UPSTREAM_EVAL
from mailwoman_eval.tokenizer import MAX_LENGTH, Tokenizer


@pytest.fixture(scope="module")
def ids():
    need_shared()
    tok = Tokenizer(TOKENIZER_V010)
    return [np.asarray(tok.encode(e.raw).ids[:MAX_LENGTH], dtype=np.int64) for e in load_golden(GOLDEN_V012 / "test").entries]


def decode(backend, logits, profile):
    tr = build_transitions(profile, backend.labels, backend.crf)
    return [viterbi_batch(x[None], np.array([len(x)]), tr)[0].tolist() for x in logits]


@pytest.mark.parametrize("engine", ["onnx", "numpy"])
def test_pytorch_checkpoint_batched_equals_batch_one(ids, engine):
    b = PytorchBackend(TINY_STEP, engine=engine)
    batched = b.infer(ids)
    b.max_rows = 1
    single = b.infer(ids)
    assert max(float(np.abs(x - y).max()) for x, y in zip(batched, single, strict=True)) < 1e-4
    for profile in (RUNTIME, UPSTREAM_EVAL):
        assert decode(b, batched, profile) == decode(b, single, profile)


def test_batchable_onnx_batched_equals_batch_one_at_own_length(ids):
    batched = OnnxBackend(TINY / "onnx" / "model.onnx")
    single = OnnxBackend(TINY / "onnx" / "model.onnx", pad_to="own")
    assert batched.info["padding"] == "within-batch" and single.info["padding"] == "own-length"
    a, b = batched.infer(ids), single.infer(ids)
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) < 1e-4
    assert decode(batched, a, RUNTIME) == decode(single, b, RUNTIME)


def test_two_sessions_equal_one_session_on_a_batch_one_graph(ids):
    one = OnnxBackend(TINY / "onnx" / "model.int8.onnx", workers=1)
    two = OnnxBackend(TINY / "onnx" / "model.int8.onnx", workers=2)
    assert not one.batchable and two.workers == 2
    a, b = one.infer(ids), two.infer(ids)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_own_length_workers_share_one_session_and_get_the_same_logits(ids):
    one = OnnxBackend(TINY / "onnx" / "model.int8.onnx", workers=1, pad_to="own")
    two = OnnxBackend(TINY / "onnx" / "model.int8.onnx", workers=2, pad_to="own")
    padded = OnnxBackend(TINY / "onnx" / "model.int8.onnx", workers=2)  # pad-to-128: a session each
    assert two.sessions[0] is two.sessions[1] and padded.sessions[0] is not padded.sessions[1]
    a, b = one.infer(ids), two.infer(ids)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_batched_viterbi_equals_one_by_one_on_real_logits(ids):
    b = PytorchBackend(TINY_STEP)
    logits = b.infer(ids)
    for profile in (RUNTIME, UPSTREAM_EVAL):
        tr = build_transitions(profile, b.labels, b.crf)
        one = decode(b, logits, profile)
        for rows in length_batches([len(x) for x in logits], max_rows=256, max_tokens=1 << 30):
            width = max(len(logits[i]) for i in rows)
            em = np.zeros((len(rows), width, len(b.labels)), np.float32)
            for r, i in enumerate(rows):
                em[r, : len(logits[i])] = logits[i]
            paths = viterbi_batch(em, np.array([len(logits[i]) for i in rows]), tr)
            for r, i in enumerate(rows):
                assert paths[r, : len(logits[i])].tolist() == one[i]


def test_length_batches_pad_only_within_similar_lengths():
    lengths = [5, 30, 6, 29, 5, 31]
    batches = length_batches(lengths, max_rows=3)
    assert batches == [[0, 4, 2], [3, 1, 5]]


def test_decoding_in_the_inference_workers_writes_the_same_run_as_decoding_afterwards(tmp_path, monkeypatch):
    """evaluate() hands batches to RowDecoder from the two onnxruntime workers as they finish; a
    backend that ignores on_batch leaves every row to RowDecoder.finish. Same bytes either way."""
    from mailwoman_eval import evaluate as ev
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint

    need_shared()
    gset = load_golden(GOLDEN_V012 / "test")
    opts = ev.EvalOptions(profile=RUNTIME, tokenizer=str(TOKENIZER_V010), use_cache=False)
    seen: list[int] = []
    real = ev.RowDecoder.__call__

    def counting(self, rows, logits):
        seen.append(len(rows))
        return real(self, rows, logits)

    monkeypatch.setattr(ev.RowDecoder, "__call__", counting)
    ev.evaluate(resolve_checkpoint(str(TINY_STEP)), gset, opts, tmp_path / "overlapped")
    assert len(seen) > 2 and sum(seen) == len(gset.entries)  # many batches, every row once

    load = ev.load_backend

    def no_overlap(*a, **k):
        b = load(*a, **k)
        infer = b.infer
        b.infer = lambda ids, progress=None, on_batch=None: infer(ids, progress)
        return b

    monkeypatch.setattr(ev, "load_backend", no_overlap)
    seen.clear()
    ev.evaluate(resolve_checkpoint(str(TINY_STEP)), gset, opts, tmp_path / "after")
    assert seen == [len(gset.entries)]
    pred = [(tmp_path / d / "predictions.jsonl").read_bytes() for d in ("overlapped", "after")]
    assert pred[0] == pred[1]
    meta = [json.loads((tmp_path / d / "run.json").read_text()) for d in ("overlapped", "after")]
    for m in meta:
        m.pop("timings")
    assert meta[0] == meta[1]


def test_a_late_second_session_takes_fewer_batches_and_changes_nothing(ids):
    """Workers take the next batch when free; the second session may still be in the making."""
    import threading
    import time

    from mailwoman_eval.checkpoints.backend import in_background, run_batched

    b = PytorchBackend(TINY_STEP)
    first = b._forward[0]
    ran: dict[str, int] = {"early": 0, "late": 0}
    lock = threading.Lock()

    def counting(name, fwd):
        def run(x, m):
            with lock:
                ran[name] += 1
            return fwd(x, m)

        return run

    def slow_to_make():
        time.sleep(0.3)
        return counting("late", first)

    alone = run_batched([first], ids, b.pad_id, None)
    both = run_batched([counting("early", first), in_background(slow_to_make)], ids, b.pad_id, None)
    assert all(np.array_equal(x, y) for x, y in zip(alone, both, strict=True))
    assert ran["early"] > ran["late"]  # nothing waited for the late one


def test_a_session_that_fails_to_load_in_the_background_is_raised(ids):
    from mailwoman_eval.checkpoints.backend import in_background, run_batched
    from mailwoman_eval.errors import MwevalError

    b = PytorchBackend(TINY_STEP)

    def broken():
        raise MwevalError("not a loadable ONNX model (test)", where="x.onnx")

    with pytest.raises(MwevalError, match="not a loadable"):
        run_batched([b._forward[0], in_background(broken)], ids, b.pad_id, None)


def test_gc_paused_restores_the_collector():
    import gc

    from mailwoman_eval.gcpause import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not re-enable inside the outer one
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()


def test_gc_paused_promotes_what_the_stage_built_and_cycles_are_still_collected():
    import gc
    import weakref

    from mailwoman_eval.gcpause import gc_paused

    class Node:
        pass

    gc.collect()
    with gc_paused():
        kept = [[i] for i in range(5000)]
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle, garbage once the names go
        probe = weakref.ref(a)
        del a, b
    young = {id(o) for o in gc.get_objects(generation=0)}
    assert not any(id(x) in young for x in kept)  # promoted: no young collection walks them
    assert any(o is kept for o in gc.get_objects(generation=2))
    assert probe() is not None  # cycles are left to the collector ...
    gc.collect()
    assert probe() is None  # ... which still finds them (nothing leaks)

    gc.freeze()  # a program's own freeze is not undone
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            _ = [[i] for i in range(100)]
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("how", ["a worker fails", "Ctrl-C in the main thread"])
def test_workers_stop_taking_rows_when_one_fails_or_the_command_is_interrupted(how):
    """Both workers drained the whole queue first: an error was raised only after every row, and a
    Ctrl-C during a 30 s inference waited the 30 s. Counted in items, not timed."""
    import os
    import signal
    import threading
    import time

    from mailwoman_eval.checkpoints.backend import run_workers, shared_queue
    from mailwoman_eval.errors import MwevalError

    take = shared_queue(range(10_000))
    done: list[int] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        while (i := take()) is not None:
            time.sleep(0.001)
            with lock:
                done.append(i)
            if i == 20:
                if how == "a worker fails":
                    raise MwevalError("the model failed on row 20 (test)")
                os.kill(os.getpid(), signal.SIGINT)  # to the process, as Ctrl-C: the kernel wakes the main thread

    with pytest.raises(MwevalError if how == "a worker fails" else KeyboardInterrupt):
        run_workers(work, 2, take)
    assert 20 in done and len(done) < 200, len(done)
    assert take() is None  # stopped: nothing more is handed out
