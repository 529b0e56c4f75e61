"""Fine-tune a sparse checkpoint on a GLUE task and keep every zero exactly.

Data flow, top to bottom:
  1. check OUT early, seed everything, load the student (and an optional fine-tuned teacher)
  2. read the task's train (and dev) examples with ``pofa_deploy.calibration.load_examples``
  3. record the keep-mask of every encoder Linear (masks.py); with ``--prune-to`` these masks
     instead grow monotonically on Zhu & Gupta's cubic schedule, by weight magnitude
  4. AdamW with linear warmup/decay; each step: loss (cross-entropy, or PoFA's distillation mix)
     -> backward -> zero masked gradients -> clip -> step -> (prune) -> re-apply masks
  5. every ``--save-every`` steps a resumable state goes to ``OUT.resume/`` (tensors only, loaded
     with ``weights_only=True``); ``--resume`` continues from it to the same result
  6. compare masks with weights per layer (``sparsity.compare``): one lost zero raises
     SparsityLostError and nothing is written; else save_pretrained + tokenizer +
     finetune_report.json into a temporary sibling of OUT, re-check the saved file, rename
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .checkpoint import Checkpoint, Task, load_checkpoint, read_config, resolve
from .errors import DataError, InputError, SparsityLostError, VerificationError
from .masks import (
    Masks,
    apply_masks_,
    check_zeros,
    clear_optimizer_state_,
    cubic_sparsity,
    encoder_linears,
    mask_grads_,
    prune_,
    prune_steps,
    record_masks,
    sparsities,
)
from .options import at_least, coerce_fields, option
from .outputs import check_writable, staged_output
from .sparsity import ZeroCheck, layer_table, totals

if TYPE_CHECKING:
    import torch

REPORT = "finetune_report.json"
RESUME_SUFFIX = ".resume"
RESUME_FORMAT = 1
# label names in the order of the label ids (the GLUE convention used by the Hugging Face datasets)
TASK_LABELS: dict[str, tuple[str, ...]] = {
    "sst2": ("negative", "positive"),
    "mnli": ("entailment", "neutral", "contradiction"),
    "qqp": ("not_duplicate", "duplicate"),
    "qnli": ("entailment", "not_entailment"),
}
UNSUPPORTED_TASKS = {"squad": "SQuAD fine-tuning is not supported yet; fine-tune a GLUE task "
                              "(sst2, mnli, qqp, qnli) or use a SQuAD checkpoint fine-tuned elsewhere"}
# Options that may change between an interrupted run and its --resume without changing the result.
_RESUME_FREE = ("resume", "overwrite", "threads", "save_every", "eval_every", "max_eval_samples")
# ``callback(event, step, model)``: event "step" after every optimiser step (masks applied),
# "save" right before the zero check that guards the final save.
Callback = Callable[[str, int, "torch.nn.Module"], None]


@dataclass(frozen=True)
class FinetuneOptions:
    model: str = option(help="sparse (or, with --prune-to, dense) checkpoint folder or hub id",
                        positional=True)
    task: str = option(help="GLUE task: sst2, mnli, qqp or qnli", metavar="{" + "|".join(TASK_LABELS) + "}")
    data: Path = option(help="folder with the task's GLUE files "
                        "(train.tsv; dev.tsv for accuracy)")
    output: Path = option(help="output checkpoint folder (written only when complete)",
                          flags=("-o", "--output"))
    teacher: str | None = option(None, help="fine-tuned dense teacher (same labels) for knowledge "
                                 "distillation")
    distill_alpha: float = option(0.5, help="with --teacher: weight of the label loss; 1 - alpha goes to "
                                  "the teacher's soft targets")
    temperature: float = option(2.0, help="with --teacher: softmax temperature of the distillation loss")
    prune_to: float | None = option(None, help="prune gradually (magnitude, cubic schedule) to this share "
                                    "of zeros in every encoder Linear")
    prune_start: float = option(0.1, help="with --prune-to: first pruning step, as a fraction of all steps")
    prune_end: float = option(0.7, help="with --prune-to: step reaching the target, as a fraction of all "
                              "steps")
    prune_every: int = option(100, help="with --prune-to: steps between mask updates")
    epochs: float = option(3.0, help="passes over the training data (fractions allowed)")
    max_steps: int | None = option(None, help="optimiser steps to run; overrides --epochs")
    batch_size: int = option(32, help="examples per optimiser step")
    lr: float = option(5e-5, help="peak learning rate (linear warmup, then linear decay to 0)")
    weight_decay: float = option(0.01, help="AdamW weight decay (not on biases and LayerNorms)")
    warmup: float = option(0.1, help="share of the steps spent warming the learning rate up")
    max_grad_norm: float = option(1.0, help="clip the gradient norm to this (0: no clipping)")
    seq_len: int = option(128, help="longest tokenised input; batches are padded to their longest")
    max_train_samples: int | None = option(None, help="use only this many training examples (quick runs)")
    max_eval_samples: int | None = option(None, help="use only this many dev examples")
    eval_every: int = option(0, help="steps between dev evaluations (0: only at the end)")
    save_every: int = option(500, help="steps between resumable states in OUTPUT.resume/ (0: never)")
    seed: int = option(0, help="seed of torch, numpy, python random and the data order")
    threads: int | None = option(None, help="torch threads (default: all cores)")
    device: str = option("cpu", help="torch device to train on: cpu, cuda, cuda:N or auto (cuda when "
                         "available); the saved checkpoint is the same format either way")
    resume: bool = option(False, help="continue from OUTPUT.resume/ to the result of an uninterrupted run")
    overwrite: bool = option(False, help="replace OUTPUT if it exists")

    def __post_init__(self) -> None:
        coerce_fields(self)
        if self.task in UNSUPPORTED_TASKS:
            raise InputError(f"--task {self.task}: {UNSUPPORTED_TASKS[self.task]}")
        if self.task not in TASK_LABELS:
            raise InputError(f"--task must be one of {', '.join(TASK_LABELS)}; got {self.task!r}")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise InputError(f"--distill-alpha must be in [0, 1], got {self.distill_alpha}")
        if self.temperature <= 0:
            raise InputError(f"--temperature must be positive, got {self.temperature}")
        if self.prune_to is not None and not 0.0 < self.prune_to < 1.0:
            raise InputError(f"--prune-to must be in (0, 1), got {self.prune_to}")
        if not 0.0 <= self.prune_start < self.prune_end <= 1.0:
            raise InputError(f"need 0 <= --prune-start < --prune-end <= 1; got {self.prune_start} and "
                             f"{self.prune_end}")
        if not 0.0 <= self.warmup < 1.0:
            raise InputError(f"--warmup must be in [0, 1), got {self.warmup}")
        if self.epochs <= 0 or not math.isfinite(self.epochs):
            raise InputError(f"--epochs must be a positive number, got {self.epochs}")
        if self.lr <= 0:
            raise InputError(f"--lr must be positive, got {self.lr}")
        at_least(self, 0, "weight_decay", "max_grad_norm", "eval_every", "save_every")
        at_least(self, 1, "prune_every", "batch_size", "seq_len", "max_steps", "max_train_samples",
                 "max_eval_samples", "threads")
        if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", self.device):
            raise InputError(f"--device must be cpu, cuda, cuda:N or auto; got {self.device!r}")

    @property
    def num_labels(self) -> int:
        return len(TASK_LABELS[self.task])

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


OPTIONS = FinetuneOptions


def resume_folder(output: Path) -> Path:
    """Where the resumable state of a run writing ``output`` lives: ``OUTPUT.resume/`` beside it."""
    output = Path(output)
    return output.with_name(output.name + RESUME_SUFFIX)


# ----------------------------------------------------------------------------------------- losses

def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
                      *, alpha: float, temperature: float) -> torch.Tensor:
    """alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T)),
    batch-mean; plain cross-entropy without a teacher."""
    import torch.nn.functional as F

    ce = F.cross_entropy(student_logits, labels)
    if teacher_logits is None:
        return ce
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                  reduction="batchmean", log_target=True)
    return alpha * ce + (1.0 - alpha) * t * t * kl


# ------------------------------------------------------------------------------------------- data

@dataclass
class _Data:
    texts: list[str]
    pairs: list[str] | None
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def _load_split(options: FinetuneOptions, split: str, limit: int | None) -> _Data:
    from .calibration import Example, load_examples

    examples = load_examples(f"{options.task}:{options.data}", split=split, limit=limit, seed=options.seed)
    if not examples:
        raise DataError(options.data, f"no {split} examples for {options.task}")
    if not all(isinstance(ex, Example) for ex in examples):
        raise DataError(options.data, f"{split}: expected {options.task} text examples")
    names = TASK_LABELS[options.task]
    labels = np.array([_label_id(ex.label, names, options.data, split) for ex in examples], dtype=np.int64)
    has_pair = [ex.text_pair is not None for ex in examples]
    if any(has_pair) and not all(has_pair):
        raise DataError(options.data, f"{split}: some examples have a second text and some do not")
    pairs = [str(ex.text_pair) for ex in examples] if all(has_pair) else None
    return _Data([str(ex.text) for ex in examples], pairs, labels)


def _label_id(label: Any, names: Sequence[str], where: Path, split: str) -> int:
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        value = int(label)
    elif isinstance(label, str) and label.strip().lstrip("-").isdigit():
        value = int(label.strip())
    elif isinstance(label, str) and label.strip() in names:
        value = names.index(label.strip())
    else:
        raise DataError(where, f"{split}: label {label!r} is not one of {', '.join(names)} "
                               f"(or 0..{len(names) - 1}); fine-tuning needs labelled examples")
    if not 0 <= value < len(names):
        raise DataError(where, f"{split}: label {value} out of range 0..{len(names) - 1}")
    return value


def _has_dev(options: FinetuneOptions) -> bool:
    """Dev accuracy is measured when the data folder has the task's dev file (MNLI: dev_matched)."""
    from .calibration import Recipe, resolve_split, spec

    recipe = Recipe(options.task)
    name = spec(recipe).files[resolve_split(recipe, "dev")]
    return (Path(options.data) / name).is_file()


class _Encoder:
    """Dynamic padding: tokenise a batch and pad it to its longest input (at most ``seq_len``)."""

    def __init__(self, tokenizer: Any, model: torch.nn.Module, seq_len: int, device: torch.device) -> None:
        self.tokenizer = tokenizer
        self.seq_len = seq_len
        self.device = device
        self.accepted = set(inspect.signature(model.forward).parameters)

    def __call__(self, data: _Data, index: np.ndarray) -> dict[str, torch.Tensor]:
        texts = [data.texts[i] for i in index]
        pairs = [data.pairs[i] for i in index] if data.pairs is not None else None
        enc = self.tokenizer(texts, pairs, truncation=True, max_length=self.seq_len, padding=True,
                             return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items() if k in self.accepted}


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The data order of one epoch: a function of (seed, epoch) only, so a resumed run repeats it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def _batch_index(seed: int, step: int, n: int, batch_size: int) -> np.ndarray:
    per_epoch = math.ceil(n / batch_size)
    epoch, b = divmod(step, per_epoch)
    return _epoch_order(seed, epoch, n)[b * batch_size:(b + 1) * batch_size]


# ---------------------------------------------------------------------------------------- loading

def _torch_device(options: FinetuneOptions) -> torch.device:
    import torch

    if options.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(options.device)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise InputError(f"--device {options.device}: this torch ({torch.__version__}) sees "
                             f"{count} CUDA device(s); use --device cpu")
    return device


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _load_student(options: FinetuneOptions) -> Checkpoint:
    path = resolve(options.model)
    cfg = read_config(path)
    n = options.num_labels
    if any(str(a).endswith("ForSequenceClassification") for a in cfg.get("architectures") or []):
        id2label = cfg.get("id2label")
        have = len(id2label) if isinstance(id2label, dict) else int(cfg.get("num_labels", 2))
        if have != n:
            raise InputError(f"MODEL {options.model}: its classification head has {have} labels but "
                             f"{options.task} has {n}; start from the pretrained (headless) checkpoint "
                             f"or one fine-tuned on a {n}-label task")
    student = load_checkpoint(path, task=Task.TEXT_CLASSIFICATION, num_labels=n)
    if student.tokenizer is None:
        raise InputError(f"MODEL {options.model}: no tokenizer files (vocab.txt or tokenizer.json); "
                         "fine-tuning needs the checkpoint's tokenizer")
    max_pos = getattr(student.config, "max_position_embeddings", None)
    if max_pos is not None and options.seq_len > max_pos:
        raise InputError(f"--seq-len {options.seq_len} exceeds the model's {max_pos} positions")
    student.config.id2label = dict(enumerate(TASK_LABELS[options.task]))
    student.config.label2id = {name: i for i, name in enumerate(TASK_LABELS[options.task])}
    return student


def _load_teacher(options: FinetuneOptions) -> Checkpoint:
    assert options.teacher is not None
    teacher = load_checkpoint(options.teacher, task=Task.TEXT_CLASSIFICATION)
    n = int(teacher.config.num_labels)
    if n != options.num_labels:
        raise InputError(f"--teacher {options.teacher}: has {n} labels but {options.task} has "
                         f"{options.num_labels}; give a teacher fine-tuned on {options.task}")
    if teacher.newly_initialised:
        shown = ", ".join(teacher.newly_initialised[:3])
        raise InputError(f"--teacher {options.teacher}: has no trained classification head ({shown} newly "
                         "initialised); give a teacher fine-tuned on the task")
    teacher.model.eval()
    for p in teacher.model.parameters():
        p.requires_grad_(False)
    return teacher


# ------------------------------------------------------------------------------------ resumability

@dataclass
class _Progress:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    elapsed: float = 0.0
    resumed_from: int | None = None


def _fingerprint(options: FinetuneOptions) -> dict[str, Any]:
    return {k: v for k, v in options.to_json().items() if k not in _RESUME_FREE}


def _rng_state(device: torch.device) -> dict[str, Any]:
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


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], state["numpy_has_gauss"], state["numpy_gauss"]))
    random.setstate((state["python_version"], tuple(int(x) for x in state["python_state"].tolist()),
                     state["python_gauss"]))
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def _save_resume(folder: Path, *, model: torch.nn.Module, masks: Masks, optimizer: Any, scheduler: Any,
                 progress: _Progress, options: FinetuneOptions) -> None:
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
            "options": json.dumps(_fingerprint(options), sort_keys=True),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(next(model.parameters()).device),
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


def _load_resume(folder: Path, *, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                 options: FinetuneOptions, initial: Masks) -> tuple[Masks, _Progress]:
    """Load the state saved by ``_save_resume`` into ``model``, ``optimizer`` and ``scheduler``.

    ``initial`` holds the keep-masks recorded from MODEL: resumed masks may only have grown from them
    (equal them without --prune-to), and every weight they mask must be zero in the resumed model.
    """
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
    if state.get("format") != RESUME_FORMAT:
        raise InputError(f"{folder}: resume state of another format; delete it and run without --resume")
    saved = json.loads(state["options"])
    now = _fingerprint(options)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        shown = ", ".join(f"--{k.replace('_', '-')} {saved.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise InputError(f"{folder}: --resume needs the options of the interrupted run; changed: {shown}")
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
        elif options.prune_to is None and not torch.equal(keep, initial[name]):
            why = "it masks weights that MODEL has nonzero, without --prune-to"
        elif bool(weight[~keep].any()):
            why = "weights it masks are nonzero in the saved model"
        else:
            continue
        raise InputError(f"{folder}: masks do not match the model's encoder Linears ({name}: {why}); "
                         "delete it and start over")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"], device)
    progress = _Progress(step=int(state["step"]), losses=[float(x) for x in state["losses"].tolist()],
                         evals=[(int(s), float(a)) for s, a in state["evals"]],
                         elapsed=float(state["elapsed"]), resumed_from=int(state["step"]))
    return masks, progress


# ------------------------------------------------------------------------------------------ train

def _optimizer(model: torch.nn.Module, options: FinetuneOptions, total: int) -> tuple[Any, Any]:
    import torch

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]  # biases, LayerNorms
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": options.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=options.lr)
    warmup = round(options.warmup * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _accuracy(model: torch.nn.Module, encoder: _Encoder, data: _Data, batch_size: int) -> float:
    import torch

    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            index = np.arange(start, min(start + batch_size, len(data)))
            logits = model(**encoder(data, index)).logits
            correct += int((logits.argmax(-1).cpu().numpy() == data.labels[index]).sum())
    model.train(was_training)
    return correct / len(data)


def _clock(seconds: float) -> str:
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _loss_curve(losses: Sequence[float], points: int = 500) -> tuple[int, list[list[float]]]:
    """(window, [[last step of window, mean loss]]) with at most ``points`` entries."""
    window = max(1, math.ceil(len(losses) / points))
    curve = []
    for start in range(0, len(losses), window):
        chunk = losses[start:start + window]
        curve.append([start + len(chunk), round(float(np.mean(chunk)), 6)])
    return window, curve


def finetune(options: FinetuneOptions, *, callback: Callback | None = None, progress: bool = True) -> Path:
    """Fine-tune ``options.model`` on ``options.task`` keeping every encoder zero; returns OUT.

    Raises SparsityLostError (nothing written at OUT) when a masked weight is nonzero at the end.
    ``callback(event, step, model)`` is called with "step" after each optimiser step and "save"
    right before the final zero check; ``progress`` prints a progress line to stderr.
    """
    import torch

    started = time.perf_counter()
    out = Path(options.output)
    sources = {"MODEL": options.model, "--data": options.data, "--teacher": options.teacher}
    check_writable(out, overwrite=options.overwrite, kind=REPORT, sources=sources)
    resume_dir = resume_folder(out)
    if options.resume and not (resume_dir / "state.pt").is_file():
        raise InputError(f"--resume: no resumable state at {resume_dir}; run without --resume")
    torch.set_num_threads(options.threads or os.cpu_count() or 1)
    device = _torch_device(options)
    _seed_everything(options.seed)

    student = _load_student(options)
    teacher = _load_teacher(options) if options.teacher else None
    train = _load_split(options, "train", options.max_train_samples)
    dev = _load_split(options, "dev", options.max_eval_samples) if _has_dev(options) else None

    model: Any = student.model.to(device)
    model.train()
    tokenizer: Any = student.tokenizer
    encoder = _Encoder(tokenizer, model, options.seq_len, device)
    t_encoder = None
    if teacher is not None:
        teacher.model.to(device)
        own = teacher.tokenizer
        shared = own is None or own.get_vocab() == tokenizer.get_vocab()
        t_encoder = _Encoder(tokenizer if shared else own, teacher.model, options.seq_len, device)

    masks = record_masks(model)
    linears = encoder_linears(model)
    rows_before = layer_table(_weights(linears), eligible_if_int8=True)
    initial = sparsities(masks)
    if options.prune_to is not None:
        over = {n: s for n, s in initial.items() if s > options.prune_to + 0.5 / masks[n].numel()}
        if over:
            name, s = next(iter(over.items()))
            raise InputError(f"--prune-to {options.prune_to}: {len(over)} encoder Linears are already "
                             f"sparser (e.g. {name}: {s:.2%}); masks only grow, give a larger --prune-to")

    per_epoch = math.ceil(len(train) / options.batch_size)
    total = options.max_steps or max(1, math.ceil(options.epochs * per_epoch))
    optimizer, scheduler = _optimizer(model, options, total)
    prune_first, prune_last, prune_at = (prune_steps(total, start=options.prune_start, end=options.prune_end,
                                                     every=options.prune_every)
                                         if options.prune_to is not None else (0, 0, []))
    prune_set = set(prune_at)

    state = _Progress()
    if options.resume:
        masks, state = _load_resume(resume_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                                    options=options, initial=masks)
        apply_masks_(model, masks)
    session_start = time.perf_counter()
    elapsed_before = state.elapsed
    last_print = 0.0
    labels_all = torch.from_numpy(train.labels).to(device)

    while state.step < total:
        index = _batch_index(options.seed, state.step, len(train), options.batch_size)
        logits = model(**encoder(train, index)).logits
        t_logits = None
        if teacher is not None and t_encoder is not None and options.distill_alpha < 1.0:
            with torch.no_grad():
                t_logits = teacher.model(**t_encoder(train, index)).logits
        loss = distillation_loss(logits, t_logits, labels_all[index], alpha=options.distill_alpha,
                                 temperature=options.temperature)
        if not torch.isfinite(loss):
            raise DataError(options.data, f"training loss became {float(loss)} at step {state.step + 1}; "
                                          "lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        mask_grads_(model, masks)
        if options.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), options.max_grad_norm)
        optimizer.step()
        scheduler.step()
        state.step += 1
        if state.step in prune_set and options.prune_to is not None:
            targets = {n: cubic_sparsity(state.step, initial=initial[n], final=options.prune_to,
                                         start=prune_first, end=prune_last) for n in masks}
            masks = prune_(model, masks, targets)
            clear_optimizer_state_(optimizer, model, masks)
        apply_masks_(model, masks)
        state.losses.append(float(loss.detach()))
        state.elapsed = elapsed_before + time.perf_counter() - session_start

        if dev is not None and options.eval_every and state.step % options.eval_every == 0 \
                and state.step < total:
            state.evals.append((state.step, _accuracy(model, encoder, dev, options.batch_size)))
            if progress:
                print(f"finetune: step {state.step}/{total}  dev accuracy {state.evals[-1][1]:.4f}",
                      file=sys.stderr, flush=True)
        now = time.perf_counter()
        if progress and (now - last_print >= 10.0 or state.step in (1, total)):
            last_print = now
            done = state.step - (state.resumed_from or 0)
            eta = (now - session_start) / done * (total - state.step)
            print(f"finetune: step {state.step}/{total}  loss {state.losses[-1]:.4f}  "
                  f"elapsed {_clock(state.elapsed)}  ETA {_clock(eta)}", file=sys.stderr, flush=True)
        if options.save_every and state.step % options.save_every == 0 and state.step < total:
            _save_resume(resume_dir, model=model, masks=masks, optimizer=optimizer, scheduler=scheduler,
                         progress=state, options=options)
        if callback is not None:
            callback("step", state.step, model)

    model.eval()
    if dev is not None:
        state.evals.append((state.step, _accuracy(model, encoder, dev, options.batch_size)))
    if callback is not None:
        callback("save", state.step, model)
    checks = check_zeros(model, masks)
    _raise_if_lost(checks, "in the trained model")

    rows_after = layer_table(_weights(linears), eligible_if_int8=True)
    with staged_output(out, overwrite=options.overwrite, kind=REPORT, sources=sources) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        _raise_if_lost(_check_saved(tmp, masks), f"in the saved {tmp.name}/*.safetensors")
        _curve_window, curve = _loss_curve(state.losses)
        report = {
            "tool": "pofa-deploy finetune",
            "version": __version__,
            "model": student.source,
            "task": options.task,
            "labels": list(TASK_LABELS[options.task]),
            "options": options.to_json(),
            "seed": options.seed,
            "steps": total,
            "steps_per_epoch": per_epoch,
            "epochs": round(total / per_epoch, 4),
            "train_examples": len(train),
            "resumed_from_step": state.resumed_from,
            "time_s": round(time.perf_counter() - started + elapsed_before, 3),
            "train_time_s": round(state.elapsed, 3),
            "threads": torch.get_num_threads(),
            "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
            "newly_initialised": student.newly_initialised,
            "synthetic": student.synthetic,
            "teacher": None if teacher is None else {
                "model": teacher.source, "alpha": options.distill_alpha, "temperature": options.temperature},
            "pruning": None if options.prune_to is None else {
                "target": options.prune_to, "schedule": "cubic (Zhu & Gupta 2017), magnitude, per layer",
                "start_step": prune_first, "end_step": prune_last, "mask_updates": len(prune_at)},
            "sparsity_before": [r.to_dict() for r in rows_before],
            "sparsity_after": [r.to_dict() for r in rows_after],
            "totals_before": totals(rows_before).to_dict(),
            "totals_after": totals(rows_after).to_dict(),
            "zero_check": {
                "reference": "final pruning masks" if options.prune_to is not None else "zeros at load",
                "lost": sum(c.lost for c in checks),
                "layers": [c.to_dict() for c in checks],
            },
            "train_loss": curve,
            "train_loss_window": _curve_window,
            "dev": None if dev is None else {
                "examples": len(dev), "accuracy": state.evals[-1][1],
                "history": [[s, round(a, 6)] for s, a in state.evals]},
        }
        (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(resume_dir, ignore_errors=True)
    return out


def _raise_if_lost(checks: Sequence[ZeroCheck], where: str) -> None:
    bad = [c for c in checks if c.lost]
    if bad:
        shown = ", ".join(f"{c.name} ({c.lost})" for c in bad[:3])
        raise SparsityLostError(f"{sum(c.lost for c in bad)} zeros lost {where} in {len(bad)} encoder "
                                f"Linears: {shown}; nothing was written")


def _weights(linears: dict[str, Any]) -> dict[str, np.ndarray]:
    return {name: module.weight.detach().cpu().numpy() for name, module in linears.items()}


def _check_saved(folder: Path, masks: Masks) -> list[ZeroCheck]:
    """Compare the masks with the weights as written to ``folder``'s safetensors files."""
    from safetensors import safe_open

    from .sparsity import compare

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


def main(options: FinetuneOptions) -> int:
    out = finetune(options)
    report = json.loads((out / REPORT).read_text(encoding="utf-8"))
    after = report["totals_after"]
    dev = report["dev"]
    acc = f"dev accuracy {dev['accuracy']:.4f} on {dev['examples']}" if dev else "no dev data"
    how = f" distilled from {options.teacher}" if options.teacher else ""
    how += f", pruned to {options.prune_to:.0%}" if options.prune_to is not None else ""
    print(f"fine-tuned {options.model} on {options.task}{how}: {report['steps']} steps in "
          f"{_clock(report['time_s'])}, {acc}; encoder Linears {after['sparsity']:.2%} zeros, "
          f"{report['zero_check']['lost']} lost; wrote {out}", file=sys.stderr)
    return 0
