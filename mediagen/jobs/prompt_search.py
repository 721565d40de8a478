"""How each database searches prompts by words: SQLite through its FTS5 table (migration 0005),
PostgreSQL through a stored tsvector column under a GIN index (migration 0009), both reading words
as SQLite's unicode61 tokenizer does (accents off Latin letters, any case) and taking every typed
word as a word prefix, in any order. What a person typed reaches either only as words.

``PromptHasWords`` is one condition in the queries that ``browse`` builds; SQLAlchemy writes it in
each database's SQL when the query runs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean, Integer, Text, literal, text
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from ..db.engine import Database

MAX_SEARCH_WORDS = 16


def search_words(typed: str) -> list[str]:
    """The words of what a person typed (at most ``MAX_SEARCH_WORDS``), as SQLite's unicode61
    tokenizer reads words: a letter, digit or private-use character, then any of those and the
    marks that belong to them (Unicode categories L, N, M and Co), in composed form (NFC, so an
    accent typed as a combining mark stays in its word). Anything else only separates words, so
    nothing typed becomes query syntax in either database."""
    words: list[str] = []
    word: list[str] = []
    for char in unicodedata.normalize("NFC", typed) + " ":
        category = unicodedata.category(char)
        if category[0] in "LN" or category == "Co" or (word and category[0] == "M"):
            word.append(char)
        elif word:
            words.append("".join(word))
            word = []
            if len(words) == MAX_SEARCH_WORDS:
                break
    return words


class _SearchWords(TypeDecorator[Sequence[str]]):
    """Words to search for, written in the full-text query syntax of the database at hand, each
    as a word prefix and all of them required. Words are only letters, digits and marks
    (``search_words``), so the quotes around them cannot be closed early."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Sequence[str] | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return " & ".join(f"'{word}':*" for word in value)  # to_tsquery: 'fox':* & 'bro':*
        return " ".join(f'"{word}"*' for word in value)  # FTS5: "fox"* "bro"*


class PromptHasWords(FunctionElement[bool]):
    """Jobs whose prompt has every one of ``words`` as the start of one of its words, read from
    the database's full-text index of prompts; each database's SQL for it is compiled below.
    ``rowids`` (SQLite) narrows it to the jobs whose rowid lies in the span (inclusive)."""

    type = Boolean()
    # A condition by itself: without this SQLAlchemy writes "... = 1" after it where booleans
    # are not native (SQLite), which hid the FTS5 list from SQLite's planner (a search walked
    # every job in page order instead of looking up the few matches).
    _is_implicitly_boolean = True
    inherit_cache = True
    name = "prompt_has_words"

    def __init__(self, words: Sequence[str], rowids: tuple[int, int] | None = None) -> None:
        spans = [literal(rowid, Integer()) for rowid in rowids] if rowids else []
        super().__init__(literal(tuple(words), _SearchWords()), *spans)


class PromptHasWordsInWindow(PromptHasWords):
    """The same, asked of the few jobs of a search window (``browse._window``): on SQLite FTS5 reads
    only the part of each word's list within the window's rowid span; on PostgreSQL each job of
    the window read in page order has its words checked, instead of the GIN index giving every
    match in the library (all of a common word's) first."""

    inherit_cache = True
    name = "prompt_has_words_in_window"


@compiles(PromptHasWords, "sqlite")
def _fts5_match(element: PromptHasWords, compiler: SQLCompiler, **kw: Any) -> str:
    # Migration 0005: an external-content FTS5 table over jobs.prompt whose rowids are the jobs'.
    words, *span = (compiler.process(argument, **kw) for argument in element.clauses)
    within = f" AND rowid BETWEEN {span[0]} AND {span[1]}" if span else ""
    return f"jobs.rowid IN (SELECT rowid FROM jobs_fts WHERE jobs_fts MATCH {words}{within})"


@compiles(PromptHasWords, "postgresql")
def _tsquery_match(element: PromptHasWords, compiler: SQLCompiler, **kw: Any) -> str:
    # Migration 0009: jobs.prompt_words, a stored tsvector under a GIN index. The query's words
    # lose their accents as the prompts' words did; 'simple' lowercases them and stems nothing.
    words, *span = (compiler.process(argument, **kw) for argument in element.clauses)
    if span:
        raise CompileError("a rowid span narrows a search on SQLite only")
    query = f"to_tsquery('simple', fold_for_search({words}))"
    if isinstance(element, PromptHasWordsInWindow):
        # The function behind @@: the planner answers an operator from an index, never a call.
        return f"ts_match_vq(jobs.prompt_words, {query})"
    return f"jobs.prompt_words @@ {query}"


def has_full_text(db: Database) -> bool:
    """Whether this database has a full-text index of prompts: the FTS5 table on SQLite built
    with FTS5 (migration 0005), the tsvector column on PostgreSQL (migration 0009)."""
    known = getattr(db, "_has_full_text", None)
    if known is None:
        probe = {
            "sqlite": "SELECT 1 FROM sqlite_master WHERE name = 'jobs_fts'",
            "postgresql": "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('jobs') "
            "AND attname = 'prompt_words' AND NOT attisdropped",
        }.get(db.engine.dialect.name)
        known = False
        if probe:
            with db.read() as session:
                known = session.execute(text(probe)).first() is not None
        db._has_full_text = known  # type: ignore[attr-defined]
    return known
