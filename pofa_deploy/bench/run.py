"""The benchmark itself: plan, then for every (batch, seq_len) compile each variant (crash-probing the
sparse ones in a child process first), warm up, run the variants in interleaved rounds and turn the
rounds into figures; the result is a ``BenchmarkResult``.

Noise: each round is a fixed share of the time (-t) or iteration (-niter) budget and runs every
variant once, in the same order (A B C A B C ...), so a slow phase of the machine hits all of them
alike; speed-ups are computed round by round (see result.DEFINITIONS).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .. import environment
from ..errors import PofaError
from ..extension import add_to, needs_extension
from ..probe import needs_probe, probe
from ..progress import Progress, silent
from ..runtime import IREligibility, ir_eligibility, sparse_status
from ..runtime_config import PRECISION_KEY, SPARSE_KEY
from . import peak as peaks
from .inputs import feed_for_torch
from .options import (
    DEFAULT_PEAK_SHAPE,
    DEFAULT_TIME_S,
    ISA_CAP,
    PEER_VARIANTS,
    VARIANT_DESCRIPTIONS,
    Api,
    BenchmarkOptions,
    Isa,
    Variant,
    cache_root,
)
from .plan import Plan, plan
from .result import (
    PEAK_PRECISION,
    BenchmarkResult,
    ConfigResult,
    LatencyStats,
    RoundDetail,
    ScheduleEntry,
    Speedup,
    VariantInfo,
    VariantResult,
)
from .runners import OrtRunner, OVRunner, RoundResult, TorchRunner, load_torch_model, ov_config
from .stats import bootstrap_ratio_ci, interleave, latency_stats, percentile, quantiles, round_ratios, split_budget
from .stats import spread as spread_of

SETTLE_S = 0.02  # pause between variants' rounds: lets the previous one's worker threads go idle
INT8_VARIANTS = (Variant.INT8, Variant.INT8_SPARSE, Variant.INT8_POFA_SPARSE, Variant.INT8_DENSE)


@dataclass(kw_only=True)
class _Run:
    """What every configuration of one run shares."""

    options: BenchmarkOptions
    plan: Plan
    api: Api
    peak: dict[str, Any] | None
    say: Progress
    started: float
    core: Any
    rounds: int
    per_round_s: float | None
    iter_split: list[int] | None
    torch_model: Any = None
    eligibility: dict[tuple[str, float | None], IREligibility] = field(default_factory=dict)


def benchmark(options: BenchmarkOptions, *, progress: Progress | None = None) -> BenchmarkResult:
    """Run the benchmark (and/or --peak) and return every figure."""
    say = progress or silent
    if options.isa is not Isa.NATIVE and os.environ.get("ONEDNN_MAX_CPU_ISA") != ISA_CAP[options.isa]:
        return _in_capped_child(options, say)
    started = time.perf_counter()
    the_plan = plan(options, say=say)
    result = BenchmarkResult(kind="peak", environment=environment.record(threads=options.threads))
    result.peak = _peak(options, say)
    if the_plan.folder is None:
        return result
    api = options.resolved_api
    the_plan.notes.extend(_notes(options, the_plan, result.peak, api))
    _describe(result, options, the_plan, api)
    import openvino as ov

    rounds = options.rounds if options.niter is None else min(options.rounds, options.niter)
    core = ov.Core()
    if any(s.xml is not None and needs_extension(s.xml) for s in the_plan.sources.values()):
        add_to(core)  # int8-pofa-sparse: pofa-deploy's SparseFullyConnected op
    run = _Run(options=options, plan=the_plan, api=api, peak=result.peak, say=say, started=started, core=core,
               rounds=rounds,
               per_round_s=(options.time or DEFAULT_TIME_S) / rounds if options.niter is None else None,
               iter_split=split_budget(options.niter, rounds) if options.niter is not None else None)
    shapes = options.shapes
    for ci, (batch, seq_len) in enumerate(shapes):
        cfg = _run_config(run, f"[{ci + 1}/{len(shapes)}] batch {batch}, seq {seq_len}, {api.value}", batch, seq_len)
        for name, why in cfg.skipped.items():
            the_plan.notes.append(f"{name} at batch {batch}, seq {seq_len}: {why}")
        result.configs.append(cfg)
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def _in_capped_child(options: BenchmarkOptions, say: Progress) -> BenchmarkResult:
    """--isa: oneDNN reads ONEDNN_MAX_CPU_ISA once, when OpenVINO loads, so the whole run happens in a child
    process started with it; the child's result comes back as JSON (its progress goes to our stderr)."""
    import json
    import subprocess
    import sys

    cap = ISA_CAP[options.isa]
    say(f"--isa {options.isa.value}: running every variant in a child process with ONEDNN_MAX_CPU_ISA={cap}")
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    code = ("import json, sys; from pofa_deploy.bench.options import BenchmarkOptions; "
            "from pofa_deploy.bench.run import benchmark; from pofa_deploy.progress import printer; "
            "o = BenchmarkOptions(**json.loads(sys.argv[1])); "
            "r = benchmark(o, progress=printer(quiet=o.quiet)); print('POFA-RESULT ' + json.dumps(r.to_dict()))")
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA=cap,
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(fields, default=str)], env=env,
                          stdout=subprocess.PIPE, text=True)
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("POFA-RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise PofaError(f"--isa {options.isa.value}: the capped child process failed (exit {proc.returncode}); "
                        "run it again with POFA_DEBUG=1 to see why")
    result = BenchmarkResult.from_dict(json.loads(line[len("POFA-RESULT "):]))
    result.environment["command"] = environment.command_line()  # this command, not the child's "-c ..."
    return result


def _peak(options: BenchmarkOptions, say: Progress) -> dict[str, Any] | None:
    """--peak measures the ceiling now (and caches it); otherwise the cached one, if any."""
    cache = cache_root(options)
    if not options.peak:
        return peaks.cached_peak(cache, options.threads)
    peak = peaks.measure_peak(shape=options.peak_shape, seconds=options.peak_time, threads=options.threads,
                              progress=say)
    peak["cache_file"] = str(peaks.save_peak(cache, peak))
    return peak


def _notes(options: BenchmarkOptions, the_plan: Plan, peak: dict[str, Any] | None, api: Api) -> list[str]:
    """What a reader of the figures must know about this run's settings and machine."""
    notes = []
    if options.load_config and any(k in the_plan.load_config for k in (SPARSE_KEY, PRECISION_KEY)):
        notes.append("-load_config sets sparse rate or inference precision: each variant's own "
                     "setting (what defines it) overrides those keys")
    if peak is None:
        notes.append(f"no peak measured for this CPU, OpenVINO and {options.threads} threads: run "
                     "pofa-deploy benchmark --peak once to get each variant's share of the ceiling")
    elif peak.get("shape") != list(DEFAULT_PEAK_SHAPE):
        m, k, n = peak["shape"]
        notes.append(peak.get("lookup") or f"% of peak is against a [{m},{k}]x[{k},{n}] MatMul "
                     "measured in this run, not the default --peak-shape ceiling")
    one_call = [v.value for v in (Variant.PYTORCH_FP32, *PEER_VARIANTS) if v in the_plan.sources]
    if api is Api.ASYNC and one_call:
        notes.append(f"{', '.join(one_call)}: no request queue, so in async mode each runs one call at a time "
                     "(its throughput is batch / latency)")
    if not environment.has_amx() and Variant.INT8_SPARSE in the_plan.sources:
        notes.append("this CPU has no AMX (amx_int8 absent from /proc/cpuinfo), which OpenVINO's sparse "
                     "INT8 kernels need; each INT8 variant's sparse status says what actually ran")
    return notes


def _describe(result: BenchmarkResult, options: BenchmarkOptions, the_plan: Plan, api: Api) -> None:
    """The run's header: model, options, what each variant runs, what was skipped, the notes (shared list)."""
    result.kind = "benchmark"
    result.model = str(the_plan.folder)
    result.report = {k: the_plan.report.get(k) for k in ("source", "source_path", "task", "model_type", "int8",
                                                          "synthetic", "sparse_rate", "seq_len")}
    result.options = _options_dict(options)
    result.api = api.value
    result.hint = options.hint.value if options.hint else None
    result.baseline = the_plan.baseline.value if the_plan.baseline else None
    result.variants = {v.value: VariantInfo(description=VARIANT_DESCRIPTIONS[v],
                                            path=str(s.xml or s.onnx or s.checkpoint), config=dict(s.config),
                                            note=s.note)
                       for v, s in the_plan.sources.items()}
    result.skipped = {str(k): v for k, v in the_plan.skipped.items()}
    result.notes = the_plan.notes
    _mark_tuned(result, the_plan)


def _mark_tuned(result: BenchmarkResult, the_plan: Plan) -> None:
    """The variant ``pofa-deploy tune`` chose for this folder (tune_report.json), flagged and noted."""
    from ..runtime import tuned_choice

    tuned = tuned_choice(the_plan.folder) if the_plan.folder is not None else None
    if tuned is None:
        return
    info = result.variants.get(str(tuned.get("variant")))
    if info is not None:
        info.tuned = True
    props = ", ".join(f"{k}={v}" for k, v in (tuned.get("properties") or {}).items())
    the_plan.notes.append(f"tuned: {tuned.get('winner')} ({tuned.get('model_file')}; {props}) is what "
                          "pofa_deploy.load runs" + ("" if info is not None else "; that variant is not in this run"))


def _run_config(run: _Run, tag: str, batch: int, seq_len: int) -> ConfigResult:
    """One (batch, seq_len): compile, warm up, interleaved rounds, figures."""
    cfg = ConfigResult(batch=batch, seq_len=seq_len, api=run.api.value, rounds=run.rounds)
    run.say(f"{tag}: compiling {len(run.plan.sources)} variants")
    runners, costs = _build_runners(run, cfg, tag, batch, seq_len)
    # the work of the folder's model; int8-pofa-sparse is credited the same (dense-equivalent) work, since
    # graph_flops cannot see inside its SparseFullyConnected nodes
    flops_ref = next((r.flops for r in runners.values() if isinstance(r, OVRunner)
                      and r.variant not in (Variant.INT8_DENSE, Variant.INT8_POFA_SPARSE)), None)
    prepared: dict[str, dict[str, Any]] = {}
    for name, runner in runners.items():
        run.say(f"{tag}: warming up {name}")
        rss0 = peak_rss_mb()
        prepared[name] = _warm_up(run, runner, batch, seq_len, flops_ref)
        peak = peak_rss_mb()
        prepared[name].update(compile_s=costs[name]["compile_s"], peak_rss_mb=peak,
                              rss_increase_mb=costs[name]["rss_increase_mb"] + peak - rss0)
    rounds_data = _run_rounds(run, runners, cfg, tag)
    for name, runner in runners.items():
        if run.options.pc and isinstance(runner, OVRunner):
            prepared[name]["perf_counts"] = runner.perf_counts()
    cfg.results = {name: VariantResult(**prepared[name], **_figures(data, batch, run.options.latency_percentile))
                   for name, data in rounds_data.items()}
    _add_ratios(cfg.results, run.plan.baseline.value if run.plan.baseline else None, rounds_data, run.api)
    _add_peak_shares(cfg.results, run.peak)
    return cfg


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (getrusage's ru_maxrss: KiB on Linux, bytes on
    macOS); process-wide and never decreasing."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _build_runners(run: _Run, cfg: ConfigResult, tag: str, batch: int,
                   seq_len: int) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """A compiled runner per variant, and what building it cost (seconds, rise of the peak RSS); a variant
    whose child probe crashed is skipped at this shape."""
    runners: dict[str, Any] = {}
    costs: dict[str, dict[str, float]] = {}
    # shared set-up outside every variant's cost: the tokenised feed (imports transformers, loads the
    # tokenizer, cached for the OpenVINO runners too) and the CPU plugin
    feed = feed_for_torch(run.plan.folder, batch, seq_len)
    run.core.get_property("CPU", "FULL_DEVICE_NAME")
    for v, source in run.plan.sources.items():
        rss0, t0 = peak_rss_mb(), time.perf_counter()
        if v is Variant.PYTORCH_FP32:
            if run.torch_model is None:
                run.say(f"{tag}: loading the PyTorch checkpoint {source.checkpoint}")
                assert source.checkpoint is not None
                run.torch_model = load_torch_model(source.checkpoint)
            runners[v.value] = TorchRunner(run.torch_model, feed, run.options.nthreads)
        elif v in PEER_VARIANTS:
            runners[v.value] = OrtRunner(source, feed, run.options.nthreads)
        else:
            config = ov_config(source, run.options, run.plan.load_config, run.api)
            if needs_probe(config):
                run.say(f"{tag}: checking {v.value} in a child process (sparse kernels have crashed OpenVINO)")
                assert source.xml is not None
                verdict = probe(source.xml, config, batch=batch, seq_len=seq_len, static=True)
                if not verdict.ok:
                    cfg.skipped[v.value] = f"{verdict.reason}; skipped here, the other variants ran"
                    continue
                rss0, t0 = peak_rss_mb(), time.perf_counter()  # the probe ran in a child: not this variant's cost
            runners[v.value] = OVRunner(run.core, source, batch=batch, seq_len=seq_len, api=run.api,
                                        config=config, nireq=run.options.nireq, inputs_folder=run.plan.folder)
        costs[v.value] = {"compile_s": time.perf_counter() - t0, "rss_increase_mb": peak_rss_mb() - rss0}
    return runners, costs


def _warm_up(run: _Run, runner: Any, batch: int, seq_len: int, flops_ref: Any) -> dict[str, Any]:
    """First inference and warm-up; then what is known before timing (properties, work, sparse status)."""
    first = runner.first()
    runner.warm(run.options.warmup)
    entry: dict[str, Any] = {"first_inference_ms": first, "compiled": runner.compiled_properties()}
    if not isinstance(runner, OVRunner):
        entry["flops"] = flops_ref
        return entry
    entry["flops"] = flops_ref if runner.variant is Variant.INT8_POFA_SPARSE and flops_ref else runner.flops
    entry["inputs"] = runner.inputs_how
    source = run.plan.sources[runner.variant]
    if runner.variant in INT8_VARIANTS:
        key = (str(source.xml), source.sparse_rate)
        if key not in run.eligibility:
            run.eligibility[key] = ir_eligibility(run.core.read_model(str(source.xml)), source.sparse_rate)
        # the runner compiled a static-shape copy and has just run inferences at it
        entry["sparse"] = sparse_status(runner.compiled, source.sparse_rate, shape=(batch, seq_len),
                                        eligibility=run.eligibility[key]).to_dict()
    return entry


def _run_rounds(run: _Run, runners: dict[str, Any], cfg: ConfigResult, tag: str) -> dict[str, list[RoundResult]]:
    """The interleaved rounds (A B C A B C ...), each variant's share of the budget per round."""
    rounds_data: dict[str, list[RoundResult]] = {name: [] for name in runners}
    t_config = time.perf_counter()
    for r, name in interleave(list(runners), run.rounds):
        budget = f"{run.iter_split[r]} iterations" if run.iter_split else f"{run.per_round_s:.2f} s"
        run.say(f"  {tag}: round {r + 1}/{run.rounds} {name} ({budget}) "
                f"[{time.perf_counter() - run.started:.0f} s]")
        cfg.schedule.append(ScheduleEntry(round=r, variant=name, start_s=round(time.perf_counter() - t_config, 4)))
        rounds_data[name].append(runners[name].run(iterations=run.iter_split[r] if run.iter_split else None,
                                                   seconds=run.per_round_s))
        time.sleep(SETTLE_S)
    return rounds_data


def _latency(values: list[float], extra_percentile: int) -> LatencyStats:
    stats = latency_stats(values, extra_percentile)
    return LatencyStats(count=int(stats["count"]), min=stats["min"], median=stats["median"], mean=stats["mean"],
                        p90=stats["p90"], p99=stats["p99"], max=stats["max"], std=stats["std"],
                        extra_percentile=extra_percentile, extra=stats[f"p{extra_percentile}"])


def _figures(data: list[RoundResult], batch: int, extra_percentile: int) -> dict[str, Any]:
    """A variant's figures over all its rounds (VariantResult's timing fields)."""
    lat = [x for r in data for x in r.latencies_ms]
    ov_lat = [x for r in data for x in r.ov_latencies_ms]
    iters = sum(r.iterations for r in data)
    secs = sum(r.seconds for r in data)
    return {
        "iterations": iters,
        "seconds": secs,
        "throughput": batch * iters / secs,
        "inferences_per_second": iters / secs,
        "latency_ms": _latency(lat, extra_percentile),
        "rounds_detail": [RoundDetail(round=i, iterations=r.iterations, seconds=r.seconds,
                                      median_ms=percentile(r.latencies_ms, 50),
                                      throughput=batch * r.iterations / r.seconds) for i, r in enumerate(data)],
        "ov_latency_ms": _latency(ov_lat, extra_percentile) if ov_lat else None,
        # 0th..100th percentile: enough to draw the distribution without storing every sample
        "latency_quantiles_ms": quantiles(lat, range(101)),
    }


def _add_ratios(entries: dict[str, VariantResult], baseline: str | None,
                rounds_data: dict[str, list[RoundResult]], api: Api) -> None:
    if baseline is None or baseline not in entries:
        return
    base = entries[baseline]
    for name, entry in entries.items():
        if api is Api.SYNC:
            per = round_ratios([r.median_ms for r in base.rounds_detail],
                               [r.median_ms for r in entry.rounds_detail], higher_is_better=False)
            overall = base.latency_ms.median / entry.latency_ms.median
        else:
            per = round_ratios([r.throughput for r in base.rounds_detail],
                               [r.throughput for r in entry.rounds_detail], higher_is_better=True)
            overall = entry.throughput / base.throughput
        s = spread_of(per)
        entry.speedup = Speedup(baseline=baseline, overall=overall, per_round=per, median=s["median"], q1=s["q1"],
                                q3=s["q3"], min=s["min"], max=s["max"], rounds=int(s["rounds"]))
        if api is Api.SYNC and name != baseline:
            entry.speedup.ci95 = bootstrap_ratio_ci([x for r in rounds_data[baseline] for x in r.latencies_ms],
                                                    [x for r in rounds_data[name] for x in r.latencies_ms])


def _add_peak_shares(entries: dict[str, VariantResult], peak: dict[str, Any] | None) -> None:
    for name, entry in entries.items():
        if not entry.flops:
            continue
        ops = entry.flops.total * entry.inferences_per_second
        entry.ops_per_second = ops
        precision = PEAK_PRECISION[Variant(name)]
        ceiling = (peak or {}).get(precision) or {}
        if ceiling.get("ops_per_second"):
            entry.peak_share = ops / ceiling["ops_per_second"]
            entry.peak_precision = precision
            entry.peak_ops_per_second = ceiling["ops_per_second"]


def _options_dict(options: BenchmarkOptions) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if isinstance(value, tuple):
            value = [str(v) if isinstance(v, StrEnum) else v for v in value]
        elif isinstance(value, (Path, StrEnum)):
            value = str(value)
        out[f.name] = value
    return out
