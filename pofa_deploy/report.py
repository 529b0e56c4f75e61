"""Presentation only: turn benchmark results into a terminal table, JSON, CSV, Markdown and PNG plots.

Nothing here measures or decides anything; every figure comes from the ``BenchmarkResult`` that
``bench.run.benchmark`` returns (and ``benchmarks/run_matrix.py`` collects), read by attribute.
matplotlib (Agg backend) is imported only when plots are written, and a machine without it simply gets
no PNGs (the JSON says so).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .tables import format_table as text_table

if TYPE_CHECKING:
    from .bench.result import BenchmarkResult, ConfigResult, Speedup, VariantResult

JSON_NAME = "benchmark.json"
CSV_NAME = "benchmark.csv"
MD_NAME = "benchmark.md"
PLOT_NAMES = {"latency": "latency.png", "throughput": "throughput.png", "speedup": "speedup_vs_seq.png"}

CSV_COLUMNS = [
    "model", "batch", "seq_len", "api", "variant", "baseline", "iterations", "seconds", "throughput",
    "latency_min_ms", "latency_median_ms", "latency_mean_ms", "latency_p90_ms", "latency_p99_ms",
    "latency_max_ms", "latency_pN", "latency_pN_ms", "ov_latency_median_ms", "first_inference_ms",
    "compile_s", "peak_rss_mb", "rss_increase_mb",
    "speedup_overall", "speedup_median", "speedup_q1", "speedup_q3", "speedup_min", "speedup_max",
    "speedup_ci95_lo", "speedup_ci95_hi", "ops_per_second", "peak_share", "peak_precision",
    "precision", "nstreams", "nthreads", "nireq", "amx", "sparse_rate", "sparse_nodes", "fully_connected",
    "eligible_weights", "eligible_meeting_rate", "sparse_effect",
]


# -- number formatting ----------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ops(value: float | None) -> str:
    """Operations per second with an SI prefix (GOP/s, TOP/s)."""
    if not value:
        return "-"
    for scale, unit in ((1e12, "TOP/s"), (1e9, "GOP/s"), (1e6, "MOP/s")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} OP/s"


def fmt_share(share: float | None) -> str:
    if share is None:
        return "-"
    return "<1%" if share < 0.01 else f"{share:.0%}"


def fmt_ratio(speed: Speedup | None, *, baseline: str, name: str) -> str:
    if not speed:
        return "-"
    if name == baseline:
        return "1 (baseline)"
    return f"{speed.median:.2f}x [{speed.q1:.2f}-{speed.q3:.2f}]"


# -- benchmark: terminal --------------------------------------------------------------------------


def _sparse_cell(entry: VariantResult) -> str:
    sp = entry.sparse
    if not sp:
        return ""
    cell = f"{sp['sparse_nodes']}/{sp['fully_connected']}"
    if sp["requested_rate"] is None:
        return cell + " (off)"
    return cell + ("" if sp["amx"] else " (no AMX)")


def _config_rows(result: BenchmarkResult, cfg: ConfigResult) -> tuple[list[str], list[list[str]]]:
    pct = result.options.get("latency_percentile", 50)
    sync = result.api == "sync"
    header = ["variant", "median ms", "p90 ms", "p99 ms"]
    if pct not in (50, 90, 99):
        header.append(f"p{pct} ms")
    header += ["samples/s", "speed-up [IQR]", "ops/s", "% peak", "sparse FC"]
    rows = []
    for name, e in cfg.results.items():
        lat = e.latency_ms
        row = [name, fmt_ms(lat.median), fmt_ms(lat.p90), fmt_ms(lat.p99)]
        if pct not in (50, 90, 99):
            row.append(fmt_ms(lat.at(pct)))
        row += [fmt_rate(e.throughput), fmt_ratio(e.speedup, baseline=result.baseline or "", name=name),
                fmt_ops(e.ops_per_second), fmt_share(e.peak_share), _sparse_cell(e)]
        rows.append(row)
    if not sync:
        header = [h.replace(" ms", " ms*") for h in header]
    return header, rows


def _cost_rows(cfg: ConfigResult) -> tuple[list[str], list[list[str]]]:
    """Per variant: seconds to build it, its first inference, the process's peak RSS and its rise."""
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    header = ["variant", "compile s", "first inference ms", "peak RSS MiB", "+RSS MiB"]
    rows = [[name, num(e.compile_s, ".2f"), fmt_ms(e.first_inference_ms), num(e.peak_rss_mb, ".0f"),
             num(e.rss_increase_mb, ".0f")] for name, e in cfg.results.items()]
    return header, rows


def format_table(result: BenchmarkResult) -> str:
    """The human summary: one table per (batch, seq_len), then sparse status, skips and notes."""
    env = result.environment
    opts = result.options
    out = io.StringIO()
    rounds = result.configs[0].rounds if result.configs else 0
    budget = (f"{opts['niter']} iterations" if opts.get("niter") else f"{(opts.get('time') or 10.0):g} s")
    budget += f" per variant in {rounds} interleaved rounds"
    out.write(f"pofa-deploy benchmark {result.model}\n")
    out.write(f"  {result.api} API, hint {result.hint or 'default'}, {budget}\n")
    out.write(f"  CPU {env['cpu_model']}: {env['threads_used']} threads of {env['cores_available']} cores, "
              f"AMX {'yes' if env['amx'] else 'no'}, BF16 {'yes' if env['bf16'] else 'no'}"
              f"{', virtual machine' if env.get('hypervisor') else ''}; "
              f"OpenVINO {env['versions'].get('openvino')}\n")
    synthetic = result.report.get("synthetic")
    if synthetic:
        out.write(f"  synthetic {synthetic.get('arch', '')} model ({synthetic.get('sparsity', '?')} sparse): "
                  "speed figures only\n")
    out.write(f"  speed-up = vs {result.baseline}: median of per-round ratios [interquartile range]\n")
    for cfg in result.configs:
        out.write(f"\nbatch {cfg.batch}, seq_len {cfg.seq_len}\n")
        header, rows = _config_rows(result, cfg)
        out.write(text_table(header, rows, right=range(1, len(header) - 1)) + "\n")
        if result.api != "sync":
            out.write("  * async: per-request latency from OpenVINO's timer; requests overlap\n")
        if any(e.compile_s is not None for e in cfg.results.values()):
            header, rows = _cost_rows(cfg)
            out.write("  build and memory (peak RSS is process-wide; +RSS = how much this variant raised it):\n")
            out.write("".join(f"    {ln}\n" for ln in text_table(header, rows, right=range(1, 5)).splitlines()))
        if cfg.results and opts.get("pc"):
            out.write(_perf_counts_text(cfg))
    status_lines = sparse_lines(result)
    if status_lines:
        out.write("\nsparse kernels (read from the runtime graph after warm-up):\n")
        out.write("".join(f"  {line}\n" for line in status_lines))
    if result.skipped:
        out.write("\nskipped:\n")
        out.write("".join(f"  {k}: {v}\n" for k, v in result.skipped.items()))
    if result.notes:
        out.write("\nnotes:\n")
        out.write("".join(f"  {n}\n" for n in result.notes))
    peak = result.peak
    if peak:
        out.write(f"\npeak (cached {peak.get('date', '')}): " + peak_line(peak) + "\n")
    return out.getvalue().rstrip() + "\n"


def sparse_lines(result: BenchmarkResult) -> list[str]:
    """One line per INT8 variant; a shape-specific line only where the status differs between shapes."""
    lines: list[str] = []
    seen: dict[str, str] = {}
    for cfg in result.configs:
        for name, e in cfg.results.items():
            sp = e.sparse
            if not sp:
                continue
            if name not in seen:
                seen[name] = sp["summary"]
                lines.append(f"{name}: {sp['summary']}")
            elif seen[name] != sp["summary"]:
                lines.append(f"{name} at batch {cfg.batch}, seq {cfg.seq_len}: {sp['summary']}")
    return lines


def _perf_counts_text(cfg: ConfigResult) -> str:
    out = io.StringIO()
    for name, e in cfg.results.items():
        pc = e.perf_counts
        if not pc:
            continue
        fc = pc["fully_connected"]
        kernels = ", ".join(f"{k} x{n}" for k, n in fc["kernels"].items())
        out.write(f"  -pc {name}: {pc['total_ms']:.3f} ms per inference; FullyConnected "
                  f"{fc['sparse']}/{fc['nodes']} sparse ({kernels})\n")
        rows = [[d["layer_type"], d["exec_type"], str(d["nodes"]), f"{d['ms']:.3f}", f"{d['share']:.0%}"]
                for d in pc["by_layer_type"][:8]]
        table = text_table(["layer type", "kernel", "nodes", "ms", "share"], rows, right=(2, 3, 4))
        out.write("".join(f"      {line}\n" for line in table.splitlines()))
    return out.getvalue()


# -- peak ---------------------------------------------------------------------------------------------


def peak_line(peak: dict[str, Any]) -> str:
    parts = []
    for precision in ("int8", "fp32", "bf16"):
        p = peak.get(precision)
        if not p:
            continue
        if "skipped" in p:
            parts.append(f"{precision} skipped ({p['skipped']})")
            continue
        flag = "" if p.get("verified") else " UNVERIFIED"
        parts.append(f"{precision} {fmt_ops(p['ops_per_second'])} ({p['exec_type']}{flag})")
    return "; ".join(parts)


def peak_summary(peak: dict[str, Any]) -> str:
    m, k, n = peak["shape"]
    lines = [f"peak dense MatMul rate of {peak['cpu_model']} through OpenVINO {peak['openvino']}",
             f"  [{m},{k}]x[{k},{n}] MatMul, {peak['threads']} threads, median of "
             f"{peak['seconds_per_precision']:g} s per precision"]
    for precision in ("int8", "fp32", "bf16"):
        p = peak.get(precision)
        if not p:
            continue
        if "skipped" in p:
            lines.append(f"  {precision:5} skipped: {p['skipped']}")
            continue
        check = ("ran as " + p["runtime_precision"] if p.get("verified") else
                 f"NOT verified: runtime precision {p['runtime_precision']!r}")
        lines.append(f"  {precision:5} {fmt_ops(p['ops_per_second']):>12}  "
                     f"(best {fmt_ops(p['best_ops_per_second'])}, kernel {p['exec_type']}, {check}, "
                     f"{p['method']})")
    if peak.get("cache_file"):
        lines.append(f"  cached in {peak['cache_file']} for later benchmarks")
    return "\n".join(lines) + "\n"


# -- files ----------------------------------------------------------------------------------------


def csv_rows(result: BenchmarkResult) -> list[dict[str, Any]]:
    pct = result.options.get("latency_percentile", 50)
    rows = []
    for cfg in result.configs:
        for name, e in cfg.results.items():
            lat = e.latency_ms
            sp = e.speedup
            sparse = e.sparse or {}
            comp = e.compiled or {}
            ci = (sp.ci95 if sp else None) or (None, None)
            rows.append({
                "model": result.model, "batch": cfg.batch, "seq_len": cfg.seq_len, "api": cfg.api,
                "variant": name, "baseline": result.baseline, "iterations": e.iterations,
                "seconds": e.seconds, "throughput": e.throughput,
                "latency_min_ms": lat.min, "latency_median_ms": lat.median, "latency_mean_ms": lat.mean,
                "latency_p90_ms": lat.p90, "latency_p99_ms": lat.p99, "latency_max_ms": lat.max,
                "latency_pN": pct, "latency_pN_ms": lat.at(pct),
                "ov_latency_median_ms": e.ov_latency_ms.median if e.ov_latency_ms else None,
                "first_inference_ms": e.first_inference_ms, "compile_s": e.compile_s,
                "peak_rss_mb": e.peak_rss_mb, "rss_increase_mb": e.rss_increase_mb,
                "speedup_overall": sp.overall if sp else None, "speedup_median": sp.median if sp else None,
                "speedup_q1": sp.q1 if sp else None, "speedup_q3": sp.q3 if sp else None,
                "speedup_min": sp.min if sp else None, "speedup_max": sp.max if sp else None,
                "speedup_ci95_lo": ci[0], "speedup_ci95_hi": ci[1],
                "ops_per_second": e.ops_per_second, "peak_share": e.peak_share, "peak_precision": e.peak_precision,
                "precision": comp.get("INFERENCE_PRECISION_HINT",
                                      "f32" if name in ("pytorch-fp32", "ort-fp32", "ort-int8") else None),
                "nstreams": comp.get("NUM_STREAMS"),
                "nthreads": comp.get("INFERENCE_NUM_THREADS",
                                     comp.get("torch_num_threads", comp.get("ort_intra_op_num_threads"))),
                "nireq": comp.get("nireq"),
                "amx": sparse.get("amx"), "sparse_rate": sparse.get("requested_rate"),
                "sparse_nodes": sparse.get("sparse_nodes"), "fully_connected": sparse.get("fully_connected"),
                "eligible_weights": sparse.get("eligible_weights"),
                "eligible_meeting_rate": sparse.get("eligible_meeting_rate"),
                "sparse_effect": sparse.get("effect"),
            })
    return rows


def write_json(result: BenchmarkResult, path: Path) -> Path:
    path.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    return path


def write_csv(result: BenchmarkResult, path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in csv_rows(result):
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path


def markdown(result: BenchmarkResult) -> str:
    env = result.environment
    v = env["versions"]
    git = env.get("git") or {}
    out = io.StringIO()
    out.write(f"# Benchmark of `{result.model}`\n\n")
    out.write("| | |\n|---|---|\n")
    rows = [
        ("date", env["date"]),
        ("command", f"`{env['command']}`"),
        ("CPU", f"{env['cpu_model']} ({'virtual machine, ' if env.get('hypervisor') else ''}"
                f"{env['threads_used']} threads of {env['cores_available']} cores)"),
        ("CPU features", ", ".join(env["cpu_flags_of_interest"]) or "-"),
        ("AMX / BF16", f"{'yes' if env['amx'] else 'no'} / {'yes' if env['bf16'] else 'no'}"),
        ("versions", ", ".join(f"{k} {val}" for k, val in v.items())),
        ("git", f"{git.get('commit', 'unknown')}{' (uncommitted changes)' if git.get('dirty') else ''}"),
        ("api / hint", f"{result.api} / {result.hint or 'default'}"),
        ("baseline", result.baseline or "-"),
    ]
    synthetic = result.report.get("synthetic")
    if synthetic:
        rows.append(("model", f"synthetic {synthetic.get('arch', '')}, {synthetic.get('sparsity')} sparse: "
                              "speed figures only"))
    out.write("".join(f"| {k} | {val} |\n" for k, val in rows))
    out.write("\nSpeed-up: median of the per-round ratios to the baseline, with the interquartile range "
              "of those ratios in brackets (spread across rounds, not a confidence interval); `ci95` in the "
              "JSON is a bootstrap interval. Latency percentiles use the nearest-rank method (as "
              "benchmark_app).\n")
    for cfg in result.configs:
        out.write(f"\n## batch {cfg.batch}, seq_len {cfg.seq_len}\n\n")
        header, body = _config_rows(result, cfg)
        out.write("| " + " | ".join(header) + " |\n")
        out.write("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|\n")
        out.write("".join("| " + " | ".join(r) + " |\n" for r in body))
        if any(e.compile_s is not None for e in cfg.results.values()):
            header, body = _cost_rows(cfg)
            out.write("\nBuild and memory (peak RSS is process-wide; +RSS = how much building and warming up "
                      "the variant raised it):\n\n| " + " | ".join(header) + " |\n")
            out.write("|---|" + "---:|" * (len(header) - 1) + "\n")
            out.write("".join("| " + " | ".join(r) + " |\n" for r in body))
    lines = sparse_lines(result)
    if lines:
        out.write("\n## Sparse kernels\n\n" + "".join(f"- {line}\n" for line in lines))
    if result.skipped:
        out.write("\n## Skipped\n\n" + "".join(f"- {k}: {val}\n" for k, val in result.skipped.items()))
    if result.notes:
        out.write("\n## Notes\n\n" + "".join(f"- {n}\n" for n in result.notes))
    if result.peak:
        out.write("\n## Peak\n\n" + peak_line(result.peak) + "\n")
    return out.getvalue()


def write_markdown(result: BenchmarkResult, path: Path) -> Path:
    path.write_text(markdown(result))
    return path


# -- plots ----------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(result: BenchmarkResult, path: Path) -> Path:
    """Box plot per variant and shape from the stored percentiles: box Q1-Q3, line median, whiskers p1-p99."""
    plt = _pyplot()
    configs = result.configs
    cols = min(4, len(configs))
    rows = (len(configs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, cfg in zip(axes.ravel(), configs, strict=False):
        stats: list[dict[str, Any]] = []
        for name, e in cfg.results.items():
            q = e.latency_quantiles_ms
            stats.append({"label": name, "med": q[50], "q1": q[25], "q3": q[75], "whislo": q[1],
                          "whishi": q[99], "fliers": [q[0], q[100]]})
        ax.bxp(stats, showfliers=True, flierprops={"markersize": 3})
        ax.set_title(f"batch {cfg.batch}, seq {cfg.seq_len}", fontsize=9)
        ax.set_ylabel("latency (ms)")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        _auto_log(ax, [v for st in stats for v in (st["whislo"], st["whishi"])])
    for ax in axes.ravel()[len(configs):]:
        ax.axis("off")
    fig.suptitle(f"latency per inference ({result.api}): box Q1-Q3, whiskers p1-p99, dots min/max",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_throughput(result: BenchmarkResult, path: Path) -> Path:
    plt = _pyplot()
    configs = result.configs
    names = list(dict.fromkeys(n for cfg in configs for n in cfg.results))
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(configs) * max(1, len(names)) * 0.45 + 2), 3.8))
    for i, name in enumerate(names):
        xs, ys = [], []
        for j, cfg in enumerate(configs):
            if name in cfg.results:
                xs.append(j + (i - (len(names) - 1) / 2) * width)
                ys.append(cfg.results[name].throughput)
        ax.bar(xs, ys, width=width, label=name)
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels([f"b{c.batch} s{c.seq_len}" for c in configs], fontsize=8)
    ax.set_ylabel("samples / s")
    ax.set_title(f"throughput ({result.api})", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_speedup(result: BenchmarkResult, path: Path) -> Path:
    plt = _pyplot()
    configs = result.configs
    baseline = result.baseline
    batches = sorted({c.batch for c in configs})
    names = [n for n in dict.fromkeys(n for cfg in configs for n in cfg.results) if n != baseline]
    fig, axes = plt.subplots(1, len(batches), figsize=(4.8 * len(batches), 3.6), squeeze=False)
    for ax, batch in zip(axes.ravel(), batches, strict=True):
        for name in names:
            pts = sorted(((c.seq_len, speed) for c in configs
                          if c.batch == batch and name in c.results and (speed := c.results[name].speedup)),
                         key=lambda p: p[0])
            if not pts:
                continue
            xs = [p[0] for p in pts]
            med = [p[1].median for p in pts]
            err = [[m - p[1].q1 for m, p in zip(med, pts, strict=True)],
                   [p[1].q3 - m for m, p in zip(med, pts, strict=True)]]
            ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=name)
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
        _auto_log(ax, [speed.median for p in configs for n in names
                       if n in p.results and (speed := p.results[n].speedup)] + [1.0])
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({c.seq_len for c in configs}))
        ax.get_xaxis().set_major_formatter(_plain_formatter())
        ax.set_xlabel("sequence length")
        ax.set_ylabel(f"speed-up vs {baseline}")
        ax.set_title(f"batch {batch}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("speed-up: median of per-round ratios, bars = interquartile range", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _auto_log(ax: Any, values: list[float]) -> None:
    """Log y axis when the values span more than 20x (e.g. PyTorch next to INT8), else linear from 0."""
    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)


def _plain_formatter() -> Any:
    from matplotlib.ticker import ScalarFormatter

    fmt = ScalarFormatter()
    fmt.set_scientific(False)
    return fmt


def write_plots(result: BenchmarkResult, out_dir: Path) -> dict[str, Path]:
    if not result.configs:
        return {}
    return {
        "latency": plot_latency(result, out_dir / PLOT_NAMES["latency"]),
        "throughput": plot_throughput(result, out_dir / PLOT_NAMES["throughput"]),
        "speedup": plot_speedup(result, out_dir / PLOT_NAMES["speedup"]),
    }


def write_all(result: BenchmarkResult, out_dir: Path, *, plots: bool = True) -> dict[str, Path]:
    """benchmark.json / .csv / .md and (unless ``plots`` is False or matplotlib is missing) the PNGs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if plots:
        try:
            files.update(write_plots(result, out_dir))
        except ImportError:
            result.notes.append("matplotlib is not installed: no plots were written")
    files["csv"] = write_csv(result, out_dir / CSV_NAME)
    files["markdown"] = write_markdown(result, out_dir / MD_NAME)
    result.files = {k: str(p) for k, p in files.items()} | {"json": str(out_dir / JSON_NAME)}
    files["json"] = write_json(result, out_dir / JSON_NAME)
    return files
