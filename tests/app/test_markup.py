"""User text inside Markdown is shown as typed."""

import string

import pytest

from app.markup import plain
from tests.app.test_build_view import shown


@pytest.mark.parametrize(
    "text",
    [
        "ResNet-56",
        "**bold** _it_ `code` [link](https://x.y) ![img](a.png) <script>x</script>",
        "# heading\n1. list\n- item\n> quote | table | ~~strike~~",
        ":red[colour] :material/home: $x^2$ \\(maths\\) {braces}",
        string.punctuation,
    ],
)
def test_plain_escapes_every_markup_character_and_reads_as_typed(text):
    markup = plain(text)
    assert shown(markup) == " ".join(text.split())  # one line, as typed
    unescaped = markup
    for c in string.punctuation:
        unescaped = unescaped.replace("\\" + c, "")
    assert not set(unescaped) & set(string.punctuation)
    assert "\n" not in markup
