"""What every backend provides, and the length-bucketed batching shared by the batchable ones."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from mailwoman_eval.decode import CRFParams
from mailwoman_eval.errors import MwevalError

Progress = Callable[[int], None]
# Called with (row indices, their logits) as each batch finishes, from the worker that ran it.
OnBatch = Callable[[Sequence[int], list[np.ndarray]], None]


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Backend:
    """A loaded model: labels, CRF parameters (if any), provenance, and `infer`."""

    labels: list[str]
    labels_source: str
    crf: CRFParams | None
    info: dict  # recorded under run.json "checkpoint"
    embedding_rows: int | None = None
    warnings: list[str] = field(default_factory=list)
    pad_id: int = 0

    def infer(self, ids: Sequence[np.ndarray], progress: Progress | None = None, on_batch: OnBatch | None = None) -> list[np.ndarray]:
        """Logits (len_i, L) float32 per sequence of piece ids (already truncated to 128).
        `on_batch`, if given, may be called with rows as their batch finishes, from the worker that
        ran it; a backend may also leave it uncalled (the caller decodes the rest afterwards)."""
        raise NotImplementedError

    def row_limit(self) -> tuple[int, str, str] | None:
        """(the most pieces a row may have, what sets it, the file that says so), if the model has a limit."""
        return None

    def check_rows(self, ids: Sequence[np.ndarray], names: Sequence[str] | None = None) -> None:
        """Refuse rows beyond `row_limit`; callers that know the entries name them (`infer` checks
        again, by row number, for callers that do not)."""
        limit = self.row_limit()
        if limit is not None:
            refuse_longer_than(ids, *limit, names=names)


def in_background(fn: Callable, *args, **kwargs) -> Future:
    """`fn(*args, **kwargs)` started now in its own thread; `.result()` waits and re-raises.

    The second onnxruntime session is made this way alongside the first: session creation runs in
    C++ and releases the GIL, so the two overlap on two cores (and with the tokenization)."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(fn, *args, **kwargs)
    finally:
        pool.shutdown(wait=False)


def in_daemon(fn: Callable, *args, **kwargs) -> Future:
    """`in_background` in a daemon thread that nothing joins at exit. For the loaders that import
    modules: a Ctrl-C that lands in the main thread's own import can leave that module's lock held,
    and a loader importing it then waits forever (1 in ~230 interrupts hung the command until
    SIGKILL). The caller waits for the Future, bounded (`wait_briefly`), before it unwinds."""
    fut: Future = Future()

    def run() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to whoever calls .result()
            fut.set_exception(e)

    threading.Thread(target=run, daemon=True, name=f"mweval-{getattr(fn, '__name__', 'load')}").start()
    return fut


def wait_briefly(futures: Sequence[Future], seconds: float = 10.0) -> None:
    """Let loaders finish before the command unwinds (a session still being made in C++ while the
    interpreter exits can crash it), but not forever (see `in_daemon`)."""
    wait(futures, timeout=seconds)


class SharedQueue:
    """`take()` hands out the next item to whichever worker asks (None when done), so a worker
    that starts late or runs slower takes fewer: results are stored by index, so who ran which
    item never changes a byte. After `stop()` every worker gets None: it ends after its current
    item instead of working through the rest."""

    def __init__(self, items: Sequence):
        self._it = iter(items)
        self._lock = threading.Lock()
        self._stopped = False

    def __call__(self) -> object | None:
        with self._lock:
            return None if self._stopped else next(self._it, None)

    def stop(self) -> None:
        self._stopped = True


def run_workers(work: Callable[[int], None], n: int, take: SharedQueue) -> None:
    """`work(0)` … `work(n - 1)` in n threads (in this one when n is 1), each taking items from
    `take` until it is empty. The first exception in a worker, or a Ctrl-C / SIGTERM in the main
    thread, stops the queue and is re-raised once the workers have ended their current item: the
    others drained the whole queue first (a Ctrl-C during a 30 s inference waited 30 s)."""
    if n == 1:
        work(0)
        return

    def worker(k: int) -> None:
        try:
            work(k)
        except BaseException:
            take.stop()
            raise

    pool = ThreadPoolExecutor(n)
    try:
        list(pool.map(worker, range(n)))  # list() re-raises a worker's exception
    except BaseException:
        take.stop()
        raise
    finally:
        pool.shutdown(wait=True)


def ready(x):
    """A worker's session/forward, waiting for it if it is still being made (`in_background`)."""
    return x.result() if isinstance(x, Future) else x


def refuse_longer_than(ids: Sequence[np.ndarray], limit: int, what: str, where: str, names: Sequence[str] | None = None) -> None:
    """One error for rows a model cannot take (more pieces than `what` = `limit`), naming the
    first (by `names`, else by row number), instead of a shape failure inside the engine."""
    too_long = [i for i, x in enumerate(ids) if len(x) > limit]
    if too_long:
        first = too_long[0]
        name = names[first] if names is not None else f"row {first + 1}"
        raise MwevalError(
            f"{len(too_long)} entries have more pieces than {what} {limit} (first: {name}, {len(ids[first])} pieces)",
            where=where,
        )


def shared_queue(items: Sequence) -> SharedQueue:
    return SharedQueue(items)


def length_batches(lengths: Sequence[int], max_rows: int = 64, max_tokens: int = 4096) -> list[list[int]]:
    """Indices sorted by length, cut into batches of similar length (padding only within a batch)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = max(lengths[i], 1)
        if cur and (len(cur) + 1 > max_rows or (len(cur) + 1) * longest > max_tokens):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def pad_batch(ids: Sequence[np.ndarray], rows: Sequence[int], pad_id: int, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    w = width if width is not None else max(1, max(len(ids[i]) for i in rows))
    x = np.full((len(rows), w), pad_id, dtype=np.int64)
    m = np.zeros((len(rows), w), dtype=np.int64)
    for r, i in enumerate(rows):
        n = len(ids[i])
        x[r, :n] = ids[i]
        m[r, :n] = 1
    return x, m


def run_batched(
    forward: Callable[[np.ndarray, np.ndarray], np.ndarray] | Sequence[Callable[[np.ndarray, np.ndarray], np.ndarray]],
    ids: Sequence[np.ndarray],
    pad_id: int,
    progress: Progress | None,
    max_rows: int = 64,
    max_tokens: int = 4096,
    on_batch: OnBatch | None = None,
) -> list[np.ndarray]:
    """Logits per sequence from length-bucketed batches. Several `forward`s (one onnxruntime session
    per core; a Future while it is still being made) take the next batch in threads as they free
    up: 2 sessions x 1 thread beat 1 x 2 threads here by 7-20% (measured on the tiny and
    v0.4.0-size checkpoints; docs/benchmarks.md)."""
    forwards = list(forward) if isinstance(forward, list | tuple) else [forward]
    take = shared_queue(length_batches([len(x) for x in ids], max_rows, max_tokens))
    out: list[np.ndarray | None] = [None] * len(ids)
    lock = threading.Lock()

    def work(k: int) -> None:
        fwd = ready(forwards[k])
        while (rows := take()) is not None:
            x, m = pad_batch(ids, rows, pad_id)
            logits = fwd(x, m)
            for r, i in enumerate(rows):
                out[i] = np.array(logits[r, : len(ids[i])], dtype=np.float32)
            if on_batch:
                on_batch(rows, [out[i] for i in rows])
            if progress:
                with lock:
                    progress(len(rows))

    run_workers(work, len(forwards), take)
    return out  # type: ignore[return-value]
