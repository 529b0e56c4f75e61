"""The metrics the PoFA paper reports, in percent: accuracy, binary F1, SQuAD v1.1 EM and F1.

The SQuAD functions follow the official v1.1 evaluation script: answers are normalised (lower
case, punctuation removed, the articles a/an/the removed, whitespace collapsed) and each prediction
is scored against its best-matching gold answer. ``best_spans`` turns start/end logits into answer
strings the way the Hugging Face question-answering examples do (n-best start and end positions,
spans inside the context only, at most ``max_answer_length`` tokens).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    if len(predictions) != len(labels):
        raise ValueError("predictions and labels differ in length")
    if not labels:
        return 0.0
    return 100.0 * float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def binary_f1(predictions: Sequence[int], labels: Sequence[int], *, positive: int = 1) -> float:
    """F1 of the ``positive`` class (QQP: duplicate = 1)."""
    pred = np.asarray(predictions) == positive
    gold = np.asarray(labels) == positive
    tp = int(np.sum(pred & gold))
    if tp == 0:
        return 0.0
    precision = tp / int(np.sum(pred))
    recall = tp / int(np.sum(gold))
    return 100.0 * 2 * precision * recall / (precision + recall)


def agreement(a: Sequence[object], b: Sequence[object]) -> float:
    """Share of identical predictions, in percent."""
    if len(a) != len(b):
        raise ValueError("prediction lists differ in length")
    if not a:
        return 0.0
    return 100.0 * sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def paired_difference(correct_a: Sequence[float], correct_b: Sequence[float], *, resamples: int = 10_000,
                      seed: int = 0) -> dict[str, float]:
    """Mean of a - b (per-example scores, e.g. 1/0 for correct/wrong) in points of percent, with a 95%
    paired-bootstrap interval: both models are scored on the same resampled examples, so what the two
    get right or wrong together does not widen the interval."""
    a = np.asarray(correct_a, dtype=np.float64)
    b = np.asarray(correct_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not a.size:
        raise ValueError("need two equally long, non-empty per-example score lists")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):  # chunks keep the index array small on big dev sets
        n = min(1000, resamples - start)
        means[start:start + n] = diff[rng.integers(0, diff.size, size=(n, diff.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"difference": 100.0 * float(diff.mean()), "ci95_low": 100.0 * float(lo),
            "ci95_high": 100.0 * float(hi), "resamples": resamples}


def normalize_answer(text: str) -> str:
    """Official SQuAD v1.1 normalisation: lower, drop punctuation, drop articles, collapse spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of two answers (0..1), after normalisation."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """{"exact_match", "f1"} in percent (SQuAD v1.1); each prediction takes its best gold answer.

    Every question counts: one without a gold answer (a SQuAD v2.0 unanswerable question) is a
    ValueError, never left out of the denominator, since v1.1 scoring has no way to credit "no answer".
    """
    if len(predictions) != len(golds):
        raise ValueError("predictions and gold answers differ in length")
    missing = sum(1 for answers in golds if not answers)
    if missing:
        raise ValueError(f"{missing} of {len(golds)} questions have no gold answer; SQuAD v1.1 scoring "
                         "needs one for every question")
    em = f1_total = 0.0
    scored = 0
    for prediction, answers in zip(predictions, golds, strict=True):
        scored += 1
        em += max(exact_match(prediction, g) for g in answers)
        f1_total += max(f1(prediction, g) for g in answers)
    if scored == 0:
        return {"exact_match": 0.0, "f1": 0.0}
    return {"exact_match": 100.0 * em / scored, "f1": 100.0 * f1_total / scored}


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, offsets: Sequence[tuple[int, int] | None], *,
              n_best: int = 20, max_answer_length: int = 30) -> tuple[float, int, int] | None:
    """(score, char start, char end) of the best valid span of one feature, or None.

    Valid: both ends inside the context (offsets not None), end >= start, at most
    ``max_answer_length`` tokens. Only the ``n_best`` highest start and end logits are considered.
    """
    n = len(offsets)
    start = np.asarray(start_logits, dtype=np.float64)[:n]
    end = np.asarray(end_logits, dtype=np.float64)[:n]
    in_context = np.array([o is not None for o in offsets], dtype=bool)
    if not in_context.any():
        return None
    starts = np.argsort(start)[::-1][:n_best]
    ends = np.argsort(end)[::-1][:n_best]
    s_idx, e_idx = np.meshgrid(starts, ends, indexing="ij")
    length = e_idx - s_idx + 1
    valid = in_context[s_idx] & in_context[e_idx] & (length >= 1) & (length <= max_answer_length)
    if not valid.any():
        return None
    scores = np.where(valid, start[s_idx] + end[e_idx], -np.inf)
    flat = int(np.argmax(scores))
    s, e = int(s_idx.flat[flat]), int(e_idx.flat[flat])
    first, last = offsets[s], offsets[e]
    assert first is not None and last is not None
    return float(scores.flat[flat]), first[0], last[1]


def best_answers(contexts: Sequence[str], example_index: Sequence[int],
                 offsets: Sequence[Sequence[tuple[int, int] | None]], start_logits: Sequence[np.ndarray],
                 end_logits: Sequence[np.ndarray], *, n_best: int = 20,
                 max_answer_length: int = 30) -> list[str]:
    """The highest-scoring answer text per example over all its features ("" when none is valid)."""
    best: list[tuple[float, str] | None] = [None] * len(contexts)
    for f, ex in enumerate(example_index):
        span = best_span(start_logits[f], end_logits[f], offsets[f], n_best=n_best,
                         max_answer_length=max_answer_length)
        if span is None:
            continue
        score, a, b = span
        current = best[ex]
        if current is None or score > current[0]:
            best[ex] = (score, contexts[ex][a:b])
    return [b[1] if b is not None else "" for b in best]
