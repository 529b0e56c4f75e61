"""Fine-tune a sparse checkpoint on a GLUE task and keep every zero exactly.

Data flow, top to bottom (``run.finetune``):
  1. check OUT early, seed everything, load the student (and an optional fine-tuned teacher)
     (models.py)
  2. read the task's train (and dev) examples with ``pofa_deploy.calibration.load_examples``
     (data.py)
  3. record the keep-mask of every encoder Linear (``pofa_deploy.masks``); with ``--prune-to``
     these masks instead grow monotonically on Zhu & Gupta's cubic schedule, by weight magnitude
  4. AdamW with linear warmup/decay; each step (step.py): loss (cross-entropy, or PoFA's
     distillation mix) -> backward -> zero masked gradients -> clip -> step -> (prune) -> re-apply masks
  5. every ``--save-every`` steps a resumable state goes to ``OUT.resume/`` (state.py: tensors only,
     loaded with ``weights_only=True``); ``--resume`` continues from it to the same result
  6. compare masks with weights per layer (``sparsity.compare``): one lost zero raises
     SparsityLostError and nothing is written; else save_pretrained + tokenizer +
     finetune_report.json (report.py) into a temporary sibling of OUT, re-check the saved file, rename
"""

from __future__ import annotations

from .options import OPTIONS, TASK_LABELS, Device, FinetuneOptions, GlueTask, parse_device
from .report import REPORT
from .run import Callback, finetune, main
from .state import RESUME_SUFFIX, resume_folder
from .step import distillation_loss

__all__ = [
    "OPTIONS",
    "REPORT",
    "RESUME_SUFFIX",
    "TASK_LABELS",
    "Callback",
    "Device",
    "FinetuneOptions",
    "GlueTask",
    "distillation_loss",
    "finetune",
    "main",
    "parse_device",
    "resume_folder",
]
