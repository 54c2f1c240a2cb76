"""The whole inspection schema: spectra, model versions, predictions, inspectors, append-only decisions
and resolutions, triage flags, queue leases; triggers that refuse UPDATE/DELETE on the append-only tables.

Revision ID: 0001
Revises:
Create Date: 2026-05-20

Frozen: later changes go in new revisions (the constants below are copied,
not imported, so this file always creates the same schema).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
ACTIONS = "'accept', 'correct', 'not_qso', 'bad_spectrum', 'skip', 'resolve'"
TYPES = "'QSO', 'BAL QSO', 'STAR', 'GALAXY', 'UNKNOWN'"
APPEND_ONLY = ("decisions", "resolutions")


# Literal DDL for each table (no SQL is built by formatting strings, not even from constants).
SQLITE_TRIGGERS = {
    "decisions": (
        ("CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions "
        "BEGIN SELECT RAISE(ABORT, 'decisions is append-only: UPDATE refused'); END"),
        ("CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions "
        "BEGIN SELECT RAISE(ABORT, 'decisions is append-only: DELETE refused'); END"),
    ),
    "resolutions": (
        ("CREATE TRIGGER resolutions_no_update BEFORE UPDATE ON resolutions "
        "BEGIN SELECT RAISE(ABORT, 'resolutions is append-only: UPDATE refused'); END"),
        ("CREATE TRIGGER resolutions_no_delete BEFORE DELETE ON resolutions "
        "BEGIN SELECT RAISE(ABORT, 'resolutions is append-only: DELETE refused'); END"),
    ),
}
SQLITE_DROP_TRIGGERS = {
    "decisions": ("DROP TRIGGER IF EXISTS decisions_no_update", "DROP TRIGGER IF EXISTS decisions_no_delete"),
    "resolutions": ("DROP TRIGGER IF EXISTS resolutions_no_update", "DROP TRIGGER IF EXISTS resolutions_no_delete"),
}
PG_FUNCTION = (
    "CREATE FUNCTION fnet_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$"
)
PG_DROP_FUNCTION = "DROP FUNCTION IF EXISTS fnet_append_only()"
PG_TRIGGERS = {
    "decisions": (
        ("CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions "
        "FOR EACH ROW EXECUTE FUNCTION fnet_append_only()"),
        ("CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions "
        "FOR EACH STATEMENT EXECUTE FUNCTION fnet_append_only()"),
    ),
    "resolutions": (
        ("CREATE TRIGGER resolutions_append_only BEFORE UPDATE OR DELETE ON resolutions "
        "FOR EACH ROW EXECUTE FUNCTION fnet_append_only()"),
        ("CREATE TRIGGER resolutions_no_truncate BEFORE TRUNCATE ON resolutions "
        "FOR EACH STATEMENT EXECUTE FUNCTION fnet_append_only()"),
    ),
}
PG_DROP_TRIGGERS = {
    "decisions": ("DROP TRIGGER IF EXISTS decisions_append_only ON decisions",
                  "DROP TRIGGER IF EXISTS decisions_no_truncate ON decisions"),
    "resolutions": ("DROP TRIGGER IF EXISTS resolutions_append_only ON resolutions",
                    "DROP TRIGGER IF EXISTS resolutions_no_truncate ON resolutions"),
}  # fmt: skip


def _statements(sqlite: dict[str, tuple[str, ...]], pg: dict[str, tuple[str, ...]], table: str) -> tuple[str, ...]:
    dialect = op.get_bind().dialect.name
    return {"sqlite": sqlite, "postgresql": pg}.get(dialect, {}).get(table, ())


def create_append_only_triggers(table: str) -> None:
    """BEFORE UPDATE / DELETE (and TRUNCATE on PostgreSQL) -> error, for 'decisions' or 'resolutions'.

    Later revisions that rebuild one of these tables in SQLite batch mode call
    this again (a rebuild drops the table's triggers).
    """
    assert table in APPEND_ONLY
    for stmt in _statements(SQLITE_TRIGGERS, PG_TRIGGERS, table):
        op.execute(stmt)


def drop_append_only_triggers(table: str) -> None:
    assert table in APPEND_ONLY
    for stmt in _statements(SQLITE_DROP_TRIGGERS, PG_DROP_TRIGGERS, table):
        op.execute(stmt)


def upgrade() -> None:
    op.create_table(
        "spectra",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("object_id", sa.String(128), nullable=False),
        sa.Column("survey", sa.String(32)),
        sa.Column("plate", sa.Integer()),
        sa.Column("mjd", sa.Integer()),
        sa.Column("fiberid", sa.Integer()),
        sa.Column("targetid", sa.BigInteger()),
        sa.Column("ra", sa.Float()),
        sa.Column("dec", sa.Float()),
        sa.Column("file", sa.Text()),
        sa.Column("store_row", sa.BigInteger()),
        sa.Column("sn", sa.Float()),
        sa.Column("spec_class", sa.String(16)),
        sa.Column("z_file", sa.Float()),
        sa.Column("zwarning", sa.BigInteger()),
        sa.Column("z_catalog", sa.Float()),
        sa.Column("z_pipe", sa.Float()),
        sa.Column("z_qn", sa.Float()),
        sa.Column("z_pca", sa.Float()),
        sa.Column("z_vi", sa.Float()),
        sa.Column("class_person", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_spectra"),
        sa.UniqueConstraint("object_id", name="uq_spectra_object_id"),
    )
    op.create_index("ix_spectra_plate_mjd_fiberid", "spectra", ["plate", "mjd", "fiberid"])
    op.create_index("ix_spectra_targetid", "spectra", ["targetid"])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("sha1", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.Integer()),
        sa.Column("config", JSON),
        sa.Column("data_hash", sa.String(128)),
        sa.Column("label_count", sa.Integer()),
        sa.Column("metrics", JSON),
        sa.Column("path", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("sha1", name="uq_model_versions_sha1"),
        sa.ForeignKeyConstraint(["parent_id"], ["model_versions.id"],
                                name="fk_model_versions_parent_id_model_versions"),
    )
    op.create_index("uq_model_versions_current", "model_versions", ["is_current"], unique=True,
                    sqlite_where=sa.text("is_current"), postgresql_where=sa.text("is_current"))

    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("spectrum_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("z", sa.Float()),
        sa.Column("z_err", sa.Float()),
        sa.Column("p", sa.Float()),
        sa.Column("alternatives", JSON),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
        sa.UniqueConstraint("spectrum_id", "model_version_id", name="uq_predictions_spectrum_id"),
        sa.ForeignKeyConstraint(["spectrum_id"], ["spectra.id"], name="fk_predictions_spectrum_id_spectra"),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name="fk_predictions_model_version_id_model_versions"),
    )
    op.create_index("ix_predictions_model_version_id", "predictions", ["model_version_id"])

    op.create_table(
        "inspectors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inspectors"),
        sa.UniqueConstraint("name", name="uq_inspectors_name"),
    )

    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("spectrum_id", sa.Integer(), nullable=False),
        sa.Column("inspector_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("z_final", sa.Float()),
        sa.Column("quality", sa.Integer()),
        sa.Column("flags", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("spectral_type", sa.String(16)),
        sa.Column("comment", sa.Text()),
        sa.Column("decided_at", TS, nullable=False),
        sa.Column("model_version_id", sa.Integer()),
        sa.Column("z_model", sa.Float()),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        sa.ForeignKeyConstraint(["spectrum_id"], ["spectra.id"], name="fk_decisions_spectrum_id_spectra"),
        sa.ForeignKeyConstraint(["inspector_id"], ["inspectors.id"], name="fk_decisions_inspector_id_inspectors"),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name="fk_decisions_model_version_id_model_versions"),
        sa.CheckConstraint(f"action IN ({ACTIONS})", name="ck_decisions_action"),
        sa.CheckConstraint(f"spectral_type IN ({TYPES})", name="ck_decisions_spectral_type"),
        sa.CheckConstraint("z_final >= 0.0 AND z_final <= 7.5", name="ck_decisions_z_final"),
        sa.CheckConstraint("quality >= 0 AND quality <= 4", name="ck_decisions_quality"),
        sa.CheckConstraint("flags >= 0 AND flags <= 7", name="ck_decisions_flags"),
        sa.CheckConstraint("length(comment) <= 2000", name="ck_decisions_comment"),
    )
    op.create_index("ix_decisions_spectrum", "decisions", ["spectrum_id", "inspector_id", "id"])
    op.create_index("ix_decisions_inspector", "decisions", ["inspector_id", "id"])
    op.create_index("ix_decisions_action", "decisions", ["action", "spectrum_id"])

    op.create_table(
        "resolutions",
        sa.Column("resolution_id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("resolution_id", "decision_id", name="pk_resolutions"),
        sa.ForeignKeyConstraint(["resolution_id"], ["decisions.id"], name="fk_resolutions_resolution_id_decisions"),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"], name="fk_resolutions_decision_id_decisions"),
    )
    op.create_index("ix_resolutions_decision_id", "resolutions", ["decision_id"])

    op.create_table(
        "triage_flags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("spectrum_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("value", sa.Float()),
        sa.Column("model_version_id", sa.Integer()),
        sa.Column("priority", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("n_inspectors", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("first_inspector_id", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_triage_flags"),
        sa.UniqueConstraint("spectrum_id", "rule", name="uq_triage_flags_spectrum_id"),
        sa.ForeignKeyConstraint(["spectrum_id"], ["spectra.id"], name="fk_triage_flags_spectrum_id_spectra"),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name="fk_triage_flags_model_version_id_model_versions"),
        sa.ForeignKeyConstraint(["first_inspector_id"], ["inspectors.id"],
                                name="fk_triage_flags_first_inspector_id_inspectors"),
    )
    op.create_index("ix_triage_queue", "triage_flags", ["n_inspectors", "priority", "spectrum_id"])
    op.create_index("ix_triage_rule_queue", "triage_flags", ["rule", "n_inspectors", "priority", "spectrum_id"])
    op.create_index("ix_triage_crosscheck", "triage_flags",
                    ["n_inspectors", "first_inspector_id", "priority", "spectrum_id"])

    op.create_table(
        "queue_leases",
        sa.Column("spectrum_id", sa.Integer(), nullable=False),
        sa.Column("inspector_id", sa.Integer(), nullable=False),
        sa.Column("leased_at", TS, nullable=False),
        sa.Column("leased_until", TS, nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("spectrum_id", name="pk_queue_leases"),
        sa.ForeignKeyConstraint(["spectrum_id"], ["spectra.id"], name="fk_queue_leases_spectrum_id_spectra"),
        sa.ForeignKeyConstraint(["inspector_id"], ["inspectors.id"], name="fk_queue_leases_inspector_id_inspectors"),
        sa.CheckConstraint("purpose IN ('primary', 'crosscheck')", name="ck_queue_leases_purpose"),
    )
    op.create_index("ix_queue_leases_inspector", "queue_leases", ["inspector_id", "leased_until"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
    for table in APPEND_ONLY:
        create_append_only_triggers(table)


def downgrade() -> None:
    for table in APPEND_ONLY:
        drop_append_only_triggers(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_DROP_FUNCTION)
    for table in ("queue_leases", "triage_flags", "resolutions", "decisions", "inspectors", "predictions",
                  "model_versions", "spectra"):
        op.drop_table(table)
