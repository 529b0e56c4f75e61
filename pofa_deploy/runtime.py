"""Compile a converted output folder the way it is meant to run, and tell what actually ran.

The CPU plugin ignores CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE in an IR's rt_info, so a converted
folder carries ``runtime_config.json`` (benchmark_app ``-load_config`` format: ``{"CPU": {...}}``)
and this loader applies it to ``compile_model``. Compiles with a sparse rate go through
``compile_guarded`` / ``LoadedModel._guard``, which try each new shape in a child process first
(probe.py) and switch decompression off when that child crashes or fails.

Whether sparse kernels really run is read, by the one ``sparse_status`` here, from the runtime graph
of a model compiled at a static shape after one inference there: execType of FullyConnected nodes is
``brgemm_avx512_amx_sparse_I8`` when they do (AMX only). Without such an inference the status says
"not measured"; CPU flags only explain a zero, they never stand in for the count.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .environment import has_amx
from .errors import InputError
from .inputs import dummy_inputs
from .ir import ir_xml, read_model
from .runtime_config import PRECISION_KEY, SPARSE_KEY, compile_config, parse_rate

SPARSE_IR_FILE = "openvino_model_sparse.xml"  # written by convert --sparse-kernel

SPARSE_EXEC_MARK = "sparse"


@dataclass(frozen=True)
class IREligibility:
    """How many weights of an IR the CPU plugin could run sparse, and how many meet a rate."""

    i8_weights: int
    eligible: int  # 2-D i8, both dims multiples of 64, u8/i8 activations
    meeting_rate: int
    sparsity_min: float | None
    sparsity_max: float | None


def ir_eligibility(model: Any, rate: float | None) -> IREligibility:
    from .ir import ir_weights
    from .sparsity import is_eligible

    weights = ir_weights(model)
    shares = [float(np.count_nonzero(w.effective == 0)) / w.effective.size for w in weights
              if is_eligible(w.shape, w.dtype, quantized_input=w.activation_quantized)]
    return IREligibility(sum(w.dtype == "i8" for w in weights), len(shares),
                         sum(s >= rate for s in shares) if rate is not None else 0,
                         min(shares) if shares else None, max(shares) if shares else None)


@dataclass
class SparseStatus:
    """What the CPU plugin did with sparse decompression in one compiled model.

    ``measured`` is True only when the counts were read from the runtime graph after a real inference
    at a static shape (``shape``); otherwise they are None and the summary says "not measured". The
    counts are always what the graph says: nothing is inferred from the CPU's flags, which only
    explain a zero (the plugin itself decides by CPUID)."""

    requested_rate: float | None
    amx: bool
    measured: bool = False
    shape: tuple[int, int] | None = None
    fully_connected: int | None = None  # FullyConnected nodes in the runtime graph
    sparse_nodes: int | None = None  # of which ran a sparse kernel
    exec_types: dict[str, int] = field(default_factory=dict)
    eligible_weights: int | None = None
    eligible_meeting_rate: int | None = None
    i8_weights: int | None = None

    @property
    def effect(self) -> str:
        if self.requested_rate is None:
            return "off"
        if not self.measured:
            return "not measured"
        return "active" if self.sparse_nodes else "none"

    @property
    def summary(self) -> str:
        ran = (f"{self.sparse_nodes} of {self.fully_connected} FullyConnected nodes ran sparse kernels"
               if self.measured else "")
        where = f" at batch {self.shape[0]} x {self.shape[1]}" if self.shape else ""
        if self.requested_rate is None:
            dense = f": {self.fully_connected} FullyConnected nodes on dense kernels{where}" if self.measured else ""
            return f"sparse decompression off (no rate configured){dense}"
        if not self.measured:
            return (f"sparse decompression requested (rate {self.requested_rate:g}); not measured: no inference "
                    "at a static shape has run (warm_up(seq_len=...) first)")
        text = f"{ran}{where} (rate {self.requested_rate:g}"
        if self.eligible_weights is not None:
            text += f"; {self.eligible_meeting_rate} of {self.eligible_weights} eligible weights meet it"
        text += f"; AMX {'present' if self.amx else 'absent'})"
        if self.sparse_nodes == 0:
            if not self.amx:
                text += ("; this CPU has no AMX (amx_int8 absent from /proc/cpuinfo), which OpenVINO's sparse "
                         "INT8 kernels need, so the setting has no effect here")
            elif self.eligible_meeting_rate == 0:
                text += "; no eligible weight meets the rate: lower it"
            else:
                text += "; the plugin chose dense kernels at this shape"
        return text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape) if self.shape else None
        d["effect"] = self.effect
        d["summary"] = self.summary
        return d


def runtime_exec_types(compiled: Any) -> dict[str, dict[str, str]]:
    """{node name: {layerType, execType, originalLayersNames}} of the compiled model's runtime graph.

    The runtime graph calls the kernel ``primitiveType``; benchmark_app prints it as execType.
    """
    graph = compiled.get_runtime_model()
    out = {}
    for op in graph.get_ordered_ops():
        info = op.get_rt_info()
        keys = set(info.keys())

        def get(key: str, default: str = "", info: Any = info, keys: set[str] = keys) -> str:
            return str(info[key].astype(str)) if key in keys else default

        out[op.get_friendly_name()] = {
            "layerType": get("layerType", op.get_type_name()),
            "execType": get("primitiveType") or get("execType"),
            "originalLayersNames": get("originalLayersNames"),
        }
    return out


def sparse_status(compiled: Any, requested_rate: float | None, *, shape: tuple[int, int] | None,
                  eligibility: IREligibility | None = None) -> SparseStatus:
    """The one reading of sparse status (convert, load and benchmark all use it).

    ``shape``: the static [batch, seq_len] ``compiled`` was reshaped to and has run one inference at;
    None means no such inference ran, and the status says "not measured" instead of counting."""
    status = SparseStatus(requested_rate, has_amx(), measured=shape is not None, shape=shape)
    if eligibility is not None:
        status.eligible_weights = eligibility.eligible
        status.eligible_meeting_rate = eligibility.meeting_rate
        status.i8_weights = eligibility.i8_weights
    if shape is None:
        return status
    fc = sparse = 0
    for node in runtime_exec_types(compiled).values():
        if not node["layerType"].startswith("FullyConnected"):
            continue
        fc += 1
        status.exec_types[node["execType"]] = status.exec_types.get(node["execType"], 0) + 1
        sparse += SPARSE_EXEC_MARK in node["execType"].lower()
    status.fully_connected, status.sparse_nodes = fc, sparse
    return status


def compile_guarded(core: Any, model: Any, xml: Path, config: dict[str, str], *, batch: int, seq_len: int,
                    static: bool, device: str = "CPU") -> tuple[Any, dict[str, str], str | None]:
    """Compile ``model`` with ``config``; when a sparse rate could crash the plugin, first try it in a
    child process (probe.py) at [batch, seq_len]. Returns (compiled, the config used, why decompression
    was switched off or None). A compile that raises with a rate set is retried without it."""
    from .probe import needs_probe, probe

    reason = None
    if SPARSE_KEY in config and needs_probe(config):
        verdict = probe(xml, config, batch=batch, seq_len=seq_len, static=static)
        reason = None if verdict.ok else verdict.reason
    if reason is None:
        try:
            return core.compile_model(model, device, config), config, None
        except RuntimeError as exc:
            if SPARSE_KEY not in config:
                raise
            reason = f"OpenVINO failed to compile it with a sparse rate ({str(exc).strip().splitlines()[0][:160]})"
    config = {k: v for k, v in config.items() if k != SPARSE_KEY}
    return core.compile_model(model, device, config), config, reason


def warn(message: str) -> None:
    """A one-line warning on stderr (library code never raises for these)."""
    print(f"pofa-deploy: warning: {message}", file=sys.stderr, flush=True)


@dataclass
class LoadedModel:
    """A compiled OpenVINO model plus what it was compiled with.

    With a sparse rate set, every new input shape is first tried in a child process (see probe.py); a
    crash or failure there switches decompression off for this model, with a one-line warning, instead
    of taking the process down."""

    path: Path
    compiled: Any
    config: dict[str, str]
    input_names: list[str]
    xml: Path | None = None
    core: Any = None
    model: Any = None
    device: str = "CPU"
    notes: list[str] = field(default_factory=list)
    tuned: dict[str, Any] | None = None  # tune_report.json's choice, when load() followed it
    _checked: set[tuple[int, int]] = field(default_factory=set, repr=False)
    _warm_shape: tuple[int, int] | None = field(default=None, repr=False)
    _status: dict[tuple[int, int], SparseStatus] = field(default_factory=dict, repr=False)

    @property
    def model_file(self) -> str:
        """The IR file this model runs (openvino_model.xml or openvino_model_sparse.xml)."""
        return self.xml.name if self.xml is not None else self.path.name

    @property
    def sparse_rate(self) -> float | None:
        return parse_rate(self.config.get(SPARSE_KEY))

    def _switch_off(self, reason: str) -> None:
        self.config = {k: v for k, v in self.config.items() if k != SPARSE_KEY}
        self.compiled = self.core.compile_model(self.model, self.device, self.config)
        note = f"{self.xml}: sparse-weight decompression switched off for this model: {reason}"
        self.notes.append(note)
        warn(note)

    def _guard(self, shape: tuple[int, int]) -> None:
        from .probe import needs_probe, probe

        if shape in self._checked or self.xml is None or SPARSE_KEY not in self.config:
            return
        self._checked.add(shape)
        if needs_probe(self.config):
            verdict = probe(self.xml, self.config, batch=shape[0], seq_len=shape[1], static=False)
            if not verdict.ok:
                self._switch_off(verdict.reason)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {k: v for k, v in inputs.items() if k in self.input_names}
        shape = next((tuple(int(d) for d in v.shape[:2]) for v in feed.values() if v.ndim >= 2), None)
        if shape is not None:
            self._guard((shape[0], shape[1]))
        try:
            result = self.compiled.create_infer_request().infer(feed)
        except RuntimeError as exc:
            if SPARSE_KEY not in self.config or self.core is None:
                raise
            self._switch_off(f"OpenVINO failed to run it ({str(exc).strip().splitlines()[0][:160]})")
            result = self.compiled.create_infer_request().infer(feed)
        return {out.get_any_name(): np.array(result[out]) for out in self.compiled.outputs}

    def sparse_status(self, *, batch: int | None = None, seq_len: int | None = None) -> SparseStatus:
        """What the plugin runs at [batch, seq_len] (default: the warm-up shape), read from a copy of the
        model compiled at that static shape after one inference; "not measured" when no shape is known."""
        rate = self.sparse_rate
        shape = (batch or 1, seq_len) if seq_len else self._warm_shape
        if shape is None or rate is None or self.model is None or self.xml is None:
            return SparseStatus(rate, has_amx())
        if shape not in self._status:
            static = self.model.clone()
            static.reshape({name: list(shape) for name in self.input_names})
            compiled, used, reason = compile_guarded(self.core, static, self.xml, self.config, batch=shape[0],
                                                     seq_len=shape[1], static=True, device=self.device)
            if reason:
                self._switch_off(reason)
                return SparseStatus(None, has_amx())
            compiled.create_infer_request().infer(dummy_inputs(self.input_names, batch=shape[0], seq_len=shape[1]))
            self._status[shape] = sparse_status(compiled, parse_rate(used.get(SPARSE_KEY)), shape=shape,
                                                eligibility=ir_eligibility(self.model, rate))
        return self._status[shape]

    @property
    def precision(self) -> str:
        """The floating-point precision the plugin runs non-quantised ops in ("f32", "bf16", "f16")."""
        return str(self.compiled.get_property(PRECISION_KEY).to_string())

    def warm_up(self, seq_len: int = 128, batch: int = 1) -> None:
        """One inference at [batch, seq_len]; sparse_status() then reports what runs at that shape."""
        self.infer(dummy_inputs(self.input_names, batch=batch, seq_len=seq_len))
        self._warm_shape = (batch, seq_len)


def load(path: str | Path, *, sparse_rate: float | str | None = "config", precision: str | None = None,
         extra: dict[str, str] | None = None, device: str = "CPU", sparse_kernel: bool | None = None) -> LoadedModel:
    """Compile a converted folder (or an .xml) with its runtime configuration applied (crash-guarded).

    ``sparse_kernel``: run the folder's ``openvino_model_sparse.xml`` (pofa-deploy's SparseFullyConnected
    op; the extension library is added to the Core) instead of ``openvino_model.xml``. None (default):
    the file ``tune_report.json`` names when ``pofa-deploy tune`` has run on the folder, else the standard
    IR; ``LoadedModel.model_file`` and a note say which."""
    import openvino as ov

    path = Path(path)
    tuned = tuned_choice(path) if sparse_kernel is None and path.is_dir() else None
    if tuned is not None:
        sparse_kernel = tuned.get("model_file") == SPARSE_IR_FILE
    xml = ir_xml(path)
    if sparse_kernel and path.is_dir():
        xml = path / SPARSE_IR_FILE
        if not xml.is_file():
            raise InputError(f"{path}: no {SPARSE_IR_FILE}; convert with --int8 --sparse-kernel on to write it")
    if not xml.is_file():
        raise InputError(f"{path}: no OpenVINO IR here (expected openvino_model.xml); "
                         "convert a checkpoint first with pofa-deploy convert")
    folder = xml.parent
    config = compile_config(folder, sparse_rate=sparse_rate, precision=precision, extra=extra)
    core = ov.Core()
    if os.environ.get("POFA_OV_CACHE"):
        core.set_property({"CACHE_DIR": os.environ["POFA_OV_CACHE"]})
    from .extension import add_if_needed

    add_if_needed(core, xml)  # openvino_model_sparse.xml runs pofa-deploy's SparseFullyConnected op
    model = read_model(xml, core)  # a corrupt or truncated IR is a one-line CheckpointError
    names = [i.get_any_name() for i in model.inputs]
    seq = _report_seq_len(folder)
    compiled, used, reason = compile_guarded(core, model, xml, config, batch=1, seq_len=seq, static=False,
                                             device=device)
    loaded = LoadedModel(folder, compiled, used, names, xml=xml, core=core, model=model, device=device)
    loaded._checked.add((1, seq))
    if tuned is not None:
        loaded.tuned = tuned
        loaded.notes.append(f"{folder / 'tune_report.json'}: runs {xml.name} as tuned ({tuned.get('winner')})")
    if reason:
        note = f"{xml}: sparse-weight decompression switched off for this model: {reason}"
        loaded.notes.append(note)
        warn(note)
    return loaded


def tuned_choice(folder: Path) -> dict[str, Any] | None:
    """What ``pofa-deploy tune`` chose for ``folder`` (its tune_report.json), or None when it has not run
    there, the report is unreadable, or the file it names is missing."""
    import json

    file = folder / "tune_report.json"
    try:
        report = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or not (folder / str(report.get("model_file"))).is_file():
        return None
    return {k: report.get(k) for k in ("model_file", "winner", "variant", "properties", "nireq")}


def _report_seq_len(folder: Path) -> int:
    """The sequence length the folder was converted at (the first shape it is probed with)."""
    from .ir import read_report

    try:
        return max(1, int(read_report(folder).get("seq_len") or 128))
    except (TypeError, ValueError):
        return 128
