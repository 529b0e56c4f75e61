"""Statistics of timed samples: nearest-rank percentiles (benchmark_app's), per-round ratios and their
spread, a bootstrap interval for a ratio of medians, and the interleaved run order. numpy only; the
demo and convert's sparse decision use the same functions as the benchmark."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

BOOTSTRAP_REPS = 1000
BOOTSTRAP_MAX_SAMPLES = 2000


def percentile(values: Sequence[float] | np.ndarray, p: float) -> float:
    """Nearest-rank percentile (benchmark_app's): the smallest value with >= p% of values at or below it."""
    if not len(values):
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * p / 100.0))
    return float(ordered[min(rank, len(ordered)) - 1])


def quantiles(values: Sequence[float], ps: Sequence[float]) -> list[float]:
    """Several nearest-rank percentiles at once (one sort)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = ordered.size
    return [float(ordered[min(max(1, math.ceil(n * p / 100.0)), n) - 1]) for p in ps]


def latency_stats(values: Sequence[float] | np.ndarray, extra_percentile: int = 50) -> dict[str, float]:
    """min / median / mean / p90 / p99 / max / std (+ p<extra>) of latencies in ms."""
    arr = np.asarray(values, dtype=np.float64)
    stats = {
        "count": int(arr.size),
        "min": float(arr.min()),
        "median": percentile(arr, 50),
        "mean": float(arr.mean()),
        "p90": percentile(arr, 90),
        "p99": percentile(arr, 99),
        "max": float(arr.max()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
    }
    stats[f"p{extra_percentile}"] = percentile(arr, extra_percentile)
    return stats


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles (linear interpolation) and extremes of a few per-round values."""
    arr = np.asarray(values, dtype=np.float64)
    q1, med, q3 = np.percentile(arr, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "min": float(arr.min()),
            "max": float(arr.max()), "rounds": int(arr.size)}


def round_ratios(baseline: Sequence[float], variant: Sequence[float], *,
                 higher_is_better: bool) -> list[float]:
    """Per-round speed-up of ``variant`` over ``baseline`` from per-round figures (latency or throughput)."""
    if len(baseline) != len(variant):
        raise ValueError("baseline and variant need the same number of rounds")
    if higher_is_better:
        return [v / b for b, v in zip(baseline, variant, strict=True)]
    return [b / v for b, v in zip(baseline, variant, strict=True)]


def bootstrap_ratio_ci(baseline: Sequence[float], variant: Sequence[float], *, reps: int = BOOTSTRAP_REPS,
                       level: float = 0.95, seed: int = 0,
                       max_samples: int = BOOTSTRAP_MAX_SAMPLES) -> tuple[float, float]:
    """Percentile-bootstrap interval of median(baseline) / median(variant)."""
    rng = np.random.default_rng(seed)

    def prep(values: Sequence[float]) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64)
        if arr.size > max_samples:
            arr = rng.choice(arr, size=max_samples, replace=False)
        return arr

    b, v = prep(baseline), prep(variant)
    mb = np.median(b[rng.integers(0, b.size, size=(reps, b.size))], axis=1)
    mv = np.median(v[rng.integers(0, v.size, size=(reps, v.size))], axis=1)
    ratios = mb / mv
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(ratios, [alpha, 1 - alpha])
    return float(lo), float(hi)


def interleave(variants: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """The run order: every round runs every variant once, in the same order (A B C A B C ...)."""
    return [(r, v) for r in range(rounds) for v in variants]


def split_budget(total: int, rounds: int) -> list[int]:
    """Split ``total`` iterations over ``rounds`` as evenly as possible (earlier rounds get the remainder)."""
    base, extra = divmod(total, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def beyond_noise(ratios: Sequence[float]) -> bool:
    """Faster beyond the noise: the lower quartile of the per-round speed-ups exceeds 1 (convert's sparse
    decision and tune's ranking use this one rule)."""
    return bool(ratios) and spread(ratios)["q1"] > 1.0


def simplest_unbeaten(per_round: Mapping[str, Sequence[float]], *, higher_is_better: bool) -> str:
    """The winner among candidates given simplest first, with aligned per-round figures: the first one
    that no other beats beyond the noise, so a candidate within the noise of a simpler one loses to it.
    If every one is beaten by some other (a cycle of noisy pairs), the best median wins."""
    names = list(per_round)
    if not names:
        raise ValueError("no candidates")
    for name in names:
        if not any(beyond_noise(round_ratios(per_round[name], per_round[other], higher_is_better=higher_is_better))
                   for other in names if other != name):
            return name
    sign = 1.0 if higher_is_better else -1.0
    return max(names, key=lambda n: sign * float(np.median(per_round[n])))
