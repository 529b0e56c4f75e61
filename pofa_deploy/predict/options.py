"""The options of ``pofa-deploy predict``: one frozen dataclass whose fields are the flags.

Only ``--shard-size`` and ``--batch-size`` change what is written (shard boundaries, and which rows share
a padded batch, which moves logits in their last bits); they are pinned in the work folder's manifest so
a resumed run cannot mix two settings. ``--ray``, ``--actors``, ``--cpus-per-actor`` and ``--threads``
only change where and how fast rows are scored, so a run started locally may be finished on Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..options import at_least, coerce_fields, option

INPUT_SUFFIXES = (".txt", ".tsv", ".jsonl")
OUTPUT_SUFFIXES = (".jsonl", ".tsv")
LOCAL_RAY = "local"  # --ray local: start a private Ray instance on this machine for the run


@dataclass(frozen=True, kw_only=True)
class PredictOptions:
    # option() builds a dataclass field, so RUF009 (a call as a default) does not apply to these lines
    model: Path = option(positional=True, help="classification folder written by pofa-deploy convert")
    input: Path = option(flags=("-i", "--input"),
                         help="corpus to score: .txt (a sentence per line), .tsv (header row with sentence or "
                              "text, optional pair and id columns) or .jsonl ({\"text\", \"text_pair\"?, \"id\"?})")
    output: Path = option(flags=("-o", "--output"),
                          help="predictions file, .jsonl or .tsv (written when complete; finished shards wait in "
                               "OUTPUT.parts/ so an interrupted run resumes)")
    ray: str | None = option(None, metavar="ADDRESS|auto|local",
                             help="score on Ray Data actors: a cluster ADDRESS, auto (the running cluster) or local "
                                  "(a new Ray instance on this machine's CPUs); default: in this process")
    batch_size: int = option(32, help="sentences per model call (rows of a shard are sorted by length first)")
    shard_size: int = option(4096, help="rows per shard: the unit written to OUTPUT.parts/ and skipped on resume")
    threads: int | None = option(None, help="local: INFERENCE_NUM_THREADS (default: the folder's tuned or "
                                            "OpenVINO's choice)")
    actors: int | None = option(None, help="with --ray: model replicas (default: the cluster's free CPUs divided "
                                           "by --cpus-per-actor)")
    cpus_per_actor: int = option(1, help="with --ray: CPUs reserved per actor, also its INFERENCE_NUM_THREADS")
    overwrite: bool = option(False, help="replace an OUTPUT written by pofa-deploy predict, and discard an "
                                         "OUTPUT.parts/ left by a run on another input, model or shard setting")
    quiet: bool = option(False, flags=("-q", "--quiet"), help="no progress lines")

    def __post_init__(self) -> None:
        coerce_fields(self)
        at_least(self, 1, "batch_size", "shard_size", "threads", "actors", "cpus_per_actor")
        if self.input.suffix.lower() not in INPUT_SUFFIXES:
            raise InputError(f"--input {self.input}: unsupported file type {self.input.suffix or '(no suffix)'!r}; "
                             f"give a {', '.join(INPUT_SUFFIXES)} file")
        if self.output.suffix.lower() not in OUTPUT_SUFFIXES:
            raise InputError(f"--output {self.output}: unsupported file type "
                             f"{self.output.suffix or '(no suffix)'!r}; give a {' or '.join(OUTPUT_SUFFIXES)} file")
        if self.ray is not None and not self.ray.strip():
            raise InputError(f"--ray needs a cluster address, auto or {LOCAL_RAY}")
        if self.ray is not None and self.threads is not None:
            raise InputError("--threads applies to the local path; with --ray each actor runs --cpus-per-actor "
                             "threads")
        if self.ray is None and (self.actors is not None or self.cpus_per_actor != 1):
            raise InputError("--actors and --cpus-per-actor apply to --ray only; add --ray local or --ray ADDRESS")


OPTIONS = PredictOptions
