"""The options of ``pofa-deploy finetune``: one frozen dataclass whose fields are the flags.

``--task`` is a GlueTask; ``--device`` is a Device kind with an optional CUDA index (``cuda:N``), which
no enum can hold, so the field keeps the text the user typed, validated by ``parse_device``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import InputError
from ..options import at_least, coerce_fields, option

UNSUPPORTED_TASKS = {"squad": "SQuAD fine-tuning is not supported yet; fine-tune a GLUE task "
                              "(sst2, mnli, qqp, qnli) or use a SQuAD checkpoint fine-tuned elsewhere"}


class GlueTask(StrEnum):
    """The GLUE tasks ``finetune`` trains: sentence(-pair) classification."""

    SST2 = "sst2"
    MNLI = "mnli"
    QQP = "qqp"
    QNLI = "qnli"

    @classmethod
    def _missing_(cls, value: object) -> None:
        # a task pofa-deploy knows but cannot fine-tune gets its own reason, not the list of choices
        if str(value) in UNSUPPORTED_TASKS:
            raise InputError(f"--task {value}: {UNSUPPORTED_TASKS[str(value)]}")
        return None


# label names in the order of the label ids (the GLUE convention used by the Hugging Face datasets)
TASK_LABELS: dict[GlueTask, tuple[str, ...]] = {
    GlueTask.SST2: ("negative", "positive"),
    GlueTask.MNLI: ("entailment", "neutral", "contradiction"),
    GlueTask.QQP: ("not_duplicate", "duplicate"),
    GlueTask.QNLI: ("entailment", "not_entailment"),
}


class Device(StrEnum):
    """Where to train; ``cuda`` may carry a device index (``cuda:1``), see ``parse_device``."""

    CPU = "cpu"
    CUDA = "cuda"
    AUTO = "auto"  # cuda when available, else cpu


class DeviceChoice(NamedTuple):
    kind: Device
    cuda_index: int | None = None  # only with Device.CUDA


def parse_device(text: str) -> DeviceChoice:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` as (Device, index); anything else is an InputError."""
    match = re.fullmatch(r"(cpu|auto|cuda)(?::(\d+))?", str(text))
    if match is None or (match[2] is not None and match[1] != Device.CUDA):
        raise InputError(f"--device must be cpu, cuda, cuda:N or auto; got {text!r}")
    return DeviceChoice(Device(match[1]), None if match[2] is None else int(match[2]))


@dataclass(frozen=True, kw_only=True)
class FinetuneOptions:
    model: str = option(help="sparse (or, with --prune-to, dense) checkpoint folder or hub id",
                        positional=True)
    task: GlueTask = option(help="GLUE task to fine-tune on")
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
    device: str = option(Device.CPU.value, help="torch device to train on: cpu, cuda, cuda:N or auto (cuda "
                         "when available); the saved checkpoint is the same format either way",
                         metavar="{cpu|cuda|cuda:N|auto}")
    resume: bool = option(False, help="continue from OUTPUT.resume/ to the result of an uninterrupted run")
    overwrite: bool = option(False, help="replace OUTPUT if it exists")

    def __post_init__(self) -> None:
        coerce_fields(self)
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
        parse_device(self.device)

    @property
    def labels(self) -> tuple[str, ...]:
        """The task's label names, in label-id order."""
        return TASK_LABELS[self.task]

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def device_choice(self) -> DeviceChoice:
        return parse_device(self.device)

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v.value if isinstance(v, StrEnum) else v)
                for k, v in dataclasses.asdict(self).items()}


OPTIONS = FinetuneOptions
