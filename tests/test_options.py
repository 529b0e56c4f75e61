from pathlib import Path

import pytest

from pofa_deploy.checkpoint import Task
from pofa_deploy.convert import ConvertOptions
from pofa_deploy.errors import InputError
from pofa_deploy.synth import Arch, SynthOptions


def test_python_callers_may_pass_what_they_would_type():
    o = ConvertOptions(model="m", output="out", task="fill-mask")
    assert o.task is Task.FILL_MASK and isinstance(o.output, Path)
    assert SynthOptions(output="o", arch="bert-base").arch is Arch.BERT_BASE


def test_bad_enum_value_names_the_flag():
    with pytest.raises(InputError, match=r"--task must be one of .*translation"):
        ConvertOptions(model="m", output="out", task="translation")


def test_numeric_bounds_name_the_flag_the_user_typed():
    from pofa_deploy.bench import BenchmarkOptions
    from pofa_deploy.evaluate import EvaluateOptions
    from pofa_deploy.finetune import FinetuneOptions

    with pytest.raises(InputError, match=r"^--samples must be a positive integer, got 0$"):
        ConvertOptions(model="m", output="out", samples=0)
    with pytest.raises(InputError, match=r"^--holdout must be 0 or more, got -1$"):
        ConvertOptions(model="m", output="out", holdout=-1)
    with pytest.raises(InputError, match=r"^--vocab-size must be at least 64, got 10$"):
        SynthOptions(output="o", vocab_size=10)
    assert SynthOptions(output="o", vocab_size=None).vocab_size is None  # unset is allowed
    with pytest.raises(InputError, match=r"^--seq-len must be at least 8, got 4$"):
        EvaluateOptions(model="m", task="sst2", seq_len=4)
    with pytest.raises(InputError, match=r"^--max-grad-norm must be 0 or more, got -1"):
        FinetuneOptions(model="m", task="sst2", data="d", output="o", max_grad_norm=-1)
    with pytest.raises(InputError, match=r"^-nstreams/--nstreams must be a positive integer, got 0$"):
        BenchmarkOptions(model="m", nstreams=0)
