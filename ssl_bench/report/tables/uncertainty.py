"""Intervals of table cells and the paired tests behind the tie marks, from the seeds' values and saved evidence.

A cell's samples are one `Sample` per seed (its value averaged over repeated configurations, as the mean is) with
the references of the per-image evidence files its records point to (ssl_bench.evalkit.evidence). Evidence files are
read lazily, only when a one-seed interval or test needs them, and each file's bootstrap distribution is computed
once per metric: resamples depend only on (seed, resamples, n), so two files over the same test images share
them and their difference is the paired bootstrap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ssl_bench.report import stats
from ssl_bench.errors import UserError
from ssl_bench.evalkit.evidence import FIELD, load_evidence


NO_EVIDENCE = "no evidence"  # ci_method of a one-seed cell without usable saved predictions (shown "[n/a]")


class Ref(NamedTuple):
    out_dir: str
    rel: str
    metric: str


class Sample(NamedTuple):
    seed: Any
    value: float
    refs: tuple[Ref, ...]  # evidence of the records behind this seed's value (one, unless configurations repeat)
    n_test: int | None


def evidence_refs(df: pd.DataFrame) -> pd.Series:
    """Per record: a Ref to its evidence file, or None."""
    if "extra" not in df or "out_dir" not in df:
        return pd.Series([None] * len(df), index=df.index, dtype=object)
    return pd.Series([Ref(str(o), e[FIELD], str(m)) if isinstance(e, dict) and isinstance(e.get(FIELD), str) else None
                      for e, o, m in zip(df["extra"], df["out_dir"], df["metric"])], index=df.index, dtype=object)


def test_counts(df: pd.DataFrame) -> pd.Series:
    """Per record: the number of test images its extra states (n_test), or NaN."""
    if "extra" not in df:
        return pd.Series(np.nan, index=df.index)
    return pd.Series([float(e["n_test"]) if isinstance(e, dict) and isinstance(e.get("n_test"), (int, float))
                      else np.nan for e in df["extra"]], index=df.index)


def check_fraction(value: float, flag: str) -> float:
    if not (isinstance(value, (int, float)) and 0 < value < 1):
        raise UserError(f"{flag}: bad value {value!r}; allowed: a number strictly between 0 and 1")
    return float(value)


@dataclass
class Uncertainty:
    """What the tables compute: intervals (`ci`, at `level`) and tie tests (at `alpha`); caches evidence."""

    ci: bool = False
    level: float = 0.95
    alpha: float = 0.05
    resamples: int = stats.BOOTSTRAP_RESAMPLES
    seed: int = stats.BOOTSTRAP_SEED
    _dist: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.level = check_fraction(self.level, "--ci-level")
        self.alpha = check_fraction(self.alpha, "--alpha")

    def _evidence(self, s: Sample) -> tuple[np.ndarray, np.ndarray, float, int] | None:
        """(labels, bootstrap distribution, value, n) of a one-record sample, or None without usable evidence
        (no file, unreadable, a metric without per-image statistic, or not reproducing the recorded value)."""
        if len(s.refs) != 1:
            return None
        ref = s.refs[0]
        if ref not in self._dist:
            arrays = load_evidence(ref.out_dir, ref.rel)
            self._dist[ref] = None
            try:
                if arrays is not None and abs(stats.metric_value(ref.metric, arrays) - s.value) <= 1e-6:
                    n = len(arrays["labels"])
                    dist = stats.bootstrap_distribution(stats.metric_statistic(ref.metric, arrays), n,
                                                        self.resamples, self.seed)
                    self._dist[ref] = (arrays["labels"], dist, s.value, n)
            except (KeyError, ValueError, IndexError):  # an older or foreign file: no interval rather than a wrong one
                pass
        return self._dist[ref]

    def interval(self, samples: tuple[Sample, ...]) -> tuple[float, float, str]:
        """(low, high, method) of a cell: "t" over 2+ seeds, "bootstrap" for one seed with evidence, else
        NO_EVIDENCE (shown [n/a])."""
        if len(samples) >= 2:
            _, lo, hi = stats.t_interval([s.value for s in samples], self.level)
            return lo, hi, "t"
        ev = self._evidence(samples[0]) if len(samples) == 1 else None
        if ev is None:
            return math.nan, math.nan, NO_EVIDENCE
        lo, hi = stats.percentile_interval(ev[1], self.level)
        return lo, hi, "bootstrap"

    def paired(self, a: tuple[Sample, ...], b: tuple[Sample, ...]) -> stats.Paired | None:
        """a - b: paired t-test over the seeds both have (2 or more), else the paired bootstrap over the test
        images of the one shared seed; None when neither is possible (no shared seed, no evidence for both,
        or not the same test images)."""
        a_by, b_by = {s.seed: s for s in a}, {s.seed: s for s in b}
        shared = [k for k in a_by if k in b_by and k is not None and not _nan(k)]
        if len(shared) >= 2:
            return stats.paired_t_test([a_by[k].value for k in shared], [b_by[k].value for k in shared],
                                       self.level)
        if len(shared) != 1:
            return None
        ea, eb = self._evidence(a_by[shared[0]]), self._evidence(b_by[shared[0]])
        if ea is None or eb is None or ea[3] != eb[3] or not np.array_equal(ea[0], eb[0]):
            return None
        return stats.paired_bootstrap(ea[1], eb[1], ea[2], eb[2], ea[3], self.level)

    def notes(self) -> dict[str, Any]:
        """What a footnote states about these computations."""
        return {"ci": self.ci, "level": self.level, "alpha": self.alpha, "resamples": self.resamples,
                "seed": self.seed}


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def samples_of(work: pd.DataFrame) -> list[Sample | None]:
    """Per line of `work` (columns seed, _v, _refs, _ntest): its Sample, None where no ok value."""
    return [Sample(seed, float(v), tuple(refs), None if pd.isna(nt) else int(nt)) if pd.notna(v) else None
            for seed, v, refs, nt in zip(work["seed"], work["_v"], work["_refs"], work["_ntest"])]


def add_intervals(tidy: pd.DataFrame, unc: Uncertainty) -> None:
    """ci_lo / ci_hi / ci_method per line (in place); reported lines and cells without a value get none ("")."""
    lo, hi, method = [], [], []
    for samples, reported, status in zip(tidy.get("_samples", [None] * len(tidy)), tidy["reported"], tidy["status"]):
        if reported or status != "ok" or not isinstance(samples, tuple) or not samples:
            lo.append(math.nan), hi.append(math.nan), method.append("")
            continue
        a, b, m = unc.interval(samples)
        lo.append(a), hi.append(b), method.append(m)
    tidy["ci_lo"], tidy["ci_hi"], tidy["ci_method"] = lo, hi, method
    tidy["ci_level"] = unc.level
