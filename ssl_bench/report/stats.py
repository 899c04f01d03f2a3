"""Uncertainty of a result and significance of a difference, as pure functions of numbers and arrays.

- Over seeds (2 or more): Student t interval of the mean; paired t-test of two methods over the seeds both ran.
- Over the test images (one seed): nonparametric bootstrap. Resample b draws n image indices with replacement
  (numpy `default_rng(seed).integers(0, n, (chunk, n))`, `BOOTSTRAP_CHUNK` resamples per call, so a resample
  depends only on (seed, resamples, n) and two methods scored on the same n test images see the SAME resamples:
  that is what makes the bootstrap paired). The metric is recomputed on each resample from the saved per-image
  evidence (ssl_bench.metrics.classification_metrics) and the interval is the percentile interval of the
  resampled values. The paired p-value is the two-sided shift test: p = (1 + #{|d*_b - d| >= |d|}) / (B + 1).

A resample enters as a row of counts `w` (how often each image was drawn); every statistic here is a function
of those counts, which gives the same numbers as recomputing the metric on the resampled images (map11 included:
copies of an image are adjacent in its ranking, ties between images kept in index order as `metrics.map11`
does on index-sorted resamples; tests/test_stats.py checks this against the metrics themselves).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import numpy as np
from scipy import stats as sps

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
BOOTSTRAP_CHUNK = 50  # resamples drawn per call: part of the definition (numpy's draws depend on the call shape)

Statistic = Callable[[np.ndarray], np.ndarray]  # counts (k x n) -> k metric values in %


@dataclass(frozen=True)
class Paired:
    """a - b with its interval and two-sided p-value; `n` seeds (t-test) or test images (bootstrap)."""

    diff: float
    lo: float
    hi: float
    p: float
    n: int
    test: str  # "t" (paired t-test over seeds) | "bootstrap" (paired bootstrap over test images)


def t_interval(values: np.ndarray | list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): mean +- t_{(1+level)/2, n-1} * s / sqrt(n), s the sample std (ddof=1); n >= 2."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ValueError("t_interval needs at least 2 values")
    mean = float(x.mean())
    half = float(sps.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def paired_t_test(a: np.ndarray | list[float], b: np.ndarray | list[float], level: float = 0.95) -> Paired:
    """Two-sided paired t-test of mean(a - b) = 0 (as scipy.stats.ttest_rel) and the t interval of the mean
    difference. Identical differences: p = 1 when they are all 0, else 0 (scipy gives NaN)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size < 2:
        raise ValueError("paired_t_test needs at least 2 pairs")
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return Paired(mean, mean, mean, 1.0 if mean == 0.0 else 0.0, int(d.size), "t")
    t = mean / (sd / math.sqrt(d.size))
    p = float(2 * sps.t.sf(abs(t), d.size - 1))
    _, lo, hi = t_interval(d, level)
    return Paired(mean, lo, hi, min(p, 1.0), int(d.size), "t")


def bootstrap_counts(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Iterator[np.ndarray]:
    """Resamples of n items as counts, chunk by chunk: rows of a (k x n) array summing to n."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        k = min(BOOTSTRAP_CHUNK, resamples - start)
        idx = rng.integers(0, n, (k, n))
        yield np.bincount((idx + n * np.arange(k)[:, None]).ravel(), minlength=k * n).reshape(k, n)


def bootstrap_distribution(stat: Statistic, n: int, resamples: int = BOOTSTRAP_RESAMPLES,
                           seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """The statistic on each of the `resamples` resamples (in draw order)."""
    return np.concatenate([stat(w) for w in bootstrap_counts(n, resamples, seed)])


def percentile_interval(distribution: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The (1-level)/2 and (1+level)/2 percentiles (numpy's linear interpolation), as scipy's 'percentile'."""
    lo, hi = np.percentile(distribution, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def shift_p_value(distribution: np.ndarray, observed: float) -> float:
    """Two-sided bootstrap p-value of `observed` = 0: the resampled differences, centred on the observed one,
    that are at least as far from 0 as it is; (1 + count) / (B + 1), so never 0."""
    far = np.abs(distribution - observed) >= abs(observed) - 1e-12  # slack: d = 0 must give p = 1
    return float((1 + far.sum()) / (distribution.size + 1))


def paired_bootstrap(dist_a: np.ndarray, dist_b: np.ndarray, value_a: float, value_b: float, n: int,
                     level: float = 0.95) -> Paired:
    """a - b from two bootstrap distributions drawn with the same resamples (same seed, same n test images)."""
    d = dist_a - dist_b
    lo, hi = percentile_interval(d, level)
    diff = value_a - value_b
    return Paired(diff, lo, hi, shift_p_value(d, diff), n, "bootstrap")


# --- metrics as functions of resample counts ---------------------------------------------------------------------

def metric_statistic(metric: str, arrays: Mapping[str, np.ndarray]) -> Statistic:
    """The metric (as ssl_bench.metrics computes it, in %) of the evidence `arrays` weighted by counts."""
    if metric in ("top1", "top5"):
        hits = np.asarray(arrays[metric], dtype=float)
        return lambda w: 100.0 * (w @ hits) / w.sum(axis=1)
    if metric == "mean_per_class":
        return _mean_per_class(np.asarray(arrays["labels"], dtype=np.int64), np.asarray(arrays["pred"]))
    if metric == "map11":
        return _map11(np.asarray(arrays["scores"]), np.asarray(arrays["labels"]))
    raise KeyError(f"no per-image statistic for metric '{metric}'")


def metric_value(metric: str, arrays: Mapping[str, np.ndarray]) -> float:
    """The metric on the whole test set (every count 1): equals the recorded value."""
    n = len(arrays["labels"])
    return float(metric_statistic(metric, arrays)(np.ones((1, n), dtype=np.int64))[0])


def _mean_per_class(labels: np.ndarray, pred: np.ndarray) -> Statistic:
    """Mean over the classes present in the resample of per-class recall (metrics.mean_per_class_accuracy)."""
    size = int(labels.max()) + 1
    hit = (pred == labels).astype(float)

    def stat(w: np.ndarray) -> np.ndarray:
        k = w.shape[0]
        flat = (labels[None, :] + size * np.arange(k)[:, None]).ravel()
        total = np.bincount(flat, weights=w.ravel(), minlength=k * size).reshape(k, size)
        correct = np.bincount(flat, weights=(w * hit).ravel(), minlength=k * size).reshape(k, size)
        present = total > 0
        recall = np.where(present, correct / np.where(present, total, 1), 0.0)
        return 100.0 * recall.sum(axis=1) / present.sum(axis=1)

    return stat


def _map11(scores: np.ndarray, targets: np.ndarray) -> Statistic:
    """VOC 11-point mAP (metrics.map11) of count-weighted images. Per class, in the full ranking (descending score,
    ties in index order), an image drawn w times is a block of w equal entries: a positive block's precision rises
    to its end, a negative block's falls from its start, a difficult (-1) block repeats the precision before it.
    So the envelope at a recall level is the running max (from the end) of each block's best precision, taken at
    the first positive block whose recall reaches the level."""
    import torch  # the recall levels exactly as metrics.map11 builds them

    levels = torch.linspace(0, 1, 11, dtype=torch.float64).numpy() - 1e-12
    orders = [np.argsort(-scores[:, c].astype(np.float64), kind="stable") for c in range(scores.shape[1])]

    def stat(w: np.ndarray) -> np.ndarray:
        aps, keep = [], []
        for c, order in enumerate(orders):
            t, wc = targets[order, c], w[:, order].astype(float)
            tp = np.cumsum(wc * (t > 0), axis=1)
            rank = np.cumsum(wc * (t >= 0), axis=1)
            npos = tp[:, -1:]
            best = np.where((t > 0) & (wc > 0), tp / np.maximum(rank, 1), -np.inf)
            best = np.where((t == 0) & (wc > 0), tp / np.maximum(rank - wc + 1, 1), best)
            envelope = np.maximum.accumulate(best[:, ::-1], axis=1)[:, ::-1]
            recall = tp / np.maximum(npos, 1)
            first = np.stack([np.searchsorted(row, levels) for row in recall])  # k x 11: first index reaching it
            picked = np.take_along_axis(envelope, np.minimum(first, len(t) - 1), axis=1)
            aps.append(np.where(first < len(t), picked, 0.0).mean(axis=1))
            keep.append(npos[:, 0] > 0)
        aps_a, keep_a = np.stack(aps, axis=1), np.stack(keep, axis=1)
        with np.errstate(invalid="ignore"):  # a resample without any positive (tiny sets only): NaN
            return 100.0 * np.where(keep_a, aps_a, 0.0).sum(axis=1) / keep_a.sum(axis=1)

    return stat
