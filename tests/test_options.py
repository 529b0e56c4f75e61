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


def _command_options() -> dict[str, type]:
    import importlib

    from pofa_deploy.cli import COMMANDS

    return {name: importlib.import_module(module).OPTIONS for name, (module, _help) in COMMANDS.items()}


def test_every_options_class_is_frozen_and_keyword_only():
    import dataclasses

    for name, cls in _command_options().items():
        assert cls.__dataclass_params__.frozen, name
        assert all(f.kw_only for f in dataclasses.fields(cls)), name
    with pytest.raises(TypeError, match="positional"):
        ConvertOptions("m", "out")  # type: ignore[misc]


def test_positional_fields_stay_positional_arguments():
    """kw_only is about the Python API: a field marked positional is still an argument without a dash."""
    import dataclasses

    from pofa_deploy.options import add_options, from_namespace, new_parser, option

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Opts:
        level: int = option(1, help="a flag declared before the positional")
        path: str = option(help="required positional", positional=True)
        extra: str | None = option(None, help="optional positional", positional=True)

    parser = new_parser("prog", "test")
    add_options(parser, Opts)
    assert from_namespace(Opts, parser.parse_args(["p", "--level", "3"])) == Opts(path="p", level=3)
    assert from_namespace(Opts, parser.parse_args(["p", "x"])) == Opts(path="p", extra="x")
    with pytest.raises(InputError, match="required: PATH"):
        parser.parse_args([])
    for name, cls in _command_options().items():
        positional = [f.name for f in dataclasses.fields(cls) if f.metadata.get("positional")]
        parser = new_parser("pofa-deploy " + name, "")
        add_options(parser, cls)
        shown = [a.dest for a in parser._actions if not a.option_strings and a.dest != "help"]
        assert shown == positional, name
