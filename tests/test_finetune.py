"""Mask-keeping fine-tuning: zeros kept exactly, distillation, gradual pruning, guard, resume."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pofa_deploy.checkpoint import Task, load_checkpoint
from pofa_deploy.errors import DataError, InputError, OutputExistsError, SparsityLostError
from pofa_deploy.finetune import (
    REPORT,
    Device,
    FinetuneOptions,
    GlueTask,
    distillation_loss,
    finetune,
    parse_device,
    resume_folder,
)
from pofa_deploy.masks import cubic_sparsity, encoder_linears, prune_mask, prune_steps
from pofa_deploy.options import add_options, from_namespace, new_parser
from pofa_deploy.synth import Arch, write_checkpoint

WORDS = {1: ["good", "great", "best", "love", "funny", "fine"], 0: ["bad", "boring", "worst", "hate", "not"]}


def _write_tsv(path: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = ["sentence\tlabel"]
    for i in range(rows):
        label = i % 2
        words = [*rng.choice(WORDS[label], size=3), *rng.choice(["the", "movie", "film", "story"], 2)]
        rng.shuffle(words)
        lines.append(f"{' '.join(words)} .\t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("finetune-assets")
    data = root / "sst2"
    data.mkdir()
    _write_tsv(data / "train.tsv", 64, seed=0)
    _write_tsv(data / "dev.tsv", 16, seed=1)
    def tiny(name: str, *, sparsity: float, seed: int, num_labels: int = 2) -> Path:
        return write_checkpoint(root / name, Arch.TINY_DISTILBERT, task=Task.TEXT_CLASSIFICATION,
                                num_labels=num_labels, sparsity=sparsity, seed=seed)

    return {
        "data": data,
        "sparse": tiny("sparse", sparsity=0.9, seed=0),
        "dense": tiny("dense", sparsity=0.0, seed=3),
        "teacher1": tiny("teacher1", sparsity=0.0, seed=1),
        "teacher2": tiny("teacher2", sparsity=0.0, seed=2),
        "teacher3labels": tiny("teacher3", sparsity=0.0, seed=1, num_labels=3),
    }


def _options(assets: dict[str, Path], out: Path, **kw: Any) -> FinetuneOptions:
    base: dict[str, Any] = {"model": str(assets["sparse"]), "task": "sst2", "data": assets["data"],
                            "output": out, "max_steps": 6, "batch_size": 8, "lr": 1e-3, "warmup": 0.0,
                            "save_every": 0, "threads": 1, "seed": 0}
    base.update(kw)
    return FinetuneOptions(**base)


def _weights(folder: Path) -> dict[str, np.ndarray]:
    model = load_checkpoint(folder, task=Task.TEXT_CLASSIFICATION).model
    return {n: m.weight.detach().numpy().copy() for n, m in encoder_linears(model).items()}


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / REPORT).read_text(encoding="utf-8"))


def test_zeros_kept_exactly_and_output_loads(assets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    lines: list[str] = []
    assert finetune(_options(assets, out, eval_every=3), progress=lines.append) == out
    assert lines[0].startswith("loading the model") and "training 6 steps on cpu" in lines
    assert "  step 6/6  loss " in "\n".join(lines) and "step 3/6  dev accuracy " in "\n".join(lines)
    before, after = _weights(assets["sparse"]), _weights(out)  # load_checkpoint reads the output
    assert before.keys() == after.keys() and len(before) == 12
    changed = 0
    for name, w in before.items():
        assert np.array_equal(w == 0, after[name] == 0), name  # same zero positions, so same count
        assert int((w == 0).sum()) == round(0.9 * w.size)
        assert not np.signbit(after[name][after[name] == 0]).any()  # plain +0.0, no -0.0
        changed += int((w != after[name]).sum())
    assert changed > 0.5 * sum((w != 0).sum() for w in before.values())  # kept weights did train
    report = _report(out)
    assert report["zero_check"]["lost"] == 0 and report["zero_check"]["reference"] == "zeros at load"
    assert report["steps"] == 6 and len(report["train_loss"]) == 6 and report["seed"] == 0
    assert report["totals_before"]["zeros"] == report["totals_after"]["zeros"]
    assert report["dev"]["examples"] == 16 and [s for s, _ in report["dev"]["history"]] == [3, 6]
    assert 0.0 <= report["dev"]["accuracy"] <= 1.0
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "negative", "1": "positive"}
    assert not resume_folder(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folders left


def test_distillation_loss_formula() -> None:
    torch.manual_seed(0)
    s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    temp, alpha = 2.0, 0.3
    p_t = torch.softmax(t / temp, -1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(s / temp, -1))).sum(-1).mean()
    want = alpha * torch.nn.functional.cross_entropy(s, y) + (1 - alpha) * temp**2 * kl
    assert torch.allclose(distillation_loss(s, t, y, alpha=alpha, temperature=temp), want, atol=1e-6)
    assert torch.allclose(distillation_loss(s, None, y, alpha=alpha, temperature=temp),
                          torch.nn.functional.cross_entropy(s, y))
    assert float(distillation_loss(s, s, y, alpha=0.0, temperature=temp)) == pytest.approx(0.0, abs=1e-6)


def test_distillation_uses_the_teacher(assets: dict[str, Path], tmp_path: Path) -> None:
    curves = []
    for i, teacher in enumerate(("teacher1", "teacher2")):
        out = tmp_path / f"kd{i}"
        finetune(_options(assets, out, teacher=str(assets[teacher]), distill_alpha=0.0, max_steps=2),
                 progress=False)
        report = _report(out)
        assert report["teacher"]["alpha"] == 0.0 and report["zero_check"]["lost"] == 0
        curves.append([loss for _, loss in report["train_loss"]])
    assert curves[0] != curves[1]  # with alpha=0 the loss is the teacher term alone


def test_teacher_label_count_must_match(assets: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="3 labels but sst2 has 2"):
        finetune(_options(assets, tmp_path / "out", teacher=str(assets["teacher3labels"])), progress=False)
    assert not (tmp_path / "out").exists()


def test_cubic_schedule_and_monotone_prune_mask() -> None:
    assert cubic_sparsity(0, initial=0.0, final=0.9, start=10, end=20) == 0.0
    assert cubic_sparsity(15, initial=0.0, final=0.9, start=10, end=20) == pytest.approx(0.9 * (1 - 0.5**3))
    assert cubic_sparsity(25, initial=0.0, final=0.9, start=10, end=20) == 0.9
    assert prune_steps(100, start=0.1, end=0.7, every=25) == (10, 70, [35, 60, 70])
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 16)).astype(np.float32)
    keep = np.ones_like(w, dtype=bool)
    keep[0, :5] = False  # already pruned, even though these weights are large
    w[0, :5] = 0.0
    for s in (0.1, 0.5, 0.9):
        new = prune_mask(w, keep, s)
        assert int((~new).sum()) == round(s * w.size) and not (new & ~keep).any()
        keep = new
    with pytest.raises(ValueError):
        prune_mask(w, keep, 0.5)


def test_gradual_pruning_reaches_target_with_monotone_masks(assets: dict[str, Path], tmp_path: Path) -> None:
    zero_sets: list[dict[str, np.ndarray]] = []

    def record(event: str, step: int, model: torch.nn.Module) -> None:
        if event == "step":
            zero_sets.append({n: (m.weight.detach().numpy() == 0) for n, m in encoder_linears(model).items()})

    out = tmp_path / "pruned"
    finetune(_options(assets, out, model=str(assets["dense"]), prune_to=0.75, max_steps=10, prune_start=0.2,
                      prune_end=0.6, prune_every=2), callback=record, progress=False)
    assert len(zero_sets) == 10
    for earlier, later in itertools.pairwise(zero_sets):
        for name in earlier:
            assert not (earlier[name] & ~later[name]).any(), name  # once pruned, stays pruned
    partial = [np.mean(z) for z in (zero_sets[3]["distilbert.transformer.layer.0.ffn.lin1"],)]
    assert 0.0 < partial[0] < 0.75  # intermediate sparsity between the schedule's ends
    for name, w in _weights(out).items():
        assert int((w == 0).sum()) == round(0.75 * w.size), name
        assert np.array_equal(w == 0, zero_sets[-1][name])
    report = _report(out)
    assert report["pruning"] == {"target": 0.75, "schedule": "cubic (Zhu & Gupta 2017), magnitude, per layer",
                                 "start_step": 2, "end_step": 6, "mask_updates": 2}
    assert report["zero_check"]["reference"] == "final pruning masks" and report["zero_check"]["lost"] == 0
    assert report["totals_before"]["sparsity"] == 0.0 and report["totals_after"]["sparsity"] == 0.75


def test_lost_zero_is_refused_and_nothing_written(assets: dict[str, Path], tmp_path: Path) -> None:
    def inject(event: str, step: int, model: torch.nn.Module) -> None:
        if event == "save":
            w = encoder_linears(model)["distilbert.transformer.layer.1.attention.v_lin"].weight
            row, col = (w == 0).nonzero()[0].tolist()
            with torch.no_grad():
                w[row, col] = 0.5

    out = tmp_path / "out"
    with pytest.raises(SparsityLostError, match=r"1 zeros lost .*layer\.1\.attention\.v_lin"):
        finetune(_options(assets, out, max_steps=2), callback=inject, progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


class _Stop(Exception):
    pass


def test_resume_gives_the_uninterrupted_result(assets: dict[str, Path], tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    finetune(_options(assets, straight, max_steps=8, warmup=0.25), progress=False)

    def stop(event: str, step: int, model: torch.nn.Module) -> None:
        if event == "step" and step == 4:
            raise _Stop

    out = tmp_path / "resumed"
    options = _options(assets, out, max_steps=8, warmup=0.25, save_every=4)
    with pytest.raises(_Stop):
        finetune(options, callback=stop, progress=False)
    assert not out.exists() and (resume_folder(out) / "state.pt").is_file()
    state = torch.load(resume_folder(out) / "state.pt", weights_only=True)  # tensors and plain values only
    assert state["step"] == 4
    # masked gradients are zeroed before each step, so AdamW's moments stay exactly 0 at the zeros
    masks = load_file(resume_folder(out) / "masks.safetensors")
    model = load_checkpoint(assets["sparse"], task=Task.TEXT_CLASSIFICATION).model
    decayed = [name[: -len(".weight")] for name, p in model.named_parameters() if p.ndim >= 2]
    for index, name in enumerate(decayed):  # the first parameter group, in this order
        if name in masks:
            moments = state["optimizer"]["state"][index]
            for key in ("exp_avg", "exp_avg_sq"):
                assert not moments[key][~masks[name]].any(), (name, key)
                assert moments[key][masks[name]].any(), (name, key)
    with pytest.raises(InputError, match="--lr"):
        finetune(dataclasses.replace(options, resume=True, lr=2e-3), progress=False)
    finetune(dataclasses.replace(options, resume=True), progress=False)
    assert not resume_folder(out).exists()

    a, b = (load_checkpoint(p, task=Task.TEXT_CLASSIFICATION).model.state_dict() for p in (straight, out))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ra, rb = _report(straight), _report(out)
    assert ra["train_loss"] == rb["train_loss"] and rb["resumed_from_step"] == 4


def test_resume_without_state_and_existing_output(assets: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no resumable state"):
        finetune(_options(assets, tmp_path / "new", resume=True), progress=False)
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputExistsError):
        finetune(_options(assets, tmp_path / "taken"), progress=False)


def test_options_validation_and_flags(assets: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not supported yet"):
        _options(assets, tmp_path / "o", task="squad")
    with pytest.raises(InputError, match=r"^--task must be one of sst2, mnli, qqp, qnli; got 'cola'$"):
        _options(assets, tmp_path / "o", task="cola")
    assert _options(assets, tmp_path / "o", task="qnli").task is GlueTask.QNLI
    with pytest.raises(TypeError):  # keyword-only, like every options class
        FinetuneOptions(str(assets["sparse"]), "sst2", assets["data"], tmp_path / "o")  # type: ignore[misc]
    with pytest.raises(InputError, match="--prune-start"):
        _options(assets, tmp_path / "o", prune_start=0.8, prune_end=0.5)
    parser = new_parser("finetune", "test")
    add_options(parser, FinetuneOptions)
    argv = [str(assets["sparse"]), "--task", "mnli", "--data", "d", "-o", "x", "--epochs", "1.5",
            "--prune-to", "0.9", "--teacher", "t", "--distill-alpha", "0.2", "--resume"]
    ns = parser.parse_args(argv)
    opts = from_namespace(FinetuneOptions, ns)
    got = (opts.epochs, opts.prune_to, opts.distill_alpha, opts.resume, opts.num_labels)
    assert got == (1.5, 0.9, 0.2, True, 3) and opts.task is GlueTask.MNLI
    assert opts.to_json()["task"] == "mnli" and opts.to_json()["data"] == "d"
    # on the command line too, SQuAD gets its reason rather than the list of choices
    with pytest.raises(InputError, match=r"^--task squad: SQuAD fine-tuning is not supported yet"):
        parser.parse_args([*argv[:2], "squad", *argv[3:]])
    assert (opts.batch_size, opts.lr, opts.seq_len, opts.temperature) == (32, 5e-5, 128, 2.0)



def test_device_option(assets: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--device must be"):
        _options(assets, tmp_path / "o", device="gpu")
    for bad in ("cpu:0", "auto:1", "cuda:", "cuda:x", "CUDA", " cpu"):
        with pytest.raises(InputError, match=r"^--device must be cpu, cuda, cuda:N or auto; got "):
            parse_device(bad)
    assert parse_device("cuda:1") == (Device.CUDA, 1) and parse_device("auto") == (Device.AUTO, None)
    assert _options(assets, tmp_path / "o", device="cuda:1").device_choice == (Device.CUDA, 1)
    if torch.cuda.is_available():
        pytest.skip("the no-CUDA refusal needs a machine without a CUDA device")
    with pytest.raises(InputError, match=r"--device cuda: .* sees 0 CUDA device"):
        finetune(_options(assets, tmp_path / "o", device="cuda"), progress=False)
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_keeps_zeros_and_resumes(assets: dict[str, Path], tmp_path: Path) -> None:
    """On a GPU: masks hold, the report names the device, and an interrupted run resumes to the
    same weights as an uninterrupted one (the CUDA generator's state is saved with the rest)."""
    straight = tmp_path / "straight"
    finetune(_options(assets, straight, device="cuda", max_steps=8, warmup=0.25), progress=False)
    assert _report(straight)["device"].startswith("cuda")
    assert _report(straight)["zero_check"]["lost"] == 0
    before = _weights(assets["sparse"])
    after = _weights(straight)
    for name, w in before.items():
        assert np.all(after[name][w == 0] == 0)
    out = tmp_path / "resumed"
    options = _options(assets, out, device="cuda", max_steps=8, warmup=0.25, save_every=4)

    def stop(event: str, step: int, model: torch.nn.Module) -> None:
        if event == "step" and step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(options, callback=stop, progress=False)
    finetune(dataclasses.replace(options, resume=True), progress=False)
    resumed = _weights(out)
    for name, w in _weights(straight).items():
        # CUDA embedding backward accumulates atomically, so not bit-identical; a resume that lost the
        # optimiser or RNG state would be off by ~lr (1e-3)
        np.testing.assert_allclose(resumed[name], w, rtol=0, atol=1e-4)


def test_nan_loss_is_refused_and_nothing_written(assets: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import pofa_deploy.finetune.step as step_mod

    real = step_mod.distillation_loss
    calls = []

    def nan_at_second_step(*args: Any, **kw: Any) -> torch.Tensor:
        calls.append(1)
        loss = real(*args, **kw)
        return loss * float("nan") if len(calls) == 2 else loss

    monkeypatch.setattr(step_mod, "distillation_loss", nan_at_second_step)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"training loss became nan at step 2; lower --lr"):
        finetune(_options(assets, out, max_steps=4), progress=False)
    assert len(calls) == 2  # stopped at the first non-finite loss
    assert list(tmp_path.iterdir()) == []


def test_prune_to_below_current_sparsity_is_refused(assets: dict[str, Path], tmp_path: Path) -> None:
    steps = []
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        finetune(_options(assets, out, prune_to=0.5), callback=lambda *a: steps.append(a[1]), progress=False)
    message = str(info.value)
    assert "\n" not in message  # one line
    assert message.startswith("--prune-to 0.5: 12 encoder Linears are already sparser (e.g. distilbert.")
    assert re.search(r": (89\.9\d|90\.00)%\); masks only grow, give a larger --prune-to$", message)
    assert steps == [] and list(tmp_path.iterdir()) == []  # refused before training


def test_zero_lost_in_the_saved_file_is_refused_and_nothing_written(assets: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    """The in-memory weights keep every zero, but the file written is re-read and checked too."""
    from safetensors.torch import save_file

    layer = "distilbert.transformer.layer.0.ffn.lin2"

    def corrupt_the_save(event: str, step: int, model: torch.nn.Module) -> None:
        if event != "save":
            return
        save_pretrained = model.save_pretrained

        def save_then_corrupt(folder: str, *args: Any, **kw: Any) -> None:
            save_pretrained(folder, *args, **kw)
            file = Path(folder) / "model.safetensors"
            tensors = load_file(file)
            w = tensors[f"{layer}.weight"]
            row, col = (w == 0).nonzero()[0].tolist()
            w[row, col] = 1.0
            save_file(tensors, str(file), metadata={"format": "pt"})

        model.save_pretrained = save_then_corrupt  # type: ignore[method-assign]

    out = tmp_path / "out"
    with pytest.raises(SparsityLostError, match=rf"1 zeros lost in the saved .*safetensors in 1 encoder "
                                                rf"Linears: {layer} \(1\); nothing was written"):
        finetune(_options(assets, out, max_steps=2), callback=corrupt_the_save, progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no partial folder either


def _interrupted_run(assets: dict[str, Path], out: Path, **kw: Any) -> FinetuneOptions:
    """Run 2 of 4 steps, leaving the resumable state of step 2 at OUT.resume/; return its options."""
    def stop(event: str, step: int, model: torch.nn.Module) -> None:
        if event == "step" and step == 2:
            raise _Stop

    options = _options(assets, out, max_steps=4, save_every=2, **kw)
    with pytest.raises(_Stop):
        finetune(options, callback=stop, progress=False)
    assert (resume_folder(out) / "masks.safetensors").is_file() and not out.exists()
    return options


def _first(keep: torch.Tensor, value: bool) -> tuple[int, int]:
    row, col = (keep == value).nonzero()[0].tolist()
    return row, col


def test_resume_refuses_masks_that_do_not_match(assets: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    out = tmp_path / "out"
    options = _interrupted_run(assets, out)
    file = resume_folder(out) / "masks.safetensors"
    pristine = file.read_bytes()
    layer = "distilbert.transformer.layer.1.attention.k_lin"

    def renamed(m: dict[str, torch.Tensor]) -> None:
        m[layer + "_renamed"] = m.pop(layer)

    def loosened(m: dict[str, torch.Tensor]) -> None:  # a zero of MODEL would be trained away
        m[layer][_first(m[layer], False)] = True

    def tightened(m: dict[str, torch.Tensor]) -> None:  # a trained weight would be zeroed
        m[layer][_first(m[layer], True)] = False

    def reshaped(m: dict[str, torch.Tensor]) -> None:
        m[layer] = m[layer][:, :32].contiguous()

    for alter, why in ((renamed, "delete it"), (loosened, "keeps weights that are zero in MODEL"),
                       (tightened, "masks weights that MODEL has nonzero"), (reshaped, "of shape (64, 32)")):
        file.write_bytes(pristine)
        masks = load_file(file)
        alter(masks)
        save_file(masks, str(file))
        with pytest.raises(InputError, match=r"masks do not match the model's encoder Linears") as info:
            finetune(dataclasses.replace(options, resume=True), progress=False)
        assert why in str(info.value), alter.__name__
        if alter is not renamed:
            assert layer in str(info.value)
        assert not out.exists() and file.is_file()  # the state is left for the user to inspect
    file.write_bytes(pristine)  # the untouched state still resumes
    finetune(dataclasses.replace(options, resume=True), progress=False)
    assert _report(out)["resumed_from_step"] == 2 and _report(out)["zero_check"]["lost"] == 0


def test_resume_with_pruning_refuses_masks_that_do_not_match(assets: dict[str, Path], tmp_path: Path) -> None:
    """With --prune-to masks legitimately differ from MODEL's zeros, but may not give a zero of MODEL
    back, nor mask a weight that the saved model has nonzero."""
    from safetensors.torch import save_file

    out = tmp_path / "out"
    options = _interrupted_run(assets, out, prune_to=0.95, prune_start=0.25, prune_end=0.5, prune_every=1)
    file = resume_folder(out) / "masks.safetensors"
    pristine = file.read_bytes()
    layer = "distilbert.transformer.layer.0.ffn.lin1"
    model_zeros = _weights(assets["sparse"])[layer] == 0
    keep = load_file(file)[layer].numpy()
    assert (~keep).mean() == pytest.approx(0.95, abs=0.001) and not (keep & model_zeros).any()  # pruned by step 2
    lost_zero = tuple(np.argwhere(model_zeros)[0])  # a zero of MODEL
    trained = tuple(np.argwhere(keep)[0])  # a weight still being trained
    for position, value, why in ((lost_zero, True, "it keeps weights that are zero in MODEL"),
                                 (trained, False, "weights it masks are nonzero in the saved model")):
        file.write_bytes(pristine)
        masks = load_file(file)
        masks[layer][position] = value
        save_file(masks, str(file))
        with pytest.raises(InputError, match=rf"masks do not match .*\({layer}: {why}\)"):
            finetune(dataclasses.replace(options, resume=True), progress=False)
        assert not out.exists()
