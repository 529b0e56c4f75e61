"""predict: corpus formats, order and ids, exact agreement with textmodel, resume, refusals, Ray."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pofa_deploy import cli
from pofa_deploy.predict import PredictOptions, parts_folder, plan_batches, predict, read_corpus
from pofa_deploy.predict.shards import Parts
from pofa_deploy.textmodel import TextModel, open_text_model

SENTENCES = [
    "a gripping, beautifully shot film", "dull", "the plot meanders for two hours and never arrives anywhere",
    "fine", "an actor at the top of his game", "I wanted to leave after ten minutes", "warm and funny",
    "the worst script of the year, by some distance", "ok", "a quiet triumph", "loud, long and empty",
    "it works", "nothing here surprises, and nothing needs to", "superb",
]


@pytest.fixture(scope="module")
def model(tiny_int8: Callable[..., Path]) -> Path:
    return tiny_int8()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _batched_reference(folder: Path, texts: list[str], pairs: list[str] | None, shard: int, batch: int) -> np.ndarray:
    """textmodel's logits for every row, scored in the batches predict plans (so they must be equal exactly)."""
    corpus = read_corpus(_write(folder.parent / "ref.jsonl", [
        {"text": t, **({"text_pair": pairs[i]} if pairs else {})} for i, t in enumerate(texts)]))
    model = open_text_model(folder)
    out = np.zeros((len(texts), 3), np.float32)
    for start in range(0, len(texts), shard):
        for rows in plan_batches(corpus, start, min(start + shard, len(texts)), batch):
            out[rows] = model.score([texts[i] for i in rows], [pairs[i] for i in rows] if pairs else None).logits
    return out


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_local_rows_keep_order_and_ids_and_equal_textmodel(model: Path, tmp_path: Path) -> None:
    txt = tmp_path / "in.txt"
    txt.write_text("\n".join(SENTENCES[:5]) + "\n\n" + "\n".join(SENTENCES[5:]) + "\n")  # a blank line 6
    tsv = tmp_path / "in.tsv"
    tsv.write_text("label\tsentence\tid\n" + "".join(f"1\t{s} \tr{i}\n" for i, s in enumerate(SENTENCES)))
    jsonl = _write(tmp_path / "in.jsonl", [{"text": s, "id": i * 10 if i % 2 else f"s{i}", "extra": 1}
                                           for i, s in enumerate(SENTENCES)])
    expected_ids = {
        txt: [*range(1, 6), *range(7, 7 + len(SENTENCES) - 5)],
        tsv: [f"r{i}" for i in range(len(SENTENCES))],
        jsonl: [i * 10 if i % 2 else f"s{i}" for i in range(len(SENTENCES))],
    }
    reference = _batched_reference(model, SENTENCES, None, 4, 3)
    single = open_text_model(model)
    for source, ids in expected_ids.items():
        out = tmp_path / f"{source.suffix[1:]}-out.jsonl"
        report = predict(PredictOptions(model=model, input=source, output=out, shard_size=4, batch_size=3))
        rows = _jsonl(out)
        assert [r["id"] for r in rows] == ids and report.rows == len(SENTENCES) and report.shards == 4
        logits = np.array([r["logits"] for r in rows], np.float32)
        np.testing.assert_array_equal(logits, reference)  # written exactly, same batches as textmodel
        names = single.label_names or []
        assert [r["label"] for r in rows] == [names[i] for i in np.argmax(reference, axis=1)]
        for k in (0, 2, 9):  # alone (no padding) within the padding tolerance of test_textmodel
            np.testing.assert_allclose(logits[k], single.score([SENTENCES[k]]).logits[0], atol=1e-3)
        assert not parts_folder(out).exists()


def test_pairs_and_tsv_output(model: Path, tmp_path: Path) -> None:
    pairs = [s[::-1] for s in SENTENCES]
    source = tmp_path / "pairs.tsv"
    source.write_text("sentence1\tsentence2\n" + "".join(f"{a}\t{b}\n" for a, b in zip(SENTENCES, pairs,
                                                                                       strict=True)))
    out = tmp_path / "sub" / "pred.tsv"
    predict(PredictOptions(model=model, input=source, output=out, shard_size=5, batch_size=2))
    lines = out.read_text().splitlines()
    names = open_text_model(model).label_names or []
    assert lines[0].split("\t") == ["id", "label", *(f"logit_{n}" for n in names)]
    fields = [line.split("\t") for line in lines[1:]]
    assert [int(f[0]) for f in fields] == list(range(2, 2 + len(SENTENCES)))  # line numbers
    logits = np.array([[float(v) for v in f[2:]] for f in fields], np.float32)
    np.testing.assert_array_equal(logits, _batched_reference(model, SENTENCES, pairs, 5, 2))
    # a pofa-deploy output is replaced with --overwrite only; a corpus never is
    assert cli.main(["predict", str(model), "-i", str(source), "-o", str(out)]) == 2
    assert cli.main(["predict", str(model), "-i", str(source), "-o", str(out), "--overwrite", "-q"]) == 0
    foreign = tmp_path / "notes.tsv"
    foreign.write_text("sentence\nkeep me\n")
    assert cli.main(["predict", str(model), "-i", str(source), "-o", str(foreign), "--overwrite"]) == 2
    assert foreign.read_text() == "sentence\nkeep me\n"


class _Scorer:
    """Wraps TextModel.score: records the texts it sees, raises KeyboardInterrupt on call ``stop_at``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop_at: int | None = None,
                 stop: BaseException | None = None) -> None:
        self.seen: list[str] = []
        self.calls = 0
        original = TextModel.score

        def score(model: TextModel, texts, pairs=None):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == stop_at:
                raise stop or KeyboardInterrupt()
            self.seen.extend(texts)
            return original(model, texts, pairs)

        monkeypatch.setattr(TextModel, "score", score)


def _corpus(tmp_path: Path, n: int = 20) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"{SENTENCES[i % len(SENTENCES)]} {i}\n" for i in range(n)))
    return path


def test_an_interrupted_run_resumes_without_rescoring_finished_shards(model: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    source = _corpus(tmp_path)
    texts = source.read_text().splitlines()
    out = tmp_path / "pred.jsonl"
    argv = ["predict", str(model), "-i", str(source), "-o", str(out), "--shard-size", "4", "--batch-size", "2"]
    _Scorer(monkeypatch, stop_at=5)  # shards 1 and 2 take calls 1-4
    assert cli.main(argv) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pofa-deploy:")]
    assert len(err) == 1 and "2 of 5 shard(s)" in err[0] and "run the same command again to resume" in err[0]
    parts = parts_folder(out)
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in parts.glob("shard-*")}
    assert sorted(kept) == ["shard-000000.jsonl", "shard-000001.jsonl"] and not out.exists()

    second = _Scorer(monkeypatch, stop_at=3)  # shard 3 done (calls 1-2), then stopped again
    assert cli.main(argv) == 130
    assert "resuming, 2 finished shard(s)" in capsys.readouterr().err
    assert {n: (p.stat().st_ino, p.stat().st_mtime_ns) for n, p in ((n, parts / n) for n in kept)} == kept
    assert sorted(second.seen) == sorted(texts[8:12])

    written: list[int] = []
    original_write = Parts.write
    monkeypatch.setattr(Parts, "write", lambda self, shard, data: (written.append(shard.number),
                                                                   original_write(self, shard, data))[1])
    third = _Scorer(monkeypatch)
    assert cli.main(argv) == 0
    assert sorted(third.seen) == sorted(texts[12:]) and written == [3, 4]
    assert "3 finished shard(s) skipped" in capsys.readouterr().out
    monkeypatch.undo()
    fresh = tmp_path / "fresh.jsonl"
    predict(PredictOptions(model=model, input=source, output=fresh, shard_size=4, batch_size=2))
    assert out.read_bytes() == fresh.read_bytes() and not parts.exists()


def test_sigterm_keeps_finished_shards_and_says_so(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM ends predict like Ctrl-C (exit 143): the finished shards stay and the line says so, not
    "nothing was written"."""
    import signal

    from pofa_deploy.outputs import Terminated

    source = _corpus(tmp_path)
    out = tmp_path / "pred.jsonl"
    argv = ["predict", str(model), "-i", str(source), "-o", str(out), "--shard-size", "4", "--batch-size", "2"]
    _Scorer(monkeypatch, stop_at=5, stop=Terminated(signal.SIGTERM))
    assert cli.main(argv) == 143
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pofa-deploy:")]
    assert len(err) == 1 and "stopped by SIGTERM; 2 of 5 shard(s) are kept" in err[0], err
    assert len(list(parts_folder(out).glob("shard-*"))) == 2


def test_a_changed_input_or_setting_refuses_to_resume(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = _corpus(tmp_path, 12)
    out = tmp_path / "pred.jsonl"
    argv = ["predict", str(model), "-i", str(source), "-o", str(out), "--shard-size", "4", "--batch-size", "2"]
    _Scorer(monkeypatch, stop_at=3)
    assert cli.main(argv) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert cli.main([*argv[:-1], "4"]) == 2
    assert "cannot be resumed: it used --batch-size 2; pass --overwrite" in capsys.readouterr().err
    with source.open("a") as f:
        f.write("one more line\n")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the input changed" in err and "--overwrite" in err
    scorer = _Scorer(monkeypatch)
    assert cli.main([*argv, "--overwrite", "-q"]) == 0  # starts again: every row scored
    assert len(scorer.seen) == 13 and len(_jsonl(out)) == 13


def _bad(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("name", "text", "code", "message"), [
    ("a.jsonl", '{"text": "ok"}\n\n{"text": "fine",\n', 3, "a.jsonl:3: not valid JSON"),
    ("b.jsonl", '{"text": "ok"}\n{"txt": "no"}\n', 3, "b.jsonl:2: 'text' must be a non-empty string, got missing"),
    ("c.jsonl", '{"text": "a", "text_pair": "b"}\n{"text": "c"}\n', 3, "c.jsonl:2: no 'text_pair' here"),
    ("d.jsonl", '{"text": "a", "id": 1}\n{"text": "b", "id": 1}\n', 3, "d.jsonl:2: duplicate id 1 (first on line 1)"),
    ("e.jsonl", '{"text": "a", "id": true}\n', 3, "e.jsonl:1: 'id' must be a string or an integer, got a bool"),
    ("f.tsv", "sentence\tlabel\nfine\t1\nbroken\n", 3, "f.tsv:3: 1 tab-separated fields, but the header on line 1"),
    ("g.tsv", "review\tlabel\nfine\t1\n", 3, "g.tsv:1: no text column in the header (review, label)"),
    ("h.tsv", "sentence\n", 3, "h.tsv: no rows to score"),
    ("i.txt", "\n\n", 3, "i.txt: no rows to score"),
    ("j.csv", "text\nfine\n", 2, "--input"),
])
def test_bad_inputs_give_one_line(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                  text: str, code: int, message: str) -> None:
    source = _bad(tmp_path, name, text)
    assert cli.main(["predict", str(model), "-i", str(source), "-o", str(tmp_path / "out.jsonl")]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out.jsonl").exists() and not parts_folder(tmp_path / "out.jsonl").exists()


def test_bad_model_output_and_flags(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    source = _corpus(tmp_path, 3)
    base = ["predict", str(model), "-i", str(source)]
    cases = [
        ([*base, "-o", str(tmp_path / "o.csv")], 2, "--output"),
        ([*base, "-o", str(source.with_suffix(".jsonl")), "--actors", "2"], 2, "apply to --ray only"),
        ([*base, "-o", str(tmp_path / "o.jsonl"), "--batch-size", "0"], 2, "--batch-size must be a positive"),
        (["predict", str(tmp_path / "nope"), "-i", str(source), "-o", str(tmp_path / "o.jsonl")], 2, "not a folder"),
        (["predict", str(model), "-i", str(tmp_path / "none.tsv"), "-o", str(tmp_path / "o.jsonl")], 2,
         "--input " + str(tmp_path / "none.tsv") + ": no such file"),
    ]
    features = tmp_path / "features"
    shutil.copytree(model, features)
    config = json.loads((features / "config.json").read_text())
    (features / "config.json").write_text(json.dumps({**config, "architectures": ["DistilBertModel"]}))
    cases.append((["predict", str(features), "-i", str(source), "-o", str(tmp_path / "o.jsonl")], 2,
                  "is a feature-extraction model; predict scores text-classification"))
    (tmp_path / "o.jsonl.parts").mkdir()
    (tmp_path / "o.jsonl.parts" / "mine.txt").write_text("x")
    cases.append(([*base, "-o", str(tmp_path / "o.jsonl")], 2, "was not written by pofa-deploy predict"))
    monkeypatch.setitem(sys.modules, "ray.data", None)  # as if the [ray] extra were not installed
    cases.append(([*base, "-o", str(tmp_path / "r.jsonl"), "--ray", "local"], 7, "pip install 'pofa-deploy[ray]'"))
    for argv, code, message in cases:
        assert cli.main(argv) == code, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert (tmp_path / "o.jsonl.parts" / "mine.txt").read_text() == "x"


@pytest.fixture(scope="module")
def ray_two_cpus():  # type: ignore[no-untyped-def]
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_finishes_a_local_run_with_the_same_bytes(model: Path, tmp_path: Path, ray_two_cpus,  # type: ignore[no-untyped-def]
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One Ray run (Ray starts slowly): it resumes shards a local run left and writes what local writes."""
    source = _corpus(tmp_path, 30)
    local = tmp_path / "local.jsonl"
    predict(PredictOptions(model=model, input=source, output=local, shard_size=8, batch_size=3))
    out = tmp_path / "ray.jsonl"
    argv = ["predict", str(model), "-i", str(source), "-o", str(out), "--shard-size", "8", "--batch-size", "3"]
    _Scorer(monkeypatch, stop_at=4)  # shard 1 (3 calls) done locally
    assert cli.main(argv) == 130
    monkeypatch.undo()
    report = predict(PredictOptions(model=model, input=source, output=out, shard_size=8, batch_size=3, ray="local"))
    assert report.backend == "ray" and report.actors == 2 and report.skipped_shards == 1 and report.scored_rows == 22
    assert out.read_bytes() == local.read_bytes()


def test_an_actor_error_reaches_the_driver_as_one_line(model: Path, tmp_path: Path, ray_two_cpus,  # type: ignore[no-untyped-def]
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "openvino_model.xml").write_text("garbage")  # the driver reads config.json only; actors compile
    out = tmp_path / "o.jsonl"
    assert cli.main(["predict", str(broken), "-i", str(_corpus(tmp_path, 4)), "-o", str(out), "--ray", "local",
                     "-q"]) == 4
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pofa-deploy:")]
    assert len(err) == 1 and "not an OpenVINO IR" in err[0], err
    assert not out.exists() and not parts_folder(out).exists()
