"""The risk model's answer beside each prediction: risk, z_best, z_best_source, risk_drivers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09

Nullable columns on `predictions` (rows written before this revision, or loaded from a
rules-only triage, keep NULL: the app then shows what it showed before). `risk` is
P(the automatic catalog answer, redshift or class, is wrong); `z_best` the redshift the
catalog adopts, from `z_best_source` ("fnet", "tpl" or "pipe"); `risk_drivers` one JSON
list of [feature, value, risk it adds], worked out only for the head of the queue. They
sit on the prediction, not the spectrum, because the risk model belongs to one FNet model
version. Frozen like 0001.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("risk", sa.Float()))
        batch.add_column(sa.Column("z_best", sa.Float()))
        batch.add_column(sa.Column("z_best_source", sa.String(8)))
        batch.add_column(sa.Column("risk_drivers", JSON))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        for name in ("risk_drivers", "z_best_source", "z_best", "risk"):
            batch.drop_column(name)
