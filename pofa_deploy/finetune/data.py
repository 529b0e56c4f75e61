"""The task's labelled examples, their batches and their tokenisation.

Examples are read with ``pofa_deploy.calibration.load_examples``; labels become ids in the order of
``TASK_LABELS``. The data order is a function of (seed, epoch) only, so a resumed run sees the same
batches as an uninterrupted one.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from .options import FinetuneOptions

if TYPE_CHECKING:
    import torch


@dataclass
class TaskData:
    """One split: texts, the second texts of a pair task (or None), and label ids."""

    texts: list[str]
    pairs: list[str] | None
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def load_split(options: FinetuneOptions, split: str, limit: int | None) -> TaskData:
    from ..calibration import Example, load_examples

    found = load_examples(f"{options.task}:{options.data}", split=split, limit=limit, seed=options.seed)
    if not found:
        raise DataError(options.data, f"no {split} examples for {options.task}")
    examples = [ex for ex in found if isinstance(ex, Example)]
    if len(examples) != len(found):
        raise DataError(options.data, f"{split}: expected {options.task} text examples")
    names = options.labels
    labels = np.array([label_id(ex.label, names, options.data, split) for ex in examples], dtype=np.int64)
    has_pair = [ex.text_pair is not None for ex in examples]
    if any(has_pair) and not all(has_pair):
        raise DataError(options.data, f"{split}: some examples have a second text and some do not")
    pairs = [str(ex.text_pair) for ex in examples] if all(has_pair) else None
    return TaskData([str(ex.text) for ex in examples], pairs, labels)


def label_id(label: Any, names: Sequence[str], where: Path, split: str) -> int:
    """A label (an id, its text, or a label name) as an id in 0..len(names)-1."""
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


def has_dev(options: FinetuneOptions) -> bool:
    """Dev accuracy is measured when the data folder has the task's dev file (MNLI: dev_matched)."""
    from ..calibration import Recipe, resolve_split, spec

    recipe = Recipe(options.task.value)
    name = spec(recipe).files[resolve_split(recipe, "dev")]
    return (Path(options.data) / name).is_file()


class Encoder:
    """Dynamic padding: tokenise a batch and pad it to its longest input (at most ``seq_len``)."""

    def __init__(self, tokenizer: Any, model: torch.nn.Module, seq_len: int, device: torch.device) -> None:
        self.tokenizer = tokenizer
        self.seq_len = seq_len
        self.device = device
        self.accepted = set(inspect.signature(model.forward).parameters)

    def __call__(self, data: TaskData, index: np.ndarray) -> dict[str, torch.Tensor]:
        texts = [data.texts[i] for i in index]
        pairs = [data.pairs[i] for i in index] if data.pairs is not None else None
        enc = self.tokenizer(texts, pairs, truncation=True, max_length=self.seq_len, padding=True,
                             return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items() if k in self.accepted}


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The data order of one epoch: a function of (seed, epoch) only, so a resumed run repeats it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_index(seed: int, step: int, n: int, batch_size: int) -> np.ndarray:
    """The examples of optimiser step ``step`` (0-based)."""
    per_epoch = math.ceil(n / batch_size)
    epoch, b = divmod(step, per_epoch)
    return epoch_order(seed, epoch, n)[b * batch_size:(b + 1) * batch_size]


def accuracy(model: torch.nn.Module, encoder: Encoder, data: TaskData, batch_size: int) -> float:
    """Share of ``data`` the model labels right (eval mode, no gradients; the training mode is restored)."""
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
