"""Calibration and evaluation data: readers, task recipes, a built-in sample, and tokenisation.

An ordinary subpackage of pofa_deploy; the built-in sample is package data in ``samples/``. It imports
only leaf modules of pofa_deploy (``errors``, ``checkpoint``), never the package-level API, so there is
no import cycle.

    load_examples(source, limit=..., split=..., seed=...)  ->  list[Example] | list[QAExample]
    encode(tokenizer, examples, seq_len=..., task=...)     ->  list of {name: int64 [1, seq_len]}

Sources: None or "builtin" (the shipped sample), a .txt/.tsv/.json/.jsonl file, or a recipe
``sst2|mnli|qqp|qnli|squad`` with an optional ``:PATH`` to the original GLUE/SQuAD files.
Malformed data raises ``pofa_deploy.errors.DataError`` naming file and line; a missing path or an
unusable source raises ``InputError``.
"""

from __future__ import annotations

from .encode import QAFeatures, encode, encode_qa, pad, tokenize
from .readers import BUILTIN, Example, QAExample, read_builtin, read_file
from .recipes import SPECS, Recipe, RecipeSpec, Split, load_examples, resolve_split, spec

__all__ = [
    "BUILTIN",
    "SPECS",
    "Example",
    "QAExample",
    "QAFeatures",
    "Recipe",
    "RecipeSpec",
    "Split",
    "encode",
    "encode_qa",
    "load_examples",
    "pad",
    "read_builtin",
    "read_file",
    "resolve_split",
    "spec",
    "tokenize",
]
