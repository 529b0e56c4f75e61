"""Raw text in, scores out: a converted folder's compiled model with its tokenizer and labels.

``serve`` and ``predict`` both start from sentences, not token tensors. This module is the one place
that turns sentences (and optional second sentences of a pair) into the model's inputs, runs the model
through ``runtime.load`` (so the tuned model file, the sparse-kernel extension and the crash guard all
apply), and names the outputs: ``logits`` and, for a classification head, ``label`` per sentence.

Batches are padded to their longest sentence (not to a fixed length): short sentences cost little.
Inputs longer than the model's sequence length are truncated, as the tokenizer does at conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError, InputError

# A folder converted at a shorter --seq-len still runs longer inputs (the IR is dynamic), but the model's
# position table bounds them: this is the cap when config.json does not say.
DEFAULT_MAX_LENGTH = 512


@dataclass(frozen=True)
class Scores:
    """One batch's results, in input order."""

    logits: np.ndarray  # float32 [N, labels] for classification; the first output otherwise
    labels: list[str] | None  # the arg-max label's name per row (classification only)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # every model output, by name


@dataclass
class TextModel:
    """A compiled converted folder that scores sentences (see module docstring)."""

    folder: Path
    loaded: Any  # runtime.LoadedModel
    tokenizer: Any
    label_names: list[str] | None  # index -> name, for a classification head
    max_length: int
    task: str
    config: dict[str, Any] = field(default_factory=dict)  # config.json

    @property
    def input_names(self) -> list[str]:
        return list(self.loaded.input_names)

    @property
    def output_names(self) -> list[str]:
        return [out.get_any_name() for out in self.loaded.compiled.outputs]

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Token tensors for ``texts`` (and ``pairs`` as second segments), padded to the longest row."""
        if pairs is not None and len(pairs) != len(texts):
            raise InputError(f"text_pair has {len(pairs)} entries but text has {len(texts)}; send one per text")
        enc = self.tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=True,
                             max_length=self.max_length, padding=True, return_tensors="np")
        return {name: np.asarray(enc[name], dtype=np.int64) for name in self.input_names if name in enc}

    def run(self, feed: dict[str, np.ndarray]) -> Scores:
        """Run token tensors (as ``encode`` makes them, or sent by a client) and name the results."""
        missing = [n for n in self.input_names if n not in feed]
        if missing:
            raise InputError(f"missing input {', '.join(missing)}; this model takes {', '.join(self.input_names)}")
        outputs = self.loaded.infer(feed)
        first = outputs.get("logits")
        if first is None:
            first = next(iter(outputs.values()))
        logits = np.asarray(first, dtype=np.float32)
        labels = None
        if self.label_names is not None and logits.ndim == 2 and logits.shape[1] == len(self.label_names):
            labels = [self.label_names[i] for i in np.argmax(logits, axis=1)]
        return Scores(logits, labels, outputs)

    def score(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Scores:
        if not texts:
            raise InputError("no text to score; send at least one sentence")
        return self.run(self.encode(texts, pairs))


def label_names(config: dict[str, Any], task: str) -> list[str] | None:
    """Index -> label name from config.json's id2label ("LABEL_0"... when it only has num_labels)."""
    if task != "text-classification":
        return None
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        try:
            return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]
        except TypeError:
            pass
    return [f"LABEL_{i}" for i in range(int(config.get("num_labels", 2)))]


def open_text_model(folder: str | Path, *, threads: int | None = None, pinning: bool | None = None,
                    sparse_kernel: bool | None = None) -> TextModel:
    """Load a folder written by ``pofa-deploy convert`` (and maybe ``tune``) with its tokenizer.

    ``threads`` sets INFERENCE_NUM_THREADS and ``pinning`` ENABLE_CPU_PINNING (None: the folder's tuned
    configuration, else the plugin's default): a Ray actor or a server worker sharing the CPU sets both."""
    from .checkpoint import has_tokenizer, infer_task, read_config
    from .runtime import load

    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder; pass a folder written by pofa-deploy convert")
    if not has_tokenizer(path):
        raise CheckpointError(f"{path}: no tokenizer files (tokenizer.json or vocab.txt); re-run pofa-deploy "
                              "convert, which saves the tokenizer next to the IR")
    config = read_config(path)
    try:
        task = infer_task(path, config).value
    except InputError:
        task = "feature-extraction"
    extra: dict[str, str] = {}
    if threads is not None:
        extra["INFERENCE_NUM_THREADS"] = str(threads)
    if pinning is not None:
        extra["ENABLE_CPU_PINNING"] = "YES" if pinning else "NO"
    loaded = load(path, extra=extra or None, sparse_kernel=sparse_kernel)
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    max_length = int(config.get("max_position_embeddings") or DEFAULT_MAX_LENGTH)
    return TextModel(path, loaded, tokenizer, label_names(config, task), min(max_length, DEFAULT_MAX_LENGTH), task,
                     config)
