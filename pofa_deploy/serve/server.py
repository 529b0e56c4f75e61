"""Run KServe's ModelServer for one model, bound where the user said, and stop it by draining.

Two things KServe's own ``ModelServer.start`` does not do, and why this module starts the servers itself:
- it binds REST to 0.0.0.0 and gRPC to [::] whatever the caller wants; ``--host 127.0.0.1`` must mean
  loopback only (a model endpoint is not published by accident);
- on SIGTERM it does not wait for the single-process REST server. Here uvicorn's graceful shutdown
  (stop accepting, finish in-flight requests within ``grace_s``) runs first, then gRPC is stopped with
  the same grace, then the batcher is drained: a request accepted before SIGTERM is answered.

KServe parses ``sys.argv`` when ``kserve.model_server`` is imported; it is imported here with an empty
argument list so pofa-deploy's own flags are never read as KServe's.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@contextmanager
def _bare_argv() -> Iterator[None]:
    saved = sys.argv
    sys.argv = [saved[0] if saved else "pofa-deploy"]
    try:
        yield
    finally:
        sys.argv = saved


def import_kserve() -> ModuleType:
    """``kserve.model_server`` imported without letting it parse pofa-deploy's command line."""
    with _bare_argv():
        return importlib.import_module("kserve.model_server")


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    grpc_port: int | None  # None: no gRPC server
    workers: int
    grace_s: int = 30


def run(model: Any, endpoint: Endpoint, *, on_ready: Any = None) -> None:
    """Serve ``model`` (a loaded PofaModel) until SIGTERM/SIGINT, then drain and return."""
    ms = import_kserve()
    server = ms.ModelServer(http_port=endpoint.port, grpc_port=endpoint.grpc_port or 0,
                            workers=endpoint.workers, enable_grpc=endpoint.grpc_port is not None,
                            grace_period=endpoint.grace_s, enable_latency_logging=False)
    server.register_model(model)
    asyncio.run(_serve(ms, server, model, endpoint, on_ready))


class JsonByDefault:
    """ASGI middleware: a POST without the binary extension's Inference-Header-Content-Length header is
    JSON, whatever its Content-Type says (the v2 binary-data extension: without the header the whole body
    is the JSON request). tritonclient sends JSON-only requests with no Content-Type (its asyncio client
    with application/octet-stream), and KServe would otherwise read such a body as binary and refuse it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("method") == "POST":
            headers = scope.get("headers", [])
            length = next((v for k, v in headers if k.lower() == b"inference-header-content-length"), None)
            if length is None:
                json_type = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                scope = {**scope, "headers": [*json_type, (b"content-type", b"application/json")]}
            elif not length.strip().isdigit():  # KServe would answer int('abc') with a 500
                await _reply(send, 400, "Inference-Header-Content-Length must be the JSON part's size in bytes, "
                                        f"got {length.decode(errors='replace')!r}")
                return
        await self.app(scope, receive, send)


async def _reply(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class QuietRequests(logging.Filter):
    """KServe logs a line per request ("kserve.trace") and a full traceback for every 400; a client could
    flood the log with bad requests. Keep the log to events: trace lines go, a rejected request is one
    warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "kserve.trace":
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ == "InvalidInput":
            record.msg, record.args, record.exc_info, record.exc_text = f"rejected request: {exc}", (), None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def prepare_process() -> None:
    """What every serving process needs once (the parent, and each --workers process KServe spawns, which
    imports its own FastAPI app): the JSON middleware on KServe's app, and the quiet request log. Idempotent."""
    ms = import_kserve()
    if not getattr(ms.app, "_pofa_prepared", False):
        ms.app.add_middleware(JsonByDefault)
        ms.app._pofa_prepared = True
    quiet = QuietRequests()
    for name in ("kserve", "kserve.trace"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietRequests) for f in logger.filters):
            logger.addFilter(quiet)


async def _serve(ms: ModuleType, server: Any, model: Any, endpoint: Endpoint, on_ready: Any) -> None:
    server.setup_event_loop()
    prepare_process()
    rest = _rest_server(ms, server, endpoint)
    grpc = _GrpcServer(ms, server, endpoint) if endpoint.grpc_port is not None else None
    grpc_task = asyncio.create_task(grpc.serve()) if grpc else None
    stop_multi = _multi_stopper(rest) if endpoint.workers > 1 else None
    if on_ready is not None:
        on_ready()
    # uvicorn catches SIGTERM/SIGINT itself (single process): it stops accepting and finishes in-flight
    # requests; afterwards it re-raises the signal, which must then be harmless.
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if stop_multi is not None:
            stop_multi()
        await rest.start()
        if grpc is not None:
            await grpc.stop()
        if grpc_task is not None:
            await grpc_task
        await model.drain()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _rest_server(ms: ModuleType, server: Any, endpoint: Endpoint) -> Any:
    kwargs = dict(access_log_format=server.access_log_format, workers=endpoint.workers,
                  grace_period=endpoint.grace_s, event_loop=server.event_loop,
                  timeout_keep_alive=server.timeout_keep_alive)
    if endpoint.workers > 1:
        rest = ms.RESTServerMultiProcess(ms.FASTAPI_APP_IMPORT_STRING, server.dataplane,
                                         server.model_repository_extension, endpoint.port, **kwargs)
        rest._rest_server.config.host = endpoint.host
    else:
        rest = ms.RESTServer(ms.FASTAPI_APP_IMPORT_STRING, server.dataplane, server.model_repository_extension,
                             endpoint.port, **kwargs)
        rest.config.host = endpoint.host
    return rest


def _multi_stopper(rest: Any) -> Any:
    """With --workers, the parent only supervises its REST processes: SIGTERM/SIGINT tell it to stop them
    (each drains like a single server does)."""
    def install() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(rest.stop()))
    return install


class _GrpcServer:
    """KServe's gRPC inference service on ``host:grpc_port`` (KServe's own server binds [::])."""

    def __init__(self, ms: ModuleType, server: Any, endpoint: Endpoint) -> None:
        self._ms, self._server, self._endpoint = ms, server, endpoint
        self._grpc: Any = None

    async def serve(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from grpc import aio
        from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
        from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
        from kserve.protocol.grpc.servicer import InferenceServicer

        self._grpc = aio.server(ThreadPoolExecutor(max_workers=self._server.max_threads),
                                interceptors=(LoggingInterceptor(), ExceptionToStatusInterceptor()))
        servicer = InferenceServicer(self._server.dataplane, self._server.model_repository_extension)
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._grpc)
        host = f"[{self._endpoint.host}]" if ":" in self._endpoint.host else self._endpoint.host
        self._grpc.add_insecure_port(f"{host}:{self._endpoint.grpc_port}")
        await self._grpc.start()
        await self._grpc.wait_for_termination()

    async def stop(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace=self._endpoint.grace_s)
