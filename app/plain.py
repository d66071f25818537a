"""Text a user typed (a network's name), made safe for the places Streamlit reads as
Markdown (button and widget labels): every Markdown character is escaped, so the name is
shown exactly as typed. Where a whole line is a name, pages use st.text instead."""

from __future__ import annotations

import re

_MARKDOWN = re.compile(r"([\\`*_\[\]()~$<>|])")  # inline Markdown: labels have no blocks


def literal(text: str) -> str:
    """`text` with each inline Markdown character backslash-escaped (CommonMark: any ASCII
    punctuation may be escaped, and shows as itself)."""
    return _MARKDOWN.sub(r"\\\1", text)
