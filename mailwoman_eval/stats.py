"""Paired bootstrap over entries, vectorized with resample weights.

Hand-written because the metrics are ratios of pooled counts (F1 = 2TP / (2TP + FP + FN)) over
many tags at once (`prf_from_counts`: upstream eval.py's formula): each resample is a vector of multinomial entry weights W (B × n), and every
statistic comes from W @ per-entry counts. scipy.stats.bootstrap resamples one statistic at a time.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from mailwoman_eval.errors import MwevalError

MAX_RESAMPLE_CELLS = 200_000_000  # resamples x entries: ~3.2 GB at its peak (int64 draws, then float64)


def max_resamples(n: int) -> int:
    """The most resamples of n entries `resample_weights` draws (B x n within MAX_RESAMPLE_CELLS)."""
    return MAX_RESAMPLE_CELLS // max(n, 1)


def check_resample_size(n: int, resamples: int) -> None:
    """Refuse a B x n beyond MAX_RESAMPLE_CELLS: `resamples = 30000000` in a 30-byte thresholds
    file asked for gigabytes. compare and gate also call it before evaluating a checkpoint."""
    if resamples > max_resamples(n):
        raise MwevalError(f"{resamples} resamples of {n} entries need about {resamples * n * 16 / 2**30:.0f} GiB; "
                          f"at most {max_resamples(n)} resamples for this golden set")


def resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """(B, n) counts: how often each entry is drawn in each resample (same draws for both runs)."""
    check_resample_size(n, resamples)
    rng = np.random.default_rng(seed)
    if n == 0:
        return np.zeros((resamples, 0), dtype=np.float64)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


# upstream eval.py's smoothing (upstream-formats.md §4): it decides the 6th decimal when a ratio
# is halfway there (tp=3, fp=125: precision 0.0234375 is reported 0.023437, exact division
# rounds it to 0.023438), so every precision/recall/F1 mweval reports uses the same formula.
EVAL_EPS = 1e-9


def prf_from_counts(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision tp/(tp+fp+1e-9), recall tp/(tp+fn+1e-9), F1 2pr/(p+r+1e-9), as upstream's eval.py
    computes them (0 where there is nothing to count: no division by zero to guard)."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    p = tp / (tp + fp + EVAL_EPS)
    r = tp / (tp + fn + EVAL_EPS)
    return p, r, 2 * p * r / (p + r + EVAL_EPS)


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 of pooled counts, by `prf_from_counts` (observed and resampled values alike: a Δ of
    exactly 0 between equal counts stays exactly 0)."""
    return prf_from_counts(tp, fp, fn)[2]


def exact_f1(tp: int, fp: int, fn: int) -> Fraction:
    """F1 as an exact fraction, 2tp / (2tp + fp + fn) (0 with nothing to score): for rules against a
    threshold. eval.py's 1e-9 guards (`prf_from_counts`, what the F1 columns show) put a perfect F1
    at 0.9999999995, which failed a floor of 100% (gate's min_f1, sweep's --min-peak 1)."""
    d = 2 * tp + fp + fn
    return Fraction(2 * tp, d) if d else Fraction(0)


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval with as many replicates left out below as above: floor(B·(1−level)/2)
    each side, so [the 51st, the 1950th] of 2000 sorted. np.quantile(…, "inverted_cdf") gave the
    same only by accident: (1 − 0.95) / 2 is 0.025000000000000022 in floating point, one ulp above
    the value where it takes the 50th instead (and then leaves 49 out below and 50 above)."""
    B = samples.shape[0]
    out = int(np.floor(B * (1 - level) / 2 + 1e-9))
    ordered = np.sort(samples, axis=0)
    return ordered[out], ordered[B - 1 - out]


def two_sided_p(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Centered paired-bootstrap p-value for H0: Δ = 0: P(|Δ* − Δ| ≥ |Δ|), with +1 smoothing."""
    B = samples.shape[0]
    extreme = (np.abs(samples - observed) >= np.abs(observed) - 1e-12).sum(0)
    return (1 + extreme) / (B + 1)


def one_sided_drop_p(samples: np.ndarray, max_drop: np.ndarray) -> np.ndarray:
    """p for H0: Δ ≥ −max_drop vs H1: Δ < −max_drop: the share of paired-bootstrap replicates that
    land in H0, P(Δ* ≥ −max_drop), +1 smoothed (the percentile test).

    It agrees with the percentile CI: p < α exactly when fewer than a share α of the replicates
    reach −max_drop, i.e. the one-sided upper bound lies below it. The reflected form used before,
    P(Δ* ≤ 2Δ + max_drop), agrees for smooth symmetric distributions but not for lumpy ones: on a
    tag with support 1 lost by the candidate, Δ* is 0 or −100 and nothing reaches 2Δ + max_drop =
    −199, so it called the loss significant (p = 1/(B+1)) while a third of the replicates show no
    drop at all."""
    B = samples.shape[0]
    hits = (samples >= -max_drop - 1e-12).sum(0)
    return (1 + hits) / (B + 1)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj
