"""Whole-model A/B of the sparse-kernel IR's fusions: the op alone, with the GELU fused, and with the GELU
fused and the u8 hand-off from the first FFN op to the second, against the standard INT8 IR, timed
interleaved in one process.

Why in one process: on the 2-core KVM guest these figures come from, the sparse IR's speed is bimodal
across time (benchmarks/README.md, issue 10), so two separate runs can differ by 30% for reasons that
have nothing to do with the change; interleaved rounds in one process see the same machine state. The
three sparse IRs are written here from the folder's standard IR (``sparse_kernel.rewrite`` with
``fuse_gelu`` / ``handoff``). Per round, each IR runs ``--iters`` sync inferences and gives its median;
the report gives the median of the per-round ratios with their min and max.

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

# variant -> rewrite options (None: the standard IR)
VARIANTS: dict[str, dict[str, bool] | None] = {
    "int8": None,
    "sparse-unfused": {"fuse_gelu": False, "handoff": False},
    "sparse-gelu": {"fuse_gelu": True, "handoff": False},
    "sparse-gelu-u8": {"fuse_gelu": True, "handoff": True},
}


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
    fused: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for v, options in VARIANTS.items():
            if options is None:
                files[v] = standard
                continue
            result = sk.rewrite(core.read_model(str(standard)), **options)
            fused[v] = {"gelu": sum(la["activation"] != "none" for la in result.layers),
                        "u8_handoffs": sum(bool(la["u8_output_to"]) for la in result.layers)}
            files[v] = Path(tmp) / f"{v}.xml"
            ov.save_model(result.model, str(files[v]), compress_to_fp16=False)
        requests = {v: request(core, files[v], shape, shape, args.threads) for v in VARIANTS}
    times = interleaved(requests, args.rounds, args.iters)

    def ratios(a: str, b: str) -> dict[str, float]:
        return spread([x / y for x, y in zip(times[a], times[b], strict=True)])

    report = {
        "command": [sys.executable, *sys.argv], "cpu": cpu_model(), "cores": os.cpu_count(),
        "openvino": ov.get_version(), ISA_ENV: os.environ.get(ISA_ENV), "threads": args.threads,
        "batch": args.batch, "seq_len": args.seq_len, "rounds": args.rounds, "iters_per_round": args.iters,
        "fused_layers": fused,
        "median_ms": {v: round(statistics.median(times[v]), 3) for v in VARIANTS},
        "per_round_ms": {v: [round(t, 3) for t in times[v]] for v in VARIANTS},
        "speedup_gelu_over_unfused": ratios("sparse-unfused", "sparse-gelu"),
        "speedup_u8_over_gelu": ratios("sparse-gelu", "sparse-gelu-u8"),
        "speedup_all_over_unfused": ratios("sparse-unfused", "sparse-gelu-u8"),
        "speedup_over_int8": {v: ratios("int8", v) for v in VARIANTS if v != "int8"},
    }
    for key in ("speedup_gelu_over_unfused", "speedup_u8_over_gelu", "speedup_all_over_unfused"):
        r = report[key]
        print(f"{key}: {r['median']:.3f}x [{r['min']:.3f}-{r['max']:.3f}]")
    print("over int8: " + ", ".join(f"{v} {r['median']:.2f}x" for v, r in report["speedup_over_int8"].items()))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
