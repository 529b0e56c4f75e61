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

import sys

import ab_common as ab


def main(argv: list[str] | None = None) -> int:
    args = ab.parser(__doc__.splitlines()[0], rounds=8, iters=40).parse_args(argv)
    if (code := ab.rerun_with_isa(args.isa)) is not None:
        return code

    from pofa_deploy.sparse_kernel import SPARSE_IR_NAME

    core = ab.core_with_extension()
    shape = [args.batch, args.seq_len]
    requests = {}
    for ir, file in (("int8", "openvino_model.xml"), ("sparse", f"{SPARSE_IR_NAME}.xml")):
        for kind, static in (("static", shape), ("dynamic", None)):
            requests[f"{ir}-{kind}"] = ab.request(core, args.out / file, static, shape, args.threads)
    times = ab.interleaved(requests, args.rounds, args.iters)
    extra = {ir: [d - s for d, s in zip(times[f"{ir}-dynamic"], times[f"{ir}-static"], strict=True)]
             for ir in ("int8", "sparse")}
    report = {**ab.report_header(args), "shape": shape, **ab.medians(times),
              "dynamic_minus_static_ms": {ir: ab.spread(v) for ir, v in extra.items()}}
    for ir, v in report["dynamic_minus_static_ms"].items():
        print(f"dynamic shapes cost {ir}: +{v['median']:.2f} ms per inference [{v['min']:.2f}, {v['max']:.2f}]")
    ab.write_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
