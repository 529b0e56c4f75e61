"""The work folder ``OUTPUT.parts/``: fixed shards written atomically, a manifest pinning what they came from,
resume, and the final concatenation into OUTPUT.

Rows are cut into shards of ``--shard-size`` consecutive rows. A scored shard is written to a temporary file
in the work folder, flushed to disk and renamed to ``shard-NNNNNN.EXT``: a shard file exists only when
complete, so a run killed at any moment (Ctrl-C, SIGTERM, a power cut) leaves only whole shards. A rerun
skips the shards whose file is there with the expected number of lines.

``manifest.json`` pins what the shards depend on: the input's SHA-256, the model folder's files (name, size,
modification time: hashing a few hundred MB of IR on every run would cost more than it protects), the label
names, ``--shard-size``, ``--batch-size`` and the output format. A work folder left by a run on anything else
is refused (one line naming what changed; ``--overwrite`` discards it and starts again): mixing shards of
two models or two inputs would silently write a wrong file. ``--overwrite`` does not throw away matching
shards, so rerunning the interrupted command line as it was still resumes.

OUTPUT itself follows the spirit of ``outputs.check_writable``: an existing OUTPUT is replaced only with
``--overwrite`` and only when pofa-deploy predict wrote it (``corpus.written_by_predict``); a work folder
without our manifest is never deleted. At the end the shards are concatenated into a temporary file beside
OUTPUT, which is renamed over it (``os.replace``: readers see the old file or the new one, never half), and
the work folder is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputExistsError
from .corpus import Corpus, output_format, written_by_predict

MANIFEST = "manifest.json"
KIND = "pofa-deploy predict shards"
VERSION = 1
PARTS_SUFFIX = ".parts"


@dataclass(frozen=True)
class Shard:
    number: int  # 0-based
    start: int  # first row (global index)
    stop: int  # one past the last row

    @property
    def rows(self) -> int:
        return self.stop - self.start


def cut(rows: int, shard_size: int) -> list[Shard]:
    return [Shard(k, start, min(start + shard_size, rows)) for k, start in enumerate(range(0, rows, shard_size))]


def parts_folder(output: Path) -> Path:
    return output.with_name(output.name + PARTS_SUFFIX)


def model_fingerprint(folder: Path) -> dict[str, list[int]]:
    """name -> [size, mtime_ns] of every file directly in the model folder (IR, config, tokenizer, tuning)."""
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(folder.iterdir()) if p.is_file()}


def manifest_for(corpus: Corpus, model: Path, label_names: Sequence[str], *, shard_size: int, batch_size: int,
                 fmt: str) -> dict[str, Any]:
    return {
        "kind": KIND,
        "version": VERSION,
        "input": {"path": str(corpus.path.resolve()), "sha256": corpus.sha256, "rows": len(corpus)},
        "model": {"path": str(model.resolve()), "files": model_fingerprint(model), "labels": list(label_names)},
        "shard_size": shard_size,
        "batch_size": batch_size,
        "format": fmt,
    }


def _what_changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The first difference between two manifests, in words (for the refusal message)."""
    if old.get("kind") != KIND or old.get("version") != VERSION:
        return "it was written by another pofa-deploy version"
    if old.get("input", {}).get("sha256") != new["input"]["sha256"]:
        return f"the input changed (it was {old.get('input', {}).get('path')})"
    if old.get("model") != new["model"]:
        return f"the model changed (it was {old.get('model', {}).get('path')})"
    for key, flag in (("shard_size", "--shard-size"), ("batch_size", "--batch-size")):
        if old.get(key) != new[key]:
            return f"it used {flag} {old.get(key)}"
    return f"it was writing {old.get('format')}"


def check_output(output: Path, source: Path, *, overwrite: bool) -> None:
    """Fail before any slow work when OUTPUT may not be written (see the module docstring)."""
    if output.resolve() == source.resolve():
        raise InputError(f"--output {output} is the input file; choose another --output")
    if output.is_dir():
        raise OutputExistsError(f"--output {output} is a folder; give a file name ending in .jsonl or .tsv")
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"{output} already exists; choose another --output or pass --overwrite to "
                                    "replace it")
        if not written_by_predict(output, output_format(output)):
            raise OutputExistsError(f"{output} was not written by pofa-deploy predict (its first line is not a "
                                    "prediction); choose another --output")
    parent = output.parent if str(output.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{output.name}.probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"--output {output}: cannot write in {parent} ({exc.strerror or exc}); "
                         "choose another --output") from None


@dataclass
class Parts:
    """An open work folder for one (input, model, settings) manifest."""

    folder: Path
    suffix: str  # the output's suffix: a shard holds exactly the bytes it adds to OUTPUT

    def path(self, shard: Shard) -> Path:
        return self.folder / f"shard-{shard.number:06d}{self.suffix}"

    def finished(self, shard: Shard) -> bool:
        """The shard's file is there and whole (one line per row; a copied-in truncated file is rescored)."""
        path = self.path(shard)
        if not path.is_file():
            return False
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) == shard.rows

    def write(self, shard: Shard, data: bytes) -> None:
        with _atomic_file(self.path(shard)) as f:
            f.write(data)


def open_parts(output: Path, manifest: dict[str, Any], *, overwrite: bool) -> Parts:
    """The work folder for ``manifest``: created, reused (resume), or refused/restarted (module docstring)."""
    folder = parts_folder(output)
    if folder.exists() or folder.is_symlink():
        old = _read_manifest(folder)
        if old is None:
            raise OutputExistsError(f"{folder} exists and was not written by pofa-deploy predict (no {MANIFEST}); "
                                    "move it away or choose another --output")
        if old != manifest:
            if not overwrite:
                raise OutputExistsError(f"{folder} holds an unfinished run that cannot be resumed: "
                                        f"{_what_changed(old, manifest)}; pass --overwrite to discard it and start "
                                        "again")
            shutil.rmtree(folder)
    if not folder.exists():
        folder.mkdir(parents=True)
        with _atomic_file(folder / MANIFEST) as f:
            f.write((json.dumps(manifest, indent=1) + "\n").encode("utf-8"))
    return Parts(folder, output.suffix)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == KIND else None


def finish(parts: Parts, shards: Sequence[Shard], output: Path, head: str, *, source: Path,
           overwrite: bool) -> None:
    """Concatenate the shards (after ``head``) into OUTPUT atomically, then remove the work folder."""
    check_output(output, source, overwrite=overwrite)  # OUTPUT may have appeared while we were scoring
    with _atomic_file(output) as out:
        out.write(head.encode("utf-8"))
        for shard in shards:
            with parts.path(shard).open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    shutil.rmtree(parts.folder)


def _file_mode() -> int:
    """0666 less the umask: the mode ``open()`` would have given the file."""
    umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[Any]:
    """A binary file written beside ``path`` and renamed onto it only when complete (and on disk)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the rename must not reach the disk before the data does
        os.chmod(tmp, _file_mode())  # mkstemp's 0600 would make OUTPUT private to this user
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
