"""Calibration and evaluation data: readers, task recipes, a built-in sample, and tokenisation.

Installed as ``pofa_deploy.calibration`` (pyproject maps this folder there).

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
from .recipes import SPECS, Recipe, RecipeSpec, load_examples, resolve_split, spec

__all__ = [
    "BUILTIN",
    "SPECS",
    "Example",
    "QAExample",
    "QAFeatures",
    "Recipe",
    "RecipeSpec",
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
