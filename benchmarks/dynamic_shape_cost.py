"""What dynamic input shapes cost the sparse-kernel IR: the standard INT8 IR and the sparse-kernel IR, each
compiled once reshaped to a static [batch, seq] and once as read (dynamic), timed interleaved in one process.

Why this matters: for a custom op the CPU plugin has no shape inference of its own and falls back to a
generic one that declares every input data-dependent (OpenVINO 2026.4, ``ShapeInferFallback``: full port
mask), so with dynamic shapes it clones the op and re-validates the clone on *every* inference, where a
built-in FullyConnected only re-infers when an input shape changes. `pofa-deploy benchmark`, `tune` and
benchmark_app ``-shape`` reshape to static shapes and never pay it; a dynamic model (optimum-intel's
default) does.

    .venv/bin/python benchmarks/dynamic_shape_cost.py OUT -o results/sparse-kernel/dynamic-shape-cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from ab_common import ISA, ISA_ENV, interleaved, request, rerun_with_isa, spread


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a convert --int8 folder with openvino_model_sparse.xml")
    p.add_argument("-b", "--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--isa", choices=sorted(ISA), default="avx512_vnni")
    p.add_argument("-o", "--output", type=Path)
    args = p.parse_args(argv)
    if (code := rerun_with_isa(args.isa)) is not None:
        return code

    import openvino as ov

    from pofa_deploy.environment import cpu_model
    from pofa_deploy.extension import extension_path
    from pofa_deploy.sparse_kernel import SPARSE_IR_NAME

    core = ov.Core()
    core.add_extension(str(extension_path()))
    shape = [args.batch, args.seq_len]
    requests = {}
    for ir, file in (("int8", "openvino_model.xml"), ("sparse", f"{SPARSE_IR_NAME}.xml")):
        for kind, static in (("static", shape), ("dynamic", None)):
            requests[f"{ir}-{kind}"] = request(core, args.out / file, static, shape, args.threads)
    times = interleaved(requests, args.rounds, args.iters)
    extra = {ir: [d - s for d, s in zip(times[f"{ir}-dynamic"], times[f"{ir}-static"], strict=True)]
             for ir in ("int8", "sparse")}
    report = {"command": [sys.executable, *sys.argv], "cpu": cpu_model(), "cores": os.cpu_count(),
              "openvino": ov.get_version(), ISA_ENV: os.environ.get(ISA_ENV), "threads": args.threads,
              "shape": shape, "rounds": args.rounds, "iters_per_round": args.iters,
              "median_ms": {n: round(statistics.median(v), 3) for n, v in times.items()},
              "per_round_ms": {n: [round(t, 3) for t in v] for n, v in times.items()},
              "dynamic_minus_static_ms": {ir: spread(v) for ir, v in extra.items()}}
    for ir, v in report["dynamic_minus_static_ms"].items():
        print(f"dynamic shapes cost {ir}: +{v['median']:.2f} ms per inference [{v['min']:.2f}, {v['max']:.2f}]")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
