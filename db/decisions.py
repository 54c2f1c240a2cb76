"""Recording decisions (append-only) and reading them back: history and the current state.

    with session_scope(engine) as s:
        d = record_decision(s, "7166-56602-0590", "alice", "correct", z_final=2.31, quality=4,
                            flags=["bad_z"], comment="CIV and CIII] clear", model_version_id=mv.id, z_model=0.83)
        history(s, "7166-56602-0590")  # every decision on it, oldest first

Each `record_decision` call is one write transaction of its own (it commits;
see `db.engine.run_write`): the decision, the resolution links of a 'resolve',
the triage counters the queue reads, and the release of the inspector's lease
on the spectrum all land together or not at all.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, delete, distinct, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached, selectinload

from db.engine import prebuilt, run, run_write
from db.schema import (
    Decision,
    Inspector,
    ModelVersion,
    QueueLease,
    Resolution,
    Spectrum,
    TriageFlag,
    utcnow,
)
from db.validate import DECIDING_ACTIONS, DecisionError, check_decision, check_name

SpectrumRef = int | str | Spectrum


# --------------------------------------------------------------------------- lookups
def insert_ignore(session: Session, model: Any, values: dict[str, Any], conflict: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT (conflict) DO NOTHING, on SQLite or PostgreSQL."""
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model).values(**values)
    session.execute(ins.on_conflict_do_nothing(index_elements=list(conflict)))


def inspector_id(session: Session, name: str, *, create: bool = True) -> int | None:
    """The id of inspector `name` (trimmed); created on first use when `create` (safe under concurrency)."""
    name = check_name(name)
    q = prebuilt(("inspector id",), lambda: select(Inspector.id).where(Inspector.name == bindparam("name")))
    found = run(session, q, {"name": name}).scalar()
    if found is not None or not create:
        return found
    insert_ignore(session, Inspector, {"name": name, "created_at": utcnow()}, ["name"])
    return run(session, q, {"name": name}).scalar()


def get_inspector(session: Session, name: str) -> Inspector:
    """The `Inspector` row for `name`, created on first use (flushes, does not commit)."""
    iid = inspector_id(session, name)
    return session.get_one(Inspector, iid)


def _ref_key(ref: SpectrumRef) -> int | str:
    """What a spectrum reference looks up: spectra.id (an int or a `Spectrum`) or the object id (a str)."""
    if isinstance(ref, Spectrum):
        return ref.id
    if isinstance(ref, numbers.Integral) and not isinstance(ref, bool):
        return int(ref)
    if isinstance(ref, str):
        return ref
    raise DecisionError("spectrum", ref, "must be a spectrum id (int), an object id (str) or a Spectrum")


def spectrum_id(session: Session, ref: SpectrumRef, *, lock: bool = False) -> int:
    """The spectra.id of `ref`; DecisionError if there is none. `lock`: FOR UPDATE on PostgreSQL."""
    key = _ref_key(ref)
    by_id = isinstance(key, int)
    q = prebuilt(("spectrum id", by_id, lock), lambda: _spectrum_id_query(by_id, lock))
    sid = run(session, q, {"key": key}).scalar()
    if sid is None:
        raise DecisionError("spectrum", ref.object_id if isinstance(ref, Spectrum) else ref, "is not in the database")
    return sid


def _spectrum_id_query(by_id: bool, lock: bool) -> Any:
    q = select(Spectrum.id).where((Spectrum.id if by_id else Spectrum.object_id) == bindparam("key"))
    return q.with_for_update() if lock else q


def get_spectrum(session: Session, ref: SpectrumRef) -> Spectrum:
    return session.get_one(Spectrum, spectrum_id(session, ref))


# --------------------------------------------------------------------------- writing
def refresh_triage_counters(session: Session, spectrum_ids: Iterable[int] | None = None) -> None:
    """Recompute triage_flags.n_inspectors / first_inspector_id from the decisions (all rows if None)."""
    if spectrum_ids is None:
        session.execute(_counters_update().execution_options(synchronize_session=False))
        return
    ids = list(spectrum_ids)
    if ids:  # every decision comes here with its one spectrum: the statement is built once
        stmt = prebuilt(("triage counters of",), lambda: _counters_update().where(
            TriageFlag.spectrum_id.in_(bindparam("ids", expanding=True))))
        run(session, stmt, {"ids": ids})


def _counters_update() -> Any:
    tf = TriageFlag
    deciding = (Decision.spectrum_id == tf.spectrum_id) & Decision.action.in_(DECIDING_ACTIONS)
    n = select(func.count(distinct(Decision.inspector_id))).where(deciding).scalar_subquery()
    first = select(Decision.inspector_id).where(deciding).order_by(Decision.id).limit(1).scalar_subquery()
    return update(tf).values(n_inspectors=n, first_inspector_id=first)


def record_decision(
    session: Session,
    spectrum: SpectrumRef,
    inspector: str,
    action: str,
    z_final: float | None = None,
    quality: int | None = None,
    flags: Any = None,
    spectral_type: str | None = None,
    comment: str | None = None,
    model_version_id: int | None = None,
    z_model: float | None = None,
    *,
    resolves: Iterable[int] | None = None,
    decided_at: datetime | None = None,
) -> Decision:
    """Append one decision and commit; returns it (with its id).

    spectrum: spectra.id (int), object id (str) or a `Spectrum`.
    action: one of `db.validate.ACTIONS` (accept with no z_final takes z_model).
    flags: issue flag names, a {name: bool} mapping or a bitmask (`db.validate.FLAGS`).
    resolves: for action 'resolve' only, the ids of the decisions (on this spectrum) it settles.
    decided_at: default now (UTC); give it only to import decisions made elsewhere.

    Values are checked first (`DecisionError` naming the field); then, in one
    transaction: the decision row, its resolution links, the queue's triage
    counters, and the release of this inspector's lease on the spectrum.
    """
    clean = check_decision(action, z_final, quality, flags, spectral_type, comment, z_model)
    name = check_name(inspector)
    resolve_ids = sorted({int(i) for i in resolves}) if resolves is not None else []
    if clean.action == "resolve" and not resolve_ids:
        raise DecisionError("resolves", resolves, "must list the decisions a 'resolve' settles")
    if clean.action != "resolve" and resolve_ids:
        raise DecisionError("resolves", resolves, f"is only for action 'resolve', not {clean.action!r}")
    if model_version_id is not None and (
        isinstance(model_version_id, bool) or not isinstance(model_version_id, numbers.Integral)
    ):
        raise DecisionError("model_version_id", model_version_id, "must be a model version id (int) or None")
    if decided_at is not None and not isinstance(decided_at, datetime):
        raise DecisionError("decided_at", decided_at, "must be a datetime")

    def work() -> Decision:
        sid = spectrum_id(session, spectrum, lock=True)  # PostgreSQL: decisions on one spectrum in turn
        iid = inspector_id(session, name)
        known = prebuilt(("model version known",), lambda: select(ModelVersion.id).where(ModelVersion.id == bindparam("mv")))
        if model_version_id is not None and run(session, known, {"mv": int(model_version_id)}).first() is None:
            raise DecisionError("model_version_id", model_version_id, "is not a known model version")
        if resolve_ids:
            found = session.scalars(
                select(Decision.id).where(Decision.id.in_(resolve_ids), Decision.spectrum_id == sid)
            ).all()
            missing = sorted(set(resolve_ids) - set(found))
            if missing:
                raise DecisionError("resolves", missing, "are not decisions on this spectrum")
        values = dict(
            spectrum_id=sid, inspector_id=iid, action=clean.action, z_final=clean.z_final, quality=clean.quality,
            flags=clean.flags, spectral_type=clean.spectral_type, comment=clean.comment,
            decided_at=decided_at or utcnow(),
            model_version_id=None if model_version_id is None else int(model_version_id), z_model=clean.z_model,
        )  # fmt: skip
        add = prebuilt(("insert decision",), lambda: insert(Decision).returning(Decision.id))
        d = Decision(id=run(session, add, values).scalar_one(), **values)  # the row as written, no flush needed
        make_transient_to_detached(d)
        session.add(d)
        for rid in resolve_ids:
            session.add(Resolution(resolution_id=d.id, decision_id=rid))
        if clean.action in DECIDING_ACTIONS:
            refresh_triage_counters(session, [sid])
        release = prebuilt(("release one lease",), lambda: delete(QueueLease).where(
            QueueLease.spectrum_id == bindparam("sid"), QueueLease.inspector_id == bindparam("me")))
        run(session, release, {"sid": sid, "me": iid})
        return d

    return run_write(session, work)


# --------------------------------------------------------------------------- reading
def history(session: Session, spectrum: SpectrumRef) -> list[Decision]:
    """Every decision on a spectrum, oldest first (inspector and `resolves` loaded)."""
    sid = spectrum_id(session, spectrum)
    q = (
        select(Decision)
        .where(Decision.spectrum_id == sid)
        .options(selectinload(Decision.resolves))
        .order_by(Decision.id)
    )
    return list(session.scalars(q).unique())


def latest_query(
    spectrum_ids: Iterable[int] | None = None, actions: Sequence[str] = DECIDING_ACTIONS
) -> Select[tuple[Decision]]:
    """SELECT the latest decision per (spectrum, inspector) among `actions`."""
    last = select(func.max(Decision.id)).where(Decision.action.in_(list(actions)))
    if spectrum_ids is not None:
        last = last.where(Decision.spectrum_id.in_(list(spectrum_ids)))
    last = last.group_by(Decision.spectrum_id, Decision.inspector_id)
    return select(Decision).where(Decision.id.in_(last)).order_by(Decision.spectrum_id, Decision.id)


def latest_decisions(
    session: Session,
    spectrum_ids: Iterable[int] | None = None,
    *,
    include_skips: bool = False,
) -> list[Decision]:
    """The current state: each inspector's latest decision on each spectrum (older ones stay in `history`).

    Skips are left out unless `include_skips` (a skip is not a judgement).
    Ordered by spectrum, then decision id.
    """
    actions = DECIDING_ACTIONS + (("skip",) if include_skips else ())
    ids = None if spectrum_ids is None else list(spectrum_ids)
    if ids is not None and not ids:
        return []
    return list(session.scalars(latest_query(ids, actions)).unique())


DECISION_COLUMNS = (
    "decision_id", "spectrum_id", "object_id", "inspector", "action", "z_final", "quality", "flags",
    "spectral_type", "comment", "decided_at", "model_version_id", "z_model",
)  # fmt: skip


def decisions_frame(session: Session, *, latest_only: bool = True, include_skips: bool = False) -> Any:
    """Decisions as a pandas DataFrame (`DECISION_COLUMNS`), by spectrum then decision id.

    latest_only: each inspector's latest decision per spectrum (the current
    state, as `latest_decisions`); else every decision ever made. One query,
    no ORM objects: fit for exporting a whole survey's inspections.
    """
    import pandas as pd

    actions = list(DECIDING_ACTIONS + (("skip",) if include_skips else ()))
    q = (
        select(Decision.id, Decision.spectrum_id, Spectrum.object_id, Inspector.name, Decision.action,
               Decision.z_final, Decision.quality, Decision.flags, Decision.spectral_type, Decision.comment,
               Decision.decided_at, Decision.model_version_id, Decision.z_model)
        .join(Spectrum, Spectrum.id == Decision.spectrum_id)
        .join(Inspector, Inspector.id == Decision.inspector_id)
        .where(Decision.action.in_(actions))
        .order_by(Decision.spectrum_id, Decision.id)
    )  # fmt: skip
    if latest_only:
        last = (
            select(func.max(Decision.id))
            .where(Decision.action.in_(actions))
            .group_by(Decision.spectrum_id, Decision.inspector_id)
        )
        q = q.where(Decision.id.in_(last))
    return pd.DataFrame(session.execute(q).all(), columns=list(DECISION_COLUMNS))


def decisions_of(session: Session, inspector: str, *, limit: int | None = None) -> list[Decision]:
    """An inspector's decisions, newest first."""
    iid = inspector_id(session, inspector, create=False)
    if iid is None:
        return []
    q = select(Decision).where(Decision.inspector_id == iid).order_by(Decision.id.desc())
    return list(session.scalars(q.limit(limit) if limit else q).unique())


def count_decisions(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Decision)) or 0


__all__ = [
    "DECISION_COLUMNS", "count_decisions", "decisions_frame", "decisions_of", "get_inspector", "get_spectrum", "history", "inspector_id", "latest_decisions",
    "latest_query", "record_decision", "refresh_triage_counters", "spectrum_id",
]  # fmt: skip
