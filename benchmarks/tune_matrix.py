"""Issue 11's table: per shape, what `pofa-deploy tune` picks on this machine and its margins.

For each converted folder, batch and sequence length:
  1. `tune` (latency objective, --verify, nothing written) times every candidate interleaved; its report
     gives the winner and the winner's per-round speed-up over OpenVINO's defaults (the standard IR,
     plugin-default properties) from the same rounds, and a second, independent interleaved timing of
     the winner against the runner-up (--verify);
  2. `benchmark` times the winner's model file with the winner's properties (-load_config) interleaved
     with ONNX Runtime INT8 (`ort-int8`): the margin over the engine a user would pick instead.

    python benchmarks/tune_matrix.py OUT1 [OUT2 ...] --batch 1,8 --seq-len 16,128,384 -t 4 -o results/tune/NAME.json

Writes one JSON (every tune report and benchmark ratio, the environment, the command) and prints a
Markdown table. Run it alone on the machine: other processes make the sparse kernel's figures bimodal.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pofa_deploy import environment
from pofa_deploy.bench.options import BenchmarkOptions, Variant
from pofa_deploy.bench.run import benchmark
from pofa_deploy.progress import printer
from pofa_deploy.tune import TuneOptions, run_tune

PROPERTY_KEYS = ("INFERENCE_PRECISION_HINT",)  # the winner's properties that define it for a latency run


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def one_shape(folder: Path, batch: int, seq_len: int, seconds: float, say: Any) -> dict[str, Any]:
    report = run_tune(TuneOptions(out=folder, batch=(batch,), seq_len=(seq_len,), time=seconds, rounds=5,
                                  verify=True, dry_run=True, quiet=True), say)
    winner = next(c for c in report["candidates"] if c["name"] == report["winner"])
    defaults = next((c for c in report["candidates"] if c["name"] == "int8"), None)
    over_defaults = defaults["speedup_of_winner"] if defaults and defaults["name"] != report["winner"] else None
    variant = Variant(report["variant"])  # int8, int8-sparse (AMX decompression) or int8-pofa-sparse
    props = {k: v for k, v in report["properties"].items() if k in PROPERTY_KEYS}
    rate = winner.get("sparse_rate")
    with tempfile.TemporaryDirectory() as tmp:
        load_config = Path(tmp) / "winner.json"
        load_config.write_text(json.dumps({"CPU": props}))
        bench = benchmark(BenchmarkOptions(model=folder, variants=(variant, Variant.ORT_INT8),
                                           baseline=Variant.ORT_INT8, batch=(batch,), seq_len=(seq_len,),
                                           time=seconds, rounds=5, load_config=load_config,
                                           output_dir=Path(tmp) / "b", quiet=True, sparse_rate=rate), progress=say)
    results = bench.configs[0].results
    both = variant.value in results and Variant.ORT_INT8.value in results
    over_ort = results[variant.value].speedup if both else None
    return {"folder": str(folder), "batch": batch, "seq_len": seq_len, "winner": report["winner"],
            "winner_median_ms": statistics.median(winner["per_round"]), "over_openvino_defaults": over_defaults,
            "verify": report.get("verify"),
            "over_ort_int8": over_ort.to_dict() if over_ort is not None else None,
            "ort_skipped": bench.skipped.get(Variant.ORT_INT8.value), "tune_report": report}


def table(rows: list[dict[str, Any]]) -> str:
    def cell(s: dict[str, Any] | None) -> str:
        return f"{s['median']:.2f}x [{s['q1']:.2f}-{s['q3']:.2f}]" if s else "- (is the default)"

    lines = ["| model | batch x seq | winner | vs OpenVINO defaults | vs ONNX Runtime INT8 | "
             "re-timed: closest rejected |",
             "|---|---|---|---:|---:|---:|"]
    for r in rows:
        v = r["verify"]
        again = "-"
        if v and "every" in v:
            worst = v["every"][v["worst"]]["median"]
            again = f"{worst:.2f}x vs {v['worst']} ({'ok' if v['no_slower_than_any_rejected'] else 'SLOWER'})"
        lines.append(f"| {Path(r['folder']).name} | {r['batch']} x {r['seq_len']} | {r['winner']} | "
                     f"{cell(r['over_openvino_defaults'])} | {cell(r['over_ort_int8'])} | {again} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--batch", type=_ints, default=[1, 8])
    p.add_argument("--seq-len", type=_ints, default=[16, 128, 384])
    p.add_argument("-t", "--time", type=float, default=4.0, help="seconds per candidate/variant and shape")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--table-only", action="store_true", help="print the table of an existing --output JSON")
    args = p.parse_args()
    if args.table_only:
        print(table(json.loads(args.output.read_text())["rows"]))
        return 0
    say = printer()
    rows = [one_shape(folder, b, s, args.time, say) for folder in args.folders for b in args.batch
            for s in args.seq_len]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"command": environment.command_line(), "environment": environment.record(),
                                       "rows": rows}, indent=1, default=str) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
