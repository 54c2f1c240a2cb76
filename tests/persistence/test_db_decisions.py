"""db decisions: validation at the boundary, append-only recording, history, latest state, consensus.

Runs on a temp SQLite file, or on PostgreSQL with FNET_TEST_DB_URL set (see tests/db_helpers.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from db import load
from db.consensus import DZ_TOLERANCE, compare, conflicts, consensus, resolve, verdict
from db.decisions import (
    DECISION_COLUMNS,
    count_decisions,
    decisions_frame,
    decisions_of,
    history,
    latest_decisions,
    record_decision,
)
from db.engine import make_engine, session_scope
from db.queue import lease_of, next_item
from db.schema import Decision, Inspector, QueueLease, TriageFlag
from db.validate import (
    ACTIONS,
    FLAGS,
    DecisionError,
    check_decision,
    check_flags,
    check_name,
)

OIDS = [f"7166-56602-{i:04d}" for i in range(6)]


@pytest.fixture
def engine(db_url):
    e = make_engine(db_url)
    with session_scope(e) as s:
        load.load_spectra(s, pd.DataFrame({"object_id": OIDS, "row": np.arange(len(OIDS))}))
        load.load_triage_flags(s, pd.DataFrame({"object_id": OIDS, "rule": "dv_pipe",
                                                "priority": np.arange(len(OIDS), 0, -1.0)}))  # fmt: skip
    yield e
    e.dispose()


# --------------------------------------------------------------------------- validation (no database)
@pytest.mark.parametrize(
    ("kwargs", "field", "shown"),
    [
        ({"action": "maybe"}, "action", "'maybe'"),
        ({"action": None}, "action", "None"),
        ({"action": "correct", "z_final": 7.6, "quality": 3}, "z_final", "7.6"),
        ({"action": "correct", "z_final": -0.1, "quality": 3}, "z_final", "-0.1"),
        ({"action": "correct", "z_final": float("nan"), "quality": 3}, "z_final", "nan"),
        ({"action": "correct", "z_final": float("inf"), "quality": 3}, "z_final", "inf"),
        ({"action": "correct", "z_final": "2.1", "quality": 3}, "z_final", "'2.1'"),
        ({"action": "correct", "z_final": True, "quality": 3}, "z_final", "True"),
        ({"action": "correct", "quality": 3}, "z_final", "None"),
        ({"action": "correct", "z_final": 2.0, "quality": 5}, "quality", "5"),
        ({"action": "correct", "z_final": 2.0, "quality": -1}, "quality", "-1"),
        ({"action": "correct", "z_final": 2.0, "quality": 3.5}, "quality", "3.5"),
        ({"action": "correct", "z_final": 2.0, "quality": True}, "quality", "True"),
        ({"action": "correct", "z_final": 2.0}, "quality", "None"),
        ({"action": "accept", "quality": 4}, "z_final", "None"),  # no z_final and no z_model
        ({"action": "accept", "quality": 4, "z_model": float("nan")}, "z_model", "nan"),
        ({"action": "correct", "z_final": 2.0, "quality": 3, "spectral_type": "quasar"}, "spectral_type", "'quasar'"),
        ({"action": "correct", "z_final": 2.0, "quality": 3, "spectral_type": "STAR"}, "spectral_type", "'STAR'"),
        ({"action": "not_qso", "quality": 3, "spectral_type": "QSO"}, "spectral_type", "'QSO'"),
        ({"action": "correct", "z_final": 2.0, "quality": 3, "flags": ["bad_sky"]}, "flags", "'bad_sky'"),
        ({"action": "correct", "z_final": 2.0, "quality": 3, "flags": 8}, "flags", "8"),
        ({"action": "correct", "z_final": 2.0, "quality": 3, "comment": "x" * 2001}, "comment", "<2001 characters>"),
        ({"action": "correct", "z_final": 2.0, "quality": 3, "comment": b"bytes"}, "comment", "b'bytes'"),
        ({"action": "correct", "z_final": 2.0, "quality": 3, "comment": "a\x00b"}, "comment", "'a\\x00b'"),
        ({"action": "correct", "z_final": 2.0, "quality": 3, "comment": "lone \ud800"}, "comment", "'lone \\ud800'"),
        ({"action": "resolve", "quality": 3, "spectral_type": "QSO"}, "z_final", "None"),
    ],
)
def test_bad_values_name_the_field_and_the_value(kwargs, field, shown):
    with pytest.raises(DecisionError) as e:
        check_decision(**kwargs)
    assert e.value.field == field
    assert str(e.value).startswith(f"{field} ")
    assert shown in str(e.value)


@pytest.mark.parametrize("bad", ["", "   ", "x" * 65, "tab\there", 42, None])
def test_inspector_names(bad):
    with pytest.raises(DecisionError, match="^inspector "):
        check_name(bad)


def test_good_values_and_action_table():
    assert check_name("  Alice Ω  ") == "Alice Ω" and check_name("x" * 64) == "x" * 64
    d = check_decision("ACCEPT", quality=np.int64(4), z_model=np.float32(2.5))
    assert (d.action, d.z_final, d.quality, d.spectral_type, d.flags) == ("accept", 2.5, 4, "QSO", 0)
    assert check_decision("correct", z_final=0, quality=0).z_final == 0.0
    assert check_decision("correct", z_final=7.5, quality=4, spectral_type="bal_qso").spectral_type == "BAL QSO"
    assert check_decision("correct", z_final=1, quality=4).flags == 1  # a correction implies bad_z
    nq = check_decision("not_qso", quality=3, spectral_type="star", flags={"bad_z": True, "bad_spectrum": False})
    assert (nq.z_final, nq.spectral_type, nq.flags) == (None, "STAR", 3)
    assert check_decision("bad_spectrum").quality == 0 and check_decision("bad_spectrum").flags == 4
    assert check_decision("skip").spectral_type is None
    assert check_decision("resolve", quality=2, spectral_type="GALAXY").z_final is None
    assert check_flags(["bad_z", "bad_class"]) == 3 and check_flags(None) == 0 and check_flags("bad_spectrum") == 4
    assert {a.name for a in ACTIONS} == {"accept", "correct", "not_qso", "bad_spectrum", "skip", "resolve"}
    assert [f.bit for f in FLAGS] == [1, 2, 4]


# --------------------------------------------------------------------------- recording
def test_bad_decision_writes_nothing(engine):
    with session_scope(engine) as s:
        with pytest.raises(DecisionError, match="quality"):
            record_decision(s, OIDS[0], "alice", "correct", z_final=1.0, quality=9)
        with pytest.raises(DecisionError, match="spectrum"):
            record_decision(s, "no-such-object", "alice", "correct", z_final=1.0, quality=3)
        with pytest.raises(DecisionError, match="spectrum"):
            record_decision(s, 9999, "alice", "correct", z_final=1.0, quality=3)
        with pytest.raises(DecisionError, match="model_version_id"):
            record_decision(s, OIDS[0], "alice", "correct", z_final=1.0, quality=3, model_version_id=77)
        with pytest.raises(DecisionError, match="resolves"):
            record_decision(s, OIDS[0], "alice", "correct", z_final=1.0, quality=3, resolves=[1])
        with pytest.raises(DecisionError, match="resolves"):
            record_decision(s, OIDS[0], "alice", "resolve", z_final=1.0, quality=3)
        assert count_decisions(s) == 0
        assert s.scalar(select(func.count()).select_from(Inspector)) == 0


def test_record_accept_takes_the_model_z_and_releases_the_lease(engine):
    with session_scope(engine) as s:
        mv = load.add_model_version(s, "fnet", "ab" * 20, make_current=True)
        spec = next_item(s, "alice", crosscheck_fraction=0)
        assert spec.object_id == OIDS[0] and lease_of(s, spec).inspector_id is not None
        d = record_decision(s, spec, "alice", "accept", quality=4, model_version_id=mv.id, z_model=2.345)
        assert (d.z_final, d.z_model, d.model_version_id, d.spectral_type) == (2.345, 2.345, mv.id, "QSO")
        assert d.decided_at.tzinfo is not None and d.inspector.name == "alice"
        assert lease_of(s, spec) is None and s.scalar(select(func.count()).select_from(QueueLease)) == 0
        assert s.scalars(select(TriageFlag.n_inspectors).where(TriageFlag.spectrum_id == spec.id)).one() == 1


def test_corrections_never_overwrite_and_history_keeps_all(engine):
    with session_scope(engine) as s:
        record_decision(s, OIDS[1], "alice", "accept", quality=3, z_model=1.0)
        record_decision(s, OIDS[1], "alice", "correct", z_final=2.2, quality=4, flags=["bad_z"], comment="CIV")
        record_decision(s, OIDS[1], "bob", "skip")
        record_decision(s, OIDS[1], " bob ", "not_qso", quality=2, spectral_type="STAR")
        h = history(s, OIDS[1])
        assert [(d.inspector.name, d.action, d.z_final) for d in h] == [
            ("alice", "accept", 1.0), ("alice", "correct", 2.2), ("bob", "skip", None), ("bob", "not_qso", None),
        ]  # fmt: skip
        assert h[1].bad_z and h[1].flag_names == ["bad_z"] and h[3].bad_class
        latest = latest_decisions(s)
        assert [(d.inspector.name, d.action) for d in latest] == [("alice", "correct"), ("bob", "not_qso")]
        assert len(latest_decisions(s, include_skips=True)) == 2  # bob's not_qso is newer than his skip
        assert latest_decisions(s, []) == [] and len(latest_decisions(s, [h[0].spectrum_id])) == 2
        assert [d.action for d in decisions_of(s, "alice")] == ["correct", "accept"]
        assert decisions_of(s, "nobody") == []
        assert s.scalar(select(func.count()).select_from(Inspector)) == 2  # " bob " is bob
        assert count_decisions(s) == 4
        f = decisions_frame(s)
        assert list(f.columns) == list(DECISION_COLUMNS)
        assert f[["object_id", "inspector", "action"]].values.tolist() == [
            [OIDS[1], "alice", "correct"], [OIDS[1], "bob", "not_qso"]]
        assert f["z_final"].iloc[0] == 2.2 and pd.isna(f["z_final"].iloc[1])
        assert f["decided_at"].iloc[0].tzinfo is not None
        assert len(decisions_frame(s, latest_only=False)) == 3 and len(decisions_frame(s, latest_only=False,
                                                                                       include_skips=True)) == 4


@pytest.mark.parametrize(
    "comment",
    [
        "<script>alert('x')</script> & <b>bold</b>",
        "'; DROP TABLE decisions; --",
        "Lyα forest, C IV λ1549 — z≈2.3 🚀",
        "שלום مرحبا 你好 e\u0301 \u200b zero-width",
        "line1\nline2\r\n\ttabbed",
        "x" * 2000,
        "",
    ],
)
def test_unicode_and_html_stored_verbatim(engine, comment):
    with session_scope(engine) as s:
        d = record_decision(s, OIDS[2], "ålice ☃", "correct", z_final=1.5, quality=3, comment=comment)
    with session_scope(engine) as s:
        got = s.get(Decision, d.id)
        assert got.comment == comment and got.inspector.name == "ålice ☃"
        assert s.scalar(select(func.count()).select_from(Decision)) == 1


# --------------------------------------------------------------------------- consensus
def _d(**kw):
    base = {"quality": 3, "z_final": 2.0, "spectral_type": "QSO"}
    return Decision(**{**base, **kw})


@pytest.mark.parametrize(
    ("a", "b", "conflict"),
    [
        ({}, {}, False),
        ({"quality": 4}, {"quality": 3}, False),
        ({"quality": 4}, {"quality": 2}, True),
        ({"z_final": 2.0}, {"z_final": 2.0 + 0.0032 * 3.0}, False),
        ({"z_final": 2.0}, {"z_final": 2.0 + 0.0034 * 3.0}, True),
        ({"spectral_type": "QSO"}, {"spectral_type": "BAL QSO"}, True),
        ({"z_final": None, "spectral_type": "STAR"}, {"z_final": None, "spectral_type": "STAR"}, False),
        ({"quality": None}, {"quality": 0}, False),
    ],
)
def test_desi_rule(a, b, conflict):
    assert bool(compare(_d(**a), _d(**b))) is conflict
    assert bool(compare(_d(**b), _d(**a))) is conflict
    assert DZ_TOLERANCE == 0.0033


def test_consensus_conflicts_queue_and_resolution(engine):
    with session_scope(engine) as s:
        # agree (dz small, quality within 1)
        record_decision(s, OIDS[0], "alice", "accept", quality=4, z_model=2.000)
        record_decision(s, OIDS[0], "bob", "correct", z_final=2.005, quality=3)
        # conflict on z
        record_decision(s, OIDS[1], "alice", "accept", quality=4, z_model=1.0)
        record_decision(s, OIDS[1], "bob", "correct", z_final=2.2, quality=4)
        # conflict on type, three inspectors
        record_decision(s, OIDS[3], "alice", "accept", quality=4, z_model=1.0)
        record_decision(s, OIDS[3], "bob", "accept", quality=4, z_model=1.0)
        record_decision(s, OIDS[3], "carol", "not_qso", quality=4, spectral_type="STAR")
        # a single inspector, and a skip that does not count
        record_decision(s, OIDS[4], "alice", "accept", quality=4, z_model=1.0)
        record_decision(s, OIDS[4], "bob", "skip")

        vs = {v.object_id: v for v in consensus(s)}
        assert set(vs) == {OIDS[0], OIDS[1], OIDS[3]}
        assert vs[OIDS[0]].status == "agree" and vs[OIDS[0]].z == pytest.approx(2.0025)
        assert vs[OIDS[0]].quality == 3.5 and vs[OIDS[0]].inspectors == ["alice", "bob"]
        assert vs[OIDS[1]].status == "conflict" and "|dz|" in vs[OIDS[1]].reasons[0] and vs[OIDS[1]].z is None
        assert vs[OIDS[3]].status == "conflict" and len(vs[OIDS[3]].reasons) == 2  # carol vs alice, carol vs bob
        assert verdict(s, OIDS[4]).status == "single" and verdict(s, OIDS[5]) is None
        # the conflict queue: triage priority order (OIDS[1] has the higher priority)
        assert [v.object_id for v in conflicts(s)] == [OIDS[1], OIDS[3]]

        r = resolve(s, OIDS[1], "dave", z=2.2, quality=4, spectral_type="QSO", comment="MgII and CIV agree")
        assert r.action == "resolve"
        assert sorted(d.id for d in history(s, OIDS[1])[-1].resolves) == sorted(d.id for d in vs[OIDS[1]].decisions)
        v = verdict(s, OIDS[1])
        assert (v.status, v.z, v.quality, v.resolution.id) == ("resolved", 2.2, 4, r.id)
        assert [c.object_id for c in conflicts(s)] == [OIDS[3]]
        # a later decision reopens it
        record_decision(s, OIDS[1], "alice", "correct", z_final=1.0, quality=4)
        assert verdict(s, OIDS[1]).status == "conflict"
        # a non-quasar resolution needs no z
        r2 = resolve(s, OIDS[3], "dave", z=None, quality=3, spectral_type="STAR")
        assert r2.z_final is None and verdict(s, OIDS[3]).status == "resolved"
        with pytest.raises(DecisionError, match="no decisions"):
            resolve(s, OIDS[5], "dave", z=1.0, quality=3)
        # resolutions are decisions too: nothing was lost
        assert count_decisions(s) == 12
