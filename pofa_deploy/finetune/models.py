"""The models a fine-tuning run starts from: the student, an optional teacher, the torch device, the seeds."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

from ..checkpoint import Checkpoint, Task, load_checkpoint, read_config, resolve
from ..errors import InputError
from .options import Device, FinetuneOptions

if TYPE_CHECKING:
    import torch


def torch_device(options: FinetuneOptions) -> torch.device:
    """The device of ``--device``; a CUDA device this torch cannot see is an InputError."""
    import torch

    kind, cuda_index = options.device_choice
    if kind is Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(kind.value if cuda_index is None else f"{kind.value}:{cuda_index}")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise InputError(f"--device {options.device}: this torch ({torch.__version__}) sees "
                             f"{count} CUDA device(s); use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_student(options: FinetuneOptions) -> Checkpoint:
    """MODEL with a classification head of the task's labels; refuses a head of another size."""
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
    student.config.id2label = dict(enumerate(options.labels))
    student.config.label2id = {name: i for i, name in enumerate(options.labels)}
    return student


def load_teacher(options: FinetuneOptions) -> Checkpoint:
    """``--teacher``, frozen in eval mode; it must have a trained head with the task's label count."""
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
