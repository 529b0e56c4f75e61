"""Write an output folder all at once: into a temporary sibling, renamed into place when complete.

Whatever goes wrong before the end (an error, a failed check, Ctrl-C, SIGTERM or SIGHUP), the
user's OUT is exactly as it was: absent, or the previous complete result when ``--overwrite`` was
given. ``check_writable`` holds the one rule for what may be at OUT, for every command that writes a
folder:

* OUT may not be ``/``, the current folder (``-o .``) or a folder containing it, and may not equal,
  lie inside or contain an input (MODEL, ``--data``, ``--teacher``, ...);
* an existing OUT is replaced only with ``--overwrite``, and only when it is empty or a previous
  output of the same command, recognised by the report that command writes (``kind``, e.g.
  ``pofa_report.json``); a folder holding anything else is refused, saying what is there;
* the place OUT goes must be writable (tried, not assumed), and an OUT to be replaced deletable,
  before any slow work starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType

from .errors import InputError, OutputExistsError

# The report each command writes into its output folder: it marks a folder as a previous output of
# that command (the only kind of existing folder ``--overwrite`` may replace).
MARKERS: dict[str, str] = {
    "pofa_report.json": "convert",
    "finetune_report.json": "finetune",
    "synth_report.json": "synth",
    "demo_report.json": "demo",
    "benchmark.json": "benchmark",
    "package_report.json": "package",
}

# Signals that end the process like Ctrl-C does: staged folders are cleaned up on the way out.
TERMINATING: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived; raised like KeyboardInterrupt so every ``finally`` cleans up."""

    def __init__(self, signum: int, message: str | None = None) -> None:
        self.signum = int(signum)
        super().__init__(message or f"stopped by {signal.Signals(signum).name}; nothing was written to the output "
                                    "folder")


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """While active, SIGTERM/SIGHUP raise ``Terminated`` instead of killing the process outright.

    Only signals left at their default action are taken over (an application's own handler, or
    ``nohup``'s ignored SIGHUP, stays as it is), only in the main thread, and the previous handlers
    are restored afterwards.
    """
    taken: dict[signal.Signals, object] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in TERMINATING:
            if signal.getsignal(sig) == signal.SIG_DFL:
                taken[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, previous in taken.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM/SIGHUP back until the block ends; act on them afterwards.

    For folders being renamed or removed, and for native work that calls back into Python: OpenVINO's
    model conversion does (its telemetry), and a KeyboardInterrupt raised inside such a callback goes
    through pybind11 to std::terminate, i.e. the process aborts with a C++ trace and leaves its
    staged folder behind (seen with Ctrl-C during `convert`'s export); elsewhere in the same
    conversion it was swallowed and the run went on to exit 0.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[signal.Signals] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        pending.append(signal.Signals(signum))

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, *TERMINATING)
                if signal.getsignal(sig) is not None}  # None: a handler not set from Python, left alone
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), sig)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _describe(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())
    foreign = [n for n in names if n not in MARKERS] or names
    more = f" and {len(names) - 1} more" if len(names) > 1 else ""
    return f"{foreign[0]}{more}"


def _undeletable(folder: Path) -> str | None:
    """The first thing under ``folder`` (included) that blocks moving it away and deleting it, if any."""
    for root, dirs, files in os.walk(folder):
        if not os.access(root, os.W_OK | os.X_OK):
            return f"{root} is read-only"
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            if _immutable(name):
                return f"{name} is immutable or append-only (chattr -i/-a)"
    return None


def _immutable(path: str) -> bool:
    flags = getattr(os.lstat(path), "st_flags", 0)  # BSD/macOS
    if flags & (getattr(os, "UF_IMMUTABLE", 0) | getattr(os, "SF_IMMUTABLE", 0)):
        return True
    if os.path.islink(path):
        return False
    try:  # Linux: FS_IOC_GETFLAGS, FS_IMMUTABLE_FL | FS_APPEND_FL
        import array
        import fcntl

        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            buf = array.array("i", [0])
            fcntl.ioctl(fd, 0x80086601, buf, True)
        finally:
            os.close(fd)
        return bool(buf[0] & 0x30)
    except (OSError, ImportError, ValueError):  # not Linux, not supported by this filesystem, no access
        return False


def _probe_writable(out: Path, flag: str) -> None:
    """Create and remove a folder where OUT's parent is (or will be created), or raise InputError."""
    base = out.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise InputError(f"{flag} {out}: {base} is not a folder; choose another {flag}")
    try:
        probe = tempfile.mkdtemp(prefix=".pofa-write-test-", dir=base)
        os.rmdir(probe)
    except OSError as exc:
        raise InputError(f"{flag} {out}: cannot write in {base} ({exc.strerror or exc}); "
                         f"choose another {flag}") from None


def check_writable(out: Path, *, overwrite: bool, kind: str, sources: Mapping[str, object] | None = None,
                   flag: str = "-o/--output") -> None:
    """Fail early, before any slow work, when OUT may not or cannot be written (see the module docstring).

    ``kind`` is the report file the calling command writes into OUT; ``sources`` maps the name of each
    input (``"MODEL"``, ``"--data"``) to its path, or to None or a hub id (not a local path: ignored).
    """
    given = out
    out = Path(os.path.abspath(out))
    if out == out.parent:
        raise InputError(f"{flag} {given} is the root folder; give the name of a new folder")
    real = _real(out)
    cwd = _real(Path.cwd())
    if _within(cwd, real):
        where = "the current folder" if real == cwd else "a folder containing the current folder"
        raise InputError(f"{flag} {given} is {where}; give the name of a new folder, e.g. {flag.split('/')[0]} out")
    for label, source in (sources or {}).items():
        if source is None or not Path(str(source)).exists():
            continue
        src = _real(Path(str(source)))
        if real == src or _within(real, src) or _within(src, real):
            how = "is" if real == src else "lies inside" if _within(real, src) else "contains"
            raise InputError(f"{flag} {given} {how} the input {label} {source}; writing there could destroy it, "
                             f"choose another {flag}")
    if out.is_symlink() or out.exists():
        if not out.is_dir():
            raise OutputExistsError(f"{given} exists and is not a folder; choose another {flag}")
        if os.path.ismount(out):
            raise OutputExistsError(f"{given} is a mount point and cannot be replaced; choose a new folder inside it")
        empty = not any(out.iterdir())
        ours = (out / kind).is_file()
        command = MARKERS.get(kind, "pofa-deploy")
        if not (empty or ours):
            other = next((name for name in MARKERS if (out / name).is_file()), None)
            if other is not None:
                raise OutputExistsError(f"{given} holds a pofa-deploy {MARKERS[other]} output ({other}), not a "
                                        f"{command} output; choose another {flag}")
            raise OutputExistsError(f"{given} holds files that pofa-deploy did not write (e.g. {_describe(out)}); "
                                    f"choose another {flag}")
        if not overwrite:
            what = "an empty folder" if empty else f"a previous {command} output"
            raise OutputExistsError(f"{given} already exists ({what}); choose another {flag} or pass --overwrite "
                                    "to replace it")
        blocked = _undeletable(out)
        if blocked is not None:
            raise InputError(f"{flag} {given} cannot be replaced: {blocked}; choose another {flag}")
    _probe_writable(out, flag)


@contextlib.contextmanager
def staged_output(out: Path, *, overwrite: bool, kind: str, sources: Mapping[str, object] | None = None,
                  flag: str = "-o/--output") -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; move it to ``out`` only if the block succeeds.

    ``check_writable`` runs first (and again right before the rename: OUT may have appeared
    meanwhile). SIGTERM and SIGHUP are turned into ``Terminated`` for the duration (when nobody
    else handles them), so an ended process cleans up like an interrupted one.
    """
    out = Path(os.path.abspath(out))
    with terminate_as_exception():
        check_writable(out, overwrite=overwrite, kind=kind, sources=sources, flag=flag)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            yield tmp
            check_writable(out, overwrite=overwrite, kind=kind, sources=sources, flag=flag)
            with deferred_signals():
                if out.exists():
                    _swap(tmp, out)
                else:
                    os.replace(tmp, out)
        finally:
            with deferred_signals():
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)


def _swap(tmp: Path, out: Path) -> None:
    """Replace the folder ``out`` by ``tmp``; on any failure the previous ``out`` is put back."""
    holder = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    try:
        os.replace(out, holder / out.name)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(holder / out.name, out)
            raise
    finally:
        shutil.rmtree(holder, ignore_errors=True)
