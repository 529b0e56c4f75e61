"""pofa-deploy serve: the v2 request rules, the dynamic batcher, and a real server driven by real clients.

The server tests start ``pofa-deploy serve`` as a subprocess on loopback (free ports) and talk to it with
tritonclient's v2 HTTP client, raw HTTP for malformed bodies, and KServe's gRPC stub.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pofa_deploy.cli import main as cli_main
from pofa_deploy.serve.batcher import Draining, MicroBatcher
from pofa_deploy.serve.protocol import Limits, RequestError, Tensor, parse, stack

MODEL_INPUTS = ["input_ids", "attention_mask"]
LIMITS = Limits(max_rows=4, max_seq_len=16, vocab_size=100, type_vocab_size=2)


def text(values: list[str], name: str = "text", shape: tuple[int, ...] | None = None,
         datatype: str = "BYTES") -> Tensor:
    return Tensor(name, datatype, shape or (len(values),), np.array([v.encode() for v in values], dtype=object))


def ids(array: list[list[int]], name: str = "input_ids", datatype: str = "INT64") -> Tensor:
    a = np.array(array, dtype=np.int64)
    return Tensor(name, datatype, a.shape, a)


# --- protocol ---------------------------------------------------------------------------------------


def test_text_requests_decode_and_key_by_pairs() -> None:
    p = parse([text(["a", "b"])], model_inputs=MODEL_INPUTS, limits=LIMITS)
    assert (p.key, p.rows, p.texts, p.pairs) == (("text", False), 2, ["a", "b"], None)
    q = parse([text(["a"], shape=(1, 1)), text(["b"], name="text_pair")], model_inputs=MODEL_INPUTS, limits=LIMITS)
    assert (q.key, q.pairs) == (("text", True), ["b"])
    texts, pairs, tokens = stack([q, q])
    assert (texts, pairs, tokens) == (["a", "a"], ["b", "b"], None)


def test_token_requests_fill_the_optional_inputs() -> None:
    p = parse([ids([[1, 2, 3]])], model_inputs=[*MODEL_INPUTS, "token_type_ids"], limits=LIMITS)
    assert p.key == ("tokens", 3) and p.tokens is not None
    np.testing.assert_array_equal(p.tokens["attention_mask"], [[1, 1, 1]])
    np.testing.assert_array_equal(p.tokens["token_type_ids"], [[0, 0, 0]])
    _, _, joined = stack([p, p])
    assert joined is not None and joined["input_ids"].shape == (2, 3)


@pytest.mark.parametrize(("inputs", "message"), [
    ([], "no inputs"),
    ([text(["a"], name="sentence")], "unknown input 'sentence'"),
    ([text(["a"]), text(["a"])], "given twice"),
    ([text(["a"]), ids([[1]])], "either raw text"),
    ([text(["a"], name="text_pair")], "needs 'text'"),
    ([Tensor("text", "FP32", (1,), np.zeros(1, np.float32))], "datatype FP32"),
    ([Tensor("text", "BYTES", (0,), np.array([], dtype=object))], "is empty"),
    ([text(["a"] * 5)], "more than this server takes"),
    ([text(["a", "b"], shape=(1, 2))], "expected \\[N\\] or \\[N, 1\\]"),
    ([text(["a", "b"]), text(["c"], name="text_pair")], "one pair per text"),
    ([Tensor("text", "BYTES", (1,), np.array([b"\xff\xfe"], dtype=object))], "not UTF-8"),
    ([Tensor("text", "BYTES", (1,), lambda: np.zeros(3).reshape(7))], "cannot be decoded"),
    ([ids([[1, 2]], name="attention_mask")], "need 'input_ids'"),
    ([ids([[1] * 17])], "takes 1 to 16"),
    ([ids([[1, 2, 100]])], "holds 100; this model takes values 0 to 99"),
    ([ids([[1, -2]])], "holds -2"),
    ([ids([[1, 2]]), ids([[1, 1, 1]], name="attention_mask")], "has shape \\[1, 3\\]"),
    ([ids([[1, 2]]), ids([[1, 2]], name="attention_mask", datatype="FP32")], "INT64 or INT32"),
])
def test_malformed_requests_are_request_errors(inputs: list[Tensor], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse(inputs, model_inputs=MODEL_INPUTS, limits=LIMITS)


# --- batcher ----------------------------------------------------------------------------------------


def _batcher(calls: list[tuple[object, list[int]]], **kw: object) -> MicroBatcher:
    def run(key: object, payloads: list[int]) -> list[int]:
        calls.append((key, list(payloads)))
        time.sleep(0.02)
        if -1 in payloads:
            raise ValueError("boom")
        return [p * 10 for p in payloads]

    return MicroBatcher(run, **{"max_batch": 4, "max_latency_ms": 50.0, "parallel": 1, **kw})  # type: ignore[arg-type]


def test_requests_arriving_together_share_a_batch_and_keys_never_mix() -> None:
    calls: list[tuple[object, list[int]]] = []

    async def go() -> list[int]:
        b = _batcher(calls)
        jobs = [b.submit("a" if i % 3 else "b", 1, i) for i in range(9)]
        return list(await asyncio.gather(*jobs))

    assert asyncio.run(go()) == [i * 10 for i in range(9)]
    assert all(len(p) <= 4 for _, p in calls) and len(calls) < 9
    for key, payloads in calls:  # "b" requests are 0, 3, 6
        assert all((p % 3 == 0) == (key == "b") for p in payloads)


def test_a_lone_request_waits_at_most_the_latency_budget() -> None:
    calls: list[tuple[object, list[int]]] = []

    async def go() -> float:
        b = _batcher(calls, max_latency_ms=30.0)
        start = time.monotonic()
        await b.submit("a", 1, 1)
        return time.monotonic() - start

    elapsed = asyncio.run(go())
    assert 0.03 <= elapsed < 0.5 and calls == [("a", [1])]


def test_drain_answers_a_request_that_is_waiting_for_company() -> None:
    """A request popped from the queue and waiting (200 ms budget) for others is neither queued nor running;
    drain must still answer it, at once rather than after the budget."""
    calls: list[tuple[object, list[int]]] = []

    async def go() -> tuple[object, float]:
        b = _batcher(calls, max_latency_ms=200.0)
        pending = asyncio.ensure_future(b.submit("a", 1, 5))
        await asyncio.sleep(0.02)
        assert b.pending == 1
        start = time.monotonic()
        await b.drain()
        return pending.result(), time.monotonic() - start

    result, took = asyncio.run(go())
    assert result == 50 and took < 0.15 and calls == [("a", [5])]


def test_a_runner_returning_the_wrong_count_fails_its_requests() -> None:
    async def go() -> None:
        b = MicroBatcher(lambda key, payloads: [], max_batch=2, max_latency_ms=0.0)
        with pytest.raises(RuntimeError, match="returned 0 results for 1"):
            await asyncio.wait_for(b.submit("a", 1, 1), 5)

    asyncio.run(go())


def test_a_failing_batch_fails_only_its_requests_and_drain_refuses_new_ones() -> None:
    calls: list[tuple[object, list[int]]] = []

    async def go() -> None:
        b = _batcher(calls, max_latency_ms=0.0)
        with pytest.raises(ValueError, match="boom"):
            await b.submit("a", 1, -1)
        assert await b.submit("a", 1, 2) == 20
        pending = asyncio.ensure_future(b.submit("a", 1, 3))
        await asyncio.sleep(0)
        await b.drain()
        assert pending.result() == 30  # accepted before drain: answered
        with pytest.raises(Draining):
            await b.submit("a", 1, 4)

    asyncio.run(go())


# --- a real server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, folder: Path, *extra: str) -> None:
        self.port, self.grpc_port = free_port(), free_port()
        self.name = folder.name
        # a file, not a pipe: a server blocked on a full pipe nobody reads would look like a hang
        self.log = folder.parent / f"serve-{self.port}.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pofa_deploy", "serve", str(folder), "--port", str(self.port),
                 "--grpc-port", str(self.grpc_port), *extra],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "POFA_PROBE": "off"})
        deadline = time.monotonic() + 120
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.3)

    def ready(self) -> bool:
        try:
            status, _ = self.request("GET", "/v2/health/ready")
            return status == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body, {"Content-Type": "application/json"} if headers is None else headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else {}

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60), self.log.read_text()


@pytest.fixture(scope="module")
def served(tiny_int8: Callable[..., Path]) -> Iterator[tuple[Server, Path]]:
    folder = tiny_int8()
    server = Server(folder, "--max-latency-ms", "20")
    yield server, folder
    if server.proc.poll() is None:
        server.stop()


def test_v2_client_gets_the_models_scores_for_text_pairs_and_tokens(served: tuple[Server, Path]) -> None:
    import tritonclient.http as httpclient

    from pofa_deploy.textmodel import open_text_model

    server, folder = served
    local = open_text_model(folder)
    sentences = ["a fine, moving film", "dull", "neither here nor there"]
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_ready() and client.is_model_ready(server.name)
    meta = client.get_model_metadata(server.name)
    assert {i["name"] for i in meta["inputs"]} >= {"text", "text_pair", "input_ids"}

    inp = httpclient.InferInput("text", [3], "BYTES")
    inp.set_data_from_numpy(np.array([s.encode() for s in sentences], dtype=object))  # binary extension
    result = client.infer(server.name, [inp])
    expected = local.score(sentences)
    np.testing.assert_allclose(result.as_numpy("logits"), expected.logits, atol=1e-4)
    labels = [x.decode() if isinstance(x, bytes) else str(x) for x in result.as_numpy("label")]
    assert labels == expected.labels

    first, second = httpclient.InferInput("text", [1], "BYTES"), httpclient.InferInput("text_pair", [1], "BYTES")
    first.set_data_from_numpy(np.array([b"a premise"], dtype=object), binary_data=False)
    second.set_data_from_numpy(np.array([b"a hypothesis"], dtype=object), binary_data=False)
    paired = client.infer(server.name, [first, second]).as_numpy("logits")
    np.testing.assert_allclose(paired, local.score(["a premise"], ["a hypothesis"]).logits, atol=1e-4)

    feed = local.encode(sentences[:2])
    tensors = []
    for name, array in feed.items():
        t = httpclient.InferInput(name, list(array.shape), "INT64")
        t.set_data_from_numpy(array)
        tensors.append(t)
    np.testing.assert_allclose(client.infer(server.name, tensors).as_numpy("logits"), expected.logits[:2], atol=1e-4)


@pytest.mark.parametrize(("body", "status", "message"), [
    (b'{"inputs": [', 422, "JSON"),
    (b'{"inputs": []}', 400, "no inputs"),
    (b'{"inputs": [{"name": "text", "datatype": "INT64", "shape": [1], "data": [1]}]}', 400, "raw text is BYTES"),
    (b'{"inputs": [{"name": "words", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}', 400, "unknown input"),
    (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": ["a"]}]}', 400, "cannot be decoded"),
    (json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [300], "data": ["a"] * 300}]}).encode(),
     400, "--max-request-rows"),
    (b'{"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [1, 99999999]}]}', 400,
     "takes values 0 to"),
    # numpy would score these as the text "None" / "5", or truncate 1.7 and parse "1": refused instead
    (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [null]}]}', 400, "holds null"),
    (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [5]}]}', 400, "send strings only"),
    (b'{"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [1.7, 2]}]}', 400,
     "send integers only"),
    (b'{"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": ["1", "2"]}]}', 400,
     "send integers only"),
    (b'{"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [1, true]}]}', 400,
     "send integers only"),
    (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}], '
     b'"outputs": [{"name": "nope"}]}', 400, "unknown output 'nope'"),
])
def test_malformed_requests_get_4xx_and_the_server_stays_up(served: tuple[Server, Path], body: bytes, status: int,
                                                            message: str) -> None:
    server, _ = served
    got, reply = server.request("POST", f"/v2/models/{server.name}/infer", body)
    assert got == status and message in json.dumps(reply)
    assert server.ready()
    assert server.request("POST", "/v2/models/nope/infer", b'{"inputs": []}')[0] == 404


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "application/octet-stream"}])
def test_a_body_without_the_binary_header_is_json_whatever_its_content_type(served: tuple[Server, Path],
                                                                            headers: dict[str, str]) -> None:
    """tritonclient sends JSON-only requests without a Content-Type (sync) or as octet-stream (asyncio)."""
    server, _ = served
    body = b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}]}'
    status, reply = server.request("POST", f"/v2/models/{server.name}/infer", body, headers)
    assert status == 200, reply


def test_only_the_requested_outputs_come_back(served: tuple[Server, Path]) -> None:
    server, _ = served
    body = (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}], '
            b'"outputs": [{"name": "label"}]}')
    status, reply = server.request("POST", f"/v2/models/{server.name}/infer", body)
    assert status == 200 and [o["name"] for o in reply["outputs"]] == ["label"]  # type: ignore[index]


def test_a_malformed_binary_header_is_a_400_not_a_500(served: tuple[Server, Path]) -> None:
    server, _ = served
    status, reply = server.request("POST", f"/v2/models/{server.name}/infer", b"{}",
                                   {"Inference-Header-Content-Length": "abc"})
    assert status == 400 and "Inference-Header-Content-Length" in str(reply["error"])


def test_grpc_serves_the_same_model(served: tuple[Server, Path]) -> None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as stubs

    from pofa_deploy.textmodel import open_text_model

    server, folder = served
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = stubs.GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        request = pb.ModelInferRequest(model_name=server.name, inputs=[pb.ModelInferRequest.InferInputTensor(
            name="text", datatype="BYTES", shape=[2], contents=pb.InferTensorContents(bytes_contents=[b"ok", b"no"]))])
        reply = stub.ModelInfer(request, timeout=30)
        with pytest.raises(grpc.RpcError) as bad:
            stub.ModelInfer(pb.ModelInferRequest(model_name=server.name), timeout=30)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    logits_at = [o.name for o in reply.outputs].index("logits")
    if reply.raw_output_contents:
        logits = np.frombuffer(reply.raw_output_contents[logits_at], dtype=np.float32).reshape(2, -1)
    else:
        logits = np.array(reply.outputs[logits_at].contents.fp32_contents, dtype=np.float32).reshape(2, -1)
    np.testing.assert_allclose(logits, open_text_model(folder).score(["ok", "no"]).logits, atol=1e-4)


def test_concurrent_load_is_batched_and_sigterm_drains_in_flight_requests(tiny_int8: Callable[..., Path]) -> None:
    """16 clients at once; SIGTERM arrives while they wait in the batcher (2 s budget): every one is
    answered correctly, the server exits 0 and its last line counts fewer batches than requests."""
    import tritonclient.http as httpclient

    folder = tiny_int8()
    server = Server(folder, "--max-latency-ms", "2000", "--max-batch", "32", "--grpc-port", "0")
    sentences = [f"sentence number {i}" for i in range(16)]

    def one(sentence: str) -> np.ndarray:
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=60)
        inp = httpclient.InferInput("text", [1], "BYTES")
        inp.set_data_from_numpy(np.array([sentence.encode()], dtype=object))
        return client.infer(server.name, [inp]).as_numpy("logits")[0]

    try:
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(one, s) for s in sentences]
            time.sleep(1.0)  # every request accepted and queued, none run yet
            server.proc.send_signal(signal.SIGTERM)
            results = [f.result(timeout=60) for f in futures]
        code, err = server.proc.wait(timeout=60), server.log.read_text()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    from pofa_deploy.textmodel import open_text_model

    np.testing.assert_allclose(np.stack(results), open_text_model(folder).score(sentences).logits, atol=1e-4)
    assert code == 0, err[-2000:]
    assert "kserve.trace" not in err  # the log holds events, not a line per request
    last = err.strip().splitlines()[-1]
    assert "answered 16 requests (16 rows) in" in last
    assert int(last.split(" in ")[1].split()[0]) < 16


# --- bad command lines ------------------------------------------------------------------------------


def test_bad_serve_command_lines_are_one_line_errors(tiny_int8: Callable[..., Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tiny_int8()
    capsys.readouterr()  # the fixture's conversion output
    features = tmp_path / "features"
    shutil.copytree(folder, features)
    config = json.loads((features / "config.json").read_text())
    (features / "config.json").write_text(json.dumps({**config, "architectures": ["DistilBertModel"]}))
    cases = [
        (["serve", str(tmp_path / "nowhere")], 2, "not a folder"),
        (["serve", str(tmp_path)], 2, "no OpenVINO IR"),
        (["serve", str(folder), "--port", "0"], 2, "--port must be a port number (1-65535)"),
        (["serve", str(folder), "--name", "a/b"], 2, "--name 'a/b'"),
        (["serve", str(folder), "--max-batch", "0"], 2, "--max-batch must be a positive integer"),
        (["serve", str(folder), "--port", "65535"], 2, "--port 65535 leaves no default gRPC port"),
        (["serve", str(folder), "--host", "nosuchhost.invalid"], 2, "--host nosuchhost.invalid: not an address"),
        (["serve", str(features)], 2, "a feature-extraction model; serve answers text-classification"),
    ]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cases.append((["serve", str(folder), "--port", str(port)], 2, f"--port {port}: cannot listen"))
        for argv, code, message in cases:
            assert cli_main(argv) == code, argv
            err = capsys.readouterr().err.strip()
            assert message in err and len(err.splitlines()) == 1, err
    import importlib

    real = importlib.import_module

    def no_kserve(name: str, *a: object) -> object:
        if name == "kserve":
            raise ModuleNotFoundError("No module named 'kserve'", name="kserve")
        return real(name, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib, "import_module", no_kserve)
    assert cli_main(["serve", str(folder)]) == 7
    assert "pip install 'pofa-deploy[serve]'" in capsys.readouterr().err


def test_workers_are_processes_each_with_its_own_model(tiny_int8: Callable[..., Path]) -> None:
    """--workers 2: KServe forks two REST processes from a pickled model; each compiles its own copy, so both
    answer, and SIGTERM stops them all (exit 0)."""
    folder = tiny_int8()
    server = Server(folder, "--workers", "2", "--grpc-port", "0")
    try:
        body = b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}]}'
        # no Content-Type (tritonclient's JSON-only requests): each worker process needs the JSON middleware too
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: server.request("POST", f"/v2/models/{server.name}/infer", body, {}),
                                    range(8)))
        assert all(status == 200 for status, _ in replies), replies
        code, log = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    assert code == 0, log[-2000:]
    assert log.count("Started child process") == 2 and "2 worker processes drained" in log
