"""Write an output folder all at once: into a temporary sibling, renamed into place when complete.

Whatever goes wrong before the end (an error, a failed check, Ctrl-C), the user's OUT is exactly
as it was: absent, or the previous complete result when ``--overwrite`` was given.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputExistsError


def check_writable(out: Path, *, overwrite: bool) -> None:
    """Fail early, before any slow work, when OUT would be overwritten without permission."""
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; choose another -o/--output or pass --overwrite")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder; choose another -o/--output")


@contextlib.contextmanager
def staged_output(out: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; move it to ``out`` only if the block succeeds."""
    out = Path(out)
    check_writable(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        check_writable(out, overwrite=overwrite)  # someone may have created it meanwhile
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
