"""Accuracy versus speed: measure each model variant, tabulate, and draw the Pareto plot.

A "model set" is one trained checkpoint plus its OpenVINO FP32 and INT8 folders. For each set this
module scores all three on the task's dev split (evaluate.py) and times them in one interleaved
benchmark run (pofa_deploy.bench): latency at batch 1 (sync) and throughput at a larger batch (async).
The notebook and benchmarks/reference/collect.py both call ``measure`` and ``plot``, so no logic
lives only in a notebook.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# runtime label -> benchmark variant name
RUNTIMES = {"PyTorch FP32": "pytorch-fp32", "OpenVINO FP32": "ov-fp32", "OpenVINO INT8": "int8"}


@dataclass(frozen=True)
class ModelSet:
    name: str  # e.g. "dense" or "sparse 90%"
    checkpoint: Path
    ov_fp32: Path
    ov_int8: Path


@dataclass
class Point:
    model: str
    runtime: str
    sparsity: float
    accuracy: float
    latency_ms: float  # median, batch 1, sync
    latency_iqr_ms: tuple[float, float]
    throughput: float  # samples/s, async at the throughput batch
    speedup_vs_pytorch: float  # median of the per-round latency ratios (PyTorch FP32 / this)
    speedup_iqr: tuple[float, float]  # their interquartile range: the spread machine noise caused

    @property
    def label(self) -> str:
        return f"{self.model} / {self.runtime}"


def _encoder_sparsity(folder: Path) -> float:
    from .inspect import inspect_path
    from .sparsity import is_encoder_linear

    layers = [r for r in inspect_path(folder)["layers"] if is_encoder_linear(r["name"])]
    zeros = sum(r["zeros"] for r in layers)
    size = sum(r["size"] for r in layers)
    return zeros / size if size else 0.0


def measure(sets: list[ModelSet], *, task: str, data: str, seq_len: int = 128, throughput_batch: int = 8,
            seconds: float = 10.0, rounds: int = 5, limit: int | None = None) -> list[Point]:
    from .bench import Api, BenchmarkOptions, Variant
    from .bench.run import benchmark
    from .calibration import Recipe
    from .evaluate import EvaluateOptions, evaluate

    points = []
    for s in sets:
        folders = {"PyTorch FP32": s.checkpoint, "OpenVINO FP32": s.ov_fp32, "OpenVINO INT8": s.ov_int8}
        accuracy = {}
        for runtime, folder in folders.items():
            options = EvaluateOptions(model=str(folder), task=Recipe(task), data=data, seq_len=seq_len, limit=limit)
            result = evaluate(options, progress=False)
            accuracy[runtime] = float(result["model"]["metrics"]["accuracy"])
        variants = tuple(Variant(v) for v in RUNTIMES.values())
        common: dict[str, Any] = {"model": s.ov_int8, "variants": variants, "fp32_ir": s.ov_fp32, "seq_len": (seq_len,),
                  "time": seconds, "rounds": rounds, "no_plots": True, "quiet": True}
        sync = benchmark(BenchmarkOptions(**common, batch=(1,), api=Api.SYNC))
        thr = benchmark(BenchmarkOptions(**common, batch=(throughput_batch,), api=Api.ASYNC))
        sparsity = _encoder_sparsity(s.checkpoint)
        for runtime, variant in RUNTIMES.items():
            lat = sync.configs[0].results[variant]
            ratio = lat.speedup
            assert ratio is not None  # pytorch-fp32 ran: it is the baseline
            quartiles = lat.latency_quantiles_ms
            points.append(Point(
                model=s.name, runtime=runtime, sparsity=sparsity, accuracy=accuracy[runtime],
                latency_ms=float(lat.latency_ms.median),
                latency_iqr_ms=(float(quartiles[25]), float(quartiles[75])),
                throughput=float(thr.configs[0].results[variant].throughput),
                speedup_vs_pytorch=float(ratio.median),
                speedup_iqr=(float(ratio.q1), float(ratio.q3)),
            ))
    return points


def pareto_front(points: list[Point]) -> list[Point]:
    """Points no other point beats on both accuracy and throughput, by throughput."""
    front = [p for p in points
             if not any(q.accuracy >= p.accuracy and q.throughput >= p.throughput
                        and (q.accuracy, q.throughput) != (p.accuracy, p.throughput) for q in points)]
    return sorted(front, key=lambda p: p.throughput)


def table(points: list[Point]) -> str:
    from .tables import format_table

    rows = [[p.model, p.runtime, f"{100 * p.sparsity:.0f}%", f"{p.accuracy:.2f}", f"{p.latency_ms:.2f}",
             f"{p.speedup_vs_pytorch:.2f}x [{p.speedup_iqr[0]:.2f}-{p.speedup_iqr[1]:.2f}]", f"{p.throughput:.1f}"]
            for p in points]
    return format_table(["model", "runtime", "zeros", "SST-2 acc %", "latency ms (b1)", "vs PyTorch [IQR]",
                         "throughput /s"], rows, right=(2, 3, 4, 5, 6))


def plot(points: list[Point], path: Path, *, title: str = "Accuracy versus throughput") -> Path:
    """Scatter of accuracy against throughput, Pareto front joined, each point labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    markers = {"PyTorch FP32": "o", "OpenVINO FP32": "s", "OpenVINO INT8": "D"}
    models = sorted({p.model for p in points})
    colours = dict(zip(models, ["tab:blue", "tab:red", "tab:green", "tab:purple"], strict=False))
    for p in points:
        ax.scatter(p.throughput, p.accuracy, marker=markers.get(p.runtime, "o"), color=colours[p.model], s=60,
                   label=p.label)
    front = pareto_front(points)
    ax.plot([p.throughput for p in front], [p.accuracy for p in front], "k--", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("throughput, samples/s (log scale)")
    ax.set_ylabel("accuracy, %")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def to_json(points: list[Point]) -> list[dict[str, Any]]:
    return [dict(asdict(p), latency_iqr_ms=list(p.latency_iqr_ms), speedup_iqr=list(p.speedup_iqr)) for p in points]


def from_json(rows: list[dict[str, Any]]) -> list[Point]:
    return [Point(**dict(r, latency_iqr_ms=tuple(r["latency_iqr_ms"]), speedup_iqr=tuple(r["speedup_iqr"])))
            for r in rows]
