"""The local path: one compiled model in this process scores the pending shards one after another.

OpenVINO already spreads one batch over every core (INFERENCE_NUM_THREADS), so one process with one model
is the fast way to use a single machine; Ray adds processes, not speed, until there is more than one node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import Corpus, batch_inputs, plan_batches
from .shards import Shard

OnShard = Callable[[Shard, np.ndarray], None]


def score_local(model: Path, corpus: Corpus, pending: Sequence[Shard], *, batch_size: int, threads: int | None,
                on_shard: OnShard) -> None:
    """Score ``pending`` in order; ``on_shard`` gets each shard's logits (rows in input order) when done."""
    from ..textmodel import open_text_model

    text_model = open_text_model(model, threads=threads)
    for shard in pending:
        on_shard(shard, score_shard(text_model, corpus, shard, batch_size))


def score_shard(text_model: Any, corpus: Corpus, shard: Shard, batch_size: int) -> np.ndarray:
    """One shard's logits [rows, labels], scored in the length-sorted batches of ``plan_batches``."""
    logits: np.ndarray | None = None
    for rows in plan_batches(corpus, shard.start, shard.stop, batch_size):
        texts, pairs = batch_inputs(corpus, rows)
        got = np.asarray(text_model.score(texts, pairs).logits, dtype=np.float32)
        if logits is None:
            logits = np.empty((shard.rows, got.shape[1]), dtype=np.float32)
        logits[rows - shard.start] = got  # back to input order
    assert logits is not None  # a shard has at least one row
    return logits
