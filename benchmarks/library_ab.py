"""Whole-model A/B of builds of the SparseFullyConnected library (two or more) on the same sparse-kernel
IR, with the standard INT8 IR beside them: each round runs one child process per library, the order
reversing every other round, and every child times the standard IR and the sparse IR interleaved.

Why child processes: OpenVINO cannot hold two libraries that register the same op type, so each build is
loaded in its own process (through ``POFA_SPARSE_EXT``, which ``pofa_deploy.extension_path()`` honours).
Why the standard IR in every child: on the 2-core KVM guest these figures come from, speed is bimodal
across time (benchmarks/README.md, issue 10), so each child's speed-up over the dense IR, and the
per-round ratio of the two libraries' sparse times, are read against a machine state both sides saw.

    .venv/bin/python benchmarks/library_ab.py OUT --libs before=/tmp/old.so after=pofa_deploy/libpofa_sparse_ext.so \\
        -b 1 --rounds 8 -o results/sparse-kernel/library-ab.json

``--env LABEL:VAR=VALUE`` sets a variable in that label's child only, so one library can run under several
labels, e.g. the op's portable kernel against its VNNI kernel (``POFA_SPARSE_KERNEL``):

    .venv/bin/python benchmarks/library_ab.py OUT --libs vnni=L generic=L --env generic:POFA_SPARSE_KERNEL=generic

Before every round, where a C++ compiler and two CPUs are at hand, the report keeps the time a cache line
takes between the two CPUs (``kernel_loop roundtrip``, ~0.1-0.4 s): the state of the machine the round ran in.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import ab_common as ab


def child(out: Path, batch: int, seq_len: int, threads: int, iters: int) -> None:
    """One library (already in POFA_SPARSE_EXT): print {"int8": ms, "sparse": ms} as one JSON line."""
    core = ab.core_with_extension()
    shape = [batch, seq_len]
    requests = {"int8": ab.request(core, out / "openvino_model.xml", shape, shape, threads),
                "sparse": ab.request(core, out / "openvino_model_sparse.xml", shape, shape, threads)}
    times = ab.interleaved(requests, 2, iters)
    print(json.dumps({n: min(v) for n, v in times.items()}))


def main() -> int:
    p = ab.parser(__doc__.splitlines()[0], rounds=8, iters=100)
    p.add_argument("--libs", nargs="+", required=True, metavar="LABEL=PATH",
                   help="two or more library builds, e.g. before=/tmp/old.so after=pofa_deploy/libpofa_sparse_ext.so; "
                        "the first is the reference of the ratios")
    p.add_argument("--env", nargs="*", default=[], metavar="LABEL:VAR=VALUE",
                   help="an environment variable for one label's child, e.g. generic:POFA_SPARSE_KERNEL=generic")
    p.add_argument("--no-roundtrip", action="store_true",
                   help="skip the round-trip reading before each round (it compiles kernel_loop.cpp, ~20 s)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if (code := ab.rerun_with_isa(args.isa)) is not None:
        return code
    if args.child:
        child(args.out, args.batch, args.seq_len, args.threads, args.iters)
        return 0
    labels = [spec.split("=", 1)[0] for spec in args.libs if "=" in spec]
    if len(labels) != len(args.libs) or len(set(labels)) != len(labels) or len(labels) < 2:
        sys.exit("--libs: give two or more LABEL=PATH, with distinct labels")
    libs = dict(spec.split("=", 1) for spec in args.libs)
    for label, path in libs.items():
        if not Path(path).is_file():
            sys.exit(f"--libs: {label}={path} is not a file; build the library first")
    extra: dict[str, dict[str, str]] = {label: {} for label in libs}
    for spec in args.env:
        label, sep, assignment = spec.partition(":")
        var, eq, value = assignment.partition("=")
        if not (sep and eq and var) or label not in libs:
            sys.exit(f"--env {spec}: give LABEL:VAR=VALUE with a LABEL of --libs ({', '.join(libs)})")
        extra[label][var] = value
    per_round: dict[str, dict[str, list[float]]] = {label: {"int8": [], "sparse": []} for label in libs}
    order = list(libs)
    roundtrip_ns: list[float | None] = []
    with tempfile.TemporaryDirectory(prefix="pofa-library-ab-") as tmp:
        probe = (lambda: None) if args.no_roundtrip else roundtrip_probe(Path(tmp))
        for rnd in range(args.rounds):
            roundtrip_ns.append(probe())
            run_round(libs, extra, per_round, order if rnd % 2 == 0 else order[::-1])
            state = "" if roundtrip_ns[-1] is None else f" (round trip {roundtrip_ns[-1]:.0f} ns)"
            print(f"round {rnd + 1}/{args.rounds}{state}: " + "  ".join(
                f"{label} sparse {per_round[label]['sparse'][-1]:.2f} ms (int8 {per_round[label]['int8'][-1]:.2f})"
                for label in order), flush=True)
    first = order[0]
    report = {**ab.report_header(args), "libraries": libs, "env": extra, "roundtrip_ns_before_round": roundtrip_ns,
              "what": "per round and library: the best of 2 interleaved medians of --iters sync inferences (ms)",
              "per_round_ms": per_round,
              "speedup_over_int8": {label: ab.spread([i / s for i, s in zip(v["int8"], v["sparse"], strict=True)])
                                    for label, v in per_round.items()},
              f"sparse_time_{first}_over": {label: ab.spread([x / y for x, y in zip(
                  per_round[first]["sparse"], per_round[label]["sparse"], strict=True)]) for label in order[1:]}}
    print(json.dumps({k: report[k] for k in ("speedup_over_int8", f"sparse_time_{first}_over")}, indent=1))
    ab.write_report(report, args.output)
    return 0


def roundtrip_probe(workdir: Path) -> Callable[[], float | None]:
    """A function giving the two CPUs' cache-line round trip in ns (kernel_loop's median), or one giving
    None where that cannot be measured (one CPU, no C++ compiler). The roundtrip mode needs no VNNI."""
    import kernel_loop

    if len(os.sched_getaffinity(0)) < 2:
        return lambda: None
    try:
        binary = kernel_loop.build(workdir)
    except kernel_loop.LoopError:
        return lambda: None

    def probe() -> float | None:
        try:
            # 10 repetitions of 100,000 trips each, as kernel_loop.py takes by default
            rows = kernel_loop.run_loop(binary, "roundtrip", 10)
        except kernel_loop.LoopError:
            return None
        return float(rows[0]["median_ns"]) if rows else None

    return probe


def run_round(libs: dict[str, str], extra: dict[str, dict[str, str]], per_round: dict[str, dict[str, list[float]]],
              order: list[str]) -> None:
    """One child per label, in ``order``; appends each child's times to ``per_round``."""
    for label in order:
        env = {**os.environ, **extra[label], "POFA_SPARSE_EXT": str(Path(libs[label]).resolve())}
        run = subprocess.run([sys.executable, *sys.argv, "--child"], env=env, capture_output=True, text=True)
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or [f"exit code {run.returncode}"])[-1]
            sys.exit(f"library_ab.py: the child for {label} failed: {last}")
        ms = json.loads(run.stdout.strip().splitlines()[-1])
        for name, value in ms.items():
            per_round[label][name].append(value)


if __name__ == "__main__":
    sys.exit(main())
