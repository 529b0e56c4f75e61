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
