import numpy as np
import pytest

from pofa_deploy.sparsity import (
    choose_rate,
    compare,
    is_eligible,
    is_encoder_linear,
    layer_table,
    magnitude_mask,
    shape_eligible,
    totals,
)


def test_compare_counts_lost_and_new_zeros():
    before = np.array([[0.0, 1.0], [0.0, 2.0]])
    after = np.array([[0, 0], [3, 4]], dtype=np.int8)
    c = compare("w", before, after)
    assert (c.zeros_before, c.zeros_after, c.lost, c.new) == (2, 2, 1, 1)


def test_compare_refuses_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        compare("w", np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize(("shape", "dtype", "ok"), [
    ((64, 128), "i8", True), ((64, 100), "i8", False), ((64, 128), "f32", False), ((64,), "i8", False),
    ((768, 3072), "i8", True), ((2, 768), "i8", False),
])
def test_eligibility(shape, dtype, ok):
    assert is_eligible(shape, dtype) is ok


def test_layer_table_and_totals():
    w = {"a": np.array([[0, 1], [0, 0]], dtype=np.float32), "b": np.zeros((64, 64), dtype=np.float32)}
    rows = layer_table(w, eligible_if_int8=True)
    assert [r.zeros for r in rows] == [3, 4096]
    assert [r.eligible for r in rows] == [False, True]
    t = totals(rows)
    assert t.eligible_layers == 1 and t.eligible_sparsity == 1.0
    assert t.sparsity == pytest.approx((3 + 4096) / (4 + 4096))
    assert shape_eligible((128, 64))


def test_choose_rate_floor_of_min_useful_layer():
    assert choose_rate([0.905, 0.899, 0.93]) == 0.89
    assert choose_rate([0.0, 0.9]) == 0.9  # dense layers do not drag the threshold down
    assert choose_rate([0.1, 0.3]) is None
    assert choose_rate([]) is None


def test_magnitude_mask_exact_count_smallest_removed():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 96))
    keep = magnitude_mask(w, 0.9)
    assert (~keep).sum() == round(0.9 * w.size)
    assert np.abs(w[~keep]).max() <= np.abs(w[keep]).min()
    with pytest.raises(ValueError):
        magnitude_mask(w, 1.0)


@pytest.mark.parametrize(("name", "encoder"), [
    ("distilbert.transformer.layer.0.attention.q_lin", True),
    ("bert.encoder.layer.11.output.dense", True),
    ("bert.encoder.layer.0.intermediate.dense.weight", True),
    ("bert.pooler.dense", False), ("classifier", False), ("pre_classifier", False),
    ("distilbert.embeddings.word_embeddings", False), ("qa_outputs", False),
])
def test_is_encoder_linear_is_the_one_rule(name, encoder):
    assert is_encoder_linear(name) is encoder
