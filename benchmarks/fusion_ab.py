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
import sys
import tempfile
from pathlib import Path

from ab_common import ISA, ISA_ENV, interleaved, request, rerun_with_isa, spread

VARIANTS = ("int8", "sparse-unfused", "sparse-fused")


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
    if (code := rerun_with_isa(args.isa)) is not None:
        return code

    import openvino as ov

    from pofa_deploy import sparse_kernel as sk
    from pofa_deploy.environment import cpu_model
    from pofa_deploy.extension import extension_path

    core = ov.Core()
    core.add_extension(str(extension_path()))
    shape = [args.batch, args.seq_len]
    standard = args.out / "openvino_model.xml"
    with tempfile.TemporaryDirectory() as tmp:
        unfused = Path(tmp) / "unfused_sparse.xml"
        ov.save_model(sk.rewrite(core.read_model(str(standard)), fuse_gelu=False).model, str(unfused),
                      compress_to_fp16=False)
        fused_layers = sum(layer["activation"] != "none" for layer in sk.rewrite(core.read_model(str(standard))).layers)
        files = {"int8": standard, "sparse-unfused": unfused, "sparse-fused": args.out / f"{sk.SPARSE_IR_NAME}.xml"}
        requests = {v: request(core, files[v], shape, shape, args.threads) for v in VARIANTS}
    times = interleaved(requests, args.rounds, args.iters)

    def ratios(a: str, b: str) -> dict[str, float]:
        return spread([x / y for x, y in zip(times[a], times[b], strict=True)])

    report = {
        "command": [sys.executable, *sys.argv], "cpu": cpu_model(), "cores": os.cpu_count(),
        "openvino": ov.get_version(), ISA_ENV: os.environ.get(ISA_ENV), "threads": args.threads,
        "batch": args.batch, "seq_len": args.seq_len, "rounds": args.rounds, "iters_per_round": args.iters,
        "gelu_fused_layers": fused_layers,
        "median_ms": {v: round(statistics.median(times[v]), 3) for v in VARIANTS},
        "per_round_ms": {v: [round(t, 3) for t in times[v]] for v in VARIANTS},
        "speedup_fused_over_unfused": ratios("sparse-unfused", "sparse-fused"),
        "speedup_fused_over_int8": ratios("int8", "sparse-fused"),
        "speedup_unfused_over_int8": ratios("int8", "sparse-unfused"),
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
