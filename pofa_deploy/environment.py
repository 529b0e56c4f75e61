"""The one record of where a figure was measured: CPU, cores, versions, commit, date, command.

Every result pofa-deploy writes (pofa_report.json, benchmark.json, tune results) carries this record,
because figures from two machines must never be compared. Reading it is cheap: /proc/cpuinfo, sysfs,
package metadata and ``git``; nothing here imports openvino, torch or nncf at module level.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import __version__

# flags that decide which kernels OpenVINO can use (the full list is recorded too)
FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                     "amx_bf16", "avx512_fp16", "amx_fp16", "hypervisor")
PACKAGES = ("openvino", "nncf", "torch", "transformers", "optimum-intel", "numpy", "matplotlib")


def cpu_flags() -> set[str]:
    """CPU feature flags of this machine (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def has_amx() -> bool:
    """AMX tiles with INT8 support, which the CPU plugin's sparse I8 kernels need."""
    return {"amx_tile", "amx_int8"} <= cpu_flags()


def bf16_supported() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def available_cores() -> int:
    """Logical CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores among the CPUs this process may use (hyper-thread siblings counted once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        cores = {(Path(f"/sys/devices/system/cpu/cpu{c}/topology/physical_package_id").read_text().strip(),
                  Path(f"/sys/devices/system/cpu/cpu{c}/topology/core_id").read_text().strip()) for c in cpus}
        return len(cores) or available_cores()
    except (AttributeError, OSError):
        return available_cores()


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"pofa-deploy": __version__, "python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    if out["openvino"] == "not installed":  # importable without package metadata (e.g. an unpacked wheel)
        try:
            import openvino as ov

            out["openvino"] = ov.get_version().split("-")[0]
        except ImportError:
            pass
    return out


def git_commit() -> dict[str, Any] | None:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)}


def command_line() -> str:
    """The command this process runs, as typed (program name without its path)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""


def record(*, threads: int | None = None) -> dict[str, Any]:
    """The environment record (JSON-ready). ``threads``: the threads the measurement used."""
    flags = cpu_flags()
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "cpu_model": cpu_model(),
        "cpu_flags_of_interest": sorted(f for f in FLAGS_OF_INTEREST if f in flags),
        "cpu_flags": sorted(flags),
        "amx": {"amx_tile", "amx_int8"} <= flags,
        "bf16": bool({"avx512_bf16", "amx_bf16"} & flags),
        "hypervisor": "hypervisor" in flags,
        "logical_cpus": os.cpu_count(),
        "cores_available": available_cores(),
        "physical_cores": physical_cores(),
        "threads_used": threads if threads is not None else available_cores(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "versions": versions(),
        "git": git_commit(),
    }


def cache_dir() -> Path:
    """pofa-deploy's cache folder: $POFA_CACHE_DIR, else ~/.cache/pofa-deploy."""
    env = os.environ.get("POFA_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "pofa-deploy"
