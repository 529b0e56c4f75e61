"""pofa-deploy benchmark on a tiny converted model: every variant interleaved, ratios, sparse status, files,
peak, the crash probe, bad input. Durations are a few iterations: these tests check behaviour, never speed.
The parts that need no model (statistics, shapes, FLOPs, the JSON types) are in test_bench_stats.py."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_run import runner

from pofa_deploy import environment
from pofa_deploy.bench import DEFAULT_PEAK_SHAPE, BenchmarkOptions, Variant, runners
from pofa_deploy.bench import peak as peaks
from pofa_deploy.bench import plan as planning
from pofa_deploy.bench.result import SCHEMA, BenchmarkResult
from pofa_deploy.bench.run import benchmark
from pofa_deploy.environment import available_cores, bf16_supported, cpu_model, has_amx, physical_cores
from pofa_deploy.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


run_cli = runner("benchmark")


# -- a tiny converted model, benchmarked once for the tests below ------------------------------------


@pytest.fixture(scope="module")
def int8_dir(tiny_int8: Callable[..., Path]) -> Path:
    return tiny_int8("distilbert", seq_len=32)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture(scope="module")
def peak_run(cache_dir: Path) -> tuple[int, str, str]:
    return run_cli("--peak", "--peak-time", "0.1", "--peak-shape", "64,256,256",
                   "--cache-dir", str(cache_dir))


@pytest.fixture(scope="module")
def full_run(int8_dir: Path, cache_dir: Path, peak_run: tuple[int, str, str],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-out")
    code, stdout, stderr = run_cli(str(int8_dir), "-niter", "6", "--rounds", "3", "--warmup", "1",
                                   "--seq-len", "32", "-b", "1,2", "-pc", "--cache-dir", str(cache_dir),
                                   "--output-dir", str(out))
    assert code == 0, stderr
    raw = json.loads((out / "benchmark.json").read_text())
    return {"out": out, "stdout": stdout, "stderr": stderr, "raw": raw, "result": BenchmarkResult.from_dict(raw)}


ALL = ["pytorch-fp32", "ov-fp32", "ov-bf16", "int8", "int8-sparse", "int8-pofa-sparse"]


def test_every_variant_runs_interleaved(full_run: dict[str, Any]) -> None:
    result: BenchmarkResult = full_run["result"]
    expected = [v for v in ALL if v != "ov-bf16" or bf16_supported()]
    assert [(c.batch, c.seq_len) for c in result.configs] == [(1, 32), (2, 32)]
    for cfg in result.configs:
        assert list(cfg.results) == expected
        # A B C A B C ...: every round runs every variant once, in the same order
        assert [s.variant for s in cfg.schedule] == expected * 3
        assert [s.round for s in cfg.schedule] == [r for r in range(3) for _ in expected]
        starts = [s.start_s for s in cfg.schedule]
        assert starts == sorted(starts)
        for name, e in cfg.results.items():
            assert e.iterations == 6, name  # -niter 6 over 3 rounds
            assert [r.iterations for r in e.rounds_detail] == [2, 2, 2]
            assert e.throughput > 0 and e.latency_ms.median > 0
            assert e.latency_ms.min <= e.latency_ms.median <= e.latency_ms.max
            assert e.flops is not None and e.flops.total > e.flops.linear > 0
        assert cfg.results["ov-fp32"].compiled["INFERENCE_PRECISION_HINT"] == "f32"
        if "ov-bf16" in cfg.results:
            assert cfg.results["ov-bf16"].compiled["INFERENCE_PRECISION_HINT"] == "bf16"
        assert "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE" in cfg.results["int8-sparse"].compiled
        assert cfg.results["int8"].compiled["CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"] == "1.0"  # off
    if not bf16_supported():
        assert "avx512_bf16" in result.skipped["ov-bf16"]
    assert "tokenised" in (result.configs[0].results["int8"].inputs or "")


def test_json_keeps_its_schema_and_reads_back(full_run: dict[str, Any]) -> None:
    """benchmark.json is exactly the typed result's to_dict(), and reading it back loses nothing."""
    raw = full_run["raw"]
    assert raw["schema"] == SCHEMA == "pofa-deploy-benchmark/1"
    assert full_run["result"].to_dict() == raw
    assert list(raw) == ["schema", "environment", "definitions", "peak", "kind", "model", "report", "options",
                         "api", "hint", "baseline", "variants", "skipped", "notes", "configs", "seconds", "files"]
    cfg = raw["configs"][0]
    assert list(cfg) == ["batch", "seq_len", "api", "rounds", "results", "schedule", "skipped"]
    assert list(cfg["results"]["int8-sparse"])[:6] == ["first_inference_ms", "compiled", "flops", "inputs", "sparse",
                                                       "perf_counts"]
    assert "inputs" not in cfg["results"]["pytorch-fp32"] and "ov_latency_ms" not in cfg["results"]["pytorch-fp32"]
    assert set(cfg["results"]["int8"]["latency_ms"]) == {"count", "min", "median", "mean", "p90", "p99", "max",
                                                         "std", "p50"}
    with pytest.raises(ValueError, match="pofa-deploy-benchmark/1"):
        BenchmarkResult.from_dict(dict(raw, schema="something-else/1"))


def test_ratios_to_the_pytorch_baseline(full_run: dict[str, Any]) -> None:
    result: BenchmarkResult = full_run["result"]
    assert result.baseline == "pytorch-fp32"
    assert "speedup.median_iqr_min_max" in result.definitions
    for cfg in result.configs:
        for name, e in cfg.results.items():
            s = e.speedup
            assert s is not None
            assert len(s.per_round) == 3
            assert s.min <= s.q1 <= s.median <= s.q3 <= s.max
            if name != "pytorch-fp32":
                assert s.ci95 is not None
                lo, hi = s.ci95
                assert 0 < lo <= hi
                expected = cfg.results["pytorch-fp32"].latency_ms.median / e.latency_ms.median
                assert s.overall == pytest.approx(expected)


def test_sparse_status_is_read_from_the_runtime_graph(full_run: dict[str, Any]) -> None:
    result: BenchmarkResult = full_run["result"]
    for cfg in result.configs:
        if "int8-sparse" in cfg.skipped:  # only where the plugin's sparse path crashed in the child probe
            assert has_amx() and "OpenVINO" in cfg.skipped["int8-sparse"]
            continue
        sparse = cfg.results["int8-sparse"].sparse
        dense = cfg.results["int8"].sparse
        assert sparse is not None and dense is not None
        shape = [cfg.batch, cfg.seq_len]
        assert sparse["measured"] and dense["measured"] and sparse["shape"] == dense["shape"] == shape
        assert sparse["requested_rate"] is not None and dense["requested_rate"] is None
        assert sparse["fully_connected"] == dense["fully_connected"] > 0
        assert 0 < sparse["eligible_meeting_rate"] <= sparse["eligible_weights"]
        assert dense["effect"] == "off" and dense["sparse_nodes"] == 0
        assert "pytorch-fp32" not in cfg.results or cfg.results["pytorch-fp32"].sparse is None
        if has_amx():  # what ran, counted from the runtime graph
            assert sparse["sparse_nodes"] >= 1 and sparse["effect"] == "active", sparse["summary"]
        else:
            assert sparse["sparse_nodes"] == 0 and sparse["effect"] == "none"
            assert "no effect here" in sparse["summary"] and "no AMX" in sparse["summary"]
    if not has_amx():
        assert "no AMX" in full_run["stdout"] + full_run["stderr"]


def test_perf_counts_by_layer_type(full_run: dict[str, Any]) -> None:
    cfg = full_run["result"].configs[0]
    pc = cfg.results["int8-sparse"].perf_counts
    assert pc is not None
    assert pc["fully_connected"]["nodes"] > 0
    assert pc["by_layer_type"] and all(row["ms"] >= 0 for row in pc["by_layer_type"])
    assert sum(pc["fully_connected"]["kernels"].values()) == pc["fully_connected"]["nodes"]
    assert pc["fully_connected"]["sparse"] == cfg.results["int8-sparse"].sparse["sparse_nodes"]
    assert pc["fully_connected"]["sparse"] >= (1 if has_amx() else 0)
    if not has_amx():
        assert pc["fully_connected"]["sparse"] == 0
    assert cfg.results["pytorch-fp32"].perf_counts is None
    assert "-pc int8-sparse" in full_run["stdout"]


def test_files_table_and_environment(full_run: dict[str, Any]) -> None:
    out: Path = full_run["out"]
    for name in ("benchmark.json", "benchmark.csv", "benchmark.md", "latency.png", "throughput.png",
                 "speedup_vs_seq.png"):
        assert (out / name).is_file(), name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result: BenchmarkResult = full_run["result"]
    n_variants = len(result.configs[0].results)
    lines = (out / "benchmark.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 2 * n_variants and lines[0].startswith("model,batch,seq_len")
    md = (out / "benchmark.md").read_text()
    assert "## batch 2, seq_len 32" in md and "Sparse kernels" in md
    env = result.environment
    assert env["cpu_model"] and env["versions"]["openvino"] != "not installed"
    assert env["versions"]["torch"] and env["date"] and env["threads_used"] >= 1
    assert "amx" in env and isinstance(env["cpu_flags"], list)
    assert "command" in env and "git" in env
    table = full_run["stdout"]
    assert "batch 1, seq_len 32" in table and "speed-up" in table and "int8-sparse" in table
    assert "round 3/3" in full_run["stderr"]  # progress display went to stderr


def test_peak_measures_and_is_used(peak_run: tuple[int, str, str], full_run: dict[str, Any],
                                   cache_dir: Path) -> None:
    code, stdout, stderr = peak_run
    assert code == 0, stderr
    assert "int8" in stdout and "fp32" in stdout
    cached = json.loads((cache_dir / "peak.json").read_text())
    (peak,) = cached.values()
    for precision in ("int8", "fp32"):
        assert peak[precision]["ops_per_second"] > 0
        assert peak[precision]["verified"], peak[precision]
    assert peak["int8"]["runtime_precision"] in ("u8", "i8")
    result: BenchmarkResult = full_run["result"]
    for cfg in result.configs:
        e = cfg.results["int8-sparse"]
        assert e.peak_precision == "int8" and e.peak_share is not None and e.peak_share > 0
        assert e.ops_per_second == pytest.approx(e.peak_share * peak["int8"]["ops_per_second"])
        assert cfg.results["pytorch-fp32"].peak_precision == "fp32"
    # the key names the shape and duration, and a ceiling of another shape than the default is labelled
    (key,) = cached
    assert "[64,256]x[256,256]" in key and "| 0.1 s |" in key
    assert result.peak is not None
    assert "no cached ceiling for the [1024,4096]x[4096,4096] MatMul" in result.peak["lookup"]
    assert any("using a [64,256]x[256,256] MatMul timed 0.1 s" in n for n in result.notes)


def _fake_measure_peak(*, shape: Any = DEFAULT_PEAK_SHAPE, seconds: float = 3.0, threads: int | None = None,
                       progress: Any = None, **_: Any) -> dict[str, Any]:
    """measure_peak's result without timing anything: ops/s grow with the shape, as real ceilings do."""
    import openvino as ov

    m, k, n = shape
    threads = threads or available_cores()
    ops = float(m * k * n)
    return {"key": peaks.peak_key(threads, shape, seconds), "cpu_model": cpu_model(),
            "openvino": ov.get_version(), "threads": threads, "shape": [m, k, n],
            "flops_per_inference": 2 * m * k * n, "seconds_per_precision": seconds, "date": "2026-01-01T00:00:00",
            **{p: {"ops_per_second": ops, "best_ops_per_second": ops, "verified": True, "exec_type": "fake",
                   "runtime_precision": "i8" if p == "int8" else "f32", "method": "fake"}
               for p in ("int8", "fp32")}}


def test_quick_peak_does_not_replace_the_real_ceiling(int8_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peaks, "measure_peak", _fake_measure_peak)
    cache = tmp_path / "cache"
    code, _out, err = run_cli("--peak", "--cache-dir", str(cache), "-q")  # the default shape, 3 s
    assert code == 0, err
    code, _out, err = run_cli("--peak", "--peak-shape", "64,64,64", "--peak-time", "0.1", "--cache-dir", str(cache),
                              "-q")
    assert code == 0, err
    entries = peaks.load_peaks(cache)
    assert sorted(e["shape"] for e in entries.values()) == [[64, 64, 64], list(DEFAULT_PEAK_SHAPE)]
    threads = BenchmarkOptions(peak=True).threads
    real = peaks.cached_peak(cache, threads)
    assert real is not None and real["shape"] == list(DEFAULT_PEAK_SHAPE)
    assert real["seconds_per_precision"] == 3.0 and real["lookup"].startswith("cached [1024,4096]x[4096,4096]")
    # a longer run of the default shape is preferred over a shorter one; other thread counts never match
    peaks.save_peak(cache, _fake_measure_peak(seconds=10.0, threads=threads))
    assert peaks.cached_peak(cache, threads)["seconds_per_precision"] == 10.0  # type: ignore[index]
    assert peaks.cached_peak(cache, threads + 1) is None
    # "% of peak" in a benchmark is taken against the default-shape ceiling, with no note about it
    options = BenchmarkOptions(model=int8_dir, variants=(Variant.INT8,), niter=2, rounds=1, warmup=0,
                               seq_len=(16,), cache_dir=cache)
    result = benchmark(options)
    assert result.peak is not None and result.peak["shape"] == list(DEFAULT_PEAK_SHAPE)
    e = result.configs[0].results["int8"]
    assert e.peak_ops_per_second == pytest.approx(1024 * 4096 * 4096)
    assert not any("ceiling" in n for n in result.notes)
    # with only a quick entry cached, it is used and the result says so
    quick_only = tmp_path / "quick"
    peaks.save_peak(quick_only, _fake_measure_peak(shape=(64, 64, 64), seconds=0.1, threads=threads))
    peak = peaks.cached_peak(quick_only, threads)
    assert peak is not None and peak["shape"] == [64, 64, 64]
    assert peak["lookup"].startswith("no cached ceiling for the [1024,4096]x[4096,4096] MatMul; using a "
                                     "[64,64]x[64,64] MatMul timed 0.1 s")


def test_pytorch_threads_follow_nthreads_or_openvinos_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import openvino as ov
    import openvino.opset13 as ops
    import torch

    x = ops.parameter([1, 4], ov.Type.f32, name="x")
    compiled = ov.Core().compile_model(ov.Model([ops.result(ops.relu(x))], [x], "t"), "CPU",
                                       {"PERFORMANCE_HINT": "LATENCY"})
    ov_threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))
    assert runners.ov_default_threads() == ov_threads
    assert 1 <= physical_cores() <= available_cores()

    class Tiny(torch.nn.Module):
        def forward(self, input_ids: Any) -> Any:
            return input_ids * 2

    feed = {"input_ids": np.ones((1, 4), dtype=np.int64), "attention_mask": np.ones((1, 4), dtype=np.int64)}
    before = torch.get_num_threads()
    monkeypatch.setattr(environment, "available_cores", lambda: 64)  # logical CPUs are not what OpenVINO uses
    try:
        torch.set_num_threads(max(1, ov_threads + 1))
        runner = runners.TorchRunner(Tiny(), feed, None)
        props = runner.compiled_properties()
        assert props["torch_num_threads"] == ov_threads == torch.get_num_threads()
        assert "OpenVINO's default" in props["torch_threads_from"]
        runner = runners.TorchRunner(Tiny(), feed, 1)  # -nthreads 1
        assert runner.compiled_properties()["torch_num_threads"] == 1
        assert runner.compiled_properties()["torch_threads_from"] == "-nthreads"
    finally:
        torch.set_num_threads(before)


def test_peak_int8_without_nncf_uses_fake_quantize() -> None:
    peak = peaks.measure_peak(shape=(64, 128, 128), seconds=0.05, use_nncf=False)
    assert peak["int8"]["method"].startswith("FakeQuantize")
    assert peak["int8"]["verified"] and peak["int8"]["ops_per_second"] > 0


def test_async_json_shape_and_load_config(int8_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"CPU": {"NUM_STREAMS": "1"}}))
    code, stdout, stderr = run_cli(str(int8_dir), "--variants", "int8,int8-sparse", "-api", "async",
                                   "-nireq", "2", "-niter", "8", "--rounds", "2", "-shape", "[1,16]",
                                   "-load_config", str(cfg_file), "-json_stats", "--no-plots",
                                   "--cache-dir", str(cache_dir),
                                   "--output-dir", str(tmp_path / "out"))
    assert code == 0, stderr
    result = BenchmarkResult.from_dict(json.loads(stdout))  # -json_stats: JSON on stdout, table on stderr
    assert "int8-sparse" in stderr
    assert result.api == "async" and result.baseline == "int8"
    assert any("baseline is int8" in n for n in result.notes)
    (cfg,) = result.configs
    e = cfg.results["int8-sparse"]
    assert e.compiled["nireq"] == 2 and e.compiled["NUM_STREAMS"] == "1"
    assert e.compiled["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert e.iterations == 8
    assert e.speedup is not None
    assert e.speedup.overall == pytest.approx(e.throughput / cfg.results["int8"].throughput)
    assert not (tmp_path / "out" / "latency.png").exists()


def test_ir_only_machine_path(int8_dir: Path, cache_dir: Path, full_run: dict[str, Any], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """What a lent Xeon with only openvino sees: no torch, no source checkpoint, a given FP32 IR."""
    fp32 = next((cache_dir / "ir").glob("*-fp32-*"))  # converted by full_run from the report's source_path
    monkeypatch.setattr(planning, "_torch_missing", lambda: "torch is not installed here")
    options = BenchmarkOptions(model=int8_dir, variants=(Variant.PYTORCH_FP32, Variant.OV_FP32, Variant.INT8),
                               fp32_ir=fp32, niter=2, rounds=1, warmup=0, seq_len=(16,), cache_dir=cache_dir)
    result = benchmark(options)
    assert result.skipped["pytorch-fp32"] == "torch is not installed here"
    assert result.baseline == "ov-fp32"
    assert list(result.configs[0].results) == ["ov-fp32", "int8"]


def test_crash_probe_skips_a_variant_whose_child_crashed(int8_dir: Path, cache_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from pofa_deploy import probe

    monkeypatch.setenv("POFA_CACHE_DIR", str(tmp_path / "probe-cache"))
    # POFA_PROBE=all: every OpenVINO variant is probed first, and still runs when the child survives
    monkeypatch.setenv(probe.PROBE_ENV, "all")
    options = BenchmarkOptions(model=int8_dir, variants=(Variant.INT8,), niter=2, rounds=1, warmup=0,
                               seq_len=(16,), cache_dir=cache_dir)
    assert list(benchmark(options).configs[0].results) == ["int8"]
    # a child killed by SIGSEGV (what OpenVINO 2026.4's sparse kernels did at batch 1 x 16 on an AMX CPU)
    monkeypatch.setattr(probe, "_child_command", lambda *a: [
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    options = dataclasses.replace(options, seq_len=(17,))  # a shape whose verdict is not cached yet
    result = benchmark(options)
    assert "int8" not in result.configs[0].results
    assert "crashed (SIGSEGV)" in result.configs[0].skipped["int8"]
    assert "1 x 17 tokens" in result.configs[0].skipped["int8"]
    assert any("SIGSEGV" in note for note in result.notes)


def test_sparse_rate_one_is_off(int8_dir: Path, cache_dir: Path) -> None:
    options = BenchmarkOptions(model=int8_dir, variants=(Variant.INT8, Variant.INT8_SPARSE), niter=1, rounds=1,
                               warmup=0, seq_len=(32,), cache_dir=cache_dir, sparse_rate=1.0)
    result = benchmark(options)
    assert "is off" in result.skipped["int8-sparse"] and list(result.configs[0].results) == ["int8"]


# -- bad input: one line, exit code 2, the flag and the fix named ------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["{missing}"], "MODEL {missing}: no such folder"),
    (["{ckpt}"], "no OpenVINO IR here"),
    (["{ir}", "-t", "0"], "-t/--time must be a positive number"),
    (["{ir}", "-t", "-2"], "-t/--time must be a positive number"),
    (["{ir}", "-niter", "0"], "-niter/--niter must be a positive integer"),
    (["{ir}", "--rounds", "-1"], "--rounds must be a positive integer"),
    (["{ir}", "--seq-len", "16,4096"], "--seq-len 4096 exceeds the model's max_position_embeddings (128"),
    (["{ir}", "-shape", "[1,4096]"], "exceeds the model's max_position_embeddings"),
    (["{ir}", "-shape", "[1,two]"], "-shape '[1,two]': expected one static [BATCH,SEQ_LEN]"),
    (["{ir}", "-b", "0"], "-b/--batch values must be positive integers"),
    (["{ir}", "-api", "fast"], "must be one of sync, async; got 'fast'"),
    (["{ir}", "-hint", "speed"], "must be one of latency, throughput, none; got 'speed'"),
    (["{ir}", "--variants", "int8,int4"], "--variants must be one of pytorch-fp32"),
    (["{ir}", "--variants", "int8-dense"], "int8-dense needs --dense MODEL"),
    (["{ir}", "-t", "1", "-niter", "5"], "give -t/--time or -niter/--niter, not both"),
    (["{ir}", "-latency_percentile", "101"], "must be in 1..100"),
    (["{ir}", "-load_config", "{missing}"], "-load_config {missing}: no such file"),
    (["{ir}", "--sparse-rate", "2"], "--sparse-rate must be in (0, 1]"),
    (["{ir}", "--fp32-ir", "{ckpt}", "--variants", "ov-fp32"], "--fp32-ir {ckpt}: no OpenVINO IR there"),
    (["{ir}", "--dense", "{missing}"], "--dense {missing}: neither a converted folder"),
    (["{ir}", "--baseline", "ov-fp32", "--variants", "int8"], "--baseline ov-fp32 does not run here"),
    ([], "MODEL is missing"),
])
def test_bad_input_is_one_line(args: list[str], expected: str, int8_dir: Path,
                               tiny_checkpoint: Callable[..., Path], tmp_path: Path, cache_dir: Path) -> None:
    ckpt = tiny_checkpoint("distilbert")
    values = {"ir": str(int8_dir), "ckpt": str(ckpt), "missing": str(tmp_path / "nope")}
    args = [a.format(**values) for a in args]
    code, stdout, stderr = run_cli(*args, "--cache-dir", str(cache_dir))
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pofa-deploy: error: "), stderr
    assert expected.format(**values) in lines[0]
    assert stdout == ""


def test_unknown_load_config_property_is_one_line(int8_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"CPU": {"BOGUS_KEY": "1"}}))
    code, stdout, stderr = run_cli(str(int8_dir), "-load_config", str(bogus), "-t", "1", "-q",
                                   "--cache-dir", str(cache_dir))
    assert code == 2 and stdout == "", stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith(f"pofa-deploy: error: -load_config {bogus}: ") and "'BOGUS_KEY'" in line
    assert "NUM_STREAMS" in line  # the settable properties are listed
    bad_value = tmp_path / "bad.json"
    bad_value.write_text(json.dumps({"CPU": {"NUM_STREAMS": "abc"}}))
    with pytest.raises(InputError, match=r"-load_config .*bad\.json: the CPU plugin refuses .*abc"):
        planning.load_config_file(bad_value)
    fine = tmp_path / "fine.json"
    fine.write_text(json.dumps({"CPU": {"NUM_STREAMS": "1", "CACHE_DIR": str(tmp_path / "ov-cache")}}))
    assert planning.load_config_file(fine)["NUM_STREAMS"] == "1"  # accepted though not in SUPPORTED_PROPERTIES


@pytest.mark.parametrize(("damage", "needle"), [
    ("truncate-bin", "openvino_model.bin: missing, truncated or corrupt weights"),
    ("truncate-xml", "openvino_model.xml: truncated or corrupt IR XML"),
    ("random-xml", "openvino_model.xml: not an OpenVINO IR"),
])
def test_corrupt_ir_is_one_line(damage: str, needle: str, int8_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "ir"
    shutil.copytree(int8_dir, folder)
    part = folder / ("openvino_model.bin" if damage.endswith("bin") else "openvino_model.xml")
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2] if damage.startswith("truncate")
                     else np.random.default_rng(0).bytes(len(data)))
    code, stdout, stderr = run_cli(str(folder), "--variants", "int8", "-niter", "2", "--rounds", "1", "-q",
                                   "--no-plots", "--cache-dir", str(cache_dir), "--output-dir", str(tmp_path / "o"))
    assert code == 4 and stdout == "", stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("pofa-deploy: error: ") and needle in line, line


# -- parity with benchmark_app (minutes; `pytest -m slow`) -------------------------------------------


def _compare_module() -> Any:
    spec = importlib.util.spec_from_file_location("compare_benchmark_app", ROOT / "benchmarks"
                                                  / "compare_benchmark_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_parity_with_benchmark_app(int8_dir: Path, cache_dir: Path) -> None:
    compare = _compare_module()
    # batch 8 x 128 tokens: a millisecond-scale inference, so neither tool's Python loop overhead matters
    report = compare.compare(int8_dir, seq_len=128, batch=8, seconds=5.0, variant="int8-sparse", repeats=2,
                             cache_dir=cache_dir)
    assert report["agree"], json.dumps(report, indent=2)
    for key in ("median_latency_ms", "throughput"):
        assert 0.9 <= report["ratios"][key] <= 1.1, report


# -- pofa-deploy's own sparse kernel, and "as on a Xeon without AMX" ------------------------------------


def test_pofa_sparse_variant_runs_the_extension(int8_dir: Path, cache_dir: Path) -> None:
    options = BenchmarkOptions(model=int8_dir, variants=(Variant.INT8, Variant.INT8_POFA_SPARSE), niter=4, rounds=2,
                               warmup=0, seq_len=(32,), batch=(1, 2), cache_dir=cache_dir)
    result = benchmark(options)
    assert result.variants["int8-pofa-sparse"].path.endswith("openvino_model_sparse.xml")
    for cfg in result.configs:
        assert list(cfg.results) == ["int8", "int8-pofa-sparse"]
        pofa = cfg.results["int8-pofa-sparse"]
        assert pofa.iterations == 4 and pofa.speedup is not None and pofa.speedup.rounds == 2
        # credited the dense-equivalent work of the same model, so ops/s compare with int8's
        assert pofa.flops == cfg.results["int8"].flops
        # OpenVINO's own decompression stays off in both: they differ only in the sparse Linears
        assert "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE" not in result.variants["int8-pofa-sparse"].config


def test_pofa_sparse_variant_is_skipped_without_the_file(tmp_path: Path, int8_dir: Path, cache_dir: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(int8_dir, copy, ignore=shutil.ignore_patterns("openvino_model_sparse.*", "benchmark"))
    options = BenchmarkOptions(model=copy, variants=(Variant.INT8, Variant.INT8_POFA_SPARSE), niter=1, rounds=1,
                               warmup=0, seq_len=(32,), cache_dir=cache_dir)
    result = benchmark(options)
    assert "no openvino_model_sparse.xml" in result.skipped["int8-pofa-sparse"]


def test_isa_cap_runs_every_variant_in_a_capped_child(int8_dir: Path, cache_dir: Path) -> None:
    options = BenchmarkOptions(model=int8_dir, variants=(Variant.INT8, Variant.INT8_SPARSE, Variant.INT8_POFA_SPARSE),
                               niter=2, rounds=1, warmup=0, seq_len=(32,), cache_dir=cache_dir, isa="avx512_vnni")
    result = benchmark(options)
    # the child set the cap before OpenVINO loaded; its environment record says so
    assert result.environment["onednn_max_cpu_isa"] == "AVX512_CORE_VNNI"
    assert result.options["isa"] == "avx512_vnni"
    assert "fails to compile" in result.skipped["int8-sparse"]
    assert list(result.configs[0].results) == ["int8", "int8-pofa-sparse"]
    for name in ("int8", "int8-pofa-sparse"):
        assert result.variants[name].config["INFERENCE_PRECISION_HINT"] == "f32"
        assert result.configs[0].results[name].compiled["INFERENCE_PRECISION_HINT"] == "f32"
    assert any("ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI" in note for note in result.notes)


def test_a_throughput_tuned_folder_does_not_give_its_streams_to_a_sync_run(tmp_path: Path) -> None:
    """tune --objective throughput writes PERFORMANCE_HINT=THROUGHPUT and NUM_STREAMS; a sync (latency) run
    of that folder must not inherit the streams, an async (throughput) run keeps them, -nstreams wins."""
    from pofa_deploy.bench.options import Api

    tuned = {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": "2", "PERFORMANCE_HINT_NUM_REQUESTS": "4"}
    source = planning.Source(variant=Variant.INT8, xml=tmp_path / "m.xml", config=tuned)
    sync = runners.ov_config(source, BenchmarkOptions(model=str(tmp_path)), {}, Api.SYNC)
    assert sync["PERFORMANCE_HINT"] == "LATENCY" and "NUM_STREAMS" not in sync
    assert "PERFORMANCE_HINT_NUM_REQUESTS" not in sync
    asynchronous = runners.ov_config(source, BenchmarkOptions(model=str(tmp_path)), {}, Api.ASYNC)
    assert asynchronous["NUM_STREAMS"] == "2" and asynchronous["PERFORMANCE_HINT_NUM_REQUESTS"] == "4"
    forced = runners.ov_config(source, BenchmarkOptions(model=str(tmp_path), nstreams=3), {}, Api.SYNC)
    assert forced["NUM_STREAMS"] == "3"
