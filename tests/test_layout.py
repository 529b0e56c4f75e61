"""Issue 9's measurable limits, held by a test so they stay true: one concept per module."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    return sorted((ROOT / "pofa_deploy").rglob("*.py"))


def test_no_module_over_600_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_no_function_over_80_lines() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = length
    assert not long, long


def test_help_imports_no_heavy_framework() -> None:
    """`pofa-deploy --help` imports neither the frameworks nor the command modules (they load on use)."""
    code = ("import sys; from pofa_deploy import cli; code = cli.main(['--help']); "
            "heavy = [m for m in ('torch', 'openvino', 'nncf', 'transformers', 'optimum') if m in sys.modules]; "
            "heavy += [m for m in cli.COMMANDS.values() if m[0] in sys.modules]; "
            "print('HEAVY', *heavy); sys.exit(3 if heavy else code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "convert" in proc.stdout and "benchmark" in proc.stdout


# Run in a child with the editable install's finder taken out, so pofa_deploy can only come from the
# folder on sys.path[0]: what a plain checkout with only the dependencies installed gets.
_PLAIN = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
          "sys.path_hooks[:] = [h for h in sys.path_hooks if 'editable' not in repr(h).lower()]; "
          "sys.path.insert(0, {root!r}); ")


def test_a_plain_checkout_runs_without_an_install(tmp_path: Path) -> None:
    """pofa_deploy.calibration is an ordinary subpackage (no package-dir remap): a copy of the source
    folder imports it, finds the built-in sample, and runs the CLI, with no install behind it."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "pofa_deploy", copy / "pofa_deploy",
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.so"))
    code = _PLAIN.format(root=str(copy)) + (
        "import pofa_deploy.calibration as c; print(c.__file__); print(len(c.load_examples('builtin'))); "
        "import runpy; sys.argv = ['pofa-deploy', '--version']; "
        "runpy.run_module('pofa_deploy.cli', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    file, count, version = proc.stdout.strip().splitlines()
    assert Path(file) == copy / "pofa_deploy" / "calibration" / "__init__.py"
    assert int(count) > 100 and version.startswith("pofa-deploy ")


def test_cli_runs_as_a_module_from_the_checkout() -> None:
    for module in ("pofa_deploy.cli", "pofa_deploy"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True,
                              timeout=120, cwd=ROOT)
        assert proc.returncode == 0 and proc.stdout.startswith("pofa-deploy "), proc.stdout + proc.stderr
