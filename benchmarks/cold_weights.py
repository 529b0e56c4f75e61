"""Does the sparse op slow down when its weights come from memory, as in a model? A chain of PAIRS
distinct FFN layer pairs (768 -> 3072 -> 768, 90% zeros), each layer's weights read once per inference
as in a transformer, against one such pair (its weights stay cached between inferences), for
OpenVINO's dense INT8 FullyConnected and for SparseFullyConnected, static shapes, interleaved rounds.
Reported: ms per layer, and the cold/warm ratio per variant.

Why: at 16 tokens the op is level with dense in the per-layer script but half its speed inside a
model; at 16 tokens each weight record feeds one ``vpdpbusd``, so the record stream's bytes matter.

    .venv/bin/python benchmarks/cold_weights.py -m 16,128 --isa avx512_vnni -o results/sparse-kernel/cold-weights.json
"""

from __future__ import annotations

import sys
from typing import Any

import ab_common as ab
import numpy as np
from layer_bench import quantised_linear, random_codes


def ffn_chain(m: int, pairs: int, seed: int) -> Any:
    """PAIRS pairs of 90%-sparse quantised Linears 768 -> 3072 -> 768 on a [1, m, 768] input."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)
    x = ops.parameter([1, m, 768], ov.Type.f32, name="x")
    h = x
    for _ in range(pairs):
        for k, n in ((768, 3072), (3072, 768)):
            scale = (rng.random((n, 1)) * 0.01 / np.sqrt(k / 768) + 0.0005).astype(np.float32)
            h = quantised_linear(h, random_codes(rng, k, n, 0.9), scale, np.zeros((1, 1, n), np.float32))
    return ov.Model([h.output(0)], [x], "ffn_chain")


def main(argv: list[str] | None = None) -> int:
    p = ab.layer_options(__doc__.splitlines()[0], rounds=10, iters=20)
    p.add_argument("--pairs", type=int, default=6, help="FFN pairs in the cold chain (DistilBERT has 6)")
    args = p.parse_args(argv)
    if (code := ab.rerun_with_isa(args.isa)) is not None:
        return code
    ab.apply_smoke(args)
    if args.smoke:
        args.pairs = 1
    core = ab.core_with_extension()
    report = {**ab.report_header(args), "pairs": args.pairs, "results": []}
    for m in args.tokens:
        x = (np.random.default_rng(1).standard_normal((1, m, 768)) * 0.7).astype(np.float32)
        layers = {"warm": 2, "cold": 2 * args.pairs}
        requests = {}
        for label, pairs in (("warm", 1), ("cold", args.pairs)):
            dense = ffn_chain(m, pairs, seed=pairs)
            requests[f"dense-{label}"] = ab.model_request(core, dense, x, args.threads)
            requests[f"sparse-{label}"] = ab.model_request(core, ab.sparse_twin(core, dense), x, args.threads)
        times = ab.interleaved(requests, args.rounds, args.iters)
        per_layer = {v: [t / layers[v.split("-")[1]] for t in ts] for v, ts in times.items()}
        result = {"M": m, **ab.medians(per_layer), "cold_over_warm": {
            v: ab.spread([c / w for c, w in zip(per_layer[f"{v}-cold"], per_layer[f"{v}-warm"], strict=True)])
            for v in ("dense", "sparse")}}
        report["results"].append(result)
        print(f"M={m}: ms per layer " + ", ".join(f"{v} {t:.4f}" for v, t in result["median_ms"].items())
              + "; cold/warm " + ", ".join(f"{v} {r['median']:.2f}x" for v, r in result["cold_over_warm"].items()))
    ab.write_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
