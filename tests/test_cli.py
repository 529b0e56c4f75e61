"""The command line as a user meets it: one-line errors, exit codes, no tracebacks."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pofa_deploy.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.startswith("pofa-deploy:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_help_lists_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("convert", "inspect", "synth", "demo"):
        assert command in out


def test_version(capsys):
    from pofa_deploy import __version__

    code, out, err = run(capsys, "--version")
    assert (code, out, err) == (0, f"pofa-deploy {__version__}\n", "")


def test_unknown_command_is_one_clean_line(capsys):
    code, out, err = run(capsys, "frob", "--int8")
    assert code == 2 and out == ""
    assert err.startswith("pofa-deploy: error: unknown command 'frob'; choose one of convert, inspect, ")
    assert_one_line_error(code, err, "benchmark", "demo")
    assert "pofa-deploy: error: pofa-deploy" not in err


def test_usage_errors_name_the_command_once(capsys):
    code, _, err = run(capsys, "convert")
    assert_one_line_error(code, err, "pofa-deploy: error: convert: the following arguments are required: MODEL",
                          "(see pofa-deploy convert --help)")
    assert code == 2
    code, _, err = run(capsys, "--frob")
    assert_one_line_error(code, err, "pofa-deploy: error: unrecognized arguments: --frob")
    assert "pofa-deploy: error: pofa-deploy" not in err


def test_a_command_imports_only_its_own_module():
    """`pofa-deploy inspect --help` builds inspect's options only: no other command module, no framework."""
    code = ("import sys; from pofa_deploy import cli; code = cli.main(['inspect', '--help']); "
            "loaded = [m for m, _ in cli.COMMANDS.values() if m in sys.modules]; "
            "loaded += [m for m in ('torch', 'openvino', 'nncf', 'transformers') if m in sys.modules]; "
            "print('LOADED', *loaded); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--trust-remote-code" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "LOADED pofa_deploy.inspect"


def test_missing_path(capsys, tmp_path):
    code, _, err = run(capsys, "convert", str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--int8")
    assert_one_line_error(code, err, "no such folder")
    assert code == 2


def test_folder_without_config(capsys, tmp_path):
    (tmp_path / "m").mkdir()
    code, _, err = run(capsys, "convert", str(tmp_path / "m"), "-o", str(tmp_path / "o"))
    assert_one_line_error(code, err, "no config.json")


def test_unknown_architecture(capsys, tiny_checkpoint, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint(), ck)
    cfg = json.loads((ck / "config.json").read_text())
    cfg["model_type"] = "llama"
    (ck / "config.json").write_text(json.dumps(cfg))
    code, _, err = run(capsys, "convert", str(ck), "-o", str(tmp_path / "o"))
    assert_one_line_error(code, err, "unsupported architecture", "config.json")
    assert not (tmp_path / "o").exists()


def test_truncated_weights(capsys, tiny_checkpoint, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint(), ck)
    f = ck / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    code, _, err = run(capsys, "convert", str(ck), "-o", str(tmp_path / "o"), "--int8")
    assert_one_line_error(code, err, "model.safetensors", "truncated or corrupt")


def test_nan_weights(capsys, tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint(), ck)
    state = load_file(str(ck / "model.safetensors"))
    key = next(iter(state))
    state[key] = state[key].float() * float("inf")
    save_file(state, str(ck / "model.safetensors"), metadata={"format": "pt"})
    code, _, err = run(capsys, "convert", str(ck), "-o", str(tmp_path / "o"), "--int8")
    assert_one_line_error(code, err, "NaN/Inf")


@pytest.mark.parametrize(("content", "needle"), [(b"", "no text"), (b"\xff\xfe\xfa bad bytes\n", "utf-8")])
def test_bad_calibration_file(capsys, tiny_checkpoint, tmp_path, content, needle):
    calib = tmp_path / "calib.txt"
    calib.write_bytes(content)
    code, _, err = run(capsys, "convert", str(tiny_checkpoint()), "-o", str(tmp_path / "o"), "--int8",
                       "--calibration", str(calib), "--samples", "4", "--seq-len", "32")
    assert_one_line_error(code, err, "calib.txt")
    assert needle in err.lower()
    assert not (tmp_path / "o").exists()


def test_malformed_tsv_calibration(capsys, tiny_checkpoint, tmp_path):
    calib = tmp_path / "calib.tsv"
    calib.write_text("foo\tbar\n1\t2\n")
    code, _, err = run(capsys, "convert", str(tiny_checkpoint()), "-o", str(tmp_path / "o"), "--int8",
                       "--calibration", str(calib))
    assert_one_line_error(code, err, "calib.tsv")


def test_output_exists_without_overwrite(capsys, tiny_checkpoint, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    code, _, err = run(capsys, "convert", str(tiny_checkpoint()), "-o", str(out), "--int8")
    assert_one_line_error(code, err, "already exists", "--overwrite")


def test_unknown_flag_value(capsys, tiny_checkpoint, tmp_path):
    code, _, err = run(capsys, "convert", str(tiny_checkpoint()), "-o", str(tmp_path / "o"), "--task", "translation")
    assert_one_line_error(code, err, "--task")
    code, _, err = run(capsys, "convert", str(tiny_checkpoint()), "-o", str(tmp_path / "o"), "--samples", "many")
    assert_one_line_error(code, err, "--samples")


def test_debug_env_shows_traceback(tmp_path):
    env = dict(os.environ, POFA_DEBUG="1")
    proc = subprocess.run([sys.executable, "-m", "pofa_deploy.cli", "convert", str(tmp_path / "nope"), "-o",
                           str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "InputError" in proc.stderr


def test_convert_inspect_roundtrip(capsys, tiny_checkpoint, tmp_path):
    out = tmp_path / "o"
    code, stdout, _ = run(capsys, "convert", str(tiny_checkpoint("bert")), "-o", str(out), "--int8",
                          "--samples", "8", "--seq-len", "32")
    assert code == 0 and "0 lost" in stdout and "runtime_config.json" in stdout
    code, stdout, _ = run(capsys, "inspect", str(out))
    assert code == 0 and "i8" in stdout and "eligible" in stdout
    code, stdout, _ = run(capsys, "inspect", str(out), "--json")
    data = json.loads(stdout)
    assert data["kind"] == "openvino-ir"
    assert data["sparse_rate"] == json.loads((out / "pofa_report.json").read_text())["sparse_rate"]
    enc = [r for r in data["layers"] if ".layer." in r["name"]]
    assert enc and all(r["dtype"] == "i8" and r["eligible"] and r["sparsity"] >= 0.89 for r in enc)
    code, stdout, _ = run(capsys, "inspect", str(tiny_checkpoint("bert")), "--json")
    data = json.loads(stdout)
    assert data["kind"] == "checkpoint" and data["totals"]["eligible_layers"] == 13  # 12 encoder + pooler


def _tiny_ir(folder):
    """A two-op IR written by OpenVINO itself: a MatMul weight and a Reshape whose target shape is in the .bin."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 64], ov.Type.f32, name="input_ids")
    w = ops.constant(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    y = ops.reshape(ops.matmul(x, w, False, True), ops.constant(np.array([64], dtype=np.int64)), False)
    folder.mkdir()
    ov.save_model(ov.Model([ops.result(y)], [x], "tiny"), str(folder / "openvino_model.xml"),
                  compress_to_fp16=False)
    return folder


@pytest.mark.parametrize(("damage", "needles"), [
    (None, []),
    ("truncate-bin", ["openvino_model.bin: missing, truncated or corrupt weights"]),
    ("random-bin", ["openvino_model.xml: OpenVINO cannot build this IR", "openvino_model.bin is corrupt"]),
    ("missing-bin", ["openvino_model.bin: missing, truncated or corrupt weights"]),
    ("truncate-xml", ["openvino_model.xml: truncated or corrupt IR XML"]),
    ("random-xml", ["openvino_model.xml: not an OpenVINO IR"]),
    ("empty-xml", ["openvino_model.xml: not an OpenVINO IR"]),
])
def test_corrupt_ir_inspect_is_one_line(capsys, tmp_path, damage, needles):
    import numpy as np

    folder = _tiny_ir(tmp_path / "ir")
    if damage is not None:
        part = folder / ("openvino_model.bin" if damage.endswith("bin") else "openvino_model.xml")
        data = part.read_bytes()
        if damage.startswith("truncate"):
            part.write_bytes(data[: len(data) // 2])
        elif damage.startswith("random"):
            part.write_bytes(np.random.default_rng(1).bytes(len(data)))
        elif damage.startswith("empty"):
            part.write_bytes(b"")
        else:
            part.unlink()
    code, out, err = run(capsys, "inspect", str(folder))
    if damage is None:
        assert code == 0 and "openvino-ir" in out, err
        return
    assert code == 4 and out == ""
    assert_one_line_error(code, err, *needles, "convert the model again")


def test_synth_command_and_guard(capsys, tmp_path):
    code, _, err = run(capsys, "synth", "--arch", "tiny-bert", "--sparsity", "0.8", "-o", str(tmp_path / "s"))
    assert code == 0 and "80% sparse" in err
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert cfg["pofa_synthetic"]["sparsity"] == 0.8
    code, _, err = run(capsys, "synth", "--sparsity", "1.2", "-o", str(tmp_path / "t"))
    assert_one_line_error(code, err, "--sparsity")


def test_sigint_mid_conversion_leaves_nothing(tiny_checkpoint, tmp_path):
    """A real Ctrl-C: exit 130, one line, no output folder, no partial folder."""
    out = tmp_path / "o"
    # The child gets the default Ctrl-C: a test run started in the background of a non-interactive shell
    # ignores SIGINT, and an ignored signal is inherited (the CLI rightly leaves it ignored then).
    proc = subprocess.Popen([sys.executable, "-m", "pofa_deploy.cli", "convert", str(tiny_checkpoint()), "-o",
                             str(out), "--int8", "--samples", "8", "--seq-len", "32"],
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    deadline = time.time() + 120
    for line in proc.stderr:  # wait until the conversion is under way
        if "exporting" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]


def test_int8_convert_stdout_is_only_the_summary(tiny_checkpoint, tmp_path):
    """NNCF's progress bars and log lines go to stderr: stdout can be piped into a file or a tool."""
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-m", "pofa_deploy.cli", "convert", str(tiny_checkpoint()), "-o",
                           str(out), "--int8", "--samples", "8", "--seq-len", "32"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 lost" in proc.stdout
    for noise in ("Statistics collection", "Applying", "INFO:nncf", "━"):
        assert noise not in proc.stdout
    assert "Statistics collection" in proc.stderr  # the progress is still shown, on stderr


def test_missing_sparse_kernel_library_is_exit_6(capsys, tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("POFA_SPARSE_EXT", str(tmp_path / "no-such-lib.so"))
    out = tmp_path / "o"
    code, _, err = run(capsys, "convert", str(tiny_checkpoint()), "-o", str(out), "--int8", "--samples", "8",
                       "--seq-len", "32", "--sparse-kernel", "on")
    assert code == 6
    assert_one_line_error(code, err, "POFA_SPARSE_EXT")
    assert not out.exists()
