"""The benchmark scripts still run (each in its --smoke mode, seconds): they are not timed here, only
kept from rotting between the sessions that measure with them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ext_built() -> None:
    from pofa_deploy import extension as ext

    ext.build_extension()


@pytest.mark.parametrize("script", ["layer_bench.py", "cold_weights.py", "qkv_fusion_estimate.py"])
def test_script_smoke(script: str, tmp_path: Path, ext_built: None) -> None:
    out = tmp_path / "report.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--isa", "native",
                          "-t", "1", "-o", str(out)], cwd=ROOT / "benchmarks", capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["command"][1].endswith(script)
    assert report["results"], "the report has no results"


def test_layer_bench_cpp_harness(tmp_path: Path, ext_built: None) -> None:
    """--harness cpp compiles infer_loop.cpp against the openvino wheel and times both layers from C++; the
    report says which harness timed it. Without a compiler: one line naming it, exit 2."""
    script = [sys.executable, str(ROOT / "benchmarks" / "layer_bench.py"), "--smoke", "--isa", "native", "-t", "1"]
    out = tmp_path / "report.json"
    run = subprocess.run([*script, "--harness", "cpp", "-o", str(out)], cwd=ROOT / "benchmarks", capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["harness"] == "cpp"
    assert all(r["dense_ms"] > 0 and r["sparse_ms"] > 0 for r in report["results"]) and report["results"]
    missing = subprocess.run([*script, "--harness", "cpp"], cwd=ROOT / "benchmarks", capture_output=True, text=True,
                             timeout=300, env={**os.environ, "CXX": str(tmp_path / "no-such-compiler")})
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "no-such-compiler" in missing.stderr, missing.stderr[-2000:]


def test_library_ab_labels_and_env(tiny_int8, tmp_path: Path, ext_built: None) -> None:
    """library_ab.py times one library under two labels in alternating children and reports both; --env
    reaches its label's child (a bad POFA_SPARSE_KERNEL there fails that child, in one line); a malformed
    --env is refused before anything runs."""
    from pofa_deploy import extension as ext

    out, lib = tiny_int8(), str(ext.extension_path())
    script = [sys.executable, str(ROOT / "benchmarks" / "library_ab.py"), str(out), "--isa", "native", "-t", "1",
              "--seq-len", "16", "--rounds", "2", "--iters", "2", "--libs", f"a={lib}", f"b={lib}"]
    report = tmp_path / "report.json"
    run = subprocess.run([*script, "--env", "b:POFA_SPARSE_KERNEL=generic", "-o", str(report)], cwd=ROOT / "benchmarks",
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["env"] == {"a": {}, "b": {"POFA_SPARSE_KERNEL": "generic"}}
    assert all(len(data["per_round_ms"][label]["sparse"]) == 2 for label in ("a", "b"))
    # the round trip is read where two CPUs and a C++ compiler are (as ab_common.cxx_compiler looks for one)
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    measurable = len(os.sched_getaffinity(0)) > 1 and compiler is not None
    trips = data["roundtrip_ns_before_round"]
    assert len(trips) == 2
    assert all(t is not None and t > 0 for t in trips) if measurable else all(t is None for t in trips), trips
    bad = subprocess.run([*script, "--no-roundtrip", "--env", "b:POFA_SPARSE_KERNEL=fastest"], cwd=ROOT / "benchmarks",
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "the child for b failed" in bad.stderr and "POFA_SPARSE_KERNEL must be" in bad.stderr
    assert bad.stderr.count("\n") == 1, bad.stderr[-2000:]
    malformed = subprocess.run([*script, "--env", "c:X=1"], cwd=ROOT / "benchmarks", capture_output=True, text=True,
                               timeout=300)
    assert malformed.returncode == 1 and "--env c:X=1: give LABEL:VAR=VALUE" in malformed.stderr


def test_kernel_loop_smoke(tmp_path: Path) -> None:
    """kernel_loop.py compiles its loops with the VNNI kernel and runs them; on a CPU without AVX-512 VNNI it
    must say so in one line and exit 2 (asserted on every machine: which branch runs is the CPU's)."""
    from pofa_deploy.environment import cpu_flags

    out = tmp_path / "report.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kernel_loop.py"), "--smoke", "-o", str(out)],
                         cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=300)
    if "avx512_vnni" not in cpu_flags():
        assert run.returncode == 2 and "no AVX-512 VNNI" in run.stderr, run.stderr[-2000:]
        return
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["command"][1].endswith("kernel_loop.py")
    phases = {row["phase"] for row in report["results"]}
    assert len(phases) == 4 and all(row["best_us"] > 0 for row in report["results"])
    assert {row["instruction"] for row in report["ports"]} >= {"vpdpbusd", "vpunpcklbw (in-lane interleave)"}
    assert all(row["ns_per_instruction"] > 0 for row in report["ports"])
    # two CPUs here or not, the report says (a one-CPU machine has no round trip to time)
    trips = report["roundtrip_before_after"]
    assert len(trips) == (2 if len(os.sched_getaffinity(0)) > 1 else 0)
    assert all(row["median_ns"] > 0 and row["cpus"][0] != row["cpus"][1] for row in trips)


def test_kernel_loop_refuses_a_cpu_without_vnni(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The guard of the test above, made to fire here whatever this CPU has."""
    import importlib.util

    from pofa_deploy import environment

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as when run as a script: ab_common beside it
    spec = importlib.util.spec_from_file_location("kernel_loop", ROOT / "benchmarks" / "kernel_loop.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert module.main(["--smoke"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no AVX-512 VNNI" in err
