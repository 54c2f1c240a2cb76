"""What a person set in the app, kept: the inspector_settings table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-16

One row per inspector and setting key, the value as JSON, with the time it was last
set (`db.settings` reads and writes it). The keys carry no CHECK constraint on
purpose: their vocabulary, types and defaults are one table in `db/settings.py`,
checked on every write, so a new setting needs no migration; a key a later version
drops is simply ignored on reading. Frozen like 0001.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inspector_settings",
        sa.Column("inspector_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("value", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("inspector_id", "key", name="pk_inspector_settings"),
        sa.ForeignKeyConstraint(["inspector_id"], ["inspectors.id"],
                                name="fk_inspector_settings_inspector_id_inspectors"),
    )


def downgrade() -> None:
    op.drop_table("inspector_settings")
