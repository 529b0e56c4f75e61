"""Conversion cost for synthetic 90%-sparse DistilBERT-base and BERT-base (issue 2 benchmark).

For each architecture: synthesise the checkpoint, then run `pofa-deploy convert --int8` and
`pofa-deploy convert` (FP32) as child processes, recording wall time and the child's peak RSS
(getrusage), the IR sizes, and the zero-check summary from pofa_report.json.
Targets (2 cores): DistilBERT-base INT8 conversion under 90 s and under 4 GB peak memory.

    python benchmarks/convert_bench.py                       # both architectures
    python benchmarks/convert_bench.py --arch distilbert-base --workdir /tmp/pofa-bench
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "pofa_deploy.cli"]
TARGETS = {"distilbert-base": {"int8_seconds": 90, "int8_peak_gb": 4}}


def run_measured(argv: list[str]) -> dict[str, float]:
    """Run a child process alone; wall seconds and its peak RSS in GB (ru_maxrss is KiB on Linux)."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child: exec directly so rusage belongs to this conversion alone
        os.execvp(argv[0], argv)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {shlex.join(argv)}")
    return {"seconds": round(wall, 1), "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 3)}


def bench_arch(arch: str, work: Path, samples: int) -> dict[str, object]:
    ckpt, int8, fp32 = work / f"{arch}-synth", work / f"{arch}-int8", work / f"{arch}-fp32"
    subprocess.run([*CLI, "synth", "--arch", arch, "--sparsity", "0.9", "-o", str(ckpt), "--overwrite"], check=True)
    common = ["--samples", str(samples), "--seq-len", "128", "--overwrite"]
    m_int8 = run_measured([*CLI, "convert", str(ckpt), "-o", str(int8), "--int8", *common])
    m_fp32 = run_measured([*CLI, "convert", str(ckpt), "-o", str(fp32), *common])
    report = json.loads((int8 / "pofa_report.json").read_text())
    size_int8 = (int8 / "openvino_model.bin").stat().st_size
    size_fp32 = (fp32 / "openvino_model.bin").stat().st_size
    zc = {k: v for k, v in report["zero_check"].items() if k != "layers"}
    return {
        "arch": arch,
        "synthetic": report["synthetic"],
        "convert_int8": {**m_int8, "stage_seconds": report["seconds"]},
        "convert_fp32": m_fp32,
        "ir_bytes": {"int8": size_int8, "fp32": size_fp32, "ratio_int8_to_fp32": round(size_int8 / size_fp32, 4)},
        "zero_check": zc,
        "sparse_rate": report["sparse_rate"],
        "sparse_status": report["sparse_status"]["summary"],
        "targets": TARGETS.get(arch, {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", action="append", choices=["distilbert-base", "bert-base", "bert-large"])
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "convert.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from pofa_deploy.environment import cpu_model, has_amx

    work = args.workdir or Path(tempfile.mkdtemp(prefix="pofa-convert-bench-"))
    rows = []
    for arch in args.arch or ["distilbert-base", "bert-base"]:
        print(f"== {arch}", file=sys.stderr, flush=True)
        rows.append(bench_arch(arch, work, args.samples))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "amx": has_amx(),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)},
        "git_commit": commit,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        c = r["convert_int8"]
        size = r["ir_bytes"]
        print(f"{r['arch']}: INT8 convert {c['seconds']} s, peak {c['peak_rss_gb']} GB; IR {size['int8'] / 1e6:.1f} MB "
              f"vs FP32 {size['fp32'] / 1e6:.1f} MB; zeros lost {r['zero_check']['zeros_lost']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
