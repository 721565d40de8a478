"""``widgets.plain``: what a user or a link wrote shows as the characters they typed, whatever
Markdown, HTML or Streamlit directive it holds."""

from __future__ import annotations

import pytest

from mediagen.ui.widgets import plain

from ..support.markdown import assert_shows_literally, shown

HOSTILE = [
    "[text](http://elsewhere.example/x)",
    "![t](http://elsewhere.example/x.png)",
    "[ref]\n\n[ref]: http://elsewhere.example",
    "<http://elsewhere.example/auto>",
    "see http://elsewhere.example/raw and HTTPS://Elsewhere.example",
    "www.elsewhere.example and WWW.elsewhere.example",
    "write to someone@elsewhere.example",
    "<img src=x onerror=alert(1)>",
    "<b>bold</b> &lt;b&gt; &amp; &#91;x&#93;",
    ":red[red] :blue-background[x] :orange-badge[b] :small[s]",
    ":material/home: and :material_home:",
    ":smile: :streamlit: :+1:",
    "$x^2$ and $$y$$",
    "**bold** __b__ *it* _it_ ~~gone~~ `code`",
    "a\n===\nb\n---",
    "# heading\n> quote\n- item\n1. item\n+ item",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "trailing backslash \\",
    "already escaped \\[x\\]\\(http://elsewhere.example\\)",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_text_shows_literally_and_makes_no_link_image_or_icon(text: str) -> None:
    assert_shows_literally(plain(text), text)


def test_the_renderer_used_here_does_see_the_hostile_markdown() -> None:
    """The check above is only worth something if unescaped input does render as markup."""
    assert "a" in shown("[text](http://elsewhere.example)")[1]
    assert "img" in shown("![t](http://elsewhere.example/x.png)")[1]
    assert "h1" in shown("a\n===")[1]
    with pytest.raises(AssertionError, match="link or icon"):
        assert_shows_literally("www.elsewhere.example", "www.elsewhere.example")


def test_nothing_becomes_an_empty_string_and_plain_words_stay_as_they_are() -> None:
    assert plain(None) == "" and plain("") == ""
    assert plain("a lighthouse at dusk") == "a lighthouse at dusk"
    # What people copy copies as it reads: times, e-mail addresses (pasted into MEDIAGEN_ROLES).
    assert "\u2060" not in plain("ana@example.com, last tick 2026-12-06 02:49:14 UTC")
