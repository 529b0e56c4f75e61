"""The ``pofa-deploy`` command: thin subcommands over the library.

Each subcommand lives in its own module and exposes ``OPTIONS`` (a frozen options dataclass whose
fields define the flags) and ``main(options) -> int`` (runs it and prints the human output).
This module only builds the parser, and turns exceptions into one line of text and an exit code:
``EXIT_CODES`` is the single table for that. Set POFA_DEBUG=1 to get the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__, errors
from .options import add_options, from_namespace, new_parser
from .outputs import Terminated, terminate_as_exception

PROG = "pofa-deploy"
DESCRIPTION = ("Deploy sparse (Prune Once for All) BERT checkpoints on Intel CPUs with OpenVINO: INT8, every "
               "zero kept, sparse decompression configured.")

# name -> (module, one-line help). A command's module is imported only when that command runs (or its
# --help is asked for): `pofa-deploy --help` lists this table without importing torch, openvino or nncf.
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("pofa_deploy.convert", "sparse HF checkpoint -> (NNCF INT8) OpenVINO IR, zeros verified"),
    "inspect": ("pofa_deploy.inspect", "per-layer zero table of a checkpoint folder or an IR"),
    "synth": ("pofa_deploy.synth", "write a seeded synthetic PoFA-shaped sparse checkpoint"),
    "evaluate": ("pofa_deploy.evaluate", "SST-2/MNLI/QQP/QNLI/SQuAD scores of a checkpoint or an IR"),
    "finetune": ("pofa_deploy.finetune", "fine-tune on GLUE keeping every zero (distillation, pruning)"),
    "tune": ("pofa_deploy.tune", "measure here which model file, precision and streams run fastest; write them"),
    "benchmark": ("pofa_deploy.bench", "time PyTorch/OpenVINO FP32, BF16 and INT8 with/without sparse kernels"),
    "package": ("pofa_deploy.package", "write an OpenVINO Model Server / Triton / KServe model repository"),
    "serve": ("pofa_deploy.serve", "serve a converted folder over KServe v2 (REST + gRPC), batching requests"),
    "predict": ("pofa_deploy.predict", "score a text/TSV/JSONL corpus locally or on a Ray cluster, resumable"),
    "demo": ("pofa_deploy.demo", "offline end-to-end run on a real pretrained BERT (all-MiniLM-L6-v2)"),
}

# Most specific first: the first matching class gives the exit code and the prefix.
EXIT_CODES: list[tuple[type[BaseException], int, str]] = [
    (errors.OutputExistsError, 2, "error"),
    (errors.InputError, 2, "error"),
    (errors.DataError, 3, "error"),
    (errors.CheckpointError, 4, "error"),
    (errors.HubError, 4, "error"),
    (errors.SparsityLostError, 5, "error"),
    (errors.VerificationError, 5, "error"),
    (errors.ExtensionError, 6, "error"),
    (errors.MissingExtraError, 7, "error"),
    (errors.PofaError, 1, "error"),
    (KeyboardInterrupt, 130, "interrupted"),
]


def command_in(argv: Sequence[str]) -> str | None:
    """The command named on the command line: the first argument that is not an option (the top level
    has only -h/--help and --version, which take no value). None when there is none."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser: every command from ``COMMANDS`` is listed, but only ``command``'s module is imported
    (for its options); the others stay bare sub-parsers. An unknown ``command`` is an InputError."""
    if command is not None and command not in COMMANDS:
        raise errors.InputError(f"unknown command {command!r}; choose one of {', '.join(COMMANDS)} "
                                f"(see {PROG} --help)")
    parser = new_parser(PROG, DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            add_options(p, importlib.import_module(module_name).OPTIONS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    debug = os.environ.get("POFA_DEBUG") == "1"
    # SIGTERM/SIGHUP end a command like Ctrl-C does: staged output folders are cleaned up, one line,
    # exit 128 + signal number (143 for SIGTERM, 129 for SIGHUP).
    with terminate_as_exception():
        return _run(argv, debug=debug)


def _run(argv: Sequence[str] | None, *, debug: bool) -> int:
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser(command_in(argv))
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        module = importlib.import_module(COMMANDS[args.command][0])
        options = from_namespace(module.OPTIONS, args)
        return int(module.main(options) or 0)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    except (errors.PofaError, KeyboardInterrupt) as exc:
        if debug:
            raise
        code, prefix = next((c, p) for cls, c, p in EXIT_CODES if isinstance(exc, cls))
        message = str(exc) or "stopped by the user; nothing was written to the output folder"
        print(f"pofa-deploy: {prefix}: {message}", file=sys.stderr)
        return code
    except Terminated as exc:
        if debug:
            raise
        print(f"pofa-deploy: terminated: {exc}", file=sys.stderr)
        return 128 + exc.signum


if __name__ == "__main__":
    sys.exit(main())
