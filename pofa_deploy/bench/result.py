"""The typed result of a benchmark run, and its JSON form (benchmark.json, schema ``SCHEMA``).

``BenchmarkResult`` holds one ``ConfigResult`` per (batch, seq_len), each with one ``VariantResult`` per
variant that ran. ``to_dict()`` is exactly what benchmark.json holds; ``from_dict()`` reads such a file
back, so report.py, tradeoff.py and the scripts in benchmarks/ read attributes, never key strings. The
parts that are records of their own stay dicts: the environment (environment.record), the peak (peak.json
entry), compiled properties, the sparse status (runtime.SparseStatus.to_dict), perf counters and options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .flops import Flops
from .options import Variant
from .stats import BOOTSTRAP_MAX_SAMPLES, BOOTSTRAP_REPS

SCHEMA = "pofa-deploy-benchmark/1"

# Which measured ceiling each variant's achieved ops/s is compared with.
PEAK_PRECISION: dict[Variant, str] = {
    Variant.PYTORCH_FP32: "fp32", Variant.OV_FP32: "fp32", Variant.OV_BF16: "bf16",
    Variant.INT8: "int8", Variant.INT8_SPARSE: "int8", Variant.INT8_POFA_SPARSE: "int8", Variant.INT8_DENSE: "int8",
    Variant.ORT_FP32: "fp32", Variant.ORT_INT8: "int8",
}

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
        "variant's precision: INT8 for int8 and ort-int8, FP32 for pytorch-fp32, ov-fp32 and ort-fp32, BF16 "
        "for ov-bf16",
    "first_inference_ms":
        "wall-clock time of the first inference call after the variant was built (before any warm-up)",
    "compile_s":
        "seconds to build the variant at this shape in this process: OpenVINO read_model + reshape + "
        "compile_model + infer-request creation; ort-*: creating the ONNX Runtime session (the ONNX export and "
        "quantisation are cached beforehand and not counted); pytorch-fp32: loading the checkpoint (at the "
        "first shape only) and setting up its inputs. Not counted: a crash probe in a child process, tokenising "
        "the inputs and loading OpenVINO's CPU plugin (done once before the first variant)",
    "peak_rss_mb":
        "this process's peak resident set size (getrusage ru_maxrss, MiB) right after this variant was built "
        "and warmed up; process-wide and never decreasing, so it includes every variant built before it",
    "rss_increase_mb":
        "how much building this variant and running its first inference and warm-up raised the process's "
        "peak RSS (MiB): roughly the memory the variant holds on top of what was resident before; 0 when "
        "it fit under an earlier peak (memory freed by something else), so it is a lower bound that depends "
        "on build order",
}


@dataclass(kw_only=True)
class LatencyStats:
    """min / median / mean / p90 / p99 / max / std of latencies in ms, and the -latency_percentile one."""

    count: int
    min: float
    median: float
    mean: float
    p90: float
    p99: float
    max: float
    std: float
    extra_percentile: int = 50
    extra: float | None = None

    def at(self, p: int) -> float | None:
        """The p-th percentile if it was recorded (50, 90, 99 and the extra one), else None."""
        if p == self.extra_percentile and self.extra is not None:
            return self.extra
        return {50: self.median, 90: self.p90, 99: self.p99}.get(p)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "min": self.min, "median": self.median, "mean": self.mean,
                               "p90": self.p90, "p99": self.p99, "max": self.max, "std": self.std}
        if self.extra is not None:
            out[f"p{self.extra_percentile}"] = self.extra
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyStats:
        extras = [k for k in data if re.fullmatch(r"p\d+", k) and k not in ("p90", "p99")]
        key = extras[0] if extras else "p90"
        return cls(count=int(data["count"]), min=data["min"], median=data["median"], mean=data["mean"],
                   p90=data["p90"], p99=data["p99"], max=data["max"], std=data["std"],
                   extra_percentile=int(key[1:]), extra=data.get(key))


@dataclass(kw_only=True)
class Speedup:
    """A variant's speed-up over the baseline: per round, their spread, overall and (sync) a bootstrap CI."""

    baseline: str
    overall: float
    per_round: list[float]
    median: float
    q1: float
    q3: float
    min: float
    max: float
    rounds: int
    ci95: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"baseline": self.baseline, "overall": self.overall, "per_round": list(self.per_round),
                               "median": self.median, "q1": self.q1, "q3": self.q3, "min": self.min,
                               "max": self.max, "rounds": self.rounds}
        if self.ci95 is not None:
            out["ci95"] = list(self.ci95)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Speedup:
        ci = data.get("ci95")
        return cls(baseline=data["baseline"], overall=data["overall"], per_round=list(data["per_round"]),
                   median=data["median"], q1=data["q1"], q3=data["q3"], min=data["min"], max=data["max"],
                   rounds=int(data["rounds"]), ci95=(ci[0], ci[1]) if ci else None)


@dataclass(kw_only=True)
class RoundDetail:
    """One round of one variant."""

    round: int
    iterations: int
    seconds: float
    median_ms: float
    throughput: float

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "iterations": self.iterations, "seconds": self.seconds,
                "median_ms": self.median_ms, "throughput": self.throughput}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundDetail:
        return cls(round=int(data["round"]), iterations=int(data["iterations"]), seconds=data["seconds"],
                   median_ms=data["median_ms"], throughput=data["throughput"])


@dataclass(kw_only=True)
class ScheduleEntry:
    """When a variant's round started, in seconds from the configuration's first round."""

    round: int
    variant: str
    start_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "variant": self.variant, "start_s": self.start_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduleEntry:
        return cls(round=int(data["round"]), variant=data["variant"], start_s=data["start_s"])


@dataclass(kw_only=True)
class VariantResult:
    """Every figure of one variant at one (batch, seq_len)."""

    first_inference_ms: float
    compiled: dict[str, Any]
    flops: Flops | None
    iterations: int
    seconds: float
    throughput: float
    inferences_per_second: float
    latency_ms: LatencyStats
    rounds_detail: list[RoundDetail]
    latency_quantiles_ms: list[float]  # 0th..100th percentile: the distribution without every sample
    inputs: str | None = None  # how the OpenVINO variants' inputs were made
    sparse: dict[str, Any] | None = None  # runtime.SparseStatus.to_dict() of the INT8 variants
    perf_counts: dict[str, Any] | None = None  # -pc
    ov_latency_ms: LatencyStats | None = None  # OpenVINO's own per-request timer (sync OpenVINO variants)
    speedup: Speedup | None = None
    ops_per_second: float | None = None
    peak_share: float | None = None
    peak_precision: str | None = None
    peak_ops_per_second: float | None = None
    compile_s: float | None = None  # building the runner (see DEFINITIONS["compile_s"])
    peak_rss_mb: float | None = None  # the process's peak RSS once this variant was built and warmed up
    rss_increase_mb: float | None = None  # how much building and warming up this variant raised it

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"first_inference_ms": self.first_inference_ms, "compiled": self.compiled,
                               "flops": self.flops.to_dict() if self.flops else None}
        for key in ("inputs", "sparse", "perf_counts"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update({"iterations": self.iterations, "seconds": self.seconds, "throughput": self.throughput,
                    "inferences_per_second": self.inferences_per_second, "latency_ms": self.latency_ms.to_dict(),
                    "rounds_detail": [r.to_dict() for r in self.rounds_detail]})
        if self.ov_latency_ms is not None:
            out["ov_latency_ms"] = self.ov_latency_ms.to_dict()
        out["latency_quantiles_ms"] = list(self.latency_quantiles_ms)
        if self.speedup is not None:
            out["speedup"] = self.speedup.to_dict()
        if self.ops_per_second is not None:
            out["ops_per_second"] = self.ops_per_second
        if self.peak_share is not None:
            out.update(peak_share=self.peak_share, peak_precision=self.peak_precision,
                       peak_ops_per_second=self.peak_ops_per_second)
        for key in ("compile_s", "peak_rss_mb", "rss_increase_mb"):  # added within schema 1: last
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantResult:
        ov_lat, speed, flops = data.get("ov_latency_ms"), data.get("speedup"), data.get("flops")
        return cls(first_inference_ms=data["first_inference_ms"], compiled=data["compiled"],
                   flops=Flops.from_dict(flops) if flops else None, iterations=int(data["iterations"]),
                   seconds=data["seconds"], throughput=data["throughput"],
                   inferences_per_second=data["inferences_per_second"],
                   latency_ms=LatencyStats.from_dict(data["latency_ms"]),
                   rounds_detail=[RoundDetail.from_dict(r) for r in data["rounds_detail"]],
                   latency_quantiles_ms=list(data["latency_quantiles_ms"]), inputs=data.get("inputs"),
                   sparse=data.get("sparse"), perf_counts=data.get("perf_counts"),
                   ov_latency_ms=LatencyStats.from_dict(ov_lat) if ov_lat else None,
                   speedup=Speedup.from_dict(speed) if speed else None, ops_per_second=data.get("ops_per_second"),
                   peak_share=data.get("peak_share"), peak_precision=data.get("peak_precision"),
                   peak_ops_per_second=data.get("peak_ops_per_second"), compile_s=data.get("compile_s"),
                   peak_rss_mb=data.get("peak_rss_mb"), rss_increase_mb=data.get("rss_increase_mb"))


@dataclass(kw_only=True)
class ConfigResult:
    """One (batch, seq_len): its variants' results in run order, the round schedule and per-shape skips."""

    batch: int
    seq_len: int
    api: str
    rounds: int
    results: dict[str, VariantResult] = field(default_factory=dict)
    schedule: list[ScheduleEntry] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "seq_len": self.seq_len, "api": self.api, "rounds": self.rounds,
                "results": {k: v.to_dict() for k, v in self.results.items()},
                "schedule": [s.to_dict() for s in self.schedule], "skipped": dict(self.skipped)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfigResult:
        return cls(batch=int(data["batch"]), seq_len=int(data["seq_len"]), api=data["api"],
                   rounds=int(data["rounds"]),
                   results={k: VariantResult.from_dict(v) for k, v in data["results"].items()},
                   schedule=[ScheduleEntry.from_dict(s) for s in data["schedule"]], skipped=dict(data["skipped"]))


@dataclass(kw_only=True)
class VariantInfo:
    """What a variant ran: its description, model path, compile properties from the folder, a note."""

    description: str
    path: str
    config: dict[str, Any]
    note: str = ""
    tuned: bool = False  # what tune_report.json chose (and pofa_deploy.load runs)

    def to_dict(self) -> dict[str, Any]:
        out = {"description": self.description, "path": self.path, "config": dict(self.config)}
        return out | ({"note": self.note} if self.note else {}) | ({"tuned": True} if self.tuned else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantInfo:
        return cls(description=data["description"], path=data["path"], config=dict(data["config"]),
                   note=data.get("note", ""), tuned=bool(data.get("tuned", False)))


@dataclass(kw_only=True)
class BenchmarkResult:
    """A whole run. ``kind`` is "peak" for ``--peak`` alone (then only the peak is filled in)."""

    kind: Literal["peak", "benchmark"]
    environment: dict[str, Any]
    peak: dict[str, Any] | None = None
    definitions: dict[str, str] = field(default_factory=lambda: dict(DEFINITIONS))
    schema: str = SCHEMA
    model: str | None = None
    report: dict[str, Any] = field(default_factory=dict)  # the converted folder's pofa_report.json, in part
    options: dict[str, Any] = field(default_factory=dict)  # BenchmarkOptions as given, JSON-ready
    api: str | None = None
    hint: str | None = None
    baseline: str | None = None
    variants: dict[str, VariantInfo] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    configs: list[ConfigResult] = field(default_factory=list)
    seconds: float | None = None
    name: str | None = None  # a label benchmarks/run_matrix.py gives each run
    files: dict[str, str] | None = None  # set by report.write_all

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": self.schema, "environment": self.environment,
                               "definitions": self.definitions, "peak": self.peak, "kind": self.kind}
        if self.kind == "peak":
            return out
        out.update({"model": self.model, "report": self.report, "options": self.options, "api": self.api,
                    "hint": self.hint, "baseline": self.baseline,
                    "variants": {k: v.to_dict() for k, v in self.variants.items()}, "skipped": dict(self.skipped),
                    "notes": list(self.notes), "configs": [c.to_dict() for c in self.configs],
                    "seconds": self.seconds})
        if self.name is not None:
            out["name"] = self.name
        if self.files is not None:
            out["files"] = dict(self.files)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkResult:
        """Read a benchmark.json (or one run of a matrix file) back; other keys are ignored."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} result (schema {data.get('schema')!r})")
        return cls(kind=data["kind"], environment=data["environment"], peak=data.get("peak"),
                   definitions=data.get("definitions", {}), model=data.get("model"), report=data.get("report") or {},
                   options=data.get("options") or {}, api=data.get("api"), hint=data.get("hint"),
                   baseline=data.get("baseline"),
                   variants={k: VariantInfo.from_dict(v) for k, v in (data.get("variants") or {}).items()},
                   skipped=dict(data.get("skipped") or {}), notes=list(data.get("notes") or []),
                   configs=[ConfigResult.from_dict(c) for c in data.get("configs") or []],
                   seconds=data.get("seconds"), name=data.get("name"), files=data.get("files"))
