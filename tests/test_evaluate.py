"""pofa-deploy evaluate: metrics against hand-computed values, checkpoints and IRs, every guard."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pofa_deploy.calibration import Recipe, Split
from pofa_deploy.checkpoint import Task
from pofa_deploy.errors import DataError, InputError
from pofa_deploy.evaluate import (
    EvaluateOptions,
    evaluate,
    format_summary,
    label_map,
    main,
    runs_label,
)
from pofa_deploy.metrics import (
    accuracy,
    agreement,
    best_answers,
    best_span,
    binary_f1,
    exact_match,
    f1,
    normalize_answer,
    paired_difference,
    squad_scores,
)
from pofa_deploy.options import add_options, from_namespace, new_parser
from pofa_deploy.synth import Arch, write_checkpoint

# --- metrics -------------------------------------------------------------------------------------


def test_squad_normalisation_and_exact_match() -> None:
    assert normalize_answer("The  Eiffel-Tower, in PARIS!") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert exact_match("the Eiffel Tower", "Eiffel tower") == 1.0
    assert exact_match("Eiffel Tower.", "the Eiffel tower") == 1.0
    assert exact_match("Eiffel", "Eiffel tower") == 0.0


def test_squad_f1_by_hand() -> None:
    # "cat sat on mat" vs "cat on mat": 3 common, precision 3/4, recall 1 -> 6/7
    assert f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    assert f1("Paris", "London") == 0.0
    assert f1("", "Paris") == 0.0
    scores = squad_scores(["the cat sat on the mat", "1889", "nothing"],
                          [["a cat on a mat", "cat sat on mat"], ["in 1889", "1889"], ["Paris"]])
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * 2 / 3)
    # F1 takes the best gold independently of EM
    assert squad_scores(["in 1889 AD"], [["1889", "in 1889"]])["f1"] == pytest.approx(100 * 0.8)
    # a question without gold answers (SQuAD v2.0 unanswerable) is never dropped from the denominator
    with pytest.raises(ValueError, match="1 of 2 questions have no gold answer"):
        squad_scores(["Paris", ""], [["Paris"], []])


def test_classification_metrics_by_hand() -> None:
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 50.0
    assert binary_f1([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(50.0)  # P = R = 1/2
    assert binary_f1([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(100 * 0.8)  # P 2/3, R 1
    assert binary_f1([0, 0], [1, 0]) == 0.0
    assert agreement(["a", "b", "c", "d"], ["a", "b", "x", "d"]) == 75.0


def test_paired_difference_interval() -> None:
    rng = np.random.default_rng(1)
    a = (rng.random(800) < 0.85).astype(float)
    same = paired_difference(a, a)
    assert same["difference"] == same["ci95_low"] == same["ci95_high"] == 0.0
    # b = a with 40 of its correct answers turned wrong: exactly 5 points worse
    b = a.copy()
    b[np.flatnonzero(a)[:40]] = 0.0
    d = paired_difference(a, b)
    assert d["difference"] == pytest.approx(5.0)
    assert 3.0 < d["ci95_low"] < 5.0 < d["ci95_high"] < 7.0
    # pairing matters: unrelated errors at the same accuracies give a wider interval
    c = np.roll(b, 400)
    wide = paired_difference(a, c)
    assert wide["ci95_high"] - wide["ci95_low"] > 1.5 * (d["ci95_high"] - d["ci95_low"])
    with pytest.raises(ValueError, match="equally long"):
        paired_difference(a, a[:-1])


def test_best_span_respects_context_order_and_length() -> None:
    # tokens: [CLS] q q [SEP] c0 c1 c2 c3 [SEP]; context char spans 0-3, 4-7, 8-11, 12-15
    offsets: list[tuple[int, int] | None] = [None, None, None, None, (0, 3), (4, 7), (8, 11), (12, 15), None]
    start = np.array([9.0, 8, 0, 0, 1, 5, 0, 0, 0])
    end = np.array([9.0, 0, 0, 0, 0, 0, 1, 4, 7])
    assert best_span(start, end, offsets) == (9.0, 4, 15)  # c1..c3; [CLS] and [SEP] are never answers
    assert best_span(start, end, offsets, max_answer_length=2) == (6.0, 4, 11)  # c1..c2: c1..c3 is 3 tokens
    end_before = np.array([0.0, 0, 0, 0, 9, 0, 0, 0, 0])
    start_after = np.array([0.0, 0, 0, 0, 0, 0, 0, 9, 0])
    assert best_span(start_after, end_before, offsets)[1:] in {(12, 15), (0, 3)}  # type: ignore[index]
    assert best_span(start, end, [None] * 9) is None


def test_best_answers_picks_the_best_window() -> None:
    context = "alpha beta gamma delta"
    offsets_a: list[tuple[int, int] | None] = [None, (0, 5), (6, 10), None]
    offsets_b: list[tuple[int, int] | None] = [None, (11, 16), (17, 22), None]
    answers = best_answers([context, "x"], [0, 0], [offsets_a, offsets_b],
                           [np.array([0, 2.0, 0, 0]), np.array([0, 0, 5.0, 0])],
                           [np.array([0, 2.0, 0, 0]), np.array([0, 0, 5.0, 0])])
    assert answers == ["delta", ""]


def test_label_map_reorders_named_labels() -> None:
    cfg = {"id2label": {"0": "CONTRADICTION", "1": "NEUTRAL", "2": "ENTAILMENT"}}
    assert label_map(cfg, Recipe.MNLI) == [2, 1, 0]
    in_order = {"id2label": {"0": "entailment", "1": "neutral", "2": "contradiction"}}
    assert label_map(in_order, Recipe.MNLI) is None
    assert label_map({"id2label": {"0": "LABEL_0", "1": "LABEL_1"}}, Recipe.SST2) is None
    assert label_map({}, Recipe.SST2) is None


def test_progress_goes_through_the_one_printer(two_label: Path, sst2_data: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Phase lines per model and a detail line per batch (which the printer overwrites on a terminal)."""
    lines: list[str] = []
    options = EvaluateOptions(model=str(two_label), task=Recipe.SST2, data=str(sst2_data), limit=4, batch_size=2)
    evaluate(options, progress=lines.append)
    assert lines[0] == f"loading {two_label}"
    assert lines[1] == f"scoring {two_label} (pytorch) on 4 sst2 examples"
    assert lines[2:4] == ["  2/4 examples (50%)", "  4/4 examples (100%)"]
    assert lines[4].startswith(f"{two_label}: accuracy ") and len(lines) == 5
    evaluate(options, progress=True)  # the progress printer, on stderr: stamped lines
    err = capsys.readouterr().err
    assert "s] scoring" in err and "s] 4/4 examples (100%)" in err
    evaluate(options)  # default: only when stderr is a terminal
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("typed", "split"), [
    ("dev", Split.DEV), ("validation", Split.DEV), ("VAL", Split.DEV), ("train", Split.TRAIN),
    ("dev-mismatched", Split.DEV_MISMATCHED), ("validation_matched", Split.DEV_MATCHED)])
def test_split_is_an_enum_that_keeps_the_accepted_spellings(typed: str, split: Split) -> None:
    parser = new_parser("pofa-deploy evaluate", "test")
    add_options(parser, EvaluateOptions)
    options = from_namespace(EvaluateOptions, parser.parse_args(["m", "--task", "mnli", "--split", typed]))
    assert options.split is split
    assert EvaluateOptions(model="m", task=Recipe.MNLI, split=typed).split is split  # type: ignore[arg-type]


def test_unknown_split_names_the_flag() -> None:
    with pytest.raises(InputError, match=r"^--split must be one of train, dev, dev_matched, dev_mismatched; "
                                         r"got 'test'$"):
        EvaluateOptions(model="m", task=Recipe.SST2, split="test")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"sst2: unknown split 'dev_mismatched'"):
        evaluate(EvaluateOptions(model="m", task=Recipe.SST2, split=Split.DEV_MISMATCHED), progress=False)


# --- evaluating models ---------------------------------------------------------------------------

SENTENCES = [("a good movie", 1), ("bad film", 0), ("it was good , very good", 1), ("the worst", 0),
             ("what a film", 1), ("boring and bad and boring", 0), ("fine", 1), ("not good", 0),
             ("the best movie of the year , funny and well made", 1), ("hate", 0)]


@pytest.fixture(scope="module")
def two_label(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt-sst2")
    return write_checkpoint(folder, Arch.TINY_DISTILBERT, task=Task.TEXT_CLASSIFICATION, num_labels=2)


@pytest.fixture(scope="module")
def sst2_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sst2")
    text = "sentence\tlabel\n" + "".join(f"{s} \t{label}\n" for s, label in SENTENCES)
    (folder / "dev.tsv").write_text(text, encoding="utf-8")
    return folder


def test_evaluate_checkpoint_sst2(two_label: Path, sst2_data: Path) -> None:
    result = evaluate(EvaluateOptions(model=str(two_label), task=Recipe.SST2, data=str(sst2_data),
                                      compare=str(two_label), batch_size=3), progress=False)
    assert result["benchmark"] == "SST-2" and result["split"] == "dev"
    assert result["examples"] == len(SENTENCES)
    model = result["model"]
    assert model["format"] == "pytorch" and set(model["metrics"]) == {"accuracy"}
    assert 0.0 <= model["metrics"]["accuracy"] <= 100.0
    assert model["metrics"]["accuracy"] * len(SENTENCES) / 100 == pytest.approx(
        round(model["metrics"]["accuracy"] * len(SENTENCES) / 100))
    assert result["agreement"] == 100.0
    assert result["difference"]["model_minus_compare"]["difference"] == 0.0
    assert any("synthetic" in w for w in result["warnings"]) and len(result["warnings"]) == 1
    summary = format_summary(result)
    assert "SST-2: 10 examples" in summary and "agreement: 100.00%" in summary


def test_batching_does_not_change_predictions(two_label: Path, sst2_data: Path) -> None:
    from pofa_deploy.evaluate import classify, load_model

    model = load_model(str(two_label), Recipe.SST2)
    from pofa_deploy.calibration import Example, load_examples

    examples = load_examples(f"sst2:{sst2_data}", split="dev")
    texts = [e for e in examples if isinstance(e, Example)]
    one = classify(model, texts, Recipe.SST2, seq_len=32, batch_size=1)
    many = classify(model, texts, Recipe.SST2, seq_len=32, batch_size=4)
    assert one == many


def test_qqp_reports_accuracy_and_f1(tiny_checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    folder = tmp_path / "qqp-model"
    write_checkpoint(folder, Arch.TINY_BERT, task=Task.TEXT_CLASSIFICATION, num_labels=2)
    rows = ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
            "1\t1\t2\thow?\twhy?\t1\n2\t3\t4\twho?\twho?\t0\n")
    (tmp_path / "dev.tsv").write_text(rows)
    result = evaluate(EvaluateOptions(model=str(folder), task=Recipe.QQP, data=str(tmp_path)), progress=False)
    assert set(result["model"]["metrics"]) == {"accuracy", "f1"}


def test_mnli_with_a_three_label_model(tiny_checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    header = "index\tsentence1\tsentence2\tgold_label\n"
    (tmp_path / "dev_mismatched.tsv").write_text(header + "0\ta man\ta person\tentailment\n")
    options = EvaluateOptions(model=str(tiny_checkpoint("distilbert")), task=Recipe.MNLI, data=str(tmp_path),
                              split="dev_mismatched")
    result = evaluate(options, progress=False)
    assert result["benchmark"] == "MNLI-mm" and result["examples"] == 1
    with pytest.raises(InputError, match=r"no dev_matched\.tsv"):
        evaluate(EvaluateOptions(model=options.model, task=Recipe.MNLI, data=str(tmp_path)))


def test_squad_on_a_qa_checkpoint(tiny_checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    context = "The Eiffel Tower is in Paris. It was built in 1889 for the world fair. " * 3
    qas = [{"id": "a", "question": "Where is it?", "answers": [{"text": "Paris", "answer_start": 23}]},
           {"id": "b", "question": "When was it built?", "answers": [{"text": "1889", "answer_start": 46}]}]
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}
    (tmp_path / "dev-v1.1.json").write_text(json.dumps(data))
    qa_model = str(tiny_checkpoint("bert", Task.QUESTION_ANSWERING))
    options = EvaluateOptions(model=qa_model, task=Recipe.SQUAD, data=str(tmp_path), seq_len=48, stride=16,
                              compare=qa_model)
    result = evaluate(options, progress=False)
    model = result["model"]
    assert set(model["metrics"]) == {"exact_match", "f1"} and model["windows"] > 2
    assert 0 <= model["metrics"]["f1"] <= 100
    assert result["agreement"] == 100.0 and "identical answers" in format_summary(result)
    assert result["difference"] is None  # SQuAD: no per-example accuracy


def test_head_and_label_count_guards(tiny_checkpoint: Callable[..., Path], two_label: Path, sst2_data: Path,
                                     tmp_path: Path) -> None:
    three = str(tiny_checkpoint("distilbert"))
    with pytest.raises(InputError, match="has 3 labels but SST-2 has 2"):
        evaluate(EvaluateOptions(model=three, task=Recipe.SST2, data=str(sst2_data)))
    with pytest.raises(InputError, match="has 3 labels"):  # the compare model is checked too
        evaluate(EvaluateOptions(model=str(two_label), task=Recipe.SST2, data=str(sst2_data), compare=three),
                 progress=False)
    qa = str(tiny_checkpoint("bert", Task.QUESTION_ANSWERING))
    with pytest.raises(InputError, match="question-answering model; --task sst2 needs a text-classification"):
        evaluate(EvaluateOptions(model=qa, task=Recipe.SST2, data=str(sst2_data)))
    squad = tmp_path / "dev-v1.1.json"
    squad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "c", "qas": [
        {"id": "1", "question": "q", "answers": [{"text": "c", "answer_start": 0}]}]}]}]}))
    with pytest.raises(InputError, match="--task squad needs a question-answering model"):
        evaluate(EvaluateOptions(model=str(two_label), task=Recipe.SQUAD, data=str(squad)))


def test_data_guards(two_label: Path, tmp_path: Path) -> None:
    model = str(two_label)
    with pytest.raises(InputError, match=r"--data .*no such file or folder"):
        evaluate(EvaluateOptions(model=model, task=Recipe.SST2, data=str(tmp_path / "absent")))
    with pytest.raises(InputError, match="pass --data PATH"):  # offline, no --data
        evaluate(EvaluateOptions(model=model, task=Recipe.SST2))
    unlabelled = tmp_path / "u.jsonl"
    unlabelled.write_text('{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(DataError, match="example 2 has no label"):
        evaluate(EvaluateOptions(model=model, task=Recipe.SST2, data=str(unlabelled)))
    no_answers = tmp_path / "s.json"
    paragraphs = [{"context": "c", "qas": [{"id": "1", "question": "q"}]}]
    no_answers.write_text(json.dumps({"data": [{"paragraphs": paragraphs}]}))
    with pytest.raises(DataError, match="no question has a gold answer"):
        evaluate(EvaluateOptions(model=model, task=Recipe.SQUAD, data=str(no_answers)))
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nfine\t1\nbroken\t7\n")
    with pytest.raises(DataError, match=r"bad.tsv:3: .*out of range"):
        evaluate(EvaluateOptions(model=model, task=Recipe.SST2, data=str(bad)))
    good = tmp_path / "good.tsv"
    good.write_text("sentence\tlabel\nfine\t1\n")
    with pytest.raises(InputError, match="max_position_embeddings"):
        evaluate(EvaluateOptions(model=model, task=Recipe.SST2, data=str(good), seq_len=512))


def _squad(path: Path, qas: list[dict[str, Any]], version: str = "v2.0") -> Path:
    context = "The Eiffel Tower is in Paris. It was built in 1889."
    path.write_text(json.dumps({"version": version, "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}))
    return path


ANSWERABLE = {"id": "a", "question": "Where is it?", "answers": [{"text": "Paris", "answer_start": 23}]}


def test_squad_v2_is_refused_not_scored_as_v11(tiny_checkpoint: Callable[..., Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from pofa_deploy import cli

    qa_model = str(tiny_checkpoint("bert", Task.QUESTION_ANSWERING))
    impossible = {"id": "b", "question": "Who painted it?", "answers": [], "is_impossible": True,
                  "plausible_answers": [{"text": "Eiffel", "answer_start": 4}]}
    v2 = _squad(tmp_path / "dev-v2.0.json", [dict(ANSWERABLE, is_impossible=False), impossible])
    with pytest.raises(DataError, match=r"dev-v2\.0\.json: is SQuAD v2\.0 \(1 of 2 questions with "
                                        r"is_impossible\); pofa-deploy scores v1\.1 only"):
        evaluate(EvaluateOptions(model=qa_model, task=Recipe.SQUAD, data=str(v2)), progress=False)
    # --limit does not hide it: the whole file is checked
    with pytest.raises(DataError, match=r"is SQuAD v2\.0"):
        evaluate(EvaluateOptions(model=qa_model, task=Recipe.SQUAD, data=str(v2), limit=1), progress=False)
    # unflagged questions without answers are refused too, not left out of the denominator
    partial = _squad(tmp_path / "partial.json", [ANSWERABLE, {"id": "c", "question": "Why?", "answers": []}],
                     version="1.1")
    with pytest.raises(DataError, match="1 of 2 questions have no gold answer \\(first: id 'c'\\)"):
        evaluate(EvaluateOptions(model=qa_model, task=Recipe.SQUAD, data=str(partial)), progress=False)
    # the command line: one line, exit 3 (a malformed data file)
    assert cli.main(["evaluate", qa_model, "--task", "squad", "--data", str(v2)]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is SQuAD v2.0" in err and err.startswith("pofa-deploy: error: ")


def test_split_with_a_single_file_is_honoured_or_refused(two_label: Path, sst2_data: Path,
                                                        tmp_path: Path) -> None:
    model = str(two_label)
    dev = sst2_data / "dev.tsv"
    with pytest.raises(InputError, match=r"--split train: --data .*dev\.tsv is the dev split's file; give the "
                                         r"folder holding train\.tsv, dev\.tsv"):
        evaluate(EvaluateOptions(model=model, task=Recipe.SST2, data=str(dev), split="train"))
    train = tmp_path / "train.tsv"
    train.write_text(dev.read_text())
    result = evaluate(EvaluateOptions(model=model, task=Recipe.SST2, data=str(train), limit=2), progress=False)
    assert (result["split"], result["benchmark"], result["data"]) == ("train", "SST-2 (train)", str(train))
    assert f"SST-2 (train): 2 examples from {train}" in format_summary(result)
    same = evaluate(EvaluateOptions(model=model, task=Recipe.SST2, data=str(dev), split="validation", limit=2),
                    progress=False)
    assert (same["split"], same["benchmark"], same["data"]) == ("dev", "SST-2", str(dev))
    mine = tmp_path / "mine.tsv"
    mine.write_text(dev.read_text())
    with pytest.raises(InputError, match=r"--split dev: --data .*mine\.tsv is a single file, read as it is"):
        evaluate(EvaluateOptions(model=model, task=Recipe.SST2, data=str(mine), split="dev"))
    result = evaluate(EvaluateOptions(model=model, task=Recipe.SST2, data=str(mine), limit=2), progress=False)
    assert (result["split"], result["benchmark"], result["data"]) == (None, "SST-2 (mine.tsv)", str(mine))
    folder = evaluate(EvaluateOptions(model=model, task=Recipe.SST2, data=str(sst2_data), limit=2),
                      progress=False)
    assert (folder["split"], folder["data"]) == ("dev", str(sst2_data / "dev.tsv"))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("batch_size", 0, "--batch-size"), ("seq_len", 4, "--seq-len"), ("limit", 0, "--limit"),
    ("stride", -1, "--stride")])
def test_option_guards(field: str, value: int, message: str) -> None:
    extra: dict[str, Any] = {field: value}
    with pytest.raises(InputError, match=message):
        EvaluateOptions(model="m", task=Recipe.SST2, **extra)


def test_command_line(two_label: Path, sst2_data: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    parser = new_parser("pofa-deploy evaluate", "test")
    add_options(parser, EvaluateOptions)
    out_json = tmp_path / "r" / "result.json"
    ns = parser.parse_args([str(two_label), "--task", "SST2", "--data", str(sst2_data), "--limit", "4",
                            "--batch-size", "2", "--json", str(out_json)])
    options = from_namespace(EvaluateOptions, ns)
    assert options.task is Recipe.SST2 and options.json == out_json and options.split is None  # dev
    assert main(options) == 0
    captured = capsys.readouterr()
    assert "SST-2: 4 examples" in captured.out and "accuracy" in captured.out
    assert "warning:" in captured.err and "synthetic" in captured.err
    saved = json.loads(out_json.read_text())
    assert saved["examples"] == 4 and saved["model"]["format"] == "pytorch"
    assert saved["metrics_in"] == "percent"


def test_cli_registers_evaluate() -> None:
    from pofa_deploy.cli import COMMANDS

    assert COMMANDS["evaluate"][0] == "pofa_deploy.evaluate"


# --- OpenVINO IR ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(two_label: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    convert_mod = pytest.importorskip("pofa_deploy.convert")
    out = tmp_path_factory.mktemp("ir") / "sst2-int8"
    convert_mod.convert(convert_mod.ConvertOptions(model=str(two_label), output=out, int8=True, samples=8,
                                                   seq_len=32))
    return out


def test_evaluate_ir_against_its_checkpoint(converted: Path, two_label: Path, sst2_data: Path,
                                           tmp_path: Path) -> None:
    result = evaluate(EvaluateOptions(model=str(converted), task=Recipe.SST2, data=str(sst2_data),
                                      compare=str(two_label), batch_size=4), progress=False)
    assert result["model"]["format"] == "openvino" and result["compare"]["format"] == "pytorch"
    assert result["examples"] == len(SENTENCES)
    assert 0 <= result["model"]["metrics"]["accuracy"] <= 100
    assert result["agreement"] >= 50.0  # INT8 may flip near-ties of a random model, not half of them
    assert result["model"]["int8"] and runs_label(result["model"]).startswith("OpenVINO INT8 (other ops ")
    assert runs_label(result["compare"]) == "PyTorch FP32" and not result["compare"]["int8"]
    assert "OpenVINO INT8" in format_summary(result) and "PyTorch FP32" in format_summary(result)
    xml = evaluate(EvaluateOptions(model=str(converted / "openvino_model.xml"), task=Recipe.SST2,
                                   data=str(sst2_data)), progress=False)
    assert xml["model"]["metrics"] == result["model"]["metrics"]
    mnli = tmp_path / "dev_matched.tsv"
    mnli.write_text("sentence1\tsentence2\tgold_label\na\tb\tneutral\n")
    with pytest.raises(InputError, match="has 2 labels but MNLI has 3"):
        evaluate(EvaluateOptions(model=str(converted), task=Recipe.MNLI, data=str(tmp_path)))
