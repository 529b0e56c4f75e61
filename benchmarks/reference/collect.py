"""Measure the SST-2 reference models built by train.sh and write results.json + pareto.png.

For the dense and the 90%-sparse model: SST-2 dev accuracy of PyTorch FP32, OpenVINO FP32 and
OpenVINO INT8 (evaluate.py), latency at batch 1 x 128 (sync) and throughput at batch 8 x 128
(async) from one interleaved benchmark run per model (pofa_deploy.bench), via pofa_deploy.tradeoff.

    python benchmarks/reference/collect.py [WORKDIR] [--data ../shared/data/sst2] [-t 10]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from pofa_deploy import tradeoff
from pofa_deploy.environment import cpu_model, has_amx

HERE = Path(__file__).resolve().parent


def stage_summary(folder: Path) -> dict[str, Any]:
    """What one `pofa-deploy finetune` run did and cost, from its finetune_report.json."""
    rep = json.loads((folder / "finetune_report.json").read_text())
    out = {k: rep.get(k) for k in ("steps", "epochs", "train_examples", "time_s", "threads", "teacher", "pruning",
                                   "totals_after", "dev")}
    out["zero_check"] = {k: v for k, v in rep["zero_check"].items() if k != "layers"}
    out["options"] = {k: v for k, v in rep["options"].items()
                      if k in ("model", "teacher", "distill_alpha", "temperature", "prune_to", "prune_start",
                               "prune_end", "prune_every", "max_steps", "batch_size", "lr", "warmup", "seq_len",
                               "seed")}
    return out


def gaps(work: Path, data: str) -> dict[str, Any]:
    """The two accuracy targets of issue 4 as paired differences on SST-2 dev, with 95% bootstrap
    intervals: one run per model, so the interval is the dev set's sampling noise, not seed noise."""
    from pofa_deploy.evaluate import EvaluateOptions, evaluate

    out = {}
    for name, model, other, target in (
            ("dense_minus_sparse", "dense", "sparse90", "< 4 points"),
            ("sparse_fp32_minus_sparse_int8", "sparse90", "sparse90-ov-int8", "< 1 point")):
        result = evaluate(EvaluateOptions(model=str(work / model), task="sst2", data=data, compare=str(work / other)),
                          progress=False)
        out[name] = {"model": model, "compare": other, "target": target, "agreement": result["agreement"],
                     **result["difference"]["model_minus_compare"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", type=Path, nargs="?", default=Path("work/reference"))
    ap.add_argument("--data", default="../shared/data/sst2")
    ap.add_argument("-t", "--time", type=float, default=10.0, help="seconds per variant in each benchmark")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stages", nargs="+", default=["dense", "sparse90"],
                    help="the recipe's training runs (folders in WORKDIR), in order: they make up the budget")
    ap.add_argument("--attempts", nargs="*", default=[],
                    help="other sparse training runs in WORKDIR that were tried and not chosen (recorded, not timed)")
    args = ap.parse_args()
    w = args.work
    sets = [tradeoff.ModelSet("dense", w / "dense", w / "dense-ov-fp32", w / "dense-ov-int8"),
            tradeoff.ModelSet("sparse 90%", w / "sparse90", w / "sparse90-ov-fp32", w / "sparse90-ov-int8")]
    points = tradeoff.measure(sets, task="sst2", data=args.data, seconds=args.time, rounds=args.rounds)
    print(tradeoff.table(points))
    budget = {name: stage_summary(w / name) for name in args.stages}
    result: dict[str, Any] = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "recipe": "benchmarks/reference/train.sh",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, AMX {'yes' if has_amx() else 'no'}",
        "budget": budget,
        "budget_total_train_minutes": round(sum(float(b["time_s"]) for b in budget.values()) / 60, 1),
        "attempts": {name: stage_summary(w / name) for name in args.attempts},
        "definitions": {
            "accuracy": "SST-2 dev (872 sentences) accuracy, %, max 128 tokens",
            "latency_ms": "median, batch 1 x 128 tokens, sync, interleaved rounds",
            "speedup_vs_pytorch": "median of per-round ratios PyTorch FP32 latency / variant latency, with IQR",
            "throughput": "samples/s, batch 8 x 128 tokens, async, interleaved rounds",
        },
        "points": tradeoff.to_json(points),
        "gaps": gaps(w, args.data),
    }
    (HERE / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    tradeoff.plot(points, HERE / "pareto.png", title="SST-2 dev accuracy vs throughput (batch 8 x 128, 2 cores)")
    for name, g in result["gaps"].items():
        print(f"{name}: {g['difference']:+.2f} points [{g['ci95_low']:+.2f}, {g['ci95_high']:+.2f}] "
              f"(target {g['target']})")
    print(f"wrote {HERE / 'results.json'} and {HERE / 'pareto.png'}")


if __name__ == "__main__":
    main()
