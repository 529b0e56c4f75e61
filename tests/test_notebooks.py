"""Both notebooks run end to end in small mode (tiny models), as a user would run them, and produce
what they promise: the files under POFA_NOTEBOOK_WORK and the tables and images in their outputs."""

import ast
import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_notebooks_are_committed_without_outputs():
    assert len(NOTEBOOKS) >= 2
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


def _outputs(nb: Any) -> list[dict[str, Any]]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def _stdout(nb: Any) -> str:
    return "".join(o["text"] for o in _outputs(nb) if o["output_type"] == "stream" and o["name"] == "stdout")


def _results(nb: Any) -> list[str]:
    """text/plain of every cell's value (execute_result), in order."""
    return [o["data"].get("text/plain", "") for o in _outputs(nb) if o["output_type"] == "execute_result"]


def _pngs(nb: Any) -> list[bytes]:
    """Every image/png shown, decoded (displayed figures and IPython.display.Image values)."""
    return [base64.b64decode(o["data"]["image/png"]) for o in _outputs(nb)
            if o["output_type"] in ("display_data", "execute_result") and "image/png" in o.get("data", {})]


def _table_rows(text: str, first: str) -> list[list[str]]:
    """Rows of a printed ``format_table`` whose first column starts with ``first``, split on 2+ spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.startswith(first)]


def _read_json(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"the notebook did not write {path}"
    return json.loads(path.read_text(encoding="utf-8"))


def _check_convert_and_verify(nb: Any, work: Path) -> None:
    assert (work / "tiny-distilbert-90" / "config.json").is_file()  # the synthesised checkpoint
    out = work / "tiny-distilbert-90-int8"
    assert {"openvino_model.xml", "openvino_model.bin", "runtime_config.json"} <= {p.name for p in out.iterdir()}
    report = _read_json(out / "pofa_report.json")
    zc = report["zero_check"]
    assert report["int8"] is True and zc["zeros_lost"] == 0 and zc["layers_checked"] >= 12
    assert zc["zeros_before"] > 0.85 * sum(r["size"] for r in report["source_layers"] if ".layer." in r["name"])
    # the convert cell's value is (zeros lost, new zeros from rounding, sparse rate), as in the report
    shown = [ast.literal_eval(r) for r in _results(nb) if r.startswith("(")]
    assert shown == [(0, zc["new_zeros_from_rounding"], report["sparse_rate"])]
    # the per-layer zero table: one row per checked layer, 0 lost in each, counts as in the report
    rows = _table_rows(_stdout(nb), "distilbert.transformer.layer.")
    table = {r[0]: r[1:] for r in rows if len(r) == 5 and all(x.isdigit() for x in r[1:])}
    assert len(table) == len([c for c in zc["layers"] if ".layer." in c["name"]]) >= 12
    for c in zc["layers"]:
        if c["name"] in table:
            assert table[c["name"]] == [str(c["zeros_before"]), str(c["zeros_after"]), "0", str(c["new"])]
    # the bar chart of zeros per layer was displayed
    pngs = _pngs(nb)
    assert len(pngs) == 1 and pngs[0].startswith(PNG_MAGIC)
    # the last cell shows which kernels the CPU plugin ran for the FullyConnected layers
    exec_types = ast.literal_eval(_results(nb)[-1])
    assert isinstance(exec_types, dict) and sum(exec_types.values()) >= 12


def _check_accuracy_vs_speed(nb: Any, work: Path) -> None:
    for sub, sparsity in (("mini-0", 0.0), ("mini-90", 0.9)):
        ft = _read_json(work / sub / "ft" / "finetune_report.json")
        assert ft["zero_check"]["lost"] == 0 and ft["steps"] == 4
        assert ft["totals_after"]["sparsity"] == pytest.approx(sparsity, abs=0.001)
        for variant, int8 in (("fp32", False), ("int8", True)):
            conv = _read_json(work / sub / variant / "pofa_report.json")
            assert conv["int8"] is int8 and conv["zero_check"]["zeros_lost"] == 0
    # the accuracy/speed table: each model set in each runtime, with its share of zeros and a real accuracy
    rows = [r for r in _table_rows(_stdout(nb), "dense") + _table_rows(_stdout(nb), "sparse 90%") if len(r) == 7]
    assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
        (m, rt, z) for m, z in (("dense", "0%"), ("sparse 90%", "90%"))
        for rt in ("PyTorch FP32", "OpenVINO FP32", "OpenVINO INT8"))
    for r in rows:
        assert 0.0 <= float(r[3]) <= 100.0 and float(r[4]) > 0 and float(r[6]) > 0
    # the Pareto plot was written and is the image the notebook displays
    png = work / "pareto.png"
    assert png.is_file() and png.read_bytes().startswith(PNG_MAGIC)
    assert _pngs(nb) == [png.read_bytes()]


CHECKS: dict[str, Callable[[Any, Path], None]] = {
    "01_convert_and_verify.ipynb": _check_convert_and_verify,
    "02_accuracy_vs_speed.ipynb": _check_accuracy_vs_speed,
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_small_mode(path, tmp_path, monkeypatch):
    assert path.name in CHECKS, f"{path.name}: add a check of what it produces to CHECKS"
    work = tmp_path / "work"
    monkeypatch.setenv("POFA_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("POFA_NOTEBOOK_WORK", str(work))
    monkeypatch.setenv("POFA_CACHE_DIR", str(tmp_path / "cache"))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for o in _outputs(nb) if o.get("output_type") == "error"]
    assert not errors
    assert "small mode | work folder: " + str(work) in _stdout(nb)  # the notebook saw the test's settings
    CHECKS[path.name](nb, work)
