"""A star's or a nearby galaxy's redshift may be negative: decisions.z_final's lower bound goes to -0.01.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

The per-type ranges (a quasar's still starts at 0) are checked in `db.validate`
(`SpectralType.z_min`, `z_range`); the database keeps the widest bound any type allows,
so that no decision the vocabulary accepts is refused here. Literal bounds, frozen like
0001: a later change of the vocabulary needs a migration of its own.
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite changes a CHECK by copying the table, which drops its triggers: the append-only ones of 0001 come back
SQLITE_TRIGGERS = (
    "DROP TRIGGER IF EXISTS decisions_no_update",
    "DROP TRIGGER IF EXISTS decisions_no_delete",
    ("CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions "
     "BEGIN SELECT RAISE(ABORT, 'decisions is append-only: UPDATE refused'); END"),
    ("CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions "
     "BEGIN SELECT RAISE(ABORT, 'decisions is append-only: DELETE refused'); END"),
)
NAME = "ck_decisions_z_final"  # as 0001 named it (the metadata's naming convention prefixes it again)


def _swap(condition: str) -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_constraint(op.f(f"ck_decisions_{NAME}"), type_="check")
        batch.create_check_constraint(NAME, condition)
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def upgrade() -> None:
    _swap("z_final >= -0.01 AND z_final <= 7.5")


def downgrade() -> None:
    _swap("z_final >= 0.0 AND z_final <= 7.5")
