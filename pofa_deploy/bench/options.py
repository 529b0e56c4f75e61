"""What a benchmark run is asked to do: the options dataclass (the CLI flags are generated from it),
the variant/API/hint enums and the shape parser. Light on purpose: ``import pofa_deploy.bench`` loads
only this module, so ``pofa-deploy --help`` and the option checks need neither numpy nor openvino."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .. import environment
from ..errors import InputError
from ..options import at_least, coerce_fields, flag_name, option

DEFAULT_TIME_S = 10.0
DEFAULT_BATCH = 1
DEFAULT_SEQ_LEN = 128
DEFAULT_PEAK_SHAPE = (1024, 4096, 4096)  # --peak-shape's default: the ceiling "% of peak" is taken against


class Api(StrEnum):
    SYNC = "sync"
    ASYNC = "async"


class Hint(StrEnum):
    LATENCY = "latency"
    THROUGHPUT = "throughput"
    NONE = "none"


class Variant(StrEnum):
    PYTORCH_FP32 = "pytorch-fp32"
    OV_FP32 = "ov-fp32"
    OV_BF16 = "ov-bf16"
    INT8 = "int8"
    INT8_SPARSE = "int8-sparse"
    INT8_POFA_SPARSE = "int8-pofa-sparse"
    INT8_DENSE = "int8-dense"
    ORT_FP32 = "ort-fp32"
    ORT_INT8 = "ort-int8"


# The peers: other engines a user would pick instead, run only when --variants lists them (the optional
# peers extra, and an ONNX export of the source into the cache).
PEER_VARIANTS = (Variant.ORT_FP32, Variant.ORT_INT8)


class Isa(StrEnum):
    """--isa: the instruction set the variants may use. avx512_vnni runs them as on a Xeon without AMX
    (Cascade Lake, Ice Lake): oneDNN capped with ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI, which must be set
    before OpenVINO loads (so the run happens in a child process), and f32 for non-INT8 ops (under the cap
    BF16 falls back to a slow reference GEMM)."""

    NATIVE = "native"
    AVX512_VNNI = "avx512_vnni"


ISA_CAP = {Isa.AVX512_VNNI: "AVX512_CORE_VNNI"}


VARIANT_DESCRIPTIONS: dict[Variant, str] = {
    Variant.PYTORCH_FP32: "source checkpoint, PyTorch FP32 eager (torch.inference_mode)",
    Variant.OV_FP32: "OpenVINO FP32 IR of the source, INFERENCE_PRECISION_HINT=f32",
    Variant.OV_BF16: "OpenVINO FP32 IR of the source, INFERENCE_PRECISION_HINT=bf16",
    Variant.INT8: "converted INT8 IR, sparse-weight decompression off",
    Variant.INT8_SPARSE: "converted INT8 IR, sparse-weight decompression on",
    Variant.INT8_POFA_SPARSE: "openvino_model_sparse.xml: sparse Linears on pofa-deploy's SparseFullyConnected op",
    Variant.INT8_DENSE: "INT8 IR of the dense model given with --dense",
    Variant.ORT_FP32: "source checkpoint exported to ONNX (torch.onnx, dynamo), ONNX Runtime FP32 on the CPU",
    Variant.ORT_INT8: "that ONNX model quantised by onnxruntime's quantize_dynamic (INT8 weights), ONNX Runtime",
}

def option_flag(field_name: str) -> str:
    """All spellings of a BenchmarkOptions flag, for error messages (``-t/--time``)."""
    return flag_name(BenchmarkOptions, field_name, every=True)


@dataclass(frozen=True, kw_only=True)
class BenchmarkOptions:
    # option() builds a dataclass field, so RUF009 (a call as a default) does not apply to these lines
    model: Path | None = option(
        None, positional=True, help="converted output folder (pofa-deploy convert MODEL -o OUT)")
    variants: tuple[Variant, ...] = option(
        (), flags=("--variants",), metavar="V[,V...]",
        help="comma list of pytorch-fp32, ov-fp32, ov-bf16, int8, int8-sparse, int8-pofa-sparse, int8-dense, "
             "ort-fp32, ort-int8 (default: all of them that apply, but int8-dense only with --dense and the "
             "ONNX Runtime peers ort-* only when listed: pip install -e .[peers])")
    api: Api | None = option(
        None, flags=("-api", "--api"),
        help="sync: one request, latency figures; async: nireq requests in flight, throughput (default: "
             "async with -hint throughput/none, else sync)")
    hint: Hint | None = option(
        None, flags=("-hint", "--hint"),
        help="PERFORMANCE_HINT; none sets no hint (default: latency for sync, throughput for async, unless "
             "-load_config sets one)")
    nstreams: int | None = option(
        None, flags=("-nstreams", "--nstreams"),
        help="NUM_STREAMS (overrides the hint's choice; benchmark_app wants -hint none with it)")
    nireq: int | None = option(
        None, flags=("-nireq", "--nireq"),
        help="infer requests in async mode (default: the plugin's optimal number)")
    nthreads: int | None = option(
        None, flags=("-nthreads", "--nthreads"),
        help="INFERENCE_NUM_THREADS, torch.set_num_threads for pytorch-fp32 and intra_op_num_threads for "
             "ort-* (default: every core this process may use)")
    batch: tuple[int, ...] = option(
        (), flags=("-b", "--batch"), metavar="B[,B...]",
        help=f"batch size(s), a comma list sweeps them (default: {DEFAULT_BATCH})")
    seq_len: tuple[int, ...] = option(
        (), flags=("--seq-len",), metavar="S[,S...]",
        help=f"sequence length(s), a comma list sweeps them (default: {DEFAULT_SEQ_LEN})")
    shape: str | None = option(
        None, flags=("-shape", "--shape"),
        help="benchmark_app style static shape, [B,S] or input_ids[B,S],attention_mask[B,S] (instead of "
             "-b/--seq-len)")
    time: float | None = option(
        None, flags=("-t", "--time"),
        help=f"seconds per variant and shape, split over the rounds (default: {DEFAULT_TIME_S:g} unless "
             "-niter)")
    niter: int | None = option(
        None, flags=("-niter", "--niter"),
        help="iterations per variant and shape, split over the rounds (instead of -t)")
    rounds: int = option(5, flags=("--rounds",), help="interleaved rounds (A B C A B C ...)")
    warmup: int = option(3, flags=("--warmup",), help="untimed inferences per variant after the first one")
    load_config: Path | None = option(
        None, flags=("-load_config", "--load-config"),
        help="JSON of OpenVINO properties ({\"CPU\": {...}}) applied to every OpenVINO variant on top of the "
             "folder's runtime_config.json")
    latency_percentile: int = option(
        50, flags=("-latency_percentile", "--latency-percentile"),
        help="extra latency percentile to report, 1..100")
    pc: bool = option(
        False, flags=("-pc", "--perf-counts"),
        help="per-layer performance counters (PERF_COUNT) by layer type and kernel, and which FullyConnected "
             "nodes ran sparse")
    json_stats: bool = option(
        False, flags=("-json_stats", "--json"),
        help="print the complete result as JSON on stdout (the table goes to stderr)")
    output_dir: Path | None = option(
        None, flags=("--output-dir",),
        help="where JSON, CSV, Markdown and PNG plots go (default: MODEL/benchmark)")
    no_plots: bool = option(False, flags=("--no-plots",), help="skip the PNG plots")
    sparse_rate: float | None = option(
        None, flags=("--sparse-rate",),
        help="CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE for int8-sparse (default: the folder's "
             "runtime_config.json)")
    dense: str | None = option(
        None, flags=("--dense",),
        help="a dense model for the int8-dense variant: its converted folder, or a checkpoint folder "
             "(converted to INT8 into the cache)")
    fp32_ir: Path | None = option(
        None, flags=("--fp32-ir",),
        help="a converted FP32 folder of the same source for ov-fp32/ov-bf16 (default: converted from the "
             "report's source_path into the cache)")
    baseline: Variant | None = option(
        None, flags=("--baseline",),
        help="variant the ratios are taken against (default: pytorch-fp32, or the first of ov-fp32, "
             "int8-dense, int8 that ran)")
    peak: bool = option(
        False, flags=("--peak",),
        help="measure this CPU's INT8/FP32/BF16 MatMul ceiling and cache it; alone it only measures")
    peak_time: float = option(3.0, flags=("--peak-time",), help="seconds per precision for --peak")
    peak_shape: tuple[int, ...] = option(
        DEFAULT_PEAK_SHAPE, flags=("--peak-shape",), metavar="M,K,N",
        help="MatMul [M,K]x[K,N] that --peak times")
    cache_dir: Path | None = option(
        None, flags=("--cache-dir",),
        help="cache for the peak and converted FP32/dense IRs (default: $POFA_CACHE_DIR or "
             "~/.cache/pofa-deploy)")
    isa: Isa = option(
        Isa.NATIVE, flags=("--isa",),
        help="native, or avx512_vnni: every variant runs as on a CPU without AMX (oneDNN capped, f32 for "
             "non-INT8 ops; in a child process)")
    quiet: bool = option(False, flags=("-q", "--quiet"), help="no progress display")

    def __post_init__(self) -> None:
        coerce_fields(self)
        at_least(self, 1, "nstreams", "nireq", "nthreads", "niter", "rounds", every=True)
        if self.time is not None and not self.time > 0:
            raise InputError(f"{option_flag('time')} must be a positive number of seconds, got {self.time:g} "
                             "(e.g. -t 10)")
        if self.time is not None and self.niter is not None:
            raise InputError(f"give {option_flag('time')} or {option_flag('niter')}, not both")
        at_least(self, 0, "warmup", every=True)
        for name in ("batch", "seq_len"):
            bad = [v for v in getattr(self, name) if v < 1]
            if bad:
                raise InputError(f"{option_flag(name)} values must be positive integers, got {bad[0]}")
        if self.shape is not None and (self.batch or self.seq_len):
            raise InputError(f"give {option_flag('shape')} or {option_flag('batch')} and "
                             f"{option_flag('seq_len')}, not both")
        if self.shape is not None:
            parse_shape(self.shape)
        if not 1 <= self.latency_percentile <= 100:
            raise InputError(f"{option_flag('latency_percentile')} must be in 1..100, "
                             f"got {self.latency_percentile}")
        if self.sparse_rate is not None and not 0.0 < self.sparse_rate <= 1.0:
            raise InputError(f"{option_flag('sparse_rate')} must be in (0, 1], got {self.sparse_rate:g}")
        if not self.peak_time > 0:
            raise InputError(f"{option_flag('peak_time')} must be a positive number of seconds, "
                             f"got {self.peak_time:g}")
        if len(self.peak_shape) != 3 or min(self.peak_shape) < 1:
            raise InputError(f"{option_flag('peak_shape')} takes three positive integers M,K,N, got "
                             f"{','.join(map(str, self.peak_shape))}")
        if self.model is None and not self.peak:
            raise InputError("MODEL is missing: give a converted folder (pofa-deploy convert MODEL -o OUT), "
                             "or --peak to measure this CPU's ceiling")
        if Variant.INT8_DENSE in self.variants and not self.dense:
            raise InputError(f"{option_flag('variants')} int8-dense needs --dense MODEL (a dense model's converted "
                             "folder or checkpoint)")
        if len(set(self.variants)) != len(self.variants):
            raise InputError(f"{option_flag('variants')} lists a variant twice")

    # -- resolved settings ---------------------------------------------------------------------------
    @property
    def resolved_api(self) -> Api:
        if self.api is not None:
            return self.api
        return Api.SYNC if self.hint in (None, Hint.LATENCY) else Api.ASYNC

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(batch, seq_len) of every configuration, in sweep order (sequence length outermost)."""
        if self.shape is not None:
            return [parse_shape(self.shape)]
        batches = self.batch or (DEFAULT_BATCH,)
        seqs = self.seq_len or (DEFAULT_SEQ_LEN,)
        return [(b, s) for s in seqs for b in batches]

    @property
    def threads(self) -> int:
        return self.nthreads or environment.available_cores()


OPTIONS = BenchmarkOptions


def cache_root(options: BenchmarkOptions | None = None) -> Path:
    """--cache-dir when given, else pofa-deploy's cache ($POFA_CACHE_DIR or ~/.cache/pofa-deploy)."""
    if options is not None and options.cache_dir is not None:
        return Path(options.cache_dir)
    return environment.cache_dir()


def parse_shape(text: str) -> tuple[int, int]:
    """``[1,128]`` or ``input_ids[1,128],attention_mask[1,128]`` -> (1, 128); every input must agree."""
    import re

    groups = re.findall(r"\[([^\]]*)\]", text)
    shapes: set[tuple[int, ...]] = set()
    for g in groups:
        try:
            shapes.add(tuple(int(d) for d in g.split(",")))
        except ValueError:
            shapes.add(())
    if len(shapes) != 1 or any(len(dims) != 2 or min(dims) < 1 for dims in shapes):
        raise InputError(f"-shape {text!r}: expected one static [BATCH,SEQ_LEN] for every input, e.g. -shape "
                         "[1,128] or -shape input_ids[1,128],attention_mask[1,128]")
    b, s = next(iter(shapes))
    return b, s
