"""The options of ``pofa-deploy package``: one frozen dataclass whose fields are the flags.

``--strings`` / ``--no-strings`` are two fields because options.py makes a bool field a store-true flag;
``strings`` is the one a Python caller sets (``PackageOptions(..., strings=False)``), ``no_strings`` only
folds the CLI's spelling into it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..options import at_least, coerce_fields, option

# One name serves OVMS (model name), Triton (model folder) and KServe (InferenceService metadata.name,
# which Kubernetes requires to be a DNS-1035 label), so the strictest of the three rules applies.
NAME_RULE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be the model's name (None: it can)."""
    if NAME_RULE.fullmatch(name):
        return None
    return ("use lowercase letters, digits and '-', starting with a letter and ending with a letter or digit, "
            "at most 63 characters (KServe's InferenceService name is a DNS-1035 label)")


def default_name(out: Path) -> str:
    """OUT's folder name made a valid name ("BERT_sst2" -> "bert-sst2"); "model" when nothing is left."""
    text = re.sub(r"[^a-z0-9]+", "-", Path(out).resolve().name.lower()).strip("-")
    text = re.sub(r"^[^a-z]+", "", text)[:63].rstrip("-")
    return text or "model"


@dataclass(frozen=True, kw_only=True)
class PackageOptions:
    # option() builds a dataclass field, so RUF009 (a call as a default) does not apply to these lines
    out: Path = option(positional=True, help="converted output folder (pofa-deploy convert MODEL -o OUT; "
                                             "pofa-deploy tune OUT first to package the tuned model file)")
    output: Path = option(flags=("-o", "--output"), metavar="REPO",
                          help="model repository to write (written only when complete; not inside OUT)")
    name: str | None = option(None, flags=("--name",),
                              help="model name in OVMS, Triton and KServe (default: OUT's folder name, "
                                   "lowercased, other characters turned into '-')")
    version: int = option(1, flags=("--version",), metavar="N", help="model version: the folder REPO/NAME/N")
    strings: bool | None = option(None, flags=("--strings",),
                           help="fuse the tokenizer in front of the model (openvino-tokenizers): clients send "
                                "raw text as the string input 'text' (the default unless --no-strings)")
    no_strings: bool = option(False, flags=("--no-strings",),
                              help="serve the model as converted: clients send input_ids/attention_mask")
    text_pair: bool = option(False, flags=("--text-pair",),
                             help="with --strings, a second string input 'text_pair' (sentence-pair tasks: "
                                  "MNLI, QQP, QNLI); clients then send both")
    nireq: int | None = option(None, flags=("--nireq",), metavar="N",
                               help="OVMS infer requests (default: the plugin's optimal number for the tuned "
                                    "configuration on this machine; 0 lets OVMS decide)")
    storage_uri: str | None = option(None, flags=("--storage-uri",), metavar="URI",
                                     help="where the cluster finds REPO/NAME, for kserve.yaml (default: "
                                          "pvc://pofa-models/NAME)")
    overwrite: bool = option(False, help="replace REPO if it is a previous package output")
    quiet: bool = option(False, flags=("-q", "--quiet"), help="no progress lines")

    def __post_init__(self) -> None:
        coerce_fields(self)
        at_least(self, 1, "version")
        at_least(self, 0, "nireq")
        # strings is None unless given: --strings (or strings=True) and --no-strings together contradict
        if self.no_strings and self.strings:
            raise InputError("--strings and --no-strings contradict each other; give one of them")
        object.__setattr__(self, "strings", not self.no_strings if self.strings is None else self.strings)
        if self.text_pair and not self.strings:
            raise InputError("--text-pair needs --strings (it names a second string input); drop one of them")
        if self.name is not None:
            problem = name_problem(self.name)
            if problem:
                raise InputError(f"--name {self.name!r}: {problem}; e.g. --name {default_name(Path(self.name))}")
        if self.storage_uri is not None and "://" not in self.storage_uri:
            raise InputError(f"--storage-uri {self.storage_uri!r} is not a URI; give e.g. s3://bucket/models/NAME "
                             "or pvc://claim/NAME")

    @property
    def model_name(self) -> str:
        return self.name if self.name is not None else default_name(self.out)
