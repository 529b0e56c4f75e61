"""The server's side of the Open Inference (KServe v2) protocol: what a request may hold, what comes back.

Inputs (one of the two forms, never both):
- raw text: ``text`` (BYTES, shape [N] or [N, 1], UTF-8 sentences) and optionally ``text_pair``
  (same shape; the second sentence of each pair);
- token tensors: the model's own inputs (``input_ids`` and, if the model takes them, ``attention_mask``
  and ``token_type_ids``), INT64 or INT32, shape [N, S]; a missing attention_mask is all ones and a
  missing token_type_ids all zeros.
Outputs: ``logits`` (FP32 [N, labels], or the model's first output) and, for a classification head,
``label`` (BYTES [N]).

Every rule breach is a ``RequestError`` whose message says what was wrong and what is accepted; the
server answers it with HTTP 400 / gRPC INVALID_ARGUMENT. Nothing here imports KServe: inputs arrive
as (name, datatype, shape, numpy array) so the rules are tested without a server.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TEXT, TEXT_PAIR = "text", "text_pair"
TOKEN_DTYPES = {"INT64": np.int64, "INT32": np.int32}
OPTIONAL_TOKEN_INPUTS = {"attention_mask": 1, "token_type_ids": 0}  # name -> fill value when absent


class RequestError(ValueError):
    """A malformed request (answered with 400; never takes the server down)."""


@dataclass(frozen=True)
class Tensor:
    """One request input as the protocol delivers it."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Any  # a numpy array, or a callable that decodes one (decoding errors are request errors)


@dataclass(frozen=True)
class Limits:
    """What one request may hold (the server's --max-request-rows and the model's positions)."""

    max_rows: int
    max_seq_len: int
    max_text_chars: int = 100_000
    vocab_size: int | None = None  # input_ids must lie in [0, vocab_size): OpenVINO's Gather does not check
    type_vocab_size: int | None = None


@dataclass(frozen=True)
class Parsed:
    """A valid request: the batching key, its row count and what the batch runner needs."""

    key: Hashable  # ("text", has_pairs) or ("tokens", seq_len)
    rows: int
    texts: list[str] | None = None
    pairs: list[str] | None = None
    tokens: dict[str, np.ndarray] | None = None


def parse(inputs: Sequence[Tensor], *, model_inputs: Sequence[str], limits: Limits) -> Parsed:
    """Check a request against the rules in the module docstring and decode it."""
    if not inputs:
        raise RequestError("the request has no inputs; send 'text' (BYTES [N]) or the token tensors "
                           f"{', '.join(model_inputs)}")
    by_name: dict[str, Tensor] = {}
    for tensor in inputs:
        if tensor.name in by_name:
            raise RequestError(f"input {tensor.name!r} is given twice")
        by_name[tensor.name] = tensor
    allowed = {TEXT, TEXT_PAIR, *model_inputs}
    unknown = [n for n in by_name if n not in allowed]
    if unknown:
        raise RequestError(f"unknown input {unknown[0]!r}; this model takes 'text' (and 'text_pair'), or "
                           f"{', '.join(repr(n) for n in model_inputs)}")
    if TEXT in by_name or TEXT_PAIR in by_name:
        if any(n in by_name for n in model_inputs):
            raise RequestError("send either raw text ('text') or token tensors, not both")
        return _parse_text(by_name, limits)
    return _parse_tokens(by_name, model_inputs, limits)


def _rows_of(tensor: Tensor, *, text: bool, limits: Limits) -> int:
    shape = tuple(int(d) for d in tensor.shape)
    ok = (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) if text else len(shape) == 2
    if not ok:
        want = "[N] or [N, 1]" if text else "[N, S]"
        raise RequestError(f"input {tensor.name!r} has shape {list(shape)}; expected {want}")
    rows = shape[0]
    if rows < 1:
        raise RequestError(f"input {tensor.name!r} is empty; send at least one row")
    if rows > limits.max_rows:
        raise RequestError(f"input {tensor.name!r} has {rows} rows, more than this server takes in one "
                           f"request ({limits.max_rows}, --max-request-rows); split the request")
    return rows


def _decode(tensor: Tensor) -> np.ndarray:
    try:
        data = tensor.data() if callable(tensor.data) else tensor.data
        return np.asarray(data)
    except RequestError:
        raise
    except Exception as exc:  # the framework's decoder: wrong element count, bad base64, ...
        raise RequestError(f"input {tensor.name!r} cannot be decoded as {tensor.datatype} "
                           f"{list(tensor.shape)}: {str(exc).splitlines()[0][:200]}") from None


def _strings(tensor: Tensor, rows: int, limits: Limits) -> list[str]:
    if tensor.datatype != "BYTES":
        raise RequestError(f"input {tensor.name!r} has datatype {tensor.datatype}; raw text is BYTES")
    values = _decode(tensor).reshape(-1)
    if values.size != rows:
        raise RequestError(f"input {tensor.name!r} holds {values.size} values for shape {list(tensor.shape)}")
    out = []
    for i, value in enumerate(values.tolist()):
        try:
            text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            raise RequestError(f"input {tensor.name!r} row {i} is not UTF-8 text") from None
        if len(text) > limits.max_text_chars:
            raise RequestError(f"input {tensor.name!r} row {i} has {len(text)} characters; at most "
                               f"{limits.max_text_chars} are taken (the model reads {limits.max_seq_len} tokens)")
        out.append(text)
    return out


def _parse_text(by_name: dict[str, Tensor], limits: Limits) -> Parsed:
    if TEXT not in by_name:
        raise RequestError("'text_pair' needs 'text' (the first sentence of each pair)")
    rows = _rows_of(by_name[TEXT], text=True, limits=limits)
    texts = _strings(by_name[TEXT], rows, limits)
    pairs = None
    if TEXT_PAIR in by_name:
        pair_rows = _rows_of(by_name[TEXT_PAIR], text=True, limits=limits)
        if pair_rows != rows:
            raise RequestError(f"'text_pair' has {pair_rows} rows but 'text' has {rows}; send one pair per text")
        pairs = _strings(by_name[TEXT_PAIR], rows, limits)
    return Parsed(("text", pairs is not None), rows, texts=texts, pairs=pairs)


def _parse_tokens(by_name: dict[str, Tensor], model_inputs: Sequence[str], limits: Limits) -> Parsed:
    if "input_ids" not in by_name:
        raise RequestError("token tensors need 'input_ids' (INT64 [N, S]); or send raw text as 'text'")
    rows = _rows_of(by_name["input_ids"], text=False, limits=limits)
    shape = tuple(int(d) for d in by_name["input_ids"].shape)
    if shape[1] < 1 or shape[1] > limits.max_seq_len:
        raise RequestError(f"'input_ids' has {shape[1]} tokens per row; this model takes 1 to "
                           f"{limits.max_seq_len}")
    tokens: dict[str, np.ndarray] = {}
    for name in model_inputs:
        tensor = by_name.get(name)
        if tensor is None:
            if name not in OPTIONAL_TOKEN_INPUTS:
                raise RequestError(f"missing input {name!r} (INT64 {list(shape)})")
            tokens[name] = np.full(shape, OPTIONAL_TOKEN_INPUTS[name], dtype=np.int64)
            continue
        if tensor.datatype not in TOKEN_DTYPES:
            raise RequestError(f"input {name!r} has datatype {tensor.datatype}; token tensors are INT64 or INT32")
        if tuple(int(d) for d in tensor.shape) != shape:
            raise RequestError(f"input {name!r} has shape {list(tensor.shape)}; 'input_ids' has {list(shape)}")
        array = _decode(tensor)
        if array.size != rows * shape[1]:
            raise RequestError(f"input {name!r} holds {array.size} values for shape {list(shape)}")
        tokens[name] = array.reshape(shape).astype(np.int64)
        _check_range(name, tokens[name], limits)
    return Parsed(("tokens", shape[1]), rows, tokens=tokens)


def _check_range(name: str, values: np.ndarray, limits: Limits) -> None:
    """Out-of-range ids would silently read another row of an embedding table (or zeros): refuse them."""
    bound = {"input_ids": limits.vocab_size, "token_type_ids": limits.type_vocab_size, "attention_mask": 2}.get(name)
    if bound is None or values.size == 0:
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= bound:
        bad = low if low < 0 else high
        raise RequestError(f"input {name!r} holds {bad}; this model takes values 0 to {bound - 1}")


def stack(parsed: Sequence[Parsed]) -> tuple[list[str], list[str] | None, dict[str, np.ndarray] | None]:
    """Join the requests of one batch (they share a key): texts and pairs, or token tensors."""
    if parsed[0].tokens is not None:
        names = list(parsed[0].tokens)
        return [], None, {n: np.concatenate([p.tokens[n] for p in parsed if p.tokens is not None]) for n in names}
    texts = [t for p in parsed for t in (p.texts or [])]
    pairs = [t for p in parsed for t in (p.pairs or [])] if parsed[0].pairs is not None else None
    return texts, pairs, None
