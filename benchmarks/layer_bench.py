"""Per-layer microbenchmark: SparseFullyConnected vs OpenVINO's own dense INT8 FullyConnected.

The dense baseline is one Linear quantised the NNCF way (per-tensor FakeQuantize on the activation,
symmetric per-channel i8 weights: Constant(i8) -> Convert -> Multiply(scale) -> MatMul -> Add(bias)),
which the CPU plugin runs as an INT8 FullyConnected (its execType is recorded, so a silent fallback to
f32 would show). The sparse variant is the same model through ``pofa_deploy.sparse_kernel.rewrite``:
identical weights, codes and FakeQuantize. Both are compiled at the static shape [1, M, K] (``--dynamic``:
[?, ?, K], where the plugin re-clones the custom op at every call) with INFERENCE_PRECISION_HINT=f32, one
stream, N threads, and timed in interleaved rounds (A B, then B A, ...); each round gives a ratio
dense/sparse of median latencies, and the report gives the median ratio with its spread over rounds.

``--harness cpp`` runs the same interleaved rounds from C++ (``infer_loop.cpp``, compiled here against
the openvino wheel's headers): a Python ``request.infer()`` adds ~4 us per call to both sides, which
pulls the ratio of a small layer towards 1 (768 x 768 at 128 tokens infers in ~36 us).

``--isa avx512_vnni`` caps oneDNN at AVX512_CORE_VNNI (no AMX): the cap must be in the environment
before openvino is loaded, so the script re-executes itself in a child with ONEDNN_MAX_CPU_ISA set.

Also reported per case (the instructions-per-useful-MAC reasoning): the vpdpbusd instructions the
sparse kernel issues (its records, each four nonzeros of a row, x 16-token vectors), the useful
MACs (nonzeros x tokens), the share of vpdpbusd lanes doing useful work, the vpdpbusd count a dense
VNNI kernel needs (M x K x N / 64), whose ratio bounds what the sparse kernel can gain at equal
instruction throughput, and the loads and interleaves each vpdpbusd needs besides.

    .venv/bin/python benchmarks/layer_bench.py --isa avx512_vnni -o layer_bench.json
    .venv/bin/python benchmarks/layer_bench.py --isa avx512_vnni -m 128 -s 0.9 --harness cpp
    .venv/bin/python benchmarks/layer_bench.py --smoke        # seconds: checks the script, not the CPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ab_common as ab
import numpy as np

SHAPES = [(768, 768), (768, 3072), (3072, 768), (1024, 4096), (4096, 1024)]
TOKENS = [16, 128, 1024]
SPARSITY = [0.8, 0.9, 0.95]


def random_codes(rng: np.random.Generator, k: int, n: int, sparsity: float) -> np.ndarray:
    """i8 weight codes [n, k] with ``sparsity`` of them zero (unstructured)."""
    codes = rng.integers(-127, 128, (n, k)).astype(np.int8)
    codes[rng.random((n, k)) < sparsity] = 0
    return codes


def activation_fq(x: Any) -> Any:
    """NNCF's per-tensor symmetric activation FakeQuantize on ``x``."""
    import openvino.opset13 as ops

    step = 3.0 / 127  # NNCF's symmetric signed range: [-128, 127] * step, levels 256
    lo, hi = ops.constant(np.float32(-128 * step)), ops.constant(np.float32(127 * step))
    return ops.fake_quantize(x, lo, hi, lo, hi, 256)


def quantised_linear(x: Any, codes: np.ndarray, scale: np.ndarray, bias: np.ndarray, *,
                     fq: Any | None = None) -> Any:
    """NNCF's shape of a quantised Linear on ``x``: activation FakeQuantize (its own, or ``fq`` shared
    with other Linears, as q, k and v share one), Constant(i8) -> Convert -> Multiply(per-channel
    scale) -> MatMul -> Add(bias)."""
    import openvino as ov
    import openvino.opset13 as ops

    fq = activation_fq(x) if fq is None else fq
    w = ops.multiply(ops.convert(ops.constant(codes), ov.Type.f32), ops.constant(scale))
    return ops.add(ops.matmul(fq, w, False, True), ops.constant(bias))


def make_layer(k: int, n: int, sparsity: float, seed: int) -> tuple[Any, np.ndarray]:
    """The NNCF-shaped quantised Linear (per-tensor symmetric activation FQ, i8 per-channel weights)."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)
    codes = random_codes(rng, k, n, sparsity)
    scale = (rng.random((n, 1)) * 0.01 + 0.001).astype(np.float32)
    bias = rng.standard_normal((1, 1, n)).astype(np.float32)
    x = ops.parameter([-1, -1, k], ov.Type.f32, name="x")
    return ov.Model([quantised_linear(x, codes, scale, bias).output(0)], [x], "layer"), codes


def record_count(codes: np.ndarray, k_block: int = 512) -> int:
    """Records as ext/sparse_fc.cpp's pack_records builds them: per row and K block of ``k_block``
    positions, the row's nonzeros four per record (the last one of a K block may hold fewer)."""
    n, k = codes.shape
    blocks = -(-k // k_block)
    padded = np.zeros((n, blocks * k_block), dtype=bool)
    padded[:, :k] = codes != 0
    per_block = padded.reshape(n, blocks, k_block).sum(-1)
    return int((-(-per_block // 4)).sum())


def instruction_counts(codes: np.ndarray, m: int) -> dict[str, Any]:
    """vpdpbusd issued by the sparse kernel against the useful MACs and against a dense VNNI kernel, and
    per vpdpbusd the 64-byte activation loads and the interleaves (vpunpck*bw, vpunpck*wd) it needs. A
    record (four nonzeros of a row) costs, per 64-token chunk, 4 loads, 8 interleaves and 4 vpdpbusd
    (one per 16 tokens); a tile of at most 16 tokens: 4 loads, 3 interleaves, 1 vpdpbusd; of 17-32
    tokens: 4 loads, 4 interleaves, 2 vpdpbusd."""
    n, k = codes.shape
    nonzeros = int(np.count_nonzero(codes))
    records = record_count(codes)
    groups = 1 if m <= 16 else (2 if m <= 32 else 4 * -(-m // 64))  # 16-token vectors per record
    chunks = -(-m // 64)
    issued = records * groups
    interleaves = records * (3 if m <= 16 else (4 if m <= 32 else 8 * chunks))
    loads = records * 4 * chunks
    dense = m * k * n / 64
    return {"nonzeros": nonzeros, "records": records,
            "nonzeros_per_record": round(nonzeros / max(records, 1), 4),
            "vpdpbusd_sparse": issued, "vpdpbusd_dense": int(dense),
            "useful_lane_share_sparse": round(nonzeros * m / max(issued * 64, 1), 4),
            "instruction_bound_speedup": round(dense / max(issued, 1), 3),
            "interleaves_per_vpdpbusd": round(interleaves / max(issued, 1), 3),
            "activation_loads_per_vpdpbusd": round(loads / max(issued, 1), 3)}


def exec_types(compiled: Any) -> list[str]:
    """layerType:runtimePrecision:primitiveType of the compute nodes the CPU plugin actually runs."""
    def get(rt: Any, key: str) -> str:
        return str(rt[key].astype(str)) if key in rt else "?"

    out = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        layer = get(rt, "layerType")
        if layer in ("FullyConnected", "MatMul", "Reference") or "Sparse" in layer:
            out.append(f"{layer}:{get(rt, 'runtimePrecision')}:{get(rt, 'primitiveType')}")
    return out


def timed(request: Any, iters: int) -> float:
    # share_outputs: the Python API would otherwise copy the output into a new numpy array on every
    # call (1.5 MB at M=128, N=3072), time that belongs to neither kernel.
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        request.infer(share_inputs=True, share_outputs=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cpp_rounds(models: dict[str, Any], x: np.ndarray, args: argparse.Namespace, binary: Path) -> dict[str, list[float]]:
    """Per variant, the median seconds per round from ``binary`` (infer_loop.cpp: no Python call per
    inference), with the same rounds, order, iterations and compile options as the Python loop."""
    import subprocess

    import openvino as ov

    from pofa_deploy.extension import extension_path

    with tempfile.TemporaryDirectory(prefix="pofa-layer-bench-") as tmp:
        xmls = []
        for name, model in models.items():
            xml = Path(tmp) / f"{name}.xml"
            ov.save_model(model, str(xml), compress_to_fp16=False)
            xmls.append(str(xml))
        x.tofile(Path(tmp) / "x.f32")  # f32 already (run_case makes it)
        run = subprocess.run([str(binary), str(extension_path()), str(args.threads), str(args.rounds), str(args.iters),
                              str(args.warmup), str(Path(tmp) / "x.f32"), *xmls], capture_output=True, text=True)
    if run.returncode != 0:
        raise ab.InferLoopError(run.stderr.strip() or f"infer_loop exited with {run.returncode}")
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    names = list(models)
    return {names[0]: [r["a_us"] * 1e-6 for r in rows], names[1]: [r["b_us"] * 1e-6 for r in rows]}


def run_case(core: Any, k: int, n: int, m: int, sparsity: float, args: argparse.Namespace,
             infer_loop: Path | None = None) -> dict[str, Any]:
    """One layer timed dense against sparse; with ``infer_loop`` (a built infer_loop.cpp) from C++."""
    import openvino as ov

    model, codes = make_layer(k, n, sparsity, seed=k * 7 + n + int(sparsity * 100))
    sparse = ab.sparse_twin(core, model)
    if not args.dynamic:
        # Static [1, M, K], as `pofa-deploy benchmark` and `benchmark_app -shape` run: with a dynamic shape
        # the CPU plugin clones and re-validates every custom op at every inference (its fallback shape
        # inference, ~8 us per op call here), a cost benchmarks/dynamic_shape_cost.py measures apart.
        for mdl in (model, sparse):
            mdl.reshape([1, m, k])
    config = ab.latency_config(args.threads)
    compiled = {"dense": core.compile_model(model, "CPU", config), "sparse": core.compile_model(sparse, "CPU", config)}
    x = (np.random.default_rng(1).standard_normal((1, m, k)) * 0.7).astype(np.float32)
    requests = {}
    for name, c in compiled.items():
        r = c.create_infer_request()
        r.set_input_tensor(ov.Tensor(x))
        for _ in range(args.warmup):
            r.infer()
        requests[name] = r
    ya, yb = (requests[v].get_output_tensor().data for v in ("dense", "sparse"))
    max_rel = float(np.abs(ya - yb).max() / (np.abs(ya).max() + 1e-12))
    if infer_loop is not None:
        per_round = cpp_rounds({"dense": model, "sparse": sparse}, x, args, infer_loop)
    else:
        per_round = {"dense": [], "sparse": []}
        for rnd in range(args.rounds):
            order = ("dense", "sparse") if rnd % 2 == 0 else ("sparse", "dense")
            for v in order:
                per_round[v].append(timed(requests[v], args.iters))
    ratios = [d / s for d, s in zip(per_round["dense"], per_round["sparse"], strict=True)]
    q = np.quantile(ratios, [0.1, 0.5, 0.9]) if len(ratios) > 1 else np.array(ratios * 3)
    return {"K": k, "N": n, "M": m, "sparsity": sparsity,
            "dense_ms": round(statistics.median(per_round["dense"]) * 1e3, 4),
            "sparse_ms": round(statistics.median(per_round["sparse"]) * 1e3, 4),
            "speedup_median": round(float(q[1]), 3), "speedup_p10": round(float(q[0]), 3),
            "speedup_p90": round(float(q[2]), 3), "rounds": args.rounds, "iters_per_round": args.iters,
            "max_rel_diff_vs_dense": max_rel, "dense_exec": exec_types(compiled["dense"]),
            "sparse_exec": exec_types(compiled["sparse"]), **instruction_counts(codes, m)}


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def _shapes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        k, n = item.lower().split("x")
        out.append((int(k), int(n)))
    return out


def report_case(r: dict[str, Any]) -> None:
    """One line per case, and a warning when the two layers' outputs disagree."""
    print(f"K={r['K']:5d} N={r['N']:5d} M={r['M']:5d} sparsity={r['sparsity']:.2f}  dense {r['dense_ms']:8.3f} ms  "
          f"sparse {r['sparse_ms']:8.3f} ms  speedup {r['speedup_median']:.2f}x "
          f"[{r['speedup_p10']:.2f}, {r['speedup_p90']:.2f}]  lanes useful "
          f"{r['useful_lane_share_sparse']:.2f}  bound {r['instruction_bound_speedup']:.2f}x  "
          f"loads/vpdpbusd {r['activation_loads_per_vpdpbusd']:.2f}  "
          f"interleaves/vpdpbusd {r['interleaves_per_vpdpbusd']:.2f}", flush=True)
    if r["max_rel_diff_vs_dense"] > 1e-3:
        print(f"  warning: outputs differ from dense by {r['max_rel_diff_vs_dense']:.2e} (relative)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--isa", choices=sorted(ab.ISA), default="avx512_vnni", help="oneDNN ISA cap for the dense baseline")
    p.add_argument("--shapes", type=_shapes, default=SHAPES, help="KxN list, e.g. 768x3072,3072x768")
    p.add_argument("-m", "--tokens", type=_ints, default=TOKENS, help="M values (batch x tokens)")
    p.add_argument("-s", "--sparsity", type=_floats, default=SPARSITY, help="shares of zero weights")
    p.add_argument("-t", "--threads", type=int, default=2, help="INFERENCE_NUM_THREADS")
    p.add_argument("--rounds", type=int, default=9, help="interleaved rounds per case")
    p.add_argument("--iters", type=int, default=30, help="inferences per variant per round (median taken)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--dynamic", action="store_true",
                   help="compile with the dynamic input shape [?, ?, K] instead of the static [1, M, K]")
    p.add_argument("--kernel", choices=["auto", "generic", "vnni"], default="auto", help="POFA_SPARSE_KERNEL")
    p.add_argument("--harness", choices=["python", "cpp"], default="python",
                   help="time with Python's request.infer, or from C++ (infer_loop.cpp: without the ~4 us a "
                        "Python call adds to both sides; needs a C++ compiler)")
    p.add_argument("--smoke", action="store_true", help="one tiny case, 2 rounds: checks the script only")
    p.add_argument("-o", "--output", type=Path, help="JSON report (default: stdout only)")
    args = p.parse_args(argv)

    if args.dynamic and args.harness == "cpp":
        p.error("--harness cpp times the static shape only (infer_loop fills each request's own input tensor)")
    if (code := ab.rerun_with_isa(args.isa)) is not None:
        return code
    os.environ["POFA_SPARSE_KERNEL"] = args.kernel
    if args.smoke:
        args.shapes, args.tokens, args.sparsity, args.rounds, args.iters, args.warmup = [(96, 80)], [33], [0.9], 2, 3, 1

    core = ab.core_with_extension()
    results = []
    with tempfile.TemporaryDirectory(prefix="pofa-infer-loop-") as tmp:
        try:
            infer_loop = ab.build_infer_loop(Path(tmp)) if args.harness == "cpp" else None
            for k, n in args.shapes:
                for m in args.tokens:
                    for s in args.sparsity:
                        results.append(run_case(core, k, n, m, s, args, infer_loop))
                        report_case(results[-1])
        except ab.InferLoopError as e:
            print(f"layer_bench.py: {e}", file=sys.stderr)
            return 2
    report = {**ab.report_header(args), "kernel": args.kernel, "harness": args.harness,
              "shape": "dynamic" if args.dynamic else "static", "smoke": args.smoke, "results": results}
    ab.write_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
