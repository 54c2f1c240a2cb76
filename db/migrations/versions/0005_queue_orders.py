"""The queue in other orders than priority: triage_flags.sn and z_fnet, each with its queue index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-16

An inspector may take the queue by best S/N or by lowest FNet z (`db.queue.ORDERS`).
Those values live in `spectra.sn` and `predictions.z`; a queue read through them would
walk past every spectrum already decided, since what is decided is known only on
`triage_flags`. So the flag rows carry copies (nullable: a spectrum without an S/N or a
z keeps NULL, and the queue puts those last), and each order gets an index that starts
with `n_inspectors` like `ix_triage_queue`, keeping `next_item` one index range scan.
Rows already there are filled from the spectra and predictions (the flag's model
version, else the current model's). Frozen like 0001.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Literal SQL (no statement is built by formatting strings); valid on SQLite and PostgreSQL.
BACKFILL = (
    "UPDATE triage_flags SET "
    "sn = (SELECT spectra.sn FROM spectra WHERE spectra.id = triage_flags.spectrum_id), "
    "z_fnet = (SELECT predictions.z FROM predictions WHERE predictions.spectrum_id = triage_flags.spectrum_id "
    "AND predictions.model_version_id = COALESCE(triage_flags.model_version_id, "
    "(SELECT model_versions.id FROM model_versions WHERE model_versions.is_current)))"
)


def upgrade() -> None:
    with op.batch_alter_table("triage_flags") as batch:
        batch.add_column(sa.Column("sn", sa.Float()))
        batch.add_column(sa.Column("z_fnet", sa.Float()))
    op.execute(BACKFILL)
    # after the backfill: one index build instead of an index update per row
    op.create_index("ix_triage_sn_queue", "triage_flags", ["n_inspectors", "sn", "spectrum_id"])
    op.create_index("ix_triage_z_queue", "triage_flags", ["n_inspectors", "z_fnet", "spectrum_id"])


def downgrade() -> None:
    op.drop_index("ix_triage_z_queue", table_name="triage_flags")
    op.drop_index("ix_triage_sn_queue", table_name="triage_flags")
    with op.batch_alter_table("triage_flags") as batch:
        batch.drop_column("z_fnet")
        batch.drop_column("sn")
