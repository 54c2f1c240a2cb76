"""FNet's class beside each prediction: fnet_class, p_qso, class_probs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Nullable columns on `predictions` (rows written before this revision, or by a
model without a class head, keep NULL). `class_probs` is one JSON object
{class name: probability}, not one column per class: the class list belongs to
the model (`model.classes`), which db/ does not import, and a JSON map keyed by
name stays readable if that list changes; `fnet_class` and `p_qso`, what the
queue, the export and SQL filters read, are real columns. Frozen like 0001.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("fnet_class", sa.String(16)))
        batch.add_column(sa.Column("p_qso", sa.Float()))
        batch.add_column(sa.Column("class_probs", JSON))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        for name in ("class_probs", "p_qso", "fnet_class"):
            batch.drop_column(name)
