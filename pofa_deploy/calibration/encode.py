"""Tokenise examples the way their task is evaluated.

``encode`` gives model inputs only (one dict per feature, int64 arrays of shape [1, seq_len]) for
calibration and output comparison. ``tokenize`` and ``encode_qa`` give the unpadded features that
evaluation batches itself (padding to the longest in a batch), plus, for question answering, the
offsets and example index that span post-processing needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checkpoint import Task
from ..errors import InputError
from .readers import Example, QAExample

Feature = dict[str, list[int]]
MIN_SEQ_LEN = 8
QA_CONTEXT_SENTENCES = 4  # plain sentences joined into one pseudo-context for a QA model's calibration


@dataclass
class QAFeatures:
    """Question-answering features: a long context gives several overlapping windows (``stride``)."""

    inputs: list[Feature] = field(default_factory=list)  # unpadded token lists per feature
    offsets: list[list[tuple[int, int] | None]] = field(default_factory=list)  # char span; None off-context
    example_index: list[int] = field(default_factory=list)  # feature -> index into the examples

    def __len__(self) -> int:
        return len(self.inputs)


def as_task(task: Task | str) -> Task:
    try:
        return Task(task)
    except ValueError:
        allowed = ", ".join(t.value for t in Task)
        raise InputError(f"unknown task {task!r}; expected one of {allowed}") from None


def check_seq_len(seq_len: int) -> None:
    if seq_len < MIN_SEQ_LEN:
        raise InputError(f"sequence length must be at least {MIN_SEQ_LEN} tokens, got {seq_len}")


def pad(features: Sequence[Feature], length: int, pad_id: int) -> dict[str, np.ndarray]:
    """Stack features into [batch, length] int64 arrays; input_ids padded with ``pad_id``, the rest with 0."""
    out: dict[str, np.ndarray] = {}
    for key in features[0]:
        fill = pad_id if key == "input_ids" else 0
        arr = np.full((len(features), length), fill, dtype=np.int64)
        for row, feature in enumerate(features):
            values = feature[key][:length]
            arr[row, : len(values)] = values
        out[key] = arr
    return out


def pad_id(tokenizer: Any) -> int:
    value = getattr(tokenizer, "pad_token_id", None)
    return int(value) if value is not None else 0


def _model_keys(encoding: Any) -> list[str]:
    return [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoding]


def tokenize(tokenizer: Any, examples: Sequence[Example], *, seq_len: int) -> list[Feature]:
    """One unpadded feature per example (truncated to ``seq_len``); pairs when ``text_pair`` is set."""
    check_seq_len(seq_len)
    features: list[Feature | None] = [None] * len(examples)
    singles = [i for i, e in enumerate(examples) if e.text_pair is None]
    pairs = [i for i, e in enumerate(examples) if e.text_pair is not None]
    for indices, is_pair in ((singles, False), (pairs, True)):
        if not indices:
            continue
        texts = [examples[i].text for i in indices]
        second = [str(examples[i].text_pair) for i in indices] if is_pair else None
        enc = tokenizer(texts, second, truncation=True, max_length=seq_len, padding=False)
        keys = _model_keys(enc)
        for row, i in enumerate(indices):
            features[i] = {k: list(enc[k][row]) for k in keys}
    return [f for f in features if f is not None]


def _clip_questions(tokenizer: Any, questions: list[str], max_tokens: int) -> tuple[list[str], list[int]]:
    """Questions cut to ``max_tokens`` tokens (so a window always has room for context) and their lengths."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    clipped, lengths = [], []
    for question, offsets in zip(questions, enc["offset_mapping"], strict=True):
        if len(offsets) > max_tokens:
            question = question[: offsets[max_tokens - 1][1]]
        clipped.append(question)
        lengths.append(min(len(offsets), max_tokens))
    return clipped, lengths


def encode_qa(tokenizer: Any, examples: Sequence[QAExample], *, seq_len: int,
              stride: int = 128) -> QAFeatures:
    """Question/context windows (truncation="only_second", overlapping by ``stride`` tokens).

    Questions longer than half of ``seq_len`` are cut. Where ``stride`` leaves no room to advance
    (short ``seq_len``), that example's overlap is halved to fit, so every window moves forward.
    """
    check_seq_len(seq_len)
    if stride < 0:
        raise InputError(f"stride must be 0 or more, got {stride}")
    if not getattr(tokenizer, "is_fast", False):
        raise InputError("question answering needs a fast tokenizer (tokenizer.json) for character offsets; "
                         "save the tokenizer with a recent transformers")
    out = QAFeatures()
    if not examples:
        return out
    specials = int(tokenizer.num_special_tokens_to_add(pair=True))
    questions, q_lens = _clip_questions(tokenizer, [e.question for e in examples], seq_len // 2)
    # Group examples by the overlap they can use, so each group is one batched tokenizer call.
    groups: dict[int, list[int]] = {}
    for i, q_len in enumerate(q_lens):
        room = max(1, seq_len - q_len - specials)
        groups.setdefault(stride if stride < room else room // 2, []).append(i)
    per_example: list[list[tuple[Feature, list[tuple[int, int] | None]]]] = [[] for _ in examples]
    for overlap, indices in groups.items():
        enc = tokenizer([questions[i] for i in indices], [examples[i].context for i in indices],
                        truncation="only_second", max_length=seq_len, stride=overlap,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
        keys = _model_keys(enc)
        for f, sample_idx in enumerate(enc["overflow_to_sample_mapping"]):
            seq_ids = enc.sequence_ids(f)
            offsets: list[tuple[int, int] | None] = [
                (int(o[0]), int(o[1])) if s == 1 else None
                for o, s in zip(enc["offset_mapping"][f], seq_ids, strict=True)]
            feature = {k: list(enc[k][f]) for k in keys}
            per_example[indices[sample_idx]].append((feature, offsets))
    for i, feats in enumerate(per_example):
        for feature, offsets in feats:
            out.inputs.append(feature)
            out.offsets.append(offsets)
            out.example_index.append(i)
    return out


def _pseudo_qa(examples: Sequence[Example]) -> list[QAExample]:
    """Plain texts as QA inputs for calibrating a QA model: the text asks, it and its neighbours answer."""
    out = []
    n = len(examples)
    for i, e in enumerate(examples):
        neighbours = (examples[(i + k) % n].text for k in range(min(QA_CONTEXT_SENTENCES, n)))
        context = e.text_pair or " ".join(neighbours)
        out.append(QAExample(str(i), e.text, context))
    return out


def encode(tokenizer: Any, examples: Sequence[Example] | Sequence[QAExample], *, seq_len: int, task: str,
           stride: int = 128) -> list[dict[str, np.ndarray]]:
    """Model inputs, one dict per feature: int64 [1, seq_len] arrays padded to ``seq_len``.

    ``task`` is a ``pofa_deploy.checkpoint.Task`` value. For question answering, QAExamples give one
    feature per context window (so possibly several per example); plain texts are turned into
    question/context pairs. Other tasks take text examples only.
    """
    t = as_task(task)
    check_seq_len(seq_len)
    if tokenizer is None:
        raise InputError("no tokenizer to encode the examples with; save one next to the model")
    kinds = {type(e) for e in examples}
    if len(kinds) > 1:
        raise InputError("examples mix text and question-answering examples; use one kind")
    qa_input = QAExample in kinds
    if qa_input and t is not Task.QUESTION_ANSWERING:
        raise InputError(f"question-answering examples (SQuAD) cannot be encoded for a {t.value} model; "
                         "give a text source (a .txt/.tsv file, a GLUE recipe or 'builtin') instead")
    if t is Task.QUESTION_ANSWERING:
        qa = list(examples) if qa_input else _pseudo_qa(examples)  # type: ignore[arg-type]
        features = encode_qa(tokenizer, qa, seq_len=seq_len, stride=stride).inputs  # type: ignore[arg-type]
    else:
        features = tokenize(tokenizer, examples, seq_len=seq_len)  # type: ignore[arg-type]
    pid = pad_id(tokenizer)
    return [pad([f], seq_len, pid) for f in features]
