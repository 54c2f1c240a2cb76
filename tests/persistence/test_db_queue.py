"""db queue: priority order, leases, skips, rule filter, cross-checks, back/forward, jump.

Runs on a temp SQLite file, or on PostgreSQL with FNET_TEST_DB_URL set (see tests/db_helpers.py).
Real concurrency (threads and processes asking at once) is in test_db_concurrency.py.
"""
from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from db import load
from db.decisions import record_decision
from db.engine import make_engine, session_scope
from db.queue import (
    jump,
    lease_of,
    next_after,
    next_item,
    previous_item,
    queue_stats,
    release,
)
from db.schema import utcnow
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
