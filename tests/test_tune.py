"""pofa-deploy tune on a tiny converted model: what it writes, --dry-run, load() following it, the
simpler-wins rule (synthetic timings) and bad input. Durations are a few milliseconds: these tests check
behaviour, never speed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_run import runner

from pofa_deploy.bench.stats import beyond_noise, simplest_unbeaten
from pofa_deploy.runtime_config import RUNTIME_CONFIG

QUICK = ("-t", "0.02", "--rounds", "2", "-q")


run_cli = runner("tune")


@pytest.fixture(scope="module")
def converted(tiny_int8: Callable[..., Path]) -> Path:
    return tiny_int8("distilbert", seq_len=16)


@pytest.fixture
def folder(converted: Path, tmp_path: Path) -> Path:
    """A private copy, so tests that write into it do not see each other's files."""
    return Path(shutil.copytree(converted, tmp_path / "out"))


def test_tune_writes_config_previous_config_and_report(folder: Path) -> None:
    before = (folder / RUNTIME_CONFIG).read_text()
    code, stdout, stderr = run_cli(str(folder), *QUICK, "--verify")
    assert code == 0, stderr
    assert "WINNER" in stdout and "wrote" in stdout
    assert (folder / "runtime_config.prev.json").read_text() == before
    report = json.loads((folder / "tune_report.json").read_text())
    for key in ("schema", "model_file", "properties", "candidates", "environment", "winner", "verify"):
        assert key in report, key
    assert json.loads((folder / RUNTIME_CONFIG).read_text()) == {"CPU": report["properties"]}
    env = report["environment"]
    for key in ("cpu_model", "cpu_flags", "amx", "cores_available", "versions", "date"):
        assert key in env, key
    ran = [c for c in report["candidates"] if not c["skipped"]]
    assert len(ran) >= 1 and all(len(c["per_round"]) == 2 and c["p99_ms"] > 0 for c in ran)
    if len(ran) > 1:  # --verify re-timed the winner against every rejected candidate
        v = report["verify"]
        assert set(v["every"]) == {c["name"] for c in ran} - {report["winner"]}
        assert all(s["median"] > 0 and s["rounds"] == 2 for s in v["every"].values())
        assert v["no_slower_than_any_rejected"] == (v["every"][v["worst"]]["median"] >= 0.97)
        assert "timed again against every rejected candidate" in stdout
    assert not list(folder.glob(".*.tmp"))


def test_dry_run_writes_nothing(folder: Path) -> None:
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    code, stdout, stderr = run_cli(str(folder), *QUICK, "--dry-run")
    assert code == 0, stderr
    assert "nothing written" in stdout
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before


def test_throughput_candidates_carry_streams_requests_and_batch(folder: Path) -> None:
    from pofa_deploy.tune import TuneOptions, tune

    report = tune(TuneOptions(out=folder, objective="throughput", batch=(1, 2), time=0.02, rounds=2,
                              latency_budget=1e6, dry_run=True, quiet=True))
    ran = [c for c in report["candidates"] if not c["skipped"]]
    assert all(c["fits_budget"] for c in ran)
    assert {c["batch"] for c in ran} == {1, 2}
    assert all(c["streams"] and c["properties"]["NUM_STREAMS"] == str(c["streams"]) for c in ran)
    assert report["properties"]["PERFORMANCE_HINT"] == "THROUGHPUT"
    # in-flight requests are a dimension too: one and two per stream, and the winner's count is recorded
    assert {c["nireq"] // c["streams"] for c in ran} == {1, 2}
    assert report["nireq"] in {c["nireq"] for c in ran}


def test_load_follows_tune_report(folder: Path) -> None:
    from pofa_deploy.runtime import SPARSE_IR_FILE, load

    if not (folder / SPARSE_IR_FILE).is_file():
        pytest.skip(f"convert wrote no {SPARSE_IR_FILE} here (extension not built)")
    report = {"schema": "pofa-deploy.tune/1", "model_file": SPARSE_IR_FILE, "winner": "int8-pofa-sparse f32",
              "variant": "int8-pofa-sparse", "properties": {"INFERENCE_PRECISION_HINT": "f32"}}
    (folder / "tune_report.json").write_text(json.dumps(report))
    loaded = load(folder)
    assert loaded.xml == folder / SPARSE_IR_FILE and loaded.model_file == SPARSE_IR_FILE
    assert any("tune_report.json" in n for n in loaded.notes)
    assert load(folder, sparse_kernel=False).model_file == "openvino_model.xml"  # an explicit choice wins
    report["model_file"] = "openvino_model.xml"
    (folder / "tune_report.json").write_text(json.dumps(report))
    assert load(folder).model_file == "openvino_model.xml"


def test_simpler_candidate_wins_within_the_noise() -> None:
    # latency per round (ms), simplest first; "b" is 1% faster but noisy: within the noise of "a"
    noisy = {"a": [10.0, 10.0, 10.0, 10.0, 10.0], "b": [9.5, 10.4, 9.8, 10.3, 9.5]}
    assert simplest_unbeaten(noisy, higher_is_better=False) == "a"
    # "b" faster in every round: it beats the simpler one beyond the noise
    clear = {"a": [10.0, 10.1, 9.9, 10.0, 10.2], "b": [8.0, 8.1, 8.2, 7.9, 8.0]}
    assert simplest_unbeaten(clear, higher_is_better=False) == "b"
    # throughput: higher is better, same two directions
    assert simplest_unbeaten({"a": [100.0] * 5, "b": [101.0, 99.0, 100.5, 99.5, 100.0]}, higher_is_better=True) == "a"
    assert simplest_unbeaten({"a": [100.0] * 5, "b": [130.0, 128.0, 131.0, 129.0, 130.0]},
                             higher_is_better=True) == "b"
    assert beyond_noise([1.2, 1.1, 1.3]) and not beyond_noise([0.9, 1.1, 1.3, 0.95])


def _one_line_error(code: int, stderr: str) -> None:
    assert code != 0
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("pofa-deploy: error:")


def test_never_converted_folder(tmp_path: Path) -> None:
    code, _out, err = run_cli(str(tmp_path), *QUICK)
    _one_line_error(code, err)
    assert "not a converted folder" in err


def test_unknown_objective(folder: Path) -> None:
    code, _out, err = run_cli(str(folder), "--objective", "fastest")
    _one_line_error(code, err)
    assert "--objective" in err


def test_impossible_budget_names_the_best_and_its_p99(folder: Path) -> None:
    code, _out, err = run_cli(str(folder), *QUICK, "--latency-budget", "0.000001", "-b", "1")
    _one_line_error(code, err)
    assert "no candidate meets it; the best is" in err and "p99" in err
    assert not (folder / "tune_report.json").exists()



def test_benchmark_flags_the_tuned_variant(folder: Path, tmp_path: Path) -> None:
    from pofa_deploy.bench import BenchmarkOptions, Variant
    from pofa_deploy.bench.run import benchmark

    code, _out, stderr = run_cli(str(folder), *QUICK)
    assert code == 0, stderr
    tuned = json.loads((folder / "tune_report.json").read_text())
    result = benchmark(BenchmarkOptions(model=folder, variants=(Variant(tuned["variant"]),), niter=2, rounds=1,
                                        warmup=0, seq_len=(16,), cache_dir=tmp_path / "cache"))
    assert result.variants[tuned["variant"]].tuned
    assert result.variants[tuned["variant"]].to_dict()["tuned"] is True
    assert any(n.startswith(f"tuned: {tuned['winner']}") for n in result.notes)
