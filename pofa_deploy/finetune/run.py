"""The orchestration of ``pofa-deploy finetune``: set up, train step by step, guard the zeros, save."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checkpoint import Checkpoint
from ..errors import InputError
from ..masks import apply_masks_, check_zeros, encoder_linears, record_masks, sparsities
from ..outputs import check_writable, staged_output
from ..progress import Progress, printer, silent
from ..sparsity import layer_table
from .data import Encoder, TaskData, accuracy, has_dev, load_split
from .models import load_student, load_teacher, seed_everything, torch_device
from .options import FinetuneOptions
from .report import REPORT, Run, build_report, check_saved, clock, raise_if_lost, summary, weights
from .state import TrainState, load_resume, resume_folder, save_resume
from .step import Plan, Trainer, make_optimizer, refuse_prune_below

if TYPE_CHECKING:
    import torch

# ``callback(event, step, model)``: event "step" after every optimiser step (masks applied),
# "save" right before the zero check that guards the final save.
Callback = Callable[[str, int, "torch.nn.Module"], None]
PROGRESS_EVERY_S = 10.0


def finetune(options: FinetuneOptions, *, callback: Callback | None = None,
             progress: bool | Progress = True) -> Path:
    """Fine-tune ``options.model`` on ``options.task`` keeping every encoder zero; returns OUT.

    Raises SparsityLostError (nothing written at OUT) when a masked weight is nonzero at the end.
    ``callback(event, step, model)`` is called with "step" after each optimiser step and "save"
    right before the final zero check; ``progress`` prints progress lines to stderr (or is the
    ``progress.Progress`` to tell).
    """
    import torch

    started = time.perf_counter()
    say = progress if callable(progress) else printer() if progress else silent
    out = Path(options.output)
    sources = {"MODEL": options.model, "--data": options.data, "--teacher": options.teacher}
    check_writable(out, overwrite=options.overwrite, kind=REPORT, sources=sources)
    resume_dir = resume_folder(out)
    if options.resume and not (resume_dir / "state.pt").is_file():
        raise InputError(f"--resume: no resumable state at {resume_dir}; run without --resume")
    torch.set_num_threads(options.threads or os.cpu_count() or 1)
    device = torch_device(options)
    seed_everything(options.seed)

    say("loading the model" + (" and the teacher" if options.teacher else "") + f" and the {options.task} data")
    student = load_student(options)
    teacher = load_teacher(options) if options.teacher else None
    train = load_split(options, "train", options.max_train_samples)
    dev = load_split(options, "dev", options.max_eval_samples) if has_dev(options) else None
    trainer = _trainer(options, student, teacher, train, device)
    model = trainer.model
    rows_before = layer_table(weights(encoder_linears(model)), eligible_if_int8=True)

    state = TrainState()
    if options.resume:
        trainer.masks, state = load_resume(resume_dir, model=model, optimizer=trainer.optimizer,
                                           scheduler=trainer.scheduler, options=options, initial=trainer.masks)
        apply_masks_(model, trainer.masks)
        say(f"resuming from step {state.step} ({resume_dir})")
    elapsed_before = state.elapsed
    say(f"training {trainer.plan.total - state.step} steps on {device}")
    _train(trainer, state, dev=dev, resume_dir=resume_dir, say=say, callback=callback)

    model.eval()
    if dev is not None:
        state.evals.append((state.step, accuracy(model, trainer.encoder, dev, options.batch_size)))
    if callback is not None:
        callback("save", state.step, model)
    say(f"checking every zero and saving to {out}")
    checks = check_zeros(model, trainer.masks)
    raise_if_lost(checks, "in the trained model")
    rows_after = layer_table(weights(encoder_linears(model)), eligible_if_int8=True)
    with staged_output(out, overwrite=options.overwrite, kind=REPORT, sources=sources) as tmp:
        model.save_pretrained(str(tmp))
        trainer.encoder.tokenizer.save_pretrained(str(tmp))
        raise_if_lost(check_saved(tmp, trainer.masks), f"in the saved {tmp.name}/*.safetensors")
        run = Run(options=options, student=student, teacher=teacher, device=device, plan=trainer.plan,
                  state=state, train_examples=len(train), dev_examples=None if dev is None else len(dev),
                  time_s=time.perf_counter() - started + elapsed_before, rows_before=rows_before,
                  rows_after=rows_after, checks=checks)
        (tmp / REPORT).write_text(json.dumps(build_report(run), indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(resume_dir, ignore_errors=True)
    return out


def _trainer(options: FinetuneOptions, student: Checkpoint, teacher: Checkpoint | None, train: TaskData,
             device: torch.device) -> Trainer:
    """Move the models to ``device``, record the masks, plan the steps and make the optimiser."""
    import torch

    model: Any = student.model.to(device)
    model.train()
    tokenizer: Any = student.tokenizer
    teacher_encoder = None
    if teacher is not None:
        teacher.model.to(device)
        own = teacher.tokenizer
        shared = own is None or own.get_vocab() == tokenizer.get_vocab()
        teacher_encoder = Encoder(tokenizer if shared else own, teacher.model, options.seq_len, device)
    masks = record_masks(model)
    initial = sparsities(masks)
    refuse_prune_below(options, masks, initial)
    plan = Plan.make(options, len(train))
    optimizer, scheduler = make_optimizer(model, options, plan.total)
    return Trainer(options=options, model=model, encoder=Encoder(tokenizer, model, options.seq_len, device),
                   teacher=None if teacher is None else teacher.model, teacher_encoder=teacher_encoder,
                   train=train, labels=torch.from_numpy(train.labels).to(device), optimizer=optimizer,
                   scheduler=scheduler, plan=plan, initial=initial, masks=masks)


def _train(trainer: Trainer, state: TrainState, *, dev: TaskData | None, resume_dir: Path, say: Progress,
           callback: Callback | None) -> None:
    """Step until the plan's total, with dev evaluations, progress lines and resumable states between."""
    options, total = trainer.options, trainer.plan.total
    session_start = time.perf_counter()
    elapsed_before = state.elapsed
    last_print = 0.0
    while state.step < total:
        loss = trainer.step(state.step)
        state.step += 1
        state.losses.append(loss)
        state.elapsed = elapsed_before + time.perf_counter() - session_start
        if dev is not None and options.eval_every and state.step % options.eval_every == 0 and state.step < total:
            state.evals.append((state.step, accuracy(trainer.model, trainer.encoder, dev, options.batch_size)))
            say(f"step {state.step}/{total}  dev accuracy {state.evals[-1][1]:.4f}")
        now = time.perf_counter()
        if now - last_print >= PROGRESS_EVERY_S or state.step in (1, total):
            last_print = now
            eta = (now - session_start) / (state.step - (state.resumed_from or 0)) * (total - state.step)
            say(f"  step {state.step}/{total}  loss {loss:.4f}  elapsed {clock(state.elapsed)}  ETA {clock(eta)}")
        if options.save_every and state.step % options.save_every == 0 and state.step < total:
            save_resume(resume_dir, model=trainer.model, masks=trainer.masks, optimizer=trainer.optimizer,
                        scheduler=trainer.scheduler, progress=state, options=options)
        if callback is not None:
            callback("step", state.step, trainer.model)


def main(options: FinetuneOptions) -> int:
    out = finetune(options)
    report = json.loads((out / REPORT).read_text(encoding="utf-8"))
    print(summary(options, report, out), file=sys.stderr)
    return 0
