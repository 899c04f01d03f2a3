"""ssl_bench.report.stats against direct scipy / numpy computations and against the metrics themselves, on fixed numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps

from ssl_bench.report import stats
from ssl_bench.metrics import map11, mean_per_class_accuracy, topk_accuracy

SEEDS_A = [70.0, 72.0, 74.0]
SEEDS_B = [69.0, 70.5, 73.5]  # differences 1, 1.5, 0.5: p = 0.074 (paired t, 2 df)


def test_t_interval_is_scipys_student_t_interval():
    for level in (0.95, 0.9, 0.99):
        mean, lo, hi = stats.t_interval(SEEDS_A, level)
        want = sps.t.interval(level, len(SEEDS_A) - 1, loc=np.mean(SEEDS_A), scale=sps.sem(SEEDS_A))
        assert mean == 72.0 and (lo, hi) == pytest.approx(want, abs=1e-12)
    # by hand at 95%: 72 +- t_{0.975, 2} * 2 / sqrt(3) = 72 +- 4.303 * 1.1547
    assert stats.t_interval(SEEDS_A)[2] == pytest.approx(72 + 4.302652729911275 * 2 / np.sqrt(3))
    with pytest.raises(ValueError):
        stats.t_interval([1.0])


def test_paired_t_test_is_scipys_ttest_rel():
    res = stats.paired_t_test(SEEDS_A, SEEDS_B)
    ref = sps.ttest_rel(SEEDS_A, SEEDS_B)
    assert res.p == pytest.approx(ref.pvalue, abs=1e-12) and res.p == pytest.approx(0.0742, abs=1e-4)
    assert (res.diff, res.n, res.test) == (1.0, 3, "t")
    d = np.subtract(SEEDS_A, SEEDS_B)
    assert (res.lo, res.hi) == pytest.approx(sps.t.interval(0.95, 2, loc=d.mean(), scale=sps.sem(d)), abs=1e-12)
    # a constant difference has no spread: equality is rejected unless the difference is 0
    assert stats.paired_t_test([2.0, 3.0], [1.0, 2.0]).p == 0.0
    assert stats.paired_t_test([2.0, 3.0], [2.0, 3.0]).p == 1.0


def _hits(n: int, share: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < share


def test_bootstrap_interval_is_scipys_percentile_bootstrap():
    """Same generator, same chunks of resamples: the percentile interval of top-1 is scipy.stats.bootstrap's."""
    hits = _hits(300, 0.7, 1)
    dist = stats.bootstrap_distribution(stats.metric_statistic("top1", {"top1": hits, "labels": hits}), len(hits))
    assert dist.shape == (stats.BOOTSTRAP_RESAMPLES,)
    ref = sps.bootstrap((100.0 * hits,), np.mean, n_resamples=stats.BOOTSTRAP_RESAMPLES, batch=stats.BOOTSTRAP_CHUNK,
                        method="percentile", confidence_level=0.95, rng=np.random.default_rng(stats.BOOTSTRAP_SEED))
    assert dist == pytest.approx(ref.bootstrap_distribution, abs=1e-9)
    lo, hi = stats.percentile_interval(dist, 0.95)
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-9)
    assert lo < 100 * hits.mean() < hi


def _resamples(n: int, k: int = 20, seed: int = 3):
    """(indices, counts) of k resamples, indices sorted (a resample is a multiset of images)."""
    idx = np.sort(np.random.default_rng(seed).integers(0, n, (k, n)), axis=1)
    return idx, np.stack([np.bincount(row, minlength=n) for row in idx])


def test_statistics_recompute_each_metric_on_resampled_images():
    """The count-weighted statistics equal the metrics of ssl_bench.metrics on the resampled images."""
    g = torch.Generator().manual_seed(0)
    scores, labels = torch.randn(80, 7, generator=g), torch.randint(0, 7, (80,), generator=g)
    scores[:10, :] = 0.0  # ties: ranks as topk breaks them, stored as hits
    arrays = {"labels": labels.numpy(), "top1": scores.topk(1).indices[:, 0].eq(labels).numpy(),
              "top5": (scores.topk(5).indices == labels[:, None]).any(1).numpy(), "pred": scores.argmax(1).numpy()}
    idx, w = _resamples(80)
    for metric, fn in (("top1", lambda i: topk_accuracy(scores[i], labels[i], 1)),
                       ("top5", lambda i: topk_accuracy(scores[i], labels[i], 5)),
                       ("mean_per_class", lambda i: mean_per_class_accuracy(scores[i].argmax(1), labels[i], 7))):
        got = stats.metric_statistic(metric, arrays)(w)
        assert got == pytest.approx([fn(torch.as_tensor(i)) for i in idx], abs=1e-9), metric
        assert stats.metric_value(metric, arrays) == pytest.approx(fn(torch.arange(80)), abs=1e-12)


def test_map11_statistic_equals_map11_on_resampled_images():
    """Ties between images, duplicated images, difficult (-1) targets and a class absent from some resamples."""
    g = torch.Generator().manual_seed(5)
    scores = torch.randint(0, 6, (60, 5), generator=g).float()  # many exact ties
    targets = (torch.rand(60, 5, generator=g) < 0.3).long()
    targets[torch.rand(60, 5, generator=g) < 0.1] = -1
    targets[:, 4] = 0
    targets[7, 4] = 1  # one positive only: absent from many resamples, then skipped as map11 skips it
    arrays = {"scores": scores.numpy(), "labels": targets.numpy().astype(np.int8)}
    idx, w = _resamples(60, k=30)
    got = stats.metric_statistic("map11", arrays)(w)
    assert got == pytest.approx([map11(scores[i], targets[i]) for i in torch.as_tensor(idx)], abs=1e-9)
    assert stats.metric_value("map11", arrays) == pytest.approx(map11(scores, targets), abs=1e-12)


def test_paired_bootstrap_interval_and_p_value():
    a, b = _hits(400, 0.8, 1), _hits(400, 0.8, 1).copy()
    b[:30] = ~b[:30]  # b differs from a on 30 images
    stat_a = stats.metric_statistic("top1", {"top1": a})
    stat_b = stats.metric_statistic("top1", {"top1": b})
    da, db = (stats.bootstrap_distribution(s, 400) for s in (stat_a, stat_b))
    va, vb = 100 * a.mean(), 100 * b.mean()
    res = stats.paired_bootstrap(da, db, va, vb, 400)
    # the interval: scipy's paired percentile bootstrap of the difference of means
    ref = sps.bootstrap((100.0 * a, 100.0 * b), lambda x, y, axis: x.mean(axis) - y.mean(axis), paired=True,
                        n_resamples=stats.BOOTSTRAP_RESAMPLES, batch=stats.BOOTSTRAP_CHUNK, method="percentile",
                        rng=np.random.default_rng(stats.BOOTSTRAP_SEED))
    assert (res.lo, res.hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-9)
    # the p-value, directly: resample the images, centre the differences on the observed one
    rng, deltas = np.random.default_rng(stats.BOOTSTRAP_SEED), []
    for start in range(0, stats.BOOTSTRAP_RESAMPLES, stats.BOOTSTRAP_CHUNK):
        i = rng.integers(0, 400, (stats.BOOTSTRAP_CHUNK, 400))
        deltas += list(100 * (a[i].mean(1) - b[i].mean(1)))
    d = va - vb
    want = (1 + np.sum(np.abs(np.array(deltas) - d) >= abs(d) - 1e-12)) / (stats.BOOTSTRAP_RESAMPLES + 1)
    assert res.p == pytest.approx(want) and res.diff == pytest.approx(d) and (res.n, res.test) == (400, "bootstrap")
    assert stats.paired_bootstrap(da, da, va, va, 400).p == 1.0  # a method against itself
    far = stats.paired_bootstrap(da, stats.bootstrap_distribution(stats.metric_statistic(
        "top1", {"top1": _hits(400, 0.5, 2)}), 400), va, 50.0, 400)
    assert far.p == pytest.approx(1 / (stats.BOOTSTRAP_RESAMPLES + 1))  # never 0, smallest possible


def test_shift_p_value_by_hand():
    dist = np.array([-1.0, 0.5, 1.0, 2.0, 3.0])  # observed 1: |x - 1| >= 1 for -1, 2, 3
    assert stats.shift_p_value(dist, 1.0) == pytest.approx((1 + 3) / 6)


def test_resamples_depend_only_on_seed_and_size():
    first = np.concatenate(list(stats.bootstrap_counts(50, 120, seed=7)))
    again = np.concatenate(list(stats.bootstrap_counts(50, 120, seed=7)))
    assert first.shape == (120, 50) and (first.sum(1) == 50).all() and (first == again).all()
    assert not (first == np.concatenate(list(stats.bootstrap_counts(50, 120, seed=8)))).all()
