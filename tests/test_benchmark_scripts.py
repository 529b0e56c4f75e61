"""The benchmark scripts still run (each in its --smoke mode, seconds): they are not timed here, only
kept from rotting between the sessions that measure with them."""

from __future__ import annotations

import json
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
