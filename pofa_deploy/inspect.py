"""``pofa-deploy inspect PATH``: the zero pattern of a checkpoint folder or an OpenVINO IR."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .options import coerce_fields, option
from .sparsity import layer_table, totals


@dataclass(frozen=True, kw_only=True)
class InspectOptions:
    path: str = option(help="checkpoint folder, converted output folder, or an .xml IR", positional=True)
    json: bool = option(False, help="print JSON instead of a table")
    trust_remote_code: bool = option(False, help="allow code shipped with the checkpoint (off by default)")

    def __post_init__(self) -> None:
        coerce_fields(self)


OPTIONS = InspectOptions


def inspect_path(path: str | Path, *, trust_remote_code: bool = False) -> dict[str, Any]:
    """Per-layer zeros and sparse-decompression eligibility, with totals."""
    from .ir import ir_weights, ir_xml, is_ir, read_model

    p = Path(path)
    if is_ir(p):
        from .runtime_config import SPARSE_KEY, read_runtime_config

        weights = ir_weights(read_model(ir_xml(p)))
        rows = layer_table({w.source or w.matmul: w.effective for w in weights},
                           dtype={w.source or w.matmul: w.dtype for w in weights},
                           quantized_input={w.source or w.matmul: w.activation_quantized for w in weights})
        rate = read_runtime_config(ir_xml(p).parent).get(SPARSE_KEY)
        kind = "openvino-ir"
        eligible_note = "2-D i8 weight of a FullyConnected, both dims multiples of 64, quantised (u8/i8) input"
    else:

        ckpt = _load_any_task(p, trust_remote_code)
        rows = layer_table(ckpt.linear_weights(), eligible_if_int8=True)
        rate = None
        kind = "checkpoint"
        eligible_note = "2-D Linear with both dims multiples of 64: eligible once converted with --int8"
    return {
        "path": str(p),
        "kind": kind,
        "sparse_rate": float(rate) if rate is not None else None,
        "eligibility": eligible_note,
        "layers": [r.to_dict() for r in rows],
        "totals": totals(rows).to_dict(),
    }


def _load_any_task(path: Path, trust_remote_code: bool) -> Any:
    """Inspect only needs the Linears: fall back to the bare encoder when the task is unknown."""
    from .checkpoint import Task, infer_task, load_checkpoint, read_config, resolve
    from .errors import InputError

    folder = resolve(path)
    try:
        task = infer_task(folder, read_config(folder))
    except InputError:
        task = Task.FEATURE_EXTRACTION
    return load_checkpoint(folder, task=task, trust_remote_code=trust_remote_code)


def main(options: InspectOptions) -> int:
    from .tables import layers_text

    result = inspect_path(options.path, trust_remote_code=options.trust_remote_code)
    if options.json:
        print(json.dumps(result, indent=2))
        return 0
    header = "eligible" if result["kind"] == "openvino-ir" else "eligible@int8"
    print(f"{result['path']} ({result['kind']}; eligible = {result['eligibility']})")
    print(layers_text(result["layers"], result["totals"], eligible_header=header))
    if result["kind"] == "openvino-ir":
        rate = result["sparse_rate"]
        print(f"runtime_config.json sparse rate: {rate if rate is not None else 'off'}")
    return 0
