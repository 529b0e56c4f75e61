"""``pofa-deploy evaluate``: task accuracy of a PyTorch checkpoint or a converted OpenVINO folder.

The metrics are the ones the PoFA paper reports, in percent: accuracy for SST-2, MNLI (matched or
mismatched dev set) and QNLI, accuracy and F1 for QQP, exact match and F1 for SQuAD v1.1 (official
normalisation, answers picked from start/end logits over n-best spans of at most 30 tokens).
``--compare OTHER`` runs a second model on the same examples and reports how often the two agree.

Both kinds of model are fed the same way: examples are tokenised once per model (its own
tokenizer), sorted by length and batched with padding to the longest in each batch, which is what
keeps a full dev set within a minute or two on a small CPU.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import (
    Example,
    QAExample,
    Recipe,
    Split,
    encode_qa,
    load_examples,
    pad,
    resolve_split,
    spec,
    tokenize,
)
from .calibration.encode import Feature, pad_id
from .calibration.recipes import load_from_hub
from .checkpoint import Task, has_tokenizer, infer_task, read_config, resolve
from .errors import CheckpointError, DataError, InputError
from .ir import ir_xml, is_int8_ir, is_ir, read_report
from .metrics import accuracy, agreement, best_answers, binary_f1, paired_difference, squad_scores
from .options import at_least, coerce_fields, option
from .progress import Progress, printer, silent

N_BEST = 20
MAX_ANSWER_LENGTH = 30
_PRECISION_NAMES = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}


@dataclass(frozen=True, kw_only=True)
class EvaluateOptions:
    model: str = option(help="PyTorch checkpoint folder, or a folder converted by pofa-deploy convert",
                        positional=True)
    task: Recipe = option(help="benchmark to score on")
    data: str | None = option(None, help="the benchmark's original files: a folder (GLUE train.tsv/dev.tsv, "
                              "MNLI dev_matched.tsv, SQuAD dev-v1.1.json) or one file; without it the hub "
                              "copy is used when the `datasets` library and the network are available")
    split: Split | None = option(None, help="train, dev (MNLI: dev_matched) or dev_mismatched (MNLI); "
                                 "validation is dev. Default: dev for a --data folder or the hub copy; a --data "
                                 "FILE is read as it is (its name, dev.tsv, train-v1.1.json, ..., gives its "
                                 "split) and --split must agree")
    compare: str | None = option(None, help="a second model (checkpoint or converted folder) to run on the "
                                 "same data; adds the share of identical predictions", metavar="OTHER")
    batch_size: int = option(32, help="examples per inference batch")
    seq_len: int = option(128, help="maximum tokens per example (SQuAD: per context window; 384 is usual)")
    stride: int = option(128, help="SQuAD only: tokens shared by consecutive windows of a long context "
                        "(reduced where the question leaves too little room)")
    limit: int | None = option(None, help="evaluate only the first N examples")
    json: Path | None = option(None, help="also write the full result as JSON to this file",
                               metavar="PATH")

    def __post_init__(self) -> None:
        coerce_fields(self)
        at_least(self, 1, "batch_size", "limit")
        at_least(self, 8, "seq_len")
        at_least(self, 0, "stride")


OPTIONS = EvaluateOptions

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class EvalModel:
    """A model ready to score: how to run a padded batch, and the tokenizer that goes with it."""

    source: str
    path: Path
    format: str  # "openvino" or "pytorch"
    tokenizer: Any
    config: dict[str, Any]
    run: Runner
    warnings: list[str] = field(default_factory=list)
    precision: str = "f32"  # what non-quantised ops run in (an IR on a BF16 CPU may run bf16)
    int8: bool = False

    @property
    def max_length(self) -> int | None:
        value = self.config.get("max_position_embeddings")
        return int(value) if value else None


# --- models --------------------------------------------------------------------------------------


def _wanted_task(recipe: Recipe) -> Task:
    return Task.QUESTION_ANSWERING if spec(recipe).question_answering else Task.TEXT_CLASSIFICATION


def _check_head(source: str, folder: Path, cfg: dict[str, Any], recipe: Recipe) -> None:
    """The model's head must fit the benchmark: task type and, for classification, the label count."""
    want = _wanted_task(recipe)
    try:
        task = infer_task(folder, cfg)
    except InputError:
        task = want  # no architectures in config.json: trust the outputs (checked at the first batch)
    if task is not want:
        raise InputError(f"{source}: a {task.value} model; --task {recipe.value} needs a {want.value} model")
    if want is Task.TEXT_CLASSIFICATION:
        n = _num_labels(cfg)
        s = spec(recipe)
        if n != s.num_labels:
            raise InputError(f"{source}: the model has {n} labels but {s.title} has {s.num_labels} "
                             f"({', '.join(s.label_names)}); evaluate it on the task it was fine-tuned for")


def _num_labels(cfg: dict[str, Any]) -> int:
    id2label = cfg.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return len(id2label)
    return int(cfg.get("num_labels", 2))  # transformers' default head has 2 labels


def label_map(cfg: dict[str, Any], recipe: Recipe) -> list[int] | None:
    """Model label id -> benchmark label id when the model's label names are the benchmark's in another
    order (e.g. contradiction/neutral/entailment for MNLI); None when ids are taken as they are."""
    names = spec(recipe).label_names
    id2label = cfg.get("id2label") or {}
    try:
        model_names = [str(id2label[str(i)] if str(i) in id2label else id2label[i]).lower()
                       for i in range(len(names))]
    except (KeyError, TypeError):
        return None
    if sorted(model_names) != sorted(names) or model_names == list(names):
        return None
    return [names.index(n) for n in model_names]


def _tokenizer(folder: Path) -> Any:
    if not has_tokenizer(folder):
        raise CheckpointError(f"{folder}: no tokenizer files (tokenizer.json or vocab.txt) next to the "
                              "model; save the tokenizer there with tokenizer.save_pretrained")
    import transformers

    return transformers.AutoTokenizer.from_pretrained(str(folder))


def load_model(source: str, recipe: Recipe) -> EvalModel:
    """An OpenVINO folder (or .xml) converted by pofa-deploy, or a PyTorch checkpoint folder / hub id."""
    path = Path(source).expanduser()
    if path.exists() and is_ir(path):
        return _load_ir(source, path, recipe)
    return _load_torch(source, recipe)


def _load_ir(source: str, path: Path, recipe: Recipe) -> EvalModel:
    from .runtime import load

    folder = path if path.is_dir() else path.parent
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: no config.json next to the IR; evaluate a folder written by "
                              "pofa-deploy convert (it keeps config.json and the tokenizer)")
    cfg = read_config(folder)
    _check_head(source, folder, cfg, recipe)
    tokenizer = _tokenizer(folder)
    loaded = load(path)
    warnings = _synthetic_warning(source, cfg)
    return EvalModel(source, folder, "openvino", tokenizer, cfg, loaded.infer, warnings, loaded.precision,
                     is_int8_ir(ir_xml(path), read_report(folder)))


def _load_torch(source: str, recipe: Recipe) -> EvalModel:
    import torch

    from .checkpoint import load_checkpoint

    folder = resolve(source)
    cfg = read_config(folder)
    _check_head(source, folder, cfg, recipe)
    ckpt = load_checkpoint(folder, task=_wanted_task(recipe))
    if ckpt.tokenizer is None:
        _tokenizer(folder)  # raises the no-tokenizer error
    model = ckpt.model
    accepted = set(inspect.signature(model.forward).parameters)

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in feed.items() if k in accepted})
        return {k: getattr(out, k).float().numpy() for k in ("logits", "start_logits", "end_logits")
                if getattr(out, k, None) is not None}

    warnings = _synthetic_warning(source, cfg)
    head = [k for k in ckpt.newly_initialised if "classifier" in k or "qa_outputs" in k]
    if head:
        warnings.append(f"{source}: the task head ({', '.join(head[:2])}) is not in the checkpoint and was "
                        "randomly initialised; its scores are meaningless")
    return EvalModel(source, folder, "pytorch", ckpt.tokenizer, cfg, run, warnings)


def _synthetic_warning(source: str, cfg: dict[str, Any]) -> list[str]:
    if cfg.get("pofa_synthetic"):
        return [f"{source}: a synthetic, randomly initialised model (pofa-deploy synth); its scores are "
                "meaningless"]
    return []


def _output(out: dict[str, np.ndarray], name: str, position: int, source: str) -> np.ndarray:
    if name in out:
        return out[name]
    values = list(out.values())
    if len(values) > position:
        return values[position]
    raise InputError(f"{source}: the model has no {name!r} output (outputs: {', '.join(out)}); "
                     "was it converted for another task?")


# --- running -------------------------------------------------------------------------------------


def _batches(features: Sequence[Feature], batch_size: int) -> list[list[int]]:
    """Feature indices sorted by length and cut into batches, so padding stays short."""
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def _feed(model: EvalModel, features: Sequence[Feature], idx: list[int]) -> dict[str, np.ndarray]:
    batch = [features[i] for i in idx]
    return pad(batch, max(len(f["input_ids"]) for f in batch), pad_id(model.tokenizer))


def classify(model: EvalModel, examples: Sequence[Example], recipe: Recipe, *, seq_len: int, batch_size: int,
             progress: Progress = silent) -> list[int]:
    """Predicted benchmark label ids, in example order."""
    features = tokenize(model.tokenizer, examples, seq_len=seq_len)
    expected = spec(recipe).num_labels
    mapping = label_map(model.config, recipe)
    predictions = [0] * len(examples)
    done = 0
    for idx in _batches(features, batch_size):
        logits = _output(model.run(_feed(model, features, idx)), "logits", 0, model.source)
        if logits.ndim != 2 or logits.shape[-1] != expected:
            raise InputError(f"{model.source}: the model outputs {logits.shape[-1]} scores per example but "
                             f"{spec(recipe).title} has {expected} labels; evaluate it on its own task")
        for i, label in zip(idx, np.argmax(logits, axis=-1), strict=True):
            predictions[i] = mapping[int(label)] if mapping else int(label)
        done += len(idx)
        progress(_count(done, len(examples), "examples"))
    return predictions


def answer(model: EvalModel, examples: Sequence[QAExample], *, seq_len: int, stride: int, batch_size: int,
           progress: Progress = silent) -> tuple[list[str], int]:
    """Predicted answer strings in example order, and the number of context windows scored."""
    qa = encode_qa(model.tokenizer, examples, seq_len=seq_len, stride=stride)
    starts: list[np.ndarray] = [np.zeros(0)] * len(qa)
    ends: list[np.ndarray] = [np.zeros(0)] * len(qa)
    done = 0
    for idx in _batches(qa.inputs, batch_size):
        out = model.run(_feed(model, qa.inputs, idx))
        s = _output(out, "start_logits", 0, model.source)
        e = _output(out, "end_logits", 1, model.source)
        for row, i in enumerate(idx):
            n = len(qa.offsets[i])
            starts[i], ends[i] = s[row, :n], e[row, :n]
        done += len(idx)
        progress(_count(done, len(qa), "context windows"))
    answers = best_answers([e.context for e in examples], qa.example_index, qa.offsets, starts, ends,
                           n_best=N_BEST, max_answer_length=MAX_ANSWER_LENGTH)
    return answers, len(qa)


def _count(done: int, total: int, what: str) -> str:
    """A detail line for the progress printer (it overwrites the previous one on a terminal)."""
    return f"  {done}/{total} {what} ({100 * done // max(total, 1)}%)"


def score(recipe: Recipe, predictions: Sequence[Any], examples: Sequence[Any]) -> dict[str, float]:
    if spec(recipe).question_answering:
        return squad_scores(predictions, [e.answers for e in examples])
    labels = [int(e.label) for e in examples]
    metrics = {"accuracy": accuracy(predictions, labels)}
    if recipe is Recipe.QQP:
        metrics["f1"] = binary_f1(predictions, labels)
    return metrics


def split_title(recipe: Recipe, split: str | None, data: str | None = None) -> str:
    """The column name papers use: SST-2, MNLI-m, MNLI-mm, QQP, QNLI, SQuAD v1.1 (+ split if not dev;
    + the file's name when it is a file of unknown split)."""
    title = spec(recipe).title
    if split is None:
        return f"{title} ({Path(str(data)).name})"
    if recipe is Recipe.MNLI and split in ("dev_matched", "dev_mismatched"):
        return title + ("-m" if split == "dev_matched" else "-mm")
    return title if split in ("dev", "dev_matched") else f"{title} ({split})"


def data_source(options: EvaluateOptions) -> tuple[str | None, str]:
    """(split, what is read): the split's file in a --data folder, the --data file itself, or the hub copy.

    A single file is read as it is: its split is the one whose file name it has (None when its name is
    none of them), and a --split that disagrees is refused rather than silently ignored."""
    recipe = Recipe(options.task)
    s = spec(recipe)
    asked = resolve_split(recipe, options.split) if options.split is not None else None
    if options.data is None:
        split = asked or resolve_split(recipe, "dev")
        return split, f"hub:{s.hub[0]}/{s.hub[1] or ''}[{s.hub_splits[split]}]"
    path = Path(options.data).expanduser()
    if not path.exists():
        raise InputError(f"--data {options.data}: no such file or folder; give the folder with the task's "
                         "original files (e.g. SST-2's dev.tsv), or leave --data out to use the hub copy")
    if path.is_dir():
        split = asked or resolve_split(recipe, "dev")
        return split, str(path / s.files[split])
    named = next((name for name, file in s.files.items() if file == path.name), None)
    if asked is not None and asked != named:
        what = f"the {named} split's file" if named else "a single file, read as it is"
        raise InputError(f"--split {options.split}: --data {options.data} is {what}; give the folder holding "
                         f"{', '.join(s.files.values())} to choose a split, or leave --split out")
    return named, str(path)


def load_task_examples(options: EvaluateOptions, split: str | None) -> list[Any]:
    """The benchmark's labelled examples, in file order (the first ``limit`` when given)."""
    recipe = options.task
    if options.data is not None and not Path(options.data).expanduser().exists():
        raise InputError(f"--data {options.data}: no such file or folder; give the folder with the task's "
                         "original files (e.g. SST-2's dev.tsv), or leave --data out to use the hub copy")
    examples: list[Any]
    split = split or resolve_split(recipe, "dev")  # None: a single file, which is read whatever the split
    if options.data is None:
        examples = list(load_from_hub(recipe, split, pass_as="--data PATH"))
    else:
        examples = list(load_examples(f"{recipe.value}:{options.data}", split=split))
    where = options.data or recipe.value
    if spec(recipe).question_answering:
        _check_squad_v11(where, examples)
    if options.limit is not None:
        examples = examples[: options.limit]
    if spec(recipe).question_answering:
        if not any(e.answers for e in examples):
            raise DataError(where, "no question has a gold answer; evaluation needs the answers "
                            "(SQuAD train/dev)")
    else:
        unlabelled = next((i for i, e in enumerate(examples) if e.label is None), None)
        if unlabelled is not None:
            raise DataError(where, f"example {unlabelled + 1} has no label; evaluation needs labelled data "
                            "(the GLUE train/dev files, not test)")
    return examples


def _check_squad_v11(where: str, examples: Sequence[QAExample]) -> None:
    """Refuse SQuAD v2.0: scoring it as v1.1 would drop its unanswerable questions from the denominator,
    and v2.0 scoring needs a no-answer threshold that pofa-deploy does not implement."""
    impossible = sum(e.impossible for e in examples)
    if impossible:
        raise DataError(where, f"is SQuAD v2.0 ({impossible} of {len(examples)} questions with is_impossible); "
                        "pofa-deploy scores v1.1 only (no no-answer threshold): give dev-v1.1.json")
    missing = [e for e in examples if not e.answers]
    if missing and len(missing) < len(examples):
        raise DataError(where, f"{len(missing)} of {len(examples)} questions have no gold answer (first: id "
                        f"{missing[0].id!r}); SQuAD v1.1 scoring counts every question, so each needs one: "
                        "give dev-v1.1.json")


def evaluate_model(model: EvalModel, examples: Sequence[Any], options: EvaluateOptions, *,
                   progress: Progress = silent) -> tuple[dict[str, Any], list[Any]]:
    """One model's scores (and its predictions, for agreement)."""
    recipe = options.task
    if model.max_length is not None and options.seq_len > model.max_length:
        raise InputError(f"--seq-len {options.seq_len} exceeds {model.source}'s max_position_embeddings "
                         f"({model.max_length})")
    progress(f"scoring {model.source} ({model.format}) on {len(examples)} {recipe.value} examples")
    clock = time.perf_counter()
    result: dict[str, Any] = {"model": model.source, "format": model.format, "int8": model.int8,
                              "precision": model.precision}
    predictions: list[Any]
    if spec(recipe).question_answering:
        predictions, windows = answer(model, examples, seq_len=options.seq_len, stride=options.stride,
                                      batch_size=options.batch_size, progress=progress)
        result["windows"] = windows
    else:
        predictions = classify(model, examples, recipe, seq_len=options.seq_len,
                               batch_size=options.batch_size, progress=progress)
        mapping = label_map(model.config, recipe)
        if mapping:
            result["label_map"] = mapping
    result["metrics"] = score(recipe, predictions, examples)
    result["seconds"] = round(time.perf_counter() - clock, 2)
    shown = ", ".join(f"{name.replace('_', ' ')} {value:.2f}" for name, value in result["metrics"].items())
    progress(f"{model.source}: {shown} in {result['seconds']:.1f} s")
    return result, predictions


def _progress(progress: Progress | bool | None) -> Progress:
    if callable(progress):
        return progress
    if progress is None:
        progress = sys.stderr.isatty()
    return printer() if progress else silent


def evaluate(options: EvaluateOptions, *, progress: Progress | bool | None = None) -> dict[str, Any]:
    """Score ``options.model`` (and ``options.compare``) on the benchmark; metrics in percent.

    ``progress``: a ``progress.Progress`` callable, or None for the progress printer on stderr when it is
    a terminal (quiet otherwise), True/False to force the printer on or off.
    """
    say = _progress(progress)
    recipe = Recipe(options.task)
    split, data = data_source(options)
    examples = load_task_examples(options, split)
    result: dict[str, Any] = {
        "task": recipe.value,
        "benchmark": split_title(recipe, split, data),
        "split": split,  # None: a --data file whose name is no split's file name
        "data": data,  # the file actually read, or hub:DATASET[SPLIT]
        "examples": len(examples),
        "seq_len": options.seq_len,
        "batch_size": options.batch_size,
        "metrics_in": "percent",
        "warnings": [],
    }
    predictions = []
    for key, source in (("model", options.model), ("compare", options.compare)):
        if source is None:
            result[key] = None
            continue
        say(f"loading {source}")
        model = load_model(source, recipe)
        result["warnings"].extend(w for w in model.warnings if w not in result["warnings"])
        result[key], preds = evaluate_model(model, examples, options, progress=say)
        predictions.append(preds)
    result["agreement"] = agreement(*predictions) if len(predictions) == 2 else None
    result["difference"] = None
    if len(predictions) == 2 and not spec(recipe).question_answering:
        # Is the accuracy gap between the two models bigger than the dev set's sampling noise?
        labels = [int(e.label) for e in examples]
        correct = [[float(p == y) for p, y in zip(preds, labels, strict=True)] for preds in predictions]
        result["difference"] = {"metric": "accuracy", "model_minus_compare":
                                {k: round(v, 4) for k, v in paired_difference(*correct).items()}}
    return result


# --- command -------------------------------------------------------------------------------------


def runs_label(row: dict[str, Any]) -> str:
    """What one evaluated model ran as: "PyTorch FP32", "OpenVINO FP32", "OpenVINO INT8 (other ops bf16)"."""
    kind = "OpenVINO" if row["format"] == "openvino" else "PyTorch"
    if row["int8"]:
        return f"{kind} INT8 (other ops {row['precision']})"
    return f"{kind} {_PRECISION_NAMES.get(row['precision'], row['precision'])}"


def format_summary(result: dict[str, Any]) -> str:
    data = result["data"] or "hub"
    head = f"{result['benchmark']}: {result['examples']} examples from {data} (seq_len {result['seq_len']})"
    lines = [head]
    rows = [r for r in (result["model"], result["compare"]) if r]
    width = max(len(r["model"]) for r in rows)
    kinds = [runs_label(r) for r in rows]
    kind_width = max(map(len, kinds))
    for r, kind in zip(rows, kinds, strict=True):
        shown = "  ".join(f"{name.replace('_', ' ')} {value:6.2f}" for name, value in r["metrics"].items())
        extra = f", {r['windows']} windows" if "windows" in r else ""
        lines.append(f"  {r['model']:<{width}}  {kind:<{kind_width}}  {shown}   [{r['seconds']:.1f} s{extra}]")
    if result["agreement"] is not None:
        what = "identical answers" if result["task"] == Recipe.SQUAD.value else "identical predictions"
        lines.append(f"  agreement: {result['agreement']:.2f}% {what}")
    if result.get("difference"):
        d = result["difference"]["model_minus_compare"]
        lines.append(f"  accuracy difference (model - compare): {d['difference']:+.2f} points, 95% paired "
                     f"bootstrap interval [{d['ci95_low']:+.2f}, {d['ci95_high']:+.2f}]")
    return "\n".join(lines)


def write_json(path: Path, result: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--json {path}: cannot write it ({exc.strerror or exc})") from None


def main(options: EvaluateOptions) -> int:
    result = evaluate(options)
    print(format_summary(result))
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if options.json is not None:
        write_json(options.json, result)
        print(f"wrote {options.json}", file=sys.stderr)
    return 0
