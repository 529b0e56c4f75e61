"""pofa-deploy: sparse BERT checkpoints to INT8 OpenVINO IR with every zero kept.

Importing this package is cheap: torch, openvino and nncf are imported inside the functions that
need them. The public API is re-exported lazily below.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "convert": "pofa_deploy.convert",
    "ConvertOptions": "pofa_deploy.convert",
    "ConvertReport": "pofa_deploy.convert",
    "inspect_path": "pofa_deploy.inspect",
    "load_checkpoint": "pofa_deploy.checkpoint",
    "Task": "pofa_deploy.checkpoint",
    "load": "pofa_deploy.runtime",
    "extension_path": "pofa_deploy.extension",
    "synthesize": "pofa_deploy.synth",
    "SynthOptions": "pofa_deploy.synth",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'pofa_deploy' has no attribute {name!r}")
