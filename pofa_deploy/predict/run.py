"""``predict``: check everything cheap first, then score the shards still to do, then write OUTPUT.

1. ``--ray``: Ray Data must be importable (one-line MissingExtraError otherwise); MODEL must be a
   text-classification folder (its labels are read from config.json, nothing is compiled yet);
   OUTPUT must be writable under the ``--overwrite`` rule (shards.py).
2. read the whole corpus (corpus.py): a malformed row fails here, naming file and line, before a model loads.
3. open ``OUTPUT.parts/`` for this (input, model, settings) manifest; shards already there are skipped.
4. score the pending shards locally (local.py) or on a Ray actor pool (ray_pool.py); each finished shard
   is written atomically as soon as it is complete, so an interruption loses at most the shards in flight.
5. concatenate the shards into OUTPUT (temporary file + rename) and remove the work folder.
"""

from __future__ import annotations

import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, require_extra
from ..outputs import Terminated
from ..progress import Progress, printer, silent
from .corpus import Corpus, format_rows, header, output_format, read_corpus
from .local import OnShard, score_local
from .options import PredictOptions
from .shards import Shard, check_output, cut, finish, manifest_for, open_parts


@dataclass(frozen=True)
class PredictReport:
    """What one ``predict`` call did; ``sentences_per_second`` counts the rows scored by this call only."""

    output: Path
    rows: int  # in the corpus (and in OUTPUT)
    shards: int
    skipped_shards: int  # finished by an earlier, interrupted run
    scored_rows: int
    seconds: float  # the whole call: reading, model compile (or actor start), scoring, writing
    backend: str  # "local" or "ray"
    actors: int | None = None  # with Ray

    @property
    def sentences_per_second(self) -> float:
        return self.scored_rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        how = f"on {self.actors} Ray actor(s)" if self.backend == "ray" else "locally"
        skipped = f", {self.skipped_shards} finished shard(s) skipped" if self.skipped_shards else ""
        return (f"wrote {self.output}: {self.rows} rows; scored {self.scored_rows} {how} in {self.seconds:.1f} s "
                f"({self.sentences_per_second:.1f} sentences/s){skipped}")


def classification_labels(model: Path) -> list[str]:
    """MODEL's label names from config.json, or InputError when it is not a text-classification folder."""
    from ..checkpoint import Task, infer_task, read_config
    from ..textmodel import label_names

    if not model.is_dir():
        raise InputError(f"MODEL {model}: not a folder; pass a folder written by pofa-deploy convert")
    config = read_config(model)
    task = infer_task(model, config)
    names = label_names(config, task.value)
    if task is not Task.TEXT_CLASSIFICATION or not names:
        raise InputError(f"MODEL {model} is a {task.value} model; predict scores text-classification models "
                         "(a label per sentence or sentence pair)")
    return names


def predict(options: PredictOptions, *, progress: Progress = silent) -> PredictReport:
    """Score ``options.input`` with ``options.model`` into ``options.output`` (module docstring)."""
    started = time.perf_counter()
    if not options.input.is_file():
        raise InputError(f"--input {options.input}: no such file; give the .txt, .tsv or .jsonl corpus to score")
    if options.ray is not None:
        require_extra("ray.data", extra="ray", command="predict --ray")
        from .ray_pool import check_reachable

        check_reachable(options.ray)
    labels = classification_labels(options.model)
    check_output(options.output, options.input, overwrite=options.overwrite)
    corpus = read_corpus(options.input)
    fmt = output_format(options.output)
    manifest = manifest_for(corpus, options.model, labels, shard_size=options.shard_size,
                            batch_size=options.batch_size, fmt=fmt)
    parts = open_parts(options.output, manifest, overwrite=options.overwrite)
    shards = cut(len(corpus), options.shard_size)
    pending = [s for s in shards if not parts.finished(s)]
    skipped = len(shards) - len(pending)
    progress(f"{options.input}: {len(corpus)} rows in {len(shards)} shard(s) of up to {options.shard_size}"
             + (f"; resuming, {skipped} finished shard(s) in {parts.folder} skipped" if skipped else ""))
    done: list[Shard] = []

    def on_shard(shard: Shard, logits: np.ndarray) -> None:
        parts.write(shard, format_rows(corpus, shard.start, logits, labels, fmt))
        done.append(shard)
        rows = sum(s.rows for s in done)
        rate = rows / max(time.perf_counter() - started, 1e-9)
        progress(f"  shard {shard.number + 1}/{len(shards)} written ({len(done)}/{len(pending)} this run, "
                 f"{rows} rows, {rate:.1f} sentences/s)")

    try:
        actors = _score(options, corpus, pending, labels, on_shard, progress)
    except BaseException as exc:
        if not any(parts.folder.glob("shard-*")):  # nothing to resume from: leave no work folder behind
            shutil.rmtree(parts.folder, ignore_errors=True)
        if not isinstance(exc, KeyboardInterrupt | Terminated):
            raise
        kept = skipped + len(done)
        who = "the user" if isinstance(exc, KeyboardInterrupt) else signal.Signals(exc.signum).name
        message = (f"stopped by {who}; {kept} of {len(shards)} shard(s) are kept in {parts.folder}: run the same "
                   "command again to resume" if kept else
                   f"stopped by {who} before a shard was finished; nothing was written")
        if isinstance(exc, Terminated):  # same exit code (128 + signal), the truthful message
            raise Terminated(exc.signum, message) from None
        raise KeyboardInterrupt(message) from None
    finish(parts, shards, options.output, header(fmt, labels), source=options.input, overwrite=options.overwrite)
    return PredictReport(options.output, len(corpus), len(shards), skipped, sum(s.rows for s in pending),
                         time.perf_counter() - started, "ray" if options.ray is not None else "local", actors)


def _score(options: PredictOptions, corpus: Corpus, pending: list[Shard], labels: list[str], on_shard: OnShard,
           progress: Progress) -> int | None:
    """Run the chosen backend over ``pending``; the number of Ray actors, or None locally."""
    if not pending:
        return None
    if options.ray is None:
        progress(f"scoring {sum(s.rows for s in pending)} rows locally, batches of {options.batch_size}")
        score_local(options.model, corpus, pending, batch_size=options.batch_size, threads=options.threads,
                    on_shard=on_shard)
        return None
    from .ray_pool import score_ray

    progress(f"scoring {sum(s.rows for s in pending)} rows on Ray ({options.ray}), batches of {options.batch_size}")
    return score_ray(options.model, corpus, pending, address=options.ray, batch_size=options.batch_size,
                     shard_size=options.shard_size, labels=len(labels), actors=options.actors,
                     cpus_per_actor=options.cpus_per_actor, on_shard=on_shard, progress=progress)


def main(options: PredictOptions) -> int:
    report = predict(options, progress=printer(quiet=options.quiet))
    print(report.summary())
    return 0
