"""`--sparse-rate auto`: switch sparse-weight decompression on only where it measured faster, here.

OpenVINO's decompression unpacks sparse i8 weights into dense AMX tiles: it saves memory traffic and
skips no multiply, and on the AMX Xeons measured so far it was 0.87-1.03x the dense INT8 kernels. So a
rate is written into ``runtime_config.json`` only when, on the machine that converts:
  1. the plugin actually ran sparse kernels (read from the runtime graph after an inference at a static
     shape; where none ran, on and off are the same program and nothing is timed), and
  2. decompression on was faster than off beyond the noise at the conversion's sequence length, batch 1
     and batch 8: on and off run in interleaved rounds (alternating which goes first), and the lower
     quartile of the per-round speed-ups must exceed 1.
The decision belongs to the machine that measured it; ``pofa_report.json`` records both timings, the
kernels that ran and the CPU, so a deployment machine can be judged again (``pofa-deploy benchmark``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .environment import cpu_model
from .inputs import dummy_inputs
from .runtime import compile_guarded, ir_eligibility, sparse_status
from .runtime_config import SPARSE_KEY

BATCHES = (1, 8)
ROUNDS = 7
ROUND_S = 0.15  # per configuration and round; at least MIN_ITERS inferences
MIN_ITERS = 3
WARMUP = 2


@dataclass
class PairTiming:
    """Decompression on vs off at one static shape: per-round median latencies and speed-ups."""

    batch: int
    seq_len: int
    on_ms: list[float]
    off_ms: list[float]
    speedup: dict[str, float]  # spread of per-round off/on (above 1: on is faster)

    @property
    def faster_beyond_noise(self) -> bool:
        return self.speedup["q1"] > 1.0


@dataclass
class SparseDecision:
    """What convert wrote as the sparse rate, and the evidence (saved as pofa_report.json "sparse_decision")."""

    mode: str  # auto | given | off
    candidate_rate: float | None  # auto: the rate every usefully sparse eligible layer meets
    rate: float | None  # what runtime_config.json carries (None: off)
    reason: str
    status: dict[str, Any] | None = None  # sparse status with the candidate/given rate, batch 1, measured
    timings: list[PairTiming] = field(default_factory=list)
    cpu: str = field(default_factory=cpu_model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(xml: Path, base_config: dict[str, str], *, mode: str, rate: float | None, seq_len: int,
           batches: tuple[int, ...] = BATCHES, rounds: int = ROUNDS, round_s: float = ROUND_S) -> SparseDecision:
    """``mode`` auto: ``rate`` is the candidate, kept only if measured faster; given: ``rate`` is obeyed
    (its status is still measured); off: nothing is compiled."""
    if mode == "off" or rate is None:
        why = "--sparse-rate off" if mode == "off" else "no eligible layer is usefully sparse"
        return SparseDecision(mode, rate if mode != "off" else None, None, why)
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    names = [i.get_any_name() for i in model.inputs]
    eligibility = ir_eligibility(model, rate)
    on = {**base_config, SPARSE_KEY: str(rate), "PERFORMANCE_HINT": "LATENCY"}
    off = {k: v for k, v in on.items() if k != SPARSE_KEY}
    timings: list[PairTiming] = []
    status = None
    for batch in batches if mode == "auto" else batches[:1]:
        static = model.clone()
        static.reshape({name: [batch, seq_len] for name in names})
        compiled_on, _used, crashed = compile_guarded(core, static, xml, on, batch=batch, seq_len=seq_len,
                                                      static=True)
        if crashed:
            if mode == "given":
                return SparseDecision(mode, rate, rate, f"given; but on this machine {crashed}: pofa_deploy.load "
                                      "switches it off here")
            return SparseDecision(mode, rate, None, f"off: {crashed}", status)
        feed = dummy_inputs(names, batch=batch, seq_len=seq_len)
        req_on = compiled_on.create_infer_request()
        req_on.infer(feed)
        if status is None:
            status = sparse_status(compiled_on, rate, shape=(batch, seq_len), eligibility=eligibility).to_dict()
            if mode == "auto" and not status["sparse_nodes"]:
                # on and off compile to the same program here: there is nothing to time
                return SparseDecision(mode, rate, None, "off: measured, no FullyConnected ran a sparse kernel on "
                                      f"this machine ({status['summary']})", status)
        if mode == "given":
            break
        req_off = core.compile_model(static, "CPU", off).create_infer_request()
        timings.append(_time_pair(req_on, req_off, feed, batch, seq_len, rounds=rounds, round_s=round_s))
    if mode == "given":
        return SparseDecision(mode, rate, rate, "given on the command line: obeyed as given", status)
    slow = [t for t in timings if not t.faster_beyond_noise]
    if slow:
        shown = ", ".join(f"batch {t.batch}: {t.speedup['median']:.3f}x [q1 {t.speedup['q1']:.3f}]" for t in slow)
        return SparseDecision(mode, rate, None, f"off: sparse kernels ran but were not faster beyond the noise "
                              f"({shown})", status, timings)
    shown = ", ".join(f"batch {t.batch}: {t.speedup['median']:.3f}x" for t in timings)
    return SparseDecision(mode, rate, rate, f"on: rate {rate:g}, measured faster at every batch ({shown})", status,
                          timings)


def _time_pair(req_on: Any, req_off: Any, feed: dict[str, Any], batch: int, seq_len: int, *,
               rounds: int, round_s: float) -> PairTiming:
    from .bench.stats import round_ratios, spread

    for req in (req_on, req_off):
        for _ in range(WARMUP):
            req.infer(feed)
    per_round: dict[str, list[float]] = {"on": [], "off": []}
    for r in range(rounds):
        for name in (("on", "off") if r % 2 == 0 else ("off", "on")):  # neither always goes first
            req = req_on if name == "on" else req_off
            lat: list[float] = []
            start = time.perf_counter()
            while len(lat) < MIN_ITERS or time.perf_counter() - start < round_s:
                t0 = time.perf_counter()
                req.infer(feed)
                lat.append((time.perf_counter() - t0) * 1e3)
            lat.sort()
            per_round[name].append(round(lat[len(lat) // 2], 4))
    ratios = round_ratios(per_round["off"], per_round["on"], higher_is_better=False)
    return PairTiming(batch, seq_len, per_round["on"], per_round["off"],
                      {k: round(v, 4) if isinstance(v, float) else v for k, v in spread(ratios).items()})
