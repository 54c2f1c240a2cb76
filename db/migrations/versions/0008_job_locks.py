"""One model job at a time: the job_locks table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20

A retrain, promote or rollback takes the row named "models" (`db.jobs`) for as long as it
runs, with a random token, what it does, its host and pid and a heartbeat; a second job
finds the row and refuses to start, unless the holder is gone (its pid on this host, or a
heartbeat older than the staleness limit), in which case it takes the row over. A table
rather than an advisory lock so that SQLite and PostgreSQL behave alike and the holder
can be named. Frozen like 0001.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_locks",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_locks"),
    )


def downgrade() -> None:
    op.drop_table("job_locks")
