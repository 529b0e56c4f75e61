"""Parity check: does `pofa-deploy benchmark` measure what OpenVINO's own benchmark_app measures?

Both tools time the same IR, at the same static shape, with the same properties, in sync mode with
the latency hint, alternately (ours, benchmark_app, ours, benchmark_app, ... with the order flipped
every repeat so a drift of the machine hits both alike):

  ours:          pofa-deploy benchmark OUT --variants V -api sync -hint latency -shape [B,S] -t T --rounds 1
  benchmark_app: benchmark_app -m OUT/openvino_model.xml -d CPU -shape input_ids[B,S],... -hint latency
                 -api sync -t T -load_config CFG -report_type no_counters -json_stats -report_folder DIR

CFG is OUT/runtime_config.json for int8-sparse (what pofa-deploy loads) and the same without the
sparse rate for int8. Compared: median latency on OpenVINO's per-request timer (the clock
benchmark_app reports, which it rounds to 0.01 ms; our wall-clock median is shown beside it) and
throughput (batch x iterations per wall-clock second in both tools; benchmark_app's printed FPS
ignores the batch unless it is told the layout). They must agree within --tolerance (10%): exit 0,
else 1. Each tool's Python loop costs a few microseconds per iteration, so compare shapes whose
inference takes a millisecond or more.

    python benchmarks/compare_benchmark_app.py OUT [--seq-len 128] [-b 1] [-t 10] [--variant int8-sparse]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    import pofa_deploy  # noqa: F401
except ImportError:  # run from a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pofa_deploy import environment
from pofa_deploy.bench import Api, BenchmarkOptions, Hint, Variant
from pofa_deploy.bench.run import benchmark
from pofa_deploy.errors import InputError
from pofa_deploy.ir import ir_xml
from pofa_deploy.runtime_config import SPARSE_KEY, read_runtime_config

VARIANTS = ("int8-sparse", "int8")


def benchmark_app_command() -> list[str]:
    """The benchmark_app of this Python's openvino: its console script, or the module when there is none."""
    beside = Path(sys.executable).parent / "benchmark_app"
    found = str(beside) if beside.is_file() else shutil.which("benchmark_app")
    if found:
        return [found]
    try:
        import openvino.tools.benchmark.main  # noqa: F401
    except ImportError:
        raise InputError("benchmark_app not found (it ships with the openvino package: pip install openvino)") from None
    return [sys.executable, "-c", "import sys; from openvino.tools.benchmark.main import main; "
            "sys.argv[0] = 'benchmark_app'; sys.exit(main())"]


def run_ours(folder: Path, *, variant: str, batch: int, seq_len: int, seconds: float, cache_dir: Path | None,
             nthreads: int | None) -> dict[str, float]:
    options = BenchmarkOptions(model=folder, variants=(Variant(variant),), api=Api.SYNC, hint=Hint.LATENCY,
                               shape=f"[{batch},{seq_len}]", time=seconds, rounds=1, warmup=1, nthreads=nthreads,
                               cache_dir=cache_dir, quiet=True)
    entry = benchmark(options).configs[0].results[variant]
    assert entry.ov_latency_ms is not None  # sync OpenVINO variants record OpenVINO's own timer
    return {"median_latency_ms": entry.ov_latency_ms.median, "wall_median_latency_ms": entry.latency_ms.median,
            "mean_latency_ms": entry.ov_latency_ms.mean, "throughput": entry.throughput,
            "iterations": entry.iterations}


def run_benchmark_app(folder: Path, *, variant: str, batch: int, seq_len: int, seconds: float,
                      nthreads: int | None) -> dict[str, Any]:
    import openvino as ov

    xml = ir_xml(folder)
    names = [i.get_any_name() for i in ov.Core().read_model(str(xml)).inputs]
    cpu = read_runtime_config(folder)
    if variant == "int8":
        cpu.pop(SPARSE_KEY, None)
    with tempfile.TemporaryDirectory(prefix="pofa-bapp-") as tmp:
        cfg = Path(tmp) / "config.json"
        cfg.write_text(json.dumps({"CPU": cpu}))
        app = benchmark_app_command()
        cmd = [*app, "-m", str(xml), "-d", "CPU",
               "-shape", ",".join(f"{n}[{batch},{seq_len}]" for n in names),
               "-hint", "latency", "-api", "sync", "-t", str(max(1, round(seconds))),
               "-load_config", str(cfg), "-report_type", "no_counters", "-json_stats", "-report_folder", tmp]
        if nthreads:  # benchmark_app takes -nthreads only with -hint none: set hint and threads in the config
            cpu.update({"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(nthreads)})
            cfg.write_text(json.dumps({"CPU": cpu}))
            cmd[cmd.index("-hint") + 1] = "none"
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 300)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise RuntimeError("benchmark_app failed: " + " | ".join(tail))
        report = json.loads((Path(tmp) / "benchmark_report.json").read_text())
    results = report["execution_results"]
    iterations = int(results["total number of iterations"])
    seconds_run = float(results["total execution time (ms)"]) / 1e3
    # benchmark_app's own "throughput" counts the batch only when it knows the layout (-layout); count it here
    return {"median_latency_ms": float(results["latency (ms)"]),
            "mean_latency_ms": float(results["avg latency"]),
            "throughput": batch * iterations / seconds_run, "reported_fps": float(results["throughput"]),
            "iterations": iterations, "command": " ".join(cmd[len(app):])}


def compare(folder: Path, *, seq_len: int = 128, batch: int = 1, seconds: float = 10.0,
            variant: str = "int8-sparse", repeats: int = 2, tolerance: float = 0.10,
            cache_dir: Path | None = None, nthreads: int | None = None,
            progress: Any = None) -> dict[str, Any]:
    """Alternate both tools ``repeats`` times each; ratios are ours / benchmark_app of the repeat means."""
    say = progress or (lambda _m: None)
    folder = Path(folder)
    if variant not in VARIANTS:
        raise InputError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    ours: list[dict[str, float]] = []
    theirs: list[dict[str, Any]] = []
    for r in range(repeats):
        order = ("ours", "benchmark_app") if r % 2 == 0 else ("benchmark_app", "ours")
        for who in order:
            say(f"repeat {r + 1}/{repeats}: {who} ({seconds:g} s)")
            if who == "ours":
                ours.append(run_ours(folder, variant=variant, batch=batch, seq_len=seq_len, seconds=seconds,
                                     cache_dir=cache_dir, nthreads=nthreads))
            else:
                theirs.append(run_benchmark_app(folder, variant=variant, batch=batch, seq_len=seq_len,
                                                seconds=seconds, nthreads=nthreads))

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return sum(float(row[key]) for row in rows) / len(rows)

    keys = ("median_latency_ms", "throughput")
    ours_mean = {k: mean(ours, k) for k in (*keys, "wall_median_latency_ms", "mean_latency_ms")}
    theirs_mean = {k: mean(theirs, k) for k in (*keys, "mean_latency_ms")}
    ratios = {k: ours_mean[k] / theirs_mean[k] for k in keys}
    ratios["wall_median_latency_ms (information)"] = ours_mean["wall_median_latency_ms"] / theirs_mean[
        "median_latency_ms"]
    agree = all(abs(ratios[k] - 1.0) <= tolerance for k in keys)
    return {"model": str(folder), "variant": variant, "batch": batch, "seq_len": seq_len, "seconds": seconds,
            "repeats": repeats, "tolerance": tolerance, "ours": ours_mean, "benchmark_app": theirs_mean,
            "ratios": ratios, "agree": agree, "runs": {"ours": ours, "benchmark_app": theirs},
            "benchmark_app_command": theirs[0]["command"] if theirs else None,
            "environment": environment.record()}


def format_report(rep: dict[str, Any]) -> str:
    rows = [("median latency (OpenVINO timer), ms", "median_latency_ms"),
            ("throughput, samples/s", "throughput")]
    lines = [f"parity of pofa-deploy benchmark with benchmark_app: {rep['model']} ({rep['variant']}, batch "
             f"{rep['batch']}, seq {rep['seq_len']}, sync/latency, {rep['seconds']:g} s x {rep['repeats']} "
             "each)",
             f"  {'':40} {'ours':>12} {'benchmark_app':>14} {'ours/theirs':>12}"]
    for label, key in rows:
        lines.append(f"  {label:40} {rep['ours'][key]:12.4g} {rep['benchmark_app'][key]:14.4g} "
                     f"{rep['ratios'][key]:12.3f}")
    lines.append(f"  {'our wall-clock median latency, ms':40} {rep['ours']['wall_median_latency_ms']:12.4g}")
    verdict = "AGREE" if rep["agree"] else "DISAGREE"
    lines.append(f"  {verdict} within {rep['tolerance']:.0%} (benchmark_app {rep['benchmark_app_command']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="converted INT8 folder (pofa-deploy convert --int8 -o OUT)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("-b", "--batch", type=int, default=1)
    parser.add_argument("-t", "--time", type=float, default=10.0, help="seconds per run (whole seconds for "
                        "benchmark_app)")
    parser.add_argument("--variant", choices=VARIANTS, default="int8-sparse")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each tool, alternating")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("-nthreads", "--nthreads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the comparison here")
    args = parser.parse_args(argv)
    if args.time <= 0 or args.repeats < 1:
        print("compare_benchmark_app: error: -t and --repeats must be positive", file=sys.stderr)
        return 2
    try:
        rep = compare(args.model, seq_len=args.seq_len, batch=args.batch, seconds=args.time,
                      variant=args.variant, repeats=args.repeats, tolerance=args.tolerance,
                      nthreads=args.nthreads,
                      progress=lambda m: print(m, file=sys.stderr, flush=True))
    except InputError as exc:
        print(f"compare_benchmark_app: error: {exc}", file=sys.stderr)
        return 2
    print(format_report(rep))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2) + "\n")
    return 0 if rep["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
