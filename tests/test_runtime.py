import pytest

from pofa_deploy import runtime
from pofa_deploy.convert import ConvertOptions, convert
from pofa_deploy.errors import InputError


@pytest.fixture(scope="module")
def int8_dir(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("rt") / "out"
    convert(ConvertOptions(model=str(tiny_checkpoint()), output=out, int8=True, samples=8, holdout=2, seq_len=32))
    return out


def test_loader_applies_runtime_config_and_reports_sparse_kernels(int8_dir, monkeypatch):
    m = runtime.load(int8_dir)
    assert m.config[runtime.SPARSE_KEY] == "0.89" and m.sparse_rate == 0.89
    m.warm_up(seq_len=32)
    status = m.sparse_status()
    assert status.fully_connected >= 12
    if not runtime.has_amx():
        assert status.sparse_nodes == 0
        assert "no AMX" in status.summary and "no effect" in status.summary
    off = runtime.load(int8_dir, sparse_rate=None)
    assert runtime.SPARSE_KEY not in off.config and off.sparse_rate is None
    assert "off" in off.sparse_status().summary


def test_amx_detection(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512f", "amx_tile", "amx_int8", "amx_bf16"})
    assert runtime.has_amx()
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512f", "avx512_vnni"})
    assert not runtime.has_amx()


def test_sparse_count_reads_exec_types(monkeypatch):
    graph = {
        "a": {"layerType": "FullyConnected", "execType": "brgemm_avx512_amx_sparse_I8", "originalLayersNames": ""},
        "b": {"layerType": "FullyConnected", "execType": "brgemm_avx512_amx_I8", "originalLayersNames": ""},
        "c": {"layerType": "MatMul", "execType": "brgemm_avx512_amx_sparse_I8", "originalLayersNames": ""},
    }
    monkeypatch.setattr(runtime, "runtime_exec_types", lambda compiled: graph)
    monkeypatch.setattr(runtime, "has_amx", lambda: True)
    s = runtime.sparse_status(object(), 0.8)
    assert (s.fully_connected, s.sparse_nodes) == (2, 1)
    assert s.summary.startswith("1 of 2 FullyConnected nodes run sparse kernels")


def test_load_rejects_non_ir(tmp_path):
    with pytest.raises(InputError, match="no OpenVINO IR"):
        runtime.load(tmp_path)
