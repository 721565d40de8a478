"""library and metrics: favourites, collections, the storage deletion outbox, daily job stats,
gallery indexes and (on SQLite with FTS5) a full-text index of prompts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# External-content FTS5 table over jobs.prompt, kept in step by triggers: the gallery's prompt
# search reads the index instead of scanning every prompt.
FTS_STATEMENTS = (
    "CREATE VIRTUAL TABLE jobs_fts USING fts5(prompt, content='jobs', content_rowid='rowid', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER jobs_fts_insert AFTER INSERT ON jobs BEGIN "
    "INSERT INTO jobs_fts(rowid, prompt) VALUES (new.rowid, new.prompt); END",
    "CREATE TRIGGER jobs_fts_delete AFTER DELETE ON jobs BEGIN "
    "INSERT INTO jobs_fts(jobs_fts, rowid, prompt) VALUES ('delete', old.rowid, old.prompt); END",
    "CREATE TRIGGER jobs_fts_update AFTER UPDATE OF prompt ON jobs BEGIN "
    "INSERT INTO jobs_fts(jobs_fts, rowid, prompt) VALUES ('delete', old.rowid, old.prompt); "
    "INSERT INTO jobs_fts(rowid, prompt) VALUES (new.rowid, new.prompt); END",
    "INSERT INTO jobs_fts(jobs_fts) VALUES ('rebuild')",
)


def _has_fts5(bind: sa.engine.Connection) -> bool:
    try:
        bind.exec_driver_sql("CREATE VIRTUAL TABLE temp._fts5_probe USING fts5(x)")
        bind.exec_driver_sql("DROP TABLE temp._fts5_probe")
        return True
    except sa.exc.DBAPIError:
        return False


def upgrade() -> None:
    op.create_table(
        "favourites",
        sa.Column("owner", sa.String(length=255), primary_key=True),
        sa.Column("asset_id", sa.Integer(), sa.ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_favourites_asset_id", "favourites", ["asset_id"])
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner", "name", name="uq_collections_owner_name"),
    )
    op.create_table(
        "collection_assets",
        sa.Column("collection_id", sa.Integer(), sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("asset_id", sa.Integer(), sa.ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_collection_assets_asset_id", "collection_assets", ["asset_id"])
    op.create_table(
        "storage_deletions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_table(
        "job_stats",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("provider", sa.String(length=64), primary_key=True),
        sa.Column("model", sa.String(length=128), primary_key=True),
        sa.Column("owner", sa.String(length=255), primary_key=True),
        sa.Column("kind", sa.String(length=16), primary_key=True),
        sa.Column("status", sa.String(length=16), primary_key=True),
        sa.Column("error_code", sa.String(length=64), primary_key=True),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("seconds_sum", sa.Float(), nullable=False),
        sa.Column("seconds_hist", sa.JSON(), nullable=False),
        sa.Column("usage_units", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
    )
    for column in ("kind", "status", "model", "owner"):
        op.create_index(f"ix_jobs_{column}_created", "jobs", [column, "created_at", "id"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and _has_fts5(bind):
        for statement in FTS_STATEMENTS:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("jobs_fts_insert", "jobs_fts_delete", "jobs_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS jobs_fts")
    for column in ("kind", "status", "model", "owner"):
        op.drop_index(f"ix_jobs_{column}_created", table_name="jobs")
    for table in ("job_stats", "storage_deletions", "collection_assets", "collections", "favourites"):
        op.drop_table(table)
