"""CI gate on per-tag F1 deltas (`mweval gate`; design.md Decisions, "Gate").

Metric: per-tag F1 in percentage points in each gated view. Test: paired bootstrap over entries,
one-sided, H0: Δ ≥ −max_drop_pp; p-values Holm-adjusted over every gated (view, tag) test.
FAIL: adjusted p < alpha, or candidate F1 < min_f1 with support ≥ min_support.
WARN: support < min_support, or Δ < −max_drop_pp without significance. Otherwise PASS.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from mailwoman_eval.compare import entry_counts, md_cell, md_code, pair_runs, run_summary, warning_lines
from mailwoman_eval.console import signed, value_and_threshold
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import refuse_special_file
from mailwoman_eval.metrics import VIEWS, view_masks
from mailwoman_eval.run import OOD_PREFIX, Run, loudest_first
from mailwoman_eval.stats import (
    check_resample_size,
    exact_f1,
    f1_from_counts,
    holm,
    max_resamples,
    one_sided_drop_p,
    percentile_ci,
    resample_weights,
)

DEFAULTS = {"max_drop_pp": 1.0, "min_support": 30, "alpha": 0.05, "views": ["excluding_adversarial"], "resamples": 2000}
TAG_KEYS = {"max_drop_pp", "min_support", "alpha", "min_f1", "resamples", "views"}
DEFAULT_KEYS = set(DEFAULTS) | {"min_f1"}
MAX_RESAMPLES = 1_000_000  # and resamples x entries within stats.MAX_RESAMPLE_CELLS
BUILT_IN = "built-in defaults"


@dataclass
class Thresholds:
    defaults: dict = field(default_factory=lambda: dict(DEFAULTS))
    tags: dict[str, dict] = field(default_factory=dict)
    source: str = BUILT_IN

    @property
    def file(self) -> str | None:
        """The thresholds file read, if any (errors about the thresholds name it)."""
        return None if self.source == BUILT_IN else self.source

    def for_tag(self, tag: str) -> dict:
        return {**self.defaults, **self.tags.get(tag, {})}

    def views(self) -> list[str]:
        """Every view some tag is gated in (the defaults' views, plus per-tag ones), in VIEWS order."""
        wanted = set(self.defaults["views"]).union(*(o.get("views", ()) for o in self.tags.values()))
        return [v for v in VIEWS if v in wanted]

    def to_json(self) -> dict:
        return {"source": self.source, "defaults": self.defaults, "tags": self.tags}


def _check_value(key: str, value, where: str) -> None:
    numeric = {"max_drop_pp", "alpha", "min_f1"}
    if key in numeric and (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)):
        # TOML has nan and inf: a nan max_drop_pp failed every tag, a nan min_f1 switched the rule off
        raise MwevalError(f"{key} must be a finite number, not {value!r}", where=where)
    if key in ("min_support", "resamples") and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise MwevalError(f"{key} must be a non-negative integer, not {value!r}", where=where)
    if key == "alpha" and not 0 < value < 1:
        raise MwevalError("alpha must be between 0 and 1", where=where)
    if key == "min_f1" and not 0 <= value <= 100:
        raise MwevalError(f"min_f1 is an F1 in percent, 0 to 100, not {value!r}", where=where)
    if key == "min_f1" and 0 < value <= 1:  # 0.95 meant 95: a floor of 0.95% never fires
        raise MwevalError(f"min_f1 {value!r} looks like a fraction; it is in percent (e.g. {value * 100:g} for {value!r})", where=where)
    if key == "max_drop_pp" and value < 0:
        raise MwevalError("max_drop_pp must be ≥ 0", where=where)
    if key == "resamples" and not 1000 <= value <= MAX_RESAMPLES:
        raise MwevalError(f"resamples must be from 1000 to {MAX_RESAMPLES}, not {value}", where=where)
    if key == "views":
        if not isinstance(value, list) or not value or any(v not in VIEWS for v in value):
            raise MwevalError(f"views must be a non-empty list drawn from {', '.join(VIEWS)}", where=where)
        if len(set(value)) != len(value):  # a repeated view would be tested twice and count twice in Holm
            raise MwevalError(f"views lists a view more than once: {value}", where=where)


def load_thresholds(path: str | None) -> Thresholds:
    if path is None:
        return Thresholds()
    p = Path(path)
    refuse_special_file(p)  # a FIFO would be waited on forever
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MwevalError("thresholds file not found", where=str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise MwevalError(f"cannot read thresholds file ({e})", where=str(p)) from None
    except (ValueError, RecursionError) as e:  # TOMLDecodeError is a ValueError, as is an int over 4300 digits; tomllib recurses per level
        raise MwevalError(f"malformed TOML ({e})", where=str(p)) from None
    unknown = set(doc) - {"defaults", "tags"}
    if unknown:
        raise MwevalError(f"unknown section(s): {', '.join(sorted(unknown))} (allowed: defaults, tags)", where=str(p))
    t = Thresholds(source=str(p))
    d = doc.get("defaults", {})
    if not isinstance(d, dict):
        raise MwevalError("[defaults] must be a table", where=str(p))
    for k, v in d.items():
        if k not in DEFAULT_KEYS:
            raise MwevalError(f"unknown key {k!r} in [defaults] (allowed: {', '.join(sorted(DEFAULT_KEYS))})", where=str(p))
        _check_value(k, v, f"{p} [defaults]")
        t.defaults[k] = v
    tags = doc.get("tags", {})
    if not isinstance(tags, dict):
        raise MwevalError("[tags] must hold [tags.NAME] tables", where=str(p))
    for tag, over in tags.items():
        if not isinstance(over, dict):
            raise MwevalError(f"[tags.{tag}] must be a table", where=str(p))
        for k, v in over.items():
            if k not in TAG_KEYS:
                raise MwevalError(f"unknown key {k!r} in [tags.{tag}] (allowed: {', '.join(sorted(TAG_KEYS))})", where=str(p))
            _check_value(k, v, f"{p} [tags.{tag}]")
        t.tags[tag] = dict(over)
    return t


def gate(base: Run, cand: Run, thresholds: Thresholds, seed: int = 0, adversarial: str = "default", allow_mismatch: bool = False) -> dict:
    pr = pair_runs(base, cand, allow_mismatch)
    unknown = [t for t in thresholds.tags if t not in pr.tags]
    if unknown:
        raise MwevalError(f"thresholds name tags not scored in these runs: {', '.join(unknown)}", where=thresholds.file)
    bo, co = pr.outcomes()
    masks = view_masks(pr.adversarial(adversarial))
    tests = []  # (view, tag, row)
    ungated = []  # (view, tag, row): named in the thresholds and gated here, but no gold value in the view
    not_gated: dict[str, list[str]] = {}  # view -> tags gated by the defaults with no gold value in it
    for view in thresholds.views():
        idx = np.flatnonzero(masks[view])
        btp, bfp, bfn = entry_counts(bo[idx])
        ctp, cfp, cfn = entry_counts(co[idx])
        support = btp.sum(0) + bfn.sum(0)
        bf = f1_from_counts(btp.sum(0), bfp.sum(0), bfn.sum(0)) * 100
        cf = f1_from_counts(ctp.sum(0), cfp.sum(0), cfn.sum(0)) * 100
        cache: dict[int, np.ndarray] = {}
        for k, tag in enumerate(pr.tags):
            th = thresholds.for_tag(tag)
            if view not in th["views"]:
                continue  # this tag is gated in other views ([tags.X] views = [...])
            if support[k] == 0:
                if not idx.size:
                    continue  # a view with no entries at all is said once, as an untested view (below)
                if tag not in thresholds.tags:
                    # gated by the defaults, as every tag is: a label the golden set has no value of in
                    # this view is listed, not a WARN (a run against its own rerun would WARN)
                    not_gated.setdefault(view, []).append(tag)
                    continue
                # a tag the thresholds name, with no test possible (F1 is 0/0 on the baseline side): a
                # WARN (support < min_support), never a silent pass; outside Holm, which counts tests made
                fp = int(cfp[:, k].sum())
                ungated.append((view, tag, {
                    "base_f1": None, "cand_f1": None, "delta_pp": None, "ci95": None, "p": None, "p_holm": None, "support": 0,
                    "seed_sensitive": False,
                    "verdict": "WARN",
                    "reason": f"support 0 < min_support {th['min_support']}: no gold value in this view, so F1 is not defined and "
                              f"nothing is gated" + (f" (the candidate predicts it {fp} times)" if fp else ""),
                }))
                continue
            B = int(th["resamples"])
            if B not in cache:
                cache[B] = resample_weights(idx.size, B, seed)
            W = cache[B]
            delta = (
                f1_from_counts(W @ ctp[:, k], W @ cfp[:, k], W @ cfn[:, k]) - f1_from_counts(W @ btp[:, k], W @ bfp[:, k], W @ bfn[:, k])
            ) * 100
            d_obs = float(cf[k] - bf[k])
            lo, hi = percentile_ci(delta[:, None])
            p = float(one_sided_drop_p(delta[:, None], np.array([th["max_drop_pp"]]))[0])
            tests.append(
                (view, tag, {
                    "base_f1": round(float(bf[k]), 4),
                    "cand_f1": round(float(cf[k]), 4),
                    "delta_pp": round(d_obs, 4),
                    "ci95": [round(float(lo[0]), 4), round(float(hi[0]), 4)],
                    "p": round(p, 8),  # printed; 6 places showed 1/2001 as 0.0005 = alpha. Decisions use _exact
                    "support": int(support[k]),
                    "thresholds": th,
                    # unrounded, for the decisions: Holm on p rounded to 6 places moved 1/2001 to
                    # 0.0005, so m x that could equal an alpha the refusal below had let through
                    "_exact": {"p": p, "cand_f1": float(cf[k]), "delta_pp": d_obs,
                               "cand_counts": (int(ctp[:, k].sum()), int(cfp[:, k].sum()), int(cfn[:, k].sum()))},
                })
            )
    # the resamples the advice may name: within MAX_RESAMPLES and, for the largest gated view, the size cap
    largest = max((int(masks[view].sum()) for view in {v for v, _, _ in tests}), default=0)
    refuse_unreachable_alpha(tests, thresholds.file, min(MAX_RESAMPLES, max_resamples(largest)))
    adjusted = holm(np.array([r["_exact"]["p"] for _, _, r in tests]))
    results: dict[str, dict] = {v: {} for v in thresholds.views()}
    for (view, tag, row), p_adj in zip(tests, adjusted, strict=True):
        th, exact = row.pop("thresholds"), row.pop("_exact")
        row["p_holm"] = round(float(p_adj), 8)
        verdict, reason = judge(row, th, len(tests), {**exact, "p_holm": float(p_adj)})
        unsettled = seed_note(exact["p"], float(p_adj), th["alpha"], int(th["resamples"]))
        row["verdict"], row["reason"], row["seed_sensitive"] = verdict, reason + (f"; {unsettled}" if unsettled else ""), bool(unsettled)
        results[view][tag] = row
    for view, tag, row in ungated:
        results[view][tag] = row
    results = {view: {t: rows[t] for t in pr.tags if t in rows} for view, rows in results.items()}  # tag order, as before
    # A gated view in which nothing could be tested is not a pass: it is said, and it is a WARN.
    untested = {
        view: "no entries in this view" if not masks[view].any() else "no tag gated in this view has a gold value in it"
        for view in thresholds.views() if not any(r["delta_pp"] is not None for r in results[view].values())
    }
    verdicts = [r["verdict"] for v in results.values() for r in v.values()]
    overall = "FAIL" if "FAIL" in verdicts else ("WARN" if "WARN" in verdicts or untested else "PASS")
    return {
        "verdict": overall,
        "baseline": run_summary(base),
        "candidate": run_summary(cand),
        "profile": cand.profile.name,
        "golden": {"name": cand.meta["golden"]["name"], "sha256": cand.golden_sha256},
        "thresholds": thresholds.to_json(),
        "method": {
            "metric": "per-tag F1 in percentage points",
            "test": "paired bootstrap over entries, one-sided, H0: Δ >= -max_drop_pp; p = (1 + #{Δ* >= -max_drop_pp}) / (B + 1) (percentile test)",
            "multiple_testing": "Holm over all gated (view, tag) tests",
            "seed": seed,
            "adversarial": adversarial,
        },
        "mismatch": pr.mismatches or None,
        "results": results,
        "untested_views": untested,
        "not_gated": not_gated,
    }


def refuse_oversized_bootstrap(gset, thresholds: Thresholds, adversarial: str) -> None:
    """Before any checkpoint is evaluated, what `resample_weights` would refuse after the
    evaluations: each (view, resamples) a test would draw, for the defaults (if the view has any gold
    value) and for every tag the thresholds name (if it has a gold value in the view: a tag without
    one is not resampled)."""
    entries = gset.entries
    adv = np.array([e.adversarial or (adversarial == "non-latin" and e.non_latin) for e in entries], dtype=bool)
    masks = view_masks(adv)

    def has_gold(view: str, tag: str | None = None) -> bool:
        return any(e.components.get(tag) if tag else any(e.components.values()) for e, m in zip(entries, masks[view], strict=True) if m)

    draws = {(v, int(thresholds.defaults["resamples"])) for v in thresholds.defaults["views"] if has_gold(v)}
    for tag in thresholds.tags:
        th = thresholds.for_tag(tag)
        draws |= {(v, int(th["resamples"])) for v in th["views"] if has_gold(v, tag)}
    for view, resamples in sorted(draws, key=lambda d: (VIEWS.index(d[0]), -d[1])):
        check_resample_size(int(masks[view].sum()), resamples)


def refuse_unreachable_alpha(tests: list[tuple[str, str, dict]], where: str | None, allowed: int = MAX_RESAMPLES) -> None:
    """A bootstrap p is at least 1/(B+1), and Holm multiplies the smallest of m p-values by m: no
    adjusted p falls below max(m/(B_max+1), 1/(B+1)). A tag whose alpha is not above that can never
    FAIL on a drop, however large, and would only ever WARN; refused, saying what to raise (never
    past `allowed`, the most resamples these views may take)."""
    m = len(tests)
    if not m:
        return
    b_max = max(int(r["thresholds"]["resamples"]) for _, _, r in tests)

    def floor_of(th: dict) -> float:
        return max(m / (b_max + 1), 1 / (int(th["resamples"]) + 1))

    stuck = [(view, tag, r["thresholds"]) for view, tag, r in tests if r["thresholds"]["alpha"] <= floor_of(r["thresholds"])]
    if stuck:
        view, tag, th = min(stuck, key=lambda x: x[2]["alpha"])  # the strictest alpha sets the resamples needed
        need = resamples_to_reach(th["alpha"], m)
        more = {1: "", 2: " and 1 other test"}.get(len(stuck), f" and {len(stuck) - 1} other tests")
        raise MwevalError(
            f"alpha {th['alpha']} cannot be reached for {tag} ({view}){more}: with {m} gated tests and {th['resamples']} "
            f"resamples the smallest Holm-adjusted p is {floor_of(th):.2g}; "
            + (f"set resamples (--resamples, or in the thresholds) to at least {need}, or gate fewer views, or raise alpha"
               if need <= allowed else f"gate fewer views, or raise alpha (it would take {need} resamples, over the {allowed} allowed"
               + ("" if allowed == MAX_RESAMPLES else " for this golden set") + ")"),
            where=where,
        )


def resamples_to_reach(alpha: float, m: int) -> int:
    """The fewest resamples B with m/(B+1) < alpha (so 1/(B+1) < alpha too), exactly as the refusal tests it."""
    b = max(1, math.floor(m / alpha) - 1)  # m/alpha in floats may sit a hair off an integer: step to the exact edge
    while m / (b + 1) >= alpha:
        b += 1
    while b > 1 and m / b < alpha:
        b -= 1
    return b


def seed_note(p: float, p_holm: float, alpha: float, resamples: int) -> str | None:
    """A bootstrap p is an estimate: its Monte-Carlo standard error is sqrt(p(1-p)/B), carried over
    to the Holm-adjusted p in proportion. When alpha lies within two of them, the verdict is the
    seed's as much as the data's (the demo's street drop: Holm p 0.0585 at seed 0, FAIL at seed 7);
    said, with roughly the resamples that would put alpha outside that band."""
    if not 0 < p < 1 or p_holm >= 1:
        return None
    rel = math.sqrt((1 - p) / (p * resamples))
    gap = abs(p_holm - alpha)
    if gap >= 2 * p_holm * rel:
        return None
    need = math.ceil(4 * p_holm**2 * (1 - p) / (p * gap**2)) if gap > 0 else None
    more = f"about {need} resamples (--resamples) would settle it" if need and need < 10**7 else "far more resamples would be needed to settle it"
    return (f"Holm p {fmt_p(p_holm, alpha)} is within Monte-Carlo error of alpha {alpha} at {resamples} resamples "
            f"(±{2 * p_holm * rel:.2g}): another --seed can give another verdict; {more}")


def fmt_p(p: float, alpha: float | None = None, digits: int = 4) -> str:
    """A p-value with 4 decimals, as the table prints it (1 is "1.0000", not "1"); more when 4 would
    round it onto alpha or across it ("0.0005 < alpha 0.0005" for 0.00049975)."""
    d = digits
    text = f"{p:.{d}f}"
    while alpha is not None and d < 10 and p != alpha and (float(text) == alpha or (float(text) < alpha) != (p < alpha)):
        d += 1
        text = f"{p:.{d}f}"
    return text


def below_min_f1(x: dict, min_f1: float) -> bool:
    """Is the candidate's F1 below the floor? From its counts when given, as an exact fraction
    (`stats.exact_f1`, in percent) against the floor as typed: eval.py's 1e-9 guards put a perfect
    F1 at 99.99999995, which failed `min_f1 = 100` ("candidate F1 100.00 < min_f1 100.0")."""
    counts = x.get("cand_counts")
    if counts is None:
        return x["cand_f1"] < min_f1
    return 100 * exact_f1(*counts) < Fraction(repr(min_f1))


def judge(row: dict, th: dict, n_tests: int = 1, exact: dict | None = None) -> tuple[str, str]:
    """The verdict of one (view, tag) test. `row` holds the rounded figures the reason prints;
    `exact`, if given, the unrounded ones the decisions use (p_holm, cand_f1, delta_pp, and the
    candidate's tp/fp/fn for the min_f1 floor)."""
    x = {**row, **(exact or {})}
    drop = -row["delta_pp"]
    m = th["max_drop_pp"]
    if x["p_holm"] < th["alpha"]:
        return "FAIL", f"F1 dropped {drop:.2f} pp (> {m} pp allowed), significant: Holm p {fmt_p(x['p_holm'], th['alpha'])} < alpha {th['alpha']}"
    if "min_f1" in th and row["support"] >= th["min_support"] and below_min_f1(x, th["min_f1"]):
        shown = value_and_threshold(x["cand_f1"], th["min_f1"], digits=(2, 4, 6, 8))[0]  # never "90.00 < min_f1 90"
        return "FAIL", f"candidate F1 {shown} < min_f1 {th['min_f1']}"
    if row["support"] < th["min_support"]:
        return "WARN", f"support {row['support']} < min_support {th['min_support']}: too few entries to gate"
    if x["delta_pp"] < -m:
        # not "within noise": the unadjusted CI can lie wholly beyond the allowance (compare then
        # calls it a real regression) while Holm over all gated tests does not reject
        held = "" if row["ci95"][1] >= -m else f"; its 95% CI {signed(row['ci95'][0], 2)}..{signed(row['ci95'][1], 2)} is beyond -{m} pp before the adjustment"
        return "WARN", (f"F1 dropped {drop:.2f} pp (> {m} pp) but not significantly after Holm over {n_tests} tests: "
                        f"p {fmt_p(x['p'], th['alpha'])}, Holm p {fmt_p(x['p_holm'], th['alpha'])} ≥ alpha {th['alpha']}{held}")
    return "PASS", f"Δ {signed(row['delta_pp'], 2)} pp (95% CI {signed(row['ci95'][0], 2)}..{signed(row['ci95'][1], 2)})"


def alpha_of(v: dict, tag: str) -> float | None:
    """The alpha a tag was judged at, from verdict.json's thresholds (per-tag override, else the default)."""
    th = v.get("thresholds") or {}
    return {**(th.get("defaults") or {}), **((th.get("tags") or {}).get(tag) or {})}.get("alpha")


def markdown(v: dict, limit_bytes: int = 1 << 20) -> str:
    icon = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌"}
    lines = [
        f"## {icon[v['verdict']]} mweval gate: {v['verdict']}",
        "",
        f"Candidate {md_code(v['candidate']['label'])} vs baseline {md_code(v['baseline']['label'])} · golden {md_code(v['golden']['name'])} · "
        f"profile {md_code(v['profile'])}",
    ]
    if v["mismatch"]:
        lines += ["", "> **MISMATCH (--allow-mismatch):** " + md_cell("; ".join(v["mismatch"]))]
    lines += warning_lines({"baseline": v["baseline"], "candidate": v["candidate"]})
    for view, why in v["untested_views"].items():
        lines += ["", f"> ⚠️ **nothing gated in view {view}**: {why}"]
    for view, tags in (v.get("not_gated") or {}).items():
        lines += ["", f"> not gated in view {view}, no gold value there: {', '.join(md_cell(t) for t in tags)}"]
    for view, rows in v["results"].items():
        lines += ["", f"### {view.replace('_', ' ')}", "", "| verdict | tag | support | base F1 | cand F1 | Δ pp | 95% CI | p (Holm) | reason |", "|---|---|---:|---:|---:|---:|---|---:|---|"]
        order = sorted(rows, key=lambda t: ({"FAIL": 0, "WARN": 1, "PASS": 2}[rows[t]["verdict"]], rows[t]["delta_pp"] is None,
                                            rows[t]["delta_pp"] or 0.0))
        for t in order:
            r = rows[t]
            if r["delta_pp"] is None:  # no gold value in the view: nothing was tested
                cells = "— | — | — | — | —"
            else:
                cells = (f"{r['base_f1']:.2f} | {r['cand_f1']:.2f} | {signed(r['delta_pp'], 2)} | [{signed(r['ci95'][0], 2)}, {signed(r['ci95'][1], 2)}] | "
                         f"{fmt_p(r['p_holm'], alpha_of(v, t))}")
            lines.append(f"| {icon[r['verdict']]} {r['verdict']} | {md_cell(t)} | {r['support']} | {cells} | {r['reason']} |")  # mweval's own words and numbers: escaped, "> 0.5 pp" read "&gt; 0.5 pp" in the console
    lines += ["", f"Test: {v['method']['test']}; {v['method']['multiple_testing']}."]
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > limit_bytes:  # GitHub job summaries are capped at 1 MiB
        text = text.encode()[: limit_bytes - 100].decode(errors="ignore") + "\n\n(truncated)\n"
    return text


def console_text(v: dict) -> str:
    """The verdict for a terminal or a CI log: a table row per gated tag, and below it each row that
    did not pass with its reason on its own line (the Markdown's reason column made rows of ~400
    characters). summary.md keeps the Markdown, for job summaries."""
    from mailwoman_eval.console import table

    lines = [f"gate: candidate {v['candidate']['label']} vs baseline {v['baseline']['label']} on {v['golden']['name']}, "
             f"profile {v['profile']}"]
    for view, why in v["untested_views"].items():
        lines.append(f"nothing gated in view {view}: {why}")
    for view, tags in (v.get("not_gated") or {}).items():
        lines.append(f"not gated in view {view} (no gold value there): {', '.join(tags)}")
    for view, rows in v["results"].items():
        order = sorted(rows, key=lambda t: ({"FAIL": 0, "WARN": 1, "PASS": 2}[rows[t]["verdict"]], rows[t]["delta_pp"] is None,
                                            rows[t]["delta_pp"] or 0.0))
        cells = []
        for t in order:
            r = rows[t]
            if r["delta_pp"] is None:
                cells.append([r["verdict"], t, r["support"], "—", "—", "—", "—", "—"])
            else:
                cells.append([r["verdict"], t, r["support"], f"{r['base_f1']:.2f}", f"{r['cand_f1']:.2f}", signed(r["delta_pp"], 2),
                              f"[{signed(r['ci95'][0], 2)}, {signed(r['ci95'][1], 2)}]", fmt_p(r["p_holm"], alpha_of(v, t))])
        lines += ["", view, table(["verdict", "tag", "n", "base F1", "cand F1", "Δ pp", "95% CI", "Holm p"], cells, align="llrrrrrr")]
        lines += [f"  {t} ({rows[t]['verdict']}): {rows[t]['reason']}" for t in order if rows[t]["verdict"] != "PASS"]
    lines += ["", f"test: {v['method']['test']}; {v['method']['multiple_testing']}"]
    return "\n".join(lines) + "\n"


# Characters XML 1.0 does not allow, even escaped; ElementTree writes them as they are, and the
# file then does not parse (a tag name comes from the checkpoint's config.json).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: ascii(m.group())[1:-1], text)


def junit_xml(v: dict, strict: bool = False) -> str:
    cases = [(view, tag, r) for view, rows in v["results"].items() for tag, r in rows.items()]
    failing = sum(1 for _, _, r in cases if r["verdict"] == "FAIL" or (strict and r["verdict"] == "WARN"))
    untested = v["untested_views"]
    failing += len(untested) if strict else 0
    tests = len(cases) + len(untested)
    skipped = 0 if strict else len(untested)
    suite = ET.Element("testsuite", name="mweval-gate", tests=str(tests), failures=str(failing), errors="0", skipped=str(skipped))
    # what summary.md and verdict.json say about the comparison itself reaches junit.xml too
    notes = [f"MISMATCH (--allow-mismatch): {'; '.join(v['mismatch'])}"] if v["mismatch"] else []
    notes += [f"{who} {v[who]['label']}: {w}" for who in ("baseline", "candidate") for w in loudest_first(v[who]["warnings"])]
    if notes:
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="mismatch", value=xml_text("; ".join(v["mismatch"] or [])) or "none")
        ood = any(w.startswith(OOD_PREFIX) for who in ("baseline", "candidate") for w in v[who]["warnings"])
        ET.SubElement(props, "property", name="out_of_distribution", value="yes" if ood else "no")
    for view, why in untested.items():  # a view with nothing to test: skipped, or failed under --strict
        tc = ET.SubElement(suite, "testcase", classname=f"mweval.gate.{view}", name="(nothing gated)")
        ET.SubElement(tc, "failure" if strict else "skipped", message=why, **({"type": "WARN"} if strict else {}))
    for view, tag, r in cases:
        tc = ET.SubElement(suite, "testcase", classname=f"mweval.gate.{view}", name=xml_text(tag))
        if r["verdict"] == "FAIL" or (strict and r["verdict"] == "WARN"):
            f = ET.SubElement(tc, "failure", message=xml_text(r["reason"]), type=r["verdict"])
            if r["delta_pp"] is not None:
                f.text = f"base F1 {r['base_f1']:.2f}, cand F1 {r['cand_f1']:.2f}, delta {signed(r['delta_pp'], 2)} pp, CI {r['ci95']}, p_holm {r['p_holm']}"
        out = ET.SubElement(tc, "system-out")
        out.text = xml_text(f"{r['verdict']}: {r['reason']}")
    if notes:
        ET.SubElement(suite, "system-err").text = xml_text("\n".join(notes))
    root = ET.Element("testsuites", name="mweval", tests=str(tests), failures=str(failing))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
