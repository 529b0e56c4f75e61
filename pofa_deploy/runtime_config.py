"""runtime_config.json: the compile-time properties a converted folder is meant to run with.

The CPU plugin ignores CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE in an IR's rt_info, so the properties
live beside the IR in benchmark_app's ``-load_config`` format (``{"CPU": {...}}``), which optimum-intel
also takes as ``ov_config``. This module reads and writes it and spells "off" one way.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError

RUNTIME_CONFIG = "runtime_config.json"
SPARSE_KEY = "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"
PRECISION_KEY = "INFERENCE_PRECISION_HINT"


def parse_rate(value: object) -> float | None:
    """A CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE value as the plugin acts on it: None (off) when absent,
    not a number, or outside (0, 1) -- the plugin treats 1.0 as off."""
    if value is None:
        return None
    try:
        rate = float(str(value))
    except ValueError:
        return None
    return rate if 0.0 < rate < 1.0 else None


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


def compile_config(folder: Path, *, sparse_rate: float | str | None = "config",
                   precision: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The properties a folder is compiled with: its runtime_config.json, then overrides.

    ``sparse_rate``: "config" keeps the folder's value, None switches decompression off, a float sets it.
    A rate the plugin treats as off (1.0 or more) is left out, so "off" is spelled one way everywhere.
    """
    config = read_runtime_config(folder) if folder.is_dir() else {}
    if sparse_rate != "config":
        config.pop(SPARSE_KEY, None)
        if sparse_rate is not None:
            config[SPARSE_KEY] = str(float(sparse_rate))
    if SPARSE_KEY in config and parse_rate(config[SPARSE_KEY]) is None:
        config.pop(SPARSE_KEY)
    if precision:
        config[PRECISION_KEY] = precision
    config.update(extra or {})
    return config
