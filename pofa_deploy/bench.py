"""Time a converted model against its dense baselines, the way benchmark_app would, in one run.

Variants (``--variants``), all on the same inputs and shapes:
  pytorch-fp32  the source checkpoint in PyTorch FP32 eager mode: what a user runs today (baseline)
  ov-fp32       an OpenVINO FP32 IR of the same source, compiled with INFERENCE_PRECISION_HINT=f32
  ov-bf16       the same IR with INFERENCE_PRECISION_HINT=bf16 (needs avx512_bf16 or amx_bf16)
  int8          the converted INT8 IR with sparse-weight decompression OFF
  int8-sparse   the same IR with decompression ON (rate from runtime_config.json or --sparse-rate)
  int8-dense    a dense model's INT8 IR (--dense), for "sparse INT8 vs dense INT8"

Noise: the variants run in interleaved rounds (A B C A B C ...), each round a fixed share of the
time (-t) or iteration (-niter) budget, so a slow phase of the machine hits all of them alike; the
speed-up of each variant over the baseline is computed per round and reported as the median with
its interquartile range and extremes (see DEFINITIONS, which every result carries).

Knobs mirror benchmark_app (-api, -hint, -nstreams, -nireq, -nthreads, -b, -shape, -t, -niter,
-load_config, -latency_percentile, -pc, -json_stats) with the same meanings. ``--peak`` measures this
CPU's dense INT8/FP32/BF16 MatMul ceiling through OpenVINO and caches it, so every variant can say
what share of the ceiling it reaches.

Imports: only numpy and openvino at run time. torch is imported only by the pytorch-fp32 variant,
nncf only by --peak (with a hand-built FakeQuantize graph when nncf is missing), transformers only
to tokenise realistic inputs (random in-vocabulary ids otherwise), so a machine with nothing but
openvino can benchmark pre-converted IR folders.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .environment import available_cores, bf16_supported, cpu_model, has_amx, physical_cores
from .environment import record as environment_record
from .errors import InputError, PofaError
from .ir import REPORT_FILE, ir_xml, is_int8_ir, is_ir, read_report
from .options import at_least, coerce_fields, flag_name, option
from .probe import needs_probe, probe
from .runtime import IREligibility, ir_eligibility, runtime_exec_types, sparse_status
from .runtime_config import PRECISION_KEY, RUNTIME_CONFIG, SPARSE_KEY, parse_rate, read_runtime_config

Progress = Callable[[str], None]

SCHEMA = "pofa-deploy-benchmark/1"
DEFAULT_TIME_S = 10.0
DEFAULT_BATCH = 1
DEFAULT_SEQ_LEN = 128
PEAK_FILE = "peak.json"
SETTLE_S = 0.02  # pause between variants' rounds: lets the previous one's worker threads go idle
BOOTSTRAP_REPS = 1000
BOOTSTRAP_MAX_SAMPLES = 2000
PC_ITERATIONS = 10  # extra inferences whose per-layer counters -pc averages


class Api(StrEnum):
    SYNC = "sync"
    ASYNC = "async"


class Hint(StrEnum):
    LATENCY = "latency"
    THROUGHPUT = "throughput"
    NONE = "none"


class Variant(StrEnum):
    PYTORCH_FP32 = "pytorch-fp32"
    OV_FP32 = "ov-fp32"
    OV_BF16 = "ov-bf16"
    INT8 = "int8"
    INT8_SPARSE = "int8-sparse"
    INT8_DENSE = "int8-dense"


VARIANT_DESCRIPTIONS: dict[Variant, str] = {
    Variant.PYTORCH_FP32: "source checkpoint, PyTorch FP32 eager (torch.inference_mode)",
    Variant.OV_FP32: "OpenVINO FP32 IR of the source, INFERENCE_PRECISION_HINT=f32",
    Variant.OV_BF16: "OpenVINO FP32 IR of the source, INFERENCE_PRECISION_HINT=bf16",
    Variant.INT8: "converted INT8 IR, sparse-weight decompression off",
    Variant.INT8_SPARSE: "converted INT8 IR, sparse-weight decompression on",
    Variant.INT8_DENSE: "INT8 IR of the dense model given with --dense",
}

# Which measured ceiling each variant's achieved ops/s is compared with.
PEAK_PRECISION: dict[Variant, str] = {
    Variant.PYTORCH_FP32: "fp32", Variant.OV_FP32: "fp32", Variant.OV_BF16: "bf16",
    Variant.INT8: "int8", Variant.INT8_SPARSE: "int8", Variant.INT8_DENSE: "int8",
}

BASELINE_ORDER = (Variant.PYTORCH_FP32, Variant.OV_FP32, Variant.INT8_DENSE, Variant.INT8)

DEFINITIONS: dict[str, str] = {
    "latency_ms":
        "sync: wall-clock time of one inference call as Python sees it (time.perf_counter around "
        "InferRequest.infer() or the PyTorch forward), the same clock for every variant; async: OpenVINO's "
        "per-request timer (requests overlap, so a wall-clock time per call is undefined)",
    "ov_latency_ms":
        "OpenVINO's own per-request timer (InferRequest.latency): the figure benchmark_app reports",
    "percentiles":
        "nearest-rank method, as benchmark_app: the p-th percentile is the smallest sample with at least "
        "p% of all samples at or below it; median = 50th percentile",
    "throughput":
        "samples (batch x iterations) per second of wall-clock time; in async mode with nireq requests "
        "in flight",
    "speedup":
        "sync: baseline median latency / variant median latency; async: variant throughput / baseline "
        "throughput. Above 1 = faster than the baseline",
    "speedup.per_round":
        "the same ratio computed separately in every round; baseline and variant run back to back inside a "
        "round, so a slow phase of the machine hits both",
    "speedup.median_iqr_min_max":
        "median, interquartile range [25th, 75th percentile, linear interpolation] and [min, max] of the "
        "per-round ratios: how far machine noise moved the ratio between rounds; it is a spread, not a "
        "confidence interval",
    "speedup.ci95":
        "sync only: 95% percentile-bootstrap interval of the ratio of median latencies over all timed "
        f"iterations ({BOOTSTRAP_REPS} resamples of at most {BOOTSTRAP_MAX_SAMPLES} per variant, "
        "iterations treated as independent)",
    "speedup.overall":
        "the ratio of the medians (sync) or throughputs (async) over all rounds together",
    "ops_per_second":
        "dense-equivalent work per second: 2*M*K*N for every MatMul/FullyConnected plus 4*B*H*Sq*Sk*D for "
        "every fused attention, counted in the IR at the benchmark shape; zero weights count as work, so a "
        "sparse kernel can exceed the dense ceiling",
    "peak_share":
        "ops_per_second / this CPU's measured dense MatMul ceiling (pofa-deploy benchmark --peak) for the "
        "variant's precision: INT8 for int8 variants, FP32 for pytorch-fp32 and ov-fp32, BF16 for ov-bf16",
}


def _flag(field_name: str) -> str:
    """All spellings of a BenchmarkOptions flag, for error messages (``-t/--time``)."""
    return flag_name(BenchmarkOptions, field_name, every=True)


@dataclass(frozen=True)
class BenchmarkOptions:
    # option() builds a dataclass field, so RUF009 (a call as a default) does not apply to these lines
    model: Path | None = option(
        None, positional=True, help="converted output folder (pofa-deploy convert MODEL -o OUT)")
    variants: tuple[Variant, ...] = option(
        (), flags=("--variants",), metavar="V[,V...]",
        help="comma list of pytorch-fp32, ov-fp32, ov-bf16, int8, int8-sparse, int8-dense (default: all of "
             "them that apply; int8-dense needs --dense)")
    api: Api | None = option(
        None, flags=("-api", "--api"),
        help="sync: one request, latency figures; async: nireq requests in flight, throughput (default: "
             "async with -hint throughput/none, else sync)")
    hint: Hint | None = option(
        None, flags=("-hint", "--hint"),
        help="PERFORMANCE_HINT; none sets no hint (default: latency for sync, throughput for async, unless "
             "-load_config sets one)")
    nstreams: int | None = option(
        None, flags=("-nstreams", "--nstreams"),
        help="NUM_STREAMS (overrides the hint's choice; benchmark_app wants -hint none with it)")
    nireq: int | None = option(
        None, flags=("-nireq", "--nireq"),
        help="infer requests in async mode (default: the plugin's optimal number)")
    nthreads: int | None = option(
        None, flags=("-nthreads", "--nthreads"),
        help="INFERENCE_NUM_THREADS, and torch.set_num_threads for pytorch-fp32 (default: every core this "
             "process may use)")
    batch: tuple[int, ...] = option(
        (), flags=("-b", "--batch"), metavar="B[,B...]",
        help=f"batch size(s), a comma list sweeps them (default: {DEFAULT_BATCH})")
    seq_len: tuple[int, ...] = option(
        (), flags=("--seq-len",), metavar="S[,S...]",
        help=f"sequence length(s), a comma list sweeps them (default: {DEFAULT_SEQ_LEN})")
    shape: str | None = option(
        None, flags=("-shape", "--shape"),
        help="benchmark_app style static shape, [B,S] or input_ids[B,S],attention_mask[B,S] (instead of "
             "-b/--seq-len)")
    time: float | None = option(
        None, flags=("-t", "--time"),
        help=f"seconds per variant and shape, split over the rounds (default: {DEFAULT_TIME_S:g} unless "
             "-niter)")
    niter: int | None = option(
        None, flags=("-niter", "--niter"),
        help="iterations per variant and shape, split over the rounds (instead of -t)")
    rounds: int = option(5, flags=("--rounds",), help="interleaved rounds (A B C A B C ...)")
    warmup: int = option(3, flags=("--warmup",), help="untimed inferences per variant after the first one")
    load_config: Path | None = option(
        None, flags=("-load_config", "--load-config"),
        help="JSON of OpenVINO properties ({\"CPU\": {...}}) applied to every OpenVINO variant on top of the "
             "folder's runtime_config.json")
    latency_percentile: int = option(
        50, flags=("-latency_percentile", "--latency-percentile"),
        help="extra latency percentile to report, 1..100")
    pc: bool = option(
        False, flags=("-pc", "--perf-counts"),
        help="per-layer performance counters (PERF_COUNT) by layer type and kernel, and which FullyConnected "
             "nodes ran sparse")
    json_stats: bool = option(
        False, flags=("-json_stats", "--json"),
        help="print the complete result as JSON on stdout (the table goes to stderr)")
    output_dir: Path | None = option(
        None, flags=("--output-dir",),
        help="where JSON, CSV, Markdown and PNG plots go (default: MODEL/benchmark)")
    no_plots: bool = option(False, flags=("--no-plots",), help="skip the PNG plots")
    sparse_rate: float | None = option(
        None, flags=("--sparse-rate",),
        help="CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE for int8-sparse (default: the folder's "
             "runtime_config.json)")
    dense: str | None = option(
        None, flags=("--dense",),
        help="a dense model for the int8-dense variant: its converted folder, or a checkpoint folder "
             "(converted to INT8 into the cache)")
    fp32_ir: Path | None = option(
        None, flags=("--fp32-ir",),
        help="a converted FP32 folder of the same source for ov-fp32/ov-bf16 (default: converted from the "
             "report's source_path into the cache)")
    baseline: Variant | None = option(
        None, flags=("--baseline",),
        help="variant the ratios are taken against (default: pytorch-fp32, or the first of ov-fp32, "
             "int8-dense, int8 that ran)")
    peak: bool = option(
        False, flags=("--peak",),
        help="measure this CPU's INT8/FP32/BF16 MatMul ceiling and cache it; alone it only measures")
    peak_time: float = option(3.0, flags=("--peak-time",), help="seconds per precision for --peak")
    peak_shape: tuple[int, ...] = option(
        (1024, 4096, 4096), flags=("--peak-shape",), metavar="M,K,N",
        help="MatMul [M,K]x[K,N] that --peak times")
    cache_dir: Path | None = option(
        None, flags=("--cache-dir",),
        help="cache for the peak and converted FP32/dense IRs (default: $POFA_CACHE_DIR or "
             "~/.cache/pofa-deploy)")
    quiet: bool = option(False, flags=("-q", "--quiet"), help="no progress display")

    def __post_init__(self) -> None:
        coerce_fields(self)
        at_least(self, 1, "nstreams", "nireq", "nthreads", "niter", "rounds", every=True)
        if self.time is not None and not self.time > 0:
            raise InputError(f"{_flag('time')} must be a positive number of seconds, got {self.time:g} "
                             "(e.g. -t 10)")
        if self.time is not None and self.niter is not None:
            raise InputError(f"give {_flag('time')} or {_flag('niter')}, not both")
        at_least(self, 0, "warmup", every=True)
        for name in ("batch", "seq_len"):
            bad = [v for v in getattr(self, name) if v < 1]
            if bad:
                raise InputError(f"{_flag(name)} values must be positive integers, got {bad[0]}")
        if self.shape is not None and (self.batch or self.seq_len):
            raise InputError(f"give {_flag('shape')} or {_flag('batch')} and {_flag('seq_len')}, not both")
        if self.shape is not None:
            parse_shape(self.shape)
        if not 1 <= self.latency_percentile <= 100:
            raise InputError(f"{_flag('latency_percentile')} must be in 1..100, "
                             f"got {self.latency_percentile}")
        if self.sparse_rate is not None and not 0.0 < self.sparse_rate <= 1.0:
            raise InputError(f"{_flag('sparse_rate')} must be in (0, 1], got {self.sparse_rate:g}")
        if not self.peak_time > 0:
            raise InputError(f"{_flag('peak_time')} must be a positive number of seconds, "
                             f"got {self.peak_time:g}")
        if len(self.peak_shape) != 3 or min(self.peak_shape) < 1:
            raise InputError(f"{_flag('peak_shape')} takes three positive integers M,K,N, got "
                             f"{','.join(map(str, self.peak_shape))}")
        if self.model is None and not self.peak:
            raise InputError("MODEL is missing: give a converted folder (pofa-deploy convert MODEL -o OUT), "
                             "or --peak to measure this CPU's ceiling")
        if Variant.INT8_DENSE in self.variants and not self.dense:
            raise InputError(f"{_flag('variants')} int8-dense needs --dense MODEL (a dense model's converted "
                             "folder or checkpoint)")
        if len(set(self.variants)) != len(self.variants):
            raise InputError(f"{_flag('variants')} lists a variant twice")

    # -- resolved settings ---------------------------------------------------------------------------
    @property
    def resolved_api(self) -> Api:
        if self.api is not None:
            return self.api
        return Api.SYNC if self.hint in (None, Hint.LATENCY) else Api.ASYNC

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(batch, seq_len) of every configuration, in sweep order (sequence length outermost)."""
        if self.shape is not None:
            return [parse_shape(self.shape)]
        batches = self.batch or (DEFAULT_BATCH,)
        seqs = self.seq_len or (DEFAULT_SEQ_LEN,)
        return [(b, s) for s in seqs for b in batches]

    @property
    def threads(self) -> int:
        return self.nthreads or available_cores()


OPTIONS = BenchmarkOptions


# -- small pure helpers (unit-tested on hand-made data) ---------------------------------------------


def parse_shape(text: str) -> tuple[int, int]:
    """``[1,128]`` or ``input_ids[1,128],attention_mask[1,128]`` -> (1, 128); every input must agree."""
    import re

    groups = re.findall(r"\[([^\]]*)\]", text)
    shapes: set[tuple[int, ...]] = set()
    for g in groups:
        try:
            shapes.add(tuple(int(d) for d in g.split(",")))
        except ValueError:
            shapes.add(())
    if len(shapes) != 1 or any(len(dims) != 2 or min(dims) < 1 for dims in shapes):
        raise InputError(f"-shape {text!r}: expected one static [BATCH,SEQ_LEN] for every input, e.g. -shape "
                         "[1,128] or -shape input_ids[1,128],attention_mask[1,128]")
    b, s = next(iter(shapes))
    return b, s


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


def graph_flops(model: Any) -> dict[str, int]:
    """Multiply-add work (2 ops each) of a static-shaped ov.Model: MatMuls and fused attention."""
    linear = attention = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "MatMul":
            a = op.input_value(0).get_partial_shape()
            out = op.get_output_partial_shape(0)
            if not (a.is_static and out.is_static):
                raise InputError("cannot count FLOPs of a dynamic shape; reshape the model first")
            a_dims = [int(d.get_length()) for d in a]
            attrs = op.get_attributes()
            k = a_dims[-2] if attrs.get("transpose_a") and len(a_dims) > 1 else a_dims[-1]
            n_out = int(np.prod([int(d.get_length()) for d in out], dtype=np.int64))
            work = 2 * n_out * k
            b_node = op.input_value(1).get_node()
            if _is_weight(b_node):
                linear += work
            else:
                attention += work
        elif kind == "ScaledDotProductAttention":
            q, key, v = (op.input_value(i).get_partial_shape() for i in range(3))
            q_dims = [int(d.get_length()) for d in q]
            k_dims = [int(d.get_length()) for d in key]
            v_dims = [int(d.get_length()) for d in v]
            batch = int(np.prod(q_dims[:-2], dtype=np.int64))
            sq, d = q_dims[-2], q_dims[-1]
            sk, dv = k_dims[-2], v_dims[-1]
            attention += 2 * batch * sq * sk * d + 2 * batch * sq * sk * dv
    return {"linear": int(linear), "attention": int(attention), "total": int(linear + attention)}


def _is_weight(node: Any) -> bool:
    """A MatMul input that is a (dequantised) constant rather than an activation."""
    for _ in range(8):
        kind = node.get_type_name()
        if kind == "Constant":
            return True
        if kind in ("Convert", "Reshape", "Transpose", "FakeQuantize"):
            node = node.input_value(0).get_node()
            continue
        if kind in ("Multiply", "Subtract"):
            a, b = (node.input_value(i).get_node() for i in range(2))
            node = a if b.get_type_name() == "Constant" else b
            continue
        return False
    return False


# -- environment ----------------------------------------------------------------------------------


def environment(options: BenchmarkOptions | None = None) -> dict[str, Any]:
    return environment_record(threads=options.threads if options else None)


def cache_root(options: BenchmarkOptions | None = None) -> Path:
    if options is not None and options.cache_dir is not None:
        return Path(options.cache_dir)
    env = os.environ.get("POFA_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "pofa-deploy"


# -- peak ------------------------------------------------------------------------------------------


DEFAULT_PEAK_SHAPE = (1024, 4096, 4096)  # --peak-shape's default: the ceiling "% of peak" is taken against
_PEAK_VERSION = "peak v2"  # latency and throughput modes (v1 figures, one sync request only, are not reused)


def peak_key(threads: int, shape: Sequence[int] = DEFAULT_PEAK_SHAPE, seconds: float = 3.0) -> str:
    """One cache entry per CPU, OpenVINO, threads, MatMul shape and seconds per precision, so a quick
    ``--peak-shape 64,64,64 --peak-time 0.1`` run is stored beside the real ceiling, never over it."""
    import openvino as ov

    m, k, n = (int(v) for v in shape)
    return (f"{cpu_model()} | openvino {ov.get_version()} | {threads} threads | [{m},{k}]x[{k},{n}] | "
            f"{float(seconds):g} s | {_PEAK_VERSION}")


def _peak_model(precision: str, m: int, k: int, n: int, *, use_nncf: bool) -> tuple[Any, str]:
    """A [M,K]x[K,N] MatMul graph; INT8 by NNCF or a hand-built FakeQuantize + i8 weight."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([m, k], ov.Type.f32, name="x")
    if precision != "int8":
        w = ops.constant(rng.standard_normal((n, k)).astype(np.float32))
        how = "f32 MatMul" + (", INFERENCE_PRECISION_HINT=bf16" if precision == "bf16" else "")
        return ov.Model([ops.result(ops.matmul(x, w, False, True))], [x], "peak"), how
    if use_nncf:
        try:
            import nncf

            fp = _peak_model("fp32", m, k, n, use_nncf=False)[0]
            data = [{"x": rng.standard_normal((m, k)).astype(np.float32)}]
            return nncf.quantize(fp, nncf.Dataset(data), subset_size=1), "nncf.quantize"
        except ImportError:
            pass
    lo, hi = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
    xq = ops.fake_quantize(x, lo, hi, lo, hi, 256)
    wq = ops.constant(rng.integers(-127, 128, size=(n, k)).astype(np.int8))
    scale = ops.constant(np.full((n, 1), 0.01, dtype=np.float32))
    w = ops.multiply(ops.convert(wq, ov.Type.f32), scale)
    return ov.Model([ops.result(ops.matmul(xq, w, False, True))], [x], "peak_i8"), "FakeQuantize (no nncf)"


def measure_peak(*, shape: Sequence[int] = (1024, 4096, 4096), seconds: float = 3.0,
                 threads: int | None = None, use_nncf: bool = True,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Sustained dense MatMul rate of this CPU through OpenVINO, per precision (ops/s, median of iterations).

    Each precision is checked in the runtime graph: the FullyConnected node must have run with the
    intended precision (u8/i8 for INT8), otherwise ``verified`` is false and the figure is not a ceiling.
    """
    import openvino as ov

    say = progress or (lambda _m: None)
    m, k, n = (int(v) for v in shape)
    threads = threads or available_cores()
    flops = 2 * m * k * n
    core = ov.Core()
    result: dict[str, Any] = {"key": peak_key(threads, (m, k, n), seconds), "cpu_model": cpu_model(),
                              "openvino": ov.get_version(), "threads": threads, "shape": [m, k, n],
                              "flops_per_inference": flops,
                              "seconds_per_precision": seconds,
                              "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    precisions = ["int8", "fp32", "bf16"]
    for precision in precisions:
        if precision == "bf16" and not bf16_supported():
            result[precision] = {"skipped": "this CPU has neither avx512_bf16 nor amx_bf16"}
            continue
        say(f"peak: timing a [{m},{k}]x[{k},{n}] {precision} MatMul for {seconds:g} s")
        model, method = _peak_model(precision, m, k, n, use_nncf=use_nncf)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads)}
        if precision in ("fp32", "bf16"):
            config[PRECISION_KEY] = "f32" if precision == "fp32" else "bf16"
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
        request.set_tensor(compiled.inputs[0], ov.Tensor(np.random.default_rng(1).standard_normal((m, k))
                                                         .astype(np.float32)))
        request.infer()
        fc = [node for node in runtime_exec_types(compiled).values()
              if node["layerType"] in ("FullyConnected", "MatMul")]
        exec_type = fc[0]["execType"] if fc else "?"
        runtime_precision = _runtime_precision(compiled)
        expected = {"int8": ("u8", "i8"), "fp32": ("f32",), "bf16": ("bf16",)}[precision]
        verified = runtime_precision in expected or any(e in exec_type.lower() for e in expected)
        lat: list[float] = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or len(lat) < 3:
            t0 = time.perf_counter()
            request.infer()
            lat.append(time.perf_counter() - t0)
        med = float(np.median(lat))
        # One request cannot keep every core busy on every CPU (a 16-core AMX Xeon reached more in
        # throughput mode than with one sync request), so the ceiling is the better of the two modes.
        streams = _throughput_rate(core, model, config, m, k, seconds, flops)
        result[precision] = {"ops_per_second": max(flops / med, streams["ops_per_second"]),
                             "latency_mode_ops_per_second": flops / med, "throughput_mode": streams,
                             "best_ops_per_second": flops / min(lat),
                             "median_latency_ms": med * 1e3, "iterations": len(lat), "exec_type": exec_type,
                             "runtime_precision": runtime_precision, "verified": bool(verified),
                             "method": method}
    return result


def _throughput_rate(core: Any, model: Any, latency_config: dict[str, Any], m: int, k: int, seconds: float,
                     flops: int) -> dict[str, Any]:
    """The same MatMul with PERFORMANCE_HINT=THROUGHPUT and the plugin's optimal number of requests."""
    import openvino as ov

    config = dict(latency_config, PERFORMANCE_HINT="THROUGHPUT")
    compiled = core.compile_model(model, "CPU", config)
    nireq = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, nireq)
    data = np.random.default_rng(2).standard_normal((m, k)).astype(np.float32)
    for _ in range(nireq):  # warm-up
        queue.start_async({0: data})
    queue.wait_all()
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or count < 2 * nireq:
        queue.start_async({0: data})
        count += 1
    queue.wait_all()
    elapsed = time.perf_counter() - start
    return {"ops_per_second": flops * count / elapsed, "nireq": nireq,
            "streams": str(compiled.get_property("NUM_STREAMS")), "iterations": count}


def _runtime_precision(compiled: Any) -> str:
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and str(info["layerType"].astype(str)) in ("FullyConnected", "MatMul"):
            return str(info["runtimePrecision"].astype(str)) if "runtimePrecision" in info else ""
    return ""


def load_peaks(cache: Path) -> dict[str, Any]:
    file = cache / PEAK_FILE
    try:
        data = json.loads(file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def save_peak(cache: Path, peak: dict[str, Any]) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    data = load_peaks(cache)
    data[peak["key"]] = peak
    file = cache / PEAK_FILE
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, file)
    return file


def cached_peak(cache: Path, threads: int, shape: Sequence[int] = DEFAULT_PEAK_SHAPE) -> dict[str, Any] | None:
    """The cached ceiling for this CPU, OpenVINO and ``threads``: the ``shape`` entry with the longest
    timing; failing that, another shape's, with ``peak["lookup"]`` saying which was used instead."""
    import openvino as ov

    wanted = [int(v) for v in shape]
    candidates: list[dict[str, Any]] = [
        entry for key, entry in load_peaks(cache).items()
        if isinstance(entry, dict) and str(key).endswith(_PEAK_VERSION)
        and entry.get("cpu_model") == cpu_model() and entry.get("openvino") == ov.get_version()
        and entry.get("threads") == threads and isinstance(entry.get("shape"), list)]
    if not candidates:
        return None

    def rank(entry: dict[str, Any]) -> tuple[bool, float, float, str]:
        return (entry["shape"] == wanted, float(entry.get("seconds_per_precision") or 0.0),
                float(entry.get("flops_per_inference") or 0.0), str(entry.get("date", "")))

    chosen: dict[str, Any] = max(candidates, key=rank)
    best = dict(chosen)
    m, k, n = best["shape"]
    timed = f"[{m},{k}]x[{k},{n}] MatMul timed {best.get('seconds_per_precision', '?')} s per precision"
    if best["shape"] == wanted:
        best["lookup"] = f"cached {timed} (the longest run of that shape)"
    else:
        best["lookup"] = (f"no cached ceiling for the [{wanted[0]},{wanted[1]}]x[{wanted[1]},{wanted[2]}] MatMul; "
                          f"using a {timed} instead (pofa-deploy benchmark --peak measures the default)")
    return best


# -- inputs ----------------------------------------------------------------------------------------

_TEXT = ("the film opens on a quiet harbour town where an old fisherman tells his granddaughter a story "
         "about "
         "the storm that changed everything . what follows is a patient , funny and often moving portrait of "
         "a family that learns to talk again ; the acting is natural , the music never pushes too hard , and "
         "the last twenty minutes earn every tear . some scenes run long and a subplot about the harbour "
         "master goes nowhere , but it is the best thing of its kind this year and well worth the ticket .")


def realistic_inputs(names: Sequence[str], dtypes: dict[str, Any], *, batch: int, seq_len: int,
                     folder: Path | None, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """Token ids of real text (tokenised with the folder's tokenizer), full attention mask, zero segment ids.

    Falls back to seeded in-vocabulary ids when transformers or the tokenizer is unavailable. Each row
    of the batch starts at a different word, so rows differ.
    """
    ids = _tokenised(folder, batch, seq_len) if folder is not None else None
    how = "tokenised English text (the folder's tokenizer)"
    if ids is None:
        vocab = _vocab_size(folder) or 30522
        low = 1000 if vocab > 4000 else 5
        ids = np.random.default_rng(seed).integers(low, vocab, size=(batch, seq_len), dtype=np.int64)
        how = f"random in-vocabulary token ids in [{low}, {vocab}) (no tokenizer available)"
    feed = {}
    for name in names:
        dtype = dtypes.get(name, np.int64)
        if name == "input_ids":
            feed[name] = ids.astype(dtype)
        elif name == "attention_mask":
            feed[name] = np.ones((batch, seq_len), dtype=dtype)
        else:  # token_type_ids and other per-token inputs
            feed[name] = np.zeros((batch, seq_len), dtype=dtype)
    return feed, how


def _vocab_size(folder: Path | None) -> int | None:
    try:
        config = json.loads((Path(str(folder)) / "config.json").read_text())
        return int(config["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


_TOKENIZERS: dict[str, Any] = {}


def _tokenised(folder: Path, batch: int, seq_len: int) -> np.ndarray | None:
    try:
        key = str(Path(folder).resolve())
        if key not in _TOKENIZERS:
            from transformers import AutoTokenizer

            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(str(folder))
        tok = _TOKENIZERS[key]
        words = _TEXT.split()
        rows = []
        for r in range(batch):
            shifted = " ".join(words[r % len(words):] + words[: r % len(words)])
            text = " ".join([shifted] * (seq_len // 8 + 2))
            enc = tok(text, truncation=True, max_length=seq_len, padding="max_length")
            rows.append(enc["input_ids"][:seq_len])
        ids = np.asarray(rows, dtype=np.int64)
        if ids.shape != (batch, seq_len):
            return None
        return ids
    except Exception:  # no transformers, no tokenizer files, odd tokenizer: fall back to random ids
        return None


# -- plan: what runs, from which files ----------------------------------------------------------------


@dataclass
class Source:
    """One model a variant runs: an IR (xml) with its config, or the PyTorch checkpoint."""

    variant: Variant
    xml: Path | None = None
    checkpoint: Path | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    sparse_rate: float | None = None
    note: str = ""



def load_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"-load_config {path}: no such file; give a JSON file like "
                         '{"CPU": {"CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE": "0.8"}}')
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"-load_config {path}: not valid JSON ({exc}); fix the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("CPU", {}), dict):
        raise InputError(f"-load_config {path}: expected an object with a \"CPU\" section of properties")
    properties = dict(data.get("CPU", {}))
    check_cpu_properties(properties, f"-load_config {path}")
    return properties


def check_cpu_properties(properties: dict[str, Any], where: str) -> None:
    """Compile a one-op model with ``properties``, so an unknown key or a bad value is one line naming
    it now, not an OpenVINO traceback after minutes of work. A trial compile, because the plugin also
    takes keys its SUPPORTED_PROPERTIES does not list (CACHE_DIR, ENABLE_MMAP, ...)."""
    if not properties:
        return
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 4], ov.Type.f32, name="x")
    core = ov.Core()
    try:
        core.compile_model(ov.Model([ops.result(ops.relu(x))], [x], "check"), "CPU", properties)
    except (RuntimeError, TypeError, ValueError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if not ln.startswith(("Exception from ", "Check '"))),
                      lines[-1] if lines else type(exc).__name__)
        supported = core.get_property("CPU", "SUPPORTED_PROPERTIES")
        unknown = [k for k in properties if k not in supported and k in reason]
        if unknown:
            settable = sorted(k for k, mode in supported.items() if str(mode) != "RO")
            raise InputError(f"{where}: the CPU plugin does not know the property {unknown[0]!r}; remove it "
                             f"(settable: {', '.join(settable)})") from None
        raise InputError(f"{where}: the CPU plugin refuses these properties ({reason[:200]}); "
                         "fix the value") from None


def _max_positions(folder: Path) -> int | None:
    try:
        cfg = json.loads((folder / "config.json").read_text())
        return int(cfg["max_position_embeddings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _checkpoint_key(path: Path, tag: str) -> str:
    h = hashlib.sha1(f"{path.resolve()}|{tag}|{__version__}".encode())
    for f in sorted(path.glob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def _convert_cached(checkpoint: Path, *, int8: bool, cache: Path, seq_len: int, say: Progress) -> Path:
    """Convert ``checkpoint`` into the cache (once); needs torch/optimum/nncf, i.e. pofa-deploy convert."""
    from .convert import ConvertOptions, convert

    tag = "int8" if int8 else "fp32"
    out = cache / "ir" / f"{checkpoint.name}-{tag}-{_checkpoint_key(checkpoint, tag)}"
    if is_ir(out) and (out / REPORT_FILE).is_file():
        return out
    say(f"converting {checkpoint} to an {tag.upper()} IR in {out} (cached for later runs)")
    convert(ConvertOptions(model=str(checkpoint), output=out, int8=int8, samples=8, holdout=4,
                           seq_len=seq_len, overwrite=True))
    return out


@dataclass
class Plan:
    folder: Path | None
    report: dict[str, Any]
    sources: dict[Variant, Source]
    skipped: dict[str, str]
    baseline: Variant | None
    notes: list[str]
    load_config: dict[str, Any]


def plan(options: BenchmarkOptions, *, say: Progress) -> Plan:
    """Check every input before any slow work, then decide what each variant runs (or why it cannot)."""
    notes: list[str] = []
    load_cfg = load_config_file(Path(options.load_config)) if options.load_config else {}
    if options.model is None:
        return Plan(None, {}, {}, {}, None, notes, load_cfg)
    folder = Path(options.model)
    xml = ir_xml(folder)
    if not folder.exists():
        raise InputError(f"MODEL {folder}: no such folder; give the output folder of pofa-deploy convert")
    if not xml.is_file():
        raise InputError(f"MODEL {folder}: no OpenVINO IR here (expected openvino_model.xml); convert a "
                         "checkpoint first with pofa-deploy convert MODEL -o OUT")
    folder = xml.parent
    max_pos = _max_positions(folder)
    for _b, s in options.shapes:
        if max_pos is not None and s > max_pos:
            shown = f"-shape {options.shape}: sequence length" if options.shape else _flag("seq_len")
            raise InputError(f"{shown} {s} exceeds the model's max_position_embeddings ({max_pos}, "
                             f"from {folder / 'config.json'}); choose a sequence length of at most {max_pos}")
    # every path the user gave is checked here, before any conversion or compilation
    if options.fp32_ir is not None and not is_ir(Path(options.fp32_ir)):
        raise InputError(f"{_flag('fp32_ir')} {options.fp32_ir}: no OpenVINO IR there (expected "
                         "openvino_model.xml from pofa-deploy convert without --int8)")
    dense = Path(options.dense).expanduser() if options.dense else None
    if dense is not None and not is_ir(dense) and not (dense / "config.json").is_file():
        raise InputError(f"--dense {dense}: neither a converted folder (openvino_model.xml) nor a checkpoint "
                         "folder (config.json); give one of those")
    report = read_report(folder)
    runtime_cfg = read_runtime_config(folder)
    int8_ir = is_int8_ir(xml, report)
    wanted = list(options.variants) or [v for v in Variant if v is not Variant.INT8_DENSE or options.dense]
    sources: dict[Variant, Source] = {}
    skipped: dict[str, str] = {}
    cache = cache_root(options)
    calib_len = min(128, max_pos or 128)

    source_path = _source_path(report)
    # PyTorch baseline
    if Variant.PYTORCH_FP32 in wanted:
        reason = _torch_missing()
        if reason is None and source_path is None:
            where = report.get("source_path") or f"no source_path in {REPORT_FILE}"
            reason = f"the source checkpoint is not here ({where}); run on the machine that converted it"
        if reason:
            skipped[Variant.PYTORCH_FP32] = reason
        else:
            sources[Variant.PYTORCH_FP32] = Source(Variant.PYTORCH_FP32, checkpoint=source_path)
    # OpenVINO FP32 / BF16 of the same source
    fp_wanted = [v for v in (Variant.OV_FP32, Variant.OV_BF16) if v in wanted]
    if Variant.OV_BF16 in fp_wanted and not bf16_supported():
        skipped[Variant.OV_BF16] = ("this CPU has neither avx512_bf16 nor amx_bf16, so OpenVINO would "
                                    "not run BF16 kernels")
        fp_wanted.remove(Variant.OV_BF16)
    if fp_wanted:
        fp_xml, why = None, ""
        if options.fp32_ir is not None:
            fp_xml = ir_xml(Path(options.fp32_ir))
        elif not int8_ir:
            fp_xml = xml
        elif source_path is None:
            why = ("no FP32 IR: the source checkpoint is not here and no --fp32-ir was given "
                   "(convert it without --int8 and pass --fp32-ir DIR)")
        else:
            try:
                fp_dir = _convert_cached(source_path, int8=False, cache=cache, seq_len=calib_len, say=say)
                fp_xml = ir_xml(fp_dir)
            except (ImportError, PofaError) as exc:
                why = (f"could not convert the source to an FP32 IR ({type(exc).__name__}: {exc}); "
                       "pass --fp32-ir DIR")
        for v in fp_wanted:
            if fp_xml is None:
                skipped[v] = why
                continue
            cfg = {k: val for k, val in read_runtime_config(fp_xml.parent).items() if k != SPARSE_KEY}
            cfg[PRECISION_KEY] = "f32" if v is Variant.OV_FP32 else "bf16"
            sources[v] = Source(v, xml=fp_xml, config=cfg)
    # INT8 pair
    for v8 in (Variant.INT8, Variant.INT8_SPARSE):
        if v8 not in wanted:
            continue
        if not int8_ir:
            skipped[v8] = f"{folder} is an FP32 IR (converted without --int8)"
            continue
        cfg = {k: val for k, val in runtime_cfg.items() if k != SPARSE_KEY}
        rate: float | None = None
        if v8 is Variant.INT8_SPARSE:
            if options.sparse_rate is not None:
                rate = parse_rate(options.sparse_rate)
                if rate is None:
                    skipped[v8] = (f"{_flag('sparse_rate')} {options.sparse_rate:g} is off (the plugin treats "
                                   "1.0 as off), so int8-sparse would be int8")
                    continue
            else:
                # the folder's rate, else the rate convert measured and chose not to write (it was not faster
                # on the converting machine; this one may differ)
                rate = _rate(runtime_cfg) or parse_rate((report.get("sparse_decision") or {}).get("candidate_rate"))
            if rate is None:
                skipped[v8] = (f"no sparse rate: {folder / RUNTIME_CONFIG} sets none and {REPORT_FILE} has no "
                               "candidate (a dense model?); pass --sparse-rate X to try one")
                continue
            cfg[SPARSE_KEY] = str(rate)
        sources[v8] = Source(v8, xml=xml, config=cfg, sparse_rate=rate)
    # dense INT8 of another model
    if Variant.INT8_DENSE in wanted and dense is not None:
        if is_ir(dense):
            dense_folder = ir_xml(dense).parent
        else:
            try:
                dense_folder = _convert_cached(dense, int8=True, cache=cache, seq_len=calib_len, say=say)
            except ImportError as exc:
                raise InputError(f"--dense {dense}: a checkpoint, and converting it needs torch/nncf "
                                 f"({exc}); pass its converted folder instead") from None
        if not is_int8_ir(ir_xml(dense_folder), read_report(dense_folder)):
            raise InputError(f"--dense {dense}: an FP32 IR; convert the dense model with pofa-deploy "
                             "convert --int8 (or pass its checkpoint folder)")
        dense_cfg = read_runtime_config(dense_folder)
        rate = _rate(dense_cfg)
        if rate is not None:
            notes.append(f"--dense {dense}: its runtime_config.json switches sparse decompression on "
                         f"(rate {rate}); it is benchmarked as converted")
        sources[Variant.INT8_DENSE] = Source(Variant.INT8_DENSE, xml=ir_xml(dense_folder), config=dense_cfg,
                                             sparse_rate=rate, note=str(dense))
    order = [v for v in Variant if v in sources]
    sources = {v: sources[v] for v in order}
    if not sources:
        raise InputError("no variant can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    baseline = _choose_baseline(options, sources, skipped, notes)
    return Plan(folder, report, sources, skipped, baseline, notes, load_cfg)


def _choose_baseline(options: BenchmarkOptions, sources: dict[Variant, Source], skipped: dict[str, str],
                     notes: list[str]) -> Variant:
    if options.baseline is not None:
        if options.baseline not in sources:
            why = skipped.get(options.baseline, "not among --variants")
            raise InputError(f"{_flag('baseline')} {options.baseline.value} does not run here ({why}); "
                             f"choose one of {', '.join(v.value for v in sources)}")
        return options.baseline
    for v in BASELINE_ORDER:
        if v in sources:
            if v is not Variant.PYTORCH_FP32:
                why = skipped.get(Variant.PYTORCH_FP32, "not selected")
                notes.append(f"baseline is {v.value}, not pytorch-fp32 ({why})")
            return v
    first = next(iter(sources))
    notes.append(f"baseline is {first.value}: none of the usual baselines runs here")
    return first


def _rate(cfg: dict[str, str]) -> float | None:
    return parse_rate(cfg.get(SPARSE_KEY))


def _source_path(report: dict[str, Any]) -> Path | None:
    for key in ("source_path", "source"):
        value = report.get(key)
        if value and Path(value).is_dir() and (Path(value) / "config.json").is_file():
            return Path(value)
    return None


def _torch_missing() -> str | None:
    import importlib.util

    for pkg in ("torch", "transformers"):
        if importlib.util.find_spec(pkg) is None:
            return f"{pkg} is not installed here (the PyTorch baseline needs torch and transformers)"
    return None


# -- runners ------------------------------------------------------------------------------------------


@dataclass
class RoundResult:
    latencies_ms: list[float]
    ov_latencies_ms: list[float]
    iterations: int
    seconds: float


class OVRunner:
    """One compiled OpenVINO variant at one static shape; sync (one request) or async (a queue)."""

    def __init__(self, core: Any, source: Source, *, batch: int, seq_len: int, api: Api,
                 config: dict[str, Any], nireq: int | None, inputs_folder: Path | None) -> None:
        import openvino as ov

        self.variant = source.variant
        from .ir import read_model

        assert source.xml is not None
        model = read_model(source.xml, core)  # a corrupt .xml/.bin: one line naming the file
        names = [i.get_any_name() for i in model.inputs]
        try:
            model.reshape({name: [batch, seq_len] for name in names})
        except RuntimeError as exc:
            raise InputError(f"{_flag('shape')} [{batch},{seq_len}]: {source.xml} cannot take it "
                             f"({str(exc).splitlines()[0][:160]}); choose another batch/sequence length"
                             ) from None
        self.flops = graph_flops(model)
        dtypes = {i.get_any_name(): i.get_element_type().to_dtype() for i in model.inputs}
        self.feed, self.inputs_how = realistic_inputs(names, dtypes, batch=batch, seq_len=seq_len,
                                                      folder=inputs_folder)
        self.config = config
        self.compiled = core.compile_model(model, "CPU", config)
        self.api = api
        tensors = {name: ov.Tensor(arr) for name, arr in self.feed.items()}
        if api is Api.SYNC:
            self.nireq = 1
            self.request = self.compiled.create_infer_request()
            for name, t in tensors.items():
                self.request.set_tensor(name, t)
        else:
            self.nireq = nireq or int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self.queue = ov.AsyncInferQueue(self.compiled, self.nireq)
            for req in self.queue:
                for name, arr in self.feed.items():
                    req.set_tensor(name, ov.Tensor(arr.copy()))
            self._lat: list[float] = []
            self.queue.set_callback(lambda req, _data: self._lat.append(req.latency))

    @property
    def any_request(self) -> Any:
        return self.request if self.api is Api.SYNC else self.queue[0]

    def first(self) -> float:
        t0 = time.perf_counter()
        self._one()
        return (time.perf_counter() - t0) * 1e3

    def _one(self) -> None:
        if self.api is Api.SYNC:
            self.request.infer()
        else:
            self.queue.start_async()
            self.queue.wait_all()
            self._lat.clear()

    def warm(self, n: int) -> None:
        for _ in range(n):
            self._one()

    def run(self, *, iterations: int | None, seconds: float | None) -> RoundResult:
        if self.api is Api.SYNC:
            return self._run_sync(iterations, seconds)
        return self._run_async(iterations, seconds)

    def _run_sync(self, iterations: int | None, seconds: float | None) -> RoundResult:
        lat: list[float] = []
        ov_lat: list[float] = []
        infer, req, clock = self.request.infer, self.request, time.perf_counter
        start = clock()
        n = 0
        while True:
            t0 = clock()
            infer()
            t1 = clock()
            lat.append((t1 - t0) * 1e3)
            ov_lat.append(req.latency)
            n += 1
            if (n >= iterations) if iterations is not None else (t1 - start >= (seconds or 0.0)):
                break
        return RoundResult(lat, ov_lat, n, clock() - start)

    def _run_async(self, iterations: int | None, seconds: float | None) -> RoundResult:
        self._lat.clear()
        clock = time.perf_counter
        start = clock()
        n = 0
        while True:
            self.queue.start_async()
            n += 1
            if (n >= iterations) if iterations is not None else (clock() - start >= (seconds or 0.0)):
                break
        self.queue.wait_all()
        elapsed = clock() - start
        # requests overlap, so a wall-clock time per call means nothing: latency is OpenVINO's own timer
        return RoundResult(list(self._lat), [], n, elapsed)

    def compiled_properties(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nireq": self.nireq}
        for key in ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", PRECISION_KEY,
                    SPARSE_KEY, "PERF_COUNT"):
            try:
                value = self.compiled.get_property(key)
            except RuntimeError:
                continue
            out[key] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
        return out

    def perf_counts(self) -> dict[str, Any]:
        """PERF_COUNT over PC_ITERATIONS extra inferences, by layer type and kernel, and FC kernels."""
        req = self.any_request
        per_kind: dict[tuple[str, str], dict[str, float]] = {}
        per_node: dict[str, dict[str, Any]] = {}
        for _ in range(PC_ITERATIONS):
            req.infer()
            for p in req.get_profiling_info():
                if p.status != p.Status.EXECUTED:
                    continue
                ms = p.real_time.total_seconds() * 1e3
                node = per_node.setdefault(p.node_name,
                                           {"type": p.node_type, "exec_type": p.exec_type, "ms": 0.0})
                node["ms"] += ms / PC_ITERATIONS
        for node in per_node.values():
            entry = per_kind.setdefault((node["type"], node["exec_type"]), {"nodes": 0, "ms": 0.0})
            entry["nodes"] += 1
            entry["ms"] += node["ms"]
        total = sum(n["ms"] for n in per_node.values()) or 1.0
        by_kind: list[dict[str, Any]] = [
            {"layer_type": t, "exec_type": e, "nodes": int(v["nodes"]), "ms": v["ms"],
             "share": v["ms"] / total} for (t, e), v in per_kind.items()]
        by_kind.sort(key=lambda d: -d["ms"])
        # the profiler names some INT8 FullyConnected nodes "FullyConnectedQuantizedLegacy"
        fc = [n for n in per_node.values() if n["type"].startswith("FullyConnected")]
        fc_kernels: dict[str, int] = {}
        for n in fc:
            fc_kernels[n["exec_type"]] = fc_kernels.get(n["exec_type"], 0) + 1
        top = sorted(({"name": k, **v} for k, v in per_node.items()), key=lambda d: -d["ms"])[:20]
        return {"inferences": PC_ITERATIONS, "total_ms": total, "by_layer_type": by_kind,
                "fully_connected": {"nodes": len(fc),
                                    "sparse": sum("sparse" in n["exec_type"].lower() for n in fc),
                                    "kernels": fc_kernels},
                "top_layers": top}


_OV_THREADS: list[int] = []


def ov_default_threads() -> int:
    """INFERENCE_NUM_THREADS OpenVINO's CPU plugin picks for a latency-hint model when none is set (one per
    physical core it uses), asked from the plugin with a one-op model; physical_cores() without it."""
    if not _OV_THREADS:
        try:
            import openvino as ov
            import openvino.opset13 as ops

            x = ops.parameter([1, 4], ov.Type.f32, name="x")
            compiled = ov.Core().compile_model(ov.Model([ops.result(ops.relu(x))], [x], "threads"), "CPU",
                                               {"PERFORMANCE_HINT": "LATENCY"})
            _OV_THREADS.append(int(compiled.get_property("INFERENCE_NUM_THREADS")) or physical_cores())
        except (ImportError, RuntimeError, ValueError):
            _OV_THREADS.append(physical_cores())
    return _OV_THREADS[0]


class TorchRunner:
    """The source checkpoint in PyTorch FP32 eager mode; async mode runs it one call at a time.

    Threads: ``-nthreads`` when given, else as many as OpenVINO's latency variants use by default (one
    per physical core), not torch's own default, so both frameworks get the same cores."""

    def __init__(self, model: Any, feed: dict[str, np.ndarray], threads: int | None) -> None:
        import inspect

        import torch

        self.variant = Variant.PYTORCH_FP32
        self.torch = torch
        self.threads_from = "-nthreads" if threads else "OpenVINO's default for a latency model (physical cores)"
        torch.set_num_threads(threads or ov_default_threads())
        accepted = set(inspect.signature(model.forward).parameters)
        self.model = model
        self.inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items() if k in accepted}
        self.nireq = 1

    def _one(self) -> None:
        with self.torch.inference_mode():
            self.model(**self.inputs)

    def first(self) -> float:
        t0 = time.perf_counter()
        self._one()
        return (time.perf_counter() - t0) * 1e3

    def warm(self, n: int) -> None:
        for _ in range(n):
            self._one()

    def run(self, *, iterations: int | None, seconds: float | None) -> RoundResult:
        lat: list[float] = []
        clock = time.perf_counter
        model, inputs = self.model, self.inputs
        start = clock()
        n = 0
        with self.torch.inference_mode():
            while True:
                t0 = clock()
                model(**inputs)
                t1 = clock()
                lat.append((t1 - t0) * 1e3)
                n += 1
                if (n >= iterations) if iterations is not None else (t1 - start >= (seconds or 0.0)):
                    break
        return RoundResult(lat, [], n, clock() - start)

    def compiled_properties(self) -> dict[str, Any]:
        return {"torch_num_threads": self.torch.get_num_threads(), "torch_threads_from": self.threads_from,
                "nireq": 1}


def _load_torch_model(checkpoint: Path) -> Any:
    from transformers.utils import logging as hf_logging

    from .checkpoint import load_checkpoint

    hf_logging.disable_progress_bar()  # its bar would garble the progress display
    return load_checkpoint(checkpoint).model.eval()


# -- the benchmark -------------------------------------------------------------------------------


def _ov_config(source: Source, options: BenchmarkOptions, load_cfg: dict[str, Any],
               api: Api) -> dict[str, Any]:
    """Folder config -> -load_config -> command-line knobs -> the variant's own keys (benchmark_app order)."""
    config: dict[str, Any] = {k: v for k, v in source.config.items() if k not in (SPARSE_KEY, PRECISION_KEY)}
    config.update(load_cfg)
    hint = options.hint
    if hint is None:
        if "PERFORMANCE_HINT" not in load_cfg:
            config["PERFORMANCE_HINT"] = "LATENCY" if api is Api.SYNC else "THROUGHPUT"
    elif hint is not Hint.NONE:
        config["PERFORMANCE_HINT"] = hint.value.upper()
    if options.nstreams is not None:
        config["NUM_STREAMS"] = str(options.nstreams)
    if options.nthreads is not None:
        config["INFERENCE_NUM_THREADS"] = str(options.nthreads)
    if options.nireq is not None:
        config["PERFORMANCE_HINT_NUM_REQUESTS"] = str(options.nireq)
    config["PERF_COUNT"] = "YES" if options.pc else "NO"
    # what makes the variant itself wins over everything else
    config.pop(SPARSE_KEY, None)
    if source.sparse_rate is not None:
        config[SPARSE_KEY] = str(source.sparse_rate)
    if PRECISION_KEY in source.config:
        config[PRECISION_KEY] = source.config[PRECISION_KEY]
    return config


def benchmark(options: BenchmarkOptions, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run the benchmark (and/or --peak) and return every figure as one JSON-ready dict."""
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    the_plan = plan(options, say=say)
    cache = cache_root(options)
    env = environment(options)
    result: dict[str, Any] = {"schema": SCHEMA, "environment": env, "definitions": DEFINITIONS}
    peak: dict[str, Any] | None
    if options.peak:
        peak = measure_peak(shape=options.peak_shape, seconds=options.peak_time, threads=options.threads,
                            progress=say)
        peak["cache_file"] = str(save_peak(cache, peak))
    else:
        peak = cached_peak(cache, options.threads)
    result["peak"] = peak
    if the_plan.folder is None:
        result["kind"] = "peak"
        return result
    api = options.resolved_api
    if options.load_config and any(k in the_plan.load_config for k in (SPARSE_KEY, PRECISION_KEY)):
        the_plan.notes.append("-load_config sets sparse rate or inference precision: each variant's own "
                              "setting (what defines it) overrides those keys")
    if peak is None:
        the_plan.notes.append(f"no peak measured for this CPU, OpenVINO and {options.threads} threads: run "
                              "pofa-deploy benchmark --peak once to get each variant's share of the ceiling")
    elif peak.get("shape") != list(DEFAULT_PEAK_SHAPE):
        m, k, n = peak["shape"]
        the_plan.notes.append(peak.get("lookup") or f"% of peak is against a [{m},{k}]x[{k},{n}] MatMul "
                              "measured in this run, not the default --peak-shape ceiling")
    if api is Api.ASYNC and Variant.PYTORCH_FP32 in the_plan.sources:
        the_plan.notes.append("pytorch-fp32 has no request queue: in async mode it runs one call at a time, "
                              "its throughput is batch / latency")
    if not has_amx() and Variant.INT8_SPARSE in the_plan.sources:
        the_plan.notes.append("this CPU has no AMX (amx_int8 absent from /proc/cpuinfo), which OpenVINO's sparse "
                              "INT8 kernels need; each INT8 variant's sparse status says what actually ran")
    variants = [v.value for v in the_plan.sources]
    result.update({
        "kind": "benchmark",
        "model": str(the_plan.folder),
        "report": {k: the_plan.report.get(k) for k in ("source", "source_path", "task", "model_type", "int8",
                                                       "synthetic", "sparse_rate", "seq_len")},
        "options": _options_dict(options),
        "api": api.value,
        "hint": options.hint.value if options.hint else None,
        "baseline": the_plan.baseline.value if the_plan.baseline else None,
        "variants": {v.value: {"description": VARIANT_DESCRIPTIONS[v],
                               "path": str(s.xml or s.checkpoint), "config": dict(s.config),
                               **({"note": s.note} if s.note else {})}
                     for v, s in the_plan.sources.items()},
        "skipped": dict(the_plan.skipped),
        "notes": the_plan.notes,
        "configs": [],
    })
    import openvino as ov

    core = ov.Core()
    torch_model = None
    ir_info_cache: dict[tuple[str, float | None], IREligibility] = {}
    shapes = options.shapes
    rounds = options.rounds if options.niter is None else min(options.rounds, options.niter)
    per_round_s = (options.time or DEFAULT_TIME_S) / rounds if options.niter is None else None
    iter_split = split_budget(options.niter, rounds) if options.niter is not None else None
    for ci, (batch, seq_len) in enumerate(shapes):
        tag = f"[{ci + 1}/{len(shapes)}] batch {batch}, seq {seq_len}, {api.value}"
        say(f"{tag}: compiling {len(variants)} variants")
        runners: dict[str, Any] = {}
        config_entry: dict[str, Any] = {"batch": batch, "seq_len": seq_len, "api": api.value,
                                        "rounds": rounds, "results": {}, "schedule": [], "skipped": {}}
        for v, source in the_plan.sources.items():
            if v is not Variant.PYTORCH_FP32:
                config = _ov_config(source, options, the_plan.load_config, api)
                if needs_probe(config):
                    say(f"{tag}: checking {v.value} in a child process (sparse kernels have crashed OpenVINO)")
                    verdict = probe(source.xml, config, batch=batch, seq_len=seq_len,  # type: ignore[arg-type]
                                    static=True)
                    if not verdict.ok:
                        config_entry["skipped"][v.value] = (f"{verdict.reason}; skipped here, the other "
                                                            "variants ran")
                        continue
            if v is Variant.PYTORCH_FP32:
                if torch_model is None:
                    say(f"{tag}: loading the PyTorch checkpoint {source.checkpoint}")
                    torch_model = _load_torch_model(source.checkpoint)  # type: ignore[arg-type]
                feed = _feed_for_torch(the_plan.folder, batch, seq_len)
                runners[v.value] = TorchRunner(torch_model, feed, options.nthreads)
            else:
                runners[v.value] = OVRunner(core, source, batch=batch, seq_len=seq_len, api=api,
                                            config=_ov_config(source, options, the_plan.load_config, api),
                                            nireq=options.nireq, inputs_folder=the_plan.folder)
        flops_ref = next((r.flops for r in runners.values() if isinstance(r, OVRunner)
                          and r.variant is not Variant.INT8_DENSE), None)
        entries: dict[str, dict[str, Any]] = {}
        for name, runner in runners.items():
            say(f"{tag}: warming up {name}")
            first = runner.first()
            runner.warm(options.warmup)
            entry: dict[str, Any] = {"first_inference_ms": first, "compiled": runner.compiled_properties()}
            if isinstance(runner, OVRunner):
                entry["flops"] = runner.flops
                entry["inputs"] = runner.inputs_how
                source = the_plan.sources[runner.variant]
                if runner.variant in (Variant.INT8, Variant.INT8_SPARSE, Variant.INT8_DENSE):
                    key = (str(source.xml), source.sparse_rate)
                    if key not in ir_info_cache:
                        ir_info_cache[key] = ir_eligibility(core.read_model(str(source.xml)), source.sparse_rate)
                    # the runner compiled a static-shape copy and has just run inferences at it
                    entry["sparse"] = sparse_status(runner.compiled, source.sparse_rate, shape=(batch, seq_len),
                                                    eligibility=ir_info_cache[key]).to_dict()
            else:
                entry["flops"] = flops_ref
            entries[name] = entry
        rounds_data: dict[str, list[RoundResult]] = {name: [] for name in runners}
        t_config = time.perf_counter()
        for r, name in interleave(list(runners), rounds):
            budget = f"{iter_split[r]} iterations" if iter_split else f"{per_round_s:.2f} s"
            say(f"  {tag}: round {r + 1}/{rounds} {name} ({budget}) [{time.perf_counter() - started:.0f} s]")
            config_entry["schedule"].append({"round": r, "variant": name,
                                             "start_s": round(time.perf_counter() - t_config, 4)})
            rounds_data[name].append(runners[name].run(iterations=iter_split[r] if iter_split else None,
                                                       seconds=per_round_s))
            time.sleep(SETTLE_S)
        for name, runner in runners.items():
            if options.pc and isinstance(runner, OVRunner):
                entries[name]["perf_counts"] = runner.perf_counts()
        for name, data in rounds_data.items():
            entries[name].update(_variant_figures(data, batch, options.latency_percentile))
        _add_ratios(entries, the_plan.baseline.value if the_plan.baseline else None, rounds_data, api)
        _add_peak_shares(entries, peak)
        config_entry["results"] = entries
        for name, why in config_entry["skipped"].items():
            the_plan.notes.append(f"{name} at batch {batch}, seq {seq_len}: {why}")
        result["configs"].append(config_entry)
        del runners
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _feed_for_torch(folder: Path | None, batch: int, seq_len: int) -> dict[str, np.ndarray]:
    """The same token ids as the OpenVINO variants get (same tokenizer, text and seed)."""
    names = ["input_ids", "attention_mask", "token_type_ids"]
    feed, _how = realistic_inputs(names, dict.fromkeys(names, np.int64), batch=batch, seq_len=seq_len,
                                  folder=folder)
    return feed


def _variant_figures(data: list[RoundResult], batch: int, extra_percentile: int) -> dict[str, Any]:
    lat = [x for r in data for x in r.latencies_ms]
    ov_lat = [x for r in data for x in r.ov_latencies_ms]
    iters = sum(r.iterations for r in data)
    secs = sum(r.seconds for r in data)
    out: dict[str, Any] = {
        "iterations": iters,
        "seconds": secs,
        "throughput": batch * iters / secs,
        "inferences_per_second": iters / secs,
        "latency_ms": latency_stats(lat, extra_percentile),
        "rounds_detail": [{"round": i, "iterations": r.iterations, "seconds": r.seconds,
                           "median_ms": percentile(r.latencies_ms, 50),
                           "throughput": batch * r.iterations / r.seconds} for i, r in enumerate(data)],
    }
    if ov_lat:
        out["ov_latency_ms"] = latency_stats(ov_lat, extra_percentile)
    # 0th..100th percentile: enough to draw the distribution without storing every sample
    out["latency_quantiles_ms"] = quantiles(lat, range(101))
    return out


def _add_ratios(entries: dict[str, dict[str, Any]], baseline: str | None,
                rounds_data: dict[str, list[RoundResult]], api: Api) -> None:
    if baseline is None or baseline not in entries:
        return
    base = entries[baseline]
    for name, entry in entries.items():
        if api is Api.SYNC:
            per = round_ratios([r["median_ms"] for r in base["rounds_detail"]],
                               [r["median_ms"] for r in entry["rounds_detail"]], higher_is_better=False)
            overall = base["latency_ms"]["median"] / entry["latency_ms"]["median"]
        else:
            per = round_ratios([r["throughput"] for r in base["rounds_detail"]],
                               [r["throughput"] for r in entry["rounds_detail"]], higher_is_better=True)
            overall = entry["throughput"] / base["throughput"]
        speed = {"baseline": baseline, "overall": overall, "per_round": per, **spread(per)}
        if api is Api.SYNC and name != baseline:
            lo, hi = bootstrap_ratio_ci([x for r in rounds_data[baseline] for x in r.latencies_ms],
                                        [x for r in rounds_data[name] for x in r.latencies_ms])
            speed["ci95"] = [lo, hi]
        entry["speedup"] = speed


def _add_peak_shares(entries: dict[str, dict[str, Any]], peak: dict[str, Any] | None) -> None:
    for name, entry in entries.items():
        flops = entry.get("flops")
        if not flops:
            continue
        ops = flops["total"] * entry["inferences_per_second"]
        entry["ops_per_second"] = ops
        precision = PEAK_PRECISION[Variant(name)]
        ceiling = (peak or {}).get(precision) or {}
        if ceiling.get("ops_per_second"):
            entry["peak_share"] = ops / ceiling["ops_per_second"]
            entry["peak_precision"] = precision
            entry["peak_ops_per_second"] = ceiling["ops_per_second"]


def _options_dict(options: BenchmarkOptions) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if isinstance(value, tuple):
            value = [str(v) if isinstance(v, StrEnum) else v for v in value]
        elif isinstance(value, (Path, StrEnum)):
            value = str(value)
        out[f.name] = value
    return out


# -- CLI ------------------------------------------------------------------------------------------


def progress_printer(*, quiet: bool = False, stream: Any = None) -> Progress:
    """Progress on stderr: phase lines; detail lines (indented) overwrite each other on a terminal."""
    stream = stream or sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    start = time.perf_counter()
    state = {"transient": False}

    def say(message: str) -> None:
        if quiet:
            return
        stamp = f"[{time.perf_counter() - start:6.1f}s]"
        if message.startswith("  ") and tty:
            stream.write(f"\r\x1b[K{stamp} {message.strip()}")
            state["transient"] = True
        else:
            if state["transient"]:
                stream.write("\r\x1b[K")
                state["transient"] = False
            stream.write(f"{stamp} {message.strip()}\n")
        stream.flush()

    return say


def default_output_dir(options: BenchmarkOptions) -> Path:
    if options.output_dir is not None:
        return Path(options.output_dir)
    assert options.model is not None
    folder = ir_xml(Path(options.model)).parent
    return folder / "benchmark"


def main(options: BenchmarkOptions) -> int:
    from . import report
    from .outputs import check_writable

    say = progress_printer(quiet=options.quiet)
    if options.model is not None:  # before the slow part: a user's folder is never written into
        check_writable(default_output_dir(options), overwrite=True, kind=report.JSON_NAME, flag="--output-dir")
    result = benchmark(options, progress=say)
    say("done")
    if result["kind"] == "peak":
        text = report.peak_summary(result["peak"])
        if options.json_stats:
            print(json.dumps(result, indent=2))
            print(text, file=sys.stderr)
        else:
            print(text)
        return 0
    out_dir = default_output_dir(options)
    files = report.write_all(result, out_dir, plots=not options.no_plots)
    table = report.format_table(result)
    if options.json_stats:
        print(json.dumps(result, indent=2))
        print(table, file=sys.stderr)
    else:
        print(table)
    shown = ", ".join(p.name for p in files.values())
    print(f"wrote {shown} to {out_dir}", file=sys.stderr)
    return 0
