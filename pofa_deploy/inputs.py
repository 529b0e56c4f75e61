"""Model inputs for compiling, probing and timing when no real text is needed."""

from __future__ import annotations

import numpy as np


def dummy_inputs(names: list[str], *, batch: int, seq_len: int, vocab: int = 1000,
                 seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for name in names:
        if name == "input_ids":
            feed[name] = rng.integers(5, vocab, size=(batch, seq_len), dtype=np.int64)
        elif name == "attention_mask":
            feed[name] = np.ones((batch, seq_len), dtype=np.int64)
        else:  # token_type_ids, position_ids ...
            feed[name] = np.zeros((batch, seq_len), dtype=np.int64)
    return feed
