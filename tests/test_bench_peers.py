"""The benchmark's peers (ort-fp32, ort-int8: ONNX Runtime on the source checkpoint exported to ONNX) in the
same interleaved rounds as the OpenVINO variants, the per-variant build cost (compile time, first
inference, peak RSS), the export's agreement with PyTorch, and the skip reasons. A few iterations: these
tests check behaviour, never speed."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pofa_deploy import cli
from pofa_deploy.bench import BenchmarkOptions, Variant
from pofa_deploy.bench import onnx_export as ox
from pofa_deploy.bench import plan as planning
from pofa_deploy.bench.result import DEFINITIONS, BenchmarkResult, VariantResult
from pofa_deploy.bench.runners import ov_default_threads
from pofa_deploy.ir import REPORT_FILE
from pofa_deploy.progress import silent

PEERS = ["ort-fp32", "ort-int8"]
needs_ort = pytest.mark.skipif(ox.ort_missing() is not None,
                               reason=f"the peers extra is not installed ({ox.ort_missing()})")


@pytest.fixture(scope="module")
def int8_dir(tiny_int8: Callable[..., Path]) -> Path:
    return tiny_int8("distilbert", seq_len=32)


@pytest.fixture(scope="module")
def peers_run(int8_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("peers-out")
    cache = tmp_path_factory.mktemp("peers-cache")
    out_text, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out_text), contextlib.redirect_stderr(err):
        code = cli.main(["benchmark", str(int8_dir), "--variants", "int8,ort-fp32,ort-int8", "-niter", "4",
                         "--rounds", "2", "--warmup", "1", "--seq-len", "32", "-b", "1", "--no-plots",
                         "--cache-dir", str(cache), "--output-dir", str(out)])
    assert code == 0, err.getvalue()
    raw = json.loads((out / "benchmark.json").read_text())
    return {"out": out, "cache": cache, "stdout": out_text.getvalue(), "raw": raw,
            "result": BenchmarkResult.from_dict(raw)}


@needs_ort
def test_peers_run_interleaved_with_figures(peers_run: dict[str, Any]) -> None:
    result: BenchmarkResult = peers_run["result"]
    assert list(result.variants) == ["int8", *PEERS]
    assert result.variants["ort-fp32"].path.endswith(ox.FP32_FILE)
    assert result.variants["ort-int8"].path.endswith(ox.INT8_FILE)
    cfg = result.configs[0]
    assert [s.variant for s in cfg.schedule] == ["int8", *PEERS] * 2
    for name in PEERS:
        e = cfg.results[name]
        assert e.iterations == 4 and e.latency_ms.median > 0 and e.throughput > 0
        assert e.speedup is not None and e.speedup.baseline == "int8"
        assert e.compiled["ort_intra_op_num_threads"] == ov_default_threads()
        assert e.compiled["ort_inter_op_num_threads"] == 1
        assert e.peak_precision in (None, "fp32" if name == "ort-fp32" else "int8")
    # the export and quantisation are cached, keyed on the checkpoint
    done = next((peers_run["cache"] / "onnx").glob(f"*/{ox.DONE_FILE}"))
    assert {ox.FP32_FILE, ox.INT8_FILE} <= {p.name for p in done.parent.iterdir()}


@needs_ort
def test_every_variant_records_build_cost(peers_run: dict[str, Any]) -> None:
    raw_results = peers_run["raw"]["configs"][0]["results"]
    for name, e in peers_run["result"].configs[0].results.items():
        assert e.compile_s is not None and e.compile_s > 0, name
        assert e.first_inference_ms > 0
        assert e.peak_rss_mb is not None and e.peak_rss_mb > 0
        assert e.rss_increase_mb is not None and 0 <= e.rss_increase_mb <= e.peak_rss_mb
        assert {"compile_s", "peak_rss_mb", "rss_increase_mb"} <= set(raw_results[name])
    assert {"compile_s", "peak_rss_mb", "rss_increase_mb", "first_inference_ms"} <= set(DEFINITIONS)
    assert "build and memory" in peers_run["stdout"]
    rows = list(csv.DictReader((peers_run["out"] / "benchmark.csv").open()))
    assert [r["variant"] for r in rows] == ["int8", *PEERS]
    assert all(float(r["compile_s"]) > 0 and float(r["peak_rss_mb"]) > 0 for r in rows)
    assert "Build and memory" in (peers_run["out"] / "benchmark.md").read_text()


def test_results_without_build_cost_still_read() -> None:
    """benchmark.json files written before compile_s/peak RSS existed read back with None."""
    entry = {"first_inference_ms": 1.0, "compiled": {}, "flops": None, "iterations": 1, "seconds": 0.1,
             "throughput": 10.0, "inferences_per_second": 10.0,
             "latency_ms": {"count": 1, "min": 1.0, "median": 1.0, "mean": 1.0, "p90": 1.0, "p99": 1.0,
                            "max": 1.0, "std": 0.0},
             "rounds_detail": [], "latency_quantiles_ms": [1.0]}
    old = VariantResult.from_dict(entry)
    assert old.compile_s is None and old.peak_rss_mb is None and old.rss_increase_mb is None
    assert "compile_s" not in old.to_dict()


@needs_ort
@pytest.mark.parametrize("arch", ["distilbert", "bert"])
def test_onnx_export_agrees_with_pytorch(arch: str, tiny_checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    """Dynamic batch and sequence axes: the FP32 export matches PyTorch at several shapes, the INT8 one
    picks the same class wherever the FP32 logits are not a near-tie."""
    import torch

    from pofa_deploy.bench.inputs import feed_for_torch
    from pofa_deploy.bench.runners import load_torch_model

    model = load_torch_model(tiny_checkpoint(arch))
    fp32, int8 = tmp_path / ox.FP32_FILE, tmp_path / ox.INT8_FILE
    inputs = ox.export_fp32(model, fp32)
    assert ("token_type_ids" in inputs) == (arch == "bert")
    ox.quantize_int8(fp32, int8)
    sessions = [ox.ort_session(p, threads=1) for p in (fp32, int8)]
    assert [o.name for o in sessions[0].get_outputs()] == ["logits"]
    for batch, seq_len in ((1, 8), (3, 32), (2, 64)):
        feed = feed_for_torch(tiny_checkpoint(arch), batch, seq_len)
        with torch.inference_mode():
            ref = model(**{k: torch.from_numpy(v) for k, v in feed.items() if k in inputs}).logits.numpy()
        got = sessions[0].run(None, ox.session_feed(sessions[0], feed))[0]
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
        assert (got.argmax(-1) == ref.argmax(-1)).all()
        q = sessions[1].run(None, ox.session_feed(sessions[1], feed))[0]
        assert q.shape == ref.shape and np.abs(q - ref).max() < 0.1
        top2 = np.sort(ref, axis=-1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * np.abs(q - ref).max()
        assert (q.argmax(-1) == ref.argmax(-1))[clear].all()


def _plan(folder: Path, cache: Path, variants: tuple[Variant, ...] = (Variant.INT8, *map(Variant, PEERS))
          ) -> planning.Plan:
    return planning.plan(BenchmarkOptions(model=folder, variants=variants, niter=2, cache_dir=cache), say=silent)


def test_skip_reason_when_onnxruntime_missing(int8_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    the_plan = _plan(int8_dir, tmp_path)
    assert list(the_plan.sources) == [Variant.INT8]
    for v in PEERS:
        assert the_plan.skipped[Variant(v)] == "onnxruntime is not installed: pip install -e .[peers]"
    assert not (tmp_path / "onnx").exists()  # nothing exported


def test_skip_reason_when_source_checkpoint_missing(int8_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "moved"
    shutil.copytree(int8_dir, folder)
    report = json.loads((folder / REPORT_FILE).read_text())
    report["source_path"] = report["source"] = str(tmp_path / "gone")
    (folder / REPORT_FILE).write_text(json.dumps(report))
    the_plan = _plan(folder, tmp_path / "cache")
    assert list(the_plan.sources) == [Variant.INT8]
    for v in PEERS:
        reason = the_plan.skipped[Variant(v)]
        assert "source checkpoint is not here" in reason and "gone" in reason, reason


def test_peers_run_only_when_listed(int8_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_conversion(*_args: Any, **_kwargs: Any) -> Path:
        raise ImportError("not in this test")

    monkeypatch.setattr(planning, "_convert_cached", no_conversion)  # ov-fp32/ov-bf16: skipped, not converted
    the_plan = _plan(int8_dir, tmp_path, variants=())
    assert not set(the_plan.sources) & {Variant(v) for v in PEERS}
    assert not set(the_plan.skipped) & set(PEERS)
    assert not (tmp_path / "onnx").exists()
