"""Shared by the CLI tests: run ``pofa-deploy COMMAND ARGS`` in-process and capture what it prints."""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable

from pofa_deploy import cli


def run(command: str, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``pofa-deploy command *args``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([command, *args])
    return code, out.getvalue(), err.getvalue()


def runner(command: str) -> Callable[..., tuple[int, str, str]]:
    """``run`` with the command bound: ``run_cli = runner("benchmark"); run_cli("OUT", "-b", "1")``."""
    return functools.partial(run, command)
