"""Checkpoint + golden set -> run artifact (`mweval eval`)."""

from __future__ import annotations

import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mailwoman_eval import __version__
from mailwoman_eval.align import gold_bio
from mailwoman_eval.buckets import unreachable_reason
from mailwoman_eval.checkpoints.backend import in_daemon, wait_briefly
from mailwoman_eval.checkpoints.resolve import CheckpointRef, find_tokenizer, load_backend
from mailwoman_eval.decode import (
    PieceScores,
    argmax_paths_if_exact,
    build_transitions,
    components_from_labels,
    label_probabilities,
    piece_scores,
    viterbi_batch,
)
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import check_output_dir, refuse_overwriting_inputs
from mailwoman_eval.gcpause import gc_paused
from mailwoman_eval.golden import GoldenSet
from mailwoman_eval.labels import tags_from_labels
from mailwoman_eval.metrics import (
    EntryVectors,
    LabelSequences,
    calibration,
    invalid_bio_transitions,
    iob2_entities,
    outcome_matrix,
    outcome_row,
    seqeval_scores,
    summarize_views,
    tag_index,
)
from mailwoman_eval.profiles import Profile
from mailwoman_eval.run import (
    RUN_FILE,
    SCHEMA,
    Run,
    cache_key,
    cached_run,
    git_commit,
    load_run,
    write_run,
)
from mailwoman_eval.tokenizer import MAX_LENGTH, Tokenizer

ProgressFactory = Callable[[int, str], "object"]


@dataclass
class EvalOptions:
    profile: Profile
    tokenizer: str | None = None
    labels: str | None = None
    pad_to: str = "auto"
    engine: str = "onnx"
    threads: int | None = None
    workers: int | None = None
    use_cache: bool = True
    force: bool = False
    force_hint: str = "use --force"  # what to do about an `out` that is refused


def _r(x: float) -> float:
    return round(float(x), 6)


def audit(gset: GoldenSet, tags: list[str], profile: Profile) -> dict:
    """Gold hazards: tags outside the label set, values not in raw, values the profile cannot reach."""
    active = set(tags)
    outside: Counter = Counter()
    not_found: list[dict] = []
    unreachable: list[dict] = []
    case_only = 0
    for e in gset.entries:
        for tag, value in e.components.items():
            if not value:
                continue
            if tag not in active:
                outside[tag] += 1
                continue
            v = value.strip()
            if v not in e.raw:
                found_ci = v.lower() in e.raw.lower()
                not_found.append({"id": e.id, "tag": tag, "value": value, "case_only": found_ci})
                case_only += found_ci
            reason = unreachable_reason(value, e.raw, profile)
            if reason:
                unreachable.append({"id": e.id, "tag": tag, "value": value, "reason": reason})
    return {
        "gold_tags_outside_labels": dict(sorted(outside.items())),
        "values_not_in_raw": len(not_found),
        "values_case_only_in_raw": case_only,
        "values_not_in_raw_examples": not_found[:200],
        "unreachable_under_profile": len(unreachable),
        "unreachable_examples": unreachable[:200],
        "duplicate_rows": gset.duplicates,
        "manifest": gset.manifest.to_json(),
    }


def environment(engine: str | None = None) -> dict:
    """The versions of what turns the inputs into numbers (recorded, and part of the cache key).
    torch only under `--engine torch`: torch imported elsewhere in the process (a library user's
    script, a test session) computed nothing, and changed the key and run.json all the same. onnx
    only under `--engine onnx` (a PyTorch checkpoint's default): its graph is written by the onnx
    package (onnx_build.py), which an ONNX model file never passes through."""
    import onnxruntime
    import sentencepiece

    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "sentencepiece": sentencepiece.__version__,
        "platform": platform.system().lower() + "-" + platform.machine(),
    }
    if engine == "torch":
        import torch  # already imported by the backend

        env["torch"] = torch.__version__
    elif engine == "onnx":
        import onnx  # already imported by onnx_build

        env["onnx"] = onnx.__version__
    return env


def decode_paths(
    logits: list[np.ndarray], transitions, n_labels: int, rows_per_batch: int = 256, scores: PieceScores | None = None
) -> list[np.ndarray]:
    """Viterbi over length-sorted batches (padding only within a batch), except for rows whose
    argmax path is provably the Viterbi path (mask-only transitions; `argmax_paths_if_exact`)."""
    paths: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(logits)
    known = argmax_paths_if_exact(logits, transitions, scores)
    for i, p in enumerate(known):
        if p is not None:
            paths[i] = p
    order = sorted((i for i, p in enumerate(known) if p is None), key=lambda i: len(logits[i]))
    for start in range(0, len(order), rows_per_batch):
        rows = order[start : start + rows_per_batch]
        lengths = np.array([len(logits[i]) for i in rows])
        em = np.zeros((len(rows), max(1, int(lengths.max())), n_labels), dtype=np.float32)
        for r, i in enumerate(rows):
            em[r, : lengths[r]] = logits[i]
        best = viterbi_batch(em, lengths, transitions)
        for r, i in enumerate(rows):
            paths[i] = best[r, : lengths[r]]
    return paths


@dataclass
class PieceStatistics:
    labels: list[list[str]]  # decoded label per piece, per entry
    chosen: list[list[float]]  # softmax probability of the decoded label (rounded to 1e-6)
    chosen_exact: list[list[float]]  # the same, unrounded: a component's confidence is their mean (§5.2)
    amax: list[list[float]]  # max softmax probability = upstream's token confidence (rounded)
    amax_all: np.ndarray  # the same, unrounded, over every piece of every entry
    amax_rows: list[np.ndarray]  # amax_all split per entry
    invalid_argmax: int  # invalid BIO transitions in the per-piece argmax path
    invalid_decoded: int  # ... and in the decoded path


def piece_statistics(
    logits: list[np.ndarray], paths: list[np.ndarray], labels: list[str], scores: PieceScores | None = None
) -> PieceStatistics:
    """Softmax, confidences and BIO validity over all pieces at once (array ops, not per piece).
    `scores`: `piece_scores(logits)`, if the caller has them already."""
    lengths = [len(x) for x in logits]
    scores = scores or piece_scores(logits)
    path = np.concatenate(paths).astype(np.int64) if paths else np.zeros(0, dtype=np.int64)
    amax, chosen = label_probabilities(scores, path) if scores else (np.zeros(0), np.zeros(0))
    starts = np.cumsum([0] + lengths[:-1]).astype(np.int64) if lengths else np.zeros(0, dtype=np.int64)
    bounds = np.cumsum(lengths)[:-1] if lengths else []
    cuts = list(zip([0, *bounds.tolist()], np.cumsum(lengths).tolist(), strict=True)) if lengths else []

    # one tolist() over all pieces, then list slices per entry (np.split per entry costs 3x more)
    def per_entry(values: list) -> list[list]:
        return [values[a:b] for a, b in cuts]

    return PieceStatistics(
        labels=per_entry([labels[k] for k in path.tolist()]),
        chosen=per_entry(np.round(chosen, 6).tolist()),
        chosen_exact=per_entry(chosen.tolist()),
        amax=per_entry(np.round(amax, 6).tolist()),
        amax_all=amax,
        amax_rows=[amax[a:b] for a, b in cuts],
        invalid_argmax=invalid_bio_transitions(scores.best if scores else path, starts, labels),
        invalid_decoded=invalid_bio_transitions(path, starts, labels),
    )


def entry_record(e, enc, comps: dict, lab: list[str], gold_lab: list[str], chosen: list[float], amax: list[float]) -> dict:
    """One line of predictions.jsonl."""
    return {
        "id": e.id,
        "file": e.file,
        "line": e.line,
        "raw": e.raw,
        "country": e.country,
        "source": e.source,
        "notes": e.notes,
        "adversarial": e.adversarial,
        "non_latin": e.non_latin,
        "truncated": len(enc) > MAX_LENGTH,
        "n_pieces": len(enc),
        "gold": e.components,
        # confidence is a float already: round() without _r's call and float() (15k components)
        "pred": {t: {"value": c.value, "start": c.start, "end": c.end, "confidence": round(c.confidence, 6)} for t, c in comps.items()},
        "pieces": list(enc.pieces[:MAX_LENGTH]),
        "spans": [[b, e] for b, e in zip(enc.begin[:MAX_LENGTH], enc.end[:MAX_LENGTH], strict=True)],
        "labels": lab,
        "gold_labels": gold_lab,
        "conf": chosen,
        "amax_conf": amax,
    }


class RowDecoder:
    """Everything per entry after the forward pass, for any subset of rows: Viterbi, confidences,
    components, gold labels, outcomes and the predictions.jsonl record, stored
    at the row's index.

    Batching backends call it from their inference workers as each batch finishes, so this Python
    work runs while the other worker's onnxruntime call holds a core (the GIL is released there)
    instead of after inference on one core; `finish` decodes whatever no batch reached (batch-1
    graphs, where overlapping measured slower). Each row's result depends only on its own logits,
    so the order of batches never changes a byte.
    """

    def __init__(self, entries, encodings, labels: list[str], tags: list[str], transitions, profile: Profile):
        self.entries, self.encodings = entries, encodings
        self.labels, self.tags, self.transitions, self.profile = labels, tags, transitions, profile
        self.label_index = {lab: k for k, lab in enumerate(labels)}
        self.tag_index = tag_index(tags)
        self.active = frozenset(tags)
        n = len(entries)
        self.predictions: list = [None] * n
        self.outcome_rows: list = [None] * n
        self.paths: list = [None] * n  # decoded label ids per entry
        self.amax: list = [None] * n
        self.invalid: list[tuple[int, int]] = []  # (argmax, decoded) per batch; list.append is atomic
        self.nonfinite = False  # some batch had NaN or infinite logits (and was not decoded)

    def __call__(self, rows: Sequence[int], logits: list[np.ndarray]) -> None:
        scores = piece_scores(logits)  # once for the argmax shortcut and the confidences
        if scores is not None and not scores.finite:
            self.nonfinite = True  # nothing is decoded from NaN/inf; evaluate refuses the run
            return
        paths = decode_paths(logits, self.transitions, len(self.labels), scores=scores)
        stats = piece_statistics(logits, paths, self.labels, scores)
        self.invalid.append((stats.invalid_argmax, stats.invalid_decoded))
        profile, tags, active = self.profile, self.tags, self.active
        for r, i in enumerate(rows):
            e, enc = self.entries[i], self.encodings[i]
            lab, chosen, amax = stats.labels[r], stats.chosen[r], stats.amax[r]
            comps = components_from_labels(e.raw, lab, enc.begin, enc.end, stats.chosen_exact[r], profile)
            gold_lab = gold_bio(e.raw, e.components, active, enc, limit=MAX_LENGTH)
            self.amax[i] = stats.amax_rows[r]
            self.paths[i] = paths[r]
            self.outcome_rows[i] = outcome_row(e.components, {t: c.value for t, c in comps.items()}, tags, profile, self.tag_index)
            self.predictions[i] = entry_record(e, enc, comps, lab, gold_lab, chosen, amax)

    def finish(self, logits: list[np.ndarray]) -> None:
        """Rows no batch reached (a backend that ignores `on_batch`) are decoded here."""
        missing = [i for i, p in enumerate(self.predictions) if p is None]
        if missing:
            self(missing, [logits[i] for i in missing])


def refuse_nonfinite(logits: list[np.ndarray], entries, where: str | Path) -> None:
    """NaN/inf logits would decode to arbitrary labels and NaN confidences: refuse, naming a row.
    (`RowDecoder` finds them in its pass over the logits; this names the rows.) Returns when
    every logit is finite."""
    bad = [i for i, x in enumerate(logits) if not np.isfinite(x).all()]
    if bad:
        raise MwevalError(
            f"the model produced NaN or infinite logits for {len(bad)} of {len(logits)} entries (first: {entries[bad[0]].id})",
            where=str(where),
        )


@contextmanager
def short_gil_switch(seconds: float = 0.0005) -> Iterator[None]:
    """A thread that wants the GIL waits up to the switch interval (5 ms by default) for the one
    holding it; shortened while threads that mostly run C++ without it need it between calls."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _load_tokenizer(ref: CheckpointRef, arg: str | None) -> tuple[Tokenizer, Path, str]:
    path, source = find_tokenizer(ref, arg)
    return Tokenizer(path), path, source


def _load_all(gset, out: Path, opts: EvalOptions, loading, tok_loading):
    """The golden set (loaded here), the checks on `out`, the tokenization, and what the loader
    threads made; errors in the order a user fixes them: golden set, --out, tokenizer, checkpoint."""
    gset = gset() if callable(gset) else gset
    check_output_dir(out, RUN_FILE, opts.force, opts.force_hint)  # refuse now, not after the whole evaluation
    # --force into the golden set (a split's set root too: its *.jsonl are golden files as well)
    refuse_overwriting_inputs([out], [gset.path, *(gset.path / f.name for f in gset.files),
                                      *([gset.path.resolve().parent] if gset.path.resolve().name in ("dev", "test") else [])])
    tokenizer, tok_path, tok_source = tok_loading.result()
    encodings = tokenizer.encode_many([e.raw for e in gset.entries])
    backend = loading.result()  # re-raises the loader's MwevalError
    return gset, encodings, tokenizer, tok_path, tok_source, backend


@gc_paused()
def evaluate(
    ref: CheckpointRef,
    gset: GoldenSet | Callable[[], GoldenSet],
    opts: EvalOptions,
    out: Path,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] = lambda s: None,
):
    """Evaluate and write the run directory `out`; returns the loaded Run.

    `gset` may be a GoldenSet or a function that loads one: the CLI passes the loader, so the
    golden set is read while the model and the tokenizer load."""
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # Everything loads at once: the model and the tokenizer in threads (session creation, hashing,
    # weight reading and SentencePiece's Load run in C++ without the GIL), the golden set here
    # (Python), then the tokenization here while the model finishes (docs/benchmarks.md). Errors
    # still come in the order a user fixes them: golden set, --out, tokenizer, checkpoint. A
    # repeated run found in the cache wastes the tokenization, which costs no wall time here.
    loading = in_daemon(
        load_backend, ref, labels=opts.labels, pad_to=opts.pad_to, engine=opts.engine, threads=opts.threads, workers=opts.workers
    )
    tok_loading = in_daemon(_load_tokenizer, ref, opts.tokenizer)
    try:
        with short_gil_switch():  # the loader threads' Python parts wait less
            gset, encodings, tokenizer, tok_path, tok_source, backend = _load_all(gset, out, opts, loading, tok_loading)
    except BaseException:
        wait_briefly([loading, tok_loading])  # an error or a Ctrl-C here: the loaders end first, or 10 s pass
        raise

    entries = gset.entries
    if backend.embedding_rows is not None and tokenizer.vocab_size > backend.embedding_rows:
        raise MwevalError(
            f"tokenizer vocab {tokenizer.vocab_size} is larger than the model's embedding ({backend.embedding_rows} rows)",
            where=str(tok_path),
        )
    labels = backend.labels
    tags = tags_from_labels(labels)
    transitions = build_transitions(opts.profile, labels, backend.crf)
    for w in backend.warnings:
        log(f"warning: {w}")
    t_load = time.perf_counter()  # model loaded and golden set tokenized (overlapped)

    env = environment(backend.info.get("engine"))
    checkpoint = {"name": ref.name, "path": str(ref.path), "kind": ref.kind, "found_in": ref.found_in}
    tok_meta = {"path": str(tok_path), "source": tok_source, "sha256": tokenizer.sha256, "vocab_size": tokenizer.vocab_size}
    key = cache_key(
        {
            "checkpoint": backend.info["sha256"],
            "files": backend.info.get("files"),
            # what run.json records about the checkpoint, so a hit never serves another run's
            # (labels from --labels vs the v0.4.0 default and its warning, package.json's version)
            "checkpoint_info": backend.info,
            "labels_source": backend.labels_source,
            "backend_warnings": backend.warnings,
            "tokenizer": tokenizer.sha256,
            "golden": [(f.name, f.sha256) for f in gset.files],
            "golden_name": gset.name,
            # the check's result, not where the manifest was found (a path typed another way is the same input)
            "manifest": {k: v for k, v in gset.manifest.to_json().items() if k != "manifest"},
            "profile": opts.profile.name,
            "transitions": transitions.source,
            "labels": labels,
            "padding": backend.info.get("padding"),
            "engine": backend.info.get("engine"),
            "environment": env,
        }
    )
    if opts.use_cache:
        expect = {"checkpoint.sha256": backend.info["sha256"], "tokenizer.sha256": tokenizer.sha256, "golden.sha256": gset.sha256}
        cached = cached_run(key, expect)
        if cached is not None:
            meta = dict(cached.meta)
            # The cached run came from the same bytes (the key), perhaps found by other paths:
            # where this run found them is what it records, as a miss would.
            meta["checkpoint"] = {**meta["checkpoint"], **checkpoint}
            meta["tokenizer"] = tok_meta
            meta["golden"] = gset.to_json()
            meta["audit"] = {**meta["audit"], "manifest": gset.manifest.to_json()}
            meta["mweval_git_commit"] = git_commit()
            meta["timings"] = {"started_at": started, "cache": "hit", "cache_key": key, "total_s": _r(time.perf_counter() - t0)}
            meta.pop("predictions_sha256", None)
            write_run(out, meta, cached.predictions, force=opts.force)
            return load_run(out)

    ids = [np.asarray(enc.ids[:MAX_LENGTH], dtype=np.int64) for enc in encodings]
    backend.check_rows(ids, [e.id for e in entries])  # names the entry; infer would say the row number

    bar = progress(len(ids), "inference") if progress else None
    decoder = RowDecoder(entries, encodings, labels, tags, transitions, opts.profile)
    # A worker back from onnxruntime waits for the GIL while the other decodes: up to the switch
    # interval per batch (5 ms by default, ~70 batches at the v0.4.0 size). 0.5 ms bounds that wait;
    # measured no slower, and the gain is below this host's noise.
    with short_gil_switch():
        logits = backend.infer(ids, progress=(bar.update if bar else None), on_batch=decoder)
    if bar:
        bar.finish()
    t_inf = time.perf_counter()

    n = len(entries)
    decoder.finish(logits)
    if decoder.nonfinite:
        refuse_nonfinite(logits, entries, ref.path)
    predictions = decoder.predictions
    t_dec = time.perf_counter()

    adversarial = np.array([p["adversarial"] for p in predictions], dtype=bool)
    vectors = EntryVectors(
        tags=tags,
        out=outcome_matrix(decoder.outcome_rows, len(tags)),
        conf_sum=np.array([sum(p["amax_conf"]) for p in predictions], dtype=np.float64),
        chosen_sum=np.array([sum(p["conf"]) for p in predictions], dtype=np.float64),
        n_pieces=np.array([len(p["labels"]) for p in predictions], dtype=np.int64),
    )
    metrics = {"views": summarize_views(vectors, adversarial)}
    index = decoder.label_index
    gold = LabelSequences.of([p["gold_labels"] for p in predictions])  # one pass: calibration and entities
    # a gold label the model cannot emit (a list with B-x but no I-x) is never "correct": -1, no label id
    gold_ids = np.array([index.get(g, -1) for g in gold.vocab], dtype=np.int64)[gold.ids]
    all_paths = np.concatenate(decoder.paths) if n else np.zeros(0, dtype=np.int64)
    correct_all = all_paths == gold_ids
    amax_all = np.concatenate(decoder.amax) if n else np.zeros(0)
    metrics["calibration"] = calibration(amax_all, correct_all)
    path_starts = np.cumsum([0] + [len(x) for x in decoder.paths[:-1]])
    metrics["seqeval"] = seqeval_scores(
        gold.entities(),
        iob2_entities(all_paths, labels, path_starts),
        tags,
    )
    invalid_argmax = sum(a for a, _ in decoder.invalid)
    invalid_decoded = sum(d for _, d in decoder.invalid)
    t_score = time.perf_counter()

    warnings = list(backend.warnings)
    aud = audit(gset, tags, opts.profile)
    if aud["gold_tags_outside_labels"]:
        outside = ", ".join(f"{t} ({c})" for t, c in aud["gold_tags_outside_labels"].items())
        warnings.append(f"gold tags outside the checkpoint's label set are not scored: {outside}")
    if gset.manifest.status == "mismatch":
        warnings.append("golden set does not match its manifest: " + "; ".join(gset.manifest.problems))
    truncated = sum(p["truncated"] for p in predictions)
    if truncated:
        warnings.append(f"{truncated} entries exceed {MAX_LENGTH} pieces and were truncated (scored as upstream does)")

    checkpoint.update(backend.info)
    checkpoint["labels"] = labels
    checkpoint["labels_source"] = backend.labels_source
    meta = {
        "schema": SCHEMA,
        "mweval_version": __version__,
        "mweval_git_commit": git_commit(),
        "checkpoint": checkpoint,
        "tokenizer": tok_meta,
        "golden": gset.to_json(),
        "profile": opts.profile.to_json(),
        "decode": {
            "transitions": transitions.source,
            "viterbi": transitions.flavour,
            "max_length": MAX_LENGTH,
            "padding": backend.info.get("padding", "within-batch"),
        },
        "tags": tags,
        "counts": {
            "entries": n,
            "adversarial": int(adversarial.sum()),
            "non_latin": int(sum(p["non_latin"] for p in predictions)),
            "truncated": int(truncated),
            "pieces_decoded": int(vectors.n_pieces.sum()),
            "invalid_bio_argmax": invalid_argmax,
            "invalid_bio_decoded": invalid_decoded,
        },
        "metrics": metrics,
        "audit": aud,
        "warnings": warnings,
        "environment": env,
        "timings": {
            "started_at": started,
            "cache": "miss",
            "cache_key": key,
            "load_and_tokenize_s": _r(t_load - t0),
            "inference_s": _r(t_inf - t_load),
            "decode_s": _r(t_dec - t_inf),
            "score_s": _r(t_score - t_dec),
            "total_s": _r(time.perf_counter() - t0),
            "rows_per_s": _r(n / max(1e-9, time.perf_counter() - t0)),
        },
    }
    written = write_run(out, meta, predictions, force=opts.force, cache_key=key if opts.use_cache else None, log=log)
    # the records just written, as load_run would return them (JSON round trip keeps types the same)
    return Run(out, written, predictions)
