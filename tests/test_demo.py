"""The README's main job, end to end on the real all-MiniLM-L6-v2 (shipped by PyPI), kept short."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pofa_deploy.demo import DemoOptions, main, run_demo
from pofa_deploy.errors import InputError, OutputExistsError


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "out"
    result = run_demo(DemoOptions(output=out, seq_len=32, iterations=2, rounds=2), say=lambda _m: None)
    return out, result


def test_demo_keeps_every_zero_and_reports_spread(demo: tuple[Path, dict]) -> None:
    out, result = demo
    assert json.loads((out / "demo_report.json").read_text()) == result
    assert result["zero_check"]["zeros_lost"] == 0 and result["zero_check"]["zeros_before"] > 0
    # auto writes a rate only where decompression measured faster on this machine; the reason is recorded
    assert result["sparse_decision"].startswith("off:" if result["sparse_rate"] is None else "on:")
    if result["sparse_rate"] is not None:
        assert 0.85 <= result["sparse_rate"] <= 0.9
    speedup = result["latency"]["speedup"]
    assert speedup["rounds"] == 2 and speedup["min"] <= speedup["median"] <= speedup["max"]
    assert all(ms > 0 for ms in result["latency"]["median_ms"].values())
    q = result["embedding_quality"]
    # INT8 must track its own FP32 model far more closely than pruning tracks the dense original
    assert q["int8_ir_vs_fp32_sparse_cosine"]["mean"] > 0.95
    assert q["int8_ir_vs_fp32_sparse_cosine"]["mean"] > q["fp32_sparse_vs_fp32_dense_cosine"]["mean"]
    assert (out / "pruned-checkpoint" / "config.json").is_file() and (out / "int8-ir" / "openvino_model.xml").is_file()
    # the IR's report names the checkpoint where it ended up, not the staging folder it was converted from
    source = json.loads((out / "int8-ir" / "pofa_report.json").read_text())["source_path"]
    assert Path(source) == (out / "pruned-checkpoint").resolve() and Path(source).is_dir()


def test_demo_guards(demo: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = demo
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(OutputExistsError):
        main(DemoOptions(output=out, seq_len=32, iterations=1, rounds=1))
    assert sorted(p.name for p in out.iterdir()) == before
    with pytest.raises(InputError, match="--rounds"):
        DemoOptions(output=out, rounds=0)
