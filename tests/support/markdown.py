"""What a Markdown body passed to Streamlit shows: the text a CommonMark renderer makes of it, and
whether Streamlit's own rewrites of that text (done after parsing, where escapes no longer count)
would still turn part of it into a link or an icon."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from markdown_it import MarkdownIt

# CommonMark plus the GitHub extensions Streamlit's renderer also reads (tables, ~~strike~~).
_RENDERER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# Text Streamlit rewrites after parsing: web addresses become links (GFM's autolink literals),
# ":material/name:" an icon, ":name:" an emoji or logo. Patterns as its renderer's own (remark-gfm,
# its icon and shortcode rules). E-mail addresses may become mailto: links, which load nothing.
LIVE_TEXT = re.compile(r"(?:https?://|www\.)[-\w]|:material/\w|:[a-z_+-][\w+-]*:", re.IGNORECASE)
WORD_JOINER = "\u2060"
TEXT_TAGS = {"p", "br"}


class _Shown(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shown(markdown: str) -> tuple[str, set[str]]:
    """The text a reader sees (word joiners kept) and the HTML tags the Markdown made."""
    parser = _Shown()
    parser.feed(_RENDERER.render(markdown))
    return "".join(parser.text), parser.tags


def assert_shows_literally(markdown: str, literal: str) -> None:
    """``markdown`` displays ``literal`` character for character (spacing aside), as text only."""
    text, tags = shown(markdown)
    assert tags <= TEXT_TAGS, f"{markdown!r} renders as {tags - TEXT_TAGS}"
    assert not LIVE_TEXT.search(text), f"Streamlit would make a link or icon of {text!r}"
    seen = " ".join(text.replace(WORD_JOINER, "").split())
    assert " ".join(literal.split()) in seen, f"{literal!r} is shown as {seen!r}"
