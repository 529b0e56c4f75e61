"""What fusing q, k and v into one op buys: three 768 x 768 SparseFullyConnected ops on one input (each
quantises and packs the shared input, as the sparse IR ran them before session 7) against one 768 x 2304
op, with and without the VariadicSplit a single-output fused op would need (the estimate made before
building it), and against the op built since: three Linears reading one FakeQuantize, rewritten into one
op with three outputs (``out_splits``). Static shapes, interleaved rounds (90% zeros, synthetic weights;
timings only, the outputs are not compared).

    .venv/bin/python benchmarks/qkv_fusion_estimate.py -m 16,128,1024 --isa avx512_vnni \
        -o results/sparse-kernel/qkv-fusion-built.json
"""

from __future__ import annotations

import sys
from typing import Any

import ab_common as ab
import numpy as np
from layer_bench import activation_fq, quantised_linear, random_codes


def qkv_models(m: int, seed: int) -> dict[str, Any]:
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)

    def linear(x: Any, n: int, fq: Any | None = None) -> Any:
        scale = (rng.random((n, 1)) * 0.01 + 0.0005).astype(np.float32)
        return quantised_linear(x, random_codes(rng, 768, n, 0.9), scale, np.zeros((1, 1, n), np.float32), fq=fq)

    def inp() -> Any:
        return ops.parameter([1, m, 768], ov.Type.f32, name="x")

    x = inp()
    three = ov.Model([linear(x, 768).output(0) for _ in range(3)], [x], "three")
    x = inp()
    fused = linear(x, 2304)
    split = ops.variadic_split(fused, ops.constant(np.int64(-1)), ops.constant(np.array([768, 768, 768], np.int64)))
    with_split = ov.Model([split.output(i) for i in range(3)], [x], "one_op_split")
    x = inp()
    one = ov.Model([linear(x, 2304).output(0)], [x], "one_op")
    x = inp()
    fq = activation_fq(x)
    three_outputs = ov.Model([linear(x, 768, fq).output(0) for _ in range(3)], [x], "one_op_three_outputs")
    return {"three-ops": three, "one-op+split": with_split, "one-op": one, "one-op-3-outputs": three_outputs}


def main(argv: list[str] | None = None) -> int:
    args = ab.layer_options(__doc__.splitlines()[0], rounds=12, iters=40).parse_args(argv)
    if (code := ab.rerun_with_isa(args.isa)) is not None:
        return code
    ab.apply_smoke(args)
    core = ab.core_with_extension()
    report = {**ab.report_header(args), "results": []}
    for m in args.tokens:
        x = (np.random.default_rng(1).standard_normal((1, m, 768)) * 0.7).astype(np.float32)
        twins = {v: ab.sparse_twin(core, model) for v, model in qkv_models(m, seed=m).items()}
        ops = {v: sum(op.get_type_name() == "SparseFullyConnected" for op in twin.get_ordered_ops())
               for v, twin in twins.items()}
        if ops != {"three-ops": 3, "one-op+split": 1, "one-op": 1, "one-op-3-outputs": 1}:
            raise SystemExit(f"the variants are not what their names say: SparseFullyConnected nodes {ops}")
        requests = {v: ab.model_request(core, twin, x, args.threads) for v, twin in twins.items()}
        times = ab.interleaved(requests, args.rounds, args.iters)
        result = {"M": m, "sparse_ops": ops, **ab.medians(times), "three_ops_over": {
            v: ab.spread([a / b for a, b in zip(times["three-ops"], times[v], strict=True)])
            for v in ("one-op+split", "one-op", "one-op-3-outputs")}}
        report["results"].append(result)
        gains = ", ".join(f"{v} {r['median']:.3f}x" for v, r in result["three_ops_over"].items())
        print(f"M={m}: " + ", ".join(f"{v} {t * 1e3:.1f} us" for v, t in result["median_ms"].items())
              + f"; three ops over: {gains}")
    ab.write_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
