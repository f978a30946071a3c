"""Per-tag FP/FN categories over the three views, from a run directory (`mweval diagnose`)."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from mailwoman_eval.buckets import DEFAULT_CATEGORIES, RULES, UPSTREAM_CATEGORIES, ErrorRecord, bucket_errors
from mailwoman_eval.console import FP_ONLY_LEGEND, signed
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import write_files
from mailwoman_eval.gcpause import gc_paused
from mailwoman_eval.metrics import VIEWS, only_false_positives, summarize_views, tag_measured, view_masks
from mailwoman_eval.run import Run

KINDS = ("FP", "FN")
KIND_TITLES = {"FP": "FALSE POSITIVES", "FN": "FALSE NEGATIVES"}


@dataclass
class Diagnosis:
    run: Run
    scheme: str
    adversarial_mode: str
    tags: list[str]
    errors: list[ErrorRecord]
    view_mask: dict[str, np.ndarray]
    metrics: dict[str, dict]  # view -> summarize() output
    buckets: dict[str, dict] = field(default_factory=dict)  # view -> tag -> kind -> counts
    headline: list[dict] = field(default_factory=list)

    @property
    def filtered(self) -> bool:
        """`--tags` chose some of the run's tags: the per-tag sections cover those, the run's
        headline numbers (macro/micro F1, exact match) stay whole-run."""
        return self.tags != self.run.tags

    @property
    def categories(self) -> tuple[str, ...]:
        return DEFAULT_CATEGORIES if self.scheme == "default" else UPSTREAM_CATEGORIES

    @cached_property  # read by the console, the JSON and the HTML of one diagnose
    def warnings(self) -> list[str]:
        """The run's warnings, and whether the upstream scheme counts errors other than the metrics do."""
        out = list(self.run.meta.get("warnings") or [])
        if self.scheme == "upstream":
            m = self.metrics["all"]["per_tag"]
            count = {k: sum(e.kind == k for e in self.errors) for k in KINDS}
            metric = {k: sum(int(m[t][k.lower()]) for t in self.tags if t in m) for k in KINDS}
            if count != metric:
                if self.run.profile.compare != "exact":
                    why = "which compares case-insensitively after trimming (upstream parity is for runs of profile upstream-eval)"
                else:  # upstream's two scripts disagree: eval.py compares values as they are
                    why = "which compares values unstripped, as eval.py does (a gold value of only spaces is a gold value there)"
                out.append(
                    f"--buckets upstream counts errors as diagnose_regression.py does (stripped values compared "
                    f"case-sensitively): {count['FN']} FN and {count['FP']} FP here, against {metric['FN']} and "
                    f"{metric['FP']} in the metrics of profile {self.run.profile.name}, {why}"
                )
        return out


def select_tags(run: Run, tags: str | None) -> list[str]:
    if not tags:
        return run.tags
    wanted = list(dict.fromkeys(t.strip() for t in tags.split(",") if t.strip()))  # a tag named twice is shown once
    if not wanted:
        raise MwevalError(f"--tags {tags!r} names no tag (tags: {', '.join(run.tags)})")
    unknown = [t for t in wanted if t not in run.tags]
    if unknown:
        raise MwevalError(f"--tags: {', '.join(unknown)} not scored in this run (tags: {', '.join(run.tags)})")
    return wanted


@gc_paused()
def diagnose(run: Run, scheme: str = "default", adversarial: str = "default", tags: str | None = None) -> Diagnosis:
    chosen = select_tags(run, tags)
    errors = [e for e in bucket_errors(run.predictions, run.tags, run.profile, scheme) if e.tag in chosen]
    adv = run.adversarial_mask(adversarial)
    masks = view_masks(adv)
    d = Diagnosis(run, scheme, adversarial, chosen, errors, masks, summarize_views(run.vectors, adv))
    for view in VIEWS:
        in_view = masks[view]
        per_tag: dict[str, dict] = {}
        for tag in chosen:
            per_tag[tag] = {}
            for kind in KINDS:
                errs = [e for e in errors if e.tag == tag and e.kind == kind and in_view[e.entry]]
                primary = Counter(e.primary for e in errs)
                every = Counter(c for e in errs for c in e.categories)
                secondary = Counter(c for e in errs for c in e.categories if c != e.primary)
                taken = Counter(e.other_tag for e in errs if e.other_tag)
                per_tag[tag][kind] = {
                    "total": len(errs),
                    "primary": _ordered(primary, errs),
                    "all_categories": dict(sorted(every.items(), key=lambda kv: (-kv[1], kv[0]))),
                    "secondary": dict(sorted(secondary.items(), key=lambda kv: (-kv[1], kv[0]))),
                    "num_confused_with": dict(sorted(taken.items(), key=lambda kv: (-kv[1], kv[0]))),
                }
        d.buckets[view] = per_tag
    d.headline = headline(d)
    return d


def _ordered(counter: Counter, errs: list[ErrorRecord]) -> dict[str, int]:
    """Categories by count, descending; ties keep first-occurrence order (upstream's stable sort)."""
    first = {}
    for e in errs:
        first.setdefault(e.primary, len(first))
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], first[kv[0]])))


def headline(d: Diagnosis) -> list[dict]:
    """One line per tag with errors, most errors (FN + FP) first, then most FN: the dominant category
    of each. By FN alone, a tag failing only by false positives (en-us street_suffix: 1544 FP, 0 FN)
    sat below every tag with a single FN."""
    out = []
    b = d.buckets["all"]

    def order(t: str) -> tuple:
        fn, fp = b[t]["FN"]["total"], b[t]["FP"]["total"]
        return (-(fn + fp), -fn, d.tags.index(t))

    for tag in sorted(d.tags, key=order):
        fn, fp = b[tag]["FN"], b[tag]["FP"]
        if not fn["total"] and not fp["total"]:
            continue
        item = {"tag": tag, "fn": fn["total"], "fp": fp["total"]}
        for kind, c in (("fn", fn), ("fp", fp)):
            if c["total"]:
                cat, n = next(iter(c["primary"].items()))
                item[f"{kind}_top"] = {"category": cat, "count": n, "share": round(n / c["total"], 4)}
        fnt = item.get("fn_top")
        item["text"] = (
            f"{tag} FN {fn['total']}: {fnt['share'] * 100:.0f}% {fnt['category']} ({fnt['count']})" if fnt else f"{tag} FN 0"
        ) + (f"; FP {fp['total']}: {item['fp_top']['share'] * 100:.0f}% {item['fp_top']['category']}" if fp["total"] else "")
        # errors the model cannot avoid (the gold value is unreachable under the profile): said here,
        # or they send the reader after a model bug that does not exist
        lost = {k: c["all_categories"].get("gold_unreachable", 0) for k, c in (("fn", fn), ("fp", fp))}
        if any(lost.values()):
            item["gold_unreachable"] = lost
            item["text"] += " — gold unreachable under the profile: " + ", ".join(f"{n} {k.upper()}" for k, n in lost.items() if n)
        out.append(item)
    return out


# ---------------------------------------------------------------------------------------------
# Console output


def upstream_console(d: Diagnosis, examples: int = 3, seed: int = 42, annotate=None) -> str:
    """diagnose_regression.py's stdout layout (upstream-formats.md §10.2), byte for byte.

    `annotate(tag, kind)` may return extra lines printed under each "FALSE … (n total)" header
    (the default console uses it; the upstream layout passes none)."""
    rng = random.Random(seed)  # same sequence as random.seed(seed) + random.sample
    preds = d.run.predictions
    lines: list[str] = []
    for tag in d.tags:
        lines.append("")
        lines.append(f"=== TAG: {tag} ===")
        for kind in KINDS:
            errs = [e for e in d.errors if e.tag == tag and e.kind == kind]
            lines.append("")
            lines.append(f"{KIND_TITLES[kind]} ({len(errs)} total)")
            if annotate is not None:
                lines.extend(annotate(tag, kind))
            if not errs:
                continue
            by_cat: dict[str, list[ErrorRecord]] = {}
            for e in errs:
                by_cat.setdefault(e.primary, []).append(e)
            for cat, items in sorted(by_cat.items(), key=lambda kv: -len(kv[1])):
                pct = len(items) / len(errs) * 100
                lines.append(f"  {cat:14s} {len(items):4d} ({pct:.1f}%)")
                for e in rng.sample(items, min(examples, len(items))):
                    lines.append(f"    - raw  : {preds[e.entry]['raw'][:90]}")
                    lines.append(f"      gold : {e.gold!r}")
                    lines.append(f"      pred : {e.pred!r}")
    return "\n".join(lines) + "\n"


def console(d: Diagnosis, examples: int = 3, seed: int = 42) -> str:
    """Default console: headline and per-view F1, then upstream's per-tag layout (primary categories)."""
    m = d.metrics
    out = [
        f"{d.run.label} on {d.run.meta['golden']['name']} — profile {d.run.profile.name}, buckets {d.scheme}, "
        f"adversarial = {'adversarial.jsonl + kryptonite/graceful notes' + (' + non-Latin rows' if d.adversarial_mode == 'non-latin' else '')}",
    ]
    if d.filtered:
        out.append(f"filtered to --tags {', '.join(d.tags)} ({len(d.tags)} of {len(d.run.tags)} tags); macro F1 is the whole run's")
    out += ["", "headline:"]  # the warnings are the CLI's, on stderr
    out += [f"  {h['text']}" for h in d.headline] or ["  no errors"]  # every tag with errors: a cut at N hid 3137 FPs
    out.append("")
    out.append(f"{'tag':20s} {'F1 all':>8s} {'excl adv':>9s} {'adv only':>9s} {'Δ(excl-all)':>12s} {'support':>8s}")

    def cells(values: list[float | str | None]) -> str:
        # "—" where there is nothing to score (as the HTML): 0/0 is stored as 0.0, which reads as a
        # failure; "FP-only" where the view has no gold value, only false positives (the HTML's "FP only")
        fa, fe, fo = ("—" if x is None else x if isinstance(x, str) else f"{x:.4f}" for x in values)
        delta = f"{signed(values[1] - values[0], 4)}" if all(isinstance(x, float) for x in values[:2]) else "—"
        return f"{fa:>8s} {fe:>9s} {fo:>9s} {delta:>12s}"

    def f1(t: dict) -> float | str | None:
        return "FP-only" if only_false_positives(t) else t["f1"] if tag_measured(t) else None

    fp_only = False
    for tag in d.tags:
        per = [m[v]["per_tag"][tag] for v in VIEWS]
        values = [f1(t) for t in per]
        fp_only |= "FP-only" in values
        out.append(f"{tag:20s} {cells(values)} {per[0]['support']:8d}")
    # with --tags the rows above are the chosen tags; the macro F1 stays the run's, over all its tags
    out.append(f"{'macro F1 (all tags)' if d.filtered else 'macro F1':20s} {cells([m[v]['macro_f1'] if m[v]['entries'] else None for v in VIEWS])}")
    if fp_only:
        out.append(FP_ONLY_LEGEND)
    def annotate(tag: str, kind: str) -> list[str]:
        b = d.buckets["all"][tag][kind]
        extra = []
        if b["secondary"]:
            extra.append("  (also, as a secondary category: " + ", ".join(f"{c} {n}" for c, n in b["secondary"].items()) + ")")
        if b["num_confused_with"]:
            extra.append("  (numeric value taken by/from: " + ", ".join(f"{t} {n}" for t, n in b["num_confused_with"].items()) + ")")
        return extra

    body = upstream_console(d, examples, seed, annotate if d.scheme == "default" else None)
    return "\n".join(out) + "\n" + body


def _delta(excluding: dict, everything: dict) -> float | None:
    if not (tag_measured(excluding) and tag_measured(everything)):
        return None
    return round(excluding["f1"] - everything["f1"], 6)


def to_json(d: Diagnosis) -> dict:
    return {
        "run": str(d.run.path),
        "checkpoint": d.run.label,
        "golden": {"name": d.run.meta["golden"]["name"], "sha256": d.run.golden_sha256},
        "profile": d.run.profile.name,
        "scheme": d.scheme,
        "warnings": d.warnings,
        "rules": RULES[d.scheme],
        "adversarial": d.adversarial_mode,
        # --tags: headline, buckets and deltas cover these tags; "metrics" stays whole-run (every tag)
        "tags_filter": d.tags if d.filtered else None,
        "view_entries": {v: int(m.sum()) for v, m in d.view_mask.items()},
        "headline": d.headline,
        "metrics": {v: d.metrics[v] for v in VIEWS},
        # null where either view has nothing to score for the tag ("—" in the console and the HTML)
        "delta_excluding_minus_all": {t: _delta(d.metrics["excluding_adversarial"]["per_tag"][t], d.metrics["all"]["per_tag"][t]) for t in d.tags},
        "buckets": d.buckets,
    }


# ---------------------------------------------------------------------------------------------
# Exports

ERROR_COLUMNS = ["id", "file", "line", "country", "adversarial", "non_latin", "tag", "kind", "primary", "categories", "other_tag", "gold", "pred", "raw"]


def error_rows(d: Diagnosis) -> list[dict]:
    preds = d.run.predictions
    rows = []
    for e in d.errors:
        p = preds[e.entry]
        rows.append(
            {
                "id": p["id"],
                "file": p["file"],
                "line": p["line"],
                "country": p.get("country") or "",
                "adversarial": bool(d.view_mask["adversarial_only"][e.entry]),
                "non_latin": bool(p["non_latin"]),
                "tag": e.tag,
                "kind": e.kind,
                "primary": e.primary,
                "categories": ";".join(e.categories),
                "other_tag": e.other_tag or "",
                "gold": e.gold,
                "pred": e.pred,
                "raw": p["raw"],
            }
        )
    return rows


def error_tables(d: Diagnosis, csv_path: Path, parquet: bool = True) -> dict[Path, bytes]:
    """The error table as CSV, and as Parquet beside it when pyarrow is installed: path -> bytes."""
    rows = error_rows(d)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")  # DictWriter's per-row dict lookups took twice as long
    w.writerow(ERROR_COLUMNS)
    w.writerows([r[c] for c in ERROR_COLUMNS] for r in rows)
    out = {csv_path: buf.getvalue().encode("utf-8")}
    if parquet:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            return out
        # pyarrow directly: the same columns and types pandas wrote (large strings, int64 line, bool
        # flags), without importing pandas (0.3-0.5 s of every diagnose)
        types = {"line": pa.int64(), "adversarial": pa.bool_(), "non_latin": pa.bool_()}
        schema = pa.schema([(c, types.get(c, pa.large_string())) for c in ERROR_COLUMNS])
        table = pa.Table.from_pydict({c: [r[c] for r in rows] for c in ERROR_COLUMNS}, schema=schema)
        sink = io.BytesIO()
        pq.write_table(table, sink)
        out[csv_path.with_suffix(".parquet")] = sink.getvalue()
    return out


def write_error_table(d: Diagnosis, csv_path: Path, parquet: bool = True) -> list[Path]:
    files = error_tables(d, csv_path, parquet)
    write_files(files)
    return list(files)
