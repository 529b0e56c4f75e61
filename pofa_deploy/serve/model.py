"""The converted folder as a KServe model: v2 requests in, batched OpenVINO inference, v2 responses out.

KServe's ModelServer owns HTTP, gRPC, health and metadata; this class owns the model: it loads the
folder with ``textmodel.open_text_model`` (so ``runtime.load`` applies the tuned choice, the sparse-kernel
extension and the crash guard), checks each request with ``protocol.parse`` (a breach is KServe's
InvalidInput: HTTP 400 / gRPC INVALID_ARGUMENT) and hands it to the ``MicroBatcher``.

With ``--workers N`` KServe starts N REST processes by pickling the registered model; the compiled model
cannot be pickled, so ``__getstate__`` drops it and each worker process compiles its own copy.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput, ServerNotReady
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from . import protocol
from .batcher import BatchStats, Draining, MicroBatcher


@dataclass(frozen=True)
class ModelSettings:
    """How the server runs the model (from ServeOptions)."""

    max_batch: int
    max_latency_ms: float
    max_request_rows: int
    threads: int | None = None  # INFERENCE_NUM_THREADS per worker process (None: the folder's config)


class PofaModel(Model):
    """One converted folder served under ``name`` (see module docstring)."""

    def __init__(self, name: str, folder: Path, settings: ModelSettings) -> None:
        super().__init__(name)
        self.folder = folder
        self.settings = settings
        self.text_model: Any = None  # textmodel.TextModel once loaded
        self._batcher: MicroBatcher | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._limits: protocol.Limits | None = None  # set by load()
        self._output_names: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------------

    def load(self) -> bool:
        from ..textmodel import open_text_model

        self.text_model = open_text_model(self.folder, threads=self.settings.threads)
        config = self.text_model.config
        self._limits = protocol.Limits(max_rows=self.settings.max_request_rows, max_seq_len=self.text_model.max_length,
                                       vocab_size=_int_or_none(config.get("vocab_size")),
                                       type_vocab_size=_int_or_none(config.get("type_vocab_size")))
        self._output_names = {o["name"] for o in self.get_output_types()}
        # one inference now, so the first client does not pay for the plugin's lazy set-up
        self.text_model.score(["warm up"])
        self.ready = True
        return self.ready

    @property
    def parallel(self) -> int:
        """Batches run at once: the in-flight requests tune measured (tune_report.json's nireq), else the
        compiled model's optimal number of infer requests (one per stream)."""
        tuned = self.text_model.loaded.tuned or {}
        if isinstance(tuned.get("nireq"), int) and tuned["nireq"] > 0:
            return int(tuned["nireq"])
        try:
            return max(1, int(self.text_model.loaded.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except (RuntimeError, TypeError, ValueError):
            return 1

    @property
    def batcher(self) -> MicroBatcher:
        # created on first use, inside the serving event loop (a worker process has its own loop)
        if self._batcher is None:
            self._executor = ThreadPoolExecutor(self.parallel, thread_name_prefix="pofa-infer")
            self._batcher = MicroBatcher(self._run_batch, max_batch=self.settings.max_batch,
                                         max_latency_ms=self.settings.max_latency_ms, parallel=self.parallel,
                                         executor=self._executor)
        return self._batcher

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(text_model=None, _batcher=None, _executor=None, ready=False)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from .server import prepare_process

        self.__dict__.update(state)
        prepare_process()  # a --workers process imports its own FastAPI app: same middleware and log rules
        self.load()  # and compiles its own copy of the model

    @property
    def stats(self) -> BatchStats:
        return self._batcher.stats if self._batcher is not None else BatchStats()

    async def drain(self) -> None:
        if self._batcher is not None:
            await self._batcher.drain()

    # -- protocol -----------------------------------------------------------------------------------

    def get_input_types(self) -> list[dict[str, Any]]:
        text = [{"name": protocol.TEXT, "datatype": "BYTES", "shape": [-1]},
                {"name": protocol.TEXT_PAIR, "datatype": "BYTES", "shape": [-1]}]
        tokens = [{"name": n, "datatype": "INT64", "shape": [-1, -1]} for n in self.text_model.input_names]
        return text + tokens

    def get_output_types(self) -> list[dict[str, Any]]:
        out = [{"name": "logits", "datatype": "FP32", "shape": [-1, -1]}]
        if self.text_model.label_names is not None:
            out.append({"name": "label", "datatype": "BYTES", "shape": [-1]})
        return out

    async def predict(self, payload: Any, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> InferResponse:
        if not isinstance(payload, InferRequest):
            raise InvalidInput("this model speaks the v2 (Open Inference) protocol: POST /v2/models/"
                               f"{self.name}/infer with an 'inputs' list")
        if self._limits is None:
            raise ServerNotReady("the model is still loading; retry shortly")
        tensors = [protocol.Tensor(i.name, i.datatype, tuple(i.shape), _decoder(i)) for i in payload.inputs]
        try:
            parsed = protocol.parse(tensors, model_inputs=self.text_model.input_names, limits=self._limits)
            wanted = self._requested(payload)
        except protocol.RequestError as exc:
            raise InvalidInput(str(exc)) from None
        try:
            logits, labels = await self.batcher.submit(parsed.key, parsed.rows, parsed)
        except Draining:
            raise ServerNotReady("the server is shutting down; retry on another replica") from None
        return self._response(payload, logits, labels, wanted)

    def _requested(self, payload: InferRequest) -> set[str]:
        """The outputs to return: those the request names (each must exist), else all of them."""
        asked = [o.name for o in (payload.request_outputs or [])]
        unknown = [n for n in asked if n not in self._output_names]
        if unknown:
            raise protocol.RequestError(f"unknown output {unknown[0]!r}; this model has "
                                        f"{', '.join(sorted(self._output_names))}")
        return set(asked) or self._output_names

    def _response(self, payload: InferRequest, logits: np.ndarray, labels: list[str] | None,
                  wanted: set[str]) -> InferResponse:
        outputs = []
        if "logits" in wanted:
            outputs.append(_output("logits", np.ascontiguousarray(logits, dtype=np.float32), "FP32"))
        if labels is not None and "label" in wanted:
            outputs.append(_output("label", np.array([s.encode() for s in labels], dtype=np.object_), "BYTES"))
        return InferResponse(response_id=payload.id or str(uuid.uuid4()), model_name=self.name,
                             infer_outputs=outputs, from_grpc=payload.from_grpc,
                             use_binary_outputs=payload.use_binary_outputs,
                             requested_outputs=payload.request_outputs)

    def _run_batch(self, key: Hashable, batch: Sequence[protocol.Parsed]) -> list[tuple[np.ndarray, Any]]:
        """Run one batch on an executor thread and split the result per request."""
        texts, pairs, tokens = protocol.stack(batch)
        scores = self.text_model.run(tokens) if tokens is not None else self.text_model.score(texts, pairs)
        out, start = [], 0
        for request in batch:
            rows = slice(start, start + request.rows)
            out.append((scores.logits[rows], scores.labels[rows] if scores.labels is not None else None))
            start += request.rows
        return out


def _decoder(tensor: Any) -> Any:
    """``tensor.as_numpy`` after checking the JSON elements' types: numpy would turn null or 5 into the
    text "None" / "5" for BYTES and truncate 1.7 or parse "1" for INT64, scoring what nobody sent."""
    def decode() -> np.ndarray:
        data = tensor.data if getattr(tensor, "_raw_data", None) is None else None
        if isinstance(data, list):
            _check_elements(tensor.name, tensor.datatype, data)
        return np.asarray(tensor.as_numpy())
    return decode


def _check_elements(name: str, datatype: str, data: list[Any]) -> None:
    if datatype == "BYTES":
        want, ok = "strings", lambda v: isinstance(v, str | bytes)
    elif datatype.startswith(("INT", "UINT")):
        want, ok = "integers", lambda v: isinstance(v, int) and not isinstance(v, bool)
    else:
        return
    for value in _leaves(data):
        if not ok(value):
            raise protocol.RequestError(f"input {name!r} ({datatype}) holds {json.dumps(value)}; send {want} only")


def _leaves(data: list[Any]) -> Iterator[Any]:
    for item in data:
        if isinstance(item, list):
            yield from _leaves(item)
        else:
            yield item


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _output(name: str, array: np.ndarray, datatype: str) -> InferOutput:
    out = InferOutput(name=name, shape=list(array.shape), datatype=datatype)
    out.set_data_from_numpy(array, binary_data=False)
    return out
