"""checkpoint -> OpenVINO IR (FP32, or NNCF INT8) -> verify every zero -> move into place.

Data flow, top to bottom:
  1. load and validate the checkpoint (checkpoint.py), measure its Linear zeros (sparsity.py)
  2. tokenise calibration samples; hold some back for the output comparison (calibration/)
  3. export with optimum-intel (keeps PyTorch module paths in MatMul names), quantise with NNCF
     (symmetric per-channel i8 weights: an exact zero stays an exact zero), save as FP32/INT8 --
     never FP16-compressed
  4. read the saved IR back, map each weight to its source Linear (ir.py) and compare zero
     patterns (verify.py); a single lost zero aborts and leaves nothing at OUT
  5. choose the sparse-decompression rate (sparse_choice.py), write runtime_config.json
  6. compile with it, compare outputs with PyTorch on held-back samples (verify.py) and record what
     the CPU plugin actually ran; write pofa_report.json
All of it happens in a temporary sibling of OUT that is renamed into place only at the end.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import environment
from .checkpoint import Checkpoint, Task, load_checkpoint
from .errors import CheckpointError, DataError, InputError
from .ir import REPORT_FILE
from .options import at_least, coerce_fields, option
from .outputs import check_writable, staged_output
from .progress import Progress, printer, silent
from .sparsity import choose_rate, is_encoder_linear, layer_table, totals
from .verify import compare_outputs, verify_zeros, zero_summary

if TYPE_CHECKING:
    from .sparse_choice import SparseDecision

IR_NAME = "openvino_model"


class SparseKernel(StrEnum):
    """--sparse-kernel: write openvino_model_sparse.xml, whose sparse Linears run SparseFullyConnected."""

    AUTO = "auto"  # when the encoder Linears are at least 70% zeros (PoFA ships 80, 85 and 90%)
    ON = "on"
    OFF = "off"


@dataclass(frozen=True, kw_only=True)
class ConvertOptions:
    model: str = option(help="checkpoint folder (safetensors or .bin) or a hub id when online", positional=True)
    output: Path = option(help="output folder (written only when complete)", flags=("-o", "--output"))
    int8: bool = option(False, help="quantise to INT8 with NNCF (default: FP32 IR, stored as FP32)")
    task: Task | None = option(None, help="task head; inferred from config.json when absent")
    calibration: str = option("builtin", help="calibration source: text/TSV/JSON(L) file, a recipe "
                              "(sst2|mnli|qqp|qnli|squad[:PATH]) or 'builtin' (shipped sample)")
    samples: int = option(128, help="calibration samples for NNCF")
    holdout: int = option(16, help="extra samples held back to compare IR and PyTorch outputs")
    seq_len: int = option(128, help="sequence length of calibration and comparison inputs")
    sparse_rate: str = option("auto", help="CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE: auto (written only if "
                              "measured faster on this machine), off, or a number in (0, 1] (1 = off)")
    sparse_kernel: SparseKernel = option(SparseKernel.AUTO, help="also write openvino_model_sparse.xml, whose "
                                         "sparse quantised Linears run pofa-deploy's SparseFullyConnected op "
                                         "(auto: when the encoder Linears are >= 70%% zeros; needs --int8)")
    seed: int = option(0, help="seed for calibration sampling")
    overwrite: bool = option(False, help="replace OUTPUT if it exists")
    trust_remote_code: bool = option(False, help="allow code shipped with the checkpoint (off by default)")

    def __post_init__(self) -> None:
        coerce_fields(self)
        at_least(self, 1, "samples", "seq_len")
        at_least(self, 0, "holdout")
        self.parsed_rate()  # validate early

    def parsed_rate(self) -> float | str | None:
        """'auto', None (off) or a float threshold below 1 (the plugin treats 1.0 as off, so 1 is off)."""
        text = str(self.sparse_rate).strip().lower()
        if text in ("auto", "off"):
            return None if text == "off" else "auto"
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0.0 < value <= 1.0:
            raise InputError(f"--sparse-rate must be auto, off or a number in (0, 1]; got {self.sparse_rate!r}")
        return value if value < 1.0 else None


OPTIONS = ConvertOptions


@dataclass
class ConvertReport:
    """Everything a user (or the benchmark) needs to know about one conversion: pofa_report.json."""

    source: str
    source_path: str
    task: str
    model_type: str
    int8: bool
    synthetic: dict[str, Any] | None
    seq_len: int
    calibration: dict[str, Any]
    sparse_rate: float | None
    sparse_decision: dict[str, Any]
    sparse_kernel: dict[str, Any]
    source_layers: list[dict[str, Any]]
    ir_layers: list[dict[str, Any]]
    zero_check: dict[str, Any]
    outputs_vs_pytorch: dict[str, Any]
    sparse_status: dict[str, Any]
    files: dict[str, int]
    seconds: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    # what the CPU plugin runs non-quantised ops in with runtime_config.json on this machine
    runtime_precision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Laps:
    """Seconds spent in each phase, for the report's ``seconds``: ``lap(name)`` closes a phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._clock, 3)
        self._clock = now


def convert(options: ConvertOptions, *, progress: Progress | None = None) -> ConvertReport:
    """Convert ``options.model`` into ``options.output``; see the module docstring for the steps."""
    from .ir import ir_weights, read_model
    from .runtime import load

    say = progress or silent
    out = Path(options.output)
    sources = {"MODEL": options.model, "--calibration": options.calibration}
    check_writable(out, overwrite=options.overwrite, kind=REPORT_FILE, sources=sources)  # before any slow work
    rate_opt = options.parsed_rate()
    lap = _Laps()

    say("loading and validating the checkpoint")
    ckpt = _load(options)
    source_weights = ckpt.linear_weights()
    source_rows = layer_table(source_weights, eligible_if_int8=True)
    warnings = _checkpoint_warnings(ckpt, source_rows, int8=options.int8)
    lap("load")

    say(f"tokenising calibration data ({options.calibration})")
    calib, held = _calibration_feeds(ckpt, options)
    lap("calibration_data")

    with staged_output(out, overwrite=options.overwrite, kind=REPORT_FILE, sources=sources) as tmp:
        _write_ir(ckpt, calib, tmp, int8=options.int8, say=say, lap=lap)  # export, quantise, save

        say("verifying the zero pattern of the saved IR")
        weights = ir_weights(read_model(tmp / f"{IR_NAME}.xml"))
        checks = verify_zeros(source_weights, weights)
        ir_rows = layer_table({w.matmul: w.effective for w in weights},
                              dtype={w.matmul: w.dtype for w in weights},
                              quantized_input={w.matmul: w.activation_quantized for w in weights})
        lap("verify")

        decision = _decide_sparse(tmp, options, rate_opt, ir_rows, warnings=warnings, say=say)
        rate = decision.rate
        lap("sparse_decision")

        say("comparing IR outputs with PyTorch on held-back samples")
        loaded = load(tmp)
        outputs = compare_outputs(ckpt, loaded, held)
        # read from the runtime graph after an inference at a static shape, or "off"
        status = loaded.sparse_status(batch=1, seq_len=options.seq_len)
        warnings += loaded.notes
        lap("compare")

        sparse_ir = _write_sparse_ir(tmp, options, source_weights, loaded, held, warnings=warnings, say=say)
        lap("sparse_kernel")

        report = ConvertReport(
            source=options.model,
            source_path=str(ckpt.path.resolve()),
            task=ckpt.task.value,
            model_type=ckpt.model_type,
            int8=options.int8,
            synthetic=ckpt.synthetic,
            seq_len=options.seq_len,
            calibration={"source": options.calibration, "samples": len(calib), "holdout": len(held),
                         "seed": options.seed},
            sparse_rate=rate,
            sparse_decision=decision.to_dict(),
            sparse_kernel=sparse_ir,
            source_layers=[r.to_dict() for r in source_rows],
            ir_layers=[dict(r.to_dict(), meets_rate=bool(rate is not None and r.eligible and r.sparsity >= rate))
                       for r in ir_rows],
            zero_check=zero_summary(checks),
            outputs_vs_pytorch=outputs,
            sparse_status=status.to_dict(),
            runtime_precision=loaded.precision,
            files={p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()},
            seconds=lap.seconds,
            warnings=warnings,
            versions=environment.versions(),
        )
        (tmp / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        report.files[REPORT_FILE] = (tmp / REPORT_FILE).stat().st_size
    return report


def _load(options: ConvertOptions) -> Checkpoint:
    """Load and validate the checkpoint; it must have a tokenizer and enough positions for --seq-len."""
    ckpt = load_checkpoint(options.model, task=options.task, trust_remote_code=options.trust_remote_code)
    if ckpt.tokenizer is None:
        raise CheckpointError(f"{ckpt.path}: no tokenizer files (tokenizer.json or vocab.txt); save the "
                              "tokenizer next to the model with tokenizer.save_pretrained")
    max_len = int(getattr(ckpt.config, "max_position_embeddings", options.seq_len))
    if options.seq_len > max_len:
        raise InputError(f"--seq-len {options.seq_len} exceeds the model's max_position_embeddings ({max_len})")
    return ckpt


def _checkpoint_warnings(ckpt: Checkpoint, rows: list[Any], *, int8: bool) -> list[str]:
    warnings = []
    if ckpt.synthetic:
        warnings.append("synthetic checkpoint (randomly initialised): speed figures only, accuracy is meaningless")
    if ckpt.newly_initialised:
        shown = ", ".join(ckpt.newly_initialised[:3])
        warnings.append(f"{len(ckpt.newly_initialised)} weights were not in the checkpoint and were newly "
                        f"initialised ({shown}): this head is untrained for {ckpt.task.value}; fine-tune first")
    encoder = [r for r in rows if is_encoder_linear(r.name)]
    t = totals(encoder)
    if encoder and t.sparsity < 0.5:
        warnings.append(f"dense model: its encoder Linears are {t.sparsity:.1%} zeros; converting without "
                        "sparse decompression")
    return warnings


def _calibration_feeds(ckpt: Checkpoint, options: ConvertOptions) -> tuple[list[dict[str, np.ndarray]],
                                                                          list[dict[str, np.ndarray]]]:
    from .calibration import encode, load_examples

    wanted = options.samples + options.holdout
    examples = load_examples(options.calibration, limit=wanted, seed=options.seed)
    feeds = encode(ckpt.tokenizer, examples, seq_len=options.seq_len, task=ckpt.task.value)
    if not feeds:
        raise DataError(options.calibration, "no usable calibration samples; give a file with text in it")
    # Hold back the tail for the output comparison, but never starve calibration.
    n_held = min(options.holdout, len(feeds) // 4) if len(feeds) < wanted else options.holdout
    calib = feeds[: len(feeds) - n_held][: options.samples]
    return calib, feeds[len(feeds) - n_held:]


def _write_ir(ckpt: Checkpoint, calib: list[dict[str, np.ndarray]], tmp: Path, *, int8: bool, say: Progress,
              lap: _Laps) -> None:
    """Export to ``tmp``, quantise with NNCF when ``int8``, save the IR uncompressed (never FP16), with
    the config and tokenizer beside it."""
    import openvino as ov

    say("exporting to OpenVINO (optimum-intel)")
    ov_model = _export(ckpt, tmp / "_export")
    lap("export")
    if int8:
        say(f"quantising to INT8 with NNCF ({len(calib)} samples)")
        ov_model = _quantize(ov_model, calib)
        lap("quantize")
    ov.save_model(ov_model, str(tmp / f"{IR_NAME}.xml"), compress_to_fp16=False)
    shutil.rmtree(tmp / "_export")
    # The saved config describes the exported model: with --task the head differs from the source's
    # config (e.g. ...ForSequenceClassification -> ...ForTokenClassification), and evaluate and
    # optimum-intel read the class from "architectures".
    ckpt.config.architectures = [type(ckpt.model).__name__]
    ckpt.config.save_pretrained(str(tmp))
    assert ckpt.tokenizer is not None  # _load refuses a checkpoint without one
    ckpt.tokenizer.save_pretrained(str(tmp))
    lap("save")


def _export(ckpt: Checkpoint, folder: Path) -> Any:
    import openvino as ov
    from optimum.exporters.openvino import export_from_model

    from .checkpoint import quiet_transformers
    from .outputs import deferred_signals

    # Ctrl-C waits for the export to end: see deferred_signals for what it does otherwise
    with quiet_transformers(), deferred_signals():
        export_from_model(ckpt.model, str(folder), task=ckpt.task.value, stateful=False)
    return ov.Core().read_model(str(folder / f"{IR_NAME}.xml"))


def _quantize(ov_model: Any, calib: list[dict[str, np.ndarray]]) -> Any:
    import nncf

    names = {i.get_any_name() for i in ov_model.inputs}
    data = [{k: v for k, v in feed.items() if k in names} for feed in calib]
    # Transformer mode: SmoothQuant (rescales input columns only) and symmetric per-channel i8
    # weights with zero point 0, so an exact zero weight quantises to exactly 0.
    with _nncf_output_to_stderr():
        return nncf.quantize(ov_model, nncf.Dataset(data), model_type=nncf.ModelType.TRANSFORMER,
                             subset_size=len(data))


@contextlib.contextmanager
def _nncf_output_to_stderr() -> Iterator[None]:
    """NNCF's progress bars (rich, on sys.stdout) and its log handler (bound to the stdout of import
    time) go to stderr, so stdout carries only our summary and can be piped."""
    import logging

    from nncf.common.logging.logger import nncf_logger

    moved = [h for h in nncf_logger.handlers
             if isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.__stdout__)]
    previous = [h.setStream(sys.stderr) for h in moved]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in zip(moved, previous, strict=True):
            handler.setStream(stream)


def _decide_sparse(tmp: Path, options: ConvertOptions, rate_opt: float | str | None, ir_rows: list[Any], *,
                   warnings: list[str], say: Progress) -> SparseDecision:
    """Decide the sparse-decompression rate (sparse_choice.decide) and write runtime_config.json."""
    from .runtime_config import PRECISION_KEY, SPARSE_KEY, write_runtime_config
    from .sparse_choice import decide

    # An FP32 IR is a baseline: on CPUs with BF16 (AVX512_BF16, AMX) the plugin would otherwise
    # run it in BF16 and its accuracy and speed would not be FP32's.
    base_config = {} if options.int8 else {PRECISION_KEY: "f32"}
    mode, candidate = _rate_candidate(rate_opt, ir_rows, int8=options.int8, warnings=warnings)
    if mode == "auto" and candidate is not None:
        say(f"timing sparse decompression (rate {candidate:g}) on vs off at seq {options.seq_len}, batch 1 and 8")
    decision = decide(tmp / f"{IR_NAME}.xml", base_config, mode=mode, rate=candidate, seq_len=options.seq_len)
    rate = decision.rate
    write_runtime_config(tmp, {**base_config, **({SPARSE_KEY: str(rate)} if rate is not None else {})})
    return decision


def _write_sparse_ir(tmp: Path, options: ConvertOptions, source: dict[str, np.ndarray], standard: Any,
                     held: list[dict[str, np.ndarray]], *, warnings: list[str], say: Progress) -> dict[str, Any]:
    """openvino_model_sparse.xml beside the standard IR (which stays as it is, for optimum-intel): its
    sparse quantised Linears run SparseFullyConnected. Its packed weights are unpacked and proven equal,
    code for code, to the standard IR's (every source zero a zero), and its outputs compared with the
    standard IR's on the held-back samples; a failed proof raises and nothing is written."""
    import openvino as ov

    from . import sparse_kernel as sk
    from .extension import ExtensionError, extension_path
    from .ir import read_model
    from .runtime import SPARSE_IR_FILE, load
    from .verify import compare_ir_outputs

    mode = options.sparse_kernel
    if not options.int8:
        if mode is SparseKernel.ON:
            raise InputError("--sparse-kernel on needs --int8: SparseFullyConnected runs i8 weights")
        return {"written": False, "reason": "FP32 IR"}
    standard_model = read_model(tmp / f"{IR_NAME}.xml")
    if not sk.should_rewrite(mode.value, standard_model):
        why = ("--sparse-kernel off" if mode is SparseKernel.OFF else
               f"encoder Linears {sk.encoder_sparsity(standard_model):.1%} zeros, below "
               f"{sk.DEFAULT_THRESHOLD:.0%} (--sparse-kernel auto); --sparse-kernel on writes it anyway")
        return {"written": False, "reason": why}
    try:
        library = extension_path()
    except ExtensionError as exc:
        if mode is SparseKernel.ON:
            raise
        warnings.append(f"{SPARSE_IR_FILE} not written: {exc}")
        return {"written": False, "reason": str(exc)}
    say(f"writing {SPARSE_IR_FILE} (SparseFullyConnected) and proving its packed weights equal the IR's")
    rewritten = sk.rewrite(standard_model)  # per layer: >= 70% zeros runs the op, the rest stays
    if not rewritten.replaced:
        return {"written": False, "reason": "no quantised Linear the op can run", "skipped": rewritten.skipped}
    ov.save_model(rewritten.model, str(tmp / SPARSE_IR_FILE), compress_to_fp16=False)
    proof = sk.verify(tmp / SPARSE_IR_FILE, tmp / f"{IR_NAME}.xml", source=source)
    say("comparing the sparse-kernel IR with the standard INT8 IR on held-back samples")
    agreement = compare_ir_outputs(standard, load(tmp, sparse_kernel=True), held)
    return {"written": True, "file": SPARSE_IR_FILE, "extension": str(library), "layers": rewritten.layers,
            "skipped": rewritten.skipped, "proof": proof, "vs_standard_int8": agreement}


def _rate_candidate(rate_opt: float | str | None, ir_rows: list[Any], *, int8: bool,
                    warnings: list[str]) -> tuple[str, float | None]:
    """(mode, rate) for sparse_choice.decide: auto with the rate every usefully sparse eligible layer meets
    (or None), given with the user's number, or off."""
    eligible = [r for r in ir_rows if r.eligible]
    if not int8:
        if rate_opt not in ("auto", None):
            warnings.append("--sparse-rate has no effect on an FP32 IR: sparse kernels need i8 weights (use --int8)")
        return "off", None
    if rate_opt == "auto":
        rate = choose_rate(r.sparsity for r in eligible)
        if rate is None and eligible:
            warnings.append("no eligible layer is at least 50% zeros: sparse decompression left off")
        if not eligible:
            warnings.append("no layer is eligible for sparse decompression (i8 weights with both dims multiples "
                            "of 64 and quantised activations): left off")
        return "auto", rate
    return ("off", None) if rate_opt is None else ("given", float(rate_opt))


def main(options: ConvertOptions) -> int:
    from .tables import conversion_summary

    report = convert(options, progress=printer(numbered=True))
    for message in report.warnings:
        print(f"warning: {message}", file=sys.stderr)
    print(conversion_summary(report.to_dict(), Path(options.output)))
    return 0
