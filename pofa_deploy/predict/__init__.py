"""Score a text corpus with a converted classification folder: ``pofa-deploy predict MODEL -i IN -o OUT``.

Locally by default (one process, one compiled model using every core), or with ``--ray`` as a Ray Data
actor pool (one compiled model per actor) on a new local Ray instance or a running cluster. Rows are cut
into fixed shards; each finished shard is written atomically to ``OUT.parts/``, so an interrupted run
resumes where it stopped; OUT is written at the end, in input order with the input's ids.

Modules, top to bottom: ``options`` (the flags), ``corpus`` (input formats, batch plan, output format),
``shards`` (work folder, manifest, resume, the final file), ``local`` and ``ray_pool`` (the two backends),
``run`` (``predict`` and ``main``).
"""

from __future__ import annotations

from .corpus import Corpus, plan_batches, read_corpus
from .options import OPTIONS, PredictOptions
from .run import PredictReport, main, predict
from .shards import parts_folder

__all__ = [
    "OPTIONS",
    "Corpus",
    "PredictOptions",
    "PredictReport",
    "main",
    "parts_folder",
    "plan_batches",
    "predict",
    "read_corpus",
]
