"""Standalone single-thread loops over the sparse kernel's phases, and the core's instruction throughput.

Compiles ``kernel_loop.cpp`` with the library's own VNNI translation unit (``pofa_deploy/ext/kernel_vnni.cpp``,
with the compile options CMakeLists.txt gives it) and runs, on one thread:

* ``ports``: how many of each instruction kind the kernel issues (in-lane interleaves, lane-crossing
  shuffles, packs, ``vpdpbusd``, conversions, fma) the core completes per ns;
* ``phases``, per layer K x N at M tokens: the packing, the accumulation over every row block, the f32
  epilogue, and both together, on random records with the layer's sparsity;
* ``roundtrip`` (two threads), before and after the loops: ns for a cache line to go from the first CPU
  to the second and back, which tells the machine's fast state from its slow one (benchmarks/README.md,
  "Session 14").

Why: inside OpenVINO a layer's time mixes the kernel with the plugin's call, the thread hand-offs and the
other thread (``layer_bench.py`` times that); these loops say what each phase costs alone and how close
it runs to what the core can issue (benchmarks/README.md, "Session 13"). Needs a C++ compiler (``CXX``,
else c++/g++) and an AVX-512 VNNI CPU.

    python benchmarks/kernel_loop.py -o benchmarks/results/sparse-kernel/kernel-loop-<isa>-<session>.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import ab_common as ab

ROOT = Path(__file__).resolve().parents[1]
EXT = ROOT / "pofa_deploy" / "ext"
SHAPES = [(768, 768), (768, 3072), (3072, 768), (1024, 4096), (4096, 1024)]


class LoopError(Exception):
    """Why the loops cannot run here (one line for the user)."""


def vnni_options() -> list[str]:
    """The VNNI translation unit's compile options, as CMakeLists.txt gives them (one source of truth)."""
    text = (EXT / "CMakeLists.txt").read_text()
    found = re.search(r'set_source_files_properties\(kernel_vnni\.cpp PROPERTIES\s+COMPILE_OPTIONS "([^"]+)"', text)
    if not found:
        raise LoopError(f"{EXT / 'CMakeLists.txt'}: no COMPILE_OPTIONS for kernel_vnni.cpp; update vnni_options()")
    return found.group(1).split(";")


def build(workdir: Path) -> Path:
    compiler = ab.cxx_compiler()
    if compiler is None:
        raise LoopError("no C++ compiler: install one (`apt-get install g++`) or set CXX")
    binary = workdir / "kernel_loop"
    cmd = [compiler, "-O3", "-std=c++17", "-ffp-contract=off", "-pthread", *vnni_options(), f"-I{EXT}",
           str(Path(__file__).with_suffix(".cpp")), str(EXT / "kernel_vnni.cpp"), "-o", str(binary)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise LoopError(f"compiling kernel_loop.cpp failed: {run.stderr.strip().splitlines()[-1:]}")
    return binary


def run_loop(binary: Path, *args: object) -> list[dict[str, Any]]:
    run = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)
    if run.returncode != 0:
        raise LoopError(run.stderr.strip() or f"kernel_loop exited with {run.returncode}")
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def _shapes(text: str) -> list[tuple[int, int]]:
    return [(int(k), int(n)) for k, n in (item.lower().split("x") for item in text.split(","))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", type=_shapes, default=SHAPES, help="KxN list, e.g. 768x768,768x3072")
    p.add_argument("-m", "--tokens", type=int, default=128, help="M (batch x tokens)")
    p.add_argument("-s", "--sparsity", type=float, default=0.9)
    p.add_argument("--reps", type=int, default=2000, help="repetitions per phase (best and median taken)")
    p.add_argument("--smoke", action="store_true", help="one tiny layer, few repetitions: checks the script only")
    p.add_argument("-o", "--output", type=Path, help="JSON report (default: stdout only)")
    args = p.parse_args(argv)
    if args.smoke:
        args.shapes, args.tokens, args.reps = [(96, 80)], 33, 3

    from pofa_deploy import environment

    try:
        if "avx512_vnni" not in environment.cpu_flags():
            raise LoopError("this CPU has no AVX-512 VNNI; the loops time the VNNI kernel only "
                            "(run them on one that has it)")
        with tempfile.TemporaryDirectory(prefix="pofa-kernel-loop-") as tmp:
            binary = build(Path(tmp))
            loop_reps = max(3, args.reps // 200)  # the ports and round-trip loops time many instructions each
            roundtrip = run_loop(binary, "roundtrip", loop_reps) if len(os.sched_getaffinity(0)) > 1 else []
            ports = run_loop(binary, "ports", loop_reps)
            phases = [row for k, n in args.shapes
                      for row in run_loop(binary, "phases", k, n, args.tokens, args.sparsity, args.reps)]
            if roundtrip:
                roundtrip += run_loop(binary, "roundtrip", loop_reps)
    except LoopError as e:
        print(f"kernel_loop.py: {e}", file=sys.stderr)
        return 2
    for when, row in zip(("before", "after"), roundtrip, strict=False):  # none on one CPU
        print(f"  cross-core round trip {when} the loops: {row['median_ns']:.0f} ns (CPUs {row['cpus']})")
    for row in ports:
        ns = row["ns_per_instruction"]
        print(f"  {row['instruction']:34s} {ns:.3f} ns  ({1 / ns:.1f}/ns)")
    for row in phases:
        rate = f"  {row['vpdpbusd_per_ns']:.2f} vpdpbusd/ns" if "vpdpbusd_per_ns" in row else ""
        print(f"K={row['K']:5d} N={row['N']:5d} M={row['M']:5d}  {row['phase']:40s} best {row['best_us']:8.1f} us"
              f"  median {row['median_us']:8.1f} us{rate}")
    report = {"command": [sys.executable, *sys.argv], "cpu": environment.cpu_model(), "cores": os.cpu_count(),
              "threads": 1, "reps": args.reps, "smoke": args.smoke, "roundtrip_before_after": roundtrip, "ports": ports,
              "results": phases}
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
