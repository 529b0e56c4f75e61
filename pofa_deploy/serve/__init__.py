"""``pofa-deploy serve OUT``: a converted folder behind a KServe v2 (Open Inference) endpoint.

KServe's Python ModelServer serves REST (``GET /v2/health/ready``, ``POST /v2/models/NAME/infer``) and
gRPC; pofa-deploy supplies the model (``model.py``: the folder loaded with ``runtime.load``, raw-text or
token-tensor requests checked by ``protocol.py``) and dynamic batching (``batcher.py``). ``server.py``
binds the servers to ``--host`` and drains in-flight requests on SIGTERM.
"""

from __future__ import annotations

import errno
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, require_extra
from ..options import at_least, coerce_fields, flag_name, option

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # a URL path segment, as OVMS/KServe names are


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    # option() builds a dataclass field, so RUF009 (a call as a default) does not apply to these lines
    out: Path = option(positional=True, help="converted output folder (pofa-deploy convert MODEL -o OUT)")
    host: str = option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    port: int = option(8080, help="REST port")
    grpc_port: int | None = option(None, flags=("--grpc-port",), metavar="N",
                                   help="gRPC port (default: --port + 1; 0 turns gRPC off)")
    name: str | None = option(None, help="model name in the URLs (default: OUT's folder name)")
    workers: int = option(1, help="REST worker processes, each with its own compiled model")
    max_batch: int = option(8, flags=("--max-batch",), metavar="B",
                            help="most sentences run as one batch (requests arriving together are joined)")
    max_latency_ms: float = option(5.0, flags=("--max-latency-ms",), metavar="MS",
                                   help="longest a request waits for others to join its batch")
    max_request_rows: int = option(256, flags=("--max-request-rows",), metavar="N",
                                   help="most sentences one request may carry (more: HTTP 400)")
    threads: int | None = option(None, metavar="N",
                                 help="inference threads per worker (default: the folder's config; with "
                                      "--workers, CPUs / workers)")
    grace: int = option(30, metavar="S", help="seconds SIGTERM waits for in-flight requests")

    def __post_init__(self) -> None:
        coerce_fields(self)
        at_least(self, 1, "workers", "max_batch", "max_request_rows", "threads", "grace")
        at_least(self, 0, "max_latency_ms")
        for field, lowest in (("port", 1), ("grpc_port", 0)):
            value = getattr(self, field)
            if value is not None and not lowest <= value <= 65535:
                raise InputError(f"{flag_name(ServeOptions, field)} must be a port number ({lowest}-65535), "
                                 f"got {value}")
        if self.grpc_port is None and self.port == 65535:
            raise InputError("--port 65535 leaves no default gRPC port (--port + 1); pass --grpc-port N, or 0 for none")
        if self.name is not None and not NAME_RE.match(self.name):
            raise InputError(f"--name {self.name!r}: use letters, digits, '_', '.' or '-' (it is part of the URL)")

    @property
    def model_name(self) -> str:
        if self.name is not None:
            return self.name
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", Path(self.out).resolve().name).lstrip("-_.") or "model"
        return name[:128]

    @property
    def grpc(self) -> int | None:
        if self.grpc_port == 0:
            return None
        return self.grpc_port if self.grpc_port is not None else self.port + 1


OPTIONS = ServeOptions


def check_port_free(host: str, port: int, flag: str) -> None:
    """Fail now, in one line, rather than after the model has loaded."""
    try:
        family, *_, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"--host {host}: not an address of this machine ({exc}); e.g. 127.0.0.1 or 0.0.0.0") from None
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InputError(f"--host {host}: not an address of this machine; e.g. 127.0.0.1 or 0.0.0.0") from None
            raise InputError(f"{flag} {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                             f"choose another {flag} or stop what uses it") from None


def check_folder(out: Path) -> None:
    """A converted text-classification folder. Other heads are refused: a QA model's two outputs or a
    feature extractor's [N, S, H] states padded to whichever requests shared a batch are not what the
    v2 contract here (``logits`` [N, labels], ``label``) promises."""
    from ..checkpoint import infer_task, read_config
    from ..ir import ir_xml

    if not out.is_dir():
        raise InputError(f"{out}: not a folder; pass a folder written by pofa-deploy convert")
    if not ir_xml(out).is_file():
        raise InputError(f"{out}: no OpenVINO IR (openvino_model.xml); convert a checkpoint first with "
                         "pofa-deploy convert")
    task = infer_task(out, read_config(out)).value
    if task != "text-classification":
        raise InputError(f"{out}: a {task} model; serve answers text-classification models (logits and a "
                         "label per sentence): convert with --task text-classification")


def build_model(options: ServeOptions) -> object:
    """The loaded KServe model for ``options`` (raises PofaError for a bad folder)."""
    from ..environment import available_cores
    from .model import ModelSettings, PofaModel

    threads = options.threads
    if threads is None and options.workers > 1:  # the CPUs this process may use (affinity), split
        threads = max(1, available_cores() // options.workers)
    settings = ModelSettings(max_batch=options.max_batch, max_latency_ms=options.max_latency_ms,
                             max_request_rows=options.max_request_rows, threads=threads)
    model = PofaModel(options.model_name, Path(options.out), settings)
    model.load()
    return model


def serve(options: ServeOptions) -> None:
    """Load OUT and serve it until SIGTERM/SIGINT (then drain in-flight requests and return)."""
    require_extra("kserve", extra="serve", command="serve")
    out = Path(options.out)
    check_folder(out)
    check_port_free(options.host, options.port, "--port")
    if options.grpc is not None:
        if options.grpc == options.port:
            raise InputError(f"--grpc-port {options.grpc} is the REST --port; choose another (0 turns gRPC off)")
        check_port_free(options.host, options.grpc, "--grpc-port")
    from .server import Endpoint, import_kserve, run

    import_kserve()
    model = build_model(options)
    endpoint = Endpoint(options.host, options.port, options.grpc, options.workers, options.grace)
    url = f"http://{options.host}:{options.port}/v2/models/{options.model_name}/infer"
    grpc = f"; gRPC on {options.host}:{options.grpc}" if options.grpc else ""

    def ready() -> None:
        print(f"pofa-deploy: serving {out} as {options.model_name!r}: POST {url}{grpc} "
              f"(batches up to {options.max_batch} within {options.max_latency_ms:g} ms)", file=sys.stderr, flush=True)

    run(model, endpoint, on_ready=ready)
    # with --workers each worker process batched and drained its own requests
    stats = model.stats  # type: ignore[attr-defined]
    done = f"{options.workers} worker processes drained" if options.workers > 1 else f"answered {stats}"
    print(f"pofa-deploy: stopped serving {options.model_name!r}: {done}", file=sys.stderr, flush=True)


def main(options: ServeOptions) -> int:
    serve(options)
    return 0
