"""Words of core that a reader sees, marked for the app's German catalogue without core
knowing about languages (core never imports streamlit or the app).

- `say(template, **values)`: the English text, a `str` as before (logs, tests and
  exceptions read it unchanged), that also keeps its template and values, so the app can
  look the template up in its catalogue and fill in the same values (`app.i18n.tr`).
- `N_(text)`: marks a fixed text (a place such as "the stem") for the catalogue.

tools/po.py extracts both markers' first argument, as it does `_()` and `N_()` in app/.
"""

from __future__ import annotations


class Said(str):
    """English text that remembers the template and values it was made from."""

    template: str
    values: dict


def say(template: str, **values) -> Said:
    """`template.format(**values)`, keeping `template` and `values` for translation."""
    said = Said(template.format(**values))
    said.template = template
    said.values = values
    return said


def N_(text: str) -> str:
    """Marks `text` for the catalogue; the app translates it where it shows it."""
    return text
