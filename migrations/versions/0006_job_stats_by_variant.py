"""job stats keyed by price variant (costs computed when read) and times to result counted per
bucket in their own table; both backfilled from the jobs table; an index for the latest message
of each failure reason

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _job_stats(*, with_variant: bool) -> None:
    columns = [
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("provider", sa.String(length=64), primary_key=True),
        sa.Column("model", sa.String(length=128), primary_key=True),
        sa.Column("owner", sa.String(length=255), primary_key=True),
        sa.Column("kind", sa.String(length=16), primary_key=True),
        sa.Column("status", sa.String(length=16), primary_key=True),
        sa.Column("error_code", sa.String(length=64), primary_key=True),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("seconds_sum", sa.Float(), nullable=False),
    ]
    if with_variant:
        columns.insert(7, sa.Column("variant", sa.String(length=64), primary_key=True))
        columns.append(sa.Column("usage_units", sa.Float(), nullable=False))
    else:
        columns += [
            sa.Column("seconds_hist", sa.JSON(), nullable=False),
            sa.Column("usage_units", sa.Float(), nullable=False),
            sa.Column("cost_usd", sa.Float(), nullable=False),
        ]
    op.create_table("job_stats", *columns)


def upgrade() -> None:
    # Nothing wrote the 0005 table (its writer arrives with this revision), so it is replaced
    # rather than altered: SQLite cannot change a primary key in place.
    op.drop_table("job_stats")
    _job_stats(with_variant=True)
    op.create_table(
        "job_durations",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("provider", sa.String(length=64), primary_key=True),
        sa.Column("model", sa.String(length=128), primary_key=True),
        sa.Column("owner", sa.String(length=255), primary_key=True),
        sa.Column("kind", sa.String(length=16), primary_key=True),
        sa.Column("bucket", sa.Integer(), primary_key=True),
        sa.Column("jobs", sa.Integer(), nullable=False),
    )
    op.create_index("ix_jobs_error_code_created", "jobs", ["error_code", "created_at"])
    # The roll-up of the jobs finished so far. This calls the application's own code on purpose:
    # the roll-up is derived data, rebuilt the same way by `mediagen db rebuild-metrics`.
    from mediagen.admin.rollup import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_jobs_error_code_created", table_name="jobs")
    op.drop_table("job_durations")
    op.drop_table("job_stats")
    _job_stats(with_variant=False)
