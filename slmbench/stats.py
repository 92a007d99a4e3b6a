"""Summary statistics of repeated samples (spread is part of every number we print)."""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from slmbench.schema import Stats

CV_WARN_PCT = 5.0  # above this coefficient of variation a result is flagged as noisy
DRIFT_MIN_TOKENS = 8  # fewer generated tokens per repetition than this: no drift figure


# Two-sided 95% Student-t critical values for 1..30 degrees of freedom; beyond 30 the
# Cornish-Fisher expansion around the normal quantile is exact to ~1e-6.  A table instead of
# scipy keeps scipy's ~0.5 s import out of every worker process (checked against scipy in tests).
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
         2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
         2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
         2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student-t critical value for ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def summarize(samples: Sequence[float]) -> Stats | None:
    """Mean, median, stdev (n-1), CV and a Student-t 95% CI of the mean; None for no samples."""
    xs = [float(x) for x in samples]
    n = len(xs)
    if n == 0:
        return None
    mean = statistics.fmean(xs)
    median = statistics.median(xs)
    stdev = statistics.stdev(xs) if n > 1 else 0.0
    cv = 100.0 * stdev / mean if mean else float("nan")
    if n > 1:
        half = t_quantile_975(n - 1) * stdev / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        low = high = float("nan")
    return Stats(n=n, mean=mean, median=median, stdev=stdev, cv_pct=cv, ci95_low=low,
                 ci95_high=high, min=min(xs), max=max(xs))


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), like numpy's default."""
    xs = sorted(float(x) for x in samples)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def drift_pct(token_ms: Sequence[Any] | None) -> float | None:
    """Latency drift within a generation: the median latency of the last quarter of tokens
    vs the first quarter, in percent (positive = slowing down, e.g. thermal throttling).

    ``token_ms`` is one list per repetition (pooled by position: the first quarter of every
    repetition against the last quarter of every repetition) or one flat list read in order.
    None below DRIFT_MIN_TOKENS tokens per repetition.
    """
    if not token_ms:
        return None
    reps = token_ms if isinstance(token_ms[0], (list, tuple)) else [token_ms]
    reps = [[float(x) for x in r if x is not None] for r in reps]
    n = min((len(r) for r in reps), default=0)
    if n < DRIFT_MIN_TOKENS:
        return None
    q = n // 4
    first = [x for r in reps for x in r[:q]]
    last = [x for r in reps for x in r[n - q:n]]
    a, b = percentile(first, 50), percentile(last, 50)
    return round(100.0 * (b - a) / a, 3) if a > 0 else None


def noise_warning(label: str, stats: Stats | None) -> str | None:
    """A one-line warning when a result's CV is above CV_WARN_PCT."""
    if stats is None or stats.n < 2 or not (stats.cv_pct > CV_WARN_PCT):
        return None
    return (f"{label}: CV {stats.cv_pct:.1f}% > {CV_WARN_PCT:.0f}% - the machine was noisy; "
            "close other programs or add repetitions")


def bootstrap_ratio_ci(base: Sequence[float], cand: Sequence[float], n_boot: int = 2000,
                       seed: int = 0, stat: str = "median") -> tuple[float, float]:
    """95% percentile-bootstrap CI of stat(cand) / stat(base) - 1, resampling both sides."""
    import numpy as np

    rng = np.random.default_rng(seed)
    b = np.asarray(base, dtype=float)
    c = np.asarray(cand, dtype=float)
    f = np.median if stat == "median" else np.mean
    bi = rng.integers(0, len(b), size=(n_boot, len(b)))
    ci = rng.integers(0, len(c), size=(n_boot, len(c)))
    ratios = f(c[ci], axis=1) / f(b[bi], axis=1) - 1.0
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


def mann_whitney_p(base: Sequence[float], cand: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value (exact for small samples without ties)."""
    from scipy import stats as sstats

    if len(base) < 2 or len(cand) < 2:
        return float("nan")
    return float(sstats.mannwhitneyu(cand, base, alternative="two-sided").pvalue)


def bootstrap_pooled_ratio_ci(base_groups: Sequence[Sequence[float]],
                              cand_groups: Sequence[Sequence[float]], q: float = 90.0,
                              n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap CI of P_q(pooled cand) / P_q(pooled base) - 1.

    For per-token latencies: the tokens of one repetition share a thermal and cache state, so
    whole repetitions (groups) are resampled and their tokens pooled - resampling single tokens
    would pretend they are independent and give a CI that is far too narrow.
    """
    import numpy as np

    rng = np.random.default_rng(seed)

    def boot(groups: Sequence[Sequence[float]]):  # -> numpy array of n_boot percentiles
        gs = [np.asarray(g, dtype=float) for g in groups if len(g)]
        idx = rng.integers(0, len(gs), size=(n_boot, len(gs)))
        if len({len(g) for g in gs}) == 1:
            arr = np.stack(gs)
            # in chunks: n_boot x repetitions x tokens floats can be large for long decodes
            step = max(1, int(2e6 // arr.size))
            parts = []
            for i in range(0, n_boot, step):
                chunk = idx[i:i + step]
                parts.append(np.percentile(arr[chunk].reshape(len(chunk), -1), q, axis=1))
            return np.concatenate(parts)
        return np.array([np.percentile(np.concatenate([gs[i] for i in row]), q) for row in idx])

    b = boot(base_groups)
    c = boot(cand_groups)
    lo, hi = np.percentile(c / b - 1.0, [2.5, 97.5])
    return float(lo), float(hi)


def mann_whitney_min_p(n1: int, n2: int) -> float:
    """Smallest two-sided p-value an exact Mann-Whitney test can reach with n1 and n2 samples.

    With 3 + 3 repetitions it is 0.1, so no alpha below that can ever be met: compare says so
    instead of silently calling every change "too noisy".
    """
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def welch_log_p(base: Sequence[float], cand: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value on log values (a test of the ratio of geometric means).

    Rank tests assume both samples have the same shape under "no change".  When one run is far
    noisier than the other, 5 noisy samples all landing on one side of 5 tight ones happens 1 time
    in 16, yet Mann-Whitney calls it p = 0.008.  Welch's test allows unequal variances, so
    requiring it too keeps such a run from raising a false alarm.  NaN when it cannot be computed
    (fewer than 2 samples a side, or a value <= 0).
    """
    if len(base) < 2 or len(cand) < 2 or min(min(base), min(cand)) <= 0:
        return float("nan")
    lb = [math.log(x) for x in base]
    lc = [math.log(x) for x in cand]
    vb, vc = statistics.variance(lb), statistics.variance(lc)
    if vb == 0 and vc == 0:  # two constant samples: equal or certainly different
        return 1.0 if statistics.fmean(lb) == statistics.fmean(lc) else 0.0
    from scipy import stats as sstats

    return float(sstats.ttest_ind(lc, lb, equal_var=False).pvalue)


def mean_ci(samples: Sequence[float]) -> tuple[float, float, float, float]:
    """(mean, standard error, low, high): the Student-t 95% CI of the mean; NaN bounds for
    fewer than 2 samples."""
    xs = [float(x) for x in samples]
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    mean = statistics.fmean(xs)
    if n < 2:
        return mean, float("nan"), float("nan"), float("nan")
    se = statistics.stdev(xs) / math.sqrt(n)
    half = t_quantile_975(n - 1) * se
    return mean, se, mean - half, mean + half


def paired_test(base: Sequence[float], cand: Sequence[float]) -> dict[str, float]:
    """Paired comparison of two equally long series measured on the same units (quality
    windows scored by two models on the same tokens): differences d = cand - base, their
    mean, standard error and Student-t 95% CI, the paired t-test's two-sided p and the
    Wilcoxon signed-rank test's (NaN when it cannot be computed)."""
    if len(base) != len(cand):
        raise ValueError("paired series must be equally long")
    d = [float(c) - float(b) for b, c in zip(base, cand)]
    mean, se, low, high = mean_ci(d)
    n = len(d)
    p_t = p_w = float("nan")
    if n >= 2:
        from scipy import stats as sstats

        if se == 0:
            p_t = 1.0 if mean == 0 else 0.0
        else:
            p_t = float(2 * sstats.t.sf(abs(mean / se), n - 1))
        nonzero = [x for x in d if x != 0]
        if not nonzero:
            p_w = 1.0
        elif len(nonzero) >= 2:
            p_w = float(sstats.wilcoxon(nonzero).pvalue)
    return {"n": n, "mean": mean, "se": se, "low": low, "high": high, "p_t": p_t,
            "p_wilcoxon": p_w}
