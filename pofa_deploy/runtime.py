"""Compile a converted output folder the way it is meant to run, and tell what actually ran.

The CPU plugin ignores CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE in an IR's rt_info, so a converted
folder carries ``runtime_config.json`` (benchmark_app ``-load_config`` format: ``{"CPU": {...}}``)
and this loader applies it to ``compile_model``. Whether sparse kernels really run is read from the
compiled model's runtime graph after one inference at a static shape: execType of FullyConnected
nodes is ``brgemm_avx512_amx_sparse_I8`` when they do. That needs AMX (4th-gen Xeon and later).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .ir import ir_xml

RUNTIME_CONFIG = "runtime_config.json"
SPARSE_KEY = "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"
PRECISION_KEY = "INFERENCE_PRECISION_HINT"
SPARSE_EXEC_MARK = "sparse"


def cpu_flags() -> set[str]:
    """CPU feature flags of this machine (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def has_amx() -> bool:
    """AMX tiles with INT8 support, which the CPU plugin's sparse I8 kernels need."""
    flags = cpu_flags()
    return {"amx_tile", "amx_int8"} <= flags


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def read_runtime_config(folder: Path) -> dict[str, str]:
    """The CPU section of ``runtime_config.json`` ({} when absent)."""
    file = folder / RUNTIME_CONFIG
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
        return {str(k): str(v) for k, v in data.get("CPU", {}).items()}
    except (json.JSONDecodeError, AttributeError) as exc:
        raise InputError(f"{file}: not a runtime config ({exc}); re-run pofa-deploy convert") from None


def write_runtime_config(folder: Path, cpu: dict[str, str]) -> Path:
    file = folder / RUNTIME_CONFIG
    file.write_text(json.dumps({"CPU": cpu}, indent=2) + "\n")
    return file


@dataclass
class SparseStatus:
    """What the CPU plugin did with sparse decompression in one compiled model."""

    amx: bool
    requested_rate: float | None
    fully_connected: int  # FullyConnected nodes in the runtime graph
    sparse_nodes: int  # of which ran a sparse kernel
    exec_types: dict[str, int] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        if self.requested_rate is None:
            return "sparse decompression off (no rate configured)"
        if not self.amx:
            return (f"sparse decompression requested (rate {self.requested_rate}) but this CPU has no AMX: "
                    f"0 of {self.fully_connected} FullyConnected nodes run sparse kernels; the setting has no "
                    "effect here (OpenVINO's sparse I8 kernels need AMX, 4th-gen Xeon or later)")
        return (f"{self.sparse_nodes} of {self.fully_connected} FullyConnected nodes run sparse kernels "
                f"(rate {self.requested_rate}, AMX present)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
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


def sparse_status(compiled: Any, requested_rate: float | None) -> SparseStatus:
    """Count FullyConnected nodes and those that run sparse kernels (call after an inference)."""
    counts: dict[str, int] = {}
    fc = sparse = 0
    for node in runtime_exec_types(compiled).values():
        if node["layerType"] != "FullyConnected":
            continue
        fc += 1
        counts[node["execType"]] = counts.get(node["execType"], 0) + 1
        if SPARSE_EXEC_MARK in node["execType"].lower():
            sparse += 1
    return SparseStatus(has_amx(), requested_rate, fc, sparse, counts)


@dataclass
class LoadedModel:
    """A compiled OpenVINO model plus what it was compiled with."""

    path: Path
    compiled: Any
    config: dict[str, str]
    input_names: list[str]

    @property
    def sparse_rate(self) -> float | None:
        value = self.config.get(SPARSE_KEY)
        return float(value) if value is not None and float(value) < 1.0 else None

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = self.compiled.create_infer_request()
        feed = {k: v for k, v in inputs.items() if k in self.input_names}
        result = request.infer(feed)
        return {out.get_any_name(): np.array(result[out]) for out in self.compiled.outputs}

    def sparse_status(self) -> SparseStatus:
        return sparse_status(self.compiled, self.sparse_rate)

    @property
    def precision(self) -> str:
        """The floating-point precision the plugin runs non-quantised ops in ("f32", "bf16", "f16")."""
        return str(self.compiled.get_property(PRECISION_KEY).to_string())

    def warm_up(self, seq_len: int = 128, batch: int = 1) -> None:
        """One inference at a static shape, after which the runtime graph shows real exec types."""
        self.infer(dummy_inputs(self.input_names, batch=batch, seq_len=seq_len))


def dummy_inputs(names: list[str], *, batch: int, seq_len: int, vocab: int = 1000,
                 seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for name in names:
        if name == "input_ids":
            feed[name] = rng.integers(5, vocab, size=(batch, seq_len), dtype=np.int64)
        elif name == "attention_mask":
            feed[name] = np.ones((batch, seq_len), dtype=np.int64)
        else:  # token_type_ids, position_ids ...
            feed[name] = np.zeros((batch, seq_len), dtype=np.int64)
    return feed


def compile_config(folder: Path, *, sparse_rate: float | str | None = "config",
                   precision: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The properties a folder is compiled with: its runtime_config.json, then overrides.

    ``sparse_rate``: "config" keeps the folder's value, None switches decompression off, a float sets it.
    """
    config = read_runtime_config(folder) if folder.is_dir() else {}
    if sparse_rate != "config":
        config.pop(SPARSE_KEY, None)
        if sparse_rate is not None:
            config[SPARSE_KEY] = str(float(sparse_rate))
    if precision:
        config[PRECISION_KEY] = precision
    config.update(extra or {})
    return config


def load(path: str | Path, *, sparse_rate: float | str | None = "config", precision: str | None = None,
         extra: dict[str, str] | None = None, device: str = "CPU") -> LoadedModel:
    """Compile a converted folder (or an .xml) with its runtime configuration applied."""
    import openvino as ov

    path = Path(path)
    xml = ir_xml(path)
    if not xml.is_file():
        raise InputError(f"{path}: no OpenVINO IR here (expected openvino_model.xml); "
                         "convert a checkpoint first with pofa-deploy convert")
    folder = xml.parent
    config = compile_config(folder, sparse_rate=sparse_rate, precision=precision, extra=extra)
    core = ov.Core()
    if os.environ.get("POFA_OV_CACHE"):
        core.set_property({"CACHE_DIR": os.environ["POFA_OV_CACHE"]})
    try:
        model = core.read_model(str(xml))
    except RuntimeError as exc:
        raise InputError(f"{xml}: OpenVINO cannot read it ({str(exc).splitlines()[0][:160]}); "
                         "re-run pofa-deploy convert") from None
    compiled = core.compile_model(model, device, config)
    names = [i.get_any_name() for i in compiled.inputs]
    return LoadedModel(folder, compiled, config, names)
