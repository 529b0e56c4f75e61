"""Options are declared once, as frozen dataclasses; the CLI flags are generated from them.

Each command's options class (``ConvertOptions``, ``BenchmarkOptions``, ...) lives next to the code
that uses it. Its fields carry the flag names and help text in their metadata, so the library API,
the argparse parser and the error messages that name a flag cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any

from .errors import InputError


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flags: tuple[str, ...] = (),
    metavar: str | None = None,
    positional: bool = False,
) -> Any:
    """A dataclass field that is also a command-line flag.

    ``flags`` defaults to ``--field-name``; ``positional`` makes it an argument without a dash.
    """
    meta = {"help": help, "flags": flags, "metavar": metavar, "positional": positional}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple default for sequence options")
    return dataclasses.field(default=default, metadata=meta)


def flag_name(cls: type, field_name: str, *, every: bool = False) -> str:
    """The flag a user typed for ``field_name`` (for error messages); ``every`` joins all its
    spellings (``-t/--time``) for options that have a benchmark_app-style short form."""
    for f in dataclasses.fields(cls):
        if f.name == field_name:
            if f.metadata.get("positional"):
                return f.name.upper()
            flags = f.metadata.get("flags") or ("--" + f.name.replace("_", "-"),)
            return "/".join(flags) if every else flags[-1]
    raise KeyError(field_name)


def at_least(obj: Any, minimum: float, *names: str, every: bool = False) -> None:
    """Raise InputError naming the flag when one of ``names`` is below ``minimum`` (None: unset, allowed)."""
    what = "a positive integer" if minimum == 1 else "0 or more" if minimum == 0 else f"at least {minimum:g}"
    for name in names:
        value = getattr(obj, name)
        if value is not None and value < minimum:
            raise InputError(f"{flag_name(type(obj), name, every=every)} must be {what}, got {value}")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _converter(tp: Any, flag: str) -> Any:
    """A callable turning the flag's text into the field's type, with a one-line error."""
    if typing.get_origin(tp) is tuple:
        (inner, *_rest) = typing.get_args(tp)
        one = _converter(inner, flag)
        return lambda text: tuple(one(part.strip()) for part in str(text).split(",") if part.strip())
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return lambda text: _parse_enum(tp, text, flag)
    if tp in (int, float):
        def number(text: str) -> Any:
            try:
                return tp(text)
            except ValueError:
                raise InputError(f"{flag} expects a number, got {text!r}") from None
        return number
    if tp is Path:
        return Path
    return str


def _parse_enum(tp: type[enum.Enum], text: Any, flag: str) -> Any:
    if isinstance(text, tp):
        return text
    try:
        return tp(str(text).lower())
    except ValueError:
        allowed = ", ".join(str(m.value) for m in tp)
        raise InputError(f"{flag} must be one of {allowed}; got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse that raises InputError instead of printing usage and exiting with 2."""

    def error(self, message: str) -> typing.NoReturn:
        # The CLI prints "PROG: error: MESSAGE"; a sub-command's parser names its command once
        # ("convert: the following arguments are required: MODEL"), the top level adds nothing.
        _prog, _, command = self.prog.partition(" ")
        where = f"{command}: " if command else ""
        raise InputError(f"{where}{message} (see {self.prog} --help)")


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one argparse argument per field of the options dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        tp, _optional = _unwrap_optional(hints[f.name])
        meta = f.metadata
        flags = tuple(meta["flags"]) or ("--" + f.name.replace("_", "-"),)
        shown = flag_name(cls, f.name)
        kwargs: dict[str, Any] = {"help": meta["help"]}
        if f.default is not dataclasses.MISSING and f.default not in (None, False, ()):
            default_text = f.default.value if isinstance(f.default, enum.Enum) else f.default
            if isinstance(default_text, tuple):
                default_text = ",".join(map(str, default_text))
            kwargs["help"] += f" (default: {default_text})"
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            kwargs["metavar"] = "{" + "|".join(str(m.value) for m in tp) + "}"
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta["positional"]:
            kwargs.setdefault("metavar", shown)  # MODEL, as flag_name() names it in errors
            kwargs["type"] = _converter(tp, shown)
            if f.default is not dataclasses.MISSING:
                kwargs["nargs"] = "?"
                kwargs["default"] = f.default
            parser.add_argument(f.name, **kwargs)
            continue
        if tp is bool:
            parser.add_argument(*flags, dest=f.name, action="store_true", default=f.default, **kwargs)
            continue
        kwargs["type"] = _converter(tp, shown)
        kwargs["default"] = f.default if f.default is not dataclasses.MISSING else None
        kwargs["required"] = f.default is dataclasses.MISSING
        parser.add_argument(*flags, dest=f.name, **kwargs)


def from_namespace(cls: type, ns: argparse.Namespace, **extra: Any) -> Any:
    """Build the options dataclass from parsed arguments (plus ``extra`` fields)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(ns).items() if k in names}
    values.update(extra)
    return cls(**values)


def coerce_fields(obj: Any) -> None:
    """Let Python callers pass what they would type: "sst2" for an enum field, "out" for a Path,
    "16,64" or a list for a tuple field. Call first in each options class's ``__post_init__``;
    a bad value raises the same one-line InputError as the flag would."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None or "help" not in f.metadata:
            continue
        tp, _optional = _unwrap_optional(hints[f.name])
        needs = (
            (isinstance(tp, type) and issubclass(tp, enum.Enum) and not isinstance(value, tp))
            or (tp is Path and not isinstance(value, Path))
            or (typing.get_origin(tp) is tuple and not isinstance(value, tuple))
        )
        if not needs:
            continue
        if typing.get_origin(tp) is tuple and isinstance(value, list):
            value = ",".join(map(str, value))
        object.__setattr__(obj, f.name, _converter(tp, flag_name(type(obj), f.name))(value))


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return _Parser(prog=prog, description=description)
