"""Read text examples from plain files: .txt, .tsv, .json, .jsonl and the shipped built-in sample.

Every reader is strict: a malformed file raises ``DataError`` naming the file and, where the format
has lines, the line (1-based, the header being line 1 of a TSV). Nothing is silently skipped except
blank lines. Texts are stripped of surrounding whitespace (GLUE keeps a trailing space before the tab).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DataError, InputError

BUILTIN = "builtin"
BUILTIN_FILE = "builtin.txt"

# Text columns a generic TSV may have, most specific first (a QNLI file has question+sentence, so
# the pair layouts must be tried before the single "sentence" column).
TSV_TEXT_LAYOUTS: tuple[tuple[str, ...], ...] = (
    ("sentence1", "sentence2"),
    ("question1", "question2"),
    ("question", "sentence"),
    ("text", "text_pair"),
    ("sentence",),
    ("text",),
)
TSV_LABEL_COLUMNS = ("label", "gold_label", "is_duplicate")

# Label names of the GLUE files (MNLI and QNLI agree on entailment = 0).
GLUE_LABEL_NAMES: dict[str, int] = {"entailment": 0, "neutral": 1, "contradiction": 2, "not_entailment": 1}

SUFFIXES = (".txt", ".tsv", ".json", ".jsonl")


@dataclass(frozen=True)
class Example:
    """One text (or text pair) with an optional class label."""

    text: str
    text_pair: str | None = None
    label: int | None = None


@dataclass(frozen=True)
class QAExample:
    """One extractive question-answering example (SQuAD v1.1; ``impossible`` marks a v2.0 question
    flagged ``is_impossible``, which has no answer in its context)."""

    id: str
    question: str
    context: str
    answers: tuple[str, ...] = ()
    answer_starts: tuple[int, ...] = ()
    impossible: bool = False


# --- text decoding -------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """The file as UTF-8 text (a BOM is dropped); undecodable bytes raise DataError with the line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; give a file, or RECIPE:FOLDER for a GLUE/SQuAD "
                         "folder") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(path, f"byte 0x{data[exc.start]:02x} at column {column} is not UTF-8; "
                        "save the file as UTF-8", line=line) from None


def text_lines(text: str) -> list[str]:
    """Lines split on \\n only (so a stray \\x0b or U+2028 inside a TSV field cannot split a row)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def require_examples(path: object, examples: Sequence[Any], what: str = "examples") -> None:
    if not examples:
        raise DataError(path, f"no {what} in it; give a file with at least one")


# --- .txt ----------------------------------------------------------------------------------------


def read_txt(path: Path) -> list[Example]:
    """One text per line; blank lines are skipped."""
    examples = [Example(line.strip()) for line in text_lines(read_text(path)) if line.strip()]
    require_examples(path, examples, "text lines")
    return examples


def read_builtin() -> list[Example]:
    """The shipped sample: ~300 original English sentences (sentiment, questions, facts)."""
    resource = resources.files(__package__ or "pofa_deploy.calibration") / "samples" / BUILTIN_FILE
    text = resource.read_text(encoding="utf-8")
    return [Example(line.strip()) for line in text.splitlines() if line.strip()]


# --- .tsv ----------------------------------------------------------------------------------------


def parse_label(path: Path, line: int, column: str, value: str, *, names: Mapping[str, int] | None = None,
                num_labels: int | None = None) -> int:
    """An integer label, or a label name from ``names``; range-checked against ``num_labels``."""
    text = value.strip()
    names = GLUE_LABEL_NAMES if names is None else names
    if text.lower() in names:
        label = names[text.lower()]
    else:
        try:
            label = int(text)
        except ValueError:
            allowed = "an integer" + (f" or one of {', '.join(names)}" if names else "")
            raise DataError(path, f"column {column}: unknown label {text!r}; expected {allowed}",
                            line=line) from None
    if label < 0 or (num_labels is not None and label >= num_labels):
        bound = f"0..{num_labels - 1}" if num_labels is not None else "0 or more"
        raise DataError(path, f"column {column}: label {label} out of range (expected {bound})", line=line)
    return label


@dataclass(frozen=True)
class TsvTable:
    """A TSV split into its lower-cased header (and the line it is on) and (line number, fields) rows."""

    header: list[str]
    header_line: int
    rows: list[tuple[int, list[str]]]


def tsv_table(path: Path, lines: Sequence[str]) -> TsvTable:
    """``lines`` of the TSV ``path`` as a table; every row must have the header's width (blank lines skipped)."""
    numbered = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise DataError(path, "empty file; a TSV needs a header row and at least one data row")
    header_line, header_text = numbered[0]
    header = [name.strip().lower() for name in header_text.split("\t")]
    rows = []
    for number, line in numbered[1:]:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(path, f"{len(fields)} tab-separated fields, but the header on line {header_line} "
                            f"has {len(header)} ({', '.join(header)})", line=number)
        rows.append((number, fields))
    return TsvTable(header, header_line, rows)


def _tsv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    table = tsv_table(path, text_lines(read_text(path)))
    return table.header, table.rows


def json_lines(path: Path, lines: Sequence[str]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line of a JSON-lines file."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not valid JSON ({exc.msg} at column {exc.colno})", line=number) from None


def read_tsv(path: Path, *, text_columns: Sequence[str] | None = None, label_column: str | None = None,
             label_names: Mapping[str, int] | None = None, num_labels: int | None = None,
             require_label: bool = False, layout: str = "") -> list[Example]:
    """A TSV with a header row.

    Without ``text_columns`` the layout is detected (``TSV_TEXT_LAYOUTS``, label from
    ``TSV_LABEL_COLUMNS`` when present); with them, those columns (and ``label_column``) must exist.
    """
    header, rows = _tsv_rows(path)
    where = f" ({layout})" if layout else ""
    if text_columns is None:
        text_columns = next((cols for cols in TSV_TEXT_LAYOUTS if all(c in header for c in cols)), None)
        if text_columns is None:
            raise DataError(path, f"no text column in the header ({', '.join(header)}); expected sentence, "
                            "text, sentence1+sentence2, question+sentence or question1+question2", line=1)
        label_column = next((c for c in TSV_LABEL_COLUMNS if c in header), None)
    missing = [c for c in (*text_columns, *([label_column] if label_column else [])) if c not in header]
    if missing:
        raise DataError(path, f"missing column {', '.join(missing)}; the header has "
                        f"{', '.join(header)}{where}", line=1)
    if require_label and label_column is None:
        raise DataError(path, f"no label column{where}", line=1)
    text_idx = [header.index(c) for c in text_columns]
    label_idx = header.index(label_column) if label_column else None
    examples = []
    for number, fields in rows:
        first = fields[text_idx[0]].strip()
        if not first:
            raise DataError(path, f"column {text_columns[0]} is empty", line=number)
        pair = fields[text_idx[1]].strip() if len(text_idx) > 1 else None
        label = None
        if label_idx is not None and label_column is not None:
            value = fields[label_idx]
            if value.strip() or require_label:
                label = parse_label(path, number, label_column, value, names=label_names,
                                    num_labels=num_labels)
        examples.append(Example(first, pair, label))
    require_examples(path, examples, "data rows")
    return examples


# --- .json / .jsonl ------------------------------------------------------------------------------


def _field_error(path: Path, where: str, message: str, line: int | None) -> DataError:
    return DataError(path, f"{where}{message}", line=line)


def _string(path: Path, obj: Mapping[str, Any], key: str, where: str, line: int | None, *,
            optional: bool = False, allow_empty: bool = False) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        got = "missing" if key not in obj else f"a {type(value).__name__}"
        raise _field_error(path, where, f"{key!r} must be a string, got {got}", line)
    if not value.strip() and not allow_empty:
        raise _field_error(path, where, f"{key!r} is empty", line)
    return value


def _int(path: Path, value: Any, key: str, where: str, line: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _field_error(path, where, f"{key!r} must be an integer, got {type(value).__name__}", line)
    return value


def _answers(path: Path, obj: Mapping[str, Any], where: str, line: int | None) -> tuple[tuple[str, ...],
                                                                                        tuple[int, ...]]:
    """SQuAD answers: a list of {"text", "answer_start"} or HF's {"text": [...], "answer_start": [...]}."""
    raw = obj.get("answers", [])
    if isinstance(raw, Mapping):
        texts, starts = raw.get("text", []), raw.get("answer_start", [])
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            raise _field_error(path, where, "'answers' must hold equally long 'text' and 'answer_start' "
                               "lists", line)
        raw = [{"text": t, "answer_start": s} for t, s in zip(texts, starts, strict=True)]
    if not isinstance(raw, list):
        raise _field_error(path, where, f"'answers' must be a list, got {type(raw).__name__}", line)
    out_texts, out_starts = [], []
    for j, answer in enumerate(raw):
        at = f"{where}answers[{j}]: "
        if not isinstance(answer, Mapping):
            raise _field_error(path, at, f"expected an object, got {type(answer).__name__}", line)
        text = _string(path, answer, "text", at, line, allow_empty=True)
        out_texts.append(str(text))
        out_starts.append(_int(path, answer.get("answer_start"), "answer_start", at, line))
    return tuple(out_texts), tuple(out_starts)


def example_from_object(path: Path, obj: Any, where: str, line: int | None, *,
                        num_labels: int | None = None) -> Example | QAExample:
    """{"text", "text_pair"?, "label"?} -> Example; {"question", "context", "answers"?} -> QAExample."""
    if not isinstance(obj, Mapping):
        raise _field_error(path, where, f"expected a JSON object, got {type(obj).__name__}", line)
    if "question" in obj and "context" in obj:
        qid = obj.get("id", where.rstrip(": ") or str(line))
        if not isinstance(qid, str | int) or isinstance(qid, bool):
            raise _field_error(path, where, f"'id' must be a string, got {type(qid).__name__}", line)
        texts, starts = _answers(path, obj, where, line)
        return QAExample(str(qid), str(_string(path, obj, "question", where, line)),
                         str(_string(path, obj, "context", where, line)), texts, starts,
                         _impossible(path, obj, where, line))
    if "text" not in obj:
        keys = ", ".join(map(str, obj)) or "none"
        raise _field_error(path, where, f"no 'text' field (keys: {keys}); expected {{\"text\": ..., "
                           "\"text_pair\"?: ..., \"label\"?: ...}", line)
    text = str(_string(path, obj, "text", where, line))
    pair = _string(path, obj, "text_pair", where, line, optional=True, allow_empty=True)
    label = obj.get("label")
    if label is not None:
        if isinstance(label, str) and label.strip().lower() in GLUE_LABEL_NAMES:
            label = GLUE_LABEL_NAMES[label.strip().lower()]
        elif isinstance(label, str):
            raise _field_error(path, where, f"unknown label {label!r}; expected an integer or one of "
                               f"{', '.join(GLUE_LABEL_NAMES)}", line)
        label = _int(path, label, "label", where, line)
        if label < 0 or (num_labels is not None and label >= num_labels):
            bound = f"0..{num_labels - 1}" if num_labels is not None else "0 or more"
            raise _field_error(path, where, f"label {label} out of range (expected {bound})", line)
    return Example(text.strip(), pair.strip() if pair is not None else None, label)


def _uniform(path: Path, examples: Sequence[Example | QAExample]) -> list[Example] | list[QAExample]:
    kinds = {type(e) for e in examples}
    if len(kinds) > 1:
        raise DataError(path, "mixes text examples ('text') and question-answering examples "
                        "('question'+'context'); use one kind per file")
    require_examples(path, examples)
    return list(examples)  # type: ignore[return-value]


def read_jsonl(path: Path, *, num_labels: int | None = None) -> list[Example] | list[QAExample]:
    """One JSON object per line; blank lines skipped."""
    examples: list[Example | QAExample] = []
    for number, obj in json_lines(path, text_lines(read_text(path))):
        examples.append(example_from_object(path, obj, "", number, num_labels=num_labels))
    return _uniform(path, examples)


def read_json(path: Path, *, num_labels: int | None = None) -> list[Example] | list[QAExample]:
    """A JSON list of example objects, or a SQuAD v1.1 file ({"data": [...], "version": ...})."""
    text = read_text(path)
    if not text.strip():
        raise DataError(path, "empty file; expected a JSON list of examples or a SQuAD file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON ({exc.msg} at column {exc.colno})", line=exc.lineno) from None
    if isinstance(data, Mapping) and "data" in data:
        return read_squad_data(path, data)
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of example objects or a SQuAD file with 'data', "
                        f"got a {type(data).__name__}")
    return _uniform(path, [example_from_object(path, obj, f"item {i}: ", None, num_labels=num_labels)
                           for i, obj in enumerate(data)])


def read_squad_data(path: Path, data: Mapping[str, Any]) -> list[QAExample]:
    """SQuAD v1.1 layout: data[].paragraphs[].{context, qas[].{id, question, answers[]}}."""
    articles = data.get("data")
    if not isinstance(articles, list):
        raise DataError(path, f"SQuAD 'data' must be a list, got {type(articles).__name__}")
    examples: list[QAExample] = []
    seen: set[str] = set()
    for a, article in enumerate(_objects(path, articles, "data")):
        paragraphs = article.get("paragraphs")
        if not isinstance(paragraphs, list):
            raise DataError(path, f"data[{a}]: 'paragraphs' must be a list")
        for p, paragraph in enumerate(_objects(path, paragraphs, f"data[{a}].paragraphs")):
            where = f"data[{a}].paragraphs[{p}]: "
            context = str(_string(path, paragraph, "context", where, None))
            qas = paragraph.get("qas")
            if not isinstance(qas, list):
                raise DataError(path, f"{where}'qas' must be a list")
            for q, qa in enumerate(_objects(path, qas, f"data[{a}].paragraphs[{p}].qas")):
                at = f"data[{a}].paragraphs[{p}].qas[{q}]: "
                qid = qa.get("id")
                if not isinstance(qid, str) or not qid:
                    raise DataError(path, f"{at}'id' must be a non-empty string")
                if qid in seen:
                    raise DataError(path, f"{at}duplicate id {qid!r}")
                seen.add(qid)
                texts, starts = _answers(path, qa, at, None)
                examples.append(QAExample(qid, str(_string(path, qa, "question", at, None)), context,
                                          texts, starts, _impossible(path, qa, at, None)))
    require_examples(path, examples, "questions")
    return examples


def _impossible(path: Path, obj: Mapping[str, Any], where: str, line: int | None) -> bool:
    """SQuAD v2.0's ``is_impossible`` flag (absent in v1.1: False)."""
    value = obj.get("is_impossible", False)
    if not isinstance(value, bool):
        raise _field_error(path, where, f"'is_impossible' must be true or false, got {type(value).__name__}",
                           line)
    return value


def _objects(path: Path, items: list[Any], where: str) -> Iterable[Mapping[str, Any]]:
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise DataError(path, f"{where}[{i}]: expected an object, got {type(item).__name__}")
        yield item


def read_file(path: Path, *, num_labels: int | None = None) -> list[Example] | list[QAExample]:
    """Dispatch on the suffix: .txt, .tsv, .json, .jsonl."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return read_txt(path)
    if suffix == ".tsv":
        return read_tsv(path, num_labels=num_labels)
    if suffix == ".jsonl":
        return read_jsonl(path, num_labels=num_labels)
    if suffix == ".json":
        return read_json(path, num_labels=num_labels)
    raise InputError(f"{path}: unsupported file type {suffix or '(no suffix)'!r}; give a "
                     f"{', '.join(SUFFIXES)} file, a recipe (sst2|mnli|qqp|qnli|squad[:PATH]) or 'builtin'")
