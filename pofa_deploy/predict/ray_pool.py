"""The Ray path: a Ray Data ``map_batches`` actor pool, one compiled model per actor.

* ``--ray local`` starts a private Ray instance on this machine's CPUs for the run (and stops it after);
  ``--ray auto`` or ``--ray ADDRESS`` joins a running cluster. A Ray already initialised in this process
  (a notebook, a test, a benchmark) is used as it is and left running.
* The driver forms the batches, exactly as the local path does (``corpus.plan_batches``: shards in order,
  rows sorted by length within a shard), and each dataset row carries one whole batch with the global
  indices of its sentences. Ray Data's own batching (``batch_size`` rows of whatever blocks arrive) would
  mix lengths and differ from the local path; this way both paths run the same model calls and write the
  same bytes, and ``--batch-size`` means the same thing on both. ``map_batches`` therefore gets
  ``batch_size=1``: one model call per UDF call.
* Each actor compiles the model once with INFERENCE_NUM_THREADS = the CPUs Ray assigned to it
  (``--cpus-per-actor``) and CPU pinning off: actors share the machine, and pinned OpenVINO threads of two
  processes would fight over the same cores.
* Results come back in whatever order actors finish; rows carry their index, so the driver fills each
  shard's buffer and writes a shard as soon as its last row is in.
* Ray's logs stay out of the terminal (``log_to_driver=False``, Ray Data progress bars off, ``ray`` loggers
  at ERROR while we run). An actor's error comes back as a result row and is raised in the driver as the
  one-line pofa-deploy error it was (``BatchScorer``); only a crash Ray itself sees (a killed worker) goes
  through Ray's own reporting. One line remains: the driver's C++ core worker warns at actor start that
  "constructor arguments in the object store" may break actor restarts (ray-project/ray#53727). Silencing
  it takes ``max_restarts=0`` through ``map_batches``' ``ray_remote_args``, deprecated for removal in Ray
  2.64, or RAY_BACKEND_LOG_LEVEL, which prints a line of its own; Ray Data's actor fault tolerance is kept.

Actors open MODEL by its path: on a multi-node cluster it must be at the same path on every node (a shared
file system), and pofa-deploy must be installed in the cluster's Python.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..environment import available_cores
from ..errors import InputError, PofaError
from .corpus import Corpus, batch_inputs, plan_batches
from .options import LOCAL_RAY
from .shards import Shard

OnShard = Callable[[Shard, np.ndarray], None]
_QUIET_LOGGERS = ("ray", "ray.data", "ray.data._internal")


class BatchScorer:
    """The Ray Data callable class: one compiled model per actor (see the module docstring).

    An error in the actor (the model does not compile, a batch cannot be scored) is returned as data, one
    row with index -1 and the error's class and message, instead of raised: raised, Ray would log each
    failure's traceback from the raylet and from Ray Data, and hand the driver a wrapped exception; as a row,
    the driver re-raises it as the one-line pofa-deploy error it was."""

    def __init__(self, folder: str, threads: int, labels: int) -> None:
        self.labels = labels
        self.model: Any = None
        self.error = ""
        try:
            import ray

            from ..textmodel import open_text_model

            # the CPUs Ray reserved for this actor (what --cpus-per-actor asked for); else that value
            assigned = ray.get_runtime_context().get_assigned_resources().get("CPU")
            self.model = open_text_model(folder, threads=max(1, int(assigned or threads)), pinning=False)
        except Exception as exc:
            self.error = _describe(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        indices, logits = [], []
        try:
            if self.model is None:
                raise RuntimeError(self.error)
            for k in range(len(batch["index"])):
                texts = [str(t) for t in batch["text"][k]]
                pairs = [str(t) for t in batch["pair"][k]] if "pair" in batch else None
                indices.append(np.asarray(batch["index"][k], dtype=np.int64))
                logits.append(np.asarray(self.model.score(texts, pairs).logits, dtype=np.float32))
        except Exception as exc:
            message = self.error or _describe(exc)
            return {"index": np.array([-1], np.int64), "logits": np.zeros((1, self.labels), np.float32),
                    "error": np.array([message], dtype=object)}
        index = np.concatenate(indices)
        return {"index": index, "logits": np.concatenate(logits), "error": np.full(len(index), "", dtype=object)}


def _describe(exc: BaseException) -> str:
    """``ClassName<TAB>message``: how an actor's error travels to the driver (see ``raise_actor_error``)."""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}\t{text}"


def raise_actor_error(described: str) -> None:
    """Raise an error an actor returned: a pofa-deploy error as its own class (so its exit code holds), any
    other as a one-line PofaError."""
    from .. import errors

    name, _, message = described.partition("\t")
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, PofaError):
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)  # DataError's own __init__ would prefix the path a second time
        raise exc
    raise PofaError(f"a Ray actor failed: {name}: {message}; rerun without --ray (or with POFA_DEBUG=1) to see "
                    "where")


def score_ray(model: Path, corpus: Corpus, pending: Sequence[Shard], *, address: str, batch_size: int,
              shard_size: int, labels: int, actors: int | None, cpus_per_actor: int, on_shard: OnShard,
              progress: Callable[[str], None]) -> int:
    """Score ``pending`` on a Ray actor pool; returns the number of actors used."""
    import ray

    with _quiet_ray(), _connected(address):
        if actors is None:
            free = float(ray.available_resources().get("CPU", 0.0))
            actors = max(1, int(free // cpus_per_actor))
        progress(f"Ray: {actors} actor(s) x {cpus_per_actor} CPU, {ray.cluster_resources().get('CPU', 0):g} CPUs "
                 "in the cluster")
        items = [_item(corpus, rows) for shard in pending
                 for rows in plan_batches(corpus, shard.start, shard.stop, batch_size)]
        dataset = ray.data.from_items(items).map_batches(
            BatchScorer, fn_constructor_kwargs={"folder": str(model.resolve()), "threads": cpus_per_actor,
                                              "labels": labels},
            batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus_per_actor)
        collector = _Collector(pending, shard_size, on_shard)
        try:
            for out in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                failed = [str(e) for e in out["error"] if e]
                if failed:
                    raise_actor_error(failed[0])
                collector.add(np.asarray(out["index"], dtype=np.int64), np.asarray(out["logits"], np.float32))
        except PofaError:
            raise
        except Exception as exc:  # Ray wraps an actor's error in its own types: one line, the cause first
            raise _one_line(exc) from None
    return actors


def _item(corpus: Corpus, rows: np.ndarray) -> dict[str, Any]:
    texts, pairs = batch_inputs(corpus, rows)
    item: dict[str, Any] = {"index": rows.tolist(), "text": texts}
    if pairs is not None:
        item["pair"] = pairs
    return item


class _Collector:
    """Per-shard buffers filled from result batches in any order; a full shard goes to ``on_shard``."""

    def __init__(self, pending: Sequence[Shard], shard_size: int, on_shard: OnShard) -> None:
        self.shards = {s.number: s for s in pending}
        self.shard_size = shard_size
        self.on_shard = on_shard
        self.buffers: dict[int, np.ndarray] = {}
        self.missing = {s.number: s.rows for s in pending}

    def add(self, index: np.ndarray, logits: np.ndarray) -> None:
        numbers = index // self.shard_size
        for number in np.unique(numbers).tolist():
            shard = self.shards[number]
            mine = numbers == number
            if number not in self.buffers:
                self.buffers[number] = np.empty((shard.rows, logits.shape[1]), dtype=np.float32)
            self.buffers[number][index[mine] - shard.start] = logits[mine]
            self.missing[number] -= int(mine.sum())
            if self.missing[number] == 0:
                self.on_shard(shard, self.buffers.pop(number))


@contextlib.contextmanager
def _connected(address: str) -> Iterator[None]:
    """Ray initialised for the block: reused when already up, else started (local) or joined, then shut down."""
    import ray

    if ray.is_initialized():
        yield
        return
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address == LOCAL_RAY:
            ray.init(num_cpus=available_cores(), include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"--ray {address}: cannot start or join Ray ({reason}); start a cluster with "
                         f"`ray start --head`, or use --ray {LOCAL_RAY}") from None
    try:
        yield
    finally:
        ray.shutdown()


def check_reachable(address: str) -> None:
    """Fail in seconds when a HOST:PORT address does not answer: ray.init retries an unreachable head for
    minutes, logging a warning every few seconds. "auto" and addresses we cannot parse go to Ray as they are."""
    if address == LOCAL_RAY:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise InputError(f"--ray {address}: nothing answers there ({exc.strerror or exc}); check the head node's "
                         f"address (ray status on it), or use --ray {LOCAL_RAY}") from None


@contextlib.contextmanager
def _quiet_ray() -> Iterator[None]:
    """Ray Data's progress bars and INFO lines off for the block; the previous settings restored after."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    saved = {name: getattr(ctx, name) for name in ("enable_progress_bars", "print_on_execution_start")}
    levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name in saved:
        setattr(ctx, name, False)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(ctx, name, value)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _one_line(exc: BaseException) -> PofaError:
    """A pofa-deploy error raised in an actor as itself; anything else as its type and last message line."""
    seen: BaseException | None = exc
    root = exc
    for _ in range(20):  # Ray nests its wrappers; the chain is short, the bound only guards a cycle
        if seen is None:
            break
        # Ray re-raises an actor's exception as a dynamic subclass of it whose text is a traceback: take
        # pofa-deploy's own class only, whose text is the one-line message
        if isinstance(seen, PofaError) and type(seen).__module__.startswith("pofa_deploy"):
            return seen
        root = seen
        seen = getattr(seen, "cause", None) or seen.__cause__ or seen.__context__
    lines = [line.strip() for line in str(root).strip().splitlines() if line.strip()]
    return PofaError(f"a Ray actor failed: {type(root).__name__}: {lines[-1] if lines else 'no message'}; "
                     "rerun without --ray (or with POFA_DEBUG=1) to see where")
