"""The inspection queue for several inspectors: next in the chosen order under a lease, back/forward, jump, filter.

    spec = next_item(s, "alice")                 # leased to alice for 5 minutes
    spec = next_item(s, "bob", order="sn")       # bob takes the best S/N first (see ORDERS)
    record_decision(s, spec, "alice", "accept", quality=4, z_model=...)   # releases the lease
    prev = previous_item(s, "alice", spec)       # go back through what alice decided

`next_item` hands out the highest-priority spectrum (the default order) flagged by triage that no
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

The order the queue is taken in is the person's choice, one of `ORDERS`
(``next_item(..., order="sn")``); it applies to cross-checks too. Each order
reads an index of `triage_flags` in which the undecided spectra (n_inspectors
0) are one range already sorted its way, so the decided ones are never walked
past however many there are: ``python bench/db.py --n 200000`` times each.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.decisions import SpectrumRef, inspector_id, spectrum_id
from db.engine import prebuilt, run, run_write
from db.schema import Decision, QueueLease, Spectrum, TriageFlag, utcnow
from db.validate import DecisionError, check_rule

MAX_RACES = 20  # candidates lost to another inspector in a row before giving up (PostgreSQL only)


@dataclass(frozen=True)
class QueueOrder:
    """One way to take the queue: the `triage_flags` column it sorts on, and which end comes first.

    column: a `TriageFlag` attribute with an index (n_inspectors, column, ...,
        spectrum_id). Where it may be NULL (no S/N, no FNet z), those spectra
        come after all the others, by spectrum id: on both backends alike
        (SQLite and PostgreSQL put NULLs at opposite ends of a sort).
    descending: highest value first. Ties go by spectrum id, the same way.
    by_rule: the queue is taken one rule at a time, rules in name order (each
        rule read through `ix_triage_rule_queue`); a spectrum several rules
        flagged comes in the first of its rules.
    """

    name: str
    label: str
    column: str
    descending: bool
    by_rule: bool = False


ORDERS: dict[str, QueueOrder] = {o.name: o for o in (
    QueueOrder("priority", "highest triage priority first", "priority", True),
    QueueOrder("sn", "best S/N first (no S/N last)", "sn", True),
    QueueOrder("rule", "by triage rule (A-Z), then highest priority", "priority", True, by_rule=True),
    QueueOrder("z", "lowest FNet z first (no z last)", "z_fnet", False),
)}  # fmt: skip
DEFAULT_ORDER = "priority"


def check_order(value: Any) -> QueueOrder:
    """The `QueueOrder` named `value` (a key of `ORDERS`); DecisionError naming the choices otherwise."""
    o = ORDERS.get(value) if isinstance(value, str) else None
    if o is None:
        raise DecisionError("order", value, f"must be one of {', '.join(ORDERS)}")
    return o


@dataclass(frozen=True)
class _Tier:
    """One index range read in order, sorted on the order's column then spectrum id (all one way).

    kind: "all" (every row), "set" / "unset" (the column not NULL / NULL: then by spectrum id alone),
    "rule" (the rows of one rule, `rule`).
    """

    kind: str
    descending: bool
    rule: str | None = None

    def columns(self, order: QueueOrder) -> tuple[Any, ...]:
        tf = TriageFlag
        return (tf.spectrum_id,) if self.kind == "unset" else (getattr(tf, order.column), tf.spectrum_id)

    def better(self, a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
        return a > b if self.descending else a < b


def _all_rules(session: Session) -> list[str]:
    """The distinct rule names, in name order: one index seek each (`ix_triage_rule_queue` leads with rule)."""
    out: list[str] = []
    r = session.scalar(select(func.min(TriageFlag.rule)))
    while r is not None:
        out.append(r)
        r = session.scalar(select(func.min(TriageFlag.rule)).where(TriageFlag.rule > r))
    return out


def _tiers(session: Session, order: QueueOrder, rules: list[str] | None) -> list[_Tier]:
    """The ranges `order` reads, first to last; the queue's pick is the best row of the first that has one."""
    if order.by_rule:
        return [_Tier("rule", order.descending, r)
                for r in (sorted(set(rules)) if rules is not None else _all_rules(session))]  # fmt: skip
    if not TriageFlag.__table__.c[order.column].nullable:
        return [_Tier("all", order.descending)]
    return [_Tier("set", order.descending), _Tier("unset", order.descending)]


def _rules(rule: str | Iterable[str] | None) -> list[str] | None:
    if rule is None:
        return None
    rules = [check_rule(rule)] if isinstance(rule, str) else [check_rule(r) for r in rule]
    if not rules:
        raise DecisionError("rule", rule, "must name at least one rule (or be None for all)")
    return rules


def _candidate_queries(order: QueueOrder, tier: _Tier, purpose: str, filtered: bool, excluding: bool,
                       postgres: bool) -> list[Any]:
    """The queries of one tier for `purpose`, one per index range, with bound parameters: me, now, and
    rules / exclude / tier_rule where those apply (`_candidate` runs them)."""
    tf = TriageFlag
    me, now = bindparam("me"), bindparam("now")
    live_other = exists().where(
        QueueLease.spectrum_id == tf.spectrum_id, QueueLease.leased_until > now, QueueLease.inspector_id != me
    )
    mine = exists().where(Decision.spectrum_id == tf.spectrum_id, Decision.inspector_id == me)
    base: list[ColumnElement[bool]] = [~live_other, ~mine]
    if filtered:
        base.append(tf.rule.in_(bindparam("rules", expanding=True)))
    if excluding:
        base.append(tf.spectrum_id.not_in(bindparam("exclude", expanding=True)))
    if purpose == "primary":
        ranges = [[*base, tf.n_inspectors == 0]]
    else:  # decided by exactly one inspector, not me: two index ranges either side of my id
        one = [*base, tf.n_inspectors == 1]
        ranges = [[*one, tf.first_inspector_id < me], [*one, tf.first_inspector_id > me]]
    col = getattr(tf, order.column)
    tier_where = {"all": None, "set": col.is_not(None), "unset": col.is_(None),
                  "rule": tf.rule == bindparam("tier_rule")}[tier.kind]  # fmt: skip
    columns = tier.columns(order)
    out = []
    for where in ranges:
        q = select(*columns).where(*where)
        if tier_where is not None:
            q = q.where(tier_where)
        q = q.order_by(*(c.desc() if tier.descending else c.asc() for c in columns)).limit(1)
        if postgres:
            q = q.with_for_update(skip_locked=True, of=tf)
        out.append(q)
    return out


def _candidate(session: Session, me: int, rules: list[str] | None, purpose: str, now: datetime,
               exclude: set[int], tiers: list[_Tier], order: QueueOrder) -> int | None:
    """The best spectrum id for `purpose` ('primary' / 'crosscheck') in the order `tiers` give, or None."""
    postgres = session.get_bind().dialect.name == "postgresql"
    params: dict[str, Any] = {"me": me, "now": now}
    if rules is not None:
        params["rules"] = rules
    if exclude:
        params["exclude"] = sorted(exclude)
    for tier in tiers:
        key = ("queue candidate", order.name, tier.kind, purpose, rules is not None, bool(exclude), postgres)
        queries = prebuilt(key, lambda: _candidate_queries(order, tier, purpose, rules is not None, bool(exclude),
                                                           postgres))  # fmt: skip
        best: tuple[Any, ...] | None = None
        for q in queries:
            row = run(session, q, {**params, "tier_rule": tier.rule} if tier.kind == "rule" else params).first()
            if row is not None and (best is None or tier.better(tuple(row), best)):
                best = tuple(row)
        if best is not None:
            return int(best[-1])  # every tier's last column is spectrum_id
    return None


def _take_statement(dialect: str) -> Any:
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(QueueLease).values(
        spectrum_id=bindparam("sid"), inspector_id=bindparam("me"), leased_at=bindparam("now"),
        leased_until=bindparam("until"), purpose=bindparam("purpose"),
    )  # fmt: skip
    ex = ins.excluded
    return ins.on_conflict_do_update(
        index_elements=[QueueLease.spectrum_id],
        set_={"inspector_id": ex.inspector_id, "leased_at": ex.leased_at, "leased_until": ex.leased_until,
              "purpose": ex.purpose},
        where=(QueueLease.leased_until <= bindparam("now")) | (QueueLease.inspector_id == bindparam("me")),
    ).returning(QueueLease.spectrum_id)  # fmt: skip


def _take(session: Session, sid: int, me: int, now: datetime, until: datetime, purpose: str) -> bool:
    """Lease `sid` to `me` unless someone else holds a live lease on it; True if taken."""
    dialect = session.get_bind().dialect.name
    stmt = prebuilt(("queue take", dialect), lambda: _take_statement(dialect))
    params = {"sid": sid, "me": me, "now": now, "until": until, "purpose": purpose}
    return run(session, stmt, params).first() is not None


def _held_query(filtered: bool) -> Any:
    tf = TriageFlag
    me = bindparam("me")
    fits = select(tf.id).where(tf.spectrum_id == QueueLease.spectrum_id)
    if filtered:
        fits = fits.where(tf.rule.in_(bindparam("rules", expanding=True)))
    mine = exists().where(Decision.spectrum_id == QueueLease.spectrum_id, Decision.inspector_id == me)
    return (
        select(QueueLease.spectrum_id, QueueLease.purpose)
        .where(QueueLease.inspector_id == me, QueueLease.leased_until > bindparam("now"), fits.exists(), ~mine)
        .order_by(QueueLease.leased_at.desc())
        .limit(1)
    )


def _held(session: Session, me: int, rules: list[str] | None, now: datetime) -> Any:
    """My live lease on a spectrum I have not decided that still fits the filter: (spectrum_id, purpose)."""
    q = prebuilt(("queue held", rules is not None), lambda: _held_query(rules is not None))
    params: dict[str, Any] = {"me": me, "now": now}
    if rules is not None:
        params["rules"] = rules
    return run(session, q, params).first()


def _drop_other_leases() -> Any:
    return delete(QueueLease).where(QueueLease.inspector_id == bindparam("me"),
                                    QueueLease.spectrum_id != bindparam("sid"))  # fmt: skip


def next_item(
    session: Session,
    inspector: str,
    rule: str | Iterable[str] | None = None,
    lease_seconds: float = 300,
    crosscheck_fraction: float = 0.1,
    *,
    order: str = DEFAULT_ORDER,
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> Spectrum | None:
    """Lease the next spectrum to `inspector` and return it (None: nothing left). Commits.

    rule: only spectra flagged by this rule (or any of these rules).
    lease_seconds: how long no one else is given it (a decision releases it sooner).
    crosscheck_fraction: chance that this call first looks for a cross-check.
    order: a key of `ORDERS` ("priority", "sn", "rule", "z"); a live lease the
        inspector holds comes back first whatever the order.
    rng / now: for reproducible tests.
    """
    if not (0.0 <= float(crosscheck_fraction) <= 1.0):
        raise DecisionError("crosscheck_fraction", crosscheck_fraction, "must be in [0, 1]")
    if not (float(lease_seconds) > 0):
        raise DecisionError("lease_seconds", lease_seconds, "must be positive")
    rules = _rules(rule)
    how = check_order(order)
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
        tiers = _tiers(session, how, rules)
        for purpose in purposes:
            lost: set[int] = set()
            while len(lost) < MAX_RACES:
                sid = _candidate(session, me, rules, purpose, t, lost, tiers, how)
                if sid is None:
                    break
                if _take(session, sid, me, t, until, purpose):
                    # one spectrum at a time: a lease that no longer fits (another filter) is given back
                    run(session, prebuilt(("queue drop other leases",), _drop_other_leases), {"me": me, "sid": sid})
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


__all__ = [
    "DEFAULT_ORDER", "ORDERS", "QueueOrder", "check_order", "jump", "lease_of", "next_after", "next_item",
    "previous_item", "queue_stats", "release",
]  # fmt: skip
