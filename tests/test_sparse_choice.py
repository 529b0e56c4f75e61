"""`--sparse-rate auto` decides by measurement: the rule, the wiring, and what this machine says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pofa_deploy import sparse_choice
from pofa_deploy.convert import ConvertOptions, convert
from pofa_deploy.environment import has_amx
from pofa_deploy.runtime import SparseStatus
from pofa_deploy.sparse_choice import PairTiming, decide


@pytest.fixture(scope="module")
def xml(tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("choice") / "out"
    convert(ConvertOptions(model=str(tiny_checkpoint("bert")), output=out, int8=True, samples=8, holdout=0,
                           seq_len=32, sparse_rate="off"))
    return out / "openvino_model.xml"


def _timing(batch: int, q1: float, median: float) -> PairTiming:
    return PairTiming(batch, 32, [1.0], [1.0], {"median": median, "q1": q1, "q3": median, "min": q1,
                                                "max": median, "rounds": 7})


def test_faster_beyond_noise_needs_the_lower_quartile_above_one() -> None:
    assert _timing(1, 1.01, 1.05).faster_beyond_noise
    assert not _timing(1, 0.99, 1.10).faster_beyond_noise  # a better median alone is not enough
    assert not _timing(1, 1.0, 1.0).faster_beyond_noise


def _pretend_sparse_kernels_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    def status(compiled, rate, *, shape, eligibility=None):
        return SparseStatus(rate, True, measured=True, shape=shape, fully_connected=14, sparse_nodes=12)

    monkeypatch.setattr(sparse_choice, "sparse_status", status)


@pytest.mark.parametrize(("q1s", "written"), [((1.2, 1.1), True), ((1.2, 0.95), False), ((0.9, 0.9), False)])
def test_rate_is_written_only_when_faster_at_every_batch(xml: Path, monkeypatch: pytest.MonkeyPatch,
                                                         q1s: tuple[float, float], written: bool) -> None:
    _pretend_sparse_kernels_ran(monkeypatch)
    given = iter(q1s)
    monkeypatch.setattr(sparse_choice, "_time_pair",
                        lambda req_on, req_off, feed, batch, seq_len, **kw: _timing(batch, next(given), 1.1))
    d = decide(xml, {}, mode="auto", rate=0.85, seq_len=32)
    assert [t.batch for t in d.timings] == [1, 8]
    assert d.rate == (0.85 if written else None) and d.candidate_rate == 0.85
    assert d.reason.startswith("on:" if written else "off: sparse kernels ran but were not faster")


def test_real_timing_is_interleaved_and_recorded(xml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The timing loop itself, on this machine: on and off alternate, every round is recorded, and the
    decision follows the rule from what was measured (whatever it measured)."""
    _pretend_sparse_kernels_ran(monkeypatch)
    d = decide(xml, {}, mode="auto", rate=0.85, seq_len=32, rounds=4, round_s=0.01)
    assert [t.batch for t in d.timings] == [1, 8]
    for t in d.timings:
        assert len(t.on_ms) == len(t.off_ms) == 4 and min(t.on_ms + t.off_ms) > 0
        assert t.speedup["rounds"] == 4 and t.speedup["min"] <= t.speedup["median"] <= t.speedup["max"]
    assert d.rate == (0.85 if all(t.faster_beyond_noise for t in d.timings) else None)


def test_decision_on_this_machine(xml: Path) -> None:
    d = decide(xml, {}, mode="auto", rate=0.85, seq_len=32)
    assert d.status is not None and d.status["measured"] and d.status["fully_connected"] >= 12
    assert d.cpu
    if has_amx():  # the plugin can run sparse kernels: they ran, and were timed against dense
        assert d.status["sparse_nodes"] >= 1 and [t.batch for t in d.timings] == [1, 8]
    else:  # no sparse kernel can run: on and off are one program, so nothing is timed and nothing written
        assert d.status["sparse_nodes"] == 0 and d.rate is None and d.timings == []
        assert "no FullyConnected ran a sparse kernel" in d.reason


def test_given_and_off() -> None:
    assert decide(Path("unused.xml"), {}, mode="off", rate=None, seq_len=32).rate is None
    none = decide(Path("unused.xml"), {}, mode="auto", rate=None, seq_len=32)
    assert none.rate is None and "usefully sparse" in none.reason
