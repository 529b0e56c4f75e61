"""Issue 9's measurable limits, held by a test so they stay true: one concept per module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    return sorted((ROOT / "pofa_deploy").rglob("*.py"))


def test_no_module_over_600_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _sources() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
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
