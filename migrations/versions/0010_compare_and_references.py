"""Comparisons, the images a job started from, and lineage between jobs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comparisons",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("winner_job_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_comparisons_owner_created", "comparisons", ["owner", "created_at"])
    _add_linked_column("derived_from", "jobs")
    op.add_column("jobs", sa.Column("derivation", sa.String(length=16), nullable=True))
    _add_linked_column("comparison_id", "comparisons")
    op.add_column("jobs", sa.Column("comparison_column", sa.Integer(), nullable=True))
    op.create_index("ix_jobs_derived_from", "jobs", ["derived_from"])
    op.create_index("ix_jobs_comparison_id", "jobs", ["comparison_id"])
    op.create_table(
        "job_inputs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.String(length=32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("storage", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=512), nullable=False),
        sa.Column("source_job_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("job_id", "index", name="uq_job_inputs_job_index"),
    )
    op.create_index("ix_job_inputs_job_id", "job_inputs", ["job_id"])
    op.create_index("ix_job_inputs_source_job_id", "job_inputs", ["source_job_id"])


def _add_linked_column(name: str, target: str) -> None:
    """A nullable ``jobs`` column referring to ``target``'s id (cleared by the code that deletes
    rows there, as ``retried_from`` is). SQLite takes the reference in ADD COLUMN itself;
    Alembic would rebuild the table for it (batch mode), which drops the search triggers."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE jobs ADD COLUMN {name} VARCHAR(32) REFERENCES {target} (id)")
    else:
        op.add_column("jobs", sa.Column(name, sa.String(length=32), sa.ForeignKey(f"{target}.id")))


def downgrade() -> None:
    bind = op.get_bind()
    # SQLite drops a column that refers to another table only by rebuilding the table, which
    # drops its triggers (the prompt search index's, migration 0005): they are put back after,
    # and the index rebuilt, as the copy may give the rows new rowids.
    triggers = []
    if bind.dialect.name == "sqlite":
        found = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'jobs'")
        triggers = [row[0] for row in found]
    op.drop_table("job_inputs")
    op.drop_index("ix_jobs_comparison_id", "jobs")
    op.drop_index("ix_jobs_derived_from", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("comparison_column")
        batch.drop_column("comparison_id")
        batch.drop_column("derivation")
        batch.drop_column("derived_from")
    op.drop_table("comparisons")
    for trigger in triggers:
        op.execute(trigger)
    if triggers:
        op.execute("INSERT INTO jobs_fts(jobs_fts) VALUES ('rebuild')")
