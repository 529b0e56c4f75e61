"""The token ids every variant is fed: real English text through the folder's tokenizer (transformers is
imported only here, and only when the folder has a tokenizer), else seeded in-vocabulary random ids."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_TEXT = ("the film opens on a quiet harbour town where an old fisherman tells his granddaughter a story "
         "about "
         "the storm that changed everything . what follows is a patient , funny and often moving portrait of "
         "a family that learns to talk again ; the acting is natural , the music never pushes too hard , and "
         "the last twenty minutes earn every tear . some scenes run long and a subplot about the harbour "
         "master goes nowhere , but it is the best thing of its kind this year and well worth the ticket .")


def realistic_inputs(names: Sequence[str], dtypes: dict[str, Any], *, batch: int, seq_len: int,
                     folder: Path | None, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """Token ids of real text (tokenised with the folder's tokenizer), full attention mask, zero segment ids.

    Falls back to seeded in-vocabulary ids when transformers or the tokenizer is unavailable. Each row
    of the batch starts at a different word, so rows differ.
    """
    ids = _tokenised(folder, batch, seq_len) if folder is not None else None
    how = "tokenised English text (the folder's tokenizer)"
    if ids is None:
        vocab = _vocab_size(folder) or 30522
        low = 1000 if vocab > 4000 else 5
        ids = np.random.default_rng(seed).integers(low, vocab, size=(batch, seq_len), dtype=np.int64)
        how = f"random in-vocabulary token ids in [{low}, {vocab}) (no tokenizer available)"
    feed = {}
    for name in names:
        dtype = dtypes.get(name, np.int64)
        if name == "input_ids":
            feed[name] = ids.astype(dtype)
        elif name == "attention_mask":
            feed[name] = np.ones((batch, seq_len), dtype=dtype)
        else:  # token_type_ids and other per-token inputs
            feed[name] = np.zeros((batch, seq_len), dtype=dtype)
    return feed, how


def _vocab_size(folder: Path | None) -> int | None:
    try:
        config = json.loads((Path(str(folder)) / "config.json").read_text())
        return int(config["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


_TOKENIZERS: dict[str, Any] = {}


def _tokenised(folder: Path, batch: int, seq_len: int) -> np.ndarray | None:
    try:
        key = str(Path(folder).resolve())
        if key not in _TOKENIZERS:
            from transformers import AutoTokenizer

            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(str(folder))
        tok = _TOKENIZERS[key]
        words = _TEXT.split()
        rows = []
        for r in range(batch):
            shifted = " ".join(words[r % len(words):] + words[: r % len(words)])
            text = " ".join([shifted] * (seq_len // 8 + 2))
            enc = tok(text, truncation=True, max_length=seq_len, padding="max_length")
            rows.append(enc["input_ids"][:seq_len])
        ids = np.asarray(rows, dtype=np.int64)
        if ids.shape != (batch, seq_len):
            return None
        return ids
    except Exception:  # no transformers, no tokenizer files, odd tokenizer: fall back to random ids
        return None


def feed_for_torch(folder: Path | None, batch: int, seq_len: int) -> dict[str, np.ndarray]:
    """The same token ids as the OpenVINO variants get (same tokenizer, text and seed)."""
    names = ["input_ids", "attention_mask", "token_type_ids"]
    feed, _how = realistic_inputs(names, dict.fromkeys(names, np.int64), batch=batch, seq_len=seq_len,
                                  folder=folder)
    return feed
