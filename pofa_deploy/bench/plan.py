"""Planning: check every input before any slow work, then decide what each variant runs (which IR or
checkpoint, with which properties) or why it cannot run here.

Two variants may need a model that is not in the folder: ov-fp32/ov-bf16 an FP32 IR of the source
and int8-dense an INT8 IR of a dense checkpoint. Those are converted once into the cache (never into
a user's folder) and the progress display says so; --fp32-ir and --dense take converted folders instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..environment import bf16_supported
from ..errors import InputError, PofaError
from ..ir import REPORT_FILE, ir_xml, is_int8_ir, is_ir, read_report
from ..progress import Progress
from ..runtime_config import PRECISION_KEY, RUNTIME_CONFIG, SPARSE_KEY, parse_rate, read_runtime_config
from .options import ISA_CAP, PEER_VARIANTS, BenchmarkOptions, Isa, Variant, cache_root, option_flag

BASELINE_ORDER = (Variant.PYTORCH_FP32, Variant.OV_FP32, Variant.INT8_DENSE, Variant.INT8)


@dataclass(kw_only=True)
class Source:
    """One model a variant runs: an IR (xml) with its config, the PyTorch checkpoint, or an ONNX model."""

    variant: Variant
    xml: Path | None = None
    checkpoint: Path | None = None
    onnx: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    sparse_rate: float | None = None
    note: str = ""


@dataclass(kw_only=True)
class Plan:
    """What runs (``sources``, in Variant order), what cannot (``skipped``, with the reason) and why."""

    folder: Path | None
    report: dict[str, Any] = field(default_factory=dict)
    sources: dict[Variant, Source] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    baseline: Variant | None = None
    notes: list[str] = field(default_factory=list)
    load_config: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class _Inputs:
    """The checked inputs every variant's planning reads."""

    options: BenchmarkOptions
    folder: Path
    xml: Path
    report: dict[str, Any]
    runtime_cfg: dict[str, str]
    int8_ir: bool
    dense: Path | None
    cache: Path
    calib_len: int
    source_path: Path | None
    say: Progress


def plan(options: BenchmarkOptions, *, say: Progress) -> Plan:
    """Check every input before any slow work, then decide what each variant runs (or why it cannot)."""
    load_cfg = load_config_file(Path(options.load_config)) if options.load_config else {}
    if options.model is None:
        return Plan(folder=None, load_config=load_cfg)
    inp = _check_inputs(options, say)
    wanted = list(options.variants) or [v for v in Variant if (v is not Variant.INT8_DENSE or options.dense)
                                        and v not in PEER_VARIANTS]
    result = Plan(folder=inp.folder, report=inp.report, load_config=load_cfg)
    if Variant.PYTORCH_FP32 in wanted:
        _plan_torch(inp, result)
    _plan_fp(inp, [v for v in (Variant.OV_FP32, Variant.OV_BF16) if v in wanted], result)
    for v8 in (Variant.INT8, Variant.INT8_SPARSE):
        if v8 in wanted:
            _plan_int8(inp, v8, result)
    if Variant.INT8_POFA_SPARSE in wanted:
        _plan_pofa_sparse(inp, result)
    if Variant.INT8_DENSE in wanted and inp.dense is not None:
        _plan_dense(inp, inp.dense, result)
    _plan_ort(inp, [v for v in PEER_VARIANTS if v in wanted], result)
    if options.isa is not Isa.NATIVE:
        _cap_isa(options.isa, result)
    result.sources = {v: result.sources[v] for v in Variant if v in result.sources}
    if not result.sources:
        raise InputError("no variant can run here: " + "; ".join(f"{k}: {v}" for k, v in result.skipped.items()))
    result.baseline = _choose_baseline(options, result.sources, result.skipped, result.notes)
    return result


def _check_inputs(options: BenchmarkOptions, say: Progress) -> _Inputs:
    """Every path the user gave is checked here, before any conversion or compilation."""
    assert options.model is not None
    folder = Path(options.model)
    xml = ir_xml(folder)
    if not folder.exists():
        raise InputError(f"MODEL {folder}: no such folder; give the output folder of pofa-deploy convert")
    if not xml.is_file():
        raise InputError(f"MODEL {folder}: no OpenVINO IR here (expected openvino_model.xml); convert a "
                         "checkpoint first with pofa-deploy convert MODEL -o OUT")
    folder = xml.parent
    max_pos = _max_positions(folder)
    for _b, s in options.shapes:
        if max_pos is not None and s > max_pos:
            shown = f"-shape {options.shape}: sequence length" if options.shape else option_flag("seq_len")
            raise InputError(f"{shown} {s} exceeds the model's max_position_embeddings ({max_pos}, "
                             f"from {folder / 'config.json'}); choose a sequence length of at most {max_pos}")
    if options.fp32_ir is not None and not is_ir(Path(options.fp32_ir)):
        raise InputError(f"{option_flag('fp32_ir')} {options.fp32_ir}: no OpenVINO IR there (expected "
                         "openvino_model.xml from pofa-deploy convert without --int8)")
    dense = Path(options.dense).expanduser() if options.dense else None
    if dense is not None and not is_ir(dense) and not (dense / "config.json").is_file():
        raise InputError(f"--dense {dense}: neither a converted folder (openvino_model.xml) nor a checkpoint "
                         "folder (config.json); give one of those")
    report = read_report(folder)
    return _Inputs(options=options, folder=folder, xml=xml, report=report,
                   runtime_cfg=read_runtime_config(folder), int8_ir=is_int8_ir(xml, report), dense=dense,
                   cache=cache_root(options), calib_len=min(128, max_pos or 128),
                   source_path=_source_path(report), say=say)


def _plan_torch(inp: _Inputs, result: Plan) -> None:
    """The PyTorch baseline: needs torch, transformers and the source checkpoint on this machine."""
    reason = _torch_missing()
    if reason is None and inp.source_path is None:
        where = inp.report.get("source_path") or f"no source_path in {REPORT_FILE}"
        reason = f"the source checkpoint is not here ({where}); run on the machine that converted it"
    if reason:
        result.skipped[Variant.PYTORCH_FP32] = reason
    else:
        result.sources[Variant.PYTORCH_FP32] = Source(variant=Variant.PYTORCH_FP32, checkpoint=inp.source_path)


def _plan_fp(inp: _Inputs, fp_wanted: list[Variant], result: Plan) -> None:
    """OpenVINO FP32 / BF16 of the same source: --fp32-ir, the folder itself, or converted into the cache."""
    if Variant.OV_BF16 in fp_wanted and not bf16_supported():
        result.skipped[Variant.OV_BF16] = ("this CPU has neither avx512_bf16 nor amx_bf16, so OpenVINO would "
                                           "not run BF16 kernels")
        fp_wanted.remove(Variant.OV_BF16)
    if not fp_wanted:
        return
    fp_xml, why = _fp32_xml(inp)
    for v in fp_wanted:
        if fp_xml is None:
            result.skipped[v] = why
            continue
        cfg = {k: val for k, val in read_runtime_config(fp_xml.parent).items() if k != SPARSE_KEY}
        cfg[PRECISION_KEY] = "f32" if v is Variant.OV_FP32 else "bf16"
        result.sources[v] = Source(variant=v, xml=fp_xml, config=cfg)


def _fp32_xml(inp: _Inputs) -> tuple[Path | None, str]:
    """The FP32 IR for ov-fp32/ov-bf16, or None and why there is none."""
    if inp.options.fp32_ir is not None:
        return ir_xml(Path(inp.options.fp32_ir)), ""
    if not inp.int8_ir:
        return inp.xml, ""
    if inp.source_path is None:
        return None, ("no FP32 IR: the source checkpoint is not here and no --fp32-ir was given "
                      "(convert it without --int8 and pass --fp32-ir DIR)")
    try:
        fp_dir = _convert_cached(inp.source_path, int8=False, cache=inp.cache, seq_len=inp.calib_len, say=inp.say)
        return ir_xml(fp_dir), ""
    except (ImportError, PofaError) as exc:
        return None, (f"could not convert the source to an FP32 IR ({type(exc).__name__}: {exc}); "
                      "pass --fp32-ir DIR")


def _plan_int8(inp: _Inputs, v8: Variant, result: Plan) -> None:
    """The INT8 pair: the folder's IR with sparse decompression off (int8) and on (int8-sparse)."""
    if not inp.int8_ir:
        result.skipped[v8] = f"{inp.folder} is an FP32 IR (converted without --int8)"
        return
    cfg = {k: val for k, val in inp.runtime_cfg.items() if k != SPARSE_KEY}
    rate: float | None = None
    if v8 is Variant.INT8_SPARSE:
        options = inp.options
        if options.sparse_rate is not None:
            rate = parse_rate(options.sparse_rate)
            if rate is None:
                result.skipped[v8] = (f"{option_flag('sparse_rate')} {options.sparse_rate:g} is off (the plugin treats "
                                      "1.0 as off), so int8-sparse would be int8")
                return
        else:
            # the folder's rate, else the rate convert measured and chose not to write (it was not faster
            # on the converting machine; this one may differ)
            rate = _rate(inp.runtime_cfg) or parse_rate((inp.report.get("sparse_decision") or {})
                                                        .get("candidate_rate"))
        if rate is None:
            result.skipped[v8] = (f"no sparse rate: {inp.folder / RUNTIME_CONFIG} sets none and {REPORT_FILE} has "
                                  "no candidate (a dense model?); pass --sparse-rate X to try one")
            return
        cfg[SPARSE_KEY] = str(rate)
    result.sources[v8] = Source(variant=v8, xml=inp.xml, config=cfg, sparse_rate=rate)


def _plan_pofa_sparse(inp: _Inputs, result: Plan) -> None:
    """int8-pofa-sparse: the folder's openvino_model_sparse.xml on pofa-deploy's SparseFullyConnected op,
    compiled like int8 (OpenVINO's own decompression off), so the two differ only in the sparse Linears."""
    from ..extension import ExtensionError, extension_path
    from ..runtime import SPARSE_IR_FILE

    v = Variant.INT8_POFA_SPARSE
    xml = inp.folder / SPARSE_IR_FILE
    if not xml.is_file():
        result.skipped[v] = (f"no {SPARSE_IR_FILE} in {inp.folder}: convert with --int8 (--sparse-kernel auto "
                             "writes it for >= 70% sparse encoders, on always)")
        return
    try:
        extension_path()
    except ExtensionError as exc:
        result.skipped[v] = str(exc)
        return
    cfg = {k: val for k, val in inp.runtime_cfg.items() if k != SPARSE_KEY}
    result.sources[v] = Source(variant=v, xml=xml, config=cfg)


def _plan_ort(inp: _Inputs, wanted: list[Variant], result: Plan) -> None:
    """The ONNX Runtime peers: the source checkpoint exported to ONNX (and quantised) into the cache."""
    if not wanted:
        return
    from .onnx_export import cached_onnx, ort_missing

    reason = ort_missing()
    if reason is None and inp.source_path is None:
        where = inp.report.get("source_path") or f"no source_path in {REPORT_FILE}"
        reason = (f"the source checkpoint is not here ({where}); the ONNX export needs it, run on the machine "
                  "that converted it")
    for v in wanted:
        if reason is None:
            assert inp.source_path is not None
            try:
                path = cached_onnx(inp.source_path, int8=v is Variant.ORT_INT8, cache=inp.cache, say=inp.say)
            except Exception as exc:  # the exporter raises many kinds; one line, the other variants run
                reason = (f"could not export the source checkpoint to ONNX ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''})")
            else:
                result.sources[v] = Source(variant=v, checkpoint=inp.source_path, onnx=path)
                continue
        result.skipped[v] = reason


def _cap_isa(isa: Isa, result: Plan) -> None:
    """--isa avx512_vnni: f32 for every variant's non-INT8 ops; BF16 and AMX decompression cannot run."""
    for v, why in ((Variant.OV_BF16, "BF16 falls back to a slow reference GEMM"),
                   (Variant.INT8_SPARSE, "OpenVINO's sparse decompression needs AMX and fails to compile")):
        if result.sources.pop(v, None) is not None:
            result.skipped[v] = f"--isa {isa.value} (oneDNN capped at {ISA_CAP[isa]}): {why}"
    for source in result.sources.values():
        if source.xml is not None:
            source.config[PRECISION_KEY] = "f32"
    result.notes.append(f"--isa {isa.value}: ONEDNN_MAX_CPU_ISA={ISA_CAP[isa]} and INFERENCE_PRECISION_HINT=f32 "
                        "for every OpenVINO variant, as on a Xeon without AMX")
    if any(v in result.sources for v in PEER_VARIANTS):
        result.notes.append(f"--isa {isa.value}: the ort-* peers are not capped (ONNX Runtime's own CPU kernels "
                            "do not read ONEDNN_MAX_CPU_ISA)")


def _plan_dense(inp: _Inputs, dense: Path, result: Plan) -> None:
    """int8-dense: a dense model's converted INT8 folder, or its checkpoint converted into the cache."""
    if is_ir(dense):
        dense_folder = ir_xml(dense).parent
    else:
        try:
            dense_folder = _convert_cached(dense, int8=True, cache=inp.cache, seq_len=inp.calib_len, say=inp.say)
        except ImportError as exc:
            raise InputError(f"--dense {dense}: a checkpoint, and converting it needs torch/nncf "
                             f"({exc}); pass its converted folder instead") from None
    if not is_int8_ir(ir_xml(dense_folder), read_report(dense_folder)):
        raise InputError(f"--dense {dense}: an FP32 IR; convert the dense model with pofa-deploy "
                         "convert --int8 (or pass its checkpoint folder)")
    dense_cfg = read_runtime_config(dense_folder)
    rate = _rate(dense_cfg)
    if rate is not None:
        result.notes.append(f"--dense {dense}: its runtime_config.json switches sparse decompression on "
                            f"(rate {rate}); it is benchmarked as converted")
    result.sources[Variant.INT8_DENSE] = Source(variant=Variant.INT8_DENSE, xml=ir_xml(dense_folder),
                                                config=dense_cfg, sparse_rate=rate, note=str(dense))


def _choose_baseline(options: BenchmarkOptions, sources: dict[Variant, Source], skipped: dict[str, str],
                     notes: list[str]) -> Variant:
    if options.baseline is not None:
        if options.baseline not in sources:
            why = skipped.get(options.baseline, "not among --variants")
            raise InputError(f"{option_flag('baseline')} {options.baseline.value} does not run here ({why}); "
                             f"choose one of {', '.join(v.value for v in sources)}")
        return options.baseline
    for v in BASELINE_ORDER:
        if v in sources:
            if v is not Variant.PYTORCH_FP32:
                why = skipped.get(Variant.PYTORCH_FP32, "not selected")
                notes.append(f"baseline is {v.value}, not pytorch-fp32 ({why})")
            return v
    first = next(iter(sources))
    notes.append(f"baseline is {first.value}: none of the usual baselines runs here")
    return first


def _rate(cfg: dict[str, str]) -> float | None:
    return parse_rate(cfg.get(SPARSE_KEY))


def _source_path(report: dict[str, Any]) -> Path | None:
    for key in ("source_path", "source"):
        value = report.get(key)
        if value and Path(value).is_dir() and (Path(value) / "config.json").is_file():
            return Path(value)
    return None


def _torch_missing() -> str | None:
    import importlib.util

    for pkg in ("torch", "transformers"):
        if importlib.util.find_spec(pkg) is None:
            return f"{pkg} is not installed here (the PyTorch baseline needs torch and transformers)"
    return None


def load_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"-load_config {path}: no such file; give a JSON file like "
                         '{"CPU": {"CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE": "0.8"}}')
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"-load_config {path}: not valid JSON ({exc}); fix the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("CPU", {}), dict):
        raise InputError(f"-load_config {path}: expected an object with a \"CPU\" section of properties")
    properties = dict(data.get("CPU", {}))
    check_cpu_properties(properties, f"-load_config {path}")
    return properties


def check_cpu_properties(properties: dict[str, Any], where: str) -> None:
    """Compile a one-op model with ``properties``, so an unknown key or a bad value is one line naming
    it now, not an OpenVINO traceback after minutes of work. A trial compile, because the plugin also
    takes keys its SUPPORTED_PROPERTIES does not list (CACHE_DIR, ENABLE_MMAP, ...)."""
    if not properties:
        return
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 4], ov.Type.f32, name="x")
    core = ov.Core()
    try:
        core.compile_model(ov.Model([ops.result(ops.relu(x))], [x], "check"), "CPU", properties)
    except (RuntimeError, TypeError, ValueError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if not ln.startswith(("Exception from ", "Check '"))),
                      lines[-1] if lines else type(exc).__name__)
        supported = core.get_property("CPU", "SUPPORTED_PROPERTIES")
        unknown = [k for k in properties if k not in supported and k in reason]
        if unknown:
            settable = sorted(k for k, mode in supported.items() if str(mode) != "RO")
            raise InputError(f"{where}: the CPU plugin does not know the property {unknown[0]!r}; remove it "
                             f"(settable: {', '.join(settable)})") from None
        raise InputError(f"{where}: the CPU plugin refuses these properties ({reason[:200]}); "
                         "fix the value") from None


def _max_positions(folder: Path) -> int | None:
    try:
        cfg = json.loads((folder / "config.json").read_text())
        return int(cfg["max_position_embeddings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _checkpoint_key(path: Path, tag: str) -> str:
    h = hashlib.sha1(f"{path.resolve()}|{tag}|{__version__}".encode())
    for f in sorted(path.glob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def _convert_cached(checkpoint: Path, *, int8: bool, cache: Path, seq_len: int, say: Progress) -> Path:
    """Convert ``checkpoint`` into the cache (once); needs torch/optimum/nncf, i.e. pofa-deploy convert."""
    from ..convert import ConvertOptions, convert

    tag = "int8" if int8 else "fp32"
    out = cache / "ir" / f"{checkpoint.name}-{tag}-{_checkpoint_key(checkpoint, tag)}"
    if is_ir(out) and (out / REPORT_FILE).is_file():
        return out
    say(f"converting {checkpoint} to an {tag.upper()} IR in {out} (cached for later runs)")
    convert(ConvertOptions(model=str(checkpoint), output=out, int8=int8, samples=8, holdout=4,
                           seq_len=seq_len, overwrite=True))
    return out
