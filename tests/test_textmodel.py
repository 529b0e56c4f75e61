"""textmodel: sentences in, logits and label names out, through runtime.load."""

from __future__ import annotations

import numpy as np
import pytest

from pofa_deploy.errors import InputError
from pofa_deploy.textmodel import label_names, open_text_model


def test_scores_sentences_and_pairs_like_token_tensors(tiny_int8) -> None:
    model = open_text_model(tiny_int8())
    scores = model.score(["a fine film", "dull"])
    assert scores.logits.shape == (2, 3) and scores.logits.dtype == np.float32
    assert scores.labels is not None and len(scores.labels) == 2
    assert all(label in model.label_names for label in scores.labels)  # type: ignore[operator]
    # padding to the longest row does not change a row's result
    alone = model.score(["dull"]).logits[0]
    np.testing.assert_allclose(scores.logits[1], alone, atol=1e-3)
    pairs = model.score(["a", "b"], ["c", "d"])
    assert pairs.logits.shape == (2, 3)
    with pytest.raises(InputError, match="text_pair has 1"):
        model.score(["a", "b"], ["c"])
    with pytest.raises(InputError, match="no text"):
        model.score([])
    with pytest.raises(InputError, match="missing input input_ids"):
        model.run({"attention_mask": np.ones((1, 4), np.int64)})


def test_label_names_from_config() -> None:
    assert label_names({"id2label": {"0": "neg", "1": "pos"}}, "text-classification") == ["neg", "pos"]
    assert label_names({"num_labels": 3}, "text-classification") == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert label_names({"id2label": {"0": "x"}}, "feature-extraction") is None
