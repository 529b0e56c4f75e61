"""Readers, recipes, the built-in sample and encode: every format and every malformed-file guard."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pofa_deploy.calibration import (
    BUILTIN,
    Example,
    QAExample,
    Recipe,
    Split,
    encode,
    encode_qa,
    load_examples,
    resolve_split,
    tokenize,
)
from pofa_deploy.checkpoint import Task
from pofa_deploy.errors import DataError, InputError

# --- helpers -------------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def tsv(*rows: tuple[str, ...]) -> str:
    return "".join("\t".join(r) + "\n" for r in rows)


def data_error(fn: Callable[[], Any], *, line: int | None = None, contains: str = "") -> DataError:
    with pytest.raises(DataError) as info:
        fn()
    err = info.value
    assert err.line == line, str(err)
    assert contains.lower() in str(err).lower(), str(err)
    return err


def rejects(tmp_path: Path, name: str, text: str, *, line: int | None = None, contains: str = "",
            recipe: str = "") -> DataError:
    """Write ``text`` to ``name`` and check that loading it (as ``recipe:PATH`` if given) fails."""
    path = write(tmp_path, name, text)
    source = f"{recipe}:{path}" if recipe else str(path)
    return data_error(lambda: load_examples(source), line=line, contains=contains)


@pytest.fixture(scope="module")
def tok() -> Any:
    """A real WordPiece tokenizer over a small vocabulary (characters + a few words), built in code."""
    from transformers import BertTokenizer

    words = ["the", "a", "an", "and", "of", "to", "in", "is", "it", "was", "tower", "paris", "eiffel", "when",
             "where", "what", "built", "who", "good", "bad", "movie", "film", "question", "answer", "context"]
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,!?'-")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars), *words]
    vocab = list(dict.fromkeys(vocab))
    return BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)


# --- built-in sample -----------------------------------------------------------------------------


def test_builtin_sample_is_varied_and_default() -> None:
    examples = load_examples(None)
    assert examples == load_examples(BUILTIN) == load_examples(" Builtin ")
    assert len(examples) >= 300
    texts = [e.text for e in examples if isinstance(e, Example)]
    assert len(texts) == len(examples) and len(set(texts)) == len(texts)
    assert all(t.strip() == t and t for t in texts)
    assert sum(t.endswith("?") for t in texts) >= 40  # questions
    lengths = sorted(len(t.split()) for t in texts)
    assert lengths[0] <= 4 and lengths[-1] >= 30  # short and long


def test_limit_is_a_seeded_sample_and_none_keeps_file_order() -> None:
    everything = load_examples(None)
    a = load_examples(None, limit=20, seed=3)
    assert a == load_examples(None, limit=20, seed=3)
    assert a != load_examples(None, limit=20, seed=4)
    assert len(a) == 20 and set(a) <= set(everything)
    assert a != everything[:20]
    assert len(load_examples(None, limit=10_000)) == len(everything)
    with pytest.raises(InputError, match="limit"):
        load_examples(None, limit=0)


# --- plain files ---------------------------------------------------------------------------------


def test_txt_skips_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "first line\n\n   \nsecond line  \r\nthird\n")
    assert load_examples(path) == [Example("first line"), Example("second line"), Example("third")]
    assert load_examples(str(path), limit=2, seed=0) == load_examples(path, limit=2, seed=0)


def test_txt_empty_is_a_data_error(tmp_path: Path) -> None:
    data_error(lambda: load_examples(write(tmp_path, "e.txt", "")), contains="no text lines")
    data_error(lambda: load_examples(write(tmp_path, "b.txt", "\n  \n")), contains="no text lines")


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.txt", b"fine\nalso fine\nbroken \xff here\n")
    err = data_error(lambda: load_examples(path), line=3, contains="UTF-8")
    assert str(path) in str(err) and "0xff" in str(err)
    data_error(lambda: load_examples(write(tmp_path, "bad.tsv", b"sentence\tlabel\nok\t1\n\xe9t\xe9\t0\n")),
               line=3, contains="UTF-8")
    data_error(lambda: load_examples(write(tmp_path, "bad.jsonl", b'{"text": "a"}\n{"text": "\xc3"}\n')),
               line=2, contains="UTF-8")


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.tsv", b"\xef\xbb\xbfsentence\tlabel\nnice\t1\n")
    assert load_examples(path) == [Example("nice", None, 1)]


@pytest.mark.parametrize(("header", "row", "expected"), [
    (("sentence", "label"), ("a fine film ", "1"), Example("a fine film", None, 1)),
    (("text",), ("just text",), Example("just text")),
    (("index", "sentence1", "sentence2", "gold_label"), ("0", "p", "h", "contradiction"),
     Example("p", "h", 2)),
    (("index", "question", "sentence", "label"), ("0", "q?", "s.", "not_entailment"), Example("q?", "s.", 1)),
    (("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), ("1", "2", "3", "q1", "q2", "0"),
     Example("q1", "q2", 0)),
    (("text", "text_pair", "label"), ("x", "y", "4"), Example("x", "y", 4)),
])
def test_tsv_layouts(tmp_path: Path, header: tuple[str, ...], row: tuple[str, ...],
                     expected: Example) -> None:
    assert load_examples(write(tmp_path, "d.tsv", tsv(header, row))) == [expected]


def test_tsv_guards(tmp_path: Path) -> None:
    head = ("sentence", "label")
    rejects(tmp_path, "a.tsv", tsv(("words", "label"), ("x", "1")), line=1, contains="no text column")
    rejects(tmp_path, "b.tsv", tsv(head, ("x", "1"), ("y",)), line=3, contains="1 tab-separated fields")
    rejects(tmp_path, "c.tsv", tsv(head, ("x", "1", "extra")), line=2, contains="3 tab-separated")
    rejects(tmp_path, "d.tsv", tsv(head, ("x", "good")), line=2, contains="unknown label 'good'")
    rejects(tmp_path, "e.tsv", tsv(head, ("x", "-1")), line=2, contains="out of range")
    rejects(tmp_path, "f.tsv", tsv(head, ("  ", "1")), line=2, contains="empty")
    rejects(tmp_path, "g.tsv", "", contains="empty file")
    rejects(tmp_path, "h.tsv", tsv(head), contains="no data rows")


def test_tsv_blank_label_is_unlabelled(tmp_path: Path) -> None:
    path = write(tmp_path, "u.tsv", tsv(("sentence", "label"), ("x", "")))
    assert load_examples(path) == [Example("x")]


def test_json_and_jsonl(tmp_path: Path) -> None:
    rows = [{"text": "a", "label": 1}, {"text": "b", "text_pair": "c"}, {"text": "d", "label": "neutral"}]
    expected = [Example("a", None, 1), Example("b", "c", None), Example("d", None, 1)]
    assert load_examples(write(tmp_path, "x.json", json.dumps(rows))) == expected
    assert load_examples(write(tmp_path, "x.jsonl", "\n".join(map(json.dumps, rows)) + "\n\n")) == expected


def test_json_guards(tmp_path: Path) -> None:
    rejects(tmp_path, "a.jsonl", '{"text": "ok"}\n{"text": "unterminated\n', line=2,
            contains="not valid JSON")
    rejects(tmp_path, "b.json", '[\n  {"text": "ok"},\n  {"text": }\n]', line=3, contains="not valid JSON")
    rejects(tmp_path, "c.jsonl", '{"text": 5}\n', line=1, contains="'text' must be")
    rejects(tmp_path, "d.jsonl", '{"text": "a", "label": 1.5}\n', line=1,
            contains="'label' must be an integer")
    rejects(tmp_path, "e.jsonl", '{"text": "a", "label": true}\n', line=1, contains="integer")
    rejects(tmp_path, "f.jsonl", '{"text": "a", "label": "yes"}\n', line=1, contains="unknown label")
    rejects(tmp_path, "g.jsonl", '{"sentence": "a"}\n', line=1, contains="no 'text'")
    rejects(tmp_path, "h.jsonl", '["a"]\n', line=1, contains="JSON object")
    rejects(tmp_path, "i.jsonl", '{"text": "a", "text_pair": 3}\n', line=1, contains="'text_pair' must be")
    rejects(tmp_path, "j.json", '[{"text": "a"}, 3]', contains="item 1")
    rejects(tmp_path, "k.json", '{"text": "a"}', contains="JSON list")
    rejects(tmp_path, "l.json", "[]", contains="no examples")
    rejects(tmp_path, "m.json", "  \n", contains="empty file")
    rejects(tmp_path, "n.jsonl", '{"text": "a"}\n{"question": "q", "context": "c"}\n', contains="mixes")


SQUAD_CONTEXT = ("The Eiffel Tower is a wrought-iron lattice tower in Paris. It was built in 1889 for the "
                 "world fair and is named after the engineer Gustave Eiffel.")


def squad_file(tmp_path: Path, name: str = "dev-v1.1.json", qas: list[dict[str, Any]] | None = None) -> Path:
    if qas is None:
        qas = [{"id": "q1", "question": "Where is the Eiffel Tower?",
                "answers": [{"text": "Paris", "answer_start": SQUAD_CONTEXT.index("Paris")},
                            {"text": "in Paris", "answer_start": SQUAD_CONTEXT.index("in Paris")}]},
               {"id": "q2", "question": "When was it built?",
                "answers": [{"text": "1889", "answer_start": SQUAD_CONTEXT.index("1889")}]}]
    paragraphs = [{"context": SQUAD_CONTEXT, "qas": qas}]
    data = {"version": "1.1", "data": [{"title": "Eiffel", "paragraphs": paragraphs}]}
    return write(tmp_path, name, json.dumps(data))


def test_squad_file_gives_qa_examples(tmp_path: Path) -> None:
    examples = load_examples(squad_file(tmp_path))
    assert examples[0] == QAExample("q1", "Where is the Eiffel Tower?", SQUAD_CONTEXT, ("Paris", "in Paris"),
                                    (SQUAD_CONTEXT.index("Paris"), SQUAD_CONTEXT.index("in Paris")))
    assert [e.id for e in examples] == ["q1", "q2"]
    # HF-style JSON lines work too
    line = {"id": "z", "question": "q?", "context": "c.", "answers": {"text": ["c"], "answer_start": [0]}}
    expected = [QAExample("z", "q?", "c.", ("c",), (0,))]
    assert load_examples(write(tmp_path, "sq.jsonl", json.dumps(line))) == expected


def test_squad_guards(tmp_path: Path) -> None:
    def squad_error(name: str, qas: list[dict[str, Any]], contains: str) -> None:
        data_error(lambda: load_examples(squad_file(tmp_path, name, qas)), contains=contains)

    squad_error("a.json", [{"id": "q", "question": "q?", "answers": [{"text": "x", "answer_start": "3"}]}],
                "'answer_start' must be")
    squad_error("b.json", [{"id": "q", "answers": []}], "qas[0]: 'question'")
    squad_error("c.json", [{"id": "q", "question": "a?"}, {"id": "q", "question": "b?"}], "duplicate id")
    squad_error("e.json", [], "no questions")
    squad_error("f.json", [{"id": "q", "question": "a?", "answers": [], "is_impossible": "yes"}],
                "qas[0]: 'is_impossible' must be true or false")
    rejects(tmp_path, "d.json", '{"data": {"x": 1}}', contains="'data' must be a list")


def test_squad_v2_questions_are_marked_impossible(tmp_path: Path) -> None:
    """A v2.0 file reads (calibration only needs question and context), each unanswerable question marked,
    so that evaluation can refuse to score it as v1.1."""
    qas = [{"id": "q1", "question": "Where?", "is_impossible": False,
            "answers": [{"text": "Paris", "answer_start": SQUAD_CONTEXT.index("Paris")}]},
           {"id": "q2", "question": "Who painted it?", "is_impossible": True, "answers": [],
            "plausible_answers": [{"text": "Eiffel", "answer_start": 4}]}]
    examples = load_examples(squad_file(tmp_path, "dev-v2.0.json", qas))
    assert [(e.id, e.impossible, e.answers) for e in examples] == [("q1", False, ("Paris",)), ("q2", True, ())]
    line = {"id": "z", "question": "q?", "context": "c.", "answers": [], "is_impossible": True}
    (jsonl,) = load_examples(write(tmp_path, "v2.jsonl", json.dumps(line)))
    assert jsonl.impossible and not load_examples(squad_file(tmp_path))[0].impossible


def test_missing_and_unsupported_sources(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_examples(tmp_path / "absent.txt")
    with pytest.raises(InputError, match="is a folder"):
        load_examples(tmp_path)
    with pytest.raises(InputError, match="unsupported file type"):
        load_examples(write(tmp_path, "x.csv", "a,b\n"))


# --- recipes -------------------------------------------------------------------------------------


def test_sst2_recipe_folder_and_file(tmp_path: Path) -> None:
    write(tmp_path / "SST-2", "train.tsv", tsv(("sentence", "label"), ("good ", "1"), ("bad ", "0")))
    write(tmp_path / "SST-2", "dev.tsv", tsv(("sentence", "label"), ("fine ", "1")))
    folder = tmp_path / "SST-2"
    assert load_examples(f"sst2:{folder}") == [Example("good", None, 1), Example("bad", None, 0)]
    assert load_examples(f"SST2:{folder}", split="dev") == load_examples(f"sst2:{folder}", split="validation")
    assert load_examples(f"sst2:{folder / 'dev.tsv'}") == [Example("fine", None, 1)]
    with pytest.raises(InputError, match="unknown split"):
        load_examples(f"sst2:{folder}", split="test")
    with pytest.raises(InputError, match="no such file or folder"):
        load_examples(f"sst2:{tmp_path / 'nope'}")


def test_recipe_guards(tmp_path: Path) -> None:
    rejects(tmp_path, "a.tsv", tsv(("sentence", "label"), ("x", "2")), recipe="sst2",
            line=2, contains="out of range (expected 0..1)")
    rejects(tmp_path, "b.tsv", tsv(("text", "label"), ("x", "1")), recipe="sst2",
            line=1, contains="missing column sentence")
    rejects(tmp_path, "c.tsv", tsv(("question1", "question2"), ("a", "b")), recipe="qqp",
            line=1, contains="missing column is_duplicate")
    rejects(tmp_path, "d.jsonl", json.dumps({"text": "a", "label": 5}), recipe="sst2",
            line=1, contains="out of range")
    rejects(tmp_path, "e.jsonl", json.dumps({"text": "a"}), recipe="squad",
            contains="expected SQuAD questions")


def test_mnli_splits_and_labels(tmp_path: Path) -> None:
    header = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label")
    row = ("0", "1", "1e", "fiction", "(x)", "(y)", "(X)", "(Y)", "A man eats.", "Someone eats.",
           "entailment")
    write(tmp_path, "train.tsv", tsv(header, (*row, "entailment")))
    write(tmp_path, "dev_matched.tsv", tsv(header, (*row, "neutral")))
    write(tmp_path, "dev_mismatched.tsv", tsv(header, (*row, "contradiction")))
    assert load_examples(f"mnli:{tmp_path}") == [Example("A man eats.", "Someone eats.", 0)]
    assert load_examples(f"mnli:{tmp_path}", split="dev") == [Example("A man eats.", "Someone eats.", 1)]
    mismatched = load_examples(f"mnli:{tmp_path}", split="dev_mismatched")
    assert mismatched == [Example("A man eats.", "Someone eats.", 2)]
    bad = write(tmp_path / "bad", "dev_matched.tsv", tsv(header, (*row, "-")))
    data_error(lambda: load_examples(f"mnli:{bad}"), line=2, contains="unknown label '-'")


def test_qqp_qnli_squad_recipes(tmp_path: Path) -> None:
    qqp_header = ("id", "qid1", "qid2", "question1", "question2", "is_duplicate")
    qqp = write(tmp_path / "QQP", "dev.tsv", tsv(qqp_header, ("7", "1", "2", "How?", "Why?", "1")))
    assert load_examples(f"qqp:{qqp.parent}", split="dev") == [Example("How?", "Why?", 1)]
    qnli_header = ("index", "question", "sentence", "label")
    qnli = write(tmp_path / "QNLI", "dev.tsv", tsv(qnli_header, ("0", "Q?", "S.", "entailment"),
                                                   ("1", "Q2?", "S2.", "not_entailment")))
    expected = [Example("Q?", "S.", 0), Example("Q2?", "S2.", 1)]
    assert load_examples(f"qnli:{qnli.parent}", split="dev") == expected
    rejects(tmp_path, "q.tsv", tsv(qnli_header, ("0", "a", "b", "1"), ("1", "c", "d", "2")), recipe="qnli",
            line=3, contains="label 2 out of range (expected 0..1)")
    rejects(tmp_path, "r.tsv", tsv(qnli_header, ("0", "a", "b", "neutral!")), recipe="qnli",
            line=2, contains="unknown label 'neutral!'")
    squad_file(tmp_path / "SQuAD")
    squad = load_examples(f"squad:{tmp_path / 'SQuAD'}", split="dev")
    assert [e.id for e in squad if isinstance(e, QAExample)] == ["q1", "q2"]
    with pytest.raises(InputError, match=r"train-v1\.1\.json"):
        load_examples(f"squad:{tmp_path / 'SQuAD'}", split="train")


@pytest.mark.parametrize("recipe", list(Recipe))
def test_bare_recipe_offline_asks_for_a_path(recipe: Recipe) -> None:
    with pytest.raises(InputError, match=f"{recipe.value}:PATH"):
        load_examples(recipe.value, split="dev")


def test_real_sst2(sst2_dir: Path) -> None:
    dev = load_examples(f"sst2:{sst2_dir}", split="dev")
    assert len(dev) == 872
    assert sum(e.label or 0 for e in dev if isinstance(e, Example)) == 444
    assert dev[0] == Example("it 's a charming and often affecting journey .", None, 1)
    sample = load_examples(f"sst2:{sst2_dir}", limit=16, seed=0)
    assert len(sample) == 16 and sample == load_examples(f"sst2:{sst2_dir}", limit=16, seed=0)


# --- encode --------------------------------------------------------------------------------------


def test_encode_pads_to_seq_len_with_int64_batch_of_one(tok: Any) -> None:
    examples = [Example("the movie was good"), Example("the film was bad", "it was a good film"),
                Example(" ".join(["word"] * 100))]
    feeds = encode(tok, examples, seq_len=24, task="text-classification")
    assert len(feeds) == 3
    for feed in feeds:
        assert set(feed) == {"input_ids", "attention_mask", "token_type_ids"}
        for arr in feed.values():
            assert arr.shape == (1, 24) and arr.dtype == np.int64
    assert feeds[0]["attention_mask"].sum() < 24 and feeds[0]["input_ids"][0, -1] == tok.pad_token_id
    assert feeds[1]["token_type_ids"].max() == 1  # a real pair
    assert feeds[2]["attention_mask"].sum() == 24  # truncated to seq_len
    # order is kept even though singles and pairs are tokenised in separate batches
    one_by_one = [encode(tok, [e], seq_len=24, task=Task.TEXT_CLASSIFICATION)[0] for e in examples]
    assert [f["input_ids"].tolist() for f in feeds] == [f["input_ids"].tolist() for f in one_by_one]


def test_encode_keys_follow_the_tokenizer(tmp_path: Path) -> None:
    from transformers import BertTokenizer

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])}
    distil = BertTokenizer(vocab=vocab, model_input_names=["input_ids", "attention_mask"])
    feeds = encode(distil, [Example("a a")], seq_len=8, task="feature-extraction")
    assert set(feeds[0]) == {"input_ids", "attention_mask"}


def test_encode_task_guards(tok: Any) -> None:
    qa = [QAExample("1", "where?", "in paris")]
    with pytest.raises(InputError, match="cannot be encoded for a text-classification model"):
        encode(tok, qa, seq_len=32, task="text-classification")
    with pytest.raises(InputError, match="unknown task"):
        encode(tok, [Example("a")], seq_len=32, task="summarisation")
    with pytest.raises(InputError, match="at least 8"):
        encode(tok, [Example("a")], seq_len=4, task="fill-mask")
    with pytest.raises(InputError, match="mix"):
        mixed: list[Any] = [Example("a"), *qa]
        encode(tok, mixed, seq_len=32, task="question-answering")


def test_encode_question_answering_windows(tok: Any) -> None:
    long_context = " ".join([SQUAD_CONTEXT] * 4)
    qa = [QAExample("1", "Where is the Eiffel Tower?", long_context), QAExample("2", "When?", SQUAD_CONTEXT)]
    feeds = encode(tok, qa, seq_len=64, task="question-answering", stride=16)
    feats = encode_qa(tok, qa, seq_len=64, stride=16)
    assert len(feeds) == len(feats) > 2
    assert all(f["input_ids"].shape == (1, 64) for f in feeds)
    assert feats.example_index == sorted(feats.example_index) and set(feats.example_index) == {0, 1}
    # offsets point into the context; question and special tokens have none
    for inputs, offsets, ex in zip(feats.inputs, feats.offsets, feats.example_index, strict=True):
        assert len(offsets) == len(inputs["input_ids"]) <= 64
        assert offsets[0] is None
        spans = [o for o in offsets if o is not None]
        assert spans and all(0 <= a <= b <= len(qa[ex].context) for a, b in spans)
        first = next(i for i, o in enumerate(offsets) if o is not None)
        assert tok.convert_ids_to_tokens(inputs["input_ids"][first]).lstrip("#") in qa[ex].context[
            spans[0][0]: spans[0][1]].lower()
    # consecutive windows of one example overlap by the stride
    windows = [o for o, ex in zip(feats.offsets, feats.example_index, strict=True) if ex == 0]
    first_end = [o for o in windows[0] if o is not None][-1][1]
    second_start = next(o for o in windows[1] if o is not None)[0]
    assert second_start < first_end


def test_encode_qa_survives_long_questions_and_big_stride(tok: Any) -> None:
    question = " ".join(["what"] * 80)
    feats = encode_qa(tok, [QAExample("1", question, SQUAD_CONTEXT)], seq_len=32, stride=128)
    assert len(feats) >= 2 and all(len(f["input_ids"]) <= 32 for f in feats.inputs)


def test_plain_text_calibrates_a_qa_model(tok: Any) -> None:
    feeds = encode(tok, load_examples(None, limit=6), seq_len=48, task="question-answering")
    assert len(feeds) >= 6
    assert all(f["token_type_ids"].max() == 1 for f in feeds)


def test_encode_with_a_checkpoint_tokenizer(tiny_checkpoint: Callable[..., Path]) -> None:
    from transformers import AutoTokenizer

    folder = tiny_checkpoint("distilbert", Task.TEXT_CLASSIFICATION)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    feeds = encode(tokenizer, load_examples(None, limit=8), seq_len=32, task="text-classification")
    assert len(feeds) == 8 and all(f["input_ids"].shape == (1, 32) for f in feeds)
    assert tokenize(tokenizer, [Example("a b c")], seq_len=32)[0]["input_ids"][0] == tokenizer.cls_token_id


# --- packaging -----------------------------------------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[1] / "pofa_deploy"
LEAF_MODULES = {"errors", "checkpoint"}  # what calibration may import from pofa_deploy


def test_calibration_is_an_ordinary_subpackage_with_its_sample() -> None:
    import pofa_deploy.calibration as calibration

    assert Path(calibration.__file__).parent == PACKAGE / "calibration"
    assert (PACKAGE / "calibration" / "samples" / "builtin.txt").is_file()
    assert not (PACKAGE.parent / "calibration").exists()  # no second copy at the top level


def test_calibration_imports_only_leaf_modules() -> None:
    """No cycle: pofa_deploy/__init__ never imports calibration, and calibration imports only leaf
    modules of pofa_deploy (never its package-level API or a command module)."""
    import ast

    init = ast.parse((PACKAGE / "__init__.py").read_text())
    imports = [ast.unparse(n) for n in ast.walk(init) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not [i for i in imports if "calibration" in i]
    for path in (PACKAGE / "calibration").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "pofa_deploy" for a in node.names), path.name
            elif isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("pofa_deploy"), f"{path.name}: use a relative import"
                if node.level == 2:
                    assert node.module in LEAF_MODULES, f"{path.name} imports pofa_deploy.{node.module}"
                assert node.level <= 2, path.name


def test_split_spellings() -> None:
    assert Split("Validation") is Split.DEV and Split("dev-mismatched") is Split.DEV_MISMATCHED
    assert resolve_split(Recipe.MNLI, Split.DEV) == "dev_matched"
    assert resolve_split(Recipe.SST2, Split.DEV) == resolve_split(Recipe.SST2, "val") == "dev"
    with pytest.raises(ValueError):
        Split("test")
