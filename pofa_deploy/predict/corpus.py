"""Rows in, prediction lines out: the corpus readers, the length-sorted batch plan and the output format.

Input, by the file's suffix (every reader is strict: a malformed row raises ``DataError`` naming the file
and its 1-based line, before any model is loaded; blank lines are skipped):

* ``.txt``: one sentence per line; its id is the line number.
* ``.tsv``: a header row, then tab-separated rows of the header's width (no quoting, as GLUE writes them).
  The text columns are detected as the calibration reader does (``sentence``, ``text``, or a pair such as
  ``sentence1``+``sentence2``, ``question``+``sentence``, ``text``+``text_pair``); the id is the ``id``,
  ``idx`` or ``index`` column when there is one (kept as text), else the line number. Other columns
  (``label`` ...) are ignored: predictions are joined back to the corpus by id.
* ``.jsonl``: one object per line with ``text``, optional ``text_pair`` and optional ``id`` (a string or an
  integer, kept as it is); other keys are ignored. A file is all single sentences or all pairs, since
  one model call cannot mix them.

Ids must be unique (a join on a duplicated id would be ambiguous) and may not hold tabs or line breaks
(they would break a TSV output row).

Output, by ``--output``'s suffix, one row per input row in input order:

* ``.jsonl``: ``{"id": ..., "label": "positive", "logits": [-1.25, 0.5]}``
* ``.tsv``: a header ``id  label  logit_<label name>...``, then one row each.

Logits are written with the shortest decimal that reads back as the same float32, so the file is exact
and the same bytes whichever path (local or Ray) scored it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration.readers import TSV_TEXT_LAYOUTS, json_lines, read_text, text_lines, tsv_table
from ..errors import DataError

TSV_ID_COLUMNS = ("id", "idx", "index")
JSONL_KEYS = ("id", "label", "logits")

RowId = str | int


@dataclass(frozen=True)
class Corpus:
    """The rows of one input file, column-wise (cheaper than an object per row for millions of rows)."""

    path: Path
    ids: list[RowId]
    texts: list[str]
    pairs: list[str] | None  # second segments, when the file holds sentence pairs
    sha256: str  # of the decoded text: pins the input in the resume manifest

    def __len__(self) -> int:
        return len(self.texts)


def read_corpus(path: Path) -> Corpus:
    """The rows of a .txt, .tsv or .jsonl file (see the module docstring)."""
    text = read_text(path)
    lines = text_lines(text)
    suffix = path.suffix.lower()
    reader = {".txt": _read_txt, ".tsv": _read_tsv, ".jsonl": _read_jsonl}[suffix]
    ids, texts, pairs = reader(path, lines)
    if not texts:
        raise DataError(path, "no rows to score in it; give a file with at least one sentence")
    _check_ids(path, ids, lines)
    return Corpus(path, ids, texts, pairs, hashlib.sha256(text.encode("utf-8")).hexdigest())


Columns = tuple[list[RowId], list[str], list[str] | None]


def _read_txt(path: Path, lines: list[str]) -> Columns:
    rows = [(number, line.strip()) for number, line in enumerate(lines, start=1) if line.strip()]
    return [n for n, _ in rows], [t for _, t in rows], None


def _read_tsv(path: Path, lines: list[str]) -> Columns:
    table = tsv_table(path, lines)
    header, header_line = table.header, table.header_line
    columns = next((cols for cols in TSV_TEXT_LAYOUTS if all(c in header for c in cols)), None)
    if columns is None:
        raise DataError(path, f"no text column in the header ({', '.join(header)}); expected sentence or text "
                        "(or a pair: sentence1+sentence2, question+sentence, text+text_pair)", line=header_line)
    text_at = [header.index(c) for c in columns]
    id_at = next((header.index(c) for c in TSV_ID_COLUMNS if c in header), None)
    ids: list[RowId] = []
    texts: list[str] = []
    pairs: list[str] | None = [] if len(columns) > 1 else None
    for number, fields in table.rows:
        first = fields[text_at[0]].strip()
        if not first:
            raise DataError(path, f"column {columns[0]} is empty", line=number)
        if id_at is not None and not fields[id_at].strip():
            raise DataError(path, f"column {header[id_at]} is empty; give every row an id", line=number)
        ids.append(fields[id_at].strip() if id_at is not None else number)
        texts.append(first)
        if pairs is not None:
            pairs.append(fields[text_at[1]].strip())
    return ids, texts, pairs


def _read_jsonl(path: Path, lines: list[str]) -> Columns:
    ids: list[RowId] = []
    texts: list[str] = []
    pairs: list[str] = []
    first_kind: tuple[bool, int] | None = None  # (has a pair, line) of the first row
    for number, obj in json_lines(path, lines):
        row_id, text, pair = _jsonl_row(path, obj, number)
        if first_kind is None:
            first_kind = (pair is not None, number)
        elif (pair is not None) != first_kind[0]:
            has = "has" if first_kind[0] else "has no"
            raise DataError(path, f"{'no ' if pair is None else ''}'text_pair' here, but the row on line "
                            f"{first_kind[1]} {has} one; a file is all single sentences or all pairs", line=number)
        ids.append(row_id)
        texts.append(text)
        if pair is not None:
            pairs.append(pair)
    return ids, texts, pairs if first_kind is not None and first_kind[0] else None


def _jsonl_row(path: Path, obj: Any, line: int) -> tuple[RowId, str, str | None]:
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", line=line)
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        got = "missing" if "text" not in obj else "empty" if isinstance(text, str) else f"a {type(text).__name__}"
        raise DataError(path, f"'text' must be a non-empty string, got {got}; expected "
                        "{\"text\": ..., \"text_pair\"?: ..., \"id\"?: ...}", line=line)
    pair = obj.get("text_pair")
    if pair is not None and not isinstance(pair, str):
        raise DataError(path, f"'text_pair' must be a string, got {type(pair).__name__}", line=line)
    row_id = obj.get("id", line)
    if isinstance(row_id, bool) or not isinstance(row_id, str | int) or row_id == "":
        got = "an empty string" if row_id == "" else f"a {type(row_id).__name__}"
        raise DataError(path, f"'id' must be a string or an integer, got {got}", line=line)
    return row_id, text.strip(), pair.strip() if pair is not None else None


def _check_ids(path: Path, ids: Sequence[RowId], lines: Sequence[str]) -> None:
    """Unique ids without tabs or line breaks; the error names the line of the offending row."""
    numbers = [n for n, line in enumerate(lines, start=1) if line.strip()]
    if path.suffix.lower() == ".tsv":
        numbers = numbers[1:]  # the header row holds no id
    seen: dict[RowId, int] = {}
    for row_id, number in zip(ids, numbers, strict=True):
        if isinstance(row_id, str) and any(c in row_id for c in "\t\r\n"):
            raise DataError(path, f"id {row_id!r} holds a tab or a line break; use plain ids", line=number)
        if row_id in seen:
            raise DataError(path, f"duplicate id {row_id!r} (first on line {seen[row_id]}); ids must be unique",
                            line=number)
        seen[row_id] = number


# --- batches ---------------------------------------------------------------------------------------


def plan_batches(corpus: Corpus, start: int, stop: int, batch_size: int) -> list[np.ndarray]:
    """Rows ``start:stop`` (one shard) as batches of global row indices, shortest sentences first.

    Batches are padded to their longest row, so grouping rows of similar length spends little on padding
    (on SST-2 most rows are short, a few long). Characters stand in for tokens: they sort the same way
    closely enough and cost nothing. The sort is stable, so the plan (and with it every logit) depends on
    the corpus, the shard and ``batch_size`` only; both the local and the Ray path score exactly these
    batches."""
    pairs = corpus.pairs
    order = sorted(range(start, stop),
                   key=lambda i: len(corpus.texts[i]) + (len(pairs[i]) if pairs is not None else 0))
    rows = np.asarray(order, dtype=np.int64)
    return [rows[k:k + batch_size] for k in range(0, len(rows), batch_size)]


def batch_inputs(corpus: Corpus, rows: np.ndarray) -> tuple[list[str], list[str] | None]:
    texts = [corpus.texts[i] for i in rows]
    pairs = [corpus.pairs[i] for i in rows] if corpus.pairs is not None else None
    return texts, pairs


# --- output ----------------------------------------------------------------------------------------


def output_format(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def header(fmt: str, label_names: Sequence[str]) -> str:
    """The output's first line: the TSV header (nothing for JSONL, whose rows name their fields)."""
    if fmt == "tsv":
        return "\t".join(["id", "label", *(f"logit_{name}" for name in label_names)]) + "\n"
    return ""


def _exact(value: np.float32) -> float:
    # str() of a float32 is the shortest decimal that reads back as the same float32; as a Python float
    # it prints that way again: exact, and about half as long as repr(float(value)).
    return float(str(value))


def format_rows(corpus: Corpus, start: int, logits: np.ndarray, label_names: Sequence[str], fmt: str) -> bytes:
    """Rows ``start:start + len(logits)`` in input order; ``label`` is the arg-max, as textmodel names it."""
    logits = np.asarray(logits, dtype=np.float32)
    best = np.argmax(logits, axis=1)
    out = []
    for k, row in enumerate(logits):
        row_id = corpus.ids[start + k]
        values = [_exact(v) for v in row]
        label = label_names[int(best[k])]
        if fmt == "tsv":
            out.append("\t".join([str(row_id), label, *map(repr, values)]) + "\n")
        else:
            out.append(json.dumps({"id": row_id, "label": label, "logits": values}, ensure_ascii=False) + "\n")
    return "".join(out).encode("utf-8")


def written_by_predict(path: Path, fmt: str) -> bool:
    """Whether ``path`` looks like a file ``predict`` wrote: empty, or its first line is a predict TSV header or
    JSONL row. The ``--overwrite`` rule replaces only such files (never a corpus or anything else)."""
    try:
        with path.open("rb") as f:
            first = f.readline(1 << 16).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if not first.strip():
        return path.stat().st_size == 0
    if fmt == "tsv":
        return first.startswith("id\tlabel\tlogit_")
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and tuple(obj) == JSONL_KEYS
