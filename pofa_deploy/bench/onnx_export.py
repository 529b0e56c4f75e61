"""The benchmark's peers, ort-fp32 and ort-int8: the source checkpoint exported to ONNX (torch.onnx's dynamo
exporter, dynamic batch and sequence axes) and, for ort-int8, quantised with ONNX Runtime's
``quantize_dynamic`` (INT8 weights, activations quantised per call). Both are written once into the
benchmark cache, keyed on the checkpoint's files, and run by ``runners.OrtRunner``. torch, onnx and
onnxruntime are imported only inside the functions: they are the optional ``peers`` extra."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import Progress

PEERS_EXTRA = "pip install -e .[peers]"
FP32_FILE = "model.onnx"  # its weights are in model.onnx.data next to it (the exporter's external data)
INT8_FILE = "model_int8.onnx"
DONE_FILE = "export.json"  # written last: a folder without it is an interrupted export
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def ort_missing() -> str | None:
    """Why the ONNX Runtime peers cannot run here, or None when they can."""
    for pkg in ("onnxruntime", "onnx", "onnxscript"):
        if importlib.util.find_spec(pkg) is None:
            return f"{pkg} is not installed: {PEERS_EXTRA}"
    for pkg in ("torch", "transformers"):
        if importlib.util.find_spec(pkg) is None:
            return f"{pkg} is not installed here (exporting the source checkpoint to ONNX needs it)"
    return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter and the quantiser print and log advice (torchvision ops, pre-processing): keep stdout
    (which -json_stats owns) and the progress display clean."""
    loggers = [logging.getLogger(n) for n in ("", "torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def example_feed(model: Any, batch: int = 2, seq_len: int = 16) -> dict[str, np.ndarray]:
    """In-vocabulary example inputs for the inputs ``model.forward`` takes (batch and length above 1, so
    the exporter keeps both axes symbolic)."""
    import inspect

    accepted = set(inspect.signature(model.forward).parameters)
    vocab = int(getattr(model.config, "vocab_size", 30522))
    ids = np.random.default_rng(0).integers(min(5, vocab - 1), vocab, size=(batch, seq_len), dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {k: v for k, v in feed.items() if k in accepted}


def export_fp32(model: Any, path: Path) -> list[str]:
    """``model`` (FP32, eval) to ONNX at ``path`` with dynamic batch and sequence axes; returns its inputs."""
    import torch

    feed = example_feed(model)
    max_pos = getattr(model.config, "max_position_embeddings", None)
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("seq_len", min=1, max=int(max_pos) if max_pos else 4096)
    kwargs = {k: torch.from_numpy(v) for k, v in feed.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet(), torch.no_grad():
        outputs = [k for k, v in model(**kwargs).items() if v is not None]  # logits, start_logits, ...
        torch.onnx.export(model, (), str(path), kwargs=kwargs, dynamo=True, input_names=list(kwargs),
                          output_names=outputs, dynamic_shapes={k: {0: batch, 1: seq} for k in kwargs},
                          verbose=False)
    return list(kwargs)


def quantize_int8(fp32: Path, int8: Path) -> None:
    """ONNX Runtime's dynamic quantisation: INT8 (signed) weights of every MatMul/Gemm, activations
    quantised at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)


def cached_onnx(checkpoint: Path, *, int8: bool, cache: Path, say: Progress) -> Path:
    """The ONNX model of ``checkpoint`` (FP32, or its dynamic INT8 quantisation) in the cache, exported
    on first use; keyed on the checkpoint's files like the cached IRs."""
    from .plan import _checkpoint_key

    out = cache / "onnx" / f"{checkpoint.name}-{_checkpoint_key(checkpoint, 'onnx')}"
    if not (out / DONE_FILE).is_file():
        from .runners import load_torch_model

        say(f"exporting {checkpoint} to ONNX in {out} (cached for later runs)")
        t0 = time.perf_counter()
        inputs = export_fp32(load_torch_model(checkpoint), out / FP32_FILE)
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        quantize_int8(out / FP32_FILE, out / INT8_FILE)
        meta = {"source": str(checkpoint), "inputs": inputs, "export_s": round(export_s, 2),
                "quantize_s": round(time.perf_counter() - t0, 2)}
        (out / DONE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out / (INT8_FILE if int8 else FP32_FILE)


def ort_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session: ``threads`` intra-op threads, one inter-op thread, sequential
    execution, every graph optimisation on (ONNX Runtime's default level)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def session_feed(session: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feed`` restricted to the session's inputs, in their dtypes (int64 for exported BERT inputs)."""
    dtypes = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
    return {i.name: np.ascontiguousarray(feed[i.name].astype(dtypes.get(i.type, np.int64)))
            for i in session.get_inputs() if i.name in feed}
