"""pofa-deploy INT8 against optimum-intel's own default INT8 export of the same checkpoint.

optimum-intel's default (`optimum-cli export openvino --weight-format int8`) compresses weights to
8 bits asymmetrically and keeps activations in floating point; pofa-deploy quantises weights and
activations with NNCF (symmetric weights, every zero kept). Both are timed with the benchmark
harness's runner in interleaved rounds (A B A B ...), sync, latency hint, at one shape, and the
per-round latency ratios are reported with their spread. The zero pattern of each is also counted.

    python benchmarks/vs_optimum_default.py CHECKPOINT OUR_INT8_FOLDER [-b 1] [--seq-len 128] [-t 20]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pofa_deploy.bench import Api, Variant
from pofa_deploy.bench.plan import Source
from pofa_deploy.bench.runners import OVRunner
from pofa_deploy.bench.stats import latency_stats, round_ratios, spread
from pofa_deploy.environment import available_cores, cpu_model, has_amx
from pofa_deploy.ir import ir_weights, read_model
from pofa_deploy.runtime_config import read_runtime_config


def export_optimum_default(checkpoint: Path, out: Path, task: str) -> None:
    cli = Path(sys.executable).with_name("optimum-cli")
    subprocess.run([str(cli), "export", "openvino", "--model", str(checkpoint), "--task", task,
                    "--weight-format", "int8", str(out)], check=True)


def encoder_zeros(xml: Path) -> dict[str, int]:
    ws = [w for w in ir_weights(read_model(xml)) if w.source and ".layer." in w.source]
    return {"layers": len(ws), "zeros": int(sum((w.effective == 0).sum() for w in ws)),
            "size": int(sum(w.effective.size for w in ws)), "dtypes": sorted({w.dtype for w in ws})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("ours", type=Path, help="pofa-deploy convert --int8 output of the same checkpoint")
    ap.add_argument("--task", default="text-classification")
    ap.add_argument("-b", "--batch", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("-t", "--time", type=float, default=20.0, help="seconds per variant, over all rounds")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/vs_optimum_default.json"))
    args = ap.parse_args()

    import openvino as ov

    theirs = Path(tempfile.mkdtemp(prefix="optimum-int8-")) / "ir"
    export_optimum_default(args.checkpoint, theirs, args.task)
    core = ov.Core()
    threads = available_cores()
    latency = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads)}
    sources = {
        "pofa-deploy int8": (args.ours, {**read_runtime_config(args.ours), **latency}),
        "optimum-intel default int8": (theirs, dict(latency)),
    }
    runners = {}
    for name, (folder, config) in sources.items():
        src = Source(variant=Variant.INT8, xml=folder / "openvino_model.xml", config=config)
        runners[name] = OVRunner(core, src, batch=args.batch, seq_len=args.seq_len, api=Api.SYNC,
                                 config=config, nireq=None, inputs_folder=args.ours)
        runners[name].warm(5)
    per_round = args.time / args.rounds
    samples: dict[str, list[list[float]]] = {name: [] for name in runners}
    for r in range(args.rounds):
        for name, runner in runners.items():
            result = runner.run(iterations=None, seconds=per_round)
            samples[name].append(list(result.latencies_ms))
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    medians = {name: [float(np.median(x)) for x in rounds] for name, rounds in samples.items()}
    ratios = round_ratios(medians["optimum-intel default int8"], medians["pofa-deploy int8"],
                          higher_is_better=False)
    result = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "threads": threads, "amx": has_amx()},
        "shape": {"batch": args.batch, "seq_len": args.seq_len},
        "latency_ms": {name: latency_stats([v for x in rounds for v in x]) for name, rounds in samples.items()},
        "speedup_pofa_vs_optimum_default": {"definition": "optimum median / pofa median, per round",
                                            "per_round": ratios, **spread(ratios)},
        "encoder_zeros": {"pofa-deploy int8": encoder_zeros(args.ours / "openvino_model.xml"),
                          "optimum-intel default int8": encoder_zeros(theirs / "openvino_model.xml")},
        "compiled_with": {name: runner.config for name, runner in runners.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    s = result["speedup_pofa_vs_optimum_default"]
    print(f"pofa-deploy INT8 vs optimum-intel default INT8: {s['median']:.2f}x [IQR {s['q1']:.2f}-{s['q3']:.2f}]; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
