"""This CPU's dense MatMul ceiling through OpenVINO (INT8, FP32, BF16), measured once by ``--peak`` and
cached per CPU, OpenVINO version, threads, shape and duration, so every variant can say what share of
it it reaches. nncf is imported only to quantise the INT8 MatMul (a hand-built FakeQuantize without it)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..environment import available_cores, bf16_supported, cpu_model
from ..progress import Progress, silent
from ..runtime import runtime_exec_types
from ..runtime_config import PRECISION_KEY
from .options import DEFAULT_PEAK_SHAPE

PEAK_FILE = "peak.json"
_PEAK_VERSION = "peak v2"  # latency and throughput modes (v1 figures, one sync request only, are not reused)


def peak_key(threads: int, shape: Sequence[int] = DEFAULT_PEAK_SHAPE, seconds: float = 3.0) -> str:
    """One cache entry per CPU, OpenVINO, threads, MatMul shape and seconds per precision, so a quick
    ``--peak-shape 64,64,64 --peak-time 0.1`` run is stored beside the real ceiling, never over it."""
    import openvino as ov

    m, k, n = (int(v) for v in shape)
    return (f"{cpu_model()} | openvino {ov.get_version()} | {threads} threads | [{m},{k}]x[{k},{n}] | "
            f"{float(seconds):g} s | {_PEAK_VERSION}")


def _peak_model(precision: str, m: int, k: int, n: int, *, use_nncf: bool) -> tuple[Any, str]:
    """A [M,K]x[K,N] MatMul graph; INT8 by NNCF or a hand-built FakeQuantize + i8 weight."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([m, k], ov.Type.f32, name="x")
    if precision != "int8":
        w = ops.constant(rng.standard_normal((n, k)).astype(np.float32))
        how = "f32 MatMul" + (", INFERENCE_PRECISION_HINT=bf16" if precision == "bf16" else "")
        return ov.Model([ops.result(ops.matmul(x, w, False, True))], [x], "peak"), how
    if use_nncf:
        try:
            import nncf

            fp = _peak_model("fp32", m, k, n, use_nncf=False)[0]
            data = [{"x": rng.standard_normal((m, k)).astype(np.float32)}]
            return nncf.quantize(fp, nncf.Dataset(data), subset_size=1), "nncf.quantize"
        except ImportError:
            pass
    lo, hi = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
    xq = ops.fake_quantize(x, lo, hi, lo, hi, 256)
    wq = ops.constant(rng.integers(-127, 128, size=(n, k)).astype(np.int8))
    scale = ops.constant(np.full((n, 1), 0.01, dtype=np.float32))
    w = ops.multiply(ops.convert(wq, ov.Type.f32), scale)
    return ov.Model([ops.result(ops.matmul(xq, w, False, True))], [x], "peak_i8"), "FakeQuantize (no nncf)"


def measure_peak(*, shape: Sequence[int] = DEFAULT_PEAK_SHAPE, seconds: float = 3.0,
                 threads: int | None = None, use_nncf: bool = True,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Sustained dense MatMul rate of this CPU through OpenVINO, per precision (ops/s, median of iterations).

    Each precision is checked in the runtime graph: the FullyConnected node must have run with the
    intended precision (u8/i8 for INT8), otherwise ``verified`` is false and the figure is not a ceiling.
    """
    import openvino as ov

    say = progress or silent
    m, k, n = (int(v) for v in shape)
    threads = threads or available_cores()
    flops = 2 * m * k * n
    core = ov.Core()
    result: dict[str, Any] = {"key": peak_key(threads, (m, k, n), seconds), "cpu_model": cpu_model(),
                              "openvino": ov.get_version(), "threads": threads, "shape": [m, k, n],
                              "flops_per_inference": flops,
                              "seconds_per_precision": seconds,
                              "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    precisions = ["int8", "fp32", "bf16"]
    for precision in precisions:
        if precision == "bf16" and not bf16_supported():
            result[precision] = {"skipped": "this CPU has neither avx512_bf16 nor amx_bf16"}
            continue
        say(f"peak: timing a [{m},{k}]x[{k},{n}] {precision} MatMul for {seconds:g} s")
        model, method = _peak_model(precision, m, k, n, use_nncf=use_nncf)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads)}
        if precision in ("fp32", "bf16"):
            config[PRECISION_KEY] = "f32" if precision == "fp32" else "bf16"
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
        request.set_tensor(compiled.inputs[0], ov.Tensor(np.random.default_rng(1).standard_normal((m, k))
                                                         .astype(np.float32)))
        request.infer()
        fc = [node for node in runtime_exec_types(compiled).values()
              if node["layerType"] in ("FullyConnected", "MatMul")]
        exec_type = fc[0]["execType"] if fc else "?"
        runtime_precision = _runtime_precision(compiled)
        expected = {"int8": ("u8", "i8"), "fp32": ("f32",), "bf16": ("bf16",)}[precision]
        verified = runtime_precision in expected or any(e in exec_type.lower() for e in expected)
        lat: list[float] = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or len(lat) < 3:
            t0 = time.perf_counter()
            request.infer()
            lat.append(time.perf_counter() - t0)
        med = float(np.median(lat))
        # One request cannot keep every core busy on every CPU (a 16-core AMX Xeon reached more in
        # throughput mode than with one sync request), so the ceiling is the better of the two modes.
        streams = _throughput_rate(core, model, config, m, k, seconds, flops)
        result[precision] = {"ops_per_second": max(flops / med, streams["ops_per_second"]),
                             "latency_mode_ops_per_second": flops / med, "throughput_mode": streams,
                             "best_ops_per_second": flops / min(lat),
                             "median_latency_ms": med * 1e3, "iterations": len(lat), "exec_type": exec_type,
                             "runtime_precision": runtime_precision, "verified": bool(verified),
                             "method": method}
    return result


def _throughput_rate(core: Any, model: Any, latency_config: dict[str, Any], m: int, k: int, seconds: float,
                     flops: int) -> dict[str, Any]:
    """The same MatMul with PERFORMANCE_HINT=THROUGHPUT and the plugin's optimal number of requests."""
    import openvino as ov

    config = dict(latency_config, PERFORMANCE_HINT="THROUGHPUT")
    compiled = core.compile_model(model, "CPU", config)
    nireq = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, nireq)
    data = np.random.default_rng(2).standard_normal((m, k)).astype(np.float32)
    for _ in range(nireq):  # warm-up
        queue.start_async({0: data})
    queue.wait_all()
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or count < 2 * nireq:
        queue.start_async({0: data})
        count += 1
    queue.wait_all()
    elapsed = time.perf_counter() - start
    return {"ops_per_second": flops * count / elapsed, "nireq": nireq,
            "streams": str(compiled.get_property("NUM_STREAMS")), "iterations": count}


def _runtime_precision(compiled: Any) -> str:
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and str(info["layerType"].astype(str)) in ("FullyConnected", "MatMul"):
            return str(info["runtimePrecision"].astype(str)) if "runtimePrecision" in info else ""
    return ""


def load_peaks(cache: Path) -> dict[str, Any]:
    file = cache / PEAK_FILE
    try:
        data = json.loads(file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def save_peak(cache: Path, peak: dict[str, Any]) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    data = load_peaks(cache)
    data[peak["key"]] = peak
    file = cache / PEAK_FILE
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, file)
    return file


def cached_peak(cache: Path, threads: int, shape: Sequence[int] = DEFAULT_PEAK_SHAPE) -> dict[str, Any] | None:
    """The cached ceiling for this CPU, OpenVINO and ``threads``: the ``shape`` entry with the longest
    timing; failing that, another shape's, with ``peak["lookup"]`` saying which was used instead."""
    import openvino as ov

    wanted = [int(v) for v in shape]
    candidates: list[dict[str, Any]] = [
        entry for key, entry in load_peaks(cache).items()
        if isinstance(entry, dict) and str(key).endswith(_PEAK_VERSION)
        and entry.get("cpu_model") == cpu_model() and entry.get("openvino") == ov.get_version()
        and entry.get("threads") == threads and isinstance(entry.get("shape"), list)]
    if not candidates:
        return None

    def rank(entry: dict[str, Any]) -> tuple[bool, float, float, str]:
        return (entry["shape"] == wanted, float(entry.get("seconds_per_precision") or 0.0),
                float(entry.get("flops_per_inference") or 0.0), str(entry.get("date", "")))

    chosen: dict[str, Any] = max(candidates, key=rank)
    best = dict(chosen)
    m, k, n = best["shape"]
    timed = f"[{m},{k}]x[{k},{n}] MatMul timed {best.get('seconds_per_precision', '?')} s per precision"
    if best["shape"] == wanted:
        best["lookup"] = f"cached {timed} (the longest run of that shape)"
    else:
        best["lookup"] = (f"no cached ceiling for the [{wanted[0]},{wanted[1]}]x[{wanted[1]},{wanted[2]}] MatMul; "
                          f"using a {timed} instead (pofa-deploy benchmark --peak measures the default)")
    return best
