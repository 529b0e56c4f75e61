"""Try a risky compile in a child process first, so that a native crash never reaches the user.

OpenVINO 2026.4's sparse-weight decompression (CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE) segfaults or
fails to compile at small shapes (hidden 64, 16 tokens: "No reorder available ... ab and undef"), and
always fails to compile when oneDNN's ISA is capped below AMX. A segfault cannot be caught in-process,
so before this process compiles a model with a sparse rate at a new shape, a child compiles the same
model with the same properties and runs one inference at that shape. The verdict is cached per model
file, OpenVINO version, CPU, properties and shape, so each combination costs one child process once.

When to probe (``POFA_PROBE``):
  auto (default)  only where the plugin can take its sparse path: a sparse rate below 1 is set and the
                  CPU has AMX. Elsewhere the plugin never enters the sparse code (it checks CPUID), so
                  there is nothing to guard.
  all             every guarded compile (tests use this to exercise the child on any machine)
  off             never (you accept the risk)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import environment
from .inputs import dummy_inputs
from .runtime_config import SPARSE_KEY, parse_rate

PROBE_ENV = "POFA_PROBE"
CACHE_FILE = "probes.json"
TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Verdict:
    """Did compiling and running once survive? ``reason`` says why not (one line)."""

    ok: bool
    reason: str = ""
    cached: bool = False


def needs_probe(config: dict[str, Any]) -> bool:
    mode = os.environ.get(PROBE_ENV, "auto").strip().lower()
    if mode in ("0", "off", "no", "never"):
        return False
    if mode in ("all", "always"):
        return True
    return parse_rate(config.get(SPARSE_KEY)) is not None and environment.has_amx()


def _key(xml: Path, config: dict[str, Any], batch: int, seq_len: int, static: bool) -> str:
    import openvino as ov

    h = hashlib.sha256()
    for f in (xml, xml.with_suffix(".bin")):
        st = f.stat() if f.is_file() else None
        h.update(f"{f.resolve()}:{st.st_size if st else 0}:{st.st_mtime_ns if st else 0};".encode())
    h.update(ov.get_version().encode())
    h.update(environment.cpu_model().encode())
    h.update(" ".join(sorted(environment.cpu_flags())).encode())
    h.update(os.environ.get("ONEDNN_MAX_CPU_ISA", "").encode())
    h.update(json.dumps({str(k): str(v) for k, v in config.items()}, sort_keys=True).encode())
    h.update(f"{batch}x{seq_len}:{'static' if static else 'dynamic'}".encode())
    return h.hexdigest()[:32]


def _load_cache(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(file: Path, key: str, verdict: Verdict) -> None:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        data = _load_cache(file)
        data[key] = {"ok": verdict.ok, "reason": verdict.reason}
        tmp = file.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, file)
    except OSError:
        pass  # an unwritable cache only costs a probe next time


def _child_command(xml: Path, config: dict[str, Any], batch: int, seq_len: int, static: bool) -> list[str]:
    return [sys.executable, "-m", "pofa_deploy.probe", str(xml), json.dumps(config, default=str), str(batch),
            str(seq_len), "static" if static else "dynamic"]


def probe(xml: Path, config: dict[str, Any], *, batch: int, seq_len: int, static: bool,
          timeout: float = TIMEOUT_S) -> Verdict:
    """Compile ``xml`` with ``config`` (reshaped to [batch, seq_len] when ``static``) and infer once at
    that shape in a child process; the verdict is cached unless the child timed out."""
    xml = Path(xml)
    key = _key(xml, config, batch, seq_len, static)
    file = environment.cache_dir() / CACHE_FILE
    known = _load_cache(file).get(key)
    if isinstance(known, dict) and "ok" in known:
        return Verdict(bool(known["ok"]), str(known.get("reason", "")), cached=True)
    root = str(Path(__file__).resolve().parents[1])  # importable from a plain checkout too
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    where = f"at batch {batch} x {seq_len} tokens"
    try:
        proc = subprocess.run(_child_command(xml, config, batch, seq_len, static), capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return Verdict(False, f"compiling and running it once {where} took over {timeout:.0f} s in a child process")
    if proc.returncode == 0:
        verdict = Verdict(True)
    elif proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        verdict = Verdict(False, f"OpenVINO's CPU plugin crashed ({name}) compiling or running it {where}")
    else:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "Error" in ln or "Exception" in ln), lines[-1] if lines else "")
        verdict = Verdict(False, f"OpenVINO failed to compile or run it {where} ({last[:200]})")
    _save(file, key, verdict)
    return verdict


def _child(xml: str, config: dict[str, Any], batch: int, seq_len: int, static: bool) -> None:
    import openvino as ov

    from .extension import add_if_needed

    core = ov.Core()
    add_if_needed(core, Path(xml))
    model = core.read_model(xml)
    names = [i.get_any_name() for i in model.inputs]
    if static:
        model.reshape({name: [batch, seq_len] for name in names})
    compiled = core.compile_model(model, "CPU", config)
    compiled.create_infer_request().infer(dummy_inputs(names, batch=batch, seq_len=seq_len))


if __name__ == "__main__":
    _child(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "static")
