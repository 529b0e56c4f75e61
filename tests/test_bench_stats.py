"""pofa-deploy benchmark, the parts that need no model: statistics, interleaving, shapes, FLOP counting,
option checks, the JSON form of the typed result, and what importing the package loads."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pofa_deploy.bench import BenchmarkOptions, parse_shape
from pofa_deploy.bench.flops import graph_flops
from pofa_deploy.bench.result import LatencyStats, Speedup
from pofa_deploy.bench.stats import (
    bootstrap_ratio_ci,
    interleave,
    latency_stats,
    percentile,
    quantiles,
    round_ratios,
    split_budget,
    spread,
)
from pofa_deploy.errors import InputError


def test_percentile_is_nearest_rank_like_benchmark_app() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 50) == 5.0
    assert percentile(values, 90) == 9.0
    assert percentile(values, 91) == 10.0
    assert percentile(values, 1) == 1.0
    assert percentile(values, 100) == 10.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # sorts first
    rng = np.random.default_rng(0)
    sample = sorted(rng.exponential(size=97).tolist())
    for p in (1, 25, 50, 90, 99, 100):  # benchmark_app: values[ceil(len * p / 100) - 1]
        assert percentile(sample, p) == sample[math.ceil(len(sample) * p / 100) - 1]
    assert quantiles(sample, [0, 50, 100]) == [sample[0], percentile(sample, 50), sample[-1]]
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_stats() -> None:
    stats = latency_stats([4.0, 1.0, 3.0, 2.0, 10.0], extra_percentile=80)
    assert stats["count"] == 5
    assert (stats["min"], stats["median"], stats["max"]) == (1.0, 3.0, 10.0)
    assert stats["mean"] == pytest.approx(4.0)
    assert stats["p90"] == 10.0 and stats["p99"] == 10.0
    assert stats["p80"] == 4.0
    assert stats["std"] == pytest.approx(float(np.std([4, 1, 3, 2, 10], ddof=1)))


def test_round_ratios_and_their_spread() -> None:
    # sync: baseline latency / variant latency, round by round
    per = round_ratios([10.0, 20.0, 30.0, 12.0], [5.0, 10.0, 10.0, 6.0], higher_is_better=False)
    assert per == [2.0, 2.0, 3.0, 2.0]
    s = spread(per)
    assert s == {"median": 2.0, "q1": 2.0, "q3": 2.25, "min": 2.0, "max": 3.0, "rounds": 4}
    # async: variant throughput / baseline throughput
    assert round_ratios([100.0, 50.0], [300.0, 100.0], higher_is_better=True) == [3.0, 2.0]
    with pytest.raises(ValueError):
        round_ratios([1.0], [1.0, 2.0], higher_is_better=True)


def test_bootstrap_interval_brackets_the_true_ratio() -> None:
    rng = np.random.default_rng(1)
    base = (10.0 + rng.normal(0, 0.5, size=400)).tolist()
    fast = (5.0 + rng.normal(0, 0.25, size=400)).tolist()
    lo, hi = bootstrap_ratio_ci(base, fast, reps=300)
    assert lo < 2.0 < hi
    assert hi - lo < 0.2


def test_interleaving_order_and_budget_split() -> None:
    assert interleave(["A", "B", "C"], 2) == [(0, "A"), (0, "B"), (0, "C"), (1, "A"), (1, "B"), (1, "C")]
    assert split_budget(7, 3) == [3, 2, 2]
    assert sum(split_budget(100, 7)) == 100


def test_parse_shape() -> None:
    assert parse_shape("[1,128]") == (1, 128)
    assert parse_shape("input_ids[8,64],attention_mask[8,64]") == (8, 64)
    for bad in ("[1,128,3]", "1,128", "input_ids[1,128],attention_mask[1,64]", "[0,16]", "[1,?]"):
        with pytest.raises(InputError, match="-shape"):
            parse_shape(bad)


def test_graph_flops_counts_linear_and_attention() -> None:
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([2, 8, 16], ov.Type.f32, name="x")
    w = ops.constant(np.ones((32, 16), dtype=np.float32))
    lin = ops.matmul(x, w, False, True)  # [2,8,32]: 2*(2*8*32)*16
    q = ops.parameter([1, 2, 4, 8], ov.Type.f32, name="q")
    att = ops.scaled_dot_product_attention(q, q, q, causal=False)  # 2*2*4*4*8 (QK^T) + same (xV)
    act = ops.matmul(q, q, False, True)  # activation x activation: [1,2,4,4] = 2*(2*4*4)*8
    model = ov.Model([ops.result(lin), ops.result(att), ops.result(act)], [x, q])
    flops = graph_flops(model)
    assert flops.linear == 2 * (2 * 8 * 32) * 16
    assert flops.attention == 2 * 2 * 4 * 4 * 8 * 2 + 2 * (2 * 4 * 4) * 8
    assert flops.total == flops.linear + flops.attention


def test_bench_imports_neither_torch_nor_nncf() -> None:
    code = ("import sys, pofa_deploy.bench, pofa_deploy.report; "
            "bad = [m for m in ('torch', 'nncf', 'transformers', 'matplotlib') if m in sys.modules]; "
            "print(*bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_options_validate_in_the_library_too() -> None:
    with pytest.raises(InputError, match="-niter"):
        BenchmarkOptions(model=Path("x"), niter=-3)
    with pytest.raises(InputError, match="--peak-shape"):
        BenchmarkOptions(peak=True, peak_shape=(1, 2))
    with pytest.raises(TypeError):  # keyword-only: a positional MODEL is a mistake, not a silent field
        BenchmarkOptions(Path("x"))  # type: ignore[misc]


def test_latency_and_speedup_json_round_trip() -> None:
    for extra in (50, 80, 90, 99):
        stats = latency_stats([4.0, 1.0, 3.0, 2.0, 10.0], extra_percentile=extra)
        typed = LatencyStats.from_dict(stats)
        assert typed.to_dict() == stats
        assert typed.at(extra) == stats[f"p{extra}"] and typed.at(50) == stats["median"]
    assert LatencyStats.from_dict(latency_stats([1.0, 2.0], 80)).at(75) is None
    speed = {"baseline": "int8", "overall": 2.0, "per_round": [2.0, 3.0], **spread([2.0, 3.0]), "ci95": [1.5, 2.5]}
    typed_speed = Speedup.from_dict(speed)
    assert typed_speed.ci95 == (1.5, 2.5) and typed_speed.to_dict() == speed
