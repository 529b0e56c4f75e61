"""What convert proves about the IR it wrote: every zero kept, and outputs that match PyTorch's.

``verify_zeros`` maps each IR weight to its source Linear (``ir.IRWeight.source``) and compares the
zero patterns; one lost zero raises SparsityLostError. ``compare_outputs`` runs held-back samples
through both models and summarises the differences (max |diff|, cosine, top-1 agreement); a NaN or
Inf output raises VerificationError.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .checkpoint import Checkpoint
from .errors import SparsityLostError, VerificationError
from .sparsity import ZeroCheck, compare, is_encoder_linear


def verify_zeros(source: dict[str, np.ndarray], weights: list[Any]) -> list[ZeroCheck]:
    """Compare every IR weight that maps to a source Linear; raise on any lost zero.

    Raises VerificationError when an encoder Linear cannot be found in the IR (its zeros could not
    be proven), and SparsityLostError naming the layers when a source zero is not zero in the IR.
    """
    checks = []
    seen = set()
    for w in weights:
        if w.source is None or w.source not in source:
            continue
        if w.source in seen:  # a weight shared by two MatMuls is checked once
            continue
        seen.add(w.source)
        before = source[w.source]
        after = w.effective
        if before.shape != after.shape:
            raise VerificationError(f"{w.matmul}: IR weight shape {after.shape} does not match source "
                                    f"{w.source} {before.shape}; cannot verify zeros")
        checks.append(compare(w.source, before, after))
    missing = [name for name in source if is_encoder_linear(name) and name not in seen]
    if missing or not checks:
        raise VerificationError(f"{len(missing)} encoder Linears (e.g. {missing[:1]}) have no matching weight in "
                                "the IR, so their zeros cannot be proven; the exporter changed layer names")
    lost = [c for c in checks if c.lost]
    if lost:
        worst = max(lost, key=lambda c: c.lost)
        raise SparsityLostError(f"{sum(c.lost for c in lost)} zeros of the source were lost in {len(lost)} layers "
                                f"(worst: {worst.name}, {worst.lost} of {worst.zeros_before}); nothing was "
                                "written. Quantise weights symmetrically (zero point 0) to keep them")
    return checks


def zero_summary(checks: list[ZeroCheck]) -> dict[str, Any]:
    """pofa_report.json's ``zero_check``: the totals over ``checks`` and every layer's check."""
    return {
        "layers_checked": len(checks),
        "zeros_before": sum(c.zeros_before for c in checks),
        "zeros_after": sum(c.zeros_after for c in checks),
        "zeros_lost": sum(c.lost for c in checks),
        "new_zeros_from_rounding": sum(c.new for c in checks),
        "layers": [c.to_dict() for c in checks],
    }


def compare_outputs(ckpt: Checkpoint, loaded: Any, feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """IR outputs against PyTorch's on held-back samples: max |diff|, top-1 agreement, cosine."""
    import torch

    if not feeds:
        return {"samples": 0, "note": "no held-back samples (--holdout 0)"}
    per_output: dict[str, dict[str, list[float]]] = {}
    with torch.inference_mode():
        for feed in feeds:
            ov_out = loaded.infer(feed)
            pt_out = ckpt.model(**{k: torch.from_numpy(v) for k, v in feed.items()
                                   if k in loaded.input_names})
            mask = feed["attention_mask"].astype(bool)
            for name, got in ov_out.items():
                if not np.all(np.isfinite(got)):
                    raise VerificationError(f"the converted model produced NaN/Inf for output {name!r} on held-back "
                                            "calibration samples; the conversion is unusable")
                ref = getattr(pt_out, name, None)
                if ref is not None:
                    _accumulate(per_output.setdefault(name, {"max_abs_diff": [], "top1": [], "cosine": []}),
                                name, got, ref.float().numpy(), mask)
    return _summary(per_output, len(feeds))


def compare_ir_outputs(reference: Any, candidate: Any, feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """One IR's outputs against another's (the sparse-kernel IR against the standard INT8 IR) on the same
    held-back samples: max |diff|, cosine, top-1 agreement. NaN/Inf in the candidate raises."""
    if not feeds:
        return {"samples": 0, "note": "no held-back samples (--holdout 0)"}
    per_output: dict[str, dict[str, list[float]]] = {}
    for feed in feeds:
        ref_out, got_out = reference.infer(feed), candidate.infer(feed)
        mask = feed["attention_mask"].astype(bool)
        for name, got in got_out.items():
            if not np.all(np.isfinite(got)):
                raise VerificationError(f"the sparse-kernel IR produced NaN/Inf for output {name!r} on held-back "
                                        "calibration samples; it is not written")
            if name in ref_out:
                _accumulate(per_output.setdefault(name, {"max_abs_diff": [], "top1": [], "cosine": []}),
                            name, got, ref_out[name], mask)
    return _summary(per_output, len(feeds))


def _summary(per_output: dict[str, dict[str, list[float]]], samples: int) -> dict[str, Any]:
    summary: dict[str, Any] = {"samples": samples}
    for name, s in per_output.items():
        summary[name] = {
            "max_abs_diff": round(max(s["max_abs_diff"]), 6),
            "mean_cosine": round(float(np.mean(s["cosine"])), 6),
            **({"top1_agreement": round(float(np.mean(s["top1"])), 6)} if s["top1"] else {}),
        }
    return summary


def _accumulate(stats: dict[str, list[float]], name: str, got: np.ndarray, ref: np.ndarray,
                mask: np.ndarray) -> None:
    """Add one sample's differences for output ``name`` to ``stats`` (top-1 over attended tokens)."""
    stats["max_abs_diff"].append(float(np.max(np.abs(got - ref))))
    stats["cosine"].append(_cosine(got, ref))
    if name != "last_hidden_state":
        a, b = got.argmax(-1), ref.argmax(-1)
        same = (a == b)[mask] if a.shape == mask.shape else (a == b).ravel()
        stats["top1"] += same.astype(float).tolist()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom else 1.0
