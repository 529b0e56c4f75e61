"""Find and load a Hugging Face checkpoint safely, and say what it is.

Safety rules: weights are read only as safetensors or through ``torch.load(weights_only=True)``,
which refuses any pickle that would construct arbitrary objects (and so never runs its code);
``trust_remote_code`` stays off unless the caller asks. Every tensor is checked for NaN/Inf and
every file for truncation *before* transformers builds the model, so the user gets a message
naming the file instead of a stack trace from deep inside a loader.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, HubError, InputError

if TYPE_CHECKING:
    import numpy as np
    import torch


class Task(StrEnum):
    TEXT_CLASSIFICATION = "text-classification"
    QUESTION_ANSWERING = "question-answering"
    TOKEN_CLASSIFICATION = "token-classification"
    FEATURE_EXTRACTION = "feature-extraction"
    FILL_MASK = "fill-mask"


# task -> (transformers auto class, optimum-intel OVModel class)
TASK_CLASSES: dict[Task, tuple[str, str]] = {
    Task.TEXT_CLASSIFICATION: ("AutoModelForSequenceClassification", "OVModelForSequenceClassification"),
    Task.QUESTION_ANSWERING: ("AutoModelForQuestionAnswering", "OVModelForQuestionAnswering"),
    Task.TOKEN_CLASSIFICATION: ("AutoModelForTokenClassification", "OVModelForTokenClassification"),
    Task.FEATURE_EXTRACTION: ("AutoModel", "OVModelForFeatureExtraction"),
    Task.FILL_MASK: ("AutoModelForMaskedLM", "OVModelForMaskedLM"),
}

# The architectures pofa-deploy knows how to export and whose Linear names it can map.
SUPPORTED_MODEL_TYPES = ("bert", "distilbert")

_ARCH_SUFFIX_TO_TASK = {
    "ForSequenceClassification": Task.TEXT_CLASSIFICATION,
    "ForQuestionAnswering": Task.QUESTION_ANSWERING,
    "ForTokenClassification": Task.TOKEN_CLASSIFICATION,
    "ForMaskedLM": Task.FILL_MASK,
    "ForPreTraining": Task.FILL_MASK,
    "Model": Task.FEATURE_EXTRACTION,
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


@dataclass
class Checkpoint:
    """A loaded, validated checkpoint: model in eval mode, FP32, on the CPU."""

    path: Path
    source: str
    model_type: str
    task: Task
    model: Any  # a transformers PreTrainedModel (torch.nn.Module)
    config: Any
    tokenizer: Any | None
    weight_files: list[Path]
    synthetic: dict[str, Any] | None = None
    newly_initialised: list[str] = field(default_factory=list)

    def linear_weights(self) -> dict[str, np.ndarray]:
        return linear_weights(self.model)


def linear_weights(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Every ``nn.Linear`` weight by module path, as float32 numpy ([out, in], PyTorch layout)."""
    import torch

    return {
        name: module.weight.detach().to(torch.float32).cpu().numpy()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }


def resolve(source: str | Path) -> Path:
    """A local checkpoint folder for ``source``: the folder itself, or a hub download of an id."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"MODEL {source}: is a file; give the checkpoint folder that holds config.json")
        return path
    text = str(source)
    if _HUB_ID.match(text) and not text.startswith((".", "/")):
        return _download(text)
    raise InputError(f"MODEL {source}: no such folder; give a local checkpoint folder or a hub id such as "
                     "Intel/distilbert-base-uncased-sparse-90-unstructured-pruneofa")


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        allow = ["*.json", "*.safetensors", "*.txt", "*.model", "pytorch_model*.bin"]
        local = snapshot_download(repo_id, allow_patterns=allow)
    except Exception as exc:  # network, auth, missing repo: all end the same way for the user
        raise HubError(f"MODEL {repo_id}: could not fetch it from the Hugging Face hub "
                       f"({type(exc).__name__}); check the id and network, or pass a local folder") from exc
    return Path(local)


def read_config(path: Path) -> dict[str, Any]:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{path}: no config.json; a Hugging Face checkpoint folder needs one "
                              "(save the model with save_pretrained)")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{cfg_file}: not valid JSON ({exc}); restore the file from the source") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_file}: expected a JSON object; restore the file from the source")
    return cfg


def check_architecture(path: Path, cfg: dict[str, Any]) -> str:
    model_type = str(cfg.get("model_type", ""))
    if model_type not in SUPPORTED_MODEL_TYPES:
        shown = model_type or "(none)"
        raise CheckpointError(f"{path / 'config.json'}: unsupported architecture model_type={shown!r}; "
                              f"pofa-deploy converts {', '.join(SUPPORTED_MODEL_TYPES)} checkpoints")
    return model_type


def infer_task(path: Path, cfg: dict[str, Any]) -> Task:
    archs = cfg.get("architectures") or []
    for arch in archs:
        for suffix, task in _ARCH_SUFFIX_TO_TASK.items():
            if str(arch).endswith(suffix):
                return task
    raise InputError(f"{path / 'config.json'}: cannot infer the task from architectures={archs}; "
                     f"pass --task ({', '.join(t.value for t in Task)})")


def weight_files(path: Path) -> list[Path]:
    files = sorted(p for pattern in _WEIGHT_PATTERNS for p in path.glob(pattern))
    safes = [p for p in files if p.suffix == ".safetensors"]
    files = safes or files  # transformers prefers safetensors when both exist; check what it loads
    if not files:
        raise CheckpointError(f"{path}: no weights (model.safetensors or pytorch_model.bin); "
                              "save the model with save_pretrained")
    return files


def validate_weights(files: list[Path]) -> None:
    """Open every weight file the safe way and check every tensor is finite.

    Raises CheckpointError naming the file (and tensor) for truncation, corruption, an unsafe pickle
    or NaN/Inf values.
    """
    import torch

    for file in files:
        for name, tensor in _iter_tensors(file):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                bad = int((~torch.isfinite(tensor)).sum())
                raise CheckpointError(f"{file}: tensor {name!r} has {bad} NaN/Inf values; the checkpoint is "
                                      "broken, re-export or re-train it")


def _iter_tensors(file: Path) -> Any:
    import pickle
    import struct

    import torch

    if file.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open has keys(), not __iter__
                    yield key, handle.get_tensor(key)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{file}: truncated or corrupt safetensors file ({exc}); "
                                  "download or save it again") from None
        return
    try:
        state = torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(str(exc))
        if not _is_unsafe_pickle(reason):
            raise CheckpointError(f"{file}: truncated or corrupt, not a valid PyTorch weight file "
                                  f"({reason[:120]}); download or save it again") from None
        raise CheckpointError(f"{file}: refused, this pickle would construct arbitrary Python objects "
                              f"(weights-only loading rejected it: {reason[:120]}); "
                              "re-save the weights as safetensors from a trusted environment") from None
    except (RuntimeError, EOFError, OSError, ValueError, struct.error, AssertionError, TypeError,
            IndexError, KeyError) as exc:  # what damaged bytes raise inside torch.load
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise CheckpointError(f"{file}: truncated or corrupt, not a valid PyTorch weight file "
                              f"({reason[:120]}); download or save it again") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: expected a state dict of tensors; save it with save_pretrained")
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            yield key, value


# What torch's weights-only unpickler says when a well-formed pickle asks for an object it will not
# build (code would run under a plain pickle.load). Anything else it rejects is damaged data.
_UNSAFE_PICKLE = re.compile(r"Unsupported global: GLOBAL (?P<name>\S+) was not an allowed global"
                            r"|Trying to load unsupported GLOBAL (?P<blocked>\S+) whose module"
                            r"|Trying to call reduce for|Can only create new object for|Can only build ")
_DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _unpickler_reason(message: str) -> str:
    """The weights-only unpickler's own complaint, without torch's generic advice around it."""
    match = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    if match:
        return match.group(1).strip()
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if lines else "unreadable pickle"


def _is_unsafe_pickle(reason: str) -> bool:
    """True for a real pickle that names arbitrary objects; False for random or damaged bytes (which
    fail on an unknown opcode, or at best name a 'global' that is no Python name)."""
    match = _UNSAFE_PICKLE.search(reason)
    if match is None:
        return False
    name = match.group("name") or match.group("blocked")
    return name is None or bool(_DOTTED_NAME.match(name))


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports; what matters from them (missing keys) is returned instead."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def has_tokenizer(path: Path) -> bool:
    return any((path / name).is_file() for name in _TOKENIZER_FILES)


def load_checkpoint(source: str | Path, *, task: Task | None = None,
                    trust_remote_code: bool = False, num_labels: int | None = None) -> Checkpoint:
    """Resolve, validate and load ``source`` for ``task`` (inferred from config.json when None).

    ``num_labels`` sets the size of a classification head that the checkpoint does not have yet."""
    path = resolve(source)
    cfg = read_config(path)
    # With remote code allowed, the checkpoint's own code defines the architecture.
    model_type = str(cfg.get("model_type", "")) if trust_remote_code else check_architecture(path, cfg)
    task = Task(task) if task is not None else infer_task(path, cfg)
    files = weight_files(path)
    validate_weights(files)

    import torch
    import transformers

    auto_cls = getattr(transformers, TASK_CLASSES[task][0])
    extra = {"num_labels": num_labels} if num_labels is not None else {}
    try:
        with quiet_transformers():
            model, info = auto_cls.from_pretrained(
                str(path), trust_remote_code=trust_remote_code, dtype=torch.float32, output_loading_info=True,
                **extra,
            )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: transformers could not build a {task.value} model from it "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    model.eval()
    tokenizer = None
    if has_tokenizer(path):
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    return Checkpoint(
        path=path,
        source=str(source),
        model_type=model_type,
        task=task,
        model=model,
        config=model.config,
        tokenizer=tokenizer,
        weight_files=files,
        synthetic=cfg.get("pofa_synthetic"),
        newly_initialised=sorted(info.get("missing_keys", [])),
    )
