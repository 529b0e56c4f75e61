"""Regenerate the benchmark matrix: synthetic 90%-sparse DistilBERT-base and BERT-base, INT8 with
and without sparse kernels against PyTorch FP32 and OpenVINO FP32/BF16, at sequence lengths
16/64/128/384, batch 1 and 8, sync (latency) and async (throughput).

Everything goes into one file, benchmarks/results/<machine-tag>-<date>.json (with the command that
made it, the environment and the measured peak), plus a Markdown summary beside it and each run's
own CSV/Markdown/PNG files in a folder of the same name.

    python benchmarks/run_matrix.py                  # the full matrix (about an hour on 2 cores)
    python benchmarks/run_matrix.py --quick          # a few minutes: seq 16,128, batch 1, 2 s per variant
    python benchmarks/run_matrix.py --prepare-only   # just synthesise and convert into --work
                                                     # (default ~/.cache/pofa-deploy/matrix)

On a machine with only openvino installed (no torch, nncf, transformers), benchmark IR folders
converted elsewhere: copy --work there and pass them with --ir; each INT8 folder NAME-int8 uses a
sibling NAME-fp32 for ov-fp32/ov-bf16 when there is one (or give --fp32-ir in the same order).
PyTorch FP32 is then skipped (and said so) and the ratios are taken against ov-fp32.

    python benchmarks/run_matrix.py --ir matrix/distilbert-base-s90-int8 matrix/bert-base-s90-int8
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

try:
    import pofa_deploy  # noqa: F401
except ImportError:  # a source checkout that is not installed (e.g. a lent machine with only openvino)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pofa_deploy import environment, progress, report
from pofa_deploy.bench import Api, BenchmarkOptions, Variant, cache_root
from pofa_deploy.bench import peak as peaks
from pofa_deploy.bench.result import DEFINITIONS, BenchmarkResult
from pofa_deploy.bench.run import benchmark
from pofa_deploy.environment import cpu_model, has_amx
from pofa_deploy.errors import PofaError
from pofa_deploy.ir import is_ir

HERE = Path(__file__).resolve().parent
FULL = {"seq_len": (16, 64, 128, 384), "batch": (1, 8), "api": ("sync", "async"), "time": 10.0, "rounds": 5}
QUICK = {"seq_len": (16, 128), "batch": (1,), "api": ("sync", "async"), "time": 2.0, "rounds": 3}
DEFAULT_ARCHS = ("distilbert-base", "bert-base")


def machine_tag() -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", cpu_model().lower().replace("(r)", "").replace("(tm)", "")).strip("-")
    return f"{slug}-{environment.available_cores()}c-{'amx' if has_amx() else 'noamx'}"


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t.strip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--work", type=Path, default=cache_root() / "matrix",
                   help="synthetic checkpoints and IRs, kept between runs (default: ~/.cache/pofa-deploy/matrix)")
    p.add_argument("--archs", default=",".join(DEFAULT_ARCHS), help="synthetic architectures to build")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--ir", type=Path, nargs="+", default=None, help="benchmark these converted INT8 folders "
                   "instead of building synthetic ones (works without torch/nncf)")
    p.add_argument("--fp32-ir", type=Path, nargs="+", default=None, help="FP32 folders for --ir, same order")
    p.add_argument("--quick", action="store_true", help="a few minutes: " + ", ".join(f"{k} {v}" for k, v in
                                                                                         QUICK.items()))
    p.add_argument("--seq-len", type=ints, default=None, help="comma list (default: 16,64,128,384)")
    p.add_argument("-b", "--batch", type=ints, default=None, help="comma list (default: 1,8)")
    p.add_argument("--api", default=None, help="comma list of sync,async (default: both)")
    p.add_argument("-t", "--time", type=float, default=None,
                   help="seconds per variant and shape (default: 10)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default: 5)")
    p.add_argument("--variants", default=None, help="comma list, as pofa-deploy benchmark --variants")
    p.add_argument("-nthreads", "--nthreads", type=int, default=None)
    p.add_argument("--no-peak", action="store_true",
                   help="do not measure the MatMul ceiling (a cached one is still used)")
    p.add_argument("--peak-time", type=float, default=3.0)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--prepare-only", action="store_true", help="build and convert the models, then stop")
    p.add_argument("--tag", default=None, help="machine tag in the file name (default: from the CPU)")
    p.add_argument("--out", type=Path, default=None,
                   help="result JSON (default: benchmarks/results/<tag>-<date>.json)")
    p.add_argument("--cache-dir", type=Path, default=None)
    return p.parse_args(argv)


def prepare(args: argparse.Namespace, say: Any) -> list[tuple[Path, Path | None]]:
    """Synthesise and convert each architecture once (kept in --work); returns (INT8 dir, FP32 dir) pairs."""
    from pofa_deploy.cli import main as cli_main

    pairs = []
    args.work.mkdir(parents=True, exist_ok=True)
    pct = round(args.sparsity * 100)
    for arch in [a.strip() for a in args.archs.split(",") if a.strip()]:
        ckpt = args.work / f"{arch}-s{pct}"
        int8, fp32 = args.work / f"{arch}-s{pct}-int8", args.work / f"{arch}-s{pct}-fp32"
        steps = [
            (ckpt / "config.json", ["synth", "--arch", arch, "--sparsity", str(args.sparsity),
                                    "-o", str(ckpt), "--overwrite"]),
            (int8 / "openvino_model.xml", ["convert", str(ckpt), "--int8", "-o", str(int8), "--overwrite"]),
            (fp32 / "openvino_model.xml", ["convert", str(ckpt), "-o", str(fp32), "--overwrite"]),
        ]
        for done, command in steps:
            if done.is_file():
                continue
            say(f"pofa-deploy {shlex.join(command)}")
            code = cli_main(command)
            if code:
                raise SystemExit(f"run_matrix: pofa-deploy {command[0]} failed with exit code {code}")
        pairs.append((int8, fp32))
    return pairs


def ir_pairs(args: argparse.Namespace) -> list[tuple[Path, Path | None]]:
    pairs = []
    fp32s = list(args.fp32_ir or [])
    if fp32s and len(fp32s) != len(args.ir):
        raise SystemExit("run_matrix: give one --fp32-ir per --ir folder, in the same order")
    for i, folder in enumerate(args.ir):
        if not is_ir(folder):
            raise SystemExit(f"run_matrix: --ir {folder}: no openvino_model.xml there")
        fp32 = fp32s[i] if fp32s else None
        if fp32 is None and folder.name.endswith("-int8"):
            sibling = folder.with_name(folder.name[: -len("-int8")] + "-fp32")
            fp32 = sibling if is_ir(sibling) else None
        pairs.append((folder, fp32))
    return pairs


def summary_rows(run: BenchmarkResult, name: str) -> list[dict[str, Any]]:
    rows = []
    for cfg in run.configs:
        for variant, e in cfg.results.items():
            sp = e.speedup
            sparse = e.sparse or {}
            rows.append({"model": name, "api": run.api, "batch": cfg.batch, "seq_len": cfg.seq_len,
                         "variant": variant, "median_ms": e.latency_ms.median,
                         "p99_ms": e.latency_ms.p99, "throughput": e.throughput,
                         "baseline": run.baseline, "speedup_median": sp.median if sp else None,
                         "speedup_q1": sp.q1 if sp else None, "speedup_q3": sp.q3 if sp else None,
                         "peak_share": e.peak_share,
                         "sparse_nodes": sparse.get("sparse_nodes"),
                         "fully_connected": sparse.get("fully_connected")})
    return rows


def summary_markdown(matrix: dict[str, Any], runs: list[BenchmarkResult]) -> str:
    env = matrix["environment"]
    lines = [f"# Benchmark matrix {matrix['machine_tag']} {matrix['date']}", "",
             f"- command: `{matrix['command']}`",
             f"- CPU: {env['cpu_model']}, {env['threads_used']} threads, "
             f"AMX {'yes' if env['amx'] else 'no'}, BF16 {'yes' if env['bf16'] else 'no'}"
             f"{', virtual machine' if env.get('hypervisor') else ''}",
             f"- versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items())}",
             f"- git: {(env.get('git') or {}).get('commit', 'unknown')}",
             "- speed-up: median of per-round ratios to the baseline [interquartile range of those ratios]",
             ""]
    if matrix.get("peak"):
        lines += [f"- peak: {report.peak_line(matrix['peak'])}", ""]
    lines += ["| model | api | batch | seq | variant | median ms | p99 ms | samples/s | speed-up [IQR] "
              "| % peak | sparse FC |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in matrix["summary"]:
        speed = ("1 (baseline)" if r["variant"] == r["baseline"] else
                 f"{r['speedup_median']:.2f}x [{r['speedup_q1']:.2f}-{r['speedup_q3']:.2f}]"
                 if r["speedup_median"] is not None else "-")
        share = report.fmt_share(r["peak_share"])
        sparse = f"{r['sparse_nodes']}/{r['fully_connected']}" if r["fully_connected"] is not None else ""
        lines.append(f"| {r['model']} | {r['api']} | {r['batch']} | {r['seq_len']} | {r['variant']} | "
                     f"{report.fmt_ms(r['median_ms'])} | {report.fmt_ms(r['p99_ms'])} | "
                     f"{report.fmt_rate(r['throughput'])} | {speed} | {share} | {sparse} |")
    notes = sorted({n for run in runs for n in run.notes}
                   | {f"{k}: {v}" for run in runs for k, v in run.skipped.items()})
    sparse_lines = sorted({line for run in runs for line in report.sparse_lines(run)})
    if sparse_lines:
        lines += ["", "## Sparse kernels", "", *(f"- {s}" for s in sparse_lines)]
    if notes:
        lines += ["", "## Notes and skipped variants", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say = progress.printer()
    settings: dict[str, Any] = dict(QUICK if args.quick else FULL)
    for key in ("seq_len", "batch", "time", "rounds"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.api:
        settings["api"] = tuple(a.strip() for a in args.api.split(",") if a.strip())
    pairs = ir_pairs(args) if args.ir else prepare(args, say)
    if args.prepare_only:
        print("\n".join(f"{i}  (fp32: {f})" for i, f in pairs))
        return 0
    tag = args.tag or machine_tag()
    date = dt.date.today().isoformat()
    out = args.out or HERE / "results" / f"{tag}-{date}.json"
    if args.out is None and out.exists():
        out = out.with_name(f"{tag}-{date}-{dt.datetime.now():%H%M}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    files_dir = out.with_suffix("")
    cache = args.cache_dir or cache_root()
    threads = args.nthreads or environment.available_cores()
    started = time.perf_counter()
    peak = None
    if not args.no_peak:
        peak = peaks.measure_peak(seconds=args.peak_time, threads=threads, progress=say)
        peak["cache_file"] = str(peaks.save_peak(cache, peak))
    variants = tuple(Variant(v.strip()) for v in args.variants.split(",")) if args.variants else ()
    runs: list[BenchmarkResult] = []
    summary: list[dict[str, Any]] = []
    for int8, fp32 in pairs:
        name = int8.name[: -len("-int8")] if int8.name.endswith("-int8") else int8.name
        for api in settings["api"]:
            say(f"== {name}, {api}: seq {settings['seq_len']}, batch {settings['batch']}, "
                f"{settings['time']} s x {settings['rounds']} rounds per variant")
            try:
                options = BenchmarkOptions(
                    model=int8, variants=variants, api=Api(api), seq_len=settings["seq_len"],
                    batch=settings["batch"], time=settings["time"], rounds=settings["rounds"], fp32_ir=fp32,
                    nthreads=args.nthreads, cache_dir=cache, output_dir=files_dir / f"{name}-{api}")
                result = benchmark(options, progress=say)
            except PofaError as exc:
                print(f"run_matrix: {name} {api}: {exc}", file=sys.stderr)
                return 2
            result.name = name
            report.write_all(result, files_dir / f"{name}-{api}", plots=not args.no_plots)
            print(report.format_table(result))
            runs.append(result)
            summary += summary_rows(result, name)
    matrix: dict[str, Any] = {
        "schema": "pofa-deploy-matrix/1",
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]) if argv is None else
        shlex.join(["run_matrix.py", *argv]),
        "machine_tag": tag,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "models": [{"name": r.name, "int8": r.model, "api": r.api} for r in runs],
        "environment": environment.record(threads=threads),
        "peak": peak or peaks.cached_peak(cache, threads),
        "definitions": DEFINITIONS,
        "summary": summary,
        "runs": [r.to_dict() for r in runs],
        "seconds": round(time.perf_counter() - started, 1),
    }
    out.write_text(json.dumps(matrix, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(summary_markdown(matrix, runs))
    print(f"wrote {out}, {out.with_suffix('.md').name} and per-run files in {files_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
