"""Shared by the A/B scripts (fusion_ab.py, dynamic_shape_cost.py on whole models; layer_bench.py,
cold_weights.py, qkv_fusion_estimate.py on synthetic layers): the oneDNN ISA cap (re-executing the script in a child,
since the cap must be in the environment before OpenVINO loads), one compiled sync request per IR or
model, interleaved timing rounds, and the C++ compiler lookup and timing loop (infer_loop.cpp) that
kernel_loop.py and layer_bench.py --harness cpp build."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ISA_ENV = "ONEDNN_MAX_CPU_ISA"
ISA = {"native": None, "avx512_vnni": "AVX512_CORE_VNNI"}


class InferLoopError(Exception):
    """infer_loop.cpp cannot be built or run here (one line for the user). Its own class, so that a
    RuntimeError from OpenVINO itself still reaches the user with its traceback."""


def cxx_compiler() -> str | None:
    """The C++ compiler the benchmark tools build with: ``CXX``, else c++ or g++ from PATH."""
    import shutil

    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


def build_infer_loop(workdir: Path) -> Path:
    """``infer_loop.cpp`` compiled against the headers and runtime of the installed ``openvino`` wheel."""
    import openvino

    compiler = cxx_compiler()
    if compiler is None:
        raise InferLoopError("no C++ compiler: install one (`apt-get install g++`) or set CXX")
    package = Path(openvino.__file__).parent
    runtime = sorted((package / "libs").glob("libopenvino.so.*"))
    if not runtime:
        raise InferLoopError(f"no libopenvino.so.* in {package / 'libs'}: the openvino wheel is incomplete")
    binary = workdir / "infer_loop"
    cmd = [compiler, "-O2", "-std=c++17", f"-I{package / 'include'}", str(Path(__file__).with_name("infer_loop.cpp")),
           str(runtime[0]), f"-Wl,-rpath,{package / 'libs'}", "-o", str(binary)]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise InferLoopError(f"cannot run the C++ compiler {compiler}: {e.strerror}; install one or set CXX") from e
    if run.returncode != 0:
        raise InferLoopError(f"compiling infer_loop.cpp failed: {run.stderr.strip().splitlines()[-1:]}")
    return binary


def parser(description: str, *, rounds: int, iters: int) -> argparse.ArgumentParser:
    """The options both scripts take: OUT, -b, --seq-len, -t, --rounds, --iters, --isa, -o."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("out", type=Path, help="a convert --int8 folder with openvino_model_sparse.xml")
    p.add_argument("-b", "--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--iters", type=int, default=iters, help="inferences per IR per round (median taken)")
    p.add_argument("--isa", choices=sorted(ISA), default="avx512_vnni")
    p.add_argument("-o", "--output", type=Path, help="JSON report (default: stdout only)")
    return p


def core_with_extension() -> Any:
    """An OpenVINO Core with pofa-deploy's SparseFullyConnected library added."""
    import openvino as ov

    from pofa_deploy.extension import extension_path

    core = ov.Core()
    core.add_extension(str(extension_path()))
    return core


def report_header(args: argparse.Namespace) -> dict[str, Any]:
    """What every report starts with: the command, the machine, the versions and the run's settings."""
    import openvino as ov

    from pofa_deploy.environment import cpu_model

    header = {"command": [sys.executable, *sys.argv], "cpu": cpu_model(), "cores": os.cpu_count(),
              "openvino": ov.get_version(), ISA_ENV: os.environ.get(ISA_ENV), "threads": args.threads}
    for key in ("batch", "seq_len", "tokens"):  # the whole-model scripts' shape, or the layer scripts' M
        if hasattr(args, key):
            header[key] = getattr(args, key)
    return {**header, "rounds": args.rounds, "iters_per_round": args.iters}


def medians(times: dict[str, list[float]]) -> dict[str, Any]:
    """Per variant the median of its round medians, and every round (ms)."""
    return {"median_ms": {n: round(statistics.median(v), 3) for n, v in times.items()},
            "per_round_ms": {n: [round(t, 3) for t in v] for n, v in times.items()}}


def write_report(report: dict[str, Any], output: Path | None) -> None:
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {output}")


def latency_config(threads: int) -> dict[str, Any]:
    """How every A/B compiles: f32 for non-INT8 ops, one stream, ``threads`` threads, latency hint."""
    return {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY"}


def rerun_with_isa(isa: str) -> int | None:
    """The child's exit code when this process had to re-run itself under the ``isa`` cap, else None
    (oneDNN reads the cap once, when the CPU plugin loads)."""
    cap = ISA[isa]
    if cap and os.environ.get(ISA_ENV) != cap:
        return subprocess.call([sys.executable, *sys.argv], env={**os.environ, ISA_ENV: cap})
    return None


def request(core: Any, xml: Path, shape: list[int] | None, feed_shape: list[int], threads: int) -> tuple[Any, dict]:
    """A warmed-up sync request of ``xml`` (reshaped to ``shape`` unless None: then as read), f32 hint,
    one stream; inputs: random token ids, a full attention mask, zero token types."""
    model = core.read_model(str(xml))
    if shape is not None:
        model.reshape({i.get_any_name(): shape for i in model.inputs})
    compiled = core.compile_model(model, "CPU", latency_config(threads))
    rng = np.random.default_rng(0)
    feeds = {}
    for i in compiled.inputs:
        name = i.get_any_name()
        feeds[name] = np.ones(feed_shape, np.int64) if "mask" in name else (
            np.zeros(feed_shape, np.int64) if "type" in name else rng.integers(5, 1000, feed_shape))
    req = compiled.create_infer_request()
    for _ in range(5):
        req.infer(feeds)
    return req, feeds


def layer_options(description: str, *, rounds: int, iters: int) -> argparse.ArgumentParser:
    """The options of the synthetic-layer scripts: -m, -t, --rounds, --iters, --isa, -o, --smoke."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-m", "--tokens", type=lambda t: [int(v) for v in t.split(",")], default=[16, 128],
                   help="M values (tokens per call), comma list")
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--iters", type=int, default=iters, help="inferences per variant per round (median taken)")
    p.add_argument("--isa", choices=sorted(ISA), default="avx512_vnni")
    p.add_argument("-o", "--output", type=Path, help="JSON report (default: stdout only)")
    p.add_argument("--smoke", action="store_true", help="M=16, one round of one inference: checks the script only")
    return p


def apply_smoke(args: argparse.Namespace) -> None:
    """--smoke: the smallest run that still goes through every step (for the test suite)."""
    if args.smoke:
        args.tokens, args.rounds, args.iters = [16], 1, 1


def sparse_twin(core: Any, model: Any) -> Any:
    """``model`` with every quantised Linear on SparseFullyConnected, read back from a saved IR (the C++
    op comes from reading the IR with the extension added, as a user's sparse IR is loaded)."""
    import tempfile

    import openvino as ov

    from pofa_deploy import sparse_kernel as sk

    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "sparse.xml"
        ov.save_model(sk.rewrite(model, threshold=0.0).model, str(xml), compress_to_fp16=False)
        return core.read_model(str(xml))


def model_request(core: Any, model: Any, x: np.ndarray, threads: int) -> tuple[Any, dict]:
    """A warmed-up sync request of a one-input ``model`` at ``x``'s static shape, f32 hint, one stream."""
    model.reshape(list(x.shape))
    compiled = core.compile_model(model, "CPU", latency_config(threads))
    req = compiled.create_infer_request()
    feeds = {0: x}
    for _ in range(5):
        req.infer(feeds)
    return req, feeds


def interleaved(requests: dict[str, tuple[Any, dict]], rounds: int, iters: int) -> dict[str, list[float]]:
    """Per variant, the median ms of ``iters`` inferences in each round; the order alternates by round."""
    names = list(requests)
    times: dict[str, list[float]] = {n: [] for n in names}
    for rnd in range(rounds):
        for n in names if rnd % 2 == 0 else names[::-1]:
            req, feeds = requests[n]
            ts = []
            for _ in range(iters):
                t = time.perf_counter()
                req.infer(feeds)
                ts.append(time.perf_counter() - t)
            times[n].append(statistics.median(ts) * 1e3)
        print(f"round {rnd + 1}/{rounds}: " + "  ".join(f"{n} {times[n][-1]:.2f} ms" for n in names), flush=True)
    return times


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}
