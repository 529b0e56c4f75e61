"""What may be at OUT, and what is left there when things go wrong (outputs.py, issue 8 items 1-3).

Every guard of ``check_writable``/``staged_output`` fires here at least once, most of them through
the real command line: a source folder, a user's folder, another command's output, ``-o .``, an
unwritable location, SIGTERM/SIGHUP mid-write.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pofa_deploy import convert as convert_mod
from pofa_deploy import outputs
from pofa_deploy.cli import main
from pofa_deploy.errors import InputError, OutputExistsError
from pofa_deploy.outputs import check_writable, staged_output


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str, *needles: str, exit_code: int = 2) -> str:
    assert code == exit_code, err
    lines = [line for line in err.strip().splitlines() if line.startswith("pofa-deploy:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Staging (``.OUT.partial-*``), swap (``.OUT.old-*``) and probe folders left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name
                  or p.name.startswith(".pofa-write-test-"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path: Path) -> Path:
    """A private copy of the tiny checkpoint (these tests try to destroy it)."""
    return Path(shutil.copytree(tiny_checkpoint(), tmp_path / "ckpt"))


@pytest.fixture
def no_slow_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals must come before the checkpoint is loaded."""
    def fail(*_a: object, **_k: object) -> None:
        raise AssertionError("the checkpoint was loaded before the output folder was checked")

    monkeypatch.setattr(convert_mod, "load_checkpoint", fail)


# ------------------------------------------------------------------ 1. what --overwrite may replace

@pytest.mark.parametrize("where", ["equal", "inside", "containing", "symlink"])
def test_out_may_not_be_inside_or_contain_the_model(capsys, ckpt: Path, no_slow_work: None, where: str) -> None:
    before = snapshot(ckpt)
    out = {"equal": ckpt, "inside": ckpt / "int8", "containing": ckpt.parent, "symlink": ckpt.parent / "link"}[where]
    if where == "symlink":
        out.symlink_to(ckpt, target_is_directory=True)
    code, err = run(capsys, "convert", str(ckpt), "-o", str(out), "--int8", "--overwrite")
    how = {"equal": "is the input MODEL", "inside": "lies inside the input MODEL",
           "containing": "contains the input MODEL", "symlink": "is the input MODEL"}[where]
    one_line_error(code, err, how, "-o/--output")
    assert snapshot(ckpt) == before and not leftovers(ckpt.parent) and not leftovers(ckpt)


def test_finetune_out_may_not_be_data_or_teacher(capsys, ckpt: Path, tmp_path: Path) -> None:
    data = tmp_path / "SST-2"
    data.mkdir()
    (data / "train.tsv").write_text("sentence\tlabel\ngood\t1\n")
    code, err = run(capsys, "finetune", str(ckpt), "--task", "sst2", "--data", str(data), "-o", str(data / "o"))
    one_line_error(code, err, "lies inside the input --data")
    teacher = Path(shutil.copytree(ckpt, tmp_path / "teacher"))
    code, err = run(capsys, "finetune", str(ckpt), "--task", "sst2", "--data", str(data), "--teacher",
                    str(teacher), "-o", str(teacher / "o"))
    one_line_error(code, err, "lies inside the input --teacher")
    code, err = run(capsys, "finetune", str(ckpt), "--task", "sst2", "--data", str(data), "--teacher",
                    str(ckpt), "-o", str(ckpt), "--overwrite")
    one_line_error(code, err, "is the input MODEL")


def test_hub_ids_are_not_paths(tmp_path: Path) -> None:
    check_writable(tmp_path / "out", overwrite=False, kind="pofa_report.json",
                   sources={"MODEL": "Intel/bert-base-uncased-sparse-90-unstructured-pruneofa", "--teacher": None})


def test_user_folder_is_never_replaced(capsys, ckpt: Path, tmp_path: Path, no_slow_work: None) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    (out / "config.json").write_text("{}")
    for extra in ((), ("--overwrite",)):
        code, err = run(capsys, "convert", str(ckpt), "-o", str(out), "--int8", *extra)
        one_line_error(code, err, str(out), "did not write", "config.json and 1 more", "choose another -o/--output")
    assert (out / "notes.txt").read_text() == "precious" and not leftovers(tmp_path)


def test_output_of_another_command_is_refused(capsys, ckpt: Path, tmp_path: Path, no_slow_work: None) -> None:
    out = tmp_path / "finetuned"
    out.mkdir()
    (out / "finetune_report.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"weights")
    code, err = run(capsys, "convert", str(ckpt), "-o", str(out), "--int8", "--overwrite")
    one_line_error(code, err, "pofa-deploy finetune output (finetune_report.json)", "not a convert output")
    assert (out / "model.safetensors").read_bytes() == b"weights"


def test_previous_output_of_the_same_command_is_replaced(capsys, tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert run(capsys, "synth", "--arch", "tiny-bert", "--sparsity", "0.5", "-o", str(out))[0] == 0
    assert json.loads((out / "synth_report.json").read_text())["sparsity"] == 0.5
    code, err = run(capsys, "synth", "--arch", "tiny-bert", "--sparsity", "0.8", "-o", str(out))
    one_line_error(code, err, "already exists (a previous synth output)", "--overwrite")
    assert run(capsys, "synth", "--arch", "tiny-bert", "--sparsity", "0.8", "-o", str(out), "--overwrite")[0] == 0
    assert json.loads((out / "synth_report.json").read_text())["sparsity"] == 0.8
    assert json.loads((out / "config.json").read_text())["pofa_synthetic"]["sparsity"] == 0.8
    assert not leftovers(tmp_path)


def test_empty_folder_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    with pytest.raises(OutputExistsError, match="an empty folder"):
        check_writable(out, overwrite=False, kind="synth_report.json")
    with staged_output(out, overwrite=True, kind="synth_report.json") as tmp:
        (tmp / "synth_report.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["synth_report.json"] and not leftovers(tmp_path)


def test_benchmark_output_dir_is_not_a_users_folder(capsys, tmp_path: Path) -> None:
    model = tmp_path / "int8"
    model.mkdir()  # the folder check comes first: no IR is needed to be refused
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "benchmark.csv").write_text("my own table")
    code, err = run(capsys, "benchmark", str(model), "--output-dir", str(mine))
    one_line_error(code, err, "did not write", "benchmark.csv", "choose another --output-dir")
    assert (mine / "benchmark.csv").read_text() == "my own table"
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "benchmark.json").write_text("{}")
    check_writable(previous, overwrite=True, kind="benchmark.json", flag="--output-dir")  # its own: replaced


@pytest.mark.parametrize("out", [".", "./", "/", "..", "sub/.."])
def test_current_and_root_folder(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str) -> None:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "synth_report.json").write_text("{}")  # even a previous output: the current folder stays
    monkeypatch.chdir(work)
    code, err = run(capsys, "synth", "--arch", "tiny-bert", "-o", out, "--overwrite")
    line = one_line_error(code, err, "-o/--output")
    assert ("root folder" if out == "/" else "current folder") in line
    assert not leftovers(work) and not leftovers(tmp_path) and (work / "synth_report.json").is_file()


# ------------------------------------------------------------------ 3. unwritable locations, early

def _unwritable(folder: Path) -> Iterator[Path]:
    """``folder`` made unwritable for this process by the means this machine allows (chmod when not
    root, ``chattr +i`` as root); where neither works, a folder under /proc, which no one can write."""
    folder.mkdir()
    undo = None
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = lambda: folder.chmod(0o755)  # noqa: E731
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        undo = lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)  # noqa: E731
    else:
        folder = Path("/proc/self/pofa-unwritable")
    with pytest.raises(OSError):  # the premise, checked: nothing can be created there
        (folder / "probe").mkdir()
    try:
        yield folder
    finally:
        if undo is not None:
            undo()


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    yield from _unwritable(tmp_path / "readonly")


@pytest.mark.parametrize("where", ["folder", "proc"])
def test_unwritable_location_is_refused_before_loading(capsys, ckpt: Path, unwritable: Path, no_slow_work: None,
                                                       where: str) -> None:
    base = unwritable if where == "folder" else Path("/proc/self")
    for out in (base / "out", base / "deeper" / "out"):
        code, err = run(capsys, "convert", str(ckpt), "-o", str(out), "--int8")
        one_line_error(code, err, "cannot write in", "choose another -o/--output")


def test_undeletable_previous_output_is_refused_before_loading(capsys, ckpt: Path, tmp_path: Path,
                                                               no_slow_work: None) -> None:
    out = tmp_path / "previous"
    out.mkdir()
    (out / "pofa_report.json").write_text("{}")
    weights = out / "openvino_model.bin"
    weights.write_bytes(b"ir")
    if os.geteuid() != 0:
        out.chmod(0o555)
        undo = ["chmod", "755", str(out)]
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(weights)],
                                                   capture_output=True).returncode == 0:
        undo = ["chattr", "-i", str(weights)]
    else:
        pytest.skip("root without chattr +i: nothing here can make a file undeletable")
    try:
        code, err = run(capsys, "convert", str(ckpt), "-o", str(out), "--int8", "--overwrite")
        one_line_error(code, err, "cannot be replaced", "choose another -o/--output")
        assert weights.read_bytes() == b"ir" and not leftovers(tmp_path)
    finally:
        subprocess.run(undo, check=True)


def test_output_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputExistsError, match="not a folder"):
        check_writable(tmp_path / "f", overwrite=True, kind="pofa_report.json")
    with pytest.raises(InputError, match="is not a folder"):
        check_writable(tmp_path / "f" / "out", overwrite=True, kind="pofa_report.json")


# ------------------------------------------------------------------ 11. failures keep the previous result

def test_failure_while_staging_keeps_previous_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_output(out, overwrite=False, kind="synth_report.json") as tmp:
        (tmp / "synth_report.json").write_text("previous")
    with pytest.raises(RuntimeError, match="mid-write"), \
            staged_output(out, overwrite=True, kind="synth_report.json") as tmp:
        (tmp / "synth_report.json").write_text("new")
        assert leftovers(tmp_path)  # the new result is half written beside OUT...
        raise RuntimeError("mid-write")
    assert snapshot(out) == {"synth_report.json": b"previous"}  # ...and OUT is still the previous one
    assert not leftovers(tmp_path)


def test_failed_swap_puts_previous_result_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "synth_report.json").write_text("previous")
    real_replace = os.replace
    calls = []

    def replace(src: object, dst: object) -> None:
        calls.append((src, dst))
        if len(calls) == 2:  # OUT was moved aside; moving the new folder in fails
            raise OSError(28, "No space left on device")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(outputs.os, "replace", replace)
    with pytest.raises(OSError, match="No space"), staged_output(out, overwrite=True, kind="synth_report.json") as tmp:
        (tmp / "synth_report.json").write_text("new")
    assert snapshot(out) == {"synth_report.json": b"previous"} and not leftovers(tmp_path)


# ------------------------------------------------------------------ 2. SIGTERM / SIGHUP

SLOW_SYNTH = textwrap.dedent("""
    import signal, sys, time
    from pofa_deploy import cli, synth

    for sig in (signal.SIGTERM, signal.SIGHUP):  # as in a terminal session, even if the tests run under nohup
        signal.signal(sig, signal.SIG_DFL)

    def slow(folder, *args, **kwargs):  # a staged write that takes its time
        (folder / "config.json").write_text("{}")
        print("staging", flush=True)
        time.sleep(60)

    def slow_before_staging(options):  # slow work before any folder is staged (loading, calibration)
        print("staging", flush=True)
        time.sleep(60)

    synth.write_checkpoint = slow
    if sys.argv[1] == "cli-unstaged":
        synth.synthesize = slow_before_staging
    if sys.argv[1].startswith("cli"):
        sys.exit(cli.main(sys.argv[2:]))
    synth.synthesize(synth.SynthOptions(output=sys.argv[-2], overwrite=True))  # the library, no cli.main
""")


@pytest.mark.parametrize(("sig", "via", "previous"), [
    (signal.SIGTERM, "cli", False), (signal.SIGTERM, "cli", True), (signal.SIGHUP, "cli", False),
    (signal.SIGTERM, "library", True), (signal.SIGTERM, "cli-unstaged", False)])
def test_signal_mid_write_cleans_up(tmp_path: Path, sig: signal.Signals, via: str, previous: bool) -> None:
    out = tmp_path / "o"
    if previous:
        out.mkdir()
        (out / "synth_report.json").write_text("previous")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SYNTH, via, "synth", "--arch", "tiny-bert", "-o", str(out),
                             "--overwrite"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "staging":
            pytest.fail(proc.communicate(timeout=60)[1])
        staged = [p for p in tmp_path.iterdir() if p.name.startswith(".o.partial-")]
        assert bool(staged) == (via != "cli-unstaged")  # the staged write is under way (or not yet begun)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    if via.startswith("cli"):
        assert proc.returncode == 128 + sig, err
        line = one_line_error(proc.returncode, err, "terminated", sig.name, exit_code=128 + sig)
        assert line == f"pofa-deploy: terminated: stopped by {sig.name}; nothing was written to the output folder"
    else:  # a library caller gets the exception (and its own traceback), but nothing is left behind either
        assert proc.returncode == 1 and "Terminated" in err
    assert not leftovers(tmp_path)
    if previous:
        assert snapshot(out) == {"synth_report.json": b"previous"}
    else:
        assert not out.exists()


def test_handlers_are_restored(capsys) -> None:
    before = {s: signal.getsignal(s) for s in outputs.TERMINATING}
    if before[signal.SIGTERM] != signal.SIG_DFL:
        pytest.skip("this test process already handles SIGTERM itself")
    run(capsys, "synth", "--sparsity", "2", "-o", "x")
    assert {s: signal.getsignal(s) for s in outputs.TERMINATING} == before
    with outputs.terminate_as_exception():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
        with pytest.raises(outputs.Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert {s: signal.getsignal(s) for s in outputs.TERMINATING} == before
