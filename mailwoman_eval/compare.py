"""Two runs on the same golden set: per-tag deltas with paired-bootstrap CIs (`mweval compare`)."""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass

import numpy as np

from mailwoman_eval.buckets import bucket_errors
from mailwoman_eval.console import signed
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.metrics import FN, FP, NONE, TP, VIEWS, WRONG, exact_match_vector, view_masks
from mailwoman_eval.run import OOD_PREFIX, Run, loudest_first, row_identity
from mailwoman_eval.stats import f1_from_counts, percentile_ci, prf_from_counts, resample_weights, two_sided_p

P_VALUE_METHOD = (
    "paired bootstrap over entries (same resampled indices for both runs), two-sided, centered: "
    "p = (1 + #{|Δ* − Δ| ≥ |Δ|}) / (B + 1)"
)
CI_METHOD = "paired bootstrap percentile interval, 95%"
VIEW_WORDS = {"all": "all entries", "excluding_adversarial": "excluding adversarial", "adversarial_only": "adversarial only"}


@dataclass
class Paired:
    """Two runs aligned entry by entry on their common tags."""

    base: Run
    cand: Run
    bi: np.ndarray  # base entry indices
    ci: np.ndarray  # candidate entry indices, same length
    tags: list[str]
    mismatches: list[str]

    @property
    def n(self) -> int:
        return int(self.bi.size)

    def outcomes(self) -> tuple[np.ndarray, np.ndarray]:
        bt = [self.base.tags.index(t) for t in self.tags]
        ct = [self.cand.tags.index(t) for t in self.tags]
        return self.base.outcomes[np.ix_(self.bi, bt)], self.cand.outcomes[np.ix_(self.ci, ct)]

    def adversarial(self, mode: str) -> np.ndarray:
        return self.cand.adversarial_mask(mode)[self.ci]


def pair_runs(base: Run, cand: Run, allow_mismatch: bool = False) -> Paired:
    """Refuse different golden sets or profiles unless allowed; then align entries by id."""
    problems = []
    if base.golden_sha256 != cand.golden_sha256:
        problems.append(
            f"golden sets differ: {base.meta['golden']['name']} sha256 {base.golden_sha256[:12]} vs "
            f"{cand.meta['golden']['name']} sha256 {cand.golden_sha256[:12]}"
        )
    if base.profile.name != cand.profile.name:
        problems.append(f"profiles differ: {base.profile.name} vs {cand.profile.name}")
    if problems and not allow_mismatch:
        raise MwevalError("; ".join(problems) + " (use --allow-mismatch to compare anyway)")
    tags = [t for t in cand.tags if t in base.tags]
    if set(tags) != set(cand.tags) or set(tags) != set(base.tags):  # the same tags in another order compare
        only_b, only_c = [t for t in base.tags if t not in tags], [t for t in cand.tags if t not in tags]
        differ = (f"label sets differ ({len(tags)} tags in common; baseline only: {', '.join(only_b) or 'none'}; "
                  f"candidate only: {', '.join(only_c) or 'none'})")
        if not allow_mismatch:
            raise MwevalError("; ".join([*problems, differ]) + " (use --allow-mismatch to compare the common tags)")
        problems.append(f"{differ}: only the {len(tags)} tags both runs score are compared")
    if base.golden_sha256 != cand.golden_sha256:
        # Ids are file:line, so in another version of a golden file the same id can hold another row,
        # and one row added or removed moves every later one: rows are paired by what they are (file,
        # raw and gold; the k-th copy of a repeated row with the k-th), and only rows that changed are
        # left out. A scores baseline has no raw or gold of its own: its recorded row digests are used.
        bkeys, ckeys = row_keys(base), row_keys(cand)
        if any(k[1] is None for k in bkeys):
            raise MwevalError(
                "this scores baseline records no row digests (exported by an older mweval), so rows of another golden "
                "version cannot be told apart; export it again with mweval export-scores",
                where=str(base.path),
            )
        where = {k: b for b, k in enumerate(bkeys)}
        pairs = [(where[k], c) for c, k in enumerate(ckeys) if k in where]
        bi = np.array([b for b, _ in pairs], dtype=np.int64)
        ci = np.array([c for _, c in pairs], dtype=np.int64)
        only_b, only_c = len(bkeys) - len(pairs), len(ckeys) - len(pairs)
        if only_b or only_c:
            problems.append(f"{only_b} baseline and {only_c} candidate entries have no same row (file, raw and gold) in the "
                            f"other run and are left out")
        moved = sum(base.predictions[b]["id"] != cand.predictions[c]["id"] for b, c in pairs)
        if moved:
            problems.append(f"{moved} rows are paired across line numbers (the same file, raw and gold at another line)")
    elif base.ids == cand.ids:
        bi = ci = np.arange(len(base.ids))
    else:
        if not allow_mismatch:
            raise MwevalError("runs have different entries (use --allow-mismatch to compare the common ones)")
        where = {i: k for k, i in enumerate(base.ids)}
        pairs = [(where[i], k) for k, i in enumerate(cand.ids) if i in where]
        problems.append(f"entries differ; comparing the {len(pairs)} entries with the same id")
        bi = np.array([b for b, _ in pairs], dtype=np.int64)
        ci = np.array([c for _, c in pairs], dtype=np.int64)
    if bi.size == 0:  # every table would be 0 against 0, and a gate would pass having tested nothing
        raise MwevalError("the runs have no entries in common to compare (" + "; ".join(problems) + ")")
    return Paired(base, cand, bi, ci, tags, problems)


def row_keys(run: Run) -> list[tuple[str, str | None, int]]:
    """(file, row digest, which copy of that row in the file) per entry."""
    seen: Counter = Counter()
    keys = []
    for p in run.predictions:
        k = (p["file"], row_identity(p))
        keys.append((*k, seen[k]))
        seen[k] += 1
    return keys


def entry_counts(out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per entry and tag: tp, fp, fn contributions (0/1 floats)."""
    tp = (out == TP).astype(np.float64)
    fp = ((out == FP) | (out == WRONG)).astype(np.float64)
    fn = ((out == FN) | (out == WRONG)).astype(np.float64)
    return tp, fp, fn


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _stat_block(bw: np.ndarray, cw: np.ndarray, bobs: float, cobs: float, scale: float) -> dict:
    delta = (cw - bw) * scale
    d_obs = (cobs - bobs) * scale
    lo, hi = percentile_ci(delta[:, None])
    return {
        "base": round(float(bobs), 6),
        "cand": round(float(cobs), 6),
        "delta_pp": round(float(d_obs), 4),
        "ci95_pp": [round(float(lo[0]), 4), round(float(hi[0]), 4)],
        "p": round(float(two_sided_p(delta[:, None], np.array([d_obs]))[0]), 6),
    }


def view_statistics(bo: np.ndarray, co: np.ndarray, bconf, cconf, tags: list[str], resamples: int, seed: int) -> dict:
    """Per-tag P/R/F1 of both runs, Δ in percentage points, CIs and p-values, plus summary metrics."""
    n = bo.shape[0]
    W = resample_weights(n, resamples, seed)
    btp, bfp, bfn = entry_counts(bo)
    ctp, cfp, cfn = entry_counts(co)
    support = btp.sum(0) + bfn.sum(0)

    prf = prf_from_counts  # the formula run.json's numbers come from

    bobs = prf(btp.sum(0), bfp.sum(0), bfn.sum(0))
    cobs = prf(ctp.sum(0), cfp.sum(0), cfn.sum(0))
    bs = prf(W @ btp, W @ bfp, W @ bfn)
    cs = prf(W @ ctp, W @ cfp, W @ cfn)
    per_tag = {}
    for k, t in enumerate(tags):
        row = {"support": int(support[k])}
        for m, name in enumerate(("precision", "recall", "f1")):
            row[name] = _stat_block(bs[m][:, k], cs[m][:, k], bobs[m][k], cobs[m][k], 100.0)
        row["tp"] = [int(btp[:, k].sum()), int(ctp[:, k].sum())]
        row["fp"] = [int(bfp[:, k].sum()), int(cfp[:, k].sum())]
        row["fn"] = [int(bfn[:, k].sum()), int(cfn[:, k].sum())]
        per_tag[t] = row
    used = support > 0
    summary = {}
    if used.any():
        summary["macro_f1"] = _stat_block(bs[2][:, used].mean(1), cs[2][:, used].mean(1), bobs[2][used].mean(), cobs[2][used].mean(), 100.0)
    mb = f1_from_counts((W @ btp).sum(1), (W @ bfp).sum(1), (W @ bfn).sum(1))
    mc = f1_from_counts((W @ ctp).sum(1), (W @ cfp).sum(1), (W @ cfn).sum(1))
    summary["micro_f1"] = _stat_block(
        mb, mc, f1_from_counts(btp.sum(), bfp.sum(), bfn.sum()), f1_from_counts(ctp.sum(), cfp.sum(), cfn.sum()), 100.0
    )
    bem, cem = exact_match_vector(bo).astype(np.float64), exact_match_vector(co).astype(np.float64)
    summary["exact_match"] = _stat_block(W @ bem / max(n, 1), W @ cem / max(n, 1), bem.mean() if n else 0.0, cem.mean() if n else 0.0, 100.0)
    (bc, bp), (cc, cp) = bconf, cconf
    summary["mean_token_confidence"] = _stat_block(
        _ratio(W @ bc, W @ bp), _ratio(W @ cc, W @ cp), _ratio(bc.sum(), bp.sum()), _ratio(cc.sum(), cp.sum()), 100.0
    )
    return {"entries": n, "macro_f1_tags": [t for k, t in enumerate(tags) if used[k]], "per_tag": per_tag, "summary": summary}


def _correct(o: int) -> bool:
    return o in (NONE, TP)


def entry_changes(pr: Paired, bo: np.ndarray, co: np.ndarray, adv: np.ndarray, limit: int = 200) -> dict:
    """Per tag: entries newly broken (base right, cand wrong) and newly fixed, with the values, and
    their counts per view (`adv`: the compare's adversarial mask over the pairs). The first `limit`
    of each list in each of the two partial views are listed (in entry order), so a view's
    filter has rows to show even when its entries come after `limit` others."""
    out = {}
    for k, t in enumerate(pr.tags):
        broken, fixed = [], []
        nb = nf = 0
        adv_b = adv_f = 0
        for j in range(pr.n):
            b, c = int(bo[j, k]), int(co[j, k])
            if _correct(b) == _correct(c):
                continue
            bp, cp = pr.base.predictions[pr.bi[j]], pr.cand.predictions[pr.ci[j]]
            item = {
                "id": cp["id"],
                "base_id": bp["id"],  # another line across golden versions (rows are paired by what they hold)
                "raw": cp["raw"],
                "gold": cp["gold"].get(t, ""),
                "base": bp["pred"].get(t, {}).get("value", ""),
                "cand": cp["pred"].get(t, {}).get("value", ""),
                "adversarial": bool(adv[j]),  # as the views count it (--adversarial)
            }
            if _correct(b):
                nb += 1
                adv_b += bool(adv[j])
                if (adv_b if adv[j] else nb - adv_b) <= limit:
                    broken.append(item)
            else:
                nf += 1
                adv_f += bool(adv[j])
                if (adv_f if adv[j] else nf - adv_f) <= limit:
                    fixed.append(item)
        by_view = {"all": (nb, nf), "excluding_adversarial": (nb - adv_b, nf - adv_f), "adversarial_only": (adv_b, adv_f)}
        out[t] = {"newly_broken": nb, "newly_fixed": nf, "broken": broken, "fixed": fixed,
                  "by_view": {v: {"newly_broken": x, "newly_fixed": y} for v, (x, y) in by_view.items()}}
    return out


def _shift(bk: dict, ck: dict) -> dict:
    """Category counts of one tag and kind in both runs, and the moves between categories.
    `bk`, `ck`: {pair index: primary category} of that tag and kind's errors in each run."""
    bc, cc = Counter(bk.values()), Counter(ck.values())
    moves = Counter((bk.get(j, "(none)"), ck.get(j, "(none)")) for j in set(bk) | set(ck))
    cats = sorted(set(bc) | set(cc), key=lambda c: (-(bc[c] + cc[c]), c))
    return {
        "base_total": sum(bc.values()),
        "cand_total": sum(cc.values()),
        "categories": {c: {"base": bc[c], "cand": cc[c], "delta": cc[c] - bc[c]} for c in cats},
        "moves": [
            {"from": a, "to": b, "count": n}
            for (a, b), n in sorted(moves.items(), key=lambda kv: (-kv[1], kv[0]))
            if a != b
        ],
    }


def category_shifts_by_view(pr: Paired, scheme: str, masks: dict[str, np.ndarray]) -> dict:
    """{view: {tag: {kind: shift}}}: the errors of both runs are bucketed once, then each view
    counts those of its entries (`masks`: the views' masks over the pairs, as the statistics use)."""
    def keyed(run: Run, idx: np.ndarray) -> dict:
        # e.entry indexes the aligned list, so keys of both runs refer to the same pairs
        errs = bucket_errors([run.predictions[i] for i in idx], run.tags, run.profile, scheme)
        out: dict = {(t, kind): {} for t in pr.tags for kind in ("FP", "FN")}
        for e in errs:
            if e.tag in pr.tags:
                out[(e.tag, e.kind)][e.entry] = e.primary
        return out

    be, ce = keyed(pr.base, pr.bi), keyed(pr.cand, pr.ci)
    out: dict = {}
    for view, mask in masks.items():
        out[view] = {}
        for t in pr.tags:
            out[view][t] = {}
            for kind in ("FP", "FN"):
                bk = {j: c for j, c in be[(t, kind)].items() if mask[j]}
                ck = {j: c for j, c in ce[(t, kind)].items() if mask[j]}
                out[view][t][kind] = _shift(bk, ck)
    return out


def run_summary(run: Run) -> dict:
    m = run.meta
    return {
        "label": run.label,
        "path": str(run.path),
        "checkpoint_sha256": m["checkpoint"].get("sha256"),
        "golden": {"name": m["golden"]["name"], "sha256": m["golden"]["sha256"]},
        "profile": m["profile"]["name"],
        "transitions": m["decode"]["transitions"],
        "source": m.get("source", "run"),
        "zero_fed_inputs": m["checkpoint"].get("zero_fed_inputs") or [],
        "warnings": list(m.get("warnings") or []),
    }


def md_cell(text: str) -> str:
    """Text from a checkpoint or a golden set (a tag name, a warning, a path) as markdown text that
    stays text, in a table cell or not: `|` and backticks escaped, control characters and line
    breaks shown as escapes (one would end the row or the quote; ESC sequences would reach the
    terminal that prints compare.md), and `&`, `<`, `>` as entities (GitHub would take `<dex>` for
    an HTML tag and drop it, and render an `<img>`)."""
    text = "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)
    return html.escape(text, quote=False).replace("|", "\\|").replace("`", "\\`")


def md_code(text: str) -> str:
    """A name as inline code when it can be one (no backtick to break out of the span, nothing
    unprintable), else as escaped text."""
    if "`" in text or not all(ch.isprintable() for ch in text):
        return md_cell(text)
    return f"`{text}`"


def tag_empty(view: dict, tag: str) -> bool:
    """Nothing to show for the tag in the view: no entries, or no gold value and no prediction in
    either run (F1 0/0; "—", not 0.0)."""
    r = view["per_tag"].get(tag)
    return not view.get("entries") or r is None or (r["support"] == 0 and sum(r["tp"]) + sum(r["fp"]) == 0)


def fp_only(view: dict, tag: str) -> bool:
    """No gold value for the tag in the view, but predictions of it in either run: every one a false
    positive. F1 is 0 in both runs (recall 0/0), a number that measures nothing: shown as "FP only"
    with the counts, not as 0.0 with a Δ of 0 and a CI of [0, 0]."""
    r = view["per_tag"].get(tag)
    return bool(view.get("entries")) and r is not None and r["support"] == 0 and sum(r["fp"]) > 0


def f1_measured(view: dict, tag: str) -> bool:
    """The tag has gold values in the view: its F1 (and Δ, CI) measures something."""
    return not tag_empty(view, tag) and not fp_only(view, tag)


def new_fps_without_gold(c: dict) -> list[dict]:
    """Tags with no gold value in a view whose false positives grew: their F1 is 0 in both runs
    (precision 0, no recall), so the Δ of 0 hides them (subregion 0 -> 3137 FPs on the random
    v0.4.0-size checkpoint against tiny)."""
    out = []
    for v, view in c["views"].items():
        for t in c["tags"]:
            r = view["per_tag"].get(t)
            if view.get("entries") and r is not None and r["support"] == 0 and r["fp"][1] > r["fp"][0]:
                out.append({"tag": t, "view": v, "base": r["fp"][0], "cand": r["fp"][1]})
    return out


def warning_lines(summaries: dict[str, dict]) -> list[str]:
    """Markdown quote lines for each run's warnings (out-of-distribution first, loudly)."""
    lines = []
    for who, s in summaries.items():
        for w in loudest_first(s["warnings"]):
            loud = w.startswith(OOD_PREFIX)
            lines.append(f"> {'**' if loud else ''}{who} {md_code(s['label'])}: {md_cell(w)}{'**' if loud else ''}")
            lines.append(">")  # a paragraph each: GitHub ran consecutive quote lines into one
    return ["", *lines[:-1]] if lines else []


def label_sets(base: Run, cand: Run, tags: list[str]) -> dict:
    """Which tags the comparison scores (`common`: both runs score them) and which each run scores alone."""
    return {
        "same": set(base.tags) == set(cand.tags),
        "common": len(tags),
        "base_only": [t for t in base.tags if t not in tags],
        "cand_only": [t for t in cand.tags if t not in tags],
    }


def summary_scope(c: dict) -> str | None:
    """What the summary numbers are over when the label sets differ (None when they are the same;
    a compare.json of older mweval has no `label_sets`, and refused different sets)."""
    ls = c.get("label_sets")
    if not ls or ls["same"]:
        return None
    return (f"over the {ls['common']} tags both runs score ({len(ls['base_only'])} more in the baseline's label set, "
            f"{len(ls['cand_only'])} in the candidate's), so they differ from each run's own report")


def compare(
    base: Run,
    cand: Run,
    resamples: int = 2000,
    seed: int = 0,
    adversarial: str = "default",
    scheme: str = "default",
    allow_mismatch: bool = False,
) -> dict:
    if resamples < 1000:
        raise MwevalError("--resamples must be at least 1000")
    pr = pair_runs(base, cand, allow_mismatch)
    bo, co = pr.outcomes()
    bv, cv = base.vectors, cand.vectors
    bconf = (bv.conf_sum[pr.bi], bv.n_pieces[pr.bi].astype(np.float64))
    cconf = (cv.conf_sum[pr.ci], cv.n_pieces[pr.ci].astype(np.float64))
    masks = view_masks(pr.adversarial(adversarial))
    views = {}
    for view in VIEWS:
        idx = np.flatnonzero(masks[view])
        views[view] = view_statistics(
            bo[idx], co[idx], (bconf[0][idx], bconf[1][idx]), (cconf[0][idx], cconf[1][idx]), pr.tags, resamples, seed
        )
    shifts = category_shifts_by_view(pr, scheme, masks)
    return {
        "schema": "mweval.compare/1",
        "base": run_summary(base),
        "cand": run_summary(cand),
        "mismatch": pr.mismatches or None,
        "method": {"resamples": resamples, "seed": seed, "ci": CI_METHOD, "p_value": P_VALUE_METHOD, "adversarial": adversarial, "buckets": scheme},
        "tags": pr.tags,
        # the summary numbers (macro/micro F1, exact match) are over `tags`: with --allow-mismatch across
        # label sets, fewer than either run scores, so they differ from each run's own run.json
        "label_sets": label_sets(base, cand, pr.tags),
        "views": views,
        "category_shifts": shifts["all"],  # all entries, as before the views had their own
        "category_shifts_by_view": shifts,
        "changes": entry_changes(pr, bo, co, masks["adversarial_only"]),
    }


def significance(block: dict) -> str:
    """`sneg` when the whole 95% CI is below zero, `spos` when above, else `ns` (unadjusted)."""
    lo, hi = block["ci95_pp"]
    return "sneg" if hi < 0 else ("spos" if lo > 0 else "ns")


def regressed_tags(c: dict) -> list[str]:
    """Tags whose F1 95% CI lies wholly below zero in some view, largest drop first. Each tag × view
    interval is read on its own (unadjusted): with a few dozen of them, one may exclude zero by
    chance; `mweval gate` is the test with the Holm correction."""
    worst: dict[str, float] = {}
    for v in c["views"].values():
        for t, r in v["per_tag"].items():
            if r["support"] and significance(r["f1"]) == "sneg":
                worst[t] = min(worst.get(t, 0.0), r["f1"]["delta_pp"])
    return sorted(worst, key=lambda t: (worst[t], c["tags"].index(t)))


def regressed_view(c: dict, tag: str) -> str | None:
    """The first view, in the report's order, in which the tag's F1 CI lies below zero (as
    `regressed_tags` finds it): the view `what_changed` takes its numbers from."""
    return next(iter(views_where(c, tag, "sneg")), None)


def views_where(c: dict, tag: str, cls: str) -> list[str]:
    """The views, in the report's order, in which the tag's F1 CI lies below (`sneg`) or above (`spos`) zero."""
    out = []
    for v in VIEWS:
        view = c["views"].get(v, {})
        r = view.get("per_tag", {}).get(tag)
        if r and not tag_empty(view, tag) and r["support"] and significance(r["f1"]) == cls:
            out.append(v)
    return out


def interval_count(c: dict) -> int:
    """How many tag × view F1 intervals the lists of CIs below / above zero were read from."""
    return sum(1 for v in VIEWS for t in c["tags"] if f1_measured(c["views"][v], t))


def unadjusted_note(c: dict) -> str:
    """What "CI below zero" means here and where the corrected test is (compare.md and the HTML say the same)."""
    return (f"each of the {interval_count(c)} tag × view intervals is read on its own, without correction for multiple "
            "comparisons, so a few may exclude zero by chance; `mweval gate` tests the drops one-sided with Holm-adjusted "
            "p-values over the gated tags and may call the same drop a WARN")


def opposite_note(c: dict, tag: str, cls: str, minus: str = "−") -> str | None:
    """For a tag listed with its F1 CI below zero (`cls` "sneg") in some views that lies above zero
    in others, or the reverse: the other views by name, so the two lists do not read as a
    contradiction (the views hold different entries)."""
    other = "spos" if cls == "sneg" else "sneg"
    there = views_where(c, tag, other)
    if not there:
        return None
    word = {"sneg": "below", "spos": "above"}
    parts = [f"{VIEW_WORDS[v]} (" + f"{signed(c['views'][v]['per_tag'][tag]['f1']['delta_pp'], 1)}".replace("-", minus) + " pp)" for v in there]
    return f"also {word[other]} zero: {', '.join(parts)}; the views hold different entries, so both can be true"


def what_changed(c: dict, tag: str, top: int = 2) -> str:
    """Why a tag's F1 dropped, in one line: entries newly broken/fixed and the largest category shifts,
    in the view it regressed in, named (a compare.json of older mweval has them for all entries only)."""
    ch = c["changes"][tag]
    by_view = c.get("category_shifts_by_view")
    view = (regressed_view(c, tag) or "all") if by_view and "by_view" in ch else "all"
    counts = ch["by_view"][view] if view != "all" else ch
    shifts = by_view[view][tag] if by_view else c["category_shifts"][tag]
    parts = [f"{VIEW_WORDS[view]}: {counts['newly_broken']} newly broken, {counts['newly_fixed']} newly fixed"]
    moved = [(kind, cat, x) for kind, s in shifts.items() for cat, x in s["categories"].items() if x["delta"]]
    for kind, cat, x in sorted(moved, key=lambda k: (-abs(k[2]["delta"]), k[0], k[1]))[:top]:
        parts.append(f"{kind} {cat} {x['base']} → {x['cand']}")
    return "; ".join(parts)


def markdown(c: dict, view_order=VIEWS) -> str:
    """A compact markdown summary (CI job summaries render it)."""
    lines = [f"## mweval compare: candidate {md_code(c['cand']['label'])} vs baseline {md_code(c['base']['label'])}", ""]
    lines.append(f"Golden {md_code(c['cand']['golden']['name'])} · profile {md_code(c['cand']['profile'])} · "
                 f"{c['method']['resamples']} paired bootstrap resamples (seed {c['method']['seed']})")
    if c["mismatch"]:
        lines += ["", "> **MISMATCH (--allow-mismatch):** " + md_cell("; ".join(c["mismatch"]))]
    lines += warning_lines({"base": c["base"], "cand": c["cand"]})
    scope = summary_scope(c)
    if scope:
        lines += ["", f"> **Summary rows** (macro_f1, micro_f1, exact_match): {md_cell(scope)}."]
    regressed = regressed_tags(c)
    improved = [t for t in c["tags"] if views_where(c, t, "spos")]
    if regressed or improved:  # the what and the why first; the tables below hold every number
        lines += ["", f"Lists of CIs below / above zero: {unadjusted_note(c)}."]  # mweval's own words: no golden text
    if regressed:
        lines += ["", "### 95% CI of Δ F1 below zero (unadjusted, per view)", ""]
        for t in regressed:
            note = opposite_note(c, t, "sneg", "-")
            lines.append(f"- **{md_cell(t)}**: {md_cell(what_changed(c, t))}" + (f"; {md_cell(note)}" if note else ""))
    if improved:
        lines += ["", "### 95% CI of Δ F1 above zero (unadjusted, per view)", ""]
        for t in improved:
            f1s = [(v, c["views"][v]["per_tag"][t]["f1"]) for v in views_where(c, t, "spos")]
            text = ", ".join(f"{VIEW_WORDS[v]} {signed(f['delta_pp'], 2)} pp [{signed(f['ci95_pp'][0], 2)}, {signed(f['ci95_pp'][1], 2)}]" for v, f in f1s)
            note = opposite_note(c, t, "spos", "-")
            lines.append(f"- **{md_cell(t)}**: {text}" + (f"; {md_cell(note)}" if note else ""))
    grown = new_fps_without_gold(c)
    if grown:
        lines += ["", "### New false positives on tags with no gold value (F1 is 0 in both runs and cannot show them)", ""]
        for g in grown:
            lines.append(f"- **{md_cell(g['tag'])}** ({g['view'].replace('_', ' ')}): FP {g['base']} → {g['cand']}")
    for view in view_order:
        v = c["views"][view]
        lines += ["", f"### {view.replace('_', ' ')} ({v['entries']} entries)", ""]
        lines.append("| tag | support | base F1 | cand F1 | Δ F1 (pp) | 95% CI (pp) | p |")
        lines.append("|---|---:|---:|---:|---:|---|---:|")
        for t in c["tags"]:
            r = v["per_tag"][t]
            f = r["f1"]
            if tag_empty(v, t):  # F1 0/0 in both runs: nothing measured, as the HTML shows it
                lines.append(f"| {md_cell(t)} | {r['support']} | — | — | — | — | — |")
                continue
            if fp_only(v, t):  # no gold: F1 is 0 in both runs and measures nothing; the FP counts do
                lines.append(f"| {md_cell(t)} | 0 | FP only ({r['fp'][0]}) | FP only ({r['fp'][1]}) | — | — | — |")
                continue
            flag = " ⚠" if significance(f) == "sneg" else ""
            lines.append(
                f"| {md_cell(t)}{flag} | {r['support']} | {f['base'] * 100:.2f} | {f['cand'] * 100:.2f} | {signed(f['delta_pp'], 2)} | "
                f"[{signed(f['ci95_pp'][0], 2)}, {signed(f['ci95_pp'][1], 2)}] | {f['p']:.4f} |"
            )
        for name, s in v["summary"].items():
            lines.append(
                f"| *{name}* | | {s['base'] * 100:.2f} | {s['cand'] * 100:.2f} | {signed(s['delta_pp'], 2)} | "
                f"[{signed(s['ci95_pp'][0], 2)}, {signed(s['ci95_pp'][1], 2)}] | {s['p']:.4f} |"
            )
    lines += ["", "⚠ = the whole 95% CI is below zero (unadjusted). FP only = no gold value in the view: F1 is 0 in both runs "
              "and measures nothing; the counts are the false positives of each run.", "", f"p-values: {P_VALUE_METHOD}."]
    return "\n".join(lines) + "\n"
