"""Whole-model A/B: the sparse-kernel IR with the GELU fused into SparseFullyConnected against the same IR
without that fusion, and both against the standard INT8 IR, timed interleaved in one process.

Why in one process: on the 2-core KVM guest these figures come from, the sparse IR's speed is bimodal
across time (benchmarks/README.md, issue 10), so two separate runs can differ by 30% for reasons that
have nothing to do with the change; interleaved rounds in one process see the same machine state. The
unfused IR is written here from the folder's standard IR (``sparse_kernel.rewrite(fuse_gelu=False)``).
Per round, each IR runs ``--iters`` sync inferences and gives its median; the report gives the median of
the per-round ratios with their min and max.

    .venv/bin/python benchmarks/fusion_ab.py OUT -b 1 --isa avx512_vnni -o results/sparse-kernel/fusion.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ISA_ENV = "ONEDNN_MAX_CPU_ISA"
ISA = {"native": None, "avx512_vnni": "AVX512_CORE_VNNI"}
VARIANTS = ("int8", "sparse-unfused", "sparse-fused")


def _request(core: Any, xml: Path, batch: int, seq: int, threads: int) -> tuple[Any, dict[str, np.ndarray]]:
    model = core.read_model(str(xml))
    model.reshape({p.get_any_name(): [batch, seq] for p in model.inputs})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": 1,
                                                 "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    rng = np.random.default_rng(0)
    feeds = {}
    for p in compiled.inputs:
        name = p.get_any_name()
        feeds[name] = np.ones((batch, seq), np.int64) if "mask" in name else (
            np.zeros((batch, seq), np.int64) if "type" in name else rng.integers(5, 1000, (batch, seq)))
    request = compiled.create_infer_request()
    for _ in range(5):
        request.infer(feeds)
    return request, feeds


def _ratio_stats(a: list[float], b: list[float]) -> dict[str, float]:
    r = [x / y for x, y in zip(a, b, strict=True)]
    return {"median": round(statistics.median(r), 4), "min": round(min(r), 4), "max": round(max(r), 4)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a convert --int8 folder with openvino_model_sparse.xml")
    p.add_argument("-b", "--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--iters", type=int, default=30, help="inferences per IR per round (median taken)")
    p.add_argument("--isa", choices=sorted(ISA), default="avx512_vnni")
    p.add_argument("-o", "--output", type=Path)
    args = p.parse_args(argv)

    cap = ISA[args.isa]
    if cap and os.environ.get(ISA_ENV) != cap:  # oneDNN reads the cap when the CPU plugin loads
        return subprocess.call([sys.executable, *sys.argv], env={**os.environ, ISA_ENV: cap})

    import openvino as ov

    from pofa_deploy import sparse_kernel as sk
    from pofa_deploy.environment import cpu_model
    from pofa_deploy.extension import extension_path

    core = ov.Core()
    core.add_extension(str(extension_path()))
    with tempfile.TemporaryDirectory() as tmp:
        unfused = Path(tmp) / "unfused_sparse.xml"
        plain = sk.rewrite(core.read_model(str(args.out / "openvino_model.xml")), fuse_gelu=False)
        ov.save_model(plain.model, str(unfused), compress_to_fp16=False)
        fused_layers = sum(layer["activation"] != "none"
                           for layer in sk.rewrite(core.read_model(str(args.out / "openvino_model.xml"))).layers)
        files = {"int8": args.out / "openvino_model.xml", "sparse-unfused": unfused,
                 "sparse-fused": args.out / f"{sk.SPARSE_IR_NAME}.xml"}
        requests = {v: _request(core, files[v], args.batch, args.seq_len, args.threads) for v in VARIANTS}
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for rnd in range(args.rounds):
        for v in VARIANTS if rnd % 2 == 0 else VARIANTS[::-1]:
            request, feeds = requests[v]
            ts = []
            for _ in range(args.iters):
                t = time.perf_counter()
                request.infer(feeds)
                ts.append(time.perf_counter() - t)
            times[v].append(statistics.median(ts) * 1e3)
        print(f"round {rnd + 1}/{args.rounds}: " + "  ".join(f"{v} {times[v][-1]:.2f} ms" for v in VARIANTS),
              flush=True)
    report = {
        "command": [sys.executable, *sys.argv], "cpu": cpu_model(), "cores": os.cpu_count(),
        "openvino": ov.get_version(), ISA_ENV: os.environ.get(ISA_ENV), "threads": args.threads,
        "batch": args.batch, "seq_len": args.seq_len, "rounds": args.rounds, "iters_per_round": args.iters,
        "gelu_fused_layers": fused_layers,
        "median_ms": {v: round(statistics.median(times[v]), 3) for v in VARIANTS},
        "per_round_ms": {v: [round(t, 3) for t in times[v]] for v in VARIANTS},
        "speedup_fused_over_unfused": _ratio_stats(times["sparse-unfused"], times["sparse-fused"]),
        "speedup_fused_over_int8": _ratio_stats(times["int8"], times["sparse-fused"]),
        "speedup_unfused_over_int8": _ratio_stats(times["int8"], times["sparse-unfused"]),
    }
    s, fused, unfused = (report[k] for k in ("speedup_fused_over_unfused", "speedup_fused_over_int8",
                                             "speedup_unfused_over_int8"))
    print(f"fused over unfused {s['median']:.3f}x [{s['min']:.3f}-{s['max']:.3f}]; over int8 "
          f"{fused['median']:.2f}x (unfused {unfused['median']:.2f}x)")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
