"""Whole-model A/B of the sparse-kernel IR's fusions: the op alone, with the GELU fused, with the GELU
fused and the u8 hand-off from the first FFN op to the second (row-major codes), with all that and q/k/v
as one op (shared input), and with the hand-off in the second op's packed layout (panel), against the
standard INT8 IR, timed interleaved in one process.

Why in one process: on the 2-core KVM guest these figures come from, the sparse IR's speed is bimodal
across time (benchmarks/README.md, issue 10), so two separate runs can differ by 30% for reasons that
have nothing to do with the change; interleaved rounds in one process see the same machine state. The
four sparse IRs are written here from the folder's standard IR (``sparse_kernel.rewrite`` with
``fuse_gelu`` / ``handoff`` / ``panel`` / ``shared_input``). Per round, each IR runs ``--iters`` sync inferences and
gives its median; the report gives the median of the per-round ratios with their min and max.

    .venv/bin/python benchmarks/fusion_ab.py OUT -b 1 --isa avx512_vnni -o results/sparse-kernel/fusion.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import ab_common as ab

# variant -> rewrite options (None: the standard IR)
VARIANTS: dict[str, dict[str, bool] | None] = {
    "int8": None,
    "sparse-unfused": {"fuse_gelu": False, "handoff": False, "shared_input": False},
    "sparse-gelu": {"fuse_gelu": True, "handoff": False, "shared_input": False},
    "sparse-gelu-u8": {"fuse_gelu": True, "handoff": True, "panel": False, "shared_input": False},
    "sparse-gelu-u8-qkv": {"fuse_gelu": True, "handoff": True, "panel": False, "shared_input": True},
    "sparse-gelu-panel-qkv": {"fuse_gelu": True, "handoff": True, "panel": True, "shared_input": True},
}


def main(argv: list[str] | None = None) -> int:
    args = ab.parser(__doc__.splitlines()[0], rounds=10, iters=30).parse_args(argv)
    if (code := ab.rerun_with_isa(args.isa)) is not None:
        return code

    import openvino as ov

    from pofa_deploy import sparse_kernel as sk

    core = ab.core_with_extension()
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
                        "u8_handoffs": sum(bool(la["u8_output_to"]) for la in result.layers),
                        "panel_handoffs": sum(bool(la["u8_output_to"]) and la["handoff"] == "panel"
                                              for la in result.layers),
                        "ops": len({la["op"] for la in result.layers})}
            files[v] = Path(tmp) / f"{v}.xml"
            ov.save_model(result.model, str(files[v]), compress_to_fp16=False)
        requests = {v: ab.request(core, files[v], shape, shape, args.threads) for v in VARIANTS}
    times = ab.interleaved(requests, args.rounds, args.iters)

    def ratios(a: str, b: str) -> dict[str, float]:
        return ab.spread([x / y for x, y in zip(times[a], times[b], strict=True)])

    report = {
        **ab.report_header(args), "fused_layers": fused, **ab.medians(times),
        "speedup_gelu_over_unfused": ratios("sparse-unfused", "sparse-gelu"),
        "speedup_u8_over_gelu": ratios("sparse-gelu", "sparse-gelu-u8"),
        "speedup_qkv_over_u8": ratios("sparse-gelu-u8", "sparse-gelu-u8-qkv"),
        "speedup_panel_over_qkv": ratios("sparse-gelu-u8-qkv", "sparse-gelu-panel-qkv"),
        "speedup_all_over_unfused": ratios("sparse-unfused", "sparse-gelu-panel-qkv"),
        "speedup_over_int8": {v: ratios("int8", v) for v in VARIANTS if v != "int8"},
    }
    for key in ("speedup_gelu_over_unfused", "speedup_u8_over_gelu", "speedup_qkv_over_u8", "speedup_panel_over_qkv",
                "speedup_all_over_unfused"):
        r = report[key]
        print(f"{key}: {r['median']:.3f}x [{r['min']:.3f}-{r['max']:.3f}]")
    print("over int8: " + ", ".join(f"{v} {r['median']:.2f}x" for v, r in report["speedup_over_int8"].items()))
    ab.write_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
