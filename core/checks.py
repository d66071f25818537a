"""One set of input checks for specs, training settings, attribution requests and data.

Each check raises the caller's `ExplainedError` subclass (`error=`) with a message that
names the setting, the allowed values and, where given, what to try. No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from core.errors import ExplainedError
from core.words import say


def whole(
    value,
    name: str,
    lo: int,
    hi: int,
    *,
    fix: str | None = None,
    where: str | None = None,
    error: type[ExplainedError] = ExplainedError,
    **context,
) -> int:
    """`value` must be an int (not a bool) in [lo, hi]; returns it."""
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise error(
            say(
                "{name} must be a whole number from {lo:,} to {hi:,}, got {got}",
                name=name,
                lo=lo,
                hi=hi,
                got=_show(value),
            ),
            where=where,
            fix=fix,
            **context,
        )
    return value


def number(
    value,
    name: str,
    lo: float,
    hi: float,
    *,
    fix: str | None = None,
    where: str | None = None,
    upper_open: bool = False,
    error: type[ExplainedError] = ExplainedError,
    **context,
) -> float:
    """`value` must be a finite int or float (not a bool) in [lo, hi] (or [lo, hi) when
    `upper_open`); returns it as a float."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and lo <= value and (value < hi if upper_open else value <= hi)
    if not ok:
        span = (
            say("at least {lo:g} and below {hi:g}", lo=lo, hi=hi)
            if upper_open
            else say("from {lo:g} to {hi:g}", lo=lo, hi=hi)
        )
        raise error(
            say(
                "{name} must be a number {span}, got {got}", name=name, span=span, got=_show(value)
            ),
            where=where,
            fix=fix,
            **context,
        )
    return float(value)


def choice(
    value,
    name: str,
    choices: Iterable[str],
    *,
    where: str | None = None,
    error: type[ExplainedError] = ExplainedError,
    **context,
):
    """`value` must be one of `choices`; returns it."""
    choices = tuple(choices)
    if value not in choices:
        raise error(
            say("{name} {got} is not available", name=name, got=_show(value)),
            where=where,
            fix=say("choose one of: {choices}", choices=", ".join(choices)),
            **context,
        )
    return value


def text(
    value,
    name: str,
    max_chars: int,
    *,
    where: str | None = None,
    error: type[ExplainedError] = ExplainedError,
    **context,
) -> str:
    """`value` must be a str of at most `max_chars` characters; returns it."""
    if not isinstance(value, str) or len(value) > max_chars:
        got = say("{n:,} characters", n=len(value)) if isinstance(value, str) else _show(value)
        raise error(
            say(
                "{name} must be text of at most {max_chars:,} characters, got {got}",
                name=name,
                max_chars=max_chars,
                got=got,
            ),
            where=where,
            fix=say("shorten it"),
            **context,
        )
    return value


def _show(value) -> str:
    """repr, cut short: a hostile 5,000-digit number must not fill the page."""
    try:
        shown = repr(value)
    except ValueError:  # int too large for repr (Python's int-to-str limit)
        return say("a number with too many digits")
    return shown if len(shown) <= 40 else shown[:37] + "..."
