"""The runners: one compiled variant at one static shape, timed round by round. ``OVRunner`` runs an IR
through OpenVINO (one sync request, or an async queue of nireq requests); ``TorchRunner`` runs the source
checkpoint in PyTorch eager mode (torch is imported only when it is built). ``ov_config`` assembles a
variant's compile properties in benchmark_app's order."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..environment import physical_cores
from ..errors import InputError
from ..ir import read_model
from ..runtime_config import PRECISION_KEY, SPARSE_KEY
from .flops import Flops, graph_flops
from .inputs import realistic_inputs
from .options import Api, BenchmarkOptions, Hint, Variant, option_flag
from .plan import Source

PC_ITERATIONS = 10  # extra inferences whose per-layer counters -pc averages


@dataclass
class RoundResult:
    latencies_ms: list[float]
    ov_latencies_ms: list[float]
    iterations: int
    seconds: float


class OVRunner:
    """One compiled OpenVINO variant at one static shape; sync (one request) or async (a queue)."""

    def __init__(self, core: Any, source: Source, *, batch: int, seq_len: int, api: Api,
                 config: dict[str, Any], nireq: int | None, inputs_folder: Path | None) -> None:
        import openvino as ov

        self.variant = source.variant
        assert source.xml is not None
        model = read_model(source.xml, core)  # a corrupt .xml/.bin: one line naming the file
        names = [i.get_any_name() for i in model.inputs]
        try:
            model.reshape({name: [batch, seq_len] for name in names})
        except RuntimeError as exc:
            raise InputError(f"{option_flag('shape')} [{batch},{seq_len}]: {source.xml} cannot take it "
                             f"({str(exc).splitlines()[0][:160]}); choose another batch/sequence length"
                             ) from None
        self.flops: Flops = graph_flops(model)
        dtypes = {i.get_any_name(): i.get_element_type().to_dtype() for i in model.inputs}
        self.feed, self.inputs_how = realistic_inputs(names, dtypes, batch=batch, seq_len=seq_len,
                                                      folder=inputs_folder)
        self.config = config
        self.compiled = core.compile_model(model, "CPU", config)
        self.api = api
        tensors = {name: ov.Tensor(arr) for name, arr in self.feed.items()}
        if api is Api.SYNC:
            self.nireq = 1
            self.request = self.compiled.create_infer_request()
            for name, t in tensors.items():
                self.request.set_tensor(name, t)
        else:
            self.nireq = nireq or int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self.queue = ov.AsyncInferQueue(self.compiled, self.nireq)
            for req in self.queue:
                for name, arr in self.feed.items():
                    req.set_tensor(name, ov.Tensor(arr.copy()))
            self._lat: list[float] = []
            self.queue.set_callback(lambda req, _data: self._lat.append(req.latency))

    @property
    def any_request(self) -> Any:
        return self.request if self.api is Api.SYNC else self.queue[0]

    def first(self) -> float:
        t0 = time.perf_counter()
        self._one()
        return (time.perf_counter() - t0) * 1e3

    def _one(self) -> None:
        if self.api is Api.SYNC:
            self.request.infer()
        else:
            self.queue.start_async()
            self.queue.wait_all()
            self._lat.clear()

    def warm(self, n: int) -> None:
        for _ in range(n):
            self._one()

    def run(self, *, iterations: int | None, seconds: float | None) -> RoundResult:
        if self.api is Api.SYNC:
            return self._run_sync(iterations, seconds)
        return self._run_async(iterations, seconds)

    def _run_sync(self, iterations: int | None, seconds: float | None) -> RoundResult:
        lat: list[float] = []
        ov_lat: list[float] = []
        infer, req, clock = self.request.infer, self.request, time.perf_counter
        start = clock()
        n = 0
        while True:
            t0 = clock()
            infer()
            t1 = clock()
            lat.append((t1 - t0) * 1e3)
            ov_lat.append(req.latency)
            n += 1
            if (n >= iterations) if iterations is not None else (t1 - start >= (seconds or 0.0)):
                break
        return RoundResult(lat, ov_lat, n, clock() - start)

    def _run_async(self, iterations: int | None, seconds: float | None) -> RoundResult:
        self._lat.clear()
        clock = time.perf_counter
        start = clock()
        n = 0
        while True:
            self.queue.start_async()
            n += 1
            if (n >= iterations) if iterations is not None else (clock() - start >= (seconds or 0.0)):
                break
        self.queue.wait_all()
        elapsed = clock() - start
        # requests overlap, so a wall-clock time per call means nothing: latency is OpenVINO's own timer
        return RoundResult(list(self._lat), [], n, elapsed)

    def compiled_properties(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nireq": self.nireq}
        for key in ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", PRECISION_KEY,
                    SPARSE_KEY, "PERF_COUNT"):
            try:
                value = self.compiled.get_property(key)
            except RuntimeError:
                continue
            out[key] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
        return out

    def perf_counts(self) -> dict[str, Any]:
        """PERF_COUNT over PC_ITERATIONS extra inferences, by layer type and kernel, and FC kernels."""
        req = self.any_request
        per_kind: dict[tuple[str, str], dict[str, float]] = {}
        per_node: dict[str, dict[str, Any]] = {}
        for _ in range(PC_ITERATIONS):
            req.infer()
            for p in req.get_profiling_info():
                if p.status != p.Status.EXECUTED:
                    continue
                ms = p.real_time.total_seconds() * 1e3
                node = per_node.setdefault(p.node_name,
                                           {"type": p.node_type, "exec_type": p.exec_type, "ms": 0.0})
                node["ms"] += ms / PC_ITERATIONS
        for node in per_node.values():
            entry = per_kind.setdefault((node["type"], node["exec_type"]), {"nodes": 0, "ms": 0.0})
            entry["nodes"] += 1
            entry["ms"] += node["ms"]
        total = sum(n["ms"] for n in per_node.values()) or 1.0
        by_kind: list[dict[str, Any]] = [
            {"layer_type": t, "exec_type": e, "nodes": int(v["nodes"]), "ms": v["ms"],
             "share": v["ms"] / total} for (t, e), v in per_kind.items()]
        by_kind.sort(key=lambda d: -d["ms"])
        # the profiler names some INT8 FullyConnected nodes "FullyConnectedQuantizedLegacy"
        fc = [n for n in per_node.values() if n["type"].startswith("FullyConnected")]
        fc_kernels: dict[str, int] = {}
        for n in fc:
            fc_kernels[n["exec_type"]] = fc_kernels.get(n["exec_type"], 0) + 1
        top = sorted(({"name": k, **v} for k, v in per_node.items()), key=lambda d: -d["ms"])[:20]
        return {"inferences": PC_ITERATIONS, "total_ms": total, "by_layer_type": by_kind,
                "fully_connected": {"nodes": len(fc),
                                    "sparse": sum("sparse" in n["exec_type"].lower() for n in fc),
                                    "kernels": fc_kernels},
                "top_layers": top}


_OV_THREADS: list[int] = []


def ov_default_threads() -> int:
    """INFERENCE_NUM_THREADS OpenVINO's CPU plugin picks for a latency-hint model when none is set (one per
    physical core it uses), asked from the plugin with a one-op model; physical_cores() without it."""
    if not _OV_THREADS:
        try:
            import openvino as ov
            import openvino.opset13 as ops

            x = ops.parameter([1, 4], ov.Type.f32, name="x")
            compiled = ov.Core().compile_model(ov.Model([ops.result(ops.relu(x))], [x], "threads"), "CPU",
                                               {"PERFORMANCE_HINT": "LATENCY"})
            _OV_THREADS.append(int(compiled.get_property("INFERENCE_NUM_THREADS")) or physical_cores())
        except (ImportError, RuntimeError, ValueError):
            _OV_THREADS.append(physical_cores())
    return _OV_THREADS[0]


class _OneCallRunner:
    """A framework without a request queue (PyTorch, ONNX Runtime): one call at a time, in sync and async
    mode alike. Subclasses set ``_call`` (one inference) and may wrap the loop in ``_context()``."""

    variant: Variant
    nireq = 1

    def _call(self) -> None:
        raise NotImplementedError

    def _context(self) -> Any:
        return contextlib.nullcontext()

    def first(self) -> float:
        with self._context():
            t0 = time.perf_counter()
            self._call()
            return (time.perf_counter() - t0) * 1e3

    def warm(self, n: int) -> None:
        with self._context():
            for _ in range(n):
                self._call()

    def run(self, *, iterations: int | None, seconds: float | None) -> RoundResult:
        lat: list[float] = []
        clock, call = time.perf_counter, self._call
        start = clock()
        n = 0
        with self._context():
            while True:
                t0 = clock()
                call()
                t1 = clock()
                lat.append((t1 - t0) * 1e3)
                n += 1
                if (n >= iterations) if iterations is not None else (t1 - start >= (seconds or 0.0)):
                    break
        return RoundResult(lat, [], n, clock() - start)


class TorchRunner(_OneCallRunner):
    """The source checkpoint in PyTorch FP32 eager mode; async mode runs it one call at a time.

    Threads: ``-nthreads`` when given, else as many as OpenVINO's latency variants use by default (one
    per physical core), not torch's own default, so both frameworks get the same cores."""

    def __init__(self, model: Any, feed: dict[str, np.ndarray], threads: int | None) -> None:
        import inspect

        import torch

        self.variant = Variant.PYTORCH_FP32
        self.torch = torch
        self.threads_from = "-nthreads" if threads else "OpenVINO's default for a latency model (physical cores)"
        torch.set_num_threads(threads or ov_default_threads())
        accepted = set(inspect.signature(model.forward).parameters)
        self.model = model
        self.inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items() if k in accepted}

    def _call(self) -> None:
        self.model(**self.inputs)

    def _context(self) -> Any:
        return self.torch.inference_mode()

    def compiled_properties(self) -> dict[str, Any]:
        return {"torch_num_threads": self.torch.get_num_threads(), "torch_threads_from": self.threads_from,
                "nireq": 1}


class OrtRunner(_OneCallRunner):
    """An ONNX Runtime peer (ort-fp32, ort-int8): one session, one call at a time (sync; in async mode too,
    as pytorch-fp32). Threads as TorchRunner's: ``-nthreads`` or OpenVINO's default for a latency model,
    as intra-op threads, one inter-op thread, sequential execution."""

    def __init__(self, source: Source, feed: dict[str, np.ndarray], threads: int | None) -> None:
        from .onnx_export import ort_session, session_feed

        assert source.onnx is not None
        self.variant = source.variant
        self.threads = threads or ov_default_threads()
        self.threads_from = "-nthreads" if threads else "OpenVINO's default for a latency model (physical cores)"
        self.session = ort_session(source.onnx, self.threads)
        self.feed = session_feed(self.session, feed)

    def _call(self) -> None:
        self.session.run(None, self.feed)

    def compiled_properties(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {"ort_version": ort.__version__, "ort_intra_op_num_threads": self.threads,
                "ort_threads_from": self.threads_from, "ort_inter_op_num_threads": 1,
                "ort_execution_mode": "sequential", "ort_providers": list(self.session.get_providers()),
                "nireq": 1}


def load_torch_model(checkpoint: Path) -> Any:
    from transformers.utils import logging as hf_logging

    from ..checkpoint import load_checkpoint

    hf_logging.disable_progress_bar()  # its bar would garble the progress display
    return load_checkpoint(checkpoint).model.eval()


def ov_config(source: Source, options: BenchmarkOptions, load_cfg: dict[str, Any],
               api: Api) -> dict[str, Any]:
    """Folder config -> -load_config -> command-line knobs -> the variant's own keys (benchmark_app order)."""
    config: dict[str, Any] = {k: v for k, v in source.config.items() if k not in (SPARSE_KEY, PRECISION_KEY)}
    config.update(load_cfg)
    hint = options.hint
    if hint is None:
        if "PERFORMANCE_HINT" not in load_cfg:
            config["PERFORMANCE_HINT"] = "LATENCY" if api is Api.SYNC else "THROUGHPUT"
    elif hint is not Hint.NONE:
        config["PERFORMANCE_HINT"] = hint.value.upper()
    # A folder tuned for throughput carries NUM_STREAMS (and maybe a request count) for its THROUGHPUT
    # hint; a run under another hint (a sync latency run) must not inherit them.
    folder_hint = source.config.get("PERFORMANCE_HINT")
    if folder_hint is not None and config.get("PERFORMANCE_HINT") != folder_hint:
        for key in ("NUM_STREAMS", "PERFORMANCE_HINT_NUM_REQUESTS"):
            if key not in load_cfg:
                config.pop(key, None)
    if options.nstreams is not None:
        config["NUM_STREAMS"] = str(options.nstreams)
    if options.nthreads is not None:
        config["INFERENCE_NUM_THREADS"] = str(options.nthreads)
    if options.nireq is not None:
        config["PERFORMANCE_HINT_NUM_REQUESTS"] = str(options.nireq)
    config["PERF_COUNT"] = "YES" if options.pc else "NO"
    # what makes the variant itself wins over everything else
    config.pop(SPARSE_KEY, None)
    if source.sparse_rate is not None:
        config[SPARSE_KEY] = str(source.sparse_rate)
    if PRECISION_KEY in source.config:
        config[PRECISION_KEY] = source.config[PRECISION_KEY]
    return config
