"""The one progress printer: what long work is doing, on stderr, so stdout stays the result.

Lines are stamped with the seconds since the printer was made. Indented "detail" lines (e.g. a
benchmark round) overwrite each other on a terminal, so a long run shows one moving line under each
phase instead of hundreds; piped to a file, every line is kept.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

Progress = Callable[[str], None]


def silent(_message: str) -> None:
    """A Progress that says nothing (library default)."""


def printer(*, quiet: bool = False, numbered: bool = False, stream: TextIO | Any = None) -> Progress:
    """A Progress writing ``[  12.3s] message`` lines; ``numbered`` prefixes phase lines with 1., 2., ..."""
    out = stream or sys.stderr
    tty = bool(getattr(out, "isatty", lambda: False)())
    start = time.perf_counter()
    state = {"transient": False, "step": 0}

    def say(message: str) -> None:
        if quiet:
            return
        stamp = f"[{time.perf_counter() - start:6.1f}s]"
        if message.startswith("  ") and tty:
            out.write(f"\r\x1b[K{stamp} {message.strip()}")
            state["transient"] = True
        else:
            if state["transient"]:
                out.write("\r\x1b[K")
                state["transient"] = False
            if numbered and not message.startswith("  "):
                state["step"] += 1
                message = f"{state['step']}. {message.strip()}"
            out.write(f"{stamp} {message.strip()}\n")
        out.flush()

    return say
