"""The inspection queue for several inspectors: next by priority under a lease, back/forward, jump, filter.

    spec = next_item(s, "alice")                 # leased to alice for 5 minutes
    record_decision(s, spec, "alice", "accept", quality=4, z_model=...)   # releases the lease
    prev = previous_item(s, "alice", spec)       # go back through what alice decided

`next_item` hands out the highest-priority spectrum flagged by triage that no
one has decided (a skip does not count: the spectrum stays for others) and no
one else holds a live lease on. The pick and the lease are one write
transaction: on SQLite it runs under `BEGIN IMMEDIATE` (one writer at a time),
on PostgreSQL the candidate row is taken with ``FOR UPDATE SKIP LOCKED``; in
both, the lease is an ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the old
lease expired, so two inspectors can never hold the same spectrum at once.

A fraction `crosscheck_fraction` of the calls first looks for a cross-check:
a spectrum decided by exactly one other inspector, sent to a second one on
purpose (consensus, `db.consensus`, compares the two). When nothing is left
undecided, `next_item` returns None even if cross-checks remain; ask with
``crosscheck_fraction=1`` for a pass of cross-checks only.

An inspector holds one lease at a time: one who already holds a live lease
that fits the filter gets that spectrum again (a reload does not lose the
place); taking a new one gives back any other.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.decisions import SpectrumRef, inspector_id, spectrum_id
from db.engine import run_write
from db.schema import Decision, QueueLease, Spectrum, TriageFlag, utcnow
from db.validate import DecisionError, check_rule

MAX_RACES = 20  # candidates lost to another inspector in a row before giving up (PostgreSQL only)


def _rules(rule: str | Iterable[str] | None) -> list[str] | None:
    if rule is None:
        return None
    rules = [check_rule(rule)] if isinstance(rule, str) else [check_rule(r) for r in rule]
    if not rules:
        raise DecisionError("rule", rule, "must name at least one rule (or be None for all)")
    return rules


def _candidate(session: Session, me: int, rules: list[str] | None, purpose: str, now: datetime,
               exclude: set[int]) -> int | None:
    """The best spectrum id for `purpose` ('primary' / 'crosscheck'), or None."""
    tf = TriageFlag
    live_other = exists().where(
        QueueLease.spectrum_id == tf.spectrum_id, QueueLease.leased_until > now, QueueLease.inspector_id != me
    )
    mine = exists().where(Decision.spectrum_id == tf.spectrum_id, Decision.inspector_id == me)
    base = select(tf.spectrum_id, tf.priority).where(~live_other, ~mine)
    if rules is not None:
        base = base.where(tf.rule.in_(rules))
    if exclude:
        base = base.where(tf.spectrum_id.not_in(sorted(exclude)))
    if purpose == "primary":
        queries = [base.where(tf.n_inspectors == 0)]
    else:  # decided by exactly one inspector, not me: two index ranges either side of my id
        one = base.where(tf.n_inspectors == 1)
        queries = [one.where(tf.first_inspector_id < me), one.where(tf.first_inspector_id > me)]
    postgres = session.get_bind().dialect.name == "postgresql"
    best: tuple[float, int] | None = None
    for q in queries:
        q = q.order_by(tf.priority.desc(), tf.spectrum_id.desc()).limit(1)
        if postgres:
            q = q.with_for_update(skip_locked=True, of=tf)
        row = session.execute(q).first()
        if row is not None and (best is None or (row.priority, row.spectrum_id) > best):
            best = (row.priority, row.spectrum_id)
    return None if best is None else best[1]


def _take(session: Session, sid: int, me: int, now: datetime, until: datetime, purpose: str) -> bool:
    """Lease `sid` to `me` unless someone else holds a live lease on it; True if taken."""
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(QueueLease).values(
        spectrum_id=sid, inspector_id=me, leased_at=now, leased_until=until, purpose=purpose
    )
    ex = ins.excluded
    ins = ins.on_conflict_do_update(
        index_elements=[QueueLease.spectrum_id],
        set_={"inspector_id": ex.inspector_id, "leased_at": ex.leased_at, "leased_until": ex.leased_until,
              "purpose": ex.purpose},
        where=(QueueLease.leased_until <= now) | (QueueLease.inspector_id == me),
    )  # fmt: skip
    return session.execute(ins.returning(QueueLease.spectrum_id)).first() is not None


def _held(session: Session, me: int, rules: list[str] | None, now: datetime) -> QueueLease | None:
    """My live lease on a spectrum I have not decided that still fits the filter."""
    tf = TriageFlag
    fits = select(tf.id).where(tf.spectrum_id == QueueLease.spectrum_id)
    if rules is not None:
        fits = fits.where(tf.rule.in_(rules))
    mine = exists().where(Decision.spectrum_id == QueueLease.spectrum_id, Decision.inspector_id == me)
    q = (
        select(QueueLease)
        .where(QueueLease.inspector_id == me, QueueLease.leased_until > now, fits.exists(), ~mine)
        .order_by(QueueLease.leased_at.desc())
        .limit(1)
    )
    return session.scalars(q).first()


def next_item(
    session: Session,
    inspector: str,
    rule: str | Iterable[str] | None = None,
    lease_seconds: float = 300,
    crosscheck_fraction: float = 0.1,
    *,
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> Spectrum | None:
    """Lease the next spectrum to `inspector` and return it (None: nothing left). Commits.

    rule: only spectra flagged by this rule (or any of these rules).
    lease_seconds: how long no one else is given it (a decision releases it sooner).
    crosscheck_fraction: chance that this call first looks for a cross-check.
    rng / now: for reproducible tests.
    """
    if not (0.0 <= float(crosscheck_fraction) <= 1.0):
        raise DecisionError("crosscheck_fraction", crosscheck_fraction, "must be in [0, 1]")
    if not (float(lease_seconds) > 0):
        raise DecisionError("lease_seconds", lease_seconds, "must be positive")
    rules = _rules(rule)
    r = (rng or random).random()
    purposes = ("crosscheck", "primary") if r < crosscheck_fraction else ("primary",)

    def work() -> Spectrum | None:
        me = inspector_id(session, inspector)
        t = now or utcnow()
        until = t + timedelta(seconds=float(lease_seconds))
        held = _held(session, me, rules, t)
        if held is not None:
            _take(session, held.spectrum_id, me, t, until, held.purpose)
            return session.get(Spectrum, held.spectrum_id)
        for purpose in purposes:
            lost: set[int] = set()
            while len(lost) < MAX_RACES:
                sid = _candidate(session, me, rules, purpose, t, lost)
                if sid is None:
                    break
                if _take(session, sid, me, t, until, purpose):
                    # one spectrum at a time: a lease that no longer fits (another filter) is given back
                    session.execute(
                        delete(QueueLease)
                        .where(QueueLease.inspector_id == me, QueueLease.spectrum_id != sid)
                        .execution_options(synchronize_session=False)
                    )
                    return session.get(Spectrum, sid)
                lost.add(sid)  # another inspector's lease committed in between (PostgreSQL)
        return None

    return run_write(session, work)


def lease_of(session: Session, spectrum: SpectrumRef, *, now: datetime | None = None) -> QueueLease | None:
    """The live lease on a spectrum (who, until when, 'primary' or 'crosscheck'), or None."""
    sid = spectrum_id(session, spectrum)
    return session.scalars(
        select(QueueLease).where(QueueLease.spectrum_id == sid, QueueLease.leased_until > (now or utcnow()))
    ).first()


def release(session: Session, inspector: str, spectrum: SpectrumRef | None = None) -> int:
    """Give back the inspector's lease on `spectrum` (all their leases if None); commits; returns how many."""

    def work() -> int:
        me = inspector_id(session, inspector)
        q = delete(QueueLease).where(QueueLease.inspector_id == me)
        if spectrum is not None:
            q = q.where(QueueLease.spectrum_id == spectrum_id(session, spectrum))
        return session.execute(q.execution_options(synchronize_session=False)).rowcount or 0

    return run_write(session, work)


# --------------------------------------------------------------------------- going back and forth
def _firsts(me: int) -> Any:
    """Per spectrum, the id of the inspector's first decision on it (the order they met them in)."""
    return (
        select(Decision.spectrum_id.label("sid"), func.min(Decision.id).label("first"))
        .where(Decision.inspector_id == me)
        .group_by(Decision.spectrum_id)
        .subquery()
    )


def _step(session: Session, inspector: str, current: SpectrumRef | None, back: bool) -> Spectrum | None:
    me = inspector_id(session, inspector, create=False)
    if me is None:
        return None
    f = _firsts(me)
    q = select(f.c.sid)
    if current is not None:
        sid = spectrum_id(session, current)
        cur = session.scalar(
            select(func.min(Decision.id)).where(Decision.inspector_id == me, Decision.spectrum_id == sid)
        )
        if cur is None:  # not decided by me (e.g. the item on screen): back = my last one, forward = nothing
            if not back:
                return None
        else:
            q = q.where(f.c.first < cur) if back else q.where(f.c.first > cur)
    elif not back:
        return None
    q = q.order_by(f.c.first.desc() if back else f.c.first.asc()).limit(1)
    sid_next = session.scalar(q)
    return None if sid_next is None else session.get(Spectrum, sid_next)


def previous_item(session: Session, inspector: str, current: SpectrumRef | None = None) -> Spectrum | None:
    """The spectrum the inspector decided before `current` (in the order they first decided them).

    With `current` None or not decided by them (the item on screen): their most
    recently first-decided spectrum. None at the start.
    """
    return _step(session, inspector, current, back=True)


def next_after(session: Session, inspector: str, current: SpectrumRef) -> Spectrum | None:
    """The spectrum the inspector decided after `current`; None past the last one (then ask `next_item`)."""
    return _step(session, inspector, current, back=False)


def jump(session: Session, object_id: str) -> Spectrum | None:
    """The spectrum with this object id (no lease is taken), or None."""
    return session.scalars(select(Spectrum).where(Spectrum.object_id == str(object_id))).first()


def queue_stats(session: Session, rule: str | Iterable[str] | None = None, *, now: datetime | None = None
                ) -> dict[str, int]:
    """Counts for a progress bar: flagged spectra, undecided, decided once, twice or more, leased now."""
    tf = TriageFlag
    rules = _rules(rule)
    per = select(tf.spectrum_id, func.max(tf.n_inspectors).label("n")).group_by(tf.spectrum_id)
    if rules is not None:
        per = per.where(tf.rule.in_(rules))
    per = per.subquery()
    rows = dict(session.execute(select(per.c.n, func.count()).group_by(per.c.n)).all())
    leased = session.scalar(
        select(func.count()).select_from(QueueLease).where(QueueLease.leased_until > (now or utcnow()))
    )
    return {
        "flagged": sum(rows.values()),
        "undecided": rows.get(0, 0),
        "decided_once": rows.get(1, 0),
        "decided_twice_or_more": sum(v for k, v in rows.items() if k >= 2),
        "leased": leased or 0,
    }


__all__ = ["jump", "lease_of", "next_after", "next_item", "previous_item", "queue_stats", "release"]
