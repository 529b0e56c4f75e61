"""`pofa-deploy tune OUT`: measure, on the deployment machine, which way of running a converted folder is
fastest, and write it down where every runtime reads it.

The candidates are every way this machine can run the folder: ``openvino_model.xml`` on dense kernels,
the same with OpenVINO's sparse decompression (only where AMX exists, at the rate convert measured as the
candidate), and ``openvino_model_sparse.xml`` on pofa-deploy's SparseFullyConnected op; each with the
plugin's default inference precision and with INFERENCE_PRECISION_HINT=f32 (on CPUs with AVX512_BF16 the
default runs non-INT8 ops in BF16, which makes the f32-in/f32-out sparse-kernel op slower; without bf16
the two are one program, so f32 is not tried). For ``--objective throughput`` every one also runs with
each stream count and batch. They run interleaved, round by round (``bench/stats.py``, ``bench/runners.py``).

Ranking: candidates are ordered simplest first; the winner is the simplest one that no other beats beyond
the noise (the lower quartile of the per-round speed-ups must exceed 1, convert's sparse-decision rule).
With ``--latency-budget`` only candidates whose p99 fits compete (ranked by throughput). The winner's
properties go into ``runtime_config.json`` (the old file kept as ``runtime_config.prev.json``), and every
figure, the CPU and the versions into ``tune_report.json``, which ``pofa_deploy.load`` follows.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import InputError
from .ir import REPORT_FILE, ir_xml, read_report
from .options import at_least, coerce_fields, flag_name, option
from .progress import Progress, printer
from .runtime_config import PRECISION_KEY, RUNTIME_CONFIG, SPARSE_KEY, parse_rate, read_runtime_config

TUNE_REPORT = "tune_report.json"
PREV_CONFIG = "runtime_config.prev.json"
SCHEMA = "pofa-deploy.tune/1"
DEFAULT_TIME_S = 3.0
HINT_KEY = "PERFORMANCE_HINT"
STREAMS_KEY = "NUM_STREAMS"
# what tune decides; any other key of the folder's runtime_config.json is kept as it is
TUNED_KEYS = (SPARSE_KEY, PRECISION_KEY, HINT_KEY, STREAMS_KEY, "PERFORMANCE_HINT_NUM_REQUESTS")
MIN_ITERS = 2

VERIFY_TOLERANCE = 0.03  # --verify: the winner may be this much slower than a rejected one (noise)


class Objective(StrEnum):
    LATENCY = "latency"
    THROUGHPUT = "throughput"


@dataclass(frozen=True, kw_only=True)
class TuneOptions:
    # option() builds a dataclass field, so RUF009 (a call as a default) does not apply to these lines
    out: Path = option(positional=True, help="converted output folder (pofa-deploy convert MODEL -o OUT)")
    seq_len: tuple[int, ...] = option(
        (), flags=("--seq-len",), metavar="N[,N...]",
        help="sequence length(s) to tune for; the winner is best over all of them (default: the one "
             "the folder was converted at)")
    batch: tuple[int, ...] = option(
        (), flags=("-b", "--batch"), metavar="B[,B...]",
        help="batch size(s): for latency every one is timed, for throughput each is a candidate (default: 1 "
             "for latency, 1,8 for throughput)")
    objective: Objective = option(Objective.LATENCY, flags=("--objective",),
                                  help="latency: one request at a time; throughput: streams and requests")
    latency_budget: float | None = option(
        None, flags=("--latency-budget",), metavar="MS",
        help="only candidates whose p99 latency fits compete; with throughput, the fastest of those")
    time: float = option(DEFAULT_TIME_S, flags=("-t", "--time"),
                         help="seconds per candidate, split over the rounds and shapes")
    rounds: int = option(5, flags=("--rounds",), help="interleaved rounds (A B C A B C ...)")
    verify: bool = option(False, flags=("--verify",),
                          help="time the winner again against every rejected candidate, interleaved, and record "
                               "whether it is no slower than any (within 3%%)")
    dry_run: bool = option(False, flags=("--dry-run",), help="measure and print, write nothing")
    quiet: bool = option(False, flags=("-q", "--quiet"), help="no progress lines")

    def __post_init__(self) -> None:
        coerce_fields(self)
        at_least(self, 2, "rounds")
        for name in ("seq_len", "batch"):
            bad = [v for v in getattr(self, name) if v < 1]
            if bad:
                raise InputError(f"{flag_name(TuneOptions, name)} must be positive integers, got {bad[0]}")
        if self.time <= 0:
            raise InputError(f"{flag_name(TuneOptions, 'time')} must be positive, got {self.time:g}")
        if self.latency_budget is not None and self.latency_budget <= 0:
            raise InputError(f"--latency-budget must be positive milliseconds, got {self.latency_budget:g}")

    @property
    def higher_is_better(self) -> bool:
        return self.objective is Objective.THROUGHPUT or self.latency_budget is not None


OPTIONS = TuneOptions


@dataclass
class Candidate:
    """One way of running the folder; ``rank`` orders by simplicity (lower: simpler)."""

    variant: str  # the benchmark variant it is: int8, int8-sparse, int8-pofa-sparse
    model_file: str
    f32: bool
    sparse_rate: float | None = None
    streams: int | None = None
    nireq: int | None = None  # throughput: requests kept in flight (one or two per stream)
    batch: int | None = None  # throughput: the batch it runs; latency: None (every -b is timed)
    rank: tuple[int, ...] = ()
    per_round: list[float] = field(default_factory=list)  # figure per round, geometric mean over shapes
    shapes: dict[str, dict[str, Any]] = field(default_factory=dict)
    p99_ms: float = 0.0
    skipped: str = ""

    @property
    def name(self) -> str:
        text = self.variant + (f"@{self.sparse_rate:g}" if self.sparse_rate is not None else "")
        text += " f32" if self.f32 else ""
        if self.streams is not None:
            text += f" streams={self.streams} nireq={self.nireq} batch={self.batch}"
        return text

    def properties(self, base: dict[str, str]) -> dict[str, str]:
        props = {k: v for k, v in base.items() if k not in TUNED_KEYS}
        props[HINT_KEY] = "LATENCY" if self.streams is None else "THROUGHPUT"
        if self.streams is not None:
            props[STREAMS_KEY] = str(self.streams)
        if self.f32:
            props[PRECISION_KEY] = "f32"
        if self.sparse_rate is not None:
            props[SPARSE_KEY] = str(self.sparse_rate)
        return props

    def to_dict(self, base: dict[str, str]) -> dict[str, Any]:
        return {"name": self.name, "variant": self.variant, "model_file": self.model_file,
                "precision_hint": "f32" if self.f32 else "plugin default", "sparse_rate": self.sparse_rate,
                "streams": self.streams, "nireq": self.nireq, "batch": self.batch,
                "properties": self.properties(base),
                "per_round": self.per_round, "p99_ms": self.p99_ms, "shapes": self.shapes,
                "skipped": self.skipped or None}


@dataclass
class Folder:
    """The checked input folder."""

    path: Path
    report: dict[str, Any]
    base: dict[str, str]  # runtime_config.json without the keys tune decides
    seq_lens: tuple[int, ...]
    batches: tuple[int, ...]


def check_folder(options: TuneOptions) -> Folder:
    out = Path(options.out)
    if not (out / "openvino_model.xml").is_file() or not (out / REPORT_FILE).is_file():
        raise InputError(f"OUT {out}: not a converted folder (no openvino_model.xml and {REPORT_FILE}); "
                         "convert first with pofa-deploy convert MODEL -o OUT")
    folder = ir_xml(out).parent
    report = read_report(folder)
    seq_lens = options.seq_len or (int(report.get("seq_len") or 128),)
    batches = options.batch or ((1,) if options.objective is Objective.LATENCY else (1, 8))
    base = {k: v for k, v in read_runtime_config(folder).items() if k not in TUNED_KEYS}
    return Folder(folder, report, base, tuple(seq_lens), tuple(batches))


def candidates(folder: Folder, options: TuneOptions) -> list[Candidate]:
    """Every candidate, simplest first; those that cannot run here carry ``skipped`` (the reason)."""
    from .environment import bf16_supported, has_amx, physical_cores
    from .extension import ExtensionError, extension_path
    from .runtime import SPARSE_IR_FILE

    standard = "int8" if folder.report.get("int8", True) else "ov-fp32"  # an FP32 folder: its own IR
    models: list[tuple[str, str, float | None, str]] = [(standard, "openvino_model.xml", None, "")]
    rate = parse_rate((folder.report.get("sparse_decision") or {}).get("candidate_rate"))
    if has_amx() and rate is not None:
        models.append(("int8-sparse", "openvino_model.xml", rate, ""))
    if (folder.path / SPARSE_IR_FILE).is_file():
        try:
            extension_path()
            why = ""
        except ExtensionError as exc:
            why = str(exc)
        models.append(("int8-pofa-sparse", SPARSE_IR_FILE, None, why))
    precisions = (False, True) if bf16_supported() else (False,)
    if options.objective is Objective.THROUGHPUT or options.latency_budget is not None:
        cores = physical_cores()
        streams = sorted({1, max(1, cores // 2), cores})
        batches: list[int | None] = list(folder.batches)
    else:
        streams, batches = [0], [None]
    out = []
    for m, (variant, file, r, why) in enumerate(models):
        for p, f32 in enumerate(precisions):
            for s in streams:
                # in-flight requests: one per stream, or two (the next request queued while one runs);
                # not a compile property, so it goes to tune_report.json (and `package` writes it as OVMS's nireq)
                for q in (sorted({s, 2 * s}) if s else [0]):
                    for b in batches:
                        out.append(Candidate(variant, file, f32, r, s or None, q or None, b,
                                             rank=(m, p, s, q, b or 0), skipped=why))
    return sorted(out, key=lambda c: c.rank)


def shapes_of(c: Candidate, folder: Folder) -> list[tuple[int, int]]:
    batches = folder.batches if c.batch is None else (c.batch,)
    return [(b, s) for b in batches for s in folder.seq_lens]


def build_runners(core: Any, c: Candidate, folder: Folder, say: Progress) -> dict[tuple[int, int], Any]:
    """One OVRunner per shape; a compile that fails or crashes (probed in a child first) skips ``c``."""
    from .bench.options import Api, Variant
    from .bench.plan import Source
    from .bench.runners import OVRunner
    from .probe import needs_probe, probe
    from .runtime import sparse_status

    config = {**c.properties(folder.base), "PERF_COUNT": "NO"}
    xml = folder.path / c.model_file
    api = Api.SYNC if c.streams is None else Api.ASYNC
    runners = {}
    for b, s in shapes_of(c, folder):
        if c.sparse_rate is not None and needs_probe(config):
            verdict = probe(xml, config, batch=b, seq_len=s, static=True)
            if not verdict.ok:
                c.skipped = verdict.reason
                return {}
        source = Source(variant=Variant(c.variant), xml=xml, config=config, sparse_rate=c.sparse_rate)
        try:
            runner = OVRunner(core, source, batch=b, seq_len=s, api=api, config=config, nireq=c.nireq,
                              inputs_folder=None)
            runner.first()
        except RuntimeError as exc:
            c.skipped = f"OpenVINO failed to compile or run it ({str(exc).strip().splitlines()[0][:160]})"
            return {}
        if c.sparse_rate is not None and not sparse_status(runner.compiled, c.sparse_rate, shape=(b, s)).sparse_nodes:
            c.skipped = "no FullyConnected ran a sparse kernel here: the same program as without the rate"
            return {}
        runners[(b, s)] = runner
    say(f"  compiled {c.name}")
    return runners


def measure(pool: dict[str, dict[tuple[int, int], Any]], by_name: dict[str, Candidate], options: TuneOptions,
            say: Progress) -> None:
    """Interleaved rounds over every candidate and shape; fills per_round, shapes and p99_ms."""
    from .bench.stats import interleave, latency_stats

    names = list(pool)
    for runners in pool.values():
        for runner in runners.values():
            runner.warm(2)
    n_shapes = max(len(r) for r in pool.values())
    slice_s = options.time / options.rounds / n_shapes
    figures: dict[str, dict[tuple[int, int], list[float]]] = {n: {sh: [] for sh in pool[n]} for n in names}
    lat: dict[str, dict[tuple[int, int], list[float]]] = {n: {sh: [] for sh in pool[n]} for n in names}
    for r, name in interleave(names, options.rounds):
        say(f"  round {r + 1}/{options.rounds}: {name}")
        for shape, runner in pool[name].items():
            res = runner.run(iterations=None, seconds=slice_s)
            while res.iterations < MIN_ITERS:
                res = runner.run(iterations=MIN_ITERS, seconds=None)
            lat[name][shape] += res.latencies_ms
            if by_name[name].streams is None:
                figures[name][shape].append(sorted(res.latencies_ms)[len(res.latencies_ms) // 2])
            else:
                figures[name][shape].append(res.iterations * shape[0] / res.seconds)
    for name in names:
        c = by_name[name]
        per_shape = list(figures[name].values())
        c.per_round = [round(math.exp(sum(math.log(f[i]) for f in per_shape) / len(per_shape)), 4)
                       for i in range(options.rounds)]
        for shape in figures[name]:
            stats = latency_stats(lat[name][shape]) if lat[name][shape] else {}
            c.shapes[f"{shape[0]}x{shape[1]}"] = {"per_round": figures[name][shape], "latency_ms": stats}
        c.p99_ms = max((s["latency_ms"].get("p99", 0.0) for s in c.shapes.values()), default=0.0)


def figure(c: Candidate, options: TuneOptions) -> list[float]:
    """What is ranked: per-round latency (ms), or throughput (samples/s) with a budget or that objective."""
    if c.streams is None and options.higher_is_better:
        return [1e3 / v for v in c.per_round]  # sync: one request at a time, inferences per second
    return c.per_round


def choose(ran: list[Candidate], options: TuneOptions) -> tuple[Candidate, list[Candidate]]:
    """The winner (simplest not beaten beyond the noise, within the budget) and the ranked list."""
    from .bench.stats import simplest_unbeaten

    hib = options.higher_is_better
    fits = [c for c in ran if options.latency_budget is None or c.p99_ms <= options.latency_budget]

    def median(c: Candidate) -> float:
        values = sorted(figure(c, options))
        return values[len(values) // 2] * (1 if hib else -1)

    ranked = sorted(ran, key=median, reverse=True)
    if not fits:
        best = min(ran, key=lambda c: c.p99_ms)
        raise InputError(f"--latency-budget {options.latency_budget:g} ms: no candidate meets it; the best is "
                         f"{best.name} with p99 {best.p99_ms:.3g} ms (raise the budget or lower -b/--seq-len)")
    name = simplest_unbeaten({c.name: figure(c, options) for c in fits}, higher_is_better=hib)
    winner = next(c for c in fits if c.name == name)
    return winner, ranked


def ratios_vs(winner: Candidate, other: Candidate, options: TuneOptions) -> dict[str, float]:
    from .bench.stats import round_ratios, spread

    return spread(round_ratios(figure(other, options), figure(winner, options),
                               higher_is_better=options.higher_is_better))


def verify(pool: dict[str, dict[tuple[int, int], Any]], winner: Candidate, ranked: list[Candidate],
           options: TuneOptions, say: Progress) -> dict[str, Any] | None:
    """--verify: every candidate that ran is timed once more, interleaved, independently of the rounds
    that chose; the winner's per-round speed-up over each, and whether it is no slower than any of them
    (within 3%, by the median)."""
    import copy

    others = [c for c in ranked if c is not winner and c.name in pool]
    if not others:
        return None
    say(f"verifying: {winner.name} against {len(others)} rejected candidates once more")
    again = {c.name: copy.copy(c) for c in (winner, *others)}
    for c in again.values():
        c.shapes = {}
    measure({n: pool[n] for n in again}, again, options, say)
    every = {c.name: ratios_vs(again[winner.name], again[c.name], options) for c in others}
    worst = min(every, key=lambda n: every[n]["median"])
    return {"winner": winner.name, "against": others[0].name, "speedup": every[others[0].name],
            "every": every, "worst": worst,
            "no_slower_than_any_rejected": every[worst]["median"] >= 1.0 - VERIFY_TOLERANCE,
            "tolerance": VERIFY_TOLERANCE}


def run_tune(options: TuneOptions, say: Progress) -> dict[str, Any]:
    """Measure every candidate, choose, and return the tune report (nothing written here)."""
    import openvino as ov

    from .environment import record
    from .extension import add_to, extension_path

    folder = check_folder(options)
    cands = candidates(folder, options)
    core = ov.Core()
    if any(c.variant == "int8-pofa-sparse" and not c.skipped for c in cands):
        extension_path()
        add_to(core)
    shapes = ", ".join(f"{b}x{s}" for b in folder.batches for s in folder.seq_lens)
    say(f"compiling {len(cands)} candidates (batch x sequence length: {shapes})")
    pool = {}
    for c in cands:
        if not c.skipped:
            runners = build_runners(core, c, folder, say)
            if runners:
                pool[c.name] = runners
    if not pool:
        raise InputError(f"OUT {folder.path}: no candidate can run here (" + "; ".join(
            f"{c.name}: {c.skipped}" for c in cands) + ")")
    by_name = {c.name: c for c in cands}
    say(f"timing {len(pool)} candidates, {options.rounds} interleaved rounds, {options.time:g} s each")
    measure(pool, by_name, options, say)
    ran = [c for c in cands if c.name in pool]
    winner, ranked = choose(ran, options)
    report = {
        "schema": SCHEMA, "folder": str(folder.path), "objective": options.objective.value,
        "latency_budget_ms": options.latency_budget, "seq_lens": list(folder.seq_lens),
        "batches": list(folder.batches), "rounds": options.rounds, "seconds_per_candidate": options.time,
        "figure": "throughput (samples/s, higher is better)" if options.higher_is_better
        else "latency (ms, per-round median, lower is better)",
        "rule": "simplest candidate that no other beats beyond the noise (lower quartile of per-round "
                "speed-ups > 1)" + (", among those whose p99 fits the budget" if options.latency_budget else ""),
        "winner": winner.name, "variant": winner.variant, "model_file": winner.model_file,
        "properties": winner.properties(folder.base), "batch": winner.batch, "nireq": winner.nireq,
        "candidates": [{**c.to_dict(folder.base), "speedup_of_winner": ratios_vs(winner, c, options)
                        if c.name in pool and c is not winner else None,
                        "fits_budget": None if options.latency_budget is None or c.name not in pool
                        else c.p99_ms <= options.latency_budget} for c in cands],
        "ranking": [c.name for c in ranked],
        "environment": record(),
    }
    if options.verify:
        report["verify"] = verify(pool, winner, ranked, options, say)
    return report


def write(folder: Path, report: dict[str, Any]) -> list[Path]:
    """Staged: temp files in the folder first, then os.replace; the previous runtime_config.json is kept."""
    config = folder / RUNTIME_CONFIG
    staged = {folder / TUNE_REPORT: json.dumps(report, indent=2) + "\n",
              config: json.dumps({"CPU": report["properties"]}, indent=2) + "\n"}
    if config.is_file():
        staged[folder / PREV_CONFIG] = config.read_text()
    tmps = []
    try:
        for target, text in staged.items():
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(text)
            tmps.append((tmp, target))
        # the old config is kept first, the report that load() follows comes last
        order = sorted(tmps, key=lambda t: [PREV_CONFIG, RUNTIME_CONFIG, TUNE_REPORT].index(t[1].name))
        for tmp, target in order:
            os.replace(tmp, target)
    finally:
        for tmp, _target in tmps:
            tmp.unlink(missing_ok=True)
    return [t for _tmp, t in tmps]


def table(report: dict[str, Any]) -> str:
    from .tables import format_table

    unit = "samples/s" if report["figure"].startswith("throughput") else "ms"
    rows = []
    by_name = {c["name"]: c for c in report["candidates"]}
    for i, name in enumerate(report["ranking"], 1):
        c = by_name[name]
        s = _spread(c["per_round"])
        vs = c["speedup_of_winner"]
        mark = "WINNER" if name == report["winner"] else (f"{vs['median']:.3f}x [{vs['q1']:.3f}-{vs['q3']:.3f}]"
                                                           if vs else "")
        mark += " (p99 over the budget)" if c.get("fits_budget") is False else ""
        rows.append([i, name, f"{s['median']:.4g}", f"{s['q1']:.4g}-{s['q3']:.4g}", f"{c['p99_ms']:.3g}", mark])
    text = format_table(["#", "candidate", f"median ({unit}/round)", "q1-q3", "p99 ms", "winner vs it"], rows,
                        right=(0, 2, 3, 4))
    skipped = [f"  skipped {c['name']}: {c['skipped']}" for c in report["candidates"] if c["skipped"]]
    return "\n".join([text, *skipped])


def _spread(values: list[float]) -> dict[str, float]:
    from .bench.stats import spread

    return spread(values) if values else {"median": float("nan"), "q1": float("nan"), "q3": float("nan")}


def summary(report: dict[str, Any], written: list[Path]) -> str:
    props = ", ".join(f"{k}={v}" for k, v in report["properties"].items())
    lines = [table(report), f"winner: {report['winner']} ({report['model_file']}; {props})"]
    if report.get("verify"):
        v = report["verify"]
        worst = v["every"][v["worst"]]
        lines.append(f"verify: {v['winner']} timed again against every rejected candidate: the closest, "
                     f"{v['worst']}, {worst['median']:.3f}x [q1 {worst['q1']:.3f}]; no slower than any (within "
                     f"{v['tolerance']:.0%}): {'yes' if v['no_slower_than_any_rejected'] else 'NO'}")
    if written:
        lines.append("wrote " + ", ".join(str(p) for p in written) + " (pofa_deploy.load follows it)")
    else:
        lines.append("dry run: nothing written")
    return "\n".join(lines)


def tune(options: TuneOptions, *, say: Progress | None = None) -> dict[str, Any]:
    """The library entry: measure, choose, write (unless ``dry_run``); returns the report."""
    say = say or printer(quiet=options.quiet)
    report = run_tune(options, say)
    report["written"] = [] if options.dry_run else [str(p) for p in write(Path(report["folder"]), report)]
    return report


def main(options: TuneOptions) -> int:
    report = tune(options)
    print(summary(report, [Path(p) for p in report["written"]]))
    return 0
