"""Keep-masks of the encoder Linears during training: record, re-apply, prune gradually, verify.

A mask is a bool tensor shaped like the weight, True where the weight may be nonzero. Training
keeps every False position at exactly 0.0: gradients there are zeroed before the optimiser step
(so AdamW's moments stay 0 there) and the weight is re-masked after it. Gradual pruning only ever
turns True into False (masks are monotone), following the cubic schedule of Zhu & Gupta (2017),
"To prune, or not to prune".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .sparsity import ZeroCheck, compare, is_encoder_linear, magnitude_mask

if TYPE_CHECKING:
    import torch

Masks = dict[str, "torch.Tensor"]


def encoder_linears(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """The Linears PoFA prunes (attention and feed-forward of every layer), by module path."""
    import torch

    return {name: module for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and is_encoder_linear(name)}


def record_masks(model: torch.nn.Module) -> Masks:
    """Keep-mask (weight != 0) of every encoder Linear."""
    return {name: (module.weight.detach() != 0).clone() for name, module in encoder_linears(model).items()}


def apply_masks_(model: torch.nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Set every masked weight to exactly 0.0, in place."""
    import torch

    linears = encoder_linears(model)
    with torch.no_grad():
        for name, keep in masks.items():
            # weight.mul_(keep) would leave -0.0 where a negative weight was just pruned; fill +0.0
            linears[name].weight.masked_fill_(~keep, 0.0)


def mask_grads_(model: torch.nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the gradient at masked positions, so no optimiser state builds up there."""
    linears = encoder_linears(model)
    for name, keep in masks.items():
        grad = linears[name].weight.grad
        if grad is not None:
            grad.mul_(keep)


def clear_optimizer_state_(optimizer: torch.optim.Optimizer, model: torch.nn.Module,
                           masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the per-weight optimiser state (e.g. AdamW's moments) at masked positions."""
    import torch

    linears = encoder_linears(model)
    for name, keep in masks.items():
        state = optimizer.state.get(linears[name].weight, {})
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.shape == keep.shape:
                value.mul_(keep)


def sparsities(masks: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {name: 1.0 - float(keep.sum()) / keep.numel() for name, keep in masks.items()}


def cubic_sparsity(step: int, *, initial: float, final: float, start: int, end: int) -> float:
    """Zhu & Gupta: s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3 for t0 <= t <= t0 + n*dt,
    s_i before t0 and s_f after; here t0 = ``start`` and t0 + n*dt = ``end`` (optimiser steps)."""
    if step <= start:
        return initial
    if step >= end:
        return final
    progress = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - progress) ** 3


def prune_steps(total: int, *, start: float, end: float, every: int) -> tuple[int, int, list[int]]:
    """(first step, last step, the steps after which masks are updated) for fractions of ``total``.

    Updates happen every ``every`` steps from the first step, and always at the last one so the
    final sparsity is reached exactly.
    """
    first = max(1, round(start * total))
    last = max(first, min(total, round(end * total)))
    steps = [*range(first + every, last, every), last]
    return first, last, steps


def prune_mask(weight: np.ndarray, keep: np.ndarray, sparsity: float) -> np.ndarray:
    """A keep-mask with exactly round(sparsity * size) zeros that keeps every zero of ``keep``.

    Of the still-kept entries, the smallest-magnitude ones are pruned (``sparsity.magnitude_mask``
    on them). Raises ValueError when ``keep`` already has more zeros than the target.
    """
    target = round(sparsity * weight.size)
    already = int((~keep).sum())
    if already > target:
        raise ValueError(f"already {already} zeros, more than the target {target} ({sparsity:.4f})")
    new = keep.copy()
    alive = weight[keep]
    if target > already:
        if target - already >= alive.size:
            new[:] = False
        else:
            new[keep] = magnitude_mask(alive, (target - already) / alive.size)
    return new


def prune_(model: torch.nn.Module, masks: Masks, targets: Mapping[str, float]) -> Masks:
    """Update ``masks`` (monotonically) to each layer's target sparsity by magnitude and apply them."""
    import torch

    linears = encoder_linears(model)
    updated: Masks = {}
    for name, keep in masks.items():
        w = linears[name].weight.detach().cpu().numpy()
        new = prune_mask(w, keep.cpu().numpy(), targets[name])
        updated[name] = torch.from_numpy(new).to(keep.device)
    apply_masks_(model, updated)
    return updated


def check_zeros(model: torch.nn.Module, masks: Mapping[str, torch.Tensor]) -> list[ZeroCheck]:
    """Per-layer comparison of the masks with the weights now: ``lost`` counts masked positions
    whose weight is no longer exactly zero."""
    linears = encoder_linears(model)
    checks = []
    for name, keep in masks.items():
        reference = keep.cpu().numpy().astype(np.float32)
        checks.append(compare(name, reference, linears[name].weight.detach().cpu().numpy()))
    return checks
