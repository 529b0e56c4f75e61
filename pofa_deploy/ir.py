"""Read the weights of an OpenVINO IR back, the way the CPU plugin will see them.

NNCF stores a quantised Linear as ``Constant(i8) -> Convert -> [Subtract(zero point)] ->
Multiply(scale) -> MatMul``. The i8 constant loses its name on the way, but the MatMul keeps the
PyTorch module path that optimum-intel's exporter gives it (``__module.<path>/aten::linear/MatMul``),
which is how each weight is mapped back to its source ``nn.Linear``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPORT_FILE = "pofa_report.json"  # written by convert next to the IR

_LINEAR_NAME = re.compile(r"__module\.(?P<path>[^/]+)/aten::linear/MatMul")

_DTYPES = {"i8": "i8", "u8": "u8", "f32": "f32", "f16": "f16", "bf16": "bf16", "i4": "i4", "u4": "u4"}


@dataclass
class IRWeight:
    """A constant weight of a MatMul, in [out, in] layout like ``nn.Linear.weight``."""

    matmul: str
    source: str | None  # PyTorch module path, when the MatMul name carries it
    dtype: str  # storage type of the constant: i8, f32, f16, ...
    values: np.ndarray  # stored values (int8 codes for quantised weights)
    zero_point: np.ndarray | None  # None or all-zero for symmetric quantisation
    # The MatMul's activation input comes from a FakeQuantize, so the CPU plugin feeds it u8/i8: one of
    # the conditions of its sparse-weight decompression (see sparsity.is_eligible).
    activation_quantized: bool = False

    @property
    def effective(self) -> np.ndarray:
        """Values whose zeros are the weight's real zeros (codes minus zero point)."""
        if self.zero_point is None:
            return self.values
        return self.values.astype(np.int32) - self.zero_point.astype(np.int32)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)


def _etype(node: Any) -> str:
    return _DTYPES.get(node.get_output_element_type(0).get_type_name(), node.get_output_element_type(0).get_type_name())


def _const_array(node: Any) -> np.ndarray:
    return np.array(node.get_data(), copy=True)


def _weight_chain(node: Any, *, any_layout: bool = False) -> tuple[Any, np.ndarray | None] | None:
    """Follow a MatMul's weight input to its Constant; None when it is an activation.

    ``any_layout`` also follows Transpose and FakeQuantize (weights of other exporters' IRs): enough to
    tell a weight from an activation (FLOP counting), not to read its zeros, so ir_weights leaves it off."""
    zero_point = None
    for _ in range(8):
        kind = node.get_type_name()
        if kind == "Constant":
            return node, zero_point
        if kind == "Convert" or (any_layout and kind in ("Transpose", "FakeQuantize")):
            node = node.input_value(0).get_node()
            continue
        if kind in ("Multiply", "Subtract"):
            a, b = (node.input_value(i).get_node() for i in range(2))
            const, other = (b, a) if _is_const(b) else (a, b) if _is_const(a) else (None, None)
            if const is None:
                return None
            if kind == "Subtract":
                zero_point = _const_array(_strip_convert(const))
            node = other
            continue
        if kind == "Reshape":  # grouped quantisation reshapes the weight; follow its data input
            node = node.input_value(0).get_node()
            continue
        return None
    return None


def is_weight(node: Any) -> bool:
    """A MatMul input that is a (dequantised, reshaped, transposed) constant rather than an activation."""
    return _weight_chain(node, any_layout=True) is not None


def _strip_convert(node: Any) -> Any:
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return node


def _is_const(node: Any) -> bool:
    return bool(_strip_convert(node).get_type_name() == "Constant")


def ir_weights(model: Any) -> list[IRWeight]:
    """Every MatMul whose second input is a constant weight, in graph order."""
    out = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        chain = _weight_chain(op.input_value(1).get_node())
        if chain is None:
            continue
        const, zp = chain
        values = _const_array(const)
        if values.ndim != 2:
            continue
        attrs = op.get_attributes()
        if not attrs.get("transpose_b", False):
            values = values.T
            zp = zp.T if zp is not None and zp.ndim == 2 else zp
        if zp is not None and not np.any(zp):
            zp = None
        match = _LINEAR_NAME.search(op.get_friendly_name())
        quantized_input = op.input_value(0).get_node().get_type_name() == "FakeQuantize"
        out.append(IRWeight(op.get_friendly_name(), match.group("path") if match else None,
                            _etype(const), values, zp, quantized_input))
    return out


def read_report(folder: Path) -> dict[str, Any]:
    """The folder's pofa_report.json (written by convert), or {} when absent or unreadable."""
    file = folder / REPORT_FILE
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def is_int8_ir(xml: Path, report: dict[str, Any] | None = None) -> bool:
    """Quantised IR? The conversion report says so; an IR from elsewhere is scanned for i8/u8 or FakeQuantize."""
    if report and "int8" in report:
        return bool(report["int8"])
    text = xml.read_text(errors="replace")
    return 'element_type="i8"' in text or 'element_type="u8"' in text or "FakeQuantize" in text


def read_model(xml: Path, core: Any = None) -> Any:
    """``core.read_model`` of an IR; a truncated or corrupt .xml/.bin is a one-line CheckpointError
    naming the file instead of OpenVINO's multi-line exception."""
    import openvino as ov

    from .errors import CheckpointError

    xml = Path(xml)
    weights = xml.with_suffix(".bin")
    fix = "convert the model again (pofa-deploy convert MODEL -o OUT) or copy both files again"
    try:
        with open(xml, "rb") as fh:
            head = fh.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise CheckpointError(f"{xml}: cannot read the IR ({exc.strerror or exc}); {fix}") from None
    if not head.startswith(b"<"):  # otherwise OpenVINO offers it to every frontend, and TF's log noise
        raise CheckpointError(f"{xml}: not an OpenVINO IR (the .xml is empty or not XML); {fix}")
    try:
        return (core or ov.Core()).read_model(str(xml))
    except RuntimeError as exc:
        reason = _openvino_reason(str(exc))
        low = reason.lower()
        if "bin file" in low or "weights" in low:
            what = f"{weights}: missing, truncated or corrupt weights of {xml.name}"
        elif "pugi::" in str(exc) or "unable to read the model" in low:  # pugixml: the XML parser
            what = f"{xml}: truncated or corrupt IR XML"
        else:
            what = f"{xml}: OpenVINO cannot build this IR, its .xml or {weights.name} is corrupt"
        raise CheckpointError(f"{what} ({reason[:160]}); {fix}") from None


def _openvino_reason(message: str) -> str:
    """The informative line of an OpenVINO exception (not its 'Exception from file:line' frames)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from ", "Check '"))]
    return useful[-1] if useful else (lines[-1] if lines else "no details")


def is_ir(path: Path) -> bool:
    return (path.suffix == ".xml" and path.is_file()) or (path / "openvino_model.xml").is_file()


def ir_xml(path: Path) -> Path:
    return path if path.suffix == ".xml" else path / "openvino_model.xml"
