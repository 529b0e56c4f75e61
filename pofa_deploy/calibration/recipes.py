"""Task recipes (the PoFA paper's benchmarks) and ``load_examples``, the one entry point for data.

A recipe reads the ORIGINAL file layouts: GLUE's TSVs (SST-2, MNLI, QQP, QNLI) and SQuAD v1.1
JSON. ``sst2:PATH`` takes a folder holding the split files or one file; a bare ``sst2`` loads the
hub dataset through the ``datasets`` library when it is installed and the hub reachable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, InputError
from .readers import (
    BUILTIN,
    Example,
    QAExample,
    read_builtin,
    read_file,
    read_json,
    read_jsonl,
    read_tsv,
    require_examples,
)


class Recipe(StrEnum):
    SST2 = "sst2"
    MNLI = "mnli"
    QQP = "qqp"
    QNLI = "qnli"
    SQUAD = "squad"


@dataclass(frozen=True)
class RecipeSpec:
    """How one benchmark is laid out on disk and on the hub, and how it is scored."""

    title: str
    text_columns: tuple[str, ...]  # GLUE TSV columns; () for SQuAD
    label_column: str | None
    label_names: tuple[str, ...]  # index = label id; the names models' id2label usually use
    files: Mapping[str, str]  # split -> file name inside the dataset folder
    hub: tuple[str, str | None]  # datasets.load_dataset(path, name)
    hub_splits: Mapping[str, str]
    hub_columns: tuple[str, ...]
    metrics: tuple[str, ...]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def question_answering(self) -> bool:
        return not self.text_columns


_GLUE_SPLITS = {"train": "train.tsv", "dev": "dev.tsv"}
_GLUE_HUB_SPLITS = {"train": "train", "dev": "validation"}

SPECS: dict[Recipe, RecipeSpec] = {
    Recipe.SST2: RecipeSpec("SST-2", ("sentence",), "label", ("negative", "positive"), _GLUE_SPLITS,
                            ("nyu-mll/glue", "sst2"), _GLUE_HUB_SPLITS, ("sentence",), ("accuracy",)),
    Recipe.MNLI: RecipeSpec("MNLI", ("sentence1", "sentence2"), "gold_label",
                            ("entailment", "neutral", "contradiction"),
                            {"train": "train.tsv", "dev_matched": "dev_matched.tsv",
                             "dev_mismatched": "dev_mismatched.tsv"},
                            ("nyu-mll/glue", "mnli"),
                            {"train": "train", "dev_matched": "validation_matched",
                             "dev_mismatched": "validation_mismatched"},
                            ("premise", "hypothesis"), ("accuracy",)),
    Recipe.QQP: RecipeSpec("QQP", ("question1", "question2"), "is_duplicate", ("not_duplicate", "duplicate"),
                           _GLUE_SPLITS, ("nyu-mll/glue", "qqp"), _GLUE_HUB_SPLITS,
                           ("question1", "question2"), ("accuracy", "f1")),
    Recipe.QNLI: RecipeSpec("QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment"),
                            _GLUE_SPLITS, ("nyu-mll/glue", "qnli"), _GLUE_HUB_SPLITS,
                            ("question", "sentence"), ("accuracy",)),
    Recipe.SQUAD: RecipeSpec("SQuAD v1.1", (), None, (), {"train": "train-v1.1.json", "dev": "dev-v1.1.json"},
                             ("rajpurkar/squad", None), {"train": "train", "dev": "validation"}, (),
                             ("exact_match", "f1")),
}

_SPLIT_ALIASES = {"validation": "dev", "val": "dev", "dev-matched": "dev_matched",
                  "dev-mismatched": "dev_mismatched", "validation_matched": "dev_matched",
                  "validation_mismatched": "dev_mismatched", "validation-matched": "dev_matched",
                  "validation-mismatched": "dev_mismatched"}


class Split(StrEnum):
    """A benchmark split as a user names it; the hub's names (validation, validation_matched, ...) and
    dashed spellings are accepted too. ``resolve_split`` maps it to the recipe's own (MNLI: dev ->
    dev_matched) and refuses a split the recipe does not have."""

    TRAIN = "train"
    DEV = "dev"
    DEV_MATCHED = "dev_matched"
    DEV_MISMATCHED = "dev_mismatched"

    @classmethod
    def _missing_(cls, value: object) -> Split | None:
        name = str(value).strip().lower()
        name = _SPLIT_ALIASES.get(name, name)
        return next((m for m in cls if m.value == name), None)
_RECIPE_SOURCE = re.compile(r"^(?P<name>sst2|mnli|qqp|qnli|squad)(?::(?P<path>.*))?$", re.IGNORECASE)


def spec(recipe: Recipe | str) -> RecipeSpec:
    return SPECS[Recipe(recipe)]


def resolve_split(recipe: Recipe, split: Split | str) -> str:
    """The split name the recipe knows: dev -> dev_matched for MNLI, validation -> dev, ..."""
    name = _SPLIT_ALIASES.get(str(split).strip().lower(), str(split).strip().lower())
    if recipe is Recipe.MNLI and name == "dev":
        name = "dev_matched"
    files = SPECS[recipe].files
    if name not in files:
        raise InputError(f"{recipe.value}: unknown split {str(split)!r}; expected one of {', '.join(files)}")
    return name


def parse_source(source: str) -> tuple[Recipe, str | None] | None:
    """``sst2`` -> (SST2, None), ``sst2:/data/SST-2`` -> (SST2, "/data/SST-2"), anything else -> None."""
    match = _RECIPE_SOURCE.match(source.strip())
    if match is None:
        return None
    return Recipe(match["name"].lower()), (match["path"] or None)


def read_recipe(recipe: Recipe, path: str | Path | None, *,
                split: str = "train") -> list[Example] | list[QAExample]:
    """Read ``recipe``'s ``split`` from a folder or file in the original layout, or from the hub."""
    name = resolve_split(recipe, split)
    if path is None:
        return load_from_hub(recipe, name)
    where = Path(path).expanduser()
    if where.is_dir():
        s = SPECS[recipe]
        file = where / s.files[name]
        if not file.is_file():
            raise InputError(f"{where}: no {file.name} for the {name} split of {s.title}; give the folder "
                             f"holding {', '.join(s.files.values())}, or one of those files")
        where = file
    elif not where.exists():
        raise InputError(f"{recipe.value}:{path}: no such file or folder")
    return read_recipe_file(recipe, where)


def read_recipe_file(recipe: Recipe, path: Path) -> list[Example] | list[QAExample]:
    """One file in the recipe's layout (a .json/.jsonl file is read generically, labels range-checked)."""
    s = SPECS[recipe]
    suffix = path.suffix.lower()
    if s.question_answering:
        examples = read_jsonl(path) if suffix == ".jsonl" else read_json(path)
        if examples and not isinstance(examples[0], QAExample):
            raise DataError(path, "expected SQuAD questions (a SQuAD v1.1 file with 'data', or JSON lines "
                            "with 'question' and 'context'), found text examples")
        return examples
    if suffix in (".json", ".jsonl"):
        found = read_file(path, num_labels=s.num_labels)
        if found and not isinstance(found[0], Example):
            raise DataError(path, f"expected {s.title} text examples, found question-answering examples")
        return found
    names = {n: i for i, n in enumerate(s.label_names)} if recipe in (Recipe.MNLI, Recipe.QNLI) else {}
    return read_tsv(path, text_columns=s.text_columns, label_column=s.label_column, label_names=names,
                    num_labels=s.num_labels, require_label=True,
                    layout=f"GLUE {s.title} columns: {', '.join((*s.text_columns, str(s.label_column)))}")


def _hub_hint(recipe: Recipe, why: str, pass_as: str | None) -> str:
    s = SPECS[recipe]
    files = " and ".join(s.files.values())
    return (f"{recipe.value}: no data path given and {why}; download {s.title} and pass "
            f"{pass_as or recipe.value + ':PATH'} (the folder holding {files}, or one of those files)")


def load_from_hub(recipe: Recipe, split: str, *,
                  pass_as: str | None = None) -> list[Example] | list[QAExample]:
    """The hub copy of the dataset via ``datasets``; InputError (with the PATH hint) when unavailable.

    ``pass_as`` is how the hint tells the user to give a path instead (default ``RECIPE:PATH``).
    """
    split = resolve_split(recipe, split)
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes")
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    if offline:
        raise InputError(_hub_hint(recipe, "the hub is switched off (HF_HUB_OFFLINE)", pass_as))
    try:
        import datasets  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise InputError(_hub_hint(recipe, "the `datasets` library is not installed", pass_as)) from None
    s = SPECS[recipe]
    try:
        rows: Any = datasets.load_dataset(*s.hub, split=s.hub_splits[split])
    except Exception as exc:  # network, missing dataset, cache problems: one message for the user
        raise InputError(_hub_hint(recipe, f"the hub dataset {s.hub[0]} could not be loaded "
                                   f"({type(exc).__name__})", pass_as)) from None
    source = f"hub:{s.hub[0]}/{s.hub[1] or ''}[{s.hub_splits[split]}]"
    if s.question_answering:
        out_qa = [QAExample(str(r["id"]), r["question"], r["context"], tuple(r["answers"]["text"]),
                            tuple(int(x) for x in r["answers"]["answer_start"])) for r in rows]
        require_examples(source, out_qa)
        return out_qa
    cols = s.hub_columns
    out = [Example(r[cols[0]], r[cols[1]] if len(cols) > 1 else None,
                   int(r["label"]) if int(r["label"]) >= 0 else None) for r in rows]
    require_examples(source, out)
    return out


def sample(examples: Sequence[Any], limit: int | None, seed: int) -> list[Any]:
    """All examples in order (limit None), or a seeded shuffle's first ``limit``."""
    if limit is None:
        return list(examples)
    if limit < 1:
        raise InputError(f"limit must be a positive number of examples, got {limit}")
    order = np.random.default_rng(seed).permutation(len(examples))
    return [examples[int(i)] for i in order[:limit]]


def load_examples(source: str | Path | None, *, limit: int | None = None, split: str = "train",
                  seed: int = 0) -> list[Example] | list[QAExample]:
    """Examples from ``source``: None/"builtin", a .txt/.tsv/.json/.jsonl file, or a recipe
    (``sst2|mnli|qqp|qnli|squad`` with an optional ``:PATH``; ``split`` picks its file).

    ``limit`` None returns everything in file order (evaluation); a number returns a deterministic
    sample of that many (seeded shuffle, for calibration).
    """
    if source is None or str(source).strip().lower() == BUILTIN:
        return sample(read_builtin(), limit, seed)
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        return sample(read_file(path), limit, seed)
    parsed = parse_source(text)
    if parsed is not None:
        recipe, where = parsed
        return sample(read_recipe(recipe, where, split=split), limit, seed)
    if path.is_dir():
        raise InputError(f"{text}: is a folder; give a file, or RECIPE:{text} for a GLUE/SQuAD folder "
                         "(recipes: sst2, mnli, qqp, qnli, squad)")
    raise InputError(f"{text}: no such file; give a .txt/.tsv/.json/.jsonl file, a recipe "
                     "(sst2|mnli|qqp|qnli|squad[:PATH]) or 'builtin'")
