"""Dense-equivalent work of a static-shaped OpenVINO model: 2*M*K*N per MatMul with a (dequantised)
constant weight, and the two products of every attention (fused or as activation x activation MatMuls)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..ir import is_weight


@dataclass(frozen=True, kw_only=True)
class Flops:
    """Operations of one inference: weight MatMuls (``linear``), attention, and both together."""

    linear: int
    attention: int
    total: int

    def to_dict(self) -> dict[str, int]:
        return {"linear": self.linear, "attention": self.attention, "total": self.total}

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> Flops:
        return cls(linear=int(data["linear"]), attention=int(data["attention"]), total=int(data["total"]))


def graph_flops(model: Any) -> Flops:
    """Multiply-add work (2 ops each) of a static-shaped ov.Model: MatMuls and fused attention."""
    linear = attention = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "MatMul":
            a = op.input_value(0).get_partial_shape()
            out = op.get_output_partial_shape(0)
            if not (a.is_static and out.is_static):
                raise InputError("cannot count FLOPs of a dynamic shape; reshape the model first")
            a_dims = [int(d.get_length()) for d in a]
            attrs = op.get_attributes()
            k = a_dims[-2] if attrs.get("transpose_a") and len(a_dims) > 1 else a_dims[-1]
            n_out = int(np.prod([int(d.get_length()) for d in out], dtype=np.int64))
            work = 2 * n_out * k
            b_node = op.input_value(1).get_node()
            if is_weight(b_node):
                linear += work
            else:
                attention += work
        elif kind == "ScaledDotProductAttention":
            q, key, v = (op.input_value(i).get_partial_shape() for i in range(3))
            q_dims = [int(d.get_length()) for d in q]
            k_dims = [int(d.get_length()) for d in key]
            v_dims = [int(d.get_length()) for d in v]
            batch = int(np.prod(q_dims[:-2], dtype=np.int64))
            sq, d = q_dims[-2], q_dims[-1]
            sk, dv = k_dims[-2], v_dims[-1]
            attention += 2 * batch * sq * sk * d + 2 * batch * sq * sk * dv
    return Flops(linear=int(linear), attention=int(attention), total=int(linear + attention))
