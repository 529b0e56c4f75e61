"""Build and locate the SparseFullyConnected OpenVINO extension (C++ sources in ``pofa_deploy/ext/``).

The library is built against the headers and ``OpenVINOConfig.cmake`` of the installed ``openvino``
wheel, with cmake and a C++17 compiler from the system or from PyPI (``pip install cmake ninja``), into
``pofa_deploy/ext/build/`` and copied to ``pofa_deploy/libpofa_sparse_ext.so`` (both git-ignored).
A stamp next to it records a hash of the sources and the OpenVINO version, so a stale build (sources
edited, OpenVINO upgraded) is reported instead of loaded.

    python -m pofa_deploy.extension build [--force]    # what install.sh runs
    python -m pofa_deploy.extension path                # print the library path (error if not built)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import ExtensionError, PofaError

PACKAGE = Path(__file__).resolve().parent
SOURCES = PACKAGE / "ext"
BUILD_DIR = SOURCES / "build"
LIBRARY = PACKAGE / "libpofa_sparse_ext.so"
STAMP = PACKAGE / "libpofa_sparse_ext.json"
ENV_OVERRIDE = "POFA_SPARSE_EXT"  # a prebuilt library to use instead (not checked against the sources)
FIX = "run `.venv/bin/python -m pofa_deploy.extension build` (needs cmake and a C++17 compiler)"




def _openvino_version() -> str:
    import openvino as ov

    return str(ov.get_version())


def _source_hash() -> str:
    digest = hashlib.sha256()
    for file in sorted(SOURCES.iterdir()):
        if file.is_file() and file.suffix in (".cpp", ".hpp", ".txt"):
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _stamp() -> dict[str, str]:
    return {"sources": _source_hash(), "openvino": _openvino_version()}


def stale_reason() -> str | None:
    """Why the built library cannot be used as it is (None: it is built and current)."""
    if not LIBRARY.is_file():
        return f"the SparseFullyConnected extension is not built ({LIBRARY} missing)"
    try:
        stamp = json.loads(STAMP.read_text())
    except (OSError, json.JSONDecodeError):
        return f"the SparseFullyConnected extension at {LIBRARY} has no build stamp"
    now = _stamp()
    if stamp.get("sources") != now["sources"]:
        return "the SparseFullyConnected extension is older than its sources"
    if stamp.get("openvino") != now["openvino"]:
        return (f"the SparseFullyConnected extension was built for OpenVINO {stamp.get('openvino')}, "
                f"not {now['openvino']}")
    return None


def extension_path() -> Path:
    """The built extension library, for ``core.add_extension(str(path))`` or ``benchmark_app -extensions``."""
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ExtensionError(f"{ENV_OVERRIDE}={override}: no such file; unset it or point it at the built library")
        return path
    reason = stale_reason()
    if reason:
        raise ExtensionError(f"{reason}; {FIX}")
    return LIBRARY


def _find_tool(*names: str) -> str | None:
    """A tool from PATH or from this interpreter's bin folder (where PyPI's cmake and ninja land)."""
    here = Path(sys.executable).parent
    for name in names:
        found = shutil.which(name) or shutil.which(name, path=str(here))
        if found:
            return found
    return None


def build_extension(*, force: bool = False, verbose: bool = False) -> Path:
    """Configure and build the extension (skipped when the existing build is current); returns its path."""
    if not force and stale_reason() is None:
        return LIBRARY
    cmake = _find_tool("cmake")
    if cmake is None:
        raise ExtensionError("cannot build the SparseFullyConnected extension: no cmake; install it "
                             "(`apt-get install cmake` or `.venv/bin/pip install cmake ninja`) and rerun")
    compiler = os.environ.get("CXX") or _find_tool("c++", "g++", "clang++")
    if compiler is None:
        raise ExtensionError("cannot build the SparseFullyConnected extension: no C++ compiler; install one "
                             "(`apt-get install g++`) or set CXX, and rerun")
    from openvino.utils import get_cmake_path

    ninja = _find_tool("ninja")
    configure = [cmake, "-S", str(SOURCES), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release",
                 f"-DOpenVINO_DIR={get_cmake_path()}", f"-DCMAKE_CXX_COMPILER={compiler}"]
    if ninja and not (BUILD_DIR / "CMakeCache.txt").is_file():
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    steps = [configure, [cmake, "--build", str(BUILD_DIR), "--parallel"]]
    for cmd in steps:
        run = subprocess.run(cmd, capture_output=not verbose, text=True)
        if run.returncode != 0:
            tail = ((run.stdout or "") + (run.stderr or "")).strip().splitlines()[-15:]
            detail = "\n".join(tail)
            raise ExtensionError(f"building the SparseFullyConnected extension failed at `{' '.join(cmd[:3])}`"
                                 f" (rerun with `python -m pofa_deploy.extension build -v`):\n{detail}")
    built = BUILD_DIR / LIBRARY.name
    if not built.is_file():
        raise ExtensionError(f"the build finished but {built} is missing")
    tmp = LIBRARY.with_suffix(".so.tmp")
    shutil.copy2(built, tmp)
    os.replace(tmp, LIBRARY)  # atomic: a process that has the old library mapped keeps it intact
    STAMP.write_text(json.dumps(_stamp()) + "\n")
    return LIBRARY


def add_to(core: object) -> Path:
    """Add the extension to an ``openvino.Core``; returns the library path."""
    path = extension_path()
    core.add_extension(str(path))  # type: ignore[attr-defined]
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pofa_deploy.extension", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the extension (no-op when current)")
    b.add_argument("--force", action="store_true", help="rebuild even when current")
    b.add_argument("-v", "--verbose", action="store_true", help="show cmake and compiler output")
    sub.add_parser("path", help="print the built library's path")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(f"SparseFullyConnected extension: {build_extension(force=args.force, verbose=args.verbose)}")
        else:
            print(extension_path())
    except PofaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


def needs_extension(xml: Path) -> bool:
    """Does this IR use the SparseFullyConnected op (so its Core needs the library added)?"""
    try:
        return b'type="SparseFullyConnected"' in Path(xml).read_bytes()  # IR XML: a few MB at most
    except OSError:
        return False


def add_if_needed(core: object, xml: Path) -> Path | None:
    """Add the library to ``core`` when ``xml`` needs it (ExtensionError, one line, when it is not built)."""
    return add_to(core) if needs_extension(Path(xml)) else None
