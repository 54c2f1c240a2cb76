"""db.jobs: one model job at a time; a dead holder's lock is taken over; a job that lost its lock cannot
switch the model; db.promotion: the model and its flags switch together or not at all.

Runs on a temp SQLite file, or on PostgreSQL with FNET_TEST_DB_URL set (see tests/db_helpers.py).
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from db import load
from db.engine import make_engine, session_scope
from db.jobs import (
    JobLockHeld,
    JobLockLost,
    acquire,
    beat,
    check_lock,
    hold_job_lock,
    holder,
    release,
)
from db.promotion import IncompletePredictions, model_state, switch_model
from db.schema import JobLock, utcnow

REPO = Path(__file__).resolve().parents[2]
OIDS = [f"o{i:03d}" for i in range(12)]


@pytest.fixture
def engine(db_url):
    e = make_engine(db_url)
    yield e
    e.dispose()


def _age(engine, seconds: float, **values) -> None:
    with session_scope(engine) as s:
        s.execute(update(JobLock).values(heartbeat_at=utcnow() - timedelta(seconds=seconds), **values))


def test_second_job_refused_naming_the_first_then_free_after_release(engine):
    with session_scope(engine) as s:
        first = acquire(s, "retrain")
        with pytest.raises(JobLockHeld, match=r"'retrain' \(pid \d+ on "):
            acquire(s, "promote model version 2")
        assert holder(s).job == "retrain" and beat(s, first)
        release(s, first)
        assert holder(s) is None
        second = acquire(s, "promote model version 2")
        assert holder(s).token == second.token


def test_dead_holder_is_taken_over(engine):
    """SIGKILL leaves the row behind: a pid gone on this host, or (another host) a heartbeat too old."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    with session_scope(engine) as s:
        acquire(s, "killed retrain", pid=p.pid)
        taken = acquire(s, "promote")  # the pid no longer runs here: taken over at once
        assert holder(s).token == taken.token and holder(s).job == "promote"
    _age(engine, 30, host="another-machine", pid=1)
    with session_scope(engine) as s, pytest.raises(JobLockHeld, match="another-machine"):
        acquire(s, "rollback")  # alive as far as anyone can tell
    _age(engine, 10_000, host="another-machine", pid=1)
    with session_scope(engine) as s:
        late = acquire(s, "rollback")  # no heartbeat for hours: dead
        assert holder(s).token == late.token
        assert not beat(s, taken) and taken.lost.is_set()  # the old holder learns it lost the lock
        with pytest.raises(JobLockLost):
            s.begin()
            check_lock(s, taken)
        s.rollback()


def test_jobs_asking_at_once_get_it_once(engine, db_url):
    n = 6
    barrier = threading.Barrier(n)
    got, refused, errors = [], [], []

    def ask(k: int) -> None:
        e = make_engine(db_url)
        try:
            barrier.wait(30)
            with session_scope(e) as s:
                got.append(acquire(s, f"job {k}"))
        except JobLockHeld:
            refused.append(k)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            e.dispose()

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(got) == 1 and len(refused) == n - 1


def test_hold_job_lock_beats_and_releases(db_url, engine):
    with hold_job_lock(db_url, "retrain", heartbeat_s=0.05) as lock:
        with session_scope(engine) as s:
            t0 = holder(s).heartbeat_at
        time.sleep(0.3)
        with session_scope(engine) as s:
            assert holder(s).heartbeat_at > t0 and holder(s).token == lock.token
    with session_scope(engine) as s:
        assert holder(s) is None


def _two_versions(engine) -> tuple[int, int]:
    """Version 1 current with its predictions and flags; version 2 registered with its predictions (staged)."""
    z = np.linspace(0.5, 3, len(OIDS))
    with session_scope(engine) as s:
        load.load_spectra(s, pd.DataFrame({"object_id": OIDS, "row": np.arange(len(OIDS))}))
        old = load.add_model_version(s, "old", "aa" * 20, make_current=True).id
        load.load_predictions(s, pd.DataFrame({"object_id": OIDS, "z_fnet": z}), old)
        load.load_triage_flags(s, pd.DataFrame({"object_id": OIDS[:4], "rule": "dv_pipe", "priority": 1.0,
                                                "model_version_id": old}))  # fmt: skip
        new = load.add_model_version(s, "new", "bb" * 20).id
        load.load_predictions(s, pd.DataFrame({"object_id": OIDS, "z_fnet": z + 0.1}), new)
    return old, new


def test_switch_is_one_transaction(engine):
    old, new = _two_versions(engine)
    new_flags = pd.DataFrame({"object_id": OIDS[5:], "rule": "low_p", "priority": 2.0, "model_version_id": new})
    with session_scope(engine) as s:
        before = model_state(s)
        assert before == {"current": [old], "predictions": len(OIDS), "flags": 4, "flag_versions": [old]}
        with pytest.raises(IncompletePredictions):  # not all of the new version's predictions are there
            switch_model(s, new, new_flags, expected_predictions=len(OIDS) + 1)
        assert model_state(s) == before
        bad = new_flags.assign(object_id=[*OIDS[5:-1], "no-such-spectrum"])  # a flag that cannot be written
        with pytest.raises(ValueError, match="no-such-spectrum"):
            switch_model(s, new, bad, expected_predictions=len(OIDS))
        assert model_state(s) == before
        lock = acquire(s, "promote")
        s.execute(update(JobLock).values(token="someone-else"))
        s.commit()
        with pytest.raises(JobLockLost):  # a job whose lock was taken over switches nothing
            switch_model(s, new, new_flags, expected_predictions=len(OIDS), lock=lock)
        assert model_state(s) == before
        s.execute(update(JobLock).values(token=lock.token))
        s.commit()
        assert switch_model(s, new, new_flags, expected_predictions=len(OIDS), lock=lock) == len(OIDS) - 5
        assert model_state(s) == {"current": [new], "predictions": len(OIDS), "flags": len(OIDS) - 5,
                                  "flag_versions": [new]}  # fmt: skip
