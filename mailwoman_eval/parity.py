"""Does the exported ONNX (fp32 / int8) decode like the PyTorch checkpoint? (`mweval parity`)

design.md Decisions "Parity". The checkpoint is the reference. Every artifact sees the same
entries, the same tokenization and truncation, the same label list and the checkpoint's learned
CRF transitions (never an ONNX sidecar), so only the logits differ. Per artifact: max |Δlogit|,
decoded-label agreement (pieces, entries), per-tag F1 and its Δ in pp with a paired-bootstrap
CI (compare.view_statistics), and a verdict:
- int8 (told apart by the backend's `int8` flag): FAIL when any gated tag (support ≥ 30 in the
  reference) moves by more than `max_delta_pp` (upstream's int8-vs-fp32 bar is 1.5 pp, §7), or
  when fewer than `min_agreement_int8` % of pieces decode to the same label. The F1 bar alone
  passed the int8 export of a neighbouring step (demo regressed step-002000 against step-002200's
  int8: worst gated tag 0.94 pp, but 99.23% of pieces agree, 72 of 9345 differ); the int8 exports
  of the checkpoints themselves agree on 99.82-99.97% (demo baseline and regressed, tiny-v040);
- fp32: FAIL when fewer than `min_agreement` % of pieces decode to the same label.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from mailwoman_eval import __version__
from mailwoman_eval.checkpoints.resolve import CheckpointRef, find_tokenizer
from mailwoman_eval.compare import md_cell, view_statistics
from mailwoman_eval.console import signed, table, value_and_threshold
from mailwoman_eval.decode import (
    Transitions,
    build_transitions,
    components_from_labels,
)
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.evaluate import decode_paths, piece_statistics, refuse_nonfinite
from mailwoman_eval.golden import GoldenSet
from mailwoman_eval.labels import tags_from_labels
from mailwoman_eval.metrics import outcome_matrix, outcome_row
from mailwoman_eval.profiles import Profile
from mailwoman_eval.stats import f1_from_counts
from mailwoman_eval.tokenizer import MAX_LENGTH, Tokenizer

SCHEMA = "mweval.parity/1"
MARKER = "parity.json"
EXAMPLES = 20


@dataclass(frozen=True)
class ParityOptions:
    profile: Profile
    tokenizer: str | None = None
    engine: str = "numpy"
    pad_to: str = "auto"
    max_delta_pp: float = 1.5
    min_agreement: float = 99.9
    min_agreement_int8: float = 99.5
    min_support: int = 30
    resamples: int = 1000
    seed: int = 0


@dataclass
class Decoded:
    """One model's view of the entries: logits, Viterbi paths, scored outcomes."""

    logits: list[np.ndarray]
    paths: list[np.ndarray]
    outcomes: np.ndarray  # (n, T)
    conf_sum: np.ndarray  # (n,) emission-argmax confidence summed over pieces
    n_pieces: np.ndarray  # (n,)


def decode(logits: list[np.ndarray], encodings, gset: GoldenSet, labels: list[str], tags: list[str],
           transitions: Transitions, profile: Profile) -> Decoded:
    """Viterbi, components and per-tag outcomes exactly as evaluate() computes them."""
    paths = decode_paths(logits, transitions, len(labels))
    stats = piece_statistics(logits, paths, labels)
    out_rows = []
    for i, e in enumerate(gset.entries):
        enc = encodings[i]
        comps = components_from_labels(e.raw, stats.labels[i], enc.begin, enc.end, stats.chosen[i], profile)
        out_rows.append(outcome_row(e.components, {t: c.value for t, c in comps.items()}, tags, profile))
    conf_sum = np.array([sum(a) for a in stats.amax], dtype=np.float64)
    n_pieces = np.array([len(x) for x in logits], dtype=np.int64)
    return Decoded(logits, paths, outcome_matrix(out_rows, len(tags)), conf_sum, n_pieces)


def onnx_labels_arg(onnx_path: Path, ckpt_labels: list[str]) -> tuple[list[str] | None, str | None]:
    """Let the backend read a label list beside the ONNX (model card, sidecar); with none there,
    the checkpoint's list is the only one that exists (the logits width is still checked)."""
    d = onnx_path.parent
    if (d / "crf-transitions.json").is_file() or _card_has_labels(d / "model-card.json"):
        return None, None
    return list(ckpt_labels), "checkpoint (no label list in a model card or sidecar beside the ONNX)"


def _card_has_labels(card: Path) -> bool:
    """A card without `labels` leaves the checkpoint's list (the backend would ask for --labels,
    which parity does not have). A card that does not parse is left to the backend to refuse."""
    if not card.is_file():
        return False
    try:
        doc = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return True
    return not isinstance(doc, dict) or isinstance(doc.get("labels"), list)


def _crf_diff(a, b) -> float:
    return float(max(np.abs(a.transitions - b.transitions).max(), np.abs(a.start - b.start).max(), np.abs(a.end - b.end).max()))


def _f1_delta_pp(row: dict) -> float:
    """The artifact's F1 minus the reference's, in pp, unrounded (from `view_statistics`' counts)."""
    (btp, ctp), (bfp, cfp), (bfn, cfn) = row["tp"], row["fp"], row["fn"]
    return float(f1_from_counts(np.float64(ctp), np.float64(cfp), np.float64(cfn)) - f1_from_counts(np.float64(btp), np.float64(bfp), np.float64(bfn))) * 100


def _agreement(ref: Decoded, art: Decoded, gset: GoldenSet, labels: list[str], pieces) -> dict:
    same_pieces = total = same_entries = same_argmax = 0
    examples = []
    for i, (rp, ap) in enumerate(zip(ref.paths, art.paths, strict=True)):
        eq = rp == ap
        same_pieces += int(eq.sum())
        total += len(rp)
        same_argmax += int((ref.logits[i].argmax(-1) == art.logits[i].argmax(-1)).sum()) if len(rp) else 0
        if eq.all():
            same_entries += 1
        elif len(examples) < EXAMPLES:
            diff = np.flatnonzero(~eq).tolist()
            examples.append({
                "id": gset.entries[i].id,
                "raw": gset.entries[i].raw,
                "pieces": [{"i": k, "piece": pieces[i][k], "ref": labels[rp[k]], "artifact": labels[ap[k]]} for k in diff[:12]],
                "differing_pieces": len(diff),
            })
    n = len(ref.paths)
    return {
        "pieces_pct": round(100.0 * same_pieces / total, 4) if total else 100.0,
        "entries_pct": round(100.0 * same_entries / n, 4) if n else 100.0,
        "argmax_pieces_pct": round(100.0 * same_argmax / total, 4) if total else 100.0,
        "pieces_total": total,
        "pieces_differ": total - same_pieces,
        "entries_total": n,
        "entries_differ": n - same_entries,
        "examples": examples,
    }


def _logit_diff(ref: Decoded, art: Decoded, gset: GoldenSet) -> dict:
    worst, worst_i, total, count = 0.0, None, 0.0, 0
    for i, (a, b) in enumerate(zip(ref.logits, art.logits, strict=True)):
        if not len(a):
            continue
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        m = float(d.max())
        total += float(d.sum())
        count += d.size
        if m > worst or worst_i is None:
            worst, worst_i = m, i
    return {
        "max_abs_diff": worst,
        "mean_abs_diff": total / count if count else 0.0,
        "worst_entry": gset.entries[worst_i].id if worst_i is not None else None,
    }


def artifact_names(paths: list[Path]) -> list[str]:
    """How the outputs name each artifact: its file name, or the path as given where another
    artifact has the same file name (an old and a new `model.onnx`), so that no warning, table row,
    `failed` entry or timing is about two files at once."""
    counts = Counter(p.name for p in paths)
    return [p.name if counts[p.name] == 1 else str(p) for p in paths]


def parity(ref: CheckpointRef, onnx_paths: list[Path], gset: GoldenSet, opts: ParityOptions, log=lambda s: None) -> dict:
    """Run the reference and each artifact on `gset`; return the parity document (exit code inside)."""
    from mailwoman_eval.checkpoints.onnx_backend import OnnxBackend
    from mailwoman_eval.checkpoints.pytorch_dir import PytorchBackend

    t0 = time.perf_counter()
    if ref.kind != "pytorch":
        raise MwevalError(f"--ckpt must be a PyTorch checkpoint (step) directory, not {'an' if ref.kind[0] in 'aeiou' else 'a'} {ref.kind} ({ref.path})")
    if not onnx_paths:
        raise MwevalError("give at least one --onnx FILE")
    seen: dict[Path, Path] = {}
    for p in onnx_paths:
        if not p.is_file():
            raise MwevalError("ONNX file not found", where=str(p))
        if p.suffix != ".onnx":
            raise MwevalError("not an .onnx file", where=str(p))
        if (first := seen.setdefault(p.resolve(), p)) is not p:
            raise MwevalError(f"the same ONNX file is given twice (as {first} and as {p})", where=str(p))
    display = artifact_names(onnx_paths)
    tok_path, tok_source = find_tokenizer(ref, opts.tokenizer)
    tokenizer = Tokenizer(tok_path)
    base = PytorchBackend(ref.path, engine=opts.engine)
    if tokenizer.vocab_size > (base.embedding_rows or tokenizer.vocab_size):
        raise MwevalError(f"tokenizer vocab {tokenizer.vocab_size} is larger than the model's embedding ({base.embedding_rows} rows)",
                          where=str(tok_path))
    labels, tags = base.labels, tags_from_labels(base.labels)
    transitions = build_transitions(opts.profile, labels, base.crf)
    encodings = tokenizer.encode_many([e.raw for e in gset.entries])
    ids = [np.asarray(enc.ids[:MAX_LENGTH], dtype=np.int64) for enc in encodings]
    pieces = [list(enc.pieces[:MAX_LENGTH]) for enc in encodings]
    log(f"mweval parity: reference {ref.name} ({opts.engine}) on {gset.name} ({len(ids)} rows), profile {opts.profile.name}")
    doc_warnings = []
    if gset.manifest.status == "mismatch":  # as eval and gate say it (design.md: a mismatch warns)
        doc_warnings.append("golden set does not match its manifest: " + "; ".join(gset.manifest.problems))
    t_ref = time.perf_counter()
    names = [e.id for e in gset.entries]
    base.check_rows(ids, names)
    ref_logits = base.infer(ids)
    refuse_nonfinite(ref_logits, gset.entries, ref.path)  # nothing decodes from NaN (as in evaluate)
    ref_dec = decode(ref_logits, encodings, gset, labels, tags, transitions, opts.profile)
    ref_seconds = time.perf_counter() - t_ref

    artifacts = []
    artifact_seconds: dict[str, float] = {}
    for path, name in zip(onnx_paths, display, strict=True):
        labels_arg, labels_note = onnx_labels_arg(path, labels)
        backend = OnnxBackend(path, labels_arg=labels_arg, pad_to=opts.pad_to)
        if backend.labels != labels:
            raise MwevalError(
                f"ONNX label list ({backend.labels_source}, {len(backend.labels)} labels) differs from the checkpoint's "
                f"({base.labels_source}, {len(labels)} labels)", where=str(path))
        kind = "int8" if backend.int8 else "fp32"
        log(f"  {name}: {kind}, batched {'yes' if backend.batchable else 'no (by trial)'}, padding {backend.info['padding']}")
        t_art = time.perf_counter()
        backend.check_rows(ids, names)
        art_logits = backend.infer(ids)
        refuse_nonfinite(art_logits, gset.entries, path)  # a NaN max |Δ| is neither a number nor valid JSON
        art = decode(art_logits, encodings, gset, labels, tags, transitions, opts.profile)
        seconds = time.perf_counter() - t_art
        stats = view_statistics(ref_dec.outcomes, art.outcomes, (ref_dec.conf_sum, ref_dec.n_pieces.astype(np.float64)),
                                (art.conf_sum, art.n_pieces.astype(np.float64)), tags, opts.resamples, opts.seed)
        gated = [t for t in tags if stats["per_tag"][t]["support"] >= opts.min_support]
        f1 = {}
        for t in tags:
            s = stats["per_tag"][t]
            f1[t] = {"support": s["support"], "gated": t in gated, "ref": s["f1"]["base"], "artifact": s["f1"]["cand"],
                     "delta_pp": s["f1"]["delta_pp"], "ci95_pp": s["f1"]["ci95_pp"]}
        agree = _agreement(ref_dec, art, gset, labels, pieces)
        # The verdict takes the unrounded figures (parity.json rounds to 4 places: 99.818085% of
        # pieces passed a floor of 99.81809, and a po_box Δ of -2.08333 pp an allowance of 2.08332)
        reasons = []
        if kind == "int8":
            rule = (f"int8: every gated tag (support ≥ {opts.min_support}) within ±{opts.max_delta_pp} pp F1 of the reference, "
                    f"and at least {opts.min_agreement_int8}% of pieces decode to the reference's label")
            for t in gated:
                exact = _f1_delta_pp(stats["per_tag"][t])
                if abs(exact) > opts.max_delta_pp:
                    shown = value_and_threshold(abs(exact), opts.max_delta_pp, digits=(2, 4, 6, 8))[0]  # as many places as tell them apart
                    reasons.append(f"{t} F1 moved {'-' if exact < 0 else '+'}{shown} pp (> {opts.max_delta_pp} pp)")
        else:
            rule = f"fp32: at least {opts.min_agreement}% of pieces decode to the reference's label"
        floor = opts.min_agreement_int8 if kind == "int8" else opts.min_agreement
        same, total = agree["pieces_total"] - agree["pieces_differ"], agree["pieces_total"]
        # as a fraction, against the floor as it was typed: no float rounding either way
        if total and Fraction(100 * same, total) < Fraction(repr(floor)):
            shown = value_and_threshold(100 * same / total, floor, digits=(3, 4, 5, 6, 7, 8))[0]
            reasons.append(f"piece agreement {shown}% < {floor}%")
        warnings = list(backend.warnings)
        sidecar_diff = None
        if backend.crf is not None and base.crf is not None:
            sidecar_diff = _crf_diff(backend.crf, base.crf)
            if sidecar_diff > 1e-5:
                warnings.append(f"crf-transitions.json beside the ONNX differs from the checkpoint's CRF (max |Δ| {sidecar_diff:.3g}): "
                                f"the export may come from another checkpoint; parity decodes every model with the checkpoint's")
        artifacts.append({
            "path": str(path),
            "name": name,
            "sha256": backend.info["sha256"],
            "kind": kind,
            "int8": bool(backend.int8),
            "batchable": bool(backend.batchable),
            "padding": backend.info["padding"],
            "labels_source": labels_note or backend.labels_source,
            "zero_fed_inputs": backend.info.get("zero_fed_inputs") or [],
            "sidecar_crf_max_abs_diff": sidecar_diff,
            "logits": _logit_diff(ref_dec, art, gset),
            "agreement": agree,
            "f1": f1,
            "macro_f1": stats["summary"].get("macro_f1"),
            "exact_match": stats["summary"]["exact_match"],
            "gated_tags": gated,
            "max_abs_delta_pp_gated": max((abs(f1[t]["delta_pp"]) for t in gated), default=0.0),
            "rule": rule,
            "verdict": "FAIL" if reasons else "PASS",
            "reasons": reasons,
            "warnings": warnings,
        })
        artifact_seconds[name] = round(seconds, 3)
    failed = [a["name"] for a in artifacts if a["verdict"] == "FAIL"]
    return {
        "schema": SCHEMA,
        "mweval_version": __version__,
        "reference": {
            "name": ref.name, "path": str(ref.path), "sha256": base.info["sha256"], "engine": opts.engine,
            "labels": labels, "labels_source": base.labels_source,
        },
        "tokenizer": {"path": str(tok_path), "source": tok_source, "sha256": tokenizer.sha256},
        "golden": {**{k: gset.to_json()[k] for k in ("name", "sha256", "rows")}, "manifest": gset.manifest.status},
        "warnings": doc_warnings,
        "profile": opts.profile.name,
        "decode": {"transitions": transitions.source, "viterbi": transitions.flavour,
                   "note": "every model is decoded with the checkpoint's transitions; only the logits differ"},
        "view": "all",
        "thresholds": {"max_delta_pp": opts.max_delta_pp, "min_agreement_pct": opts.min_agreement,
                       "min_agreement_int8_pct": opts.min_agreement_int8,
                       "min_support": opts.min_support, "resamples": opts.resamples, "seed": opts.seed},
        "tags": tags,
        "artifacts": artifacts,
        "verdict": "FAIL" if failed else "PASS",
        "failed": failed,
        "exit_code": 1 if failed else 0,
        "timings": {"total_s": round(time.perf_counter() - t0, 3), "reference_s": round(ref_seconds, 3), "artifacts_s": artifact_seconds},
    }


# ---------------------------------------------------------------------------------------------
# outputs


def summary_rows(doc: dict) -> list[list]:
    rows = []
    for a in doc["artifacts"]:
        rows.append([
            a["name"], a["kind"], f"{a['logits']['max_abs_diff']:.3g}", f"{a['agreement']['pieces_pct']:.3f}",
            f"{a['agreement']['entries_pct']:.2f}", f"{a['max_abs_delta_pp_gated']:.2f}", a["verdict"],
        ])
    return rows


SUMMARY_HEADERS = ["artifact", "kind", "max |Δlogit|", "pieces agree %", "entries agree %", "max |ΔF1| gated pp", "verdict"]


def console_table(doc: dict) -> str:
    ref = doc["reference"]
    lines = [f"parity: {ref['name']} ({ref['engine']}, reference) on {doc['golden']['name']} ({doc['golden']['rows']} rows), "
             f"profile {doc['profile']}, transitions {doc['decode']['transitions']} for all",
             table(SUMMARY_HEADERS, summary_rows(doc), align="llrrrrl"), ""]
    tags = [t for t in doc["tags"] if any(a["f1"][t]["support"] for a in doc["artifacts"])]
    headers = ["tag", "support", "ref F1"] + [f"Δ {a['name']}" for a in doc["artifacts"]]
    rows = []
    for t in tags:
        first = doc["artifacts"][0]["f1"][t]
        rows.append([t + (" *" if first["gated"] else ""), first["support"], f"{first['ref'] * 100:.2f}",
                     *[f"{signed(a['f1'][t]['delta_pp'], 2)}" for a in doc["artifacts"]]])
    lines.append(table(headers, rows, align="lrr" + "r" * len(doc["artifacts"])))
    lines.append(f"* gated (support ≥ {doc['thresholds']['min_support']}); Δ in pp, artifact − reference, view all")
    for a in doc["artifacts"]:
        lines.append(f"{a['name']}: {a['verdict']} — {a['rule']}" + (": " + "; ".join(a["reasons"]) if a["reasons"] else ""))
    lines.append(f"verdict {doc['verdict']}")  # the warnings are the CLI's, on stderr
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    ref = doc["reference"]
    th = doc["thresholds"]
    names = ", ".join("`" + a["name"] + "`" for a in doc["artifacts"])
    out = [f"## mweval parity: `{ref['name']}` vs {names}", "",
           f"Reference: PyTorch checkpoint (`{ref['engine']}` engine). Golden `{doc['golden']['name']}` ({doc['golden']['rows']} rows) · "
           f"profile `{doc['profile']}` · every model decoded with the checkpoint's `{doc['decode']['transitions']}` transitions, "
           f"so only the logits differ.", "",
           f"**Verdict: {doc['verdict']}**" + (f" ({', '.join(doc['failed'])})" if doc["failed"] else ""), "",
           *[f"> warning: {md_cell(w)}\n" for w in doc.get("warnings") or []],
           "| artifact | kind | batch | padding | max \\|Δlogit\\| | pieces agree | entries agree | max \\|ΔF1\\| gated | verdict |",
           "|---|---|---|---|---:|---:|---:|---:|---|"]
    for a in doc["artifacts"]:
        ag = a["agreement"]
        out.append(f"| `{a['name']}` | {a['kind']} | {'yes' if a['batchable'] else 'no'} | {a['padding']} | "
                   f"{a['logits']['max_abs_diff']:.3g} | {ag['pieces_pct']:.3f}% ({ag['pieces_differ']} of {ag['pieces_total']} differ) | "
                   f"{ag['entries_pct']:.2f}% ({ag['entries_differ']} of {ag['entries_total']} differ) | "
                   f"{a['max_abs_delta_pp_gated']:.2f} pp | **{a['verdict']}** |")
    out += ["", f"Rules: int8 — every gated tag (support ≥ {th['min_support']}) within ±{th['max_delta_pp']} pp F1, and piece "
            f"agreement ≥ {th['min_agreement_int8_pct']}%; fp32 — piece agreement ≥ {th['min_agreement_pct']}%.", "",
            "### Per-tag F1 (view all; Δ = artifact − reference, pp; 95% paired-bootstrap CI)", ""]
    head = "| tag | support | gated | ref F1 | " + " | ".join(f"`{a['name']}` Δ" for a in doc["artifacts"]) + " |"
    out += [head, "|---|---:|---|---:|" + "---:|" * len(doc["artifacts"])]
    for t in doc["tags"]:
        first = doc["artifacts"][0]["f1"][t]
        if not first["support"] and all(a["f1"][t]["artifact"] == 0 for a in doc["artifacts"]):
            continue
        cells = [f"{signed(a['f1'][t]['delta_pp'], 2)} [{signed(a['f1'][t]['ci95_pp'][0], 2)}, {signed(a['f1'][t]['ci95_pp'][1], 2)}]" for a in doc["artifacts"]]
        out.append(f"| {t} | {first['support']} | {'yes' if first['gated'] else ''} | {first['ref'] * 100:.2f} | " + " | ".join(cells) + " |")
    for a in doc["artifacts"]:
        if a["reasons"] or a["warnings"]:
            out += ["", f"**{a['name']}**: " + "; ".join(a["reasons"] + [f"warning: {w}" for w in a["warnings"]])]
    return "\n".join(out) + "\n"


def parity_to_dir(ref: CheckpointRef, onnx_paths: list[Path], gset: GoldenSet, opts: ParityOptions, out: Path,
                  force: bool = False, log=lambda s: None) -> dict:
    """`parity`, writing parity.md and parity.json into `out` (refused up front if `out` is not ours)."""
    from mailwoman_eval.fsutil import atomic_write_text, check_output_dir, output_dir

    check_output_dir(out, MARKER, force)
    doc = parity(ref, onnx_paths, gset, opts, log)
    with output_dir(out, MARKER, force) as d:
        atomic_write_text(d / "parity.md", markdown(doc))
        atomic_write_text(d / MARKER, json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    return doc
