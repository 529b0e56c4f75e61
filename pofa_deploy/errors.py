"""Every error a user can cause, as one exception family.

Library code raises these and never prints or exits; ``cli.py`` turns them into one line of text and
an exit code (``EXIT_CODES`` there). Each message names the file or flag at fault and the fix.
"""

from __future__ import annotations


class PofaError(Exception):
    """Base class: ``str(err)`` is the complete one-line message a user sees."""


class InputError(PofaError):
    """A path, flag or value the user gave is wrong (missing file, bad flag value, ...)."""


class OutputExistsError(InputError):
    """The output folder exists and ``--overwrite`` was not given."""


class CheckpointError(PofaError):
    """A checkpoint cannot be used: unsupported, truncated, corrupt, unsafe or non-finite."""


class DataError(PofaError):
    """A calibration or task data file is empty or malformed; the message names file and line."""

    def __init__(self, path: object, message: str, *, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class SparsityLostError(PofaError):
    """A zero of the source checkpoint is not a zero of the converted model."""


class VerificationError(PofaError):
    """The converted model could not be checked against its source (unmapped weights, NaN outputs)."""


class HubError(PofaError):
    """A hub id was given but the hub cannot be reached or does not have it."""


class ExtensionError(PofaError):
    """pofa-deploy's SparseFullyConnected library is missing, stale or cannot be built."""


class MissingExtraError(PofaError):
    """An optional dependency (a pip extra such as ``pofa-deploy[serve]``) is not installed."""


def require_extra(module: str, *, extra: str, command: str) -> None:
    """Import ``module`` or raise MissingExtraError naming the extra that provides it (one line)."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{command} needs {module.split('.')[0]} ({exc.name or module} is not installed); "
                                f"install it with: pip install 'pofa-deploy[{extra}]' (or ./install.sh --dev)"
                                ) from None
