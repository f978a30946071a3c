"""What every backend provides, and the length-bucketed batching shared by the batchable ones."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mailwoman_eval.decode import CRFParams

Progress = Callable[[int], None]


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

    def infer(self, ids: Sequence[np.ndarray], progress: Progress | None = None) -> list[np.ndarray]:
        """Logits (len_i, L) float32 per sequence of piece ids (already truncated to 128)."""
        raise NotImplementedError


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
    forward: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ids: Sequence[np.ndarray],
    pad_id: int,
    progress: Progress | None,
    max_rows: int = 64,
    max_tokens: int = 4096,
) -> list[np.ndarray]:
    out: list[np.ndarray | None] = [None] * len(ids)
    for rows in length_batches([len(x) for x in ids], max_rows, max_tokens):
        x, m = pad_batch(ids, rows, pad_id)
        logits = forward(x, m)
        for r, i in enumerate(rows):
            out[i] = np.array(logits[r, : len(ids[i])], dtype=np.float32)
        if progress:
            progress(len(rows))
    return out  # type: ignore[return-value]
