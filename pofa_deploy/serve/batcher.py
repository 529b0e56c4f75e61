"""Dynamic batching for the server: requests that arrive together run as one inference.

A CPU runs a batch of 8 sentences in much less than 8 times the time of one, so under concurrent load
the server gathers queued requests into one batch (up to ``max_batch`` rows) and runs it on a worker
thread. The rule that keeps latency bounded: a batch is formed only when a runner is free, from what
is queued then; if that is less than ``max_batch`` rows it waits at most ``max_latency_ms`` counted
from the *oldest* queued request's arrival, so a request never waits for company longer than that.
While every runner is busy, requests pile up and the next batch is full at once -- batching grows with
load instead of adding a fixed delay.

Only requests with the same ``key`` share a batch (raw text with raw text, token tensors of one
sequence length together). This module is asyncio and numpy free of any serving framework, so it is
tested on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

# run(key, payloads) -> one result per payload, in order; called on an executor thread
BatchRunner = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


class Draining(RuntimeError):
    """The batcher is shutting down and takes no new requests."""


@dataclass
class _Job:
    key: Hashable
    rows: int
    payload: Any
    future: asyncio.Future[Any]
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    """What the batcher did (for the server's log and the tests)."""

    requests: int = 0
    batches: int = 0
    rows: int = 0
    largest: int = 0  # rows of the largest batch

    def add(self, requests: int, rows: int) -> None:
        self.requests += requests
        self.batches += 1
        self.rows += rows
        self.largest = max(self.largest, rows)

    def __str__(self) -> str:
        return (f"{self.requests} requests ({self.rows} rows) in {self.batches} batches, "
                f"the largest {self.largest} rows")


class MicroBatcher:
    """Queue requests (``submit``), run them in batches on ``parallel`` runners (see module docstring)."""

    def __init__(self, run: BatchRunner, *, max_batch: int, max_latency_ms: float, parallel: int = 1,
                 executor: Executor | None = None) -> None:
        if max_batch < 1 or parallel < 1 or max_latency_ms < 0:
            raise ValueError("max_batch and parallel must be >= 1 and max_latency_ms >= 0")
        self._run = run
        self.max_batch = max_batch
        self.max_latency = max_latency_ms / 1000.0
        self.parallel = parallel
        self._executor = executor
        self._queue: deque[_Job] = deque()
        self._arrived = asyncio.Event()
        self._free = asyncio.Semaphore(parallel)
        self._running: dict[asyncio.Task[None], list[_Job]] = {}  # batches on a runner
        self._collector: asyncio.Task[None] | None = None
        self._draining = False
        self._gathering: list[_Job] = []  # popped from the queue, waiting for company: not yet busy
        self.stats = BatchStats()

    async def submit(self, key: Hashable, rows: int, payload: Any) -> Any:
        """Queue one request of ``rows`` rows; returns its result when its batch has run."""
        if self._draining:
            raise Draining("the server is shutting down")
        if self._collector is None:
            self._collector = asyncio.get_running_loop().create_task(self._collect())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(key, rows, payload, future))
        self._arrived.set()
        return await future

    @property
    def pending(self) -> int:
        """Requests queued, gathering company or running."""
        running = sum(len(jobs) for jobs in self._running.values())
        return len(self._queue) + len(self._gathering) + running

    async def drain(self) -> None:
        """Refuse new requests, finish every queued, gathering and running one, then stop. A batch being
        gathered stops waiting for company and runs at once."""
        self._draining = True
        self._arrived.set()
        while self.pending:
            await asyncio.sleep(0.01)
        if self._collector is not None:
            self._collector.cancel()

    async def _collect(self) -> None:
        while True:
            await self._free.acquire()  # a batch is formed only when a runner can take it
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            jobs = await self._gather()
            task = asyncio.get_running_loop().create_task(self._execute(jobs))
            self._running[task] = jobs
            self._gathering = []
            task.add_done_callback(self._running.pop)

    async def _gather(self) -> list[_Job]:
        """The oldest job and every queued job with its key, up to max_batch rows, waiting for more until
        the oldest job's latency budget is spent."""
        first = self._queue.popleft()
        jobs, rows = [first], first.rows
        self._gathering = jobs  # drain() counts these until they are handed to a runner
        deadline = first.arrived + self.max_latency
        while rows < self.max_batch:
            rows = self._take_matching(jobs, rows)
            remaining = deadline - time.monotonic()
            if rows >= self.max_batch or remaining <= 0 or self._draining:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                self._take_matching(jobs, rows)
                break
        return jobs

    def _take_matching(self, jobs: list[_Job], rows: int) -> int:
        key = jobs[0].key
        keep: deque[_Job] = deque()
        while self._queue:
            job = self._queue.popleft()
            if job.key == key and rows + job.rows <= self.max_batch:
                jobs.append(job)
                rows += job.rows
            else:
                keep.append(job)
        self._queue = keep
        return rows

    async def _execute(self, jobs: list[_Job]) -> None:
        try:
            live = [j for j in jobs if not j.future.cancelled()]  # a client that hung up costs nothing
            if not live:
                return
            self.stats.add(len(live), sum(j.rows for j in live))
            loop = asyncio.get_running_loop()
            try:
                results = await loop.run_in_executor(self._executor, self._run, live[0].key,
                                                     [j.payload for j in live])
                if len(results) != len(live):
                    raise RuntimeError(f"the batch runner returned {len(results)} results for {len(live)} requests")
            except Exception as exc:  # one failing batch fails its requests, never the server
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(exc)
                return
            for job, result in zip(live, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
        finally:
            self._free.release()
