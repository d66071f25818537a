"""Untrusted JSON in, frozen dataclasses out.

`load` checks the size and the nesting depth of the text before parsing it and refuses
overlong numbers while parsing, so a hostile file costs milliseconds and never raises
anything but the caller's `ExplainedError`. `parse_dataclass` type-checks every field by
name. No torch, no knowledge of networks: `core.spec` and `core.config` use it.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import re
import types
import typing
from typing import Any

from core.checks import _show as show
from core.errors import ExplainedError

# No setting needs more digits; past 4,300 Python refuses with a ValueError of its own.
MAX_DIGITS = 30

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting_depth(text: str) -> int:
    """How deep brackets nest in `text`, brackets inside strings not counted. Linear time,
    no recursion: it runs before the parser, which would recurse once per level."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def load(
    text: str | bytes,
    *,
    max_chars: int,
    max_depth: int,
    error: type[ExplainedError],
    **context,
) -> Any:
    """Parse JSON `text` after checking its size and depth; numbers of at most MAX_DIGITS
    digits. Raises `error` (with `context`) for anything else."""

    def refuse(problem: str, fix: str | None = None):
        return error(problem, where="the file", fix=fix, **context)

    if len(text) > max_chars:
        unit = "bytes" if isinstance(text, bytes) else "characters"
        raise refuse(
            f"it is {len(text):,} {unit} long; the limit is {max_chars:,}",
            "is it the right file?",
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise refuse("it is not UTF-8 text", "save it as UTF-8 JSON") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise refuse(
            f"brackets nest {depth:,} deep; the limit is {max_depth}",
            "is it the right file?",
        )

    def whole(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_DIGITS:
            raise refuse(
                f"a number has {len(digits.lstrip('-')):,} digits; the limit is {MAX_DIGITS}",
                "is it the right file?",
            )
        return int(digits)

    try:
        return json.loads(text, parse_int=whole)
    except json.JSONDecodeError as e:
        raise refuse(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except RecursionError:  # not reached after the depth check; kept as a last guard
        raise refuse("brackets nest too deep", "is it the right file?") from None


# --- JSON objects -> dataclasses -----------------------------------------------------------


def fields_dict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def reject_unknown(
    data: dict, known: set[str], where: str, *, error: type[ExplainedError], **context
) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(
            f"unknown setting {show(unknown[0])}; known settings are: {', '.join(sorted(known))}",
            where=where,
            **context,
        )


_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _type_word(t: Any) -> str:
    if typing.get_origin(t) is tuple:
        return f"a list of {_TYPE_WORDS[typing.get_args(t)[0]].removeprefix('a ')}s"
    return "empty (null)"


def typed(
    value: Any, hint: Any, name: str, where: str, *, error: type[ExplainedError], **context
) -> Any:
    """Check a JSON value against a field's type hint; ints are accepted for floats."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for t in options:
        if t is int and is_int(value):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t in (bool, str) and isinstance(value, t):
            return value
        if typing.get_origin(t) is tuple and isinstance(value, list):
            item = typing.get_args(t)[0]
            return tuple(typed(v, item, name, where, error=error, **context) for v in value)
    words = " or ".join(_TYPE_WORDS.get(t, _type_word(t)) for t in options)
    raise error(f"'{name}' must be {words}, got {show(value)}", where=where, **context)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's annotations, resolved once per class: `typing` compiles every string
    annotation on each call (milliseconds a spec), and the pages parse stored specs on
    every refresh."""
    return typing.get_type_hints(cls)


def parse_dataclass(
    cls: type, data: Any, where: str, *, error: type[ExplainedError], **context
) -> Any:
    """`cls(**data)` after checking every key and value; raises `error` naming the field."""
    if not isinstance(data, dict):
        raise error("must be a JSON object of settings", where=where, **context)
    hints = _hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    reject_unknown(data, fields, where, error=error, **context)
    kwargs = {k: typed(v, hints[k], k, where, error=error, **context) for k, v in data.items()}
    missing = sorted(
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise error(f"missing setting {missing[0]!r}", where=where, **context)
    return cls(**kwargs)
