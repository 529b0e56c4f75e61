"""Issue 12's serving target: `pofa-deploy serve` on loopback with concurrent clients against the same model
run the way `benchmark -api async` runs it (an AsyncInferQueue with the plugin's optimal number of requests,
no server, no client).

Both sides use one compiled configuration: the server loads OUT with pofa_deploy.load, and so does the
reference here. Each client request is one raw-text sentence of exactly --seq-len tokens (so both sides
run the same shapes; the server tokenises, batches up to --max-batch and answers over HTTP). The reference
runs [1, seq_len] token tensors ("the same model and batch"), and, for context, [max_batch, seq_len].

Rounds interleave reference and server (the server idles while the reference runs); ratios are per round,
reported as median [min-max]. The clients (tritonclient's asyncio v2 HTTP client, --clients coroutines in
this process) share the machine with the server: that is the loopback deployment being measured.

    .venv/bin/python benchmarks/serve_bench.py --model work/minilm-sst2-int8 --seq-len 128 \
        --output benchmarks/results/serve/CPU.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pofa_deploy.environment import command_line, record
from pofa_deploy.runtime import load


def sentence_of(tokenizer: Any, seq_len: int) -> str:
    """A sentence that tokenises to exactly seq_len tokens (special tokens included)."""
    text = " ".join(["movie"] * (seq_len - 2))
    n = len(tokenizer(text)["input_ids"])
    if n != seq_len:
        raise SystemExit(f"could not build a {seq_len}-token sentence (got {n})")
    return text


def reference(loaded: Any, batch: int, seq_len: int, seconds: float) -> float:
    """Sentences/s of an AsyncInferQueue at [batch, seq_len], nireq = the plugin's optimal number."""
    import openvino as ov

    nireq = int(loaded.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    feed = {n: np.ones((batch, seq_len), dtype=np.int64) for n in loaded.input_names}
    queue = ov.AsyncInferQueue(loaded.compiled, nireq)
    for _ in range(nireq):  # warm-up
        queue.start_async(feed)
    queue.wait_all()
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        queue.start_async(feed)
        done += 1
    queue.wait_all()
    return done * batch / (time.perf_counter() - start)


class Server:
    def __init__(self, folder: Path, max_batch: int, max_latency_ms: float) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.name = "bench"
        # a file, not a pipe: the server's access log would fill a pipe nobody reads and block it
        self.log = Path(tempfile.mkdtemp()) / "serve.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pofa_deploy", "serve", str(folder), "--port", str(self.port), "--grpc-port",
                 "0", "--name", self.name, "--max-batch", str(max_batch), "--max-latency-ms", str(max_latency_ms)],
                stdout=log, stderr=subprocess.STDOUT)
        import urllib.request

        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("server did not start")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        lines = self.log.read_text().strip().splitlines()
        return lines[-1] if lines else ""


async def load_test(port: int, name: str, text: str, clients: int, seconds: float) -> dict[str, float]:
    import tritonclient.http.aio as aioclient

    client = aioclient.InferenceServerClient(url=f"127.0.0.1:{port}", conn_limit=clients)
    data = np.array([text.encode()], dtype=object)
    latencies: list[float] = []

    async def one_client(deadline: float) -> None:
        while time.perf_counter() < deadline:
            inp = aioclient.InferInput("text", [1], "BYTES")
            inp.set_data_from_numpy(data)
            t0 = time.perf_counter()
            result = await client.infer(name, [inp])
            latencies.append(time.perf_counter() - t0)
            if result.as_numpy("logits") is None:
                raise SystemExit("no logits in the reply")

    await asyncio.gather(*(one_client(time.perf_counter() + 1.0) for _ in range(clients)))  # warm-up
    latencies.clear()
    start = time.perf_counter()
    await asyncio.gather(*(one_client(start + seconds) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    await client.close()
    ms = np.array(latencies) * 1000
    return {"sentences_per_s": len(latencies) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "requests": len(latencies)}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-latency-ms", type=float, default=5.0)
    ap.add_argument("--time", type=float, default=10.0, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    import transformers

    text = sentence_of(transformers.AutoTokenizer.from_pretrained(str(args.model)), args.seq_len)
    loaded = load(args.model)  # the reference's model, compiled once as the server compiles its own
    server = Server(args.model, args.max_batch, args.max_latency_ms)
    rounds = []
    try:
        for r in range(args.rounds):
            row: dict[str, Any] = {"round": r + 1}
            row["async_b1"] = reference(loaded, 1, args.seq_len, args.time)
            row["serve"] = asyncio.run(load_test(server.port, server.name, text, args.clients, args.time))
            row[f"async_b{args.max_batch}"] = reference(loaded, args.max_batch, args.seq_len, args.time)
            row["ratio_vs_async_b1"] = row["serve"]["sentences_per_s"] / row["async_b1"]
            row[f"ratio_vs_async_b{args.max_batch}"] = row["serve"]["sentences_per_s"] / row[f"async_b{args.max_batch}"]
            rounds.append(row)
            print(json.dumps(row), flush=True)
    finally:
        last_line = server.stop()
    ratio = spread([r["ratio_vs_async_b1"] for r in rounds])
    result = {
        "schema": "pofa-deploy.serve-bench/1",
        "command": command_line(),
        "environment": record(),
        "model": str(args.model),
        "seq_len": args.seq_len, "clients": args.clients, "max_batch": args.max_batch,
        "max_latency_ms": args.max_latency_ms, "seconds_per_measurement": args.time,
        "rounds": rounds,
        "serve_sentences_per_s": spread([r["serve"]["sentences_per_s"] for r in rounds]),
        "serve_p50_ms": spread([r["serve"]["p50_ms"] for r in rounds]),
        "serve_p99_ms": spread([r["serve"]["p99_ms"] for r in rounds]),
        "async_b1_sentences_per_s": spread([r["async_b1"] for r in rounds]),
        f"async_b{args.max_batch}_sentences_per_s": spread([r[f"async_b{args.max_batch}"] for r in rounds]),
        "ratio_serve_vs_async_b1": ratio,
        # context: the server batches up to --max-batch, so this is its ceiling at that batch
        f"ratio_serve_vs_async_b{args.max_batch}": spread([r[f"ratio_vs_async_b{args.max_batch}"] for r in rounds]),
        "target": "serve >= 0.70 x benchmark -api async at the same model and batch (each request is one "
                  "sentence: batch 1)",
        "target_met": ratio["median"] >= 0.70,
        "server_last_line": last_line,
    }
    print(json.dumps({k: result[k] for k in ("serve_sentences_per_s", "serve_p50_ms", "serve_p99_ms",
                                            "async_b1_sentences_per_s", "ratio_serve_vs_async_b1",
                                            f"ratio_serve_vs_async_b{args.max_batch}", "target_met")},
                     indent=1))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
