import json
import pickle
import shutil

import pytest
import torch

from pofa_deploy.checkpoint import Task, load_checkpoint, resolve
from pofa_deploy.errors import CheckpointError, HubError, InputError


@pytest.mark.parametrize("arch", ["distilbert", "bert"])
@pytest.mark.parametrize("task", list(Task))
def test_loads_every_arch_and_task(tiny_checkpoint, arch, task):
    ckpt = load_checkpoint(tiny_checkpoint(arch, task))
    assert ckpt.task is task and ckpt.model_type == arch
    assert ckpt.synthetic and ckpt.synthetic["sparsity"] == 0.9
    encoder = {k: v for k, v in ckpt.linear_weights().items() if ".layer." in k}
    for name, w in encoder.items():
        assert (w == 0).sum() == round(0.9 * w.size), name
    assert ckpt.tokenizer is not None
    ids = ckpt.tokenizer("the movie was good")["input_ids"]
    assert ckpt.tokenizer.unk_token_id not in ids and len(ckpt.tokenizer) == ckpt.config.vocab_size


def _copy(src, tmp_path):
    dst = tmp_path / "ck"
    shutil.copytree(src, dst)
    return dst


def test_missing_path_and_file_path(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        resolve(tmp_path / "nope")
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(InputError, match=r"is a file"):
        resolve(f)


def test_folder_without_config(tmp_path):
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_checkpoint(tmp_path)


def test_unknown_architecture(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint(), tmp_path)
    cfg = json.loads((ck / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unsupported architecture model_type='gpt2'"):
        load_checkpoint(ck)


def test_truncated_safetensors(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint(), tmp_path)
    f = ck / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(ck)


def _to_bin(ck):
    """Replace model.safetensors by an equivalent pytorch_model.bin."""
    from safetensors.torch import load_file

    state = load_file(str(ck / "model.safetensors"))
    (ck / "model.safetensors").unlink()
    torch.save(state, ck / "pytorch_model.bin")
    return state


def test_bin_weights_load_safely(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint(), tmp_path)
    _to_bin(ck)
    ckpt = load_checkpoint(ck)
    assert ckpt.weight_files[0].name == "pytorch_model.bin"


def test_corrupt_bin(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint(), tmp_path)
    _to_bin(ck)
    (ck / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(ck)


@pytest.mark.parametrize("content", [bytes(range(256)) * 64, b"\x80\x02" + bytes(range(7, 256)) * 8,
                                     b"\x80\x02c\xff\xfe\n\x01\n."])
def test_random_bytes_bin_is_corrupt_not_malicious(tiny_checkpoint, tmp_path, content):
    ck = _copy(tiny_checkpoint(), tmp_path)
    _to_bin(ck)
    (ck / "pytorch_model.bin").write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ck)
    message = str(info.value)
    assert "pytorch_model.bin: truncated or corrupt, not a valid PyTorch weight file" in message
    assert "refused" not in message and "arbitrary" not in message
    assert "\n" not in message


def test_nan_weights(tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    ck = _copy(tiny_checkpoint(), tmp_path)
    state = load_file(str(ck / "model.safetensors"))
    key = next(k for k in state if k.endswith("q_lin.weight"))
    state[key][0, 0] = float("nan")
    save_file(state, str(ck / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"q_lin.*NaN/Inf"):
        load_checkpoint(ck)


class _Evil:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_refused_without_running(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint(), tmp_path)
    state = _to_bin(ck)
    marker = tmp_path / "pwned"
    state["evil"] = _Evil(marker)
    with open(ck / "pytorch_model.bin", "wb") as fh:
        torch.save(state, fh, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(ck)
    assert not marker.exists()


def test_remote_code_not_trusted_by_default(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint(), tmp_path)
    cfg = json.loads((ck / "config.json").read_text())
    cfg.update(model_type="custom-sparse", auto_map={"AutoModel": "modeling_custom.CustomModel"})
    (ck / "config.json").write_text(json.dumps(cfg))
    marker = tmp_path / "ran"
    (ck / "modeling_custom.py").write_text(f"open({str(marker)!r}, 'w')\n")
    with pytest.raises(CheckpointError, match="unsupported architecture"):
        load_checkpoint(ck)
    assert not marker.exists()


def test_task_inference_and_override(tiny_checkpoint):
    ck = tiny_checkpoint("bert", Task.FILL_MASK)
    assert load_checkpoint(ck).task is Task.FILL_MASK
    assert load_checkpoint(ck, task=Task.FEATURE_EXTRACTION).task is Task.FEATURE_EXTRACTION


def test_hub_id_offline_gives_hub_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="could not fetch"):
        resolve("Intel/not-a-real-model-for-tests")
