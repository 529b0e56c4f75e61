"""One optimiser step that keeps every zero, with its loss, optimiser and step plan.

A step: loss (cross-entropy, or PoFA's distillation mix) -> backward -> zero the masked gradients
-> clip -> AdamW step -> learning-rate schedule -> (with --prune-to, at planned steps: grow the masks
by magnitude on the cubic schedule and clear the optimiser state they cover) -> re-apply the masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DataError, InputError
from ..masks import (
    Masks,
    apply_masks_,
    clear_optimizer_state_,
    cubic_sparsity,
    mask_grads_,
    prune_,
    prune_steps,
)
from .data import Encoder, TaskData, batch_index
from .options import FinetuneOptions

if TYPE_CHECKING:
    import torch


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
                      *, alpha: float, temperature: float) -> torch.Tensor:
    """alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T)),
    batch-mean; plain cross-entropy without a teacher."""
    import torch.nn.functional as F

    ce = F.cross_entropy(student_logits, labels)
    if teacher_logits is None:
        return ce
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                  reduction="batchmean", log_target=True)
    return alpha * ce + (1.0 - alpha) * t * t * kl


@dataclass(frozen=True)
class Plan:
    """How many steps, and (with --prune-to) the first and last pruning step and the mask updates."""

    total: int
    per_epoch: int
    prune_first: int = 0
    prune_last: int = 0
    prune_at: tuple[int, ...] = ()

    @classmethod
    def make(cls, options: FinetuneOptions, examples: int) -> Plan:
        per_epoch = math.ceil(examples / options.batch_size)
        total = options.max_steps or max(1, math.ceil(options.epochs * per_epoch))
        if options.prune_to is None:
            return cls(total, per_epoch)
        first, last, at = prune_steps(total, start=options.prune_start, end=options.prune_end,
                                      every=options.prune_every)
        return cls(total, per_epoch, first, last, tuple(at))


def refuse_prune_below(options: FinetuneOptions, masks: Masks, initial: dict[str, float]) -> None:
    """Masks only grow: --prune-to below a layer's current sparsity is an InputError."""
    if options.prune_to is None:
        return
    over = {n: s for n, s in initial.items() if s > options.prune_to + 0.5 / masks[n].numel()}
    if over:
        name, s = next(iter(over.items()))
        raise InputError(f"--prune-to {options.prune_to}: {len(over)} encoder Linears are already "
                         f"sparser (e.g. {name}: {s:.2%}); masks only grow, give a larger --prune-to")


def make_optimizer(model: torch.nn.Module, options: FinetuneOptions, total: int) -> tuple[Any, Any]:
    """AdamW (no weight decay on biases and LayerNorms) and a linear warmup / linear decay schedule."""
    import torch

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]  # biases, LayerNorms
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": options.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=options.lr)
    warmup = round(options.warmup * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class Trainer:
    """Everything one optimiser step needs; ``masks`` is updated in place of the old ones by pruning."""

    options: FinetuneOptions
    model: Any
    encoder: Encoder
    teacher: Any | None  # the teacher's model (frozen), or None
    teacher_encoder: Encoder | None
    train: TaskData
    labels: torch.Tensor  # every training label, on the model's device
    optimizer: Any
    scheduler: Any
    plan: Plan
    initial: dict[str, float]  # each layer's sparsity at load: where the cubic schedule starts
    masks: Masks

    def step(self, done: int) -> float:
        """Run optimiser step ``done + 1`` (``done`` steps are behind); returns its loss."""
        import torch

        options = self.options
        index = batch_index(options.seed, done, len(self.train), options.batch_size)
        logits = self.model(**self.encoder(self.train, index)).logits
        t_logits = None
        if self.teacher is not None and self.teacher_encoder is not None and options.distill_alpha < 1.0:
            with torch.no_grad():
                t_logits = self.teacher(**self.teacher_encoder(self.train, index)).logits
        loss = distillation_loss(logits, t_logits, self.labels[index], alpha=options.distill_alpha,
                                 temperature=options.temperature)
        if not torch.isfinite(loss):
            raise DataError(options.data, f"training loss became {float(loss)} at step {done + 1}; lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        mask_grads_(self.model, self.masks)
        if options.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), options.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        if done + 1 in self.plan.prune_at and options.prune_to is not None:
            self._prune(done + 1, options.prune_to)
        apply_masks_(self.model, self.masks)
        return float(loss.detach())

    def _prune(self, step: int, final: float) -> None:
        plan = self.plan
        targets = {n: cubic_sparsity(step, initial=self.initial[n], final=final, start=plan.prune_first,
                                     end=plan.prune_last) for n in self.masks}
        self.masks = prune_(self.model, self.masks, targets)
        clear_optimizer_state_(self.optimizer, self.model, self.masks)
