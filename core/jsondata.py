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
from core.words import N_, say

# No setting needs more digits; past 4,300 Python refuses with a ValueError of its own.
MAX_DIGITS = 30

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


RIGHT_FILE = N_("is it the right file?")


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
        return error(problem, where=N_("the file"), fix=fix, **context)

    if len(text) > max_chars:
        long = (
            say("it is {n:,} bytes long; the limit is {limit:,}", n=len(text), limit=max_chars)
            if isinstance(text, bytes)
            else say(
                "it is {n:,} characters long; the limit is {limit:,}", n=len(text), limit=max_chars
            )
        )
        raise refuse(long, RIGHT_FILE)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise refuse(say("it is not UTF-8 text"), say("save it as UTF-8 JSON")) from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise refuse(
            say("brackets nest {depth:,} deep; the limit is {limit}", depth=depth, limit=max_depth),
            RIGHT_FILE,
        )

    def whole(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_DIGITS:
            n = len(digits.lstrip("-"))
            raise refuse(
                say("a number has {n:,} digits; the limit is {limit}", n=n, limit=MAX_DIGITS),
                RIGHT_FILE,
            )
        return int(digits)

    try:
        return json.loads(text, parse_int=whole)
    except json.JSONDecodeError as e:
        raise refuse(
            say(
                "not valid JSON (line {line}, column {column}: {why})",
                line=e.lineno,
                column=e.colno,
                why=e.msg,
            )
        ) from None
    except RecursionError:  # not reached after the depth check; kept as a last guard
        raise refuse(say("brackets nest too deep"), RIGHT_FILE) from None


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
            say(
                "unknown setting {name}; known settings are: {known}",
                name=show(unknown[0]),
                known=", ".join(sorted(known)),
            ),
            where=where,
            **context,
        )


_TYPE_WORDS = {
    int: N_("a whole number"),
    float: N_("a number"),
    bool: N_("true or false"),
    str: N_("text"),
}
_LIST_WORDS = {
    int: N_("a list of whole numbers"),
    float: N_("a list of numbers"),
    bool: N_("a list of true or false values"),
    str: N_("a list of texts"),
}


def _type_word(t: Any) -> str:
    if typing.get_origin(t) is tuple:
        return _LIST_WORDS[typing.get_args(t)[0]]
    return N_("empty (null)")


def _either(words: list[str]) -> str:
    """'a number or empty (null)', each word translatable."""
    return functools.reduce(lambda a, b: say("{a} or {b}", a=a, b=b), words)


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
    words = _either([_TYPE_WORDS.get(t, _type_word(t)) for t in options])
    must = say("{name} must be {words}, got {got}", name=f"'{name}'", words=words, got=show(value))
    raise error(must, where=where, **context)


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
        raise error(say("must be a JSON object of settings"), where=where, **context)
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
        raise error(say("missing setting {name}", name=repr(missing[0])), where=where, **context)
    return cls(**kwargs)
