import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from pofa_deploy import convert as convert_mod
from pofa_deploy.checkpoint import TASK_CLASSES, Task
from pofa_deploy.convert import ConvertOptions, convert
from pofa_deploy.environment import has_amx
from pofa_deploy.errors import InputError, OutputExistsError, SparsityLostError
from pofa_deploy.ir import REPORT_FILE, ir_weights, read_model
from pofa_deploy.runtime import load
from pofa_deploy.runtime_config import PRECISION_KEY, SPARSE_KEY, read_runtime_config

FAST = {"samples": 8, "holdout": 4, "seq_len": 32}


def _opts(ckpt, out, **kw):
    return ConvertOptions(model=str(ckpt), output=out, **{**FAST, "int8": True, **kw})


def _no_partials(out: Path):
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.mark.parametrize("arch", ["distilbert", "bert"])
@pytest.mark.parametrize("task", list(Task))
def test_int8_every_arch_and_task(tiny_checkpoint, tmp_path, arch, task):
    out = tmp_path / "out"
    report = convert(_opts(tiny_checkpoint(arch, task), out))
    z = report.zero_check
    assert z["zeros_lost"] == 0 and z["layers_checked"] >= 12
    assert z["zeros_after"] == z["zeros_before"] + z["new_zeros_from_rounding"]
    names = {p.name for p in out.iterdir()}
    assert {"openvino_model.xml", "openvino_model.bin", "config.json", "runtime_config.json",
            "pofa_report.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not _no_partials(out)
    saved = json.loads((out / "pofa_report.json").read_text())
    assert saved["synthetic"]["sparsity"] == 0.9 and saved["task"] == task.value
    # every quantised encoder weight is i8 with zero point 0
    ws = [w for w in ir_weights(read_model(out / "openvino_model.xml")) if w.source and ".layer." in w.source]
    assert ws and all(w.dtype == "i8" and w.zero_point is None for w in ws)
    decision = saved["sparse_decision"]
    assert decision["mode"] == "auto" and decision["candidate_rate"] == 0.89
    assert read_runtime_config(out) == ({SPARSE_KEY: "0.89"} if decision["rate"] else {})
    status = decision["status"]  # measured: read from the runtime graph after an inference at 1 x seq_len
    assert status["measured"] and status["shape"] == [1, 32] and status["fully_connected"] >= 12
    if status["sparse_nodes"]:
        assert decision["reason"].startswith(("on:", "off: sparse kernels ran but were not faster"))
        assert [t["batch"] for t in decision["timings"]] == [1, 8]
    else:  # where no sparse kernel ran, on and off are one program: off, nothing timed
        assert decision["rate"] is None and not decision["timings"] and "no FullyConnected ran" in decision["reason"]
    assert report.runtime_precision in ("f32", "bf16", "f16")  # plugin default for the non-INT8 ops, recorded
    outputs = {k: v for k, v in report.outputs_vs_pytorch.items() if isinstance(v, dict)}
    assert outputs and all(v["mean_cosine"] > 0.99 for v in outputs.values())
    # the status of what runtime_config.json configures: off, or measured after a static-shape inference
    assert report.sparse_status["effect"] == ("off" if decision["rate"] is None else "active")
    # loads in optimum-intel with the class matching the task
    import optimum.intel

    model = getattr(optimum.intel, TASK_CLASSES[task][1]).from_pretrained(out, compile=False)
    assert model is not None


def test_fp32_export_is_stored_as_fp32_and_keeps_zeros(tiny_checkpoint, tmp_path):
    out = tmp_path / "fp32"
    report = convert(_opts(tiny_checkpoint(), out, int8=False))
    assert report.sparse_rate is None and report.zero_check["zeros_lost"] == 0
    ws = ir_weights(read_model(out / "openvino_model.xml"))
    assert {w.dtype for w in ws} == {"f32"}
    # FP32 keeps values exactly: zeros after == zeros before, no new ones
    assert report.zero_check["new_zeros_from_rounding"] == 0
    # an FP32 baseline must run as FP32 even where the plugin defaults to BF16 (AVX512_BF16 / AMX CPUs)
    assert read_runtime_config(out) == {PRECISION_KEY: "f32"}
    assert report.runtime_precision == "f32" and load(out).precision == "f32"


def test_lost_zero_is_refused_and_nothing_written(tiny_checkpoint, tmp_path, monkeypatch):
    real = convert_mod._quantize

    from safetensors.numpy import load_file

    ckpt = tiny_checkpoint()
    source = load_file(str(ckpt / "model.safetensors"))["distilbert.transformer.layer.0.attention.q_lin.weight"]
    target = tuple(np.argwhere(source == 0)[0])

    def quantize_then_break(model, calib):
        q = real(model, calib)
        # Inject the violation the check exists for: the i8 code at one source zero becomes 1.
        import openvino as ov

        from pofa_deploy.ir import _weight_chain

        matmul = next(op for op in q.get_ordered_ops()
                      if op.get_type_name() == "MatMul" and "layer.0.attention.q_lin/" in op.get_friendly_name())
        const, _zp = _weight_chain(matmul.input_value(1).get_node())
        data = np.array(const.get_data(), copy=True)
        assert data[target] == 0
        data[target] = 1
        const.output(0).replace(ov.op.Constant(data).output(0))
        return q

    monkeypatch.setattr(convert_mod, "_quantize", quantize_then_break)
    out = tmp_path / "out"
    with pytest.raises(SparsityLostError, match="1 zeros of the source were lost in 1 layers"):
        convert(_opts(ckpt, out))
    assert not out.exists() and not _no_partials(out)


def test_interrupt_mid_conversion_leaves_nothing(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"

    def progress(message):
        if message.startswith("quantising"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(_opts(tiny_checkpoint(), out), progress=progress)
    assert not out.exists() and not _no_partials(out)


def test_ctrl_c_during_the_export_waits_for_it_then_leaves_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    """Ctrl-C inside OpenVINO's conversion must not raise there: a KeyboardInterrupt raised in one of its
    Python callbacks aborts the process (pybind11 -> std::terminate). It is held until the export
    returns, then stops the run like any Ctrl-C."""
    import optimum.exporters.openvino as exporters

    real = exporters.export_from_model
    raised_inside = []

    def export_with_ctrl_c(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # Python runs the signal handler by here
        except KeyboardInterrupt:
            raised_inside.append(True)
            raise
        return real(*args, **kwargs)

    monkeypatch.setattr(exporters, "export_from_model", export_with_ctrl_c)
    out = tmp_path / "out"
    # Ctrl-C as in a terminal, even when this test run was started with SIGINT ignored (in the background)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            convert(_opts(tiny_checkpoint(), out))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert raised_inside == []
    assert not out.exists() and not _no_partials(out)


def test_existing_output_needs_overwrite(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / REPORT_FILE).write_text("{}")  # a previous convert output: replaced with --overwrite only
    (out / "openvino_model.bin").write_bytes(b"previous")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        convert(_opts(tiny_checkpoint(), out))
    assert (out / "openvino_model.bin").read_bytes() == b"previous"
    convert(_opts(tiny_checkpoint(), out, overwrite=True))
    assert json.loads((out / REPORT_FILE).read_text())["zero_check"] and (out / "openvino_model.xml").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")  # anything else is never replaced, --overwrite or not
    with pytest.raises(OutputExistsError, match="did not write"):
        convert(_opts(tiny_checkpoint(), mine, overwrite=True))
    assert (mine / "keep.txt").read_text() == "precious"


def test_failed_overwrite_keeps_previous_result(tiny_checkpoint, tmp_path):
    """The failure comes while staging: after the new IR was written beside OUT, before the swap."""
    out = tmp_path / "out"
    convert(_opts(tiny_checkpoint(), out, sparse_rate="off"))
    previous = {p.name: p.read_bytes() for p in out.iterdir()}
    staged = []

    def progress(message):
        if message.startswith("verifying"):
            staged.extend(p for p in tmp_path.glob(".out.partial-*/*"))
            raise RuntimeError("failed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        convert(_opts(tiny_checkpoint(), out, overwrite=True), progress=progress)
    assert any(p.name == "openvino_model.xml" for p in staged)  # the new IR was already in the staging folder
    assert {p.name: p.read_bytes() for p in out.iterdir()} == previous
    assert not _no_partials(out)


def test_dense_model_warns_and_leaves_decompression_off(tiny_checkpoint, tmp_path):
    report = convert(_opts(tiny_checkpoint(sparsity=0.0), tmp_path / "out"))
    assert report.sparse_rate is None
    assert any("dense model" in w for w in report.warnings)
    assert read_runtime_config(tmp_path / "out") == {}


def test_explicit_and_off_sparse_rate(tiny_checkpoint, tmp_path):
    r = convert(_opts(tiny_checkpoint(), tmp_path / "a", sparse_rate="0.5", holdout=0))
    encoder = [row for row in r.ir_layers if row["eligible"] and ".layer." in row["name"]]
    assert r.sparse_rate == 0.5 and encoder and all(row["meets_rate"] for row in encoder)
    assert r.sparse_decision["mode"] == "given" and read_runtime_config(tmp_path / "a") == {SPARSE_KEY: "0.5"}
    # an explicit number is obeyed, and its status measured (here, with --holdout 0: no comparison ran)
    assert r.sparse_status["measured"] and r.sparse_status["fully_connected"] >= 12
    assert r.sparse_status["sparse_nodes"] >= (1 if has_amx() else 0)
    if not has_amx():
        assert r.sparse_status["sparse_nodes"] == 0 and "no AMX" in r.sparse_status["summary"]
    for off in ("off", "1"):  # the plugin treats 1.0 as off: so does pofa-deploy, and says so
        r = convert(_opts(tiny_checkpoint(), tmp_path / f"b{off}", sparse_rate=off))
        assert r.sparse_rate is None and read_runtime_config(tmp_path / f"b{off}") == {}
        assert r.sparse_status["effect"] == "off" and r.sparse_decision["mode"] == "off"


def test_config_describes_the_exported_head(tiny_checkpoint, tmp_path):
    """--task on a checkpoint with another head: config.json names the class that was exported."""
    src = tiny_checkpoint("bert", Task.TEXT_CLASSIFICATION)
    before = json.loads((src / "config.json").read_text())["architectures"]
    out = tmp_path / "tok"
    convert(_opts(src, out, task=Task.TOKEN_CLASSIFICATION))
    assert before == ["BertForSequenceClassification"]
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForTokenClassification"]
    import optimum.intel

    assert optimum.intel.OVModelForTokenClassification.from_pretrained(out, compile=False) is not None


@pytest.mark.parametrize(("field", "value", "message"), [
    ("sparse_rate", "1.5", "--sparse-rate"), ("sparse_rate", "lots", "--sparse-rate"),
    ("samples", 0, "--samples"), ("seq_len", -1, "--seq-len"), ("holdout", -2, "--holdout"),
])
def test_option_validation(field, value, message):
    with pytest.raises(InputError, match=message):
        ConvertOptions(model="m", output=Path("o"), **{field: value})


def test_seq_len_beyond_model_limit(tiny_checkpoint, tmp_path):
    with pytest.raises(InputError, match="max_position_embeddings"):
        convert(_opts(tiny_checkpoint(), tmp_path / "out", seq_len=4096))


# -- the sparse-kernel IR (openvino_model_sparse.xml) ---------------------------------------------------


def test_sparse_kernel_ir_is_written_proven_and_compared(tiny_checkpoint, tmp_path):
    from pofa_deploy import sparse_kernel
    from pofa_deploy.runtime import SPARSE_IR_FILE

    out = tmp_path / "out"
    report = convert(_opts(tiny_checkpoint("bert"), out))  # --sparse-kernel auto, a 90% sparse encoder
    info = report.sparse_kernel
    assert info["written"] and (out / SPARSE_IR_FILE).is_file() and (out / "openvino_model_sparse.bin").is_file()
    assert len(info["layers"]) == 12 and all(la["sparsity"] >= 0.7 for la in info["layers"])
    assert info["proof"]["layers"] == 12 and info["proof"]["codes_checked"] > 0
    agree = info["vs_standard_int8"]["logits"]
    assert agree["top1_agreement"] == 1.0 and agree["mean_cosine"] > 0.999
    # the standard IR is untouched (optimum-intel loads it): no custom op in it
    assert "SparseFullyConnected" not in (out / "openvino_model.xml").read_text()
    # the proof is independent of convert: unpacking gives the standard IR's codes back
    assert sparse_kernel.verify(out / SPARSE_IR_FILE, out / "openvino_model.xml")["layers"] == 12
    m = load(out, sparse_kernel=True)
    assert m.xml is not None and m.xml.name == SPARSE_IR_FILE and m.infer(_feed(m))


def _feed(m):
    from pofa_deploy.inputs import dummy_inputs

    return dummy_inputs(m.input_names, batch=2, seq_len=24)


def test_sparse_kernel_modes(tiny_checkpoint, tmp_path):
    off = convert(_opts(tiny_checkpoint(), tmp_path / "off", sparse_kernel="off"))
    assert not off.sparse_kernel["written"] and "off" in off.sparse_kernel["reason"]
    assert not (tmp_path / "off" / "openvino_model_sparse.xml").exists()
    dense = convert(_opts(tiny_checkpoint(sparsity=0.0), tmp_path / "dense"))
    assert not dense.sparse_kernel["written"] and "below 70%" in dense.sparse_kernel["reason"]
    with pytest.raises(InputError, match="--sparse-kernel on needs --int8"):
        convert(_opts(tiny_checkpoint(), tmp_path / "fp32", int8=False, sparse_kernel="on"))
    assert not (tmp_path / "fp32").exists()


def test_sparse_kernel_ir_with_a_changed_code_is_not_written(tiny_checkpoint, tmp_path, monkeypatch):
    """The guard: a packed value that differs from the standard IR's code aborts, nothing at OUT."""
    import numpy as np

    from pofa_deploy import sparse_kernel

    real = sparse_kernel.to_csr

    def corrupt(codes):
        values, indices, row_ptr = real(codes)
        values = values.copy()
        values[0] = np.int8(values[0] + 1 if values[0] < 127 else values[0] - 1)
        return values, indices, row_ptr

    monkeypatch.setattr(sparse_kernel, "to_csr", corrupt)
    out = tmp_path / "out"
    with pytest.raises(SparsityLostError, match="differ from the standard IR"):
        convert(_opts(tiny_checkpoint(), out))
    assert not out.exists() and not _no_partials(out)
