"""Tiny seeded DistilBERT and BERT checkpoints, built in code (nothing is downloaded).

Shapes are multiples of 64 so the tiny models exercise the same sparse-decompression eligibility
rules as the real ones. Checkpoints are cached per session: building one takes about a second.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pofa_deploy.checkpoint import Task
from pofa_deploy.synth import Arch, write_checkpoint

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY = {"distilbert": Arch.TINY_DISTILBERT, "bert": Arch.TINY_BERT}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_checkpoint(arch="distilbert", task=Task.TEXT_CLASSIFICATION, sparsity=0.9, seed=0)``
    returns a cached folder; treat it as read-only (copy it before corrupting it)."""
    cache: dict[tuple[str, str, float, int], Path] = {}

    def make(arch: str = "distilbert", task: Task | str = Task.TEXT_CLASSIFICATION, sparsity: float = 0.9,
             seed: int = 0) -> Path:
        key = (arch, str(task), sparsity, seed)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"ckpt-{arch}-{Task(task).value}-{sparsity}-{seed}")
            write_checkpoint(folder, TINY[arch], task=Task(task), sparsity=sparsity, num_labels=3, seed=seed)
            cache[key] = folder
        return cache[key]

    return make


@pytest.fixture
def sst2_dir() -> Path:
    """The shared SST-2 folder; tests that need it skip (saying why) when it is absent."""
    path = SHARED_DATA / "sst2"
    if not (path / "dev.tsv").is_file():
        pytest.skip(f"SST-2 not found at {path} (shared data is optional)")
    return path


@pytest.fixture(scope="session")
def tiny_int8(tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_int8(arch="distilbert", seq_len=32)`` converts a tiny checkpoint to INT8 into a new folder on each
    call (callers may write into it), quickly: 8 calibration samples, 2 held back."""

    def make(arch: str = "distilbert", seq_len: int = 32) -> Path:
        from pofa_deploy.convert import ConvertOptions, convert

        out = tmp_path_factory.mktemp(f"int8-{arch}") / "int8"
        convert(ConvertOptions(model=str(tiny_checkpoint(arch)), output=out, int8=True, samples=8, holdout=2,
                               seq_len=seq_len))
        return out

    return make
