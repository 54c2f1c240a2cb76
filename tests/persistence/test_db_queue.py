"""db queue: priority and the other orders, leases, skips, rule filter, cross-checks, back/forward, jump.

Runs on a temp SQLite file, or on PostgreSQL with FNET_TEST_DB_URL set (see tests/db_helpers.py).
Real concurrency (threads and processes asking at once) is in test_db_concurrency.py.
"""
from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import inspect, select, text

from db import load
from db.decisions import record_decision
from db.engine import downgrade, make_engine, session_scope, upgrade
from db.queue import (
    ORDERS,
    jump,
    lease_of,
    next_after,
    next_item,
    previous_item,
    queue_stats,
    release,
)
from db.schema import Spectrum, TriageFlag, utcnow
from db.validate import DecisionError

N = 8
OIDS = [f"o{i}" for i in range(N)]
# o0..o7 with priorities 1..8 (o7 first); o1, o3, o5 also fire "zqn"; o6 is not flagged at all
FLAGS = pd.DataFrame(
    {
        "object_id": [o for o in OIDS if o != "o6"] + ["o1", "o3", "o5"],
        "rule": ["dv_pipe"] * (N - 1) + ["zqn"] * 3,
        "priority": [float(i + 1) for i in range(N) if i != 6] + [1.5, 3.5, 5.5],
    }
)


@pytest.fixture
def s(db_url):
    e = make_engine(db_url)
    with session_scope(e) as session:
        load.load_spectra(session, pd.DataFrame({"object_id": OIDS, "row": np.arange(N)}))
        load.load_triage_flags(session, FLAGS)
        yield session
    e.dispose()


def nxt(s, who, **kw):
    kw.setdefault("crosscheck_fraction", 0.0)
    sp = next_item(s, who, **kw)
    return None if sp is None else sp.object_id


def decide(s, oid, who, action="accept", **kw):
    kw.setdefault("quality", 3)
    if action == "accept":
        kw.setdefault("z_model", 1.0)
    return record_decision(s, oid, who, action, **kw)


def test_priority_order_and_leases_keep_inspectors_apart(s):
    assert nxt(s, "alice") == "o7"
    assert nxt(s, "alice") == "o7"  # her live lease comes back (a reload does not lose it)
    assert nxt(s, "bob") == "o5"  # o7 is leased to alice; o6 is not flagged
    lease = lease_of(s, "o5")
    assert lease.purpose == "primary" and lease.leased_until > utcnow() + timedelta(seconds=290)
    decide(s, "o7", "alice")
    assert lease_of(s, "o7") is None
    assert nxt(s, "alice") == "o4"
    assert release(s, "bob") == 1 and lease_of(s, "o5") is None
    assert nxt(s, "carol") == "o5"


def test_expired_leases_are_taken_over(s):
    t0 = utcnow()
    assert nxt(s, "alice", lease_seconds=60, now=t0) == "o7"
    assert nxt(s, "bob", now=t0 + timedelta(seconds=30)) == "o5"
    assert nxt(s, "carol", now=t0 + timedelta(seconds=61)) == "o7"  # alice's lease ran out
    assert lease_of(s, "o7", now=t0 + timedelta(seconds=61)).inspector_id != lease_of(s, "o5").inspector_id
    # alice's old lease is gone: she gets the next free one, not o7
    assert nxt(s, "alice", now=t0 + timedelta(seconds=62)) == "o4"


def test_skip_leaves_it_for_others_but_not_for_the_skipper(s):
    assert nxt(s, "alice") == "o7"
    decide(s, "o7", "alice", "skip", quality=None)
    assert nxt(s, "alice") == "o5"
    assert nxt(s, "bob") == "o7"
    decide(s, "o7", "bob", "bad_spectrum", quality=None)
    assert nxt(s, "carol") == "o4"  # decided by bob, so no longer in the primary queue


def test_rule_filter(s):
    assert nxt(s, "alice", rule="zqn") == "o5"
    assert nxt(s, "bob", rule=["zqn"]) == "o3"
    assert nxt(s, "carol", rule=["zqn", "dv_pipe"]) == "o7"
    assert nxt(s, "alice", rule="dv_pipe") == "o5"  # her lease fits this filter too: she keeps it
    assert nxt(s, "dave", rule="dv_pipe") == "o4"
    assert nxt(s, "dave", rule="zqn") == "o1"  # his o4 lease does not fit zqn...
    assert lease_of(s, "o4") is None  # ...and is given back
    assert nxt(s, "dave", rule="nope") is None
    with pytest.raises(DecisionError, match="rule"):
        nxt(s, "dave", rule="")
    with pytest.raises(DecisionError, match="rule"):
        nxt(s, "dave", rule=[])


def test_queue_runs_dry_and_stats(s):
    assert queue_stats(s)["flagged"] == N - 1
    got = []
    while (o := nxt(s, "alice")) is not None:
        got.append(o)
        decide(s, o, "alice")
    assert got == ["o7", "o5", "o4", "o3", "o2", "o1", "o0"]
    assert nxt(s, "bob") is None  # cross-checks only when asked for (fraction > 0)
    st = queue_stats(s)
    assert st == {"flagged": 7, "undecided": 0, "decided_once": 7, "decided_twice_or_more": 0, "leased": 0}


def test_crosschecks_go_to_a_second_inspector_only(s):
    for o in ("o7", "o5"):
        assert nxt(s, "alice") == o
        decide(s, o, "alice")
    assert nxt(s, "bob") == "o4"
    decide(s, "o4", "bob")
    # carol asks for cross-checks: spectra decided by exactly one other inspector
    assert nxt(s, "carol", crosscheck_fraction=1.0) == "o7"
    assert lease_of(s, "o7").purpose == "crosscheck"
    assert nxt(s, "dave", crosscheck_fraction=1.0) == "o5"  # o7 is leased to carol
    decide(s, "o7", "carol")
    decide(s, "o5", "dave")
    # o7 and o5 now have two inspectors: no more cross-checks on them; alice never cross-checks herself
    assert nxt(s, "alice", crosscheck_fraction=1.0) == "o4"
    assert nxt(s, "bob", crosscheck_fraction=1.0) == "o3"  # nothing to cross-check for bob: primary
    assert lease_of(s, "o3").purpose == "primary"


def test_crosscheck_fraction_is_a_fraction(s):
    for _ in range(6):
        o = nxt(s, "alice")
        decide(s, o, "alice")
    rng = random.Random(1)
    purposes = []
    for _ in range(20):
        sp = next_item(s, "bob", crosscheck_fraction=0.5, rng=rng)
        purposes.append(lease_of(s, sp).purpose)
        release(s, "bob")
    assert 3 <= purposes.count("crosscheck") <= 17 and "primary" in purposes
    with pytest.raises(DecisionError, match="crosscheck_fraction"):
        next_item(s, "bob", crosscheck_fraction=1.5)


def test_back_and_forth_by_decision_time(s):
    order = []
    for _ in range(4):
        o = nxt(s, "alice")
        order.append(o)
        decide(s, o, "alice")
    assert order == ["o7", "o5", "o4", "o3"]
    on_screen = nxt(s, "alice")
    assert previous_item(s, "alice", on_screen).object_id == "o3"
    assert previous_item(s, "alice").object_id == "o3"
    assert previous_item(s, "alice", "o3").object_id == "o4"
    assert previous_item(s, "alice", "o7") is None
    assert next_after(s, "alice", "o4").object_id == "o3"
    assert next_after(s, "alice", "o3") is None  # then the app asks next_item
    # editing an old decision does not reorder the way back
    decide(s, "o5", "alice", "correct", z_final=2.0)
    assert previous_item(s, "alice", "o4").object_id == "o5"
    assert next_after(s, "alice", "o5").object_id == "o4"
    assert previous_item(s, "nobody") is None and next_after(s, "bob", "o7") is None


def test_jump(s):
    assert jump(s, "o6").object_id == "o6"  # not flagged, still reachable
    assert jump(s, "missing") is None
    assert lease_of(s, "o6") is None


# --------------------------------------------------------------------------- the queue's orders
# oid: priority, S/N, FNet z (current model), rules. c has no S/N, d no FNet z; c is flagged by two rules.
ORDERED = {
    "a": (5.0, 2.0, 1.5, ["dv_pipe"]),
    "b": (4.0, 9.0, 0.3, ["zqn"]),
    "c": (3.0, None, 2.0, ["dv_pipe", "low_sn"]),
    "d": (2.0, 5.0, None, ["low_sn"]),
    "e": (1.0, 7.0, 0.8, ["dv_pipe"]),
    "f": (6.0, 1.0, 3.0, ["zqn"]),
}
EXPECTED = {
    "priority": ["f", "a", "b", "c", "d", "e"],
    "sn": ["b", "e", "d", "a", "f", "c"],  # best S/N first, no S/N last
    "rule": ["a", "c", "e", "d", "f", "b"],  # dv_pipe (by priority), low_sn (c went with dv_pipe), zqn
    "z": ["b", "e", "a", "c", "f", "d"],  # lowest z first, no z last
}


def _ordered_db(session, flags_model: bool = False) -> None:
    oids = list(ORDERED)
    load.load_spectra(session, pd.DataFrame({"object_id": oids, "row": np.arange(len(oids)),
                                             "sn_median_all": [v[1] for v in ORDERED.values()]}))  # fmt: skip
    mv = load.add_model_version(session, "fnet", "ab" * 20, make_current=True)
    load.load_predictions(session, pd.DataFrame({"object_id": [o for o in oids if ORDERED[o][2] is not None],
                                                 "z_fnet": [v[2] for v in ORDERED.values() if v[2] is not None]}),
                          mv.id)  # fmt: skip
    rows = [(o, r, v[0]) for o, v in ORDERED.items() for r in v[3]]
    flags = pd.DataFrame(rows, columns=["object_id", "rule", "priority"])
    if flags_model:
        flags["model_version_id"] = mv.id
    load.load_triage_flags(session, flags)


@pytest.fixture
def so(db_url):
    e = make_engine(db_url)
    with session_scope(e) as session:
        _ordered_db(session)
        yield session
    e.dispose()


@pytest.mark.parametrize("order", list(EXPECTED))
def test_each_order_leases_in_its_order_and_never_twice(so, order):
    assert set(EXPECTED) == set(ORDERS)
    got, holding = [], {}
    for k in range(len(ORDERED)):  # alice and bob in turn: each decides what they hold, then asks again
        who = ("alice", "bob")[k % 2]
        if who in holding:
            decide(so, holding.pop(who), who)
        o = nxt(so, who, order=order)
        assert o not in holding.values()  # never the spectrum the other one holds
        holding[who] = o
        got.append(o)
    assert got == EXPECTED[order]
    assert nxt(so, "carol", order=order) is None  # everything is decided or leased


def test_orders_apply_to_filters_and_crosschecks(so):
    assert nxt(so, "alice", rule="dv_pipe", order="sn") == "e"  # a 2.0, c no S/N, e 7.0
    assert nxt(so, "bob", rule="dv_pipe", order="sn") == "a"
    assert nxt(so, "carol", rule=["zqn", "low_sn"], order="rule") == "c"  # low_sn before zqn
    assert nxt(so, "dave", rule=["zqn", "low_sn", "zqn"], order="rule") == "d"
    for who in ("alice", "bob", "carol", "dave"):
        release(so, who)
    for o in EXPECTED["priority"]:
        decide(so, o, "alice")
    # cross-checks (decided by one other inspector) come in the order asked for too
    assert nxt(so, "bob", crosscheck_fraction=1.0, order="z") == "b"
    assert nxt(so, "carol", crosscheck_fraction=1.0, order="z") == "e"
    assert lease_of(so, "e").purpose == "crosscheck"
    assert nxt(so, "dave", crosscheck_fraction=1.0, order="sn") == "d"  # b and e are leased


def test_a_held_lease_comes_back_whatever_the_order(so):
    assert nxt(so, "alice", order="z") == "b"
    assert nxt(so, "alice", order="priority") == "b"  # the spectrum on screen is not lost by a change of order
    decide(so, "b", "alice")
    assert nxt(so, "alice", order="priority") == "f"


def test_unknown_order_is_refused(so):
    with pytest.raises(DecisionError, match="order must be one of priority, sn, rule, z"):
        nxt(so, "alice", order="random")
    with pytest.raises(DecisionError, match="order"):
        nxt(so, "alice", order=None)


def test_queue_keys_come_from_the_flags_model_version(db_url):
    """z_fnet is the z of the model the triage read (the flag's model version), else the current model's."""
    e = make_engine(db_url)
    with session_scope(e) as s:
        _ordered_db(s, flags_model=True)
        other = load.add_model_version(s, "fnet-2", "cd" * 20, make_current=True)  # z reversed
        load.load_predictions(s, pd.DataFrame({"object_id": list(ORDERED), "z_fnet": [6.0 - i for i in range(6)]}),
                              other.id)  # fmt: skip
        assert nxt(s, "alice", order="z") == "b"  # the flags name the first model: its z still orders them
        release(s, "alice")
        flags = pd.DataFrame([(o, r, v[0]) for o, v in ORDERED.items() for r in v[3]],
                             columns=["object_id", "rule", "priority"])  # fmt: skip
        load.load_triage_flags(s, flags)  # no model named: the current one's z (f 1.0 lowest)
        assert nxt(s, "alice", order="z") == "f"
        sn = dict(s.execute(select(Spectrum.object_id, TriageFlag.sn).join(Spectrum, Spectrum.id == TriageFlag.spectrum_id)).all())
        assert sn == {o: v[1] for o, v in ORDERED.items()}
    e.dispose()


def test_a_replacing_load_keeps_the_queue_indexes_even_when_it_fails(db_url):
    """On SQLite load_triage_flags drops the queue indexes and builds them again: they are there after a load,
    and after a load that fails half-way (the transaction takes the drop back)."""
    from sqlalchemy.exc import IntegrityError

    e = make_engine(db_url)
    names = {ix.name for ix in TriageFlag.__table__.indexes}
    assert len(names) == 5
    with session_scope(e) as s:
        _ordered_db(s)
    assert names <= {ix["name"] for ix in inspect(e).get_indexes("triage_flags")}
    with session_scope(e) as s:
        bad = pd.DataFrame({"spectrum_id": [1, 999], "rule": "r", "priority": 1.0})  # 999: no such spectrum
        with pytest.raises(IntegrityError):
            load.load_triage_flags(s, bad)
    assert names <= {ix["name"] for ix in inspect(e).get_indexes("triage_flags")}
    with session_scope(e) as s:
        assert load.table_counts(s)["triage_flags"] == 7 and nxt(s, "alice", order="sn") == "b"
    e.dispose()


def test_revision_0005_fills_the_queue_keys_of_flags_already_there(db_url):
    """Flags loaded before 0005 get their S/N and FNet z from the spectra and predictions on upgrade; down to
    0004 keeps every flag, its priority and inspector count."""
    e = make_engine(db_url)
    with session_scope(e) as s:
        _ordered_db(s)
        decide(s, "f", "alice")
    e.dispose()
    downgrade(db_url, "0004")
    e = make_engine(db_url)
    assert not {"sn", "z_fnet"} & {c["name"] for c in inspect(e).get_columns("triage_flags")}
    with e.connect() as conn:
        rows = conn.execute(text("SELECT spectrum_id, rule, priority, n_inspectors FROM triage_flags ORDER BY id")).all()
    assert len(rows) == 7 and sum(r.n_inspectors for r in rows) == 1
    e.dispose()
    upgrade(db_url)
    e = make_engine(db_url)
    with session_scope(e) as s:
        got = s.execute(select(Spectrum.object_id, TriageFlag.sn, TriageFlag.z_fnet, TriageFlag.priority)
                        .join(Spectrum, Spectrum.id == TriageFlag.spectrum_id)).all()  # fmt: skip
        assert {o: (p, sn, z) for o, sn, z, p in got} == {o: v[:3] for o, v in ORDERED.items()}
        assert [nxt(s, "bob", order="z")] == ["b"]
        assert queue_stats(s)["decided_once"] == 1
    e.dispose()


def test_settle_after_load_vacuums_the_loaded_tables_on_postgresql(db_url):
    """After a bulk load PostgreSQL's tables are vacuumed and analysed at once (not by autovacuum minutes
    later, under the inspectors), in the schema the URL names; SQLite has nothing to do. The queue works on."""
    from db.engine import settle_after_load

    e = make_engine(db_url)
    with session_scope(e) as s:
        load.load_spectra(s, pd.DataFrame({"object_id": OIDS, "row": np.arange(N)}))
        load.load_triage_flags(s, FLAGS)
    ran = settle_after_load(e)
    assert ran == (e.dialect.name == "postgresql")
    if ran:
        with e.connect() as c:
            done = dict(c.execute(text(
                "SELECT relname, last_vacuum IS NOT NULL AND last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND relname IN ('spectra', 'predictions', 'triage_flags')")).all())
        assert done == {"spectra": True, "predictions": True, "triage_flags": True}
    with session_scope(e) as s:
        assert nxt(s, "alice") == "o7"
    e.dispose()
