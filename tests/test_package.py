"""pofa-deploy package on a tiny converted INT8 folder: the fused (raw text in) model scores like textmodel in
plain OpenVINO, config.json follows OVMS's schema, the --no-strings and sparse-kernel variants, Triton and
KServe files, the staging/--overwrite rule, and one bad input per error through the CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_run import runner

from pofa_deploy.package import PackageOptions, package
from pofa_deploy.package.formats import OVMS_SCHEMA, schema_errors
from pofa_deploy.package.model import score_texts
from pofa_deploy.runtime import SPARSE_IR_FILE

SENTENCES = ["a gripping, well acted film", "dull", "Ünïcode café — 東京 " * 3]


run_cli = runner("package")


@pytest.fixture(scope="module")
def converted(tiny_int8: Callable[..., Path]) -> Path:
    return tiny_int8("distilbert", seq_len=16)


@pytest.fixture(scope="module")
def repo(converted: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default package (--strings) of the untuned folder, written once through the CLI."""
    out = tmp_path_factory.mktemp("pkg") / "repo"
    code, stdout, stderr = run_cli(str(converted), "-o", str(out), "--name", "tiny", "--version", "3", "-q")
    assert code == 0, stderr
    assert "wrote" in stdout and "OVMS:" in stdout
    return out


def test_fused_model_scores_raw_text_like_textmodel(repo: Path, converted: Path) -> None:
    from pofa_deploy.textmodel import open_text_model

    expected = open_text_model(converted).score(SENTENCES).logits
    config = json.loads((repo / "config.json").read_text())["model_config_list"][0]["config"]["plugin_config"]
    got = score_texts(repo / "tiny" / "3" / "model.xml", SENTENCES, plugin_config=config)["logits"]
    assert got.shape == expected.shape == (3, 3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # a different sentence gives different logits: the comparison can fail
    assert not np.allclose(score_texts(repo / "tiny" / "3" / "model.xml", ["dull"] * 3)["logits"], expected)


def test_ovms_config_follows_the_schema(repo: Path) -> None:
    config = json.loads((repo / "config.json").read_text())
    assert schema_errors(config, OVMS_SCHEMA) == []
    entry = config["model_config_list"][0]["config"]
    assert entry["name"] == "tiny" and entry["base_path"] == "tiny" and entry["target_device"] == "CPU"
    assert entry["model_version_policy"] == {"specific": {"versions": [3]}}
    assert entry["shape"] == {"text": "(-1)"} and isinstance(entry["nireq"], int) and entry["nireq"] >= 1
    assert entry["plugin_config"] == json.loads((Path(json.loads((repo / "package_report.json").read_text())[
        "source"]) / "runtime_config.json").read_text())["CPU"]
    # the validator rejects what OVMS rejects
    bad = json.loads(json.dumps(config))
    bad["model_config_list"][0]["config"]["cpu_extension"] = "x.so"
    assert any("cpu_extension" in e for e in schema_errors(bad, OVMS_SCHEMA))
    bad = json.loads(json.dumps(config))
    bad["model_config_list"][0]["config"]["nireq"] = -1
    assert schema_errors(bad, OVMS_SCHEMA)
    assert schema_errors({"model_config_list": [{"config": {}}]}, OVMS_SCHEMA) == ["$.model_config_list[0].config: "
                                                                                   "missing 'name'"]


def test_ovms_config_also_valid_for_jsonschema(repo: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is optional (not a declared dependency)")
    jsonschema.validate(json.loads((repo / "config.json").read_text()), OVMS_SCHEMA)


def test_triton_and_kserve_files(repo: Path) -> None:
    pbtxt = (repo / "triton" / "tiny" / "config.pbtxt").read_text()
    assert 'backend: "openvino"' in pbtxt and 'name: "input_ids" data_type: TYPE_INT64 dims: [ -1, -1 ]' in pbtxt
    assert 'name: "logits" data_type: TYPE_FP32' in pbtxt and "CPU_EXTENSION_PATH" not in pbtxt
    assert (repo / "triton" / "tiny" / "3" / "model.xml").is_file()
    text = (repo / "kserve.yaml").read_text()
    assert "runtime: kserve-openvino" in text and "--cpu_extension" not in text
    yaml = pytest.importorskip("yaml", reason="PyYAML is optional (the YAML is written without it)")
    doc = yaml.safe_load(text)
    assert doc["kind"] == "InferenceService" and doc["metadata"]["name"] == "tiny"
    model = doc["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "openvino" and model["storageUri"] == "pvc://pofa-models/tiny"
    assert '--shape={"text":"(-1)"}' in model["args"] and "--target_device=CPU" in model["args"]
    report = json.loads((repo / "package_report.json").read_text())
    assert report["strings"] and report["model_file"] == "openvino_model.xml" and report["extension"] is None
    assert report["check"]["max_abs_diff"] <= 1e-5 and "package_report.json" in report["files"]
    assert "--config_path /models/config.json" in (repo / "README.md").read_text()


def test_no_strings_serves_the_ir_as_converted(converted: Path, tmp_path: Path) -> None:
    report = package(PackageOptions(out=converted, output=tmp_path / "r", strings=False, nireq=2, quiet=True))
    name = report["name"]
    served = tmp_path / "r" / name / "1" / "model.xml"
    assert served.read_bytes() == (converted / "openvino_model.xml").read_bytes()
    assert [i["name"] for i in report["inputs"]] == ["input_ids", "attention_mask"]
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["model_config_list"][0]["config"]["shape"] == {"input_ids": "(-1,-1)", "attention_mask": "(-1,-1)"}
    assert config["model_config_list"][0]["config"]["nireq"] == 2


def test_sparse_kernel_choice_carries_the_library(converted: Path, tmp_path: Path) -> None:
    if not (converted / SPARSE_IR_FILE).is_file():
        pytest.skip(f"convert wrote no {SPARSE_IR_FILE} here (extension not built)")
    folder = Path(shutil.copytree(converted, tmp_path / "out"))
    props = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    (folder / "tune_report.json").write_text(json.dumps({"model_file": SPARSE_IR_FILE, "winner": "int8-pofa-sparse f32",
                                                         "properties": props, "nireq": 3}))
    (folder / "runtime_config.json").write_text(json.dumps({"CPU": props}))
    report = package(PackageOptions(out=folder, output=tmp_path / "r", name="sparse", quiet=True))
    repo = tmp_path / "r"
    assert report["model_file"] == SPARSE_IR_FILE and report["extension"] == "sparse/libpofa_sparse_ext.so"
    assert report["nireq"] == 3 and report["nireq_source"].startswith("tune_report.json")  # tune measured it
    assert (repo / "sparse" / "libpofa_sparse_ext.so").is_file()
    assert (repo / "triton" / "sparse" / "libpofa_sparse_ext.so").is_file()
    assert b'type="SparseFullyConnected"' in (repo / "sparse" / "1" / "model.xml").read_bytes()
    assert json.loads((repo / "config.json").read_text())["model_config_list"][0]["config"]["plugin_config"] == props
    assert "--cpu_extension=/mnt/models/libpofa_sparse_ext.so" in (repo / "kserve.yaml").read_text()
    assert "--cpu_extension /models/sparse/libpofa_sparse_ext.so" in (repo / "README.md").read_text()
    pbtxt = (repo / "triton" / "sparse" / "config.pbtxt").read_text()
    assert 'key: "CPU_EXTENSION_PATH" value: { string_value: "/models/sparse/libpofa_sparse_ext.so" }' in pbtxt
    assert 'key: "PERFORMANCE_HINT"' in pbtxt and "INFERENCE_PRECISION_HINT" in report["triton"]["dropped"]
    from pofa_deploy.textmodel import open_text_model

    expected = open_text_model(folder).score(SENTENCES).logits
    got = score_texts(repo / "sparse" / "1" / "model.xml", SENTENCES, plugin_config=props)["logits"]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_overwrite_replaces_only_a_package_output(converted: Path, repo: Path, tmp_path: Path) -> None:
    target = Path(shutil.copytree(repo, tmp_path / "repo"))
    code, _out, err = run_cli(str(converted), "-o", str(target), "--name", "tiny", "-q")
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    code, _out, err = run_cli(str(converted), "-o", str(target), "--name", "other", "--no-strings", "--overwrite", "-q")
    assert code == 0, err
    assert (target / "other" / "1" / "model.xml").is_file() and not (target / "tiny").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, _out, err = run_cli(str(converted), "-o", str(foreign), "--overwrite", "-q")
    assert code == 2 and "notes.txt" in err and (foreign / "notes.txt").read_text() == "mine"


def test_a_failed_package_leaves_no_repo(converted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pofa_deploy.errors import VerificationError
    from pofa_deploy.package import run

    def broken(*_a: object, **_k: object) -> None:
        raise VerificationError("the check failed")

    monkeypatch.setattr(run, "check", broken)
    with pytest.raises(VerificationError):
        package(PackageOptions(out=converted, output=tmp_path / "r", quiet=True))
    assert list(tmp_path.iterdir()) == []


def test_a_fused_tokenizer_that_cuts_differently_is_refused(converted: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The check compares the fused tokenizer's ids with Hugging Face's exactly: one that truncates at 8
    tokens (textmodel cuts at the model's length) is refused and nothing is written."""
    from pofa_deploy.errors import VerificationError
    from pofa_deploy.package import model as package_model

    monkeypatch.setattr(package_model, "max_length", lambda _folder: 8)
    with pytest.raises(VerificationError, match="fused tokenizer's input_ids differ"):
        package(PackageOptions(out=converted, output=tmp_path / "r", quiet=True))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("case, args, code, words", [
    ("not converted", ["{empty}", "-o", "{tmp}/r"], 2, ["OUT", "not a converted folder", "pofa-deploy convert"]),
    ("version 0", ["{out}", "-o", "{tmp}/r", "--version", "0"], 2, ["--version", "positive integer"]),
    ("bad name", ["{out}", "-o", "{tmp}/r", "--name", "My_Model"], 2, ["--name", "lowercase", "--name my-model"]),
    ("repo inside OUT", ["{out}", "-o", "{out}/repo"], 2, ["lies inside the input OUT"]),
    ("no tokenizer", ["{notok}", "-o", "{tmp}/r"], 2, ["no tokenizer files", "--no-strings"]),
    ("pair without strings", ["{out}", "-o", "{tmp}/r", "--no-strings", "--text-pair"], 2, ["--text-pair needs"]),
    ("strings and no-strings", ["{out}", "-o", "{tmp}/r", "--strings", "--no-strings"], 2, ["contradict"]),
    ("missing -o", ["{out}"], 2, ["-o/--output"]),
])
def test_bad_input_is_one_line(converted: Path, tmp_path: Path, case: str, args: list[str], code: int,
                               words: list[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    notok = Path(shutil.copytree(converted, tmp_path / "notok"))
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (notok / f).unlink(missing_ok=True)
    out = Path(shutil.copytree(converted, tmp_path / "out")) if "{out}/repo" in args else converted
    subs = {"{empty}": str(empty), "{tmp}": str(tmp_path), "{out}": str(out), "{notok}": str(notok)}
    argv = []
    for a in args:
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    got, _stdout, err = run_cli(*argv, "-q")
    assert got == code, (case, err)
    assert len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), (case, err)
    assert not (tmp_path / "r").exists()


def test_text_pair_input_scores_pairs_like_textmodel(converted: Path, tmp_path: Path) -> None:
    from pofa_deploy.textmodel import open_text_model

    pairs = ["the acting is good", "it is boring", "a second segment"]
    report = package(PackageOptions(out=converted, output=tmp_path / "r", name="pair", text_pair=True, quiet=True))
    assert [i["name"] for i in report["inputs"]] == ["text", "text_pair"]
    plugin = report["plugin_config"]
    got = score_texts(tmp_path / "r" / "pair" / "1" / "model.xml", SENTENCES, pairs, plugin_config=plugin)["logits"]
    np.testing.assert_allclose(got, open_text_model(converted).score(SENTENCES, pairs).logits, rtol=0, atol=1e-5)
