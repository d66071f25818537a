"""Words in the reader's language: `_()` looks a string up in the gettext catalogue of
the language chosen for this script run (`use_language`), `N_()` marks a string for the
catalogue without translating it yet (for module-level tables).

The catalogues are app/locales/<lang>/LC_MESSAGES/messages.po, compiled to .mo by
tools/po.py; the standard library's gettext reads them. English is the source language
and needs no catalogue. Which language a reader gets is `pick_language`, a pure function.
"""

from __future__ import annotations

import contextvars
import functools
import gettext
import re
import string
from collections.abc import Callable
from pathlib import Path

from core.errors import ExplainedError
from core.words import Said

LOCALES = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"
LANGUAGES = {"en": "English", "de": "Deutsch"}
DEFAULT = "en"

# Streamlit runs each session's script in its own thread; a context variable keeps one
# reader's language from leaking into another's page (a module global would be shared).
_language: contextvars.ContextVar[str | None] = contextvars.ContextVar("language", default=None)
# Where a run that set no language finds it: a fragment's rerun runs only the fragment, not
# the entry script that calls `use_language`; app/lesson_chrome.py registers the URL's.
_resolver: Callable[[], str] | None = None


def pick_language(query: str | None, browser_locale: str | None) -> str:
    """`?lang=` if it names a language we have, else the browser's ("de-AT" -> "de"),
    else English.

    Args:
        query: the value of the `lang` query parameter, or None.
        browser_locale: `st.context.locale`, e.g. "de-DE", or None.
    """
    for value in (query, browser_locale):
        if isinstance(value, str):
            code = value.strip().lower().replace("_", "-").split("-")[0]
            if code in LANGUAGES:
                return code
    return DEFAULT


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of `lang`; English (and a missing file) translate to itself."""
    return gettext.translation(DOMAIN, LOCALES, languages=[lang], fallback=True)


def use_language(lang: str) -> None:
    """Make `lang` the language of `_()` for the rest of this script run."""
    _language.set(lang if lang in LANGUAGES else DEFAULT)


def set_resolver(resolver: Callable[[], str] | None) -> None:
    """`resolver()` names the language of a run that did not call `use_language`."""
    global _resolver
    _resolver = resolver


def current_language() -> str:
    lang = _language.get()
    if lang is None and _resolver is not None:
        lang = _resolver()
    return lang if lang in LANGUAGES else DEFAULT


def _(text: str) -> str:
    """`text` in the current language (itself when there is no translation)."""
    return translations(current_language()).gettext(text)


translate = _  # for modules whose loops use `_` as a throwaway name


def N_(text: str) -> str:
    """Marks `text` for the catalogue; translate it later with `_(value)`."""
    return text


# How each language writes 19218.5: the thousands separator, then the decimal mark.
SEPARATORS = {"en": ",.", "de": ".,"}


def _localise(text: str, lang: str) -> str:
    """`text` as Python formatted it (1,234.5) with `lang`'s separators (1.234,5)."""
    thousands, decimal = SEPARATORS[lang]
    return text.translate(str.maketrans({",": thousands, ".": decimal}))


def number(x: float, digits: int = 0, *, percent: bool = False) -> str:
    """`x` with thousands grouped and `digits` decimals, as the reader's language writes
    it: 19,218 and 0.5 in English, 19.218 and 0,5 in German; `percent`: x=0.123 -> 12.3%
    (German: 12,3 %)."""
    lang = current_language()
    if percent:
        shown = _localise(f"{x * 100:,.{digits}f}", lang)
        return f"{shown}\u00a0%" if lang == "de" else f"{shown}%"
    return _localise(f"{x:,.{digits}f}", lang)


def figure(x: float, spec: str) -> str:
    """`format(x, spec)` with the reader's separators: figure(0.0931, ".3g") is 0.0931, in
    German 0,0931."""
    return _localise(format(x, spec), current_language())


def plotly_separators() -> str:
    """Plotly's `layout.separators` for the reader's language (decimal mark first)."""
    thousands, decimal = SEPARATORS[current_language()]
    return decimal + thousands


class _Formatter(string.Formatter):
    """str.format whose numbers take the reader's separators ({n:,} -> 19.218 in German)."""

    def format_field(self, value, format_spec: str) -> str:
        text = super().format_field(value, format_spec)
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return _localise(text, current_language()) if numeric else text


def fill(template: str, **values) -> str:
    """`_(template)` with `values` filled in, numbers written as the reader's language
    writes them."""
    return _Formatter().format(_(template), **values)


def tr(value) -> str:
    """A text from core in the reader's language: a `say()` template (core/words.py) is
    looked up and filled with its values (themselves translated), an `ExplainedError` is
    put together from its translated place, problem and fix, a plain text is looked up
    as it is (itself when the catalogue lacks it)."""
    if isinstance(value, ExplainedError):
        text = f"{tr(value.where)}: {tr(value.problem)}" if value.where else tr(value.problem)
        return f"{text}; {tr(value.fix)}" if value.fix else text
    if isinstance(value, BaseException):
        return tr(value.args[0]) if value.args and isinstance(value.args[0], str) else str(value)
    if isinstance(value, Said):
        values = {
            k: tr(v) if isinstance(v, str | BaseException) else v for k, v in value.values.items()
        }
        return fill(value.template, **values)
    if not (isinstance(value, str) and value):
        return str(value)
    lang = current_language()
    found = translations(lang).gettext(value)
    if found != value or lang == DEFAULT:
        return found
    return _stored(value, lang)


# A message core stored as plain English (a run's message in SQLite) has lost the template
# `say()` made it from: it is matched against the catalogue's templates instead, each
# {placeholder} a group, and the captured values are translated and filled in again.
_FIELD = string.Formatter()
_MIN_LITERAL = 3  # "{a}: {b}" would match nearly anything; a template needs a word


def _pattern(template: str) -> re.Pattern | None:
    """A regex that reads `template.format(...)`'s text back into its fields' values."""
    parts, seen, literal = [], set(), 0
    for text, name, spec, conversion in _FIELD.parse(template):
        parts.append(re.escape(text))
        literal += len(text.strip())
        if name is None:
            continue
        if not name.isidentifier():
            return None  # {0} or {a.b}: not a template say() makes
        parts.append(
            f"(?P={name})" if name in seen else f"(?P<{name}>{_capture(spec, conversion)})"
        )
        seen.add(name)
    return re.compile("".join(parts), re.DOTALL) if seen and literal >= _MIN_LITERAL else None


def _capture(spec: str | None, conversion: str | None) -> str:
    """What a field's text can be: a quoted repr for {x!r}, a number for {x:,.1f}, else
    any text (as little as lets the rest match)."""
    if conversion == "r":
        return r"'[^']*'|\"[^\"]*\""
    if (spec and spec[-1:] in "dfgen%") or spec in (",", "_"):
        return _NUMBER.pattern
    return ".+?"


@functools.cache
def _templates(lang: str) -> tuple[tuple[re.Pattern, str], ...]:
    """(pattern, template) for each catalogue template with fields, most words first (the
    most specific template wins when two match)."""
    catalog = getattr(translations(lang), "_catalog", {})  # GNUTranslations' msgid -> msgstr
    found = []
    for msgid in catalog:
        try:
            pattern = _pattern(msgid) if isinstance(msgid, str) and "{" in msgid else None
        except ValueError:  # a stray brace: not a template
            pattern = None
        if pattern is not None:
            found.append((pattern, msgid))
    found.sort(key=lambda pt: -len(_FIELD_RE.sub("", pt[1])))
    return tuple(found)


_FIELD_RE = re.compile(r"\{[^}]*\}")
_NUMBER = re.compile(r"-?\d[\d,]*(\.\d+)?(e-?\d+)?")


def _value(text: str):
    """A captured value: a number again (so German writes it with its separators), else
    the text, itself translated (a reason inside a message)."""
    if _NUMBER.fullmatch(text):
        plain = text.replace(",", "")
        return int(plain) if plain.lstrip("-").isdigit() else float(plain)
    return tr(text)


class _Lenient(_Formatter):
    """A refill whose value lost its type: a format spec it cannot take is dropped, and a
    conversion ({name!r}) is not applied twice (the captured text already has its quotes)."""

    def convert_field(self, value, conversion):
        return value

    def format_field(self, value, format_spec: str) -> str:
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):
            return super().format_field(str(value), "")


def _stored(text: str, lang: str) -> str:
    """`text` translated through the template it was made from; itself when none fits."""
    for pattern, template in _templates(lang):
        match = pattern.fullmatch(text)
        if match:
            values = {k: _value(v) for k, v in match.groupdict().items()}
            return _Lenient().format(translations(lang).gettext(template), **values)
    return text


# The lesson page's own words, marked here until the page marks them where it uses them.
LESSON_WORDS = {
    "lessons": N_("Lessons"),
    "lesson": N_("Lesson"),
    "start": N_("Start"),
    "next": N_("Next"),
    "back": N_("Back"),
    "your_prediction": N_("Your prediction"),
    "show_answer": N_("Show the answer"),
    "run": N_("Run the experiment"),
    "running": N_("Running…"),
    "explore": N_("Explore this yourself"),
    "present": N_("Presenter mode"),
    "language": N_("Language"),
    "claim_held": N_("The run shows it."),
    "claim_failed": N_("This run did not show it; run it again or look at the numbers."),
    "right": N_("Right."),
    "wrong": N_("Not quite."),
    "coming": N_("Coming in a later version."),
    "seconds": N_("Finished in {seconds:.0f} s."),
}
