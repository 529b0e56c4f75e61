"""Rewrite an NNCF INT8 IR so that sparse quantised Linears run the ``SparseFullyConnected`` op.

NNCF leaves each quantised Linear as::

    x -> FakeQuantize(il, ih, ol, oh, levels) -> MatMul(transpose_b) -> Add(bias [1, .., N])
    MatMul's weight input: Multiply(scale [N, 1]) <- Convert <- Constant(i8 [N, K])

:func:`rewrite` replaces that subgraph (the FakeQuantize stays where other consumers still need it)
with one ``SparseFullyConnected`` node taking ``x`` and the weights in CSR form (only the nonzero i8
codes and their K positions; the op's contract is documented in ``ext/sparse_fc.hpp``). When the
Linear's only consumer is ``Gelu(ERF)`` (optionally followed by a per-channel ``Multiply``, NNCF's
smooth-quant scale), the op computes those too (activation ``gelu_erf``): OpenVINO's own
FullyConnected fuses its GELU as a post-op, and a GELU left after a custom op costs a whole extra pass
over the layer's output. And where an op's output goes only into another op (the first FFN Linear,
GELU fused, into the second), the first writes the second's u8 codes instead of f32
(``output_levels`` / ``input_u8``), already in the second's packed layout (``handoff`` "panel": the
first writes no [token][row] transpose and the second packs nothing; see ``ext/kernel.hpp``). Linears
that read the same FakeQuantize (q, k and v of an attention layer) become one op with an output each
(``out_splits``): their shared input is quantised and packed once, not three times. The node is
created here through a Python twin of the C++ op (same type name and version), which serialises to
the IR; reading the IR with the C++ library added (:func:`pofa_deploy.extension.extension_path`)
builds the C++ op, whose kernels run it.

:func:`unpack` reads the compressed weights back from a sparse IR (without needing the C++ library)
and :func:`verify` proves them equal, code for code, to the standard INT8 IR, and every source zero
a zero; convert writes the sparse IR only when :func:`verify` passes.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, SparsityLostError, VerificationError

OP_TYPE = "SparseFullyConnected"
OP_VERSION = "extension"  # OPENVINO_OP's default version; must match ext/sparse_fc.hpp
SPARSE_IR_NAME = "openvino_model_sparse"
DEFAULT_THRESHOLD = 0.7  # share of zeros from which a layer runs the sparse op (and `auto` switches on)
MODES = ("auto", "on", "off")


@dataclass
class QuantLinear:
    """One quantised Linear of an NNCF INT8 model, as found in the graph."""

    matmul: Any
    fq: Any
    weight: Any  # the i8 Constant
    codes: np.ndarray  # i8 [N, K] (out, in), like nn.Linear.weight
    scale: np.ndarray  # f32 [N]
    fq_params: np.ndarray  # f32 [4]: input_low, input_high, output_low, output_high
    levels: int
    bias_add: Any | None  # the Add fused as bias, when the MatMul's only consumer
    bias: np.ndarray  # f32 [N] (zeros without bias_add)

    @property
    def name(self) -> str:
        return str(self.matmul.get_friendly_name())

    @property
    def sparsity(self) -> float:
        return float(np.mean(self.codes == 0)) if self.codes.size else 0.0


@dataclass
class SparseLayer:
    """The weights of one SparseFullyConnected node, unpacked to dense [N, K] codes."""

    name: str
    codes: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    fq_params: np.ndarray
    levels: int
    activation: str = "none"
    post: np.ndarray | None = None  # f32 [N] with activation gelu_erf
    out_fq: np.ndarray | None = None  # f32 [4]: the consumer's FakeQuantize, when this op writes u8 codes
    output_levels: int = 0
    input_u8: bool = False
    handoff: str = "rows"  # the layout of the u8 codes passed to or from another op: "rows" or "panel"


@dataclass
class Activation:
    """A fusable Gelu(ERF) -> [Multiply(post)] after a Linear: the nodes and the per-channel factor."""

    gelu: Any
    multiply: Any | None
    post: np.ndarray  # f32 [N] (ones without a Multiply)

    @property
    def last(self) -> Any:
        return self.multiply if self.multiply is not None else self.gelu


@dataclass
class RewriteResult:
    model: Any
    layers: list[dict[str, Any]] = field(default_factory=list)  # per replaced layer: name, shape, sparsity, nnz
    skipped: list[dict[str, Any]] = field(default_factory=list)  # quantised Linears left as they were, and why

    @property
    def replaced(self) -> int:
        return len(self.layers)


# ---------------------------------------------------------------------------------------------- graph


def _const(node: Any) -> np.ndarray | None:
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    if node.get_type_name() != "Constant":
        return None
    return np.array(node.get_data(), copy=True)


def _scalar(values: np.ndarray | None) -> float | None:
    if values is None or values.size == 0 or not np.all(values == values.flat[0]):
        return None
    return float(values.flat[0])


def _match(matmul: Any) -> QuantLinear | str:
    """The QuantLinear rooted at this MatMul, or why it is not one the op can replace."""
    attrs = matmul.get_attributes()
    if attrs.get("transpose_a", False):
        return "transpose_a"
    fq = matmul.input_value(0).get_node()
    if fq.get_type_name() != "FakeQuantize":
        return "activation is not FakeQuantize'd"
    params = [_scalar(_const(fq.input_value(i).get_node())) for i in range(1, 5)]
    if any(p is None for p in params):
        return "FakeQuantize is not per-tensor"
    levels = int(fq.get_attributes().get("levels", 0))
    if not 2 <= levels <= 256:
        return f"FakeQuantize has {levels} levels (u8 needs <= 256)"
    fq_params = np.array(params, dtype=np.float32)
    if not fq_params[1] > fq_params[0]:
        return "FakeQuantize input range is empty"
    if fq.get_output_element_type(0).get_type_name() != "f32":
        return "activation is not f32"
    mul = matmul.input_value(1).get_node()
    if mul.get_type_name() != "Multiply":
        return "weight is not dequantised by a Multiply"
    sides = [mul.input_value(i).get_node() for i in range(2)]
    conv = next((n for n in sides if n.get_type_name() == "Convert"), None)
    other = next((n for n in sides if n is not conv), None)
    if conv is None or other is None:
        return "weight Multiply has no Convert input"
    weight = conv.input_value(0).get_node()
    if weight.get_type_name() != "Constant" or weight.get_output_element_type(0).get_type_name() != "i8":
        return "weight is not an i8 Constant (zero point or other storage)"
    codes = np.array(weight.get_data(), copy=True)
    if codes.ndim != 2:
        return "weight is not 2-D"
    scale = _const(other)
    if scale is None:
        return "weight scale is not a Constant"
    if not attrs.get("transpose_b", False):
        codes = codes.T
        scale = scale.T if scale.ndim == 2 else scale
    n, k = codes.shape
    if scale.size == 1:
        scale = np.full(n, float(scale.flat[0]), dtype=np.float32)
    elif scale.size == n and (scale.ndim == 1 or scale.shape[-1] == 1):
        scale = scale.reshape(n).astype(np.float32)
    else:
        return f"weight scale of shape {list(scale.shape)} is not per output channel"
    import openvino as ov

    in_shape = matmul.get_input_partial_shape(0)
    if in_shape.rank.is_dynamic or in_shape.rank.get_length() < 1 or \
            not in_shape[in_shape.rank.get_length() - 1].compatible(ov.Dimension(k)):
        return "activation shape does not end in K"
    bias_add, bias = None, np.zeros(n, dtype=np.float32)
    consumers = list(matmul.output(0).get_target_inputs())
    if len(consumers) == 1 and consumers[0].get_node().get_type_name() == "Add":
        add = consumers[0].get_node()
        other_in = add.input_value(1 - consumers[0].get_index()).get_node()
        values = _const(other_in)
        if values is not None and values.size == n and values.shape[-1] == n and \
                add.get_output_partial_shape(0).compatible(matmul.get_output_partial_shape(0)):
            bias_add, bias = add, values.reshape(n).astype(np.float32)
    return QuantLinear(matmul, fq, weight, codes.astype(np.int8), scale, fq_params, levels, bias_add, bias)


def _only_consumer(output: Any) -> Any | None:
    targets = list(output.get_target_inputs())
    return targets[0].get_node() if len(targets) == 1 else None


def activation_after(q: QuantLinear) -> Activation | None:
    """The Gelu(ERF) [-> Multiply by a constant of N values] that is the only consumer of the Linear
    (its bias Add when fused), or None when there is nothing the op can fuse."""
    n = q.codes.shape[0]
    gelu = _only_consumer((q.bias_add or q.matmul).output(0))
    if gelu is None or gelu.get_type_name() != "Gelu" or \
            str(gelu.get_attributes().get("approximation_mode", "")).upper() != "ERF":
        return None
    post = np.ones(n, dtype=np.float32)
    mul = _only_consumer(gelu.output(0))
    if mul is not None and mul.get_type_name() == "Multiply":
        other = mul.input_value(1 if mul.input_value(0).get_node() is gelu else 0)
        values = _const(other.get_node())
        # f16 too (an IR saved with FP16 compression): widening to f32 is exact, as the plugin does
        if values is not None and values.dtype in (np.float32, np.float16) and values.size == n and \
                values.shape[-1] == n and mul.get_output_partial_shape(0).compatible(gelu.get_output_partial_shape(0)):
            return Activation(gelu, mul, values.reshape(n).astype(np.float32))
    return Activation(gelu, None, post)


def quantised_linears(model: Any) -> tuple[list[QuantLinear], list[dict[str, Any]]]:
    """Every FakeQuantize -> MatMul(i8 weight) of the model, and the MatMuls with a constant weight that
    cannot be replaced (with the reason)."""
    found, skipped = [], []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        m = _match(op)
        if isinstance(m, QuantLinear):
            found.append(m)
        elif op.input_value(1).get_node().get_type_name() != "Parameter":
            skipped.append({"name": op.get_friendly_name(), "reason": m})
    return found, skipped


def encoder_sparsity(model: Any) -> float:
    """Share of zero codes over the quantised Linears of the encoder layers (names with ``.layer.``),
    or over all quantised Linears when none is named that way."""
    found, _ = quantised_linears(model)
    enc = [q for q in found if ".layer." in q.name] or found
    total = sum(q.codes.size for q in enc)
    return float(sum(int(np.sum(q.codes == 0)) for q in enc) / total) if total else 0.0


def should_rewrite(mode: str, model: Any, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """``--sparse-kernel auto|on|off``: auto when the encoder Linears are at least ``threshold`` zeros."""
    mode = str(mode).strip().lower()
    if mode not in MODES:
        raise InputError(f"--sparse-kernel must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "off":
        return False
    return mode == "on" or encoder_sparsity(model) >= threshold


def to_csr(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """i8 [N, K] -> (values i8 [nnz], indices i32 [nnz], row_ptr i32 [N + 1]), row by row, K ascending."""
    rows, cols = np.nonzero(codes)
    if codes.shape[1] > np.iinfo(np.int32).max or len(rows) > np.iinfo(np.int32).max:
        raise VerificationError("weight too large for 32-bit sparse indices")
    row_ptr = np.zeros(codes.shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=codes.shape[0]), out=row_ptr[1:])
    return codes[rows, cols].astype(np.int8), cols.astype(np.int32), row_ptr


def from_csr(values: np.ndarray, indices: np.ndarray, row_ptr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`to_csr`; raises VerificationError on a malformed CSR instead of guessing."""
    n, k = shape
    values, indices, row_ptr = (np.asarray(a).reshape(-1) for a in (values, indices, row_ptr))
    if row_ptr.size != n + 1 or row_ptr[0] != 0 or row_ptr[-1] != values.size or indices.size != values.size \
            or np.any(np.diff(row_ptr) < 0):
        raise VerificationError("compressed weights are malformed (row pointers do not match the values)")
    if values.size and (indices.min() < 0 or indices.max() >= k):
        raise VerificationError("compressed weights are malformed (a K index is out of range)")
    rows = np.repeat(np.arange(n), np.diff(row_ptr))
    dense = np.zeros((n, k), dtype=np.int8)
    dense[rows, indices] = values
    if np.count_nonzero(dense) != np.count_nonzero(values) or (
            values.size and np.any(np.diff(indices)[np.diff(rows) == 0] <= 0)):
        raise VerificationError("compressed weights are malformed (repeated or unsorted K indices in a row)")
    return dense


def panel_tokens(tokens: int) -> int:
    """Tokens in the packed layout of ``tokens`` tokens (tiles of up to 128 whole 64-token chunks), as
    ``ext/kernel.hpp``'s panel_tokens: the row count of a "panel" hand-off tensor."""
    tile = min(-(-tokens // 64), 2) * 64
    return 0 if tile == 0 else -(-tokens // tile) * tile


def _panel_in(attrs: dict[str, Any]) -> bool:
    return bool(attrs.get("input_u8", False)) and attrs.get("handoff", "rows") == "panel"


def out_widths(attrs: dict[str, Any]) -> list[int]:
    """The widths of an op's outputs, from its attributes (``out_splits``; one output when absent)."""
    widths = [int(w) for w in attrs.get("out_splits", [0])]
    return [int(attrs["out_features"])] if widths == [0] else widths


@functools.cache
def op_class() -> type:
    """The Python twin of the C++ op: same type name, version, inputs and attributes, so a model built
    with it serialises to exactly the IR the C++ op reads. It only infers shapes (no evaluate)."""
    import openvino as ov

    class SparseFullyConnected(ov.Op):
        def __init__(self, inputs: list[Any] | None = None, attrs: dict[str, Any] | None = None) -> None:
            # Every attribute, with a value of its type: reading an IR fills only these keys. out_splits
            # [0] stands for "one output" (an IR written before the attribute existed has none).
            self._attrs = {"in_features": 1, "out_features": 1, "levels": 256, "activation": "none",
                           "output_levels": 0, "input_u8": False, "out_splits": [0], "linears": "", "handoff": "rows",
                           **(attrs or {})}
            if attrs is not None:  # a node being built or cloned: write its widths out
                self._attrs["out_splits"] = out_widths(self._attrs)
            super().__init__(self, inputs)

        def validate_and_infer_types(self) -> None:
            # the tokens' shape: input 0's, or with a panel input the producer's input's (the last input)
            shape = self.get_input_partial_shape(self.get_input_size() - 1 if _panel_in(self._attrs) else 0)
            dims = [shape[d] for d in range(shape.rank.get_length())] if shape.rank.is_static else None
            u8 = int(self._attrs.get("output_levels", 0)) > 0
            for i, width in enumerate(out_widths(self._attrs)):
                if u8 and self._attrs.get("handoff") == "panel":  # [panel tokens, one byte per K position]
                    tokens = -1
                    if dims is not None and all(d.is_static for d in dims[:-1]):
                        tokens = panel_tokens(int(np.prod([d.get_length() for d in dims[:-1]])))
                    out = ov.PartialShape([tokens, int(width)])
                else:
                    out = shape if dims is None else ov.PartialShape([*dims[:-1], ov.Dimension(int(width))])
                self.set_output_type(i, ov.Type.u8 if u8 else ov.Type.f32, out)

        def clone_with_new_inputs(self, new_inputs: list[Any]) -> Any:
            return SparseFullyConnected(new_inputs, self._attrs)

        def visit_attributes(self, visitor: Any) -> bool:
            visitor.on_attributes(self._attrs)
            return True

        def get_attributes(self) -> dict[str, Any]:
            return dict(self._attrs)

    return SparseFullyConnected


def _make_node(group: list[QuantLinear], act: Activation | None, feeds: QuantLinear | None, fed: bool,
               panel: bool) -> Any:
    """The op for the Linears of ``group`` (one, or several reading the same FakeQuantize: an output
    each); ``feeds``: the rewritten Linear it hands u8 codes to; ``fed``: its input is a producer op's
    u8 codes (both, and ``act``, only for a group of one); ``panel``: those codes in the consumer's
    packed layout."""
    import openvino.opset13 as ops

    q = group[0]
    codes = np.concatenate([g.codes for g in group])
    n, k = codes.shape
    values, indices, row_ptr = to_csr(codes)
    arrays = [values, indices, row_ptr, np.concatenate([g.scale for g in group]).astype(np.float32),
              np.concatenate([g.bias for g in group]).astype(np.float32),
              q.fq_params.astype(np.float32)] + ([act.post] if act else []) + \
        ([feeds.fq_params.astype(np.float32)] if feeds else [])
    inputs = [q.fq.input_value(0), *(ops.constant(a).output(0) for a in arrays)]
    if fed and panel:  # the producer's input, for the tokens' shape the panel no longer carries
        inputs.append(q.fq.input_value(0).get_node().input_value(0))
    node = op_class()(inputs, {"in_features": int(k), "out_features": int(n), "levels": int(q.levels),
                               "activation": "gelu_erf" if act else "none",
                               "output_levels": int(feeds.levels) if feeds else 0, "input_u8": fed,
                               "out_splits": [int(g.codes.shape[0]) for g in group],
                               "linears": ";".join(g.name for g in group) if len(group) > 1 else "",
                               "handoff": "panel" if panel and (feeds or fed) else "rows"})
    # The MatMul's name carries the source module path (``__module.<path>/aten::linear/MatMul``), which
    # is how the zero check maps a weight to its nn.Linear: the op keeps it (the first one's, with
    # several; ``linears`` names them all).
    node.set_friendly_name(q.name)
    return node


def _shared_input_groups(chosen: list[QuantLinear], acts: dict[int, Activation | None],
                         feeds: dict[int, QuantLinear], fed: set[int]) -> list[list[QuantLinear]]:
    """``chosen`` in graph order as groups: Linears reading the same FakeQuantize (and fusing no GELU,
    handing off no u8 codes) together, at the place of the first; every other Linear alone."""
    groups: list[list[QuantLinear]] = []
    by_fq: dict[int, list[QuantLinear]] = {}
    for q in chosen:
        plain = acts[id(q)] is None and id(q) not in feeds and id(q) not in fed
        key = q.fq.get_instance_id()
        if plain and key in by_fq:
            by_fq[key].append(q)
            continue
        groups.append([q])
        if plain:
            by_fq[key] = groups[-1]
    return groups


def _handoffs(chosen: list[QuantLinear], acts: dict[int, Activation | None]) -> dict[int, QuantLinear]:
    """Producer -> consumer pairs for the u8 hand-off: the producer's last fused node (its Multiply, Gelu
    or bias Add) has one consumer, the consumer's FakeQuantize, whose one consumer is the consumer's
    MatMul. Keyed by id() of the producer."""
    by_fq = {q.fq.get_instance_id(): q for q in chosen}
    pairs = {}
    for q in chosen:
        act = acts[id(q)]
        last = act.last if act else q.bias_add or q.matmul
        fq = _only_consumer(last.output(0))
        if fq is None or fq.get_type_name() != "FakeQuantize" or fq.get_instance_id() not in by_fq:
            continue
        consumer = by_fq[fq.get_instance_id()]
        only = _only_consumer(fq.output(0))
        if only is not None and only.get_instance_id() == consumer.matmul.get_instance_id():
            pairs[id(q)] = consumer
    return pairs


def rewrite(model: Any, *, threshold: float = DEFAULT_THRESHOLD, fuse_gelu: bool = True,
            handoff: bool = True, panel: bool = True, shared_input: bool = True) -> RewriteResult:
    """A copy of ``model`` where every quantised Linear with at least ``threshold`` zero codes runs
    SparseFullyConnected (bias Add fused, and a following Gelu(ERF) [-> Multiply] unless ``fuse_gelu``
    is False; an op feeding only another op hands it u8 codes unless ``handoff`` is False, in the
    consumer's packed layout unless ``panel`` is False; Linears
    reading the same FakeQuantize are one op with an output each unless ``shared_input`` is False);
    everything else is untouched. ``model`` is not modified."""
    clone = model.clone()
    found, skipped = quantised_linears(clone)
    result = RewriteResult(clone, skipped=list(skipped))
    chosen, sparsity = [], {}
    for q in found:
        sparsity[id(q)] = q.sparsity  # a pass over the codes: once
        if sparsity[id(q)] < threshold:
            result.skipped.append({"name": q.name, "reason": f"sparsity {sparsity[id(q)]:.3f} < {threshold}"})
        else:
            chosen.append(q)
    acts = {id(q): activation_after(q) if fuse_gelu else None for q in chosen}
    feeds = _handoffs(chosen, acts) if handoff else {}
    fed = {id(c) for c in feeds.values()}
    groups = _shared_input_groups(chosen, acts, feeds, fed) if shared_input else [[q] for q in chosen]
    for group in groups:  # in graph order: a producer is replaced before its consumer reads its output
        act = acts[id(group[0])]
        node = _make_node(group, act, feeds.get(id(group[0])), id(group[0]) in fed, panel)
        for i, q in enumerate(group):
            old = (act.last if act else q.bias_add or q.matmul).output(0)
            names = set(old.get_names())
            for target in list(old.get_target_inputs()):
                target.replace_source_output(node.output(i))
            if names:
                old.get_tensor().set_names(set())
                node.output(i).get_tensor().set_names(names)
            n, k = q.codes.shape
            result.layers.append({"name": q.name, "shape": [int(n), int(k)], "sparsity": round(sparsity[id(q)], 6),
                                  "nnz": int(np.count_nonzero(q.codes)), "bias": q.bias_add is not None,
                                  "activation": "gelu_erf" if act else "none",
                                  "u8_output_to": feeds[id(q)].name if id(q) in feeds else None,
                                  "u8_input": id(q) in fed, "op": group[0].name, "op_output": i,
                                  "handoff": node.get_attributes()["handoff"]})
    clone.validate_nodes_and_infer_types()
    return result


# ------------------------------------------------------------------------------------ read back, check


def read_sparse_model(xml: Path) -> Any:
    """Read a sparse IR with the Python twin of the op registered, so no C++ build is needed to inspect it."""
    import openvino as ov

    core = ov.Core()
    core.add_extension(ov.OpExtension(op_class()))
    return core.read_model(str(xml))


def unpack(model_or_xml: Any) -> list[SparseLayer]:
    """Every SparseFullyConnected of a sparse IR (a path or an ov.Model), weights back to dense codes."""
    model = read_sparse_model(Path(model_or_xml)) if isinstance(model_or_xml, str | Path) else model_or_xml
    out = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != OP_TYPE:
            continue
        arrays = [_const(op.input_value(i).get_node()) for i in range(1, 7)]
        if any(a is None for a in arrays):
            raise VerificationError(f"{op.get_friendly_name()}: an input of {OP_TYPE} is not a constant")
        values, indices, row_ptr, scale, bias, fq = (a for a in arrays if a is not None)
        attrs = op.get_attributes()
        n, k = int(attrs["out_features"]), int(attrs["in_features"])
        activation = str(attrs.get("activation", "none"))
        output_levels = int(attrs.get("output_levels", 0))
        post = out_fq = None
        extras = [op.input_value(i).get_node() for i in range(7, op.get_input_size())]
        if activation != "none":
            post = _const(extras[0]) if extras else None
            if post is None:
                raise VerificationError(f"{op.get_friendly_name()}: {activation} without a constant post-scale input")
            post = post.reshape(-1)
        if output_levels:
            at = int(activation != "none")
            out_fq = _const(extras[at]) if len(extras) > at else None
            if out_fq is None:
                raise VerificationError(f"{op.get_friendly_name()}: u8 output without a constant out_fq input")
            out_fq = out_fq.reshape(-1)
        codes = from_csr(values, indices, row_ptr, (n, k))
        scale, bias = scale.reshape(-1), bias.reshape(-1)
        widths = out_widths(attrs)
        names = str(attrs.get("linears", "")).split(";") if len(widths) > 1 else [op.get_friendly_name()]
        if sum(widths) != n or len(names) != len(widths) or scale.size != n or bias.size != n or \
                (len(widths) > 1 and (activation != "none" or output_levels)):
            raise VerificationError(f"{op.get_friendly_name()}: out_splits {widths} and linears do not describe "
                                    f"its {n} weight rows")
        starts = np.cumsum([0, *widths])
        for name, (a, b) in zip(names, itertools.pairwise(starts), strict=True):
            out.append(SparseLayer(name, codes[a:b], scale[a:b], bias[a:b], fq.reshape(-1), int(attrs["levels"]),
                                   activation, post, out_fq, output_levels, bool(attrs.get("input_u8", False)),
                                   str(attrs.get("handoff", "rows"))))
    return out


def _verify_handoffs(model: Any, layers: list[SparseLayer]) -> None:
    """Every op writing u8 codes feeds exactly one op that reads u8 codes, with that op's own
    FakeQuantize (parameters and levels) and in the layout it reads; every op reading u8 codes is fed
    by such an op (and a panel reader takes its shape from that op's input)."""
    by_name = {la.name: la for la in layers}
    for op in model.get_ordered_ops():
        if op.get_type_name() != OP_TYPE:
            continue
        layer = by_name[op.get_friendly_name()]
        if layer.input_u8:
            producer = op.input_value(0).get_node()
            if producer.get_type_name() != OP_TYPE or not by_name[producer.get_friendly_name()].output_levels:
                raise VerificationError(f"{layer.name}: reads u8 codes that no SparseFullyConnected writes")
            if layer.handoff == "panel" and op.input_value(op.get_input_size() - 1) != producer.input_value(0):
                raise VerificationError(f"{layer.name}: reads a panel but its last input is not its producer's input")
        if layer.output_levels:
            consumers = [t.get_node() for t in op.output(0).get_target_inputs()]
            consumer = by_name.get(consumers[0].get_friendly_name()) if len(consumers) == 1 and \
                consumers[0].get_type_name() == OP_TYPE else None
            if consumer is None or not consumer.input_u8 or layer.out_fq is None or \
                    not np.array_equal(layer.out_fq, consumer.fq_params) or layer.output_levels != consumer.levels or \
                    layer.handoff != consumer.handoff:
                raise VerificationError(f"{layer.name}: its u8 output is not exactly the FakeQuantize of the one "
                                        "op it feeds")


def verify(sparse: Any, standard: Any, source: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Prove the sparse IR computes with the standard IR's weights: for every SparseFullyConnected the
    unpacked i8 codes equal the standard IR's code for code (so every zero is a zero and every nonzero
    the same code), scale, bias and FakeQuantize parameters are identical, and - given the source
    tensors by module path (``source[path]`` = nn.Linear weight) - every source zero is a zero.
    ``sparse`` / ``standard``: ov.Model or IR path. Raises SparsityLostError or VerificationError."""
    import openvino as ov

    from .ir import _LINEAR_NAME

    if isinstance(sparse, str | Path):
        sparse = read_sparse_model(Path(sparse))  # once, for the weights and for the hand-off check
    layers = unpack(sparse)
    std_model = standard if not isinstance(standard, str | Path) else ov.Core().read_model(str(standard))
    by_name = {q.name: q for q in quantised_linears(std_model)[0]}
    lost = 0
    for layer in layers:
        ref = by_name.get(layer.name)
        if ref is None:
            raise VerificationError(f"{layer.name}: no matching quantised MatMul in the standard IR")
        if layer.codes.shape != ref.codes.shape:
            raise VerificationError(f"{layer.name}: weight shape {layer.codes.shape} != {ref.codes.shape}")
        if source is not None:
            match = _LINEAR_NAME.search(layer.name)
            src = source.get(match.group("path") + ".weight") if match else None
            if src is None and match:
                src = source.get(match.group("path"))
            if src is None:
                raise VerificationError(f"{layer.name}: no source weight to check its zeros against")
            lost_here = int(np.sum((src == 0) & (layer.codes != 0)))
            if lost_here:
                lost += lost_here
                continue
        diff = int(np.sum(layer.codes != ref.codes))
        if diff:
            zeros_lost = int(np.sum((ref.codes == 0) & (layer.codes != 0)))
            raise SparsityLostError(f"{layer.name}: {diff} packed i8 codes differ from the standard IR "
                                    f"({zeros_lost} of them at zeros); the sparse IR is not written")
        for what, a, b in (("scale", layer.scale, ref.scale), ("bias", layer.bias, ref.bias),
                           ("FakeQuantize parameters", layer.fq_params, ref.fq_params)):
            if a.shape != b.shape or not np.array_equal(a, b):
                raise VerificationError(f"{layer.name}: {what} differ from the standard IR")
        if layer.levels != ref.levels:
            raise VerificationError(f"{layer.name}: FakeQuantize levels differ from the standard IR")
        if layer.activation != "none":  # the fused GELU must be the standard IR's, post-scale included
            act = activation_after(ref)
            if layer.activation != "gelu_erf" or act is None or layer.post is None or \
                    not np.array_equal(layer.post, act.post):
                raise VerificationError(f"{layer.name}: the fused {layer.activation} does not match the "
                                        "standard IR's Gelu and its Multiply")
    _verify_handoffs(sparse, layers)
    if lost:
        raise SparsityLostError(f"{lost} zeros of the source are nonzero in the sparse IR; it is not written")
    return {"layers": len(layers), "nnz": int(sum(np.count_nonzero(la.codes) for la in layers)),
            "codes_checked": int(sum(la.codes.size for la in layers))}
