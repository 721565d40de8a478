"""prompt search on PostgreSQL: a stored tsvector of each prompt's words with a GIN index, the
counterpart of SQLite's FTS5 index (0005)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Words are split, folded and matched as SQLite's unicode61 tokenizer (remove_diacritics 2) does,
# as closely as PostgreSQL allows; mediagen.jobs.browse builds the queries that read them.
#
# Configuration ``simple``: words are lowercased, never stemmed, and no word is a stop word.
# Accents come off Latin letters as unicode61 takes them off (é → e, ñ → n, ệ → e; ß, æ, ø and
# Greek or Cyrillic letters stay as they are): decompose (NFD) and drop the combining marks that
# follow a Latin letter. Immutable, so a generated column and the queries can both use it.
FOLD_FUNCTION = (
    "CREATE FUNCTION fold_for_search(words text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
    "AS $$ SELECT regexp_replace(normalize(words, NFD), '([A-Za-z])[\\u0300-\\u036f]+', '\\1', 'g') $$"
)
# Without UTF-8 the server cannot decompose: accents then stay (a search must type them).
FOLD_FUNCTION_WITHOUT_UTF8 = (
    "CREATE FUNCTION fold_for_search(words text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
    "AS $$ SELECT words $$"
)
# ASCII punctuation becomes a space first: PostgreSQL's parser would otherwise keep e-mail
# addresses, URLs, paths, hyphenated words and version numbers whole (or as extra compound
# words), where unicode61 splits them into their words.
PROMPT_WORDS = (
    "ALTER TABLE jobs ADD COLUMN prompt_words tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, "
    "fold_for_search(regexp_replace(prompt, '[\\u0001-\\u002f\\u003a-\\u0040\\u005b-\\u0060\\u007b-\\u007f]+', "
    "' ', 'g')))) STORED"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    utf8 = bind.exec_driver_sql("SHOW server_encoding").scalar() == "UTF8"
    op.execute(FOLD_FUNCTION if utf8 else FOLD_FUNCTION_WITHOUT_UTF8)
    op.execute(PROMPT_WORDS)
    op.create_index("ix_jobs_prompt_words", "jobs", [sa.text("prompt_words")], postgresql_using="gin")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_jobs_prompt_words", table_name="jobs")
    op.drop_column("jobs", "prompt_words")
    op.execute("DROP FUNCTION fold_for_search(text)")
