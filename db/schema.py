"""The inspection database's tables (SQLAlchemy 2.0 typed ORM).

The schema is created and changed only by the Alembic migrations in
`db/migrations` (`db.engine.upgrade(url)`); `tests/persistence/test_db_schema.py` checks
that the migrations at head and these classes agree. Tables:

spectra          one row per stored spectrum: survey ids, position, store row, S/N, catalog z's
model_versions   one row per trained model (sha1 of its weights file); at most one is current
predictions      a model version's z, uncertainty, alternatives, class and risk for a spectrum (one per pair)
inspectors       the people (name unique)
decisions        APPEND-ONLY: every accept / correction / skip ever made, never updated or deleted
                 (triggers created by the migration refuse UPDATE and DELETE)
resolutions      APPEND-ONLY: which decisions a consensus 'resolve' decision settles
triage_flags     the rules that sent a spectrum to people, with the queue priority; carries the
                 number of inspectors who decided it (kept by `db.decisions`) and copies of the
                 spectrum's S/N and FNet z, so the queue, in each of its orders, is one index
                 range scan at any size
queue_leases     who is looking at what, until when (one live lease per spectrum)
inspector_settings  what each person set in the app, one JSON value per inspector and key (the
                 keys, their types and defaults: `db.settings.SETTINGS`)
job_locks        who runs a model job (retrain, promote, rollback) now, with a heartbeat, so that two
                 never run at once (`db.jobs`)

Times are stored in UTC and come back timezone-aware (`UTCDateTime`).
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    relationship,
)

from db.validate import (
    ACTIONS,
    COMMENT_MAX,
    FLAG_BY_NAME,
    FLAGS_ALL,
    INSPECTOR_NAME_MAX,
    LEASE_PURPOSES,
    QUALITY_MAX,
    QUALITY_MIN,
    SPECTRAL_TYPES,
    Z_MAX,
    Z_FLOOR,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A UTC timestamp: aware datetimes in and out (naive input is taken as UTC).

    PostgreSQL stores `timestamptz`; SQLite stores the naive UTC ISO string,
    which sorts and compares correctly as text.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def _in(column: str, values: tuple[str, ...] | list[str]) -> str:
    """A CHECK expression `column IN ('a', 'b')` from a constant table (never user input)."""
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONType, list[Any]: JSONType, datetime: UTCDateTime()}


class Spectrum(Base):
    __tablename__ = "spectra"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_id: Mapped[str] = mapped_column(String(128), unique=True)
    survey: Mapped[str | None] = mapped_column(String(32))
    plate: Mapped[int | None] = mapped_column(Integer)
    mjd: Mapped[int | None] = mapped_column(Integer)
    fiberid: Mapped[int | None] = mapped_column(Integer)
    targetid: Mapped[int | None] = mapped_column(BigInteger)
    ra: Mapped[float | None] = mapped_column(Float)
    dec: Mapped[float | None] = mapped_column(Float)
    file: Mapped[str | None] = mapped_column(Text)
    store_row: Mapped[int | None] = mapped_column(BigInteger)
    sn: Mapped[float | None] = mapped_column(Float)  # SN_MEDIAN_ALL
    spec_class: Mapped[str | None] = mapped_column(String(16))  # the pipeline's CLASS from the file
    z_file: Mapped[float | None] = mapped_column(Float)  # the pipeline's Z from the file
    zwarning: Mapped[int | None] = mapped_column(BigInteger)
    z_catalog: Mapped[float | None] = mapped_column(Float)  # the catalog's adopted Z
    z_pipe: Mapped[float | None] = mapped_column(Float)
    z_qn: Mapped[float | None] = mapped_column(Float)  # -1: QuasarNET gave no redshift
    z_pca: Mapped[float | None] = mapped_column(Float)
    z_vi: Mapped[float | None] = mapped_column(Float)
    class_person: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_spectra_plate_mjd_fiberid", "plate", "mjd", "fiberid"),
        Index("ix_spectra_targetid", "targetid"),
    )

    def __repr__(self) -> str:
        return f"Spectrum(id={self.id}, object_id={self.object_id!r})"


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    sha1: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    config: Mapped[dict[str, Any] | None]
    data_hash: Mapped[str | None] = mapped_column(String(128))
    label_count: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any] | None]
    path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    __table_args__ = (
        # at most one current model
        Index(
            "uq_model_versions_current", "is_current", unique=True,
            sqlite_where=text("is_current"), postgresql_where=text("is_current"),
        ),
    )  # fmt: skip

    def __repr__(self) -> str:
        return f"ModelVersion(id={self.id}, name={self.name!r}, sha1={self.sha1[:10]!r}, current={self.is_current})"


class Prediction(Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spectrum_id: Mapped[int] = mapped_column(ForeignKey("spectra.id"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    z: Mapped[float | None] = mapped_column(Float)
    z_err: Mapped[float | None] = mapped_column(Float)
    p: Mapped[float | None] = mapped_column(Float)  # posterior mass near z (bins head)
    alternatives: Mapped[list[Any] | None]  # [{"z": ..., "p": ...}, ...] best first
    # template fit (model-independent, stored with each prediction run; revision 0002)
    z_tpl: Mapped[float | None] = mapped_column(Float)
    z_tpl_err: Mapped[float | None] = mapped_column(Float)
    tpl_dchi2: Mapped[float | None] = mapped_column(Float)  # chi2 of the next minimum minus the best
    tpl_candidates: Mapped[list[Any] | None]  # [{"z": ..., "dchi2": ...}, ...] the next minima, best first
    # FNet's class head (revision 0003; NULL for a model without one)
    fnet_class: Mapped[str | None] = mapped_column(String(16))  # the most probable class (QSO, BAL, STAR, ...)
    p_qso: Mapped[float | None] = mapped_column(Float)  # probability of any quasar class
    class_probs: Mapped[dict[str, Any] | None]  # {class name: probability}, as the model names its classes
    # the risk model's answer (revision 0004; NULL before it, or after a rules-only triage)
    risk: Mapped[float | None] = mapped_column(Float)  # P(the automatic catalog answer, z or class, is wrong)
    z_best: Mapped[float | None] = mapped_column(Float)  # the catalog's z: the least risky estimate
    z_best_source: Mapped[str | None] = mapped_column(String(8))  # where z_best came from: fnet, tpl or pipe
    risk_drivers: Mapped[list[Any] | None]  # [[feature, value, risk it adds], ...] largest first (queue head only)

    __table_args__ = (UniqueConstraint("spectrum_id", "model_version_id"),)


class Inspector(Base):
    __tablename__ = "inspectors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(INSPECTOR_NAME_MAX), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"Inspector(id={self.id}, name={self.name!r})"


class Decision(Base):
    """One decision, never changed: a correction is a new row; `db.decisions.history` lists them all."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spectrum_id: Mapped[int] = mapped_column(ForeignKey("spectra.id"))
    inspector_id: Mapped[int] = mapped_column(ForeignKey("inspectors.id"))
    action: Mapped[str] = mapped_column(String(16))
    z_final: Mapped[float | None] = mapped_column(Float)
    quality: Mapped[int | None] = mapped_column(Integer)
    flags: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    spectral_type: Mapped[str | None] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    z_model: Mapped[float | None] = mapped_column(Float)  # the z that was on screen

    inspector: Mapped[Inspector] = relationship(lazy="joined", innerjoin=True, viewonly=True)
    # for a 'resolve' decision: the decisions it settles (load with selectinload before the session closes)
    resolves: Mapped[list[Decision]] = relationship(
        "Decision", secondary="resolutions", primaryjoin="Decision.id == Resolution.resolution_id",
        secondaryjoin="Decision.id == Resolution.decision_id", viewonly=True, order_by="Decision.id",
    )  # fmt: skip

    __table_args__ = (
        CheckConstraint(_in("action", [a.name for a in ACTIONS]), name="action"),
        CheckConstraint(_in("spectral_type", [t.name for t in SPECTRAL_TYPES]), name="spectral_type"),
        CheckConstraint(f"z_final >= {Z_FLOOR} AND z_final <= {Z_MAX}", name="z_final"),
        CheckConstraint(f"quality >= {QUALITY_MIN} AND quality <= {QUALITY_MAX}", name="quality"),
        CheckConstraint(f"flags >= 0 AND flags <= {FLAGS_ALL}", name="flags"),
        CheckConstraint(f"length(comment) <= {COMMENT_MAX}", name="comment"),
        Index("ix_decisions_spectrum", "spectrum_id", "inspector_id", "id"),
        Index("ix_decisions_inspector", "inspector_id", "id"),
        Index("ix_decisions_action", "action", "spectrum_id"),
    )

    @property
    def flag_names(self) -> list[str]:
        return [n for n, f in FLAG_BY_NAME.items() if self.flags & f.bit]

    @property
    def bad_z(self) -> bool:
        return bool(self.flags & FLAG_BY_NAME["bad_z"].bit)

    @property
    def bad_class(self) -> bool:
        return bool(self.flags & FLAG_BY_NAME["bad_class"].bit)

    @property
    def bad_spectrum(self) -> bool:
        return bool(self.flags & FLAG_BY_NAME["bad_spectrum"].bit)

    def __repr__(self) -> str:
        return (
            f"Decision(id={self.id}, spectrum_id={self.spectrum_id}, inspector_id={self.inspector_id}, "
            f"action={self.action!r}, z_final={self.z_final}, quality={self.quality})"
        )


class Resolution(Base):
    """Links a 'resolve' decision to each decision it settles (append-only as decisions)."""

    __tablename__ = "resolutions"

    resolution_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), primary_key=True, index=True)


class TriageFlag(Base):
    """A triage rule that fired for a spectrum (one row per spectrum and rule).

    `priority` orders the queue (higher first). `n_inspectors` (distinct people
    with a deciding action on the spectrum) and `first_inspector_id` are kept
    by `db.decisions.record_decision` and `db.load.load_triage_flags`; they let
    the queue and the cross-check pick be index range scans.

    `sn` and `z_fnet` are the spectrum's S/N and the z of the flag's model
    version (the current model's where the flag names none), copied by
    `db.load.load_triage_flags` (revision 0005): the queue's other orders
    (`db.queue.ORDERS`) then read an index that starts with `n_inspectors`, as
    the priority order does, instead of walking the spectra or predictions past
    every spectrum already decided. Like the rules and priorities, they are a
    snapshot of what the triage run read.
    """

    __tablename__ = "triage_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spectrum_id: Mapped[int] = mapped_column(ForeignKey("spectra.id"))
    rule: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    priority: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    n_inspectors: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    first_inspector_id: Mapped[int | None] = mapped_column(ForeignKey("inspectors.id"))
    sn: Mapped[float | None] = mapped_column(Float)  # spectra.sn, copied (revision 0005)
    z_fnet: Mapped[float | None] = mapped_column(Float)  # predictions.z of the flag's model, copied (0005)

    __table_args__ = (
        UniqueConstraint("spectrum_id", "rule"),
        # the queue reads these backwards: ORDER BY priority DESC, spectrum_id DESC
        Index("ix_triage_queue", "n_inspectors", "priority", "spectrum_id"),
        Index("ix_triage_rule_queue", "rule", "n_inspectors", "priority", "spectrum_id"),
        Index("ix_triage_crosscheck", "n_inspectors", "first_inspector_id", "priority", "spectrum_id"),
        # the "sn" order reads its index backwards (best S/N first), the "z" order forwards (lowest z first)
        Index("ix_triage_sn_queue", "n_inspectors", "sn", "spectrum_id"),
        Index("ix_triage_z_queue", "n_inspectors", "z_fnet", "spectrum_id"),
    )


class QueueLease(Base):
    """A spectrum handed to an inspector until `leased_until` (one row per spectrum; expired rows are taken over)."""

    __tablename__ = "queue_leases"

    spectrum_id: Mapped[int] = mapped_column(ForeignKey("spectra.id"), primary_key=True)
    inspector_id: Mapped[int] = mapped_column(ForeignKey("inspectors.id"))
    leased_at: Mapped[datetime] = mapped_column(default=utcnow)
    leased_until: Mapped[datetime]
    purpose: Mapped[str] = mapped_column(String(16), default="primary")

    __table_args__ = (
        CheckConstraint(_in("purpose", LEASE_PURPOSES), name="purpose"),
        Index("ix_queue_leases_inspector", "inspector_id", "leased_until"),
    )


class InspectorSetting(Base):
    """One thing a person set in the app (smoothing, queue order...), kept across sessions and machines.

    One row per inspector and key, the value as JSON (revision 0006). The keys
    are not constrained in the database: their vocabulary, types and defaults
    are the one table `db.settings.SETTINGS`, checked on every write, so a new
    setting needs no migration.
    """

    __tablename__ = "inspector_settings"

    inspector_id: Mapped[int] = mapped_column(ForeignKey("inspectors.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"InspectorSetting(inspector_id={self.inspector_id}, key={self.key!r}, value={self.value!r})"


class JobLock(Base):
    """The one model job (retrain, promote, rollback) allowed to run now, by lock name (revision 0008).

    A row exists while a job holds the lock: its random token (the holder checks it before it makes a
    version current, so a job whose lock was taken over cannot switch the model), what it is doing,
    where it runs (host and pid) and its last heartbeat. `db.jobs` takes a stale row over: its holder's
    pid is gone on this host, or its heartbeat is older than the staleness limit.
    """

    __tablename__ = "job_locks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))
    job: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"JobLock(name={self.name!r}, job={self.job!r}, host={self.host!r}, pid={self.pid})"


APPEND_ONLY_TABLES = ("decisions", "resolutions")


class AppendOnlyError(RuntimeError):
    """An attempt to change or delete a decision (they are append-only: record a new one instead)."""


@event.listens_for(Session, "before_flush")
def _refuse_decision_changes(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, (Decision, Resolution)):
            raise AppendOnlyError(f"{obj!r}: decisions are append-only, never deleted")
    for obj in session.dirty:
        if isinstance(obj, (Decision, Resolution)) and session.is_modified(obj, include_collections=False):
            raise AppendOnlyError(f"{obj!r}: decisions are append-only; record a new decision instead of editing")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_decision_changes(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in APPEND_ONLY_TABLES:
            raise AppendOnlyError(f"UPDATE/DELETE on {table.name} refused: decisions are append-only")

__all__ = [
    "APPEND_ONLY_TABLES", "AppendOnlyError", "Base", "Decision", "Inspector", "InspectorSetting", "JobLock",
    "ModelVersion",
    "Prediction", "QueueLease",
    "Resolution", "Spectrum", "TriageFlag", "UTCDateTime", "utcnow",
]  # fmt: skip
