"""`pofa-deploy predict` throughput on SST-2 train: locally (one process) and on a 2-CPU Ray actor pool.

Both paths score the same length-sorted batches of the same rows with the same model folder and write the
same bytes (tests/test_predict.py holds that), so the ratio is the cost or gain of Ray's process pool alone.
Runs are interleaved (local, ray, local, ray, ...) so a drift of the machine hits both alike; each run scores
every row into a fresh output (no resume) and its time is the whole `predict()` call: reading, model compile
(actor start on Ray), scoring, writing. Ray itself is started once, before the first run
(`ray.init(num_cpus=2)`), as a cluster would be already up; that start is reported, not counted. One untimed
local warm-up run on 16 rows comes first (lazy imports, OpenVINO plugin load: costs a process pays once).

    python benchmarks/predict_bench.py                                   # 67k rows, synthetic sparse DistilBERT-base
    python benchmarks/predict_bench.py --model OUT_INT8 --repeats 3      # a folder written by pofa-deploy convert
    python benchmarks/predict_bench.py --limit 500 --arch tiny-distilbert --out /tmp/predict-smoke.json  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "pofa_deploy.cli"]
SST2_TRAIN = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
RAY_CPUS = 2


def converted_model(arch: str, work: Path) -> Path:
    """A synthetic 90%-sparse checkpoint of ``arch`` converted to INT8 (cached in ``work``)."""
    ckpt, int8 = work / f"{arch}-synth", work / f"{arch}-int8"
    if not (int8 / "pofa_report.json").is_file():
        subprocess.run([*CLI, "synth", "--arch", arch, "--sparsity", "0.9", "-o", str(ckpt), "--overwrite"], check=True)
        subprocess.run([*CLI, "convert", str(ckpt), "-o", str(int8), "--int8", "--seq-len", "128", "--overwrite"],
                       check=True)
    return int8


def corpus(data: Path, limit: int | None, work: Path) -> Path:
    """``data``, or its header and first ``limit`` rows in a copy."""
    if limit is None:
        return data
    lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
    path = work / f"{data.stem}-{limit}.tsv"
    path.write_text("".join(lines[: limit + 1]), encoding="utf-8")
    return path


def one_run(model: Path, source: Path, out: Path, *, ray: bool, batch_size: int, shard_size: int) -> dict[str, float]:
    from pofa_deploy.predict import PredictOptions, predict

    out.unlink(missing_ok=True)
    report = predict(PredictOptions(model=model, input=source, output=out, batch_size=batch_size,
                                    shard_size=shard_size, ray="local" if ray else None))
    assert report.scored_rows == report.rows and report.skipped_shards == 0
    return {"seconds": round(report.seconds, 3), "sentences_per_second": round(report.sentences_per_second, 1),
            "actors": report.actors or 0}


def summarise(runs: list[dict[str, float]], rows: int) -> dict[str, float]:
    median = statistics.median(r["seconds"] for r in runs)
    return {"median_seconds": round(median, 3), "sentences_per_second": round(rows / median, 1),
            "spread_seconds": [min(r["seconds"] for r in runs), max(r["seconds"] for r in runs)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="converted folder (default: synthesise and convert --arch)")
    ap.add_argument("--arch", default="distilbert-base", help="synthetic architecture when --model is not given")
    ap.add_argument("--data", type=Path, default=SST2_TRAIN, help="TSV with a sentence column")
    ap.add_argument("--limit", type=int, help="score only the first N rows (smoke runs)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each path")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--shard-size", type=int, default=4096)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "predict.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import ray

    from pofa_deploy.environment import record

    work = args.workdir or Path(tempfile.mkdtemp(prefix="pofa-predict-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model or converted_model(args.arch, work)
    source = corpus(args.data, args.limit, work)
    rows = sum(1 for line in source.read_text(encoding="utf-8").splitlines()[1:] if line.strip())
    t0 = time.perf_counter()
    ray.init(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray_start = time.perf_counter() - t0
    # untimed: the first predict() in a process pays once for lazy imports and OpenVINO's plugin load (~2.5 s
    # here), which every later local run skips; each Ray run starts new actor processes and pays it anyway
    one_run(model, corpus(source, 16, work), work / "warm-up.jsonl", ray=False, batch_size=args.batch_size,
            shard_size=args.shard_size)
    runs: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    try:
        for i in range(args.repeats):
            for name in ("local", "ray"):
                run = one_run(model, source, work / f"pred-{name}.jsonl", ray=name == "ray",
                              batch_size=args.batch_size, shard_size=args.shard_size)
                runs[name].append(run)
                print(f"round {i + 1}/{args.repeats} {name}: {run['seconds']} s, {run['sentences_per_second']} "
                      "sentences/s", file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
    same = (work / "pred-local.jsonl").read_bytes() == (work / "pred-ray.jsonl").read_bytes()
    local, on_ray = summarise(runs["local"], rows), summarise(runs["ray"], rows)
    result = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "environment": record(),
        "model": str(model), "synthetic": args.model is None, "data": str(args.data), "rows": rows,
        "batch_size": args.batch_size, "shard_size": args.shard_size, "repeats": args.repeats,
        "ray": {"cpus": RAY_CPUS, "actors": runs["ray"][0]["actors"], "start_seconds_not_counted": round(ray_start, 2)},
        "local": local, "ray_pool": on_ray,
        "ratio_ray_to_local": round(on_ray["sentences_per_second"] / local["sentences_per_second"], 3),
        # per interleaved round (local i, then ray i): the spread of the ratio, not only the ratio of medians
        "ratio_ray_to_local_per_round": [round(lo["seconds"] / ra["seconds"], 3)
                                         for lo, ra in zip(runs["local"], runs["ray"], strict=True)],
        "outputs_identical": same,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"local {local['sentences_per_second']} sentences/s, Ray ({RAY_CPUS} CPUs, "
          f"{result['ray']['actors']} actors) {on_ray['sentences_per_second']} sentences/s, ratio "
          f"{result['ratio_ray_to_local']}; outputs identical: {same}; wrote {args.out}")


if __name__ == "__main__":
    main()
