"""The model a repository serves: the file ``runtime.load`` would run, optionally with the tokenizer fused in
front, and the check that it scores sentences exactly as ``textmodel`` does.

Fusion: openvino-tokenizers 2026.4's ``connect_models`` drops the tokenizer's state sinks (its ReadValue
/Assign pair), and the fused model then fails to compile ("ReadValue ... doesn't have sibling output").
So the fused ``ov.Model`` is built here: each model Parameter's consumers are moved onto the tensor that
feeds the tokenizer's Result of the same name, and the new model takes the tokenizer's Parameters and
``get_sinks()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, VerificationError
from ..outputs import deferred_signals

STANDARD_IR = "openvino_model.xml"
TEXT_INPUT = "text"
PAIR_INPUT = "text_pair"

# Fixed check sentences: plain, non-ASCII, and one longer than any model's positions (truncation).
CHECK_TEXTS = ("a quietly moving film with a very good cast", "Café déjà vu — naïve señor, 北京!",
               "word " * 600)
CHECK_PAIRS = ("the cast is good", "the same café", "short")
# Same IR, same properties, same token ids (checked first, exactly): the logits agree to float noise or
# something is wrong. Measured: 0 on MiniLM and the tiny test models.
RELATIVE_TOLERANCE = 1e-5
# A known difference, not checked: for a sentence pair whose two segments are equally long and together
# over the model's length, openvino-tokenizers truncates the tie the other way round from Hugging Face's
# "longest_first" (one token moves from one segment to the other). Stated in the report for --text-pair.
PAIR_TIE_NOTE = ("sentence pairs whose two segments are equally long and together exceed the model's length are "
                 "truncated one token differently from the Hugging Face tokenizer (openvino-tokenizers breaks "
                 "the longest-first tie the other way)")


@dataclass(frozen=True)
class Choice:
    """Which IR of OUT is packaged, and why."""

    xml: Path
    reason: str
    nireq: int | None = None  # in-flight requests tune measured (throughput objective), else None

    @property
    def sparse_kernel(self) -> bool:
        from ..runtime import SPARSE_IR_FILE

        return self.xml.name == SPARSE_IR_FILE


def choose(folder: Path) -> Choice:
    """The IR ``runtime.load(folder)`` runs: tune_report.json's choice when tune ran here, else the standard IR."""
    from ..runtime import tuned_choice

    tuned = tuned_choice(folder)
    if tuned is not None:
        nireq = tuned.get("nireq")
        return Choice(folder / str(tuned["model_file"]), f"tune_report.json chose it ({tuned.get('winner')})",
                      nireq if isinstance(nireq, int) and nireq > 0 else None)
    return Choice(folder / STANDARD_IR, "the standard IR (tune has not run on OUT)")


def max_length(folder: Path) -> int:
    """The truncation length textmodel uses, so the fused tokenizer cuts sentences where it does."""
    from ..checkpoint import read_config
    from ..textmodel import DEFAULT_MAX_LENGTH

    config = read_config(folder)
    return min(int(config.get("max_position_embeddings") or DEFAULT_MAX_LENGTH), DEFAULT_MAX_LENGTH)


def new_core(xml: Path) -> Any:
    """A Core that reads ``xml``: openvino-tokenizers' ops registered (by its import), pofa-deploy's
    SparseFullyConnected library added when the IR uses it."""
    import openvino as ov
    import openvino_tokenizers  # noqa: F401  (registers the string ops with every Core it creates)

    from ..extension import add_if_needed

    core = ov.Core()
    add_if_needed(core, xml)
    return core


def tokenizer_model(folder: Path, *, pair: bool) -> Any:
    """OUT's tokenizer as an OpenVINO model (strings in, input_ids/token_type_ids/attention_mask out)."""
    import transformers
    from openvino_tokenizers import convert_tokenizer

    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    if pair and tok.num_special_tokens_to_add(pair=True) <= tok.num_special_tokens_to_add(pair=False):
        raise InputError(f"OUT {folder}: its tokenizer ({type(tok).__name__}) has no sentence-pair format; "
                         "drop --text-pair")
    try:
        with deferred_signals():  # a native conversion, like convert's export (see deferred_signals)
            return convert_tokenizer(tok, number_of_inputs=2 if pair else 1, truncation=True,
                                     max_length=max_length(folder))
    except Exception as exc:  # openvino-tokenizers raises plain exceptions for tokenizers it cannot convert
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"OUT {folder}: openvino-tokenizers cannot convert its tokenizer ({first}); "
                         "package with --no-strings (clients then send token ids)") from None


def fuse(tokenizer: Any, model: Any, *, pair: bool) -> Any:
    """One model: the tokenizer's string input(s) -> ``model``'s outputs (see module docstring)."""
    import openvino as ov

    produced = {name: result.get_node().input_value(0) for result in tokenizer.outputs
                for name in result.get_names()}
    for param in model.get_parameters():
        name = param.output(0).get_any_name()
        if name not in produced:
            raise InputError(f"the model input {name!r} is not a tokenizer output ({', '.join(sorted(produced))}); "
                             "package with --no-strings")
        source = produced[name]
        if source.get_element_type() != param.get_element_type():
            source = ov.opset13.convert(source, param.get_element_type()).output(0)
        for target in list(param.output(0).get_target_inputs()):
            target.replace_source_output(source)
    params = tokenizer.get_parameters()
    for param, name in zip(params, (TEXT_INPUT, PAIR_INPUT) if pair else (TEXT_INPUT,), strict=True):
        param.set_friendly_name(name)
        param.output(0).set_names({name})
    return ov.Model(model.get_results(), tokenizer.get_sinks(), params, "pofa_text_model")


def write_served(choice: Choice, folder: Path, target: Path, *, strings: bool, pair: bool) -> None:
    """The served model as ``target`` (model.xml, its .bin beside it)."""
    import shutil

    import openvino as ov

    if not strings:  # the converted IR byte for byte: nothing is re-serialised
        shutil.copyfile(choice.xml, target)
        shutil.copyfile(choice.xml.with_suffix(".bin"), target.with_suffix(".bin"))
        return
    core = new_core(choice.xml)
    fused = fuse(tokenizer_model(folder, pair=pair), core.read_model(str(choice.xml)), pair=pair)
    ov.save_model(fused, str(target), compress_to_fp16=False)


def io_of(model: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(inputs, outputs): name, element type ("string", "i64", "f32") and dims (-1: any) of each."""
    def describe(port: Any) -> dict[str, Any]:
        shape = port.get_partial_shape()
        dims = [d.get_length() if d.is_static else -1 for d in shape]
        return {"name": port.get_any_name(), "type": port.get_element_type().get_type_name(), "dims": dims}

    unnamed = [i for i, out in enumerate(model.outputs) if not out.get_names()]
    if unnamed:
        raise VerificationError(f"output {unnamed[0]} of the packaged model has no name; Triton and KServe clients "
                                "address outputs by name (re-run pofa-deploy convert)")
    return [describe(p) for p in model.inputs], [describe(p) for p in model.outputs]


@dataclass
class Checked:
    """The packaged model compiled as a server will compile it, and how its logits compare."""

    compiled: Any
    optimal_requests: int
    max_abs_diff: float
    reference_max_abs: float
    sentences: int


def check(xml: Path, folder: Path, choice: Choice, plugin_config: dict[str, str], shapes: dict[str, list[int]],
          *, strings: bool, pair: bool) -> Checked:
    """Compile ``xml`` with ``plugin_config`` at ``shapes`` (what config.json tells OVMS), score the check
    sentences, and compare with ``textmodel.open_text_model(folder)`` running the same IR; VerificationError
    when they differ beyond float noise."""
    from ..textmodel import open_text_model

    core = new_core(xml)
    model = core.read_model(str(xml))
    model.reshape(shapes)
    compiled = core.compile_model(model, "CPU", plugin_config)
    reference = open_text_model(folder, sparse_kernel=choice.sparse_kernel)
    texts, pairs = list(CHECK_TEXTS), list(CHECK_PAIRS) if pair else None
    expected = reference.score(texts, pairs)
    feed: dict[str, Any]
    if strings:
        check_token_ids(folder, reference, texts, pairs)
        feed = {TEXT_INPUT: np.array(texts)}
        if pairs is not None:
            feed[PAIR_INPUT] = np.array(pairs)
    else:
        feed = reference.encode(texts, pairs)
    got = run_named(compiled, feed)
    names = [n for n in expected.outputs if n in got]
    if not names:
        raise VerificationError(f"{xml}: none of its outputs ({', '.join(got)}) is an output of {choice.xml.name} "
                                f"({', '.join(expected.outputs)})")
    diff = max(float(np.max(np.abs(got[n] - expected.outputs[n]))) for n in names)
    scale = max(float(np.max(np.abs(expected.outputs[n]))) for n in names)
    if not diff <= RELATIVE_TOLERANCE * max(1.0, scale):
        raise VerificationError(f"{xml}: the packaged model's outputs differ from {choice.xml.name} run by pofa-deploy "
                                f"by up to {diff:.3g} (scale {scale:.3g}); nothing was written, please report this")
    optimal = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    return Checked(compiled, optimal, diff, scale, len(texts))


def check_token_ids(folder: Path, reference: Any, texts: Sequence[str], pairs: Sequence[str] | None) -> None:
    """The fused tokenizer alone must give the Hugging Face tokenizer's ids, mask and segments, exactly."""
    import openvino as ov

    tokenizer = ov.Core().compile_model(tokenizer_model(folder, pair=pairs is not None), "CPU")
    feed = [np.array(texts)] + ([np.array(pairs)] if pairs is not None else [])
    got = run_named(tokenizer, dict(enumerate(feed)))  # by position: a pair tokenizer's inputs have no names
    want = reference.encode(texts, pairs)
    mask = want["attention_mask"].astype(bool)
    for name, values in want.items():
        ours = got.get(name)
        if ours is None or ours.shape != values.shape or not np.array_equal(ours[mask], values[mask]):
            raise VerificationError(f"{folder}: the fused tokenizer's {name} differ from the Hugging Face "
                                    "tokenizer's on the check sentences; package with --no-strings (clients "
                                    "send token ids) and report this")


def run_named(compiled: Any, feed: dict[Any, Any]) -> dict[str, np.ndarray]:
    """One inference, outputs by tensor name."""
    result = compiled.create_infer_request().infer(feed)
    return {out.get_any_name(): np.array(result[out]) for out in compiled.outputs}


def score_texts(xml: Path, texts: Sequence[str], pairs: Sequence[str] | None = None, *,
                plugin_config: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Raw text through a packaged (--strings) model in plain OpenVINO: what a client of the repository gets
    (pass config.json's plugin_config to compile it as OVMS does)."""
    core = new_core(xml)
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", plugin_config or {})
    feed = {TEXT_INPUT: np.array(list(texts))}
    if pairs is not None:
        feed[PAIR_INPUT] = np.array(list(pairs))
    return run_named(compiled, feed)
