"""Resumable training state in ``OUTPUT.resume/``: written atomically, read back with every check.

The folder holds the model (safetensors), the keep-masks (safetensors) and ``state.pt`` (tensors and
plain values only, loaded with ``weights_only=True``): step, losses, evaluations, the options that
decide the result, the optimiser and scheduler state and every RNG state. ``--resume`` continues to
the result of an uninterrupted run, and refuses a state whose options or masks do not fit MODEL.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..masks import Masks, encoder_linears
from .options import FinetuneOptions

if TYPE_CHECKING:
    import torch

RESUME_SUFFIX = ".resume"
RESUME_FORMAT = 1
# Options that may change between an interrupted run and its --resume without changing the result.
RESUME_FREE = ("resume", "overwrite", "threads", "save_every", "eval_every", "max_eval_samples")


@dataclass
class TrainState:
    """How far training is: steps done, the loss of each, dev evaluations, training seconds."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    elapsed: float = 0.0
    resumed_from: int | None = None


def resume_folder(output: Path) -> Path:
    """Where the resumable state of a run writing ``output`` lives: ``OUTPUT.resume/`` beside it."""
    output = Path(output)
    return output.with_name(output.name + RESUME_SUFFIX)


def fingerprint(options: FinetuneOptions) -> dict[str, Any]:
    """The options a resumed run must share with the interrupted one."""
    return {k: v for k, v in options.to_json().items() if k not in RESUME_FREE}


def rng_state(device: torch.device) -> dict[str, Any]:
    import torch

    _name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": int(pos), "numpy_has_gauss": int(has_gauss), "numpy_gauss": float(gauss),
        "python_version": int(version), "python_state": torch.tensor(internal, dtype=torch.int64),
        "python_gauss": py_gauss,
        # dropout on a GPU draws from the CUDA generator, which torch.get_rng_state() does not cover
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], state["numpy_has_gauss"], state["numpy_gauss"]))
    random.setstate((state["python_version"], tuple(int(x) for x in state["python_state"].tolist()),
                     state["python_gauss"]))
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_resume(folder: Path, *, model: torch.nn.Module, masks: Masks, optimizer: Any, scheduler: Any,
                progress: TrainState, options: FinetuneOptions) -> None:
    """Write the full training state to ``folder`` atomically (temp sibling, then rename)."""
    import torch
    from safetensors.torch import save_file, save_model

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        save_model(model, str(tmp / "model.safetensors"))
        save_file({name: keep.cpu().contiguous() for name, keep in masks.items()}, str(tmp / "masks.safetensors"))
        torch.save({
            "format": RESUME_FORMAT,
            "step": progress.step,
            "elapsed": progress.elapsed,
            "losses": torch.tensor(progress.losses, dtype=torch.float64),
            "evals": [[s, a] for s, a in progress.evals],
            "options": json.dumps(fingerprint(options), sort_keys=True),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(next(model.parameters()).device),
        }, str(tmp / "state.pt"))
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            os.replace(folder, old / folder.name)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_resume(folder: Path, *, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                options: FinetuneOptions, initial: Masks) -> tuple[Masks, TrainState]:
    """Load the state saved by ``save_resume`` into ``model``, ``optimizer`` and ``scheduler``.

    ``initial`` holds the keep-masks recorded from MODEL: resumed masks may only have grown from them
    (equal them without --prune-to), and every weight they mask must be zero in the resumed model.
    """
    state, masks = _read(folder, model)
    if state.get("format") != RESUME_FORMAT:
        raise InputError(f"{folder}: resume state of another format; delete it and run without --resume")
    saved = json.loads(state["options"])
    now = fingerprint(options)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        shown = ", ".join(f"--{k.replace('_', '-')} {saved.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise InputError(f"{folder}: --resume needs the options of the interrupted run; changed: {shown}")
    check_masks(folder, model, masks, initial, pruning=options.prune_to is not None)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"], next(model.parameters()).device)
    progress = TrainState(step=int(state["step"]), losses=[float(x) for x in state["losses"].tolist()],
                          evals=[(int(s), float(a)) for s, a in state["evals"]],
                          elapsed=float(state["elapsed"]), resumed_from=int(state["step"]))
    return masks, progress


def _read(folder: Path, model: torch.nn.Module) -> tuple[dict[str, Any], Masks]:
    """state.pt (tensors only), the saved weights (into ``model``) and the masks (on the model's device)."""
    import pickle

    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file, load_model

    try:
        state = torch.load(str(folder / "state.pt"), map_location="cpu", weights_only=True)
        load_model(model, str(folder / "model.safetensors"))
        device = next(model.parameters()).device
        masks = {name: keep.to(device) for name, keep in load_file(str(folder / "masks.safetensors")).items()}
    except (pickle.UnpicklingError, SafetensorError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise InputError(f"{folder}: resume state is unreadable ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120]}); delete it and run without --resume") from None
    return state, masks


def check_masks(folder: Path, model: torch.nn.Module, masks: Masks, initial: Masks, *, pruning: bool) -> None:
    """Refuse resumed ``masks`` that do not fit MODEL: other layer names, another dtype or shape, a zero
    of MODEL given back, a weight MODEL has nonzero masked without ``pruning``, or a masked weight that
    is nonzero in the resumed model."""
    import torch

    linears = encoder_linears(model)
    if set(masks) != set(linears):
        raise InputError(f"{folder}: masks do not match the model's encoder Linears; "
                         "delete it and start over")
    for name, keep in masks.items():
        weight = linears[name].weight.detach()
        if keep.dtype != torch.bool or keep.shape != weight.shape:
            why = f"a {keep.dtype} mask of shape {tuple(keep.shape)} for a weight of shape {tuple(weight.shape)}"
        elif bool((keep & ~initial[name]).any()):
            why = "it keeps weights that are zero in MODEL"
        elif not pruning and not torch.equal(keep, initial[name]):
            why = "it masks weights that MODEL has nonzero, without --prune-to"
        elif bool(weight[~keep].any()):
            why = "weights it masks are nonzero in the saved model"
        else:
            continue
        raise InputError(f"{folder}: masks do not match the model's encoder Linears ({name}: {why}); "
                         "delete it and start over")
