"""verify.py: the zero check of a converted IR against its source, and the output comparison."""

import numpy as np
import pytest

from pofa_deploy.errors import SparsityLostError, VerificationError
from pofa_deploy.ir import IRWeight
from pofa_deploy.verify import compare_outputs, verify_zeros, zero_summary


def test_verify_zeros_unit():
    src = {"enc.layer.0.q": np.array([[0.0, 1.0], [0.0, 0.5]], dtype=np.float32)}
    ok = IRWeight("m", "enc.layer.0.q", "i8", np.array([[0, 3], [0, 0]], dtype=np.int8), None)
    [check] = verify_zeros(src, [ok])
    assert check.lost == 0 and check.new == 1
    # an asymmetric zero point makes code 0 a nonzero weight: effective values catch it
    zp = IRWeight("m", "enc.layer.0.q", "u8", np.array([[0, 3], [0, 0]], dtype=np.uint8), np.array([[2], [2]]))
    with pytest.raises(SparsityLostError):
        verify_zeros(src, [zp])
    with pytest.raises(VerificationError, match="cannot be proven"):
        verify_zeros(src, [IRWeight("m", None, "i8", np.zeros((2, 2), np.int8), None)])


class _StubIR:
    """A loaded IR whose outputs are PyTorch's, with one value replaced by ``bad`` (None: unchanged)."""

    input_names = ("input_ids", "attention_mask")

    def __init__(self, ckpt, bad):
        self.ckpt, self.bad = ckpt, bad

    def infer(self, feed):
        import torch

        with torch.inference_mode():
            logits = self.ckpt.model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy().copy()
        if self.bad is not None:
            logits[0, -1] = self.bad
        return {"logits": logits}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_compare_outputs_refuses_nan_or_inf_ir_outputs(tiny_checkpoint, bad):
    from pofa_deploy.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tiny_checkpoint())
    enc = ckpt.tokenizer(["a fine film", "not good at all"], padding="max_length", max_length=16,
                         return_tensors="np")
    feeds = [{k: enc[k][i:i + 1].astype(np.int64) for k in _StubIR.input_names} for i in range(2)]
    good = compare_outputs(ckpt, _StubIR(ckpt, None), feeds)  # the stub itself is accepted
    assert good["samples"] == 2 and good["logits"]["max_abs_diff"] == 0.0
    with pytest.raises(VerificationError, match=r"produced NaN/Inf for output 'logits' on held-back calibration "
                                                r"samples; the conversion is unusable"):
        compare_outputs(ckpt, _StubIR(ckpt, bad), feeds)


def test_verify_zeros_refuses_a_shape_mismatch():
    src = {"enc.layer.0.q": np.array([[0.0, 1.0, 2.0], [0.0, 0.5, 0.0]], dtype=np.float32)}
    transposed = IRWeight("q/MatMul", "enc.layer.0.q", "i8", np.array([[0, 0], [3, 1], [5, 0]], dtype=np.int8), None)
    with pytest.raises(VerificationError, match=r"q/MatMul: IR weight shape \(3, 2\) does not match source "
                                                r"enc\.layer\.0\.q \(2, 3\); cannot verify zeros"):
        verify_zeros(src, [transposed])
    [check] = verify_zeros(src, [IRWeight("q/MatMul", "enc.layer.0.q", "i8", transposed.values.T.copy(), None)])
    assert check.lost == 0  # the same codes in the source's layout pass


def test_zero_summary_totals():
    src = {"enc.layer.0.q": np.array([[0.0, 1.0], [0.0, 0.5]], dtype=np.float32)}
    checks = verify_zeros(src, [IRWeight("m", "enc.layer.0.q", "i8", np.array([[0, 3], [0, 0]], dtype=np.int8),
                                         None)])
    summary = zero_summary(checks)
    assert {k: v for k, v in summary.items() if k != "layers"} == {
        "layers_checked": 1, "zeros_before": 2, "zeros_after": 3, "zeros_lost": 0, "new_zeros_from_rounding": 1}
    assert summary["layers"] == [checks[0].to_dict()]
