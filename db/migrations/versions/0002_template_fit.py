"""Template-fit redshift beside each prediction: z_tpl, z_tpl_err, tpl_dchi2, tpl_candidates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Nullable columns on `predictions` (rows written before this revision, or by a
prediction run without the template fit, keep NULL). Frozen like 0001.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
COLUMNS = ("z_tpl", "z_tpl_err", "tpl_dchi2")


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Float()))
        batch.add_column(sa.Column("tpl_candidates", JSON))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        for name in ("tpl_candidates", *reversed(COLUMNS)):
            batch.drop_column(name)
