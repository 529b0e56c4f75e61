"""The guard on the final save and ``finetune_report.json``: what was trained, how, and every zero's fate.

``raise_if_lost`` refuses a model (in memory, or as written to its safetensors files) in which a
masked weight is not exactly zero; ``build_report`` records the options, seed, steps, time, device,
teacher, pruning schedule, per-layer sparsity before and after, the zero check, the loss curve and
the dev accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..checkpoint import Checkpoint
from ..errors import SparsityLostError, VerificationError
from ..masks import Masks
from ..sparsity import LayerSparsity, ZeroCheck, compare, totals
from .options import FinetuneOptions
from .state import TrainState
from .step import Plan

if TYPE_CHECKING:
    import torch

REPORT = "finetune_report.json"


def raise_if_lost(checks: Sequence[ZeroCheck], where: str) -> None:
    bad = [c for c in checks if c.lost]
    if bad:
        shown = ", ".join(f"{c.name} ({c.lost})" for c in bad[:3])
        raise SparsityLostError(f"{sum(c.lost for c in bad)} zeros lost {where} in {len(bad)} encoder "
                                f"Linears: {shown}; nothing was written")


def weights(linears: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each Linear's weight as a numpy array (on the CPU)."""
    return {name: module.weight.detach().cpu().numpy() for name, module in linears.items()}


def check_saved(folder: Path, masks: Masks) -> list[ZeroCheck]:
    """Compare the masks with the weights as written to ``folder``'s safetensors files."""
    from safetensors import safe_open

    found: dict[str, np.ndarray] = {}
    wanted = {f"{name}.weight": name for name in masks}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="np") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has keys(), not __iter__
                if key in wanted:
                    found[wanted[key]] = handle.get_tensor(key)
    missing = sorted(set(masks) - set(found))
    if missing:
        raise VerificationError(f"{folder}: saved weights lack {len(missing)} encoder Linears "
                                f"(e.g. {missing[0]}.weight); cannot check their zeros")
    return [compare(name, masks[name].cpu().numpy().astype(np.float32), found[name]) for name in masks]


def clock(seconds: float) -> str:
    """``1h02m03s``, ``4m05s`` or ``6s``."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def loss_curve(losses: Sequence[float], points: int = 500) -> tuple[int, list[list[float]]]:
    """(window, [[last step of window, mean loss]]) with at most ``points`` entries."""
    window = max(1, math.ceil(len(losses) / points))
    curve = []
    for start in range(0, len(losses), window):
        chunk = losses[start:start + window]
        curve.append([start + len(chunk), round(float(np.mean(chunk)), 6)])
    return window, curve


@dataclass
class Run:
    """What a finished run knows for its report."""

    options: FinetuneOptions
    student: Checkpoint
    teacher: Checkpoint | None
    device: torch.device
    plan: Plan
    state: TrainState
    train_examples: int
    dev_examples: int | None  # None: no dev data
    time_s: float
    rows_before: list[LayerSparsity]
    rows_after: list[LayerSparsity]
    checks: list[ZeroCheck]


def build_report(run: Run) -> dict[str, Any]:
    """finetune_report.json's content."""
    import torch

    options, plan, state, device = run.options, run.plan, run.state, run.device
    window, curve = loss_curve(state.losses)
    return {
        "tool": "pofa-deploy finetune",
        "version": __version__,
        "model": run.student.source,
        "task": options.task.value,
        "labels": list(options.labels),
        "options": options.to_json(),
        "seed": options.seed,
        "steps": plan.total,
        "steps_per_epoch": plan.per_epoch,
        "epochs": round(plan.total / plan.per_epoch, 4),
        "train_examples": run.train_examples,
        "resumed_from_step": state.resumed_from,
        "time_s": round(run.time_s, 3),
        "train_time_s": round(state.elapsed, 3),
        "threads": torch.get_num_threads(),
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "newly_initialised": run.student.newly_initialised,
        "synthetic": run.student.synthetic,
        "teacher": None if run.teacher is None else {
            "model": run.teacher.source, "alpha": options.distill_alpha, "temperature": options.temperature},
        "pruning": None if options.prune_to is None else {
            "target": options.prune_to, "schedule": "cubic (Zhu & Gupta 2017), magnitude, per layer",
            "start_step": plan.prune_first, "end_step": plan.prune_last, "mask_updates": len(plan.prune_at)},
        "sparsity_before": [r.to_dict() for r in run.rows_before],
        "sparsity_after": [r.to_dict() for r in run.rows_after],
        "totals_before": totals(run.rows_before).to_dict(),
        "totals_after": totals(run.rows_after).to_dict(),
        "zero_check": {
            "reference": "final pruning masks" if options.prune_to is not None else "zeros at load",
            "lost": sum(c.lost for c in run.checks),
            "layers": [c.to_dict() for c in run.checks],
        },
        "train_loss": curve,
        "train_loss_window": window,
        "dev": None if run.dev_examples is None else {
            "examples": run.dev_examples, "accuracy": state.evals[-1][1],
            "history": [[s, round(a, 6)] for s, a in state.evals]},
    }


def summary(options: FinetuneOptions, report: dict[str, Any], out: Path) -> str:
    """The one line ``pofa-deploy finetune`` prints when done."""
    after = report["totals_after"]
    dev = report["dev"]
    acc = f"dev accuracy {dev['accuracy']:.4f} on {dev['examples']}" if dev else "no dev data"
    how = f" distilled from {options.teacher}" if options.teacher else ""
    how += f", pruned to {options.prune_to:.0%}" if options.prune_to is not None else ""
    return (f"fine-tuned {options.model} on {options.task}{how}: {report['steps']} steps in "
            f"{clock(report['time_s'])}, {acc}; encoder Linears {after['sparsity']:.2%} zeros, "
            f"{report['zero_check']['lost']} lost; wrote {out}")
