"""Time a converted model against its dense baselines, the way benchmark_app would, in one run.

Variants (``--variants``), all on the same inputs and shapes:
  pytorch-fp32  the source checkpoint in PyTorch FP32 eager mode: what a user runs today (baseline)
  ov-fp32       an OpenVINO FP32 IR of the same source, compiled with INFERENCE_PRECISION_HINT=f32
  ov-bf16       the same IR with INFERENCE_PRECISION_HINT=bf16 (needs avx512_bf16 or amx_bf16)
  int8          the converted INT8 IR with sparse-weight decompression OFF
  int8-sparse   the same IR with decompression ON (rate from runtime_config.json or --sparse-rate)
  int8-pofa-sparse  openvino_model_sparse.xml: the sparse Linears on pofa-deploy's SparseFullyConnected
                op (C++ extension), the rest as int8
  int8-dense    a dense model's INT8 IR (--dense), for "sparse INT8 vs dense INT8"
  ort-fp32      peer: the source exported to ONNX (torch.onnx, dynamo) in ONNX Runtime, FP32
  ort-int8      peer: that ONNX model after onnxruntime's quantize_dynamic (INT8 weights)
                (the peers run only when --variants lists them; pip install -e .[peers])

Noise: the variants run in interleaved rounds (A B C A B C ...), each round a fixed share of the
time (-t) or iteration (-niter) budget, so a slow phase of the machine hits all of them alike; the
speed-up of each variant over the baseline is computed per round and reported as the median with
its interquartile range and extremes (see DEFINITIONS, which every result carries).

``--isa avx512_vnni`` runs every variant as on a Xeon without AMX: the run moves into a child process
with ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI (it must be set before OpenVINO loads) and f32 for non-INT8 ops.

Knobs mirror benchmark_app (-api, -hint, -nstreams, -nireq, -nthreads, -b, -shape, -t, -niter,
-load_config, -latency_percentile, -pc, -json_stats) with the same meanings. ``--peak`` measures this
CPU's dense INT8/FP32/BF16 MatMul ceiling through OpenVINO and caches it, so every variant can say
what share of the ceiling it reaches.

The package, one concept a module: ``options`` (BenchmarkOptions, the enums), ``stats`` (percentiles,
ratios, spread, bootstrap, interleaving), ``flops``, ``peak``, ``inputs``, ``plan`` (what each variant
runs), ``onnx_export`` (the peers' ONNX export, quantisation and session), ``runners`` (OpenVINO,
PyTorch and ONNX Runtime), ``run`` (``benchmark()`` -> ``BenchmarkResult``), ``result``
(the typed result and its JSON), ``command`` (the CLI's ``main``). Importing this package loads only
``options``; the rest is imported when a benchmark runs.

Imports: only numpy and openvino at run time. torch is imported only by the pytorch-fp32 variant (and
the ort-* export), onnxruntime/onnx only by the ort-* peers,
nncf only by --peak (with a hand-built FakeQuantize graph when nncf is missing), transformers only
to tokenise realistic inputs (random in-vocabulary ids otherwise), so a machine with nothing but
openvino can benchmark pre-converted IR folders.
"""

from __future__ import annotations

from .options import (
    DEFAULT_BATCH,
    DEFAULT_PEAK_SHAPE,
    DEFAULT_SEQ_LEN,
    DEFAULT_TIME_S,
    VARIANT_DESCRIPTIONS,
    Api,
    BenchmarkOptions,
    Hint,
    Variant,
    cache_root,
    parse_shape,
)

OPTIONS = BenchmarkOptions

__all__ = ["DEFAULT_BATCH", "DEFAULT_PEAK_SHAPE", "DEFAULT_SEQ_LEN", "DEFAULT_TIME_S", "OPTIONS",
           "VARIANT_DESCRIPTIONS", "Api", "BenchmarkOptions", "Hint", "Variant", "cache_root", "main", "parse_shape"]


def main(options: BenchmarkOptions) -> int:
    """``pofa-deploy benchmark``: see command.main (imported here, so the package import stays light)."""
    from .command import main as run_command

    return run_command(options)
