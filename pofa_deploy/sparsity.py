"""Zero patterns as plain numpy: per-layer tables, decompression eligibility, before/after checks.

Nothing here imports torch or openvino, so the logic that decides "was a zero lost?" is small,
fast and easy to test on hand-made arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# OpenVINO's CPU plugin runs sparse-weight kernels only for FullyConnected layers with i8 weights
# whose both dimensions are multiples of 64 and u8/i8 activations (a FakeQuantize in front of the
# MatMul in the IR), only on CPUs with AMX, and only for a rate below 1 (1.0 means off).
SPARSE_DIM_MULTIPLE = 64
# Below this share of zeros the sparse kernel does not pay; `--sparse-rate auto` never goes lower.
MIN_USEFUL_SPARSITY = 0.5


def is_encoder_linear(name: str) -> bool:
    """The one rule for "is this an encoder Linear": the Linears PoFA prunes (attention and feed-forward
    inside each transformer layer) are those whose module path has a ``.layer.`` component; embeddings,
    pooler and task heads are not. ``name`` is a module path, a weight's source name or an IR layer."""
    return ".layer." in name


def shape_eligible(shape: Iterable[int]) -> bool:
    dims = tuple(int(d) for d in shape)
    return len(dims) == 2 and all(d > 0 and d % SPARSE_DIM_MULTIPLE == 0 for d in dims)


def is_eligible(shape: Iterable[int], dtype: str, *, quantized_input: bool = True) -> bool:
    """Would the CPU plugin consider this weight for sparse decompression? ``quantized_input``: the
    layer's activations arrive as u8/i8 (its MatMul is fed by a FakeQuantize)."""
    return dtype == "i8" and quantized_input and shape_eligible(shape)


@dataclass(frozen=True)
class LayerSparsity:
    name: str
    shape: tuple[int, ...]
    dtype: str
    zeros: int
    size: int
    eligible: bool

    @property
    def sparsity(self) -> float:
        return self.zeros / self.size if self.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["sparsity"] = round(self.sparsity, 6)
        return d


def layer_table(weights: Mapping[str, np.ndarray], *, dtype: str | Mapping[str, str] = "f32",
                eligible_if_int8: bool = False,
                quantized_input: Mapping[str, bool] | None = None) -> list[LayerSparsity]:
    """One row per weight. ``zeros`` counts exact zeros of the array as given (callers pass the
    effective values, e.g. q - zero_point for quantised weights). ``eligible_if_int8`` judges a
    float checkpoint by the shape its weight will have after INT8 conversion; ``quantized_input``
    says per weight whether its activations are quantised (all are when not given)."""
    rows = []
    for name, w in weights.items():
        dt = dtype if isinstance(dtype, str) else dtype[name]
        q_in = True if quantized_input is None else quantized_input.get(name, False)
        eligible = shape_eligible(w.shape) if eligible_if_int8 else is_eligible(w.shape, dt, quantized_input=q_in)
        rows.append(LayerSparsity(name, tuple(w.shape), dt, int(np.count_nonzero(w == 0)), int(w.size), eligible))
    return rows


@dataclass(frozen=True)
class Totals:
    layers: int
    zeros: int
    size: int
    eligible_layers: int
    eligible_zeros: int
    eligible_size: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.size if self.size else 0.0

    @property
    def eligible_sparsity(self) -> float:
        return self.eligible_zeros / self.eligible_size if self.eligible_size else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sparsity"] = round(self.sparsity, 6)
        d["eligible_sparsity"] = round(self.eligible_sparsity, 6)
        return d


def totals(rows: Iterable[LayerSparsity]) -> Totals:
    rows = list(rows)
    el = [r for r in rows if r.eligible]
    return Totals(len(rows), sum(r.zeros for r in rows), sum(r.size for r in rows),
                  len(el), sum(r.zeros for r in el), sum(r.size for r in el))


@dataclass(frozen=True)
class ZeroCheck:
    """One layer's zeros before and after conversion. ``lost`` must be 0."""

    name: str
    zeros_before: int
    zeros_after: int
    lost: int
    new: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(name: str, before: np.ndarray, after: np.ndarray) -> ZeroCheck:
    """Compare zero patterns of the same weight before and after conversion (same layout)."""
    if before.shape != after.shape:
        raise ValueError(f"{name}: shape {before.shape} before conversion but {after.shape} after")
    zb = before == 0
    za = after == 0
    return ZeroCheck(name, int(zb.sum()), int(za.sum()), int((zb & ~za).sum()), int((za & ~zb).sum()))


def choose_rate(eligible_sparsities: Iterable[float]) -> float | None:
    """``--sparse-rate auto``: the largest threshold that every usefully sparse eligible layer meets.

    The CPU plugin compares each layer's own share of zeros against the threshold, so taking the
    minimum (rounded down to 0.01) switches sparse kernels on for every such layer; ``None`` (off)
    when no eligible layer reaches MIN_USEFUL_SPARSITY.
    """
    useful = [s for s in eligible_sparsities if s >= MIN_USEFUL_SPARSITY]
    if not useful:
        return None
    return math.floor(min(useful) * 100) / 100


def magnitude_mask(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """Boolean keep-mask that zeroes the ``sparsity`` share of smallest-magnitude entries (exactly
    round(sparsity * size) of them; ties broken by position so the count is exact)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    k = round(sparsity * weight.size)
    keep = np.ones(weight.size, dtype=bool)
    if k:
        order = np.argsort(np.abs(weight).ravel(), kind="stable")
        keep[order[:k]] = False
    return keep.reshape(weight.shape)
