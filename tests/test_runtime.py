import subprocess
import sys

import pytest

from pofa_deploy import environment, probe, runtime
from pofa_deploy.convert import ConvertOptions, convert
from pofa_deploy.errors import InputError
from pofa_deploy.inputs import dummy_inputs
from pofa_deploy.runtime_config import SPARSE_KEY, parse_rate

# hidden 64 at 16 tokens or fewer is where OpenVINO 2026.4's AMX sparse kernels crashed; measure above it
STATUS_SEQ = 64


@pytest.fixture(scope="module")
def int8_dir(tiny_checkpoint, tmp_path_factory):
    """A converted folder whose runtime_config.json sets a rate (given explicitly, so it is written on
    every machine; `auto` writes one only where it measured faster)."""
    out = tmp_path_factory.mktemp("rt") / "out"
    convert(ConvertOptions(model=str(tiny_checkpoint()), output=out, int8=True, samples=8, holdout=2, seq_len=32,
                           sparse_rate="0.85"))
    return out


@pytest.fixture
def probe_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POFA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_loader_applies_runtime_config_and_reports_what_ran(int8_dir):
    m = runtime.load(int8_dir)
    assert m.config[SPARSE_KEY] == "0.85" and m.sparse_rate == 0.85
    before = m.sparse_status()
    assert not before.measured and before.fully_connected is None and before.effect == "not measured"
    assert "not measured" in before.summary
    m.warm_up(seq_len=STATUS_SEQ)
    status = m.sparse_status()
    assert status.measured and status.shape == (1, STATUS_SEQ)
    assert status.fully_connected is not None and status.fully_connected >= 12
    assert status.eligible_weights and 0 < status.eligible_meeting_rate <= status.eligible_weights
    # what the runtime graph says, on every machine: sparse kernels where the CPU has AMX, none elsewhere
    if environment.has_amx():
        assert status.sparse_nodes >= 1 and status.effect == "active", status.summary
    else:
        assert status.sparse_nodes == 0 and status.effect == "none"
        assert "no AMX" in status.summary and "no effect" in status.summary
    assert status.summary.startswith(f"{status.sparse_nodes} of {status.fully_connected} FullyConnected nodes ran")
    off = runtime.load(int8_dir, sparse_rate=None)
    off.warm_up(seq_len=STATUS_SEQ)
    assert SPARSE_KEY not in off.config and off.sparse_rate is None
    assert off.sparse_status().effect == "off" and "off" in off.sparse_status().summary


def test_rate_one_means_off_everywhere(int8_dir):
    assert parse_rate("1") is None and parse_rate(1.0) is None and parse_rate("0.9") == 0.9
    assert parse_rate(None) is None and parse_rate("x") is None
    m = runtime.load(int8_dir, sparse_rate=1.0)
    assert SPARSE_KEY not in m.config and m.sparse_rate is None
    assert m.sparse_status(seq_len=STATUS_SEQ).summary.startswith("sparse decompression off")
    assert ConvertOptions(model="m", output="o", sparse_rate="1").parsed_rate() is None


def test_sparse_count_reads_exec_types(monkeypatch):
    graph = {
        "a": {"layerType": "FullyConnected", "execType": "brgemm_avx512_amx_sparse_I8", "originalLayersNames": ""},
        "b": {"layerType": "FullyConnected", "execType": "brgemm_avx512_amx_I8", "originalLayersNames": ""},
        "c": {"layerType": "MatMul", "execType": "brgemm_avx512_amx_sparse_I8", "originalLayersNames": ""},
    }
    monkeypatch.setattr(runtime, "runtime_exec_types", lambda compiled: graph)
    s = runtime.sparse_status(object(), 0.8, shape=(1, 128))
    assert (s.fully_connected, s.sparse_nodes, s.effect) == (2, 1, "active")
    assert s.summary.startswith("1 of 2 FullyConnected nodes ran sparse kernels at batch 1 x 128")
    # no inference at a static shape: nothing is counted, whatever the graph or the CPU flags say
    s = runtime.sparse_status(object(), 0.8, shape=None)
    assert (s.fully_connected, s.sparse_nodes, s.effect) == (None, None, "not measured")


def test_amx_detection(monkeypatch):
    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx512f", "amx_tile", "amx_int8", "amx_bf16"})
    assert environment.has_amx()
    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx512f", "avx512_vnni"})
    assert not environment.has_amx()


def test_load_rejects_non_ir(tmp_path):
    with pytest.raises(InputError, match="no OpenVINO IR"):
        runtime.load(tmp_path)


# -- the crash guard: a sparse compile is tried in a child process first ------------------------------


def test_probe_runs_a_real_child_and_caches_the_verdict(int8_dir, probe_cache):
    xml = int8_dir / "openvino_model.xml"
    config = {SPARSE_KEY: "0.85"}
    first = probe.probe(xml, config, batch=1, seq_len=STATUS_SEQ, static=True)
    # a real child compiled and ran it: on a CPU without AMX the plugin never enters its sparse path, and
    # above 16 tokens it has not crashed on AMX either; either way the verdict is cached on disk
    assert first.ok and not first.cached, first.reason
    again = probe.probe(xml, config, batch=1, seq_len=STATUS_SEQ, static=True)
    assert again.ok and again.cached and (probe_cache / probe.CACHE_FILE).is_file()


def test_probe_needed_where_the_sparse_path_can_run(monkeypatch):
    rated = {SPARSE_KEY: "0.8"}
    monkeypatch.setenv(probe.PROBE_ENV, "auto")
    monkeypatch.setattr(environment, "has_amx", lambda: True)
    assert probe.needs_probe(rated) and not probe.needs_probe({}) and not probe.needs_probe({SPARSE_KEY: "1"})
    monkeypatch.setattr(environment, "has_amx", lambda: False)
    assert not probe.needs_probe(rated)
    monkeypatch.setenv(probe.PROBE_ENV, "all")
    assert probe.needs_probe({})
    monkeypatch.setenv(probe.PROBE_ENV, "off")
    monkeypatch.setattr(environment, "has_amx", lambda: True)
    assert not probe.needs_probe(rated)


def _crashing_child(monkeypatch, calls):
    """Every probe child dies of SIGSEGV, as OpenVINO 2026.4 did at batch 1 x 16 with sparse kernels."""
    def command(xml, config, batch, seq_len, static):
        calls.append((batch, seq_len, static))
        return [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]

    monkeypatch.setattr(probe, "_child_command", command)


def test_load_survives_a_crashing_sparse_compile(int8_dir, probe_cache, monkeypatch, capsys):
    monkeypatch.setenv(probe.PROBE_ENV, "all")
    calls: list[tuple[int, int, bool]] = []
    _crashing_child(monkeypatch, calls)
    m = runtime.load(int8_dir)
    assert calls == [(1, 32, False)]  # probed at the conversion's shape before compiling in this process
    assert SPARSE_KEY not in m.config and m.sparse_rate is None
    assert len(m.notes) == 1 and "crashed (SIGSEGV)" in m.notes[0] and "switched off" in m.notes[0]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pofa-deploy: warning:") and "SIGSEGV" in err
    out = m.infer(dummy_inputs(m.input_names, batch=2, seq_len=16))
    assert out and all(v.shape[0] == 2 for v in out.values())


def test_each_new_shape_is_probed_before_it_runs(int8_dir, probe_cache, monkeypatch):
    monkeypatch.setenv(probe.PROBE_ENV, "all")
    m = runtime.load(int8_dir)  # real children: they survive
    assert m.sparse_rate == 0.85 and not m.notes
    calls: list[tuple[int, int, bool]] = []
    _crashing_child(monkeypatch, calls)
    m.infer(dummy_inputs(m.input_names, batch=1, seq_len=32))  # probed at load: no new child
    assert calls == []
    m.infer(dummy_inputs(m.input_names, batch=1, seq_len=8))  # new shape: the child crashes
    assert calls == [(1, 8, False)] and m.sparse_rate is None and "1 x 8 tokens" in m.notes[0]


def test_a_failing_compile_switches_decompression_off(int8_dir, probe_cache, monkeypatch):
    monkeypatch.setenv(probe.PROBE_ENV, "all")
    monkeypatch.setattr(probe, "_child_command", lambda *a: [
        sys.executable, "-c", "raise RuntimeError('No reorder available for ... ab and undef')"])
    m = runtime.load(int8_dir)
    assert m.sparse_rate is None and "failed to compile or run" in m.notes[0] and "No reorder" in m.notes[0]


def test_probe_child_imports_from_a_plain_checkout(int8_dir, tmp_path):
    """The child is started as `python -m pofa_deploy.probe` with the checkout on PYTHONPATH."""
    cmd = probe._child_command(int8_dir / "openvino_model.xml", {}, 1, 8, True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
