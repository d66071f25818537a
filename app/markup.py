"""Text a user typed (a network's name, a file's name) shown inside Streamlit's Markdown
as plain text. Pure: no streamlit here."""

from __future__ import annotations

import string

# CommonMark: "any ASCII punctuation character may be backslash-escaped" and is then
# shown as itself; that covers emphasis, links, HTML, headings, lists, tables, Streamlit's
# :colour[...] directives and $maths$.
_ESCAPES = str.maketrans({c: "\\" + c for c in string.punctuation})


def plain(text: str) -> str:
    """`text` escaped so Markdown shows it as typed, on one line."""
    return " ".join(str(text).split()).translate(_ESCAPES)
