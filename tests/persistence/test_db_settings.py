"""db settings: what a person set is kept per inspector, checked against one table, and survives migrations.

Runs on a temp SQLite file, or on PostgreSQL with FNET_TEST_DB_URL set (see tests/db_helpers.py).
"""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from db_helpers import HEAD
from sqlalchemy import inspect, select, text

from db import load
from db.decisions import count_decisions, record_decision
from db.engine import current_revision, downgrade, make_engine, session_scope, upgrade
from db.queue import ORDERS
from db.schema import InspectorSetting, utcnow
from db.settings import (
    DEFAULTS,
    SETTINGS,
    SettingError,
    check_setting,
    load_settings,
    save_settings,
)
from db.validate import DecisionError


@pytest.fixture
def engine(db_url):
    e = make_engine(db_url)
    yield e
    e.dispose()


def test_the_table_of_settings():
    assert list(SETTINGS) == ["name", "smoothing", "rest", "major_only", "show_grid", "show_chi2", "show_model",
                              "show_sky", "queue_order", "quality_submits"]  # fmt: skip
    assert SETTINGS["queue_order"].choices == tuple(ORDERS) and DEFAULTS["queue_order"] == "priority"
    for key, s in SETTINGS.items():
        assert check_setting(key, s.default) == s.default  # every default passes its own check
        assert s.label


def test_save_and_reload_in_a_new_session(engine):
    with session_scope(engine) as s:
        assert load_settings(s, "alice") == DEFAULTS  # nobody yet: the defaults, and no inspector is created
        save_settings(s, "alice", {"smoothing": 3, "queue_order": "sn", "rest": True, "name": "Alice Ö."})
        save_settings(s, "alice", {"show_sky": False})  # keys not given are kept
        save_settings(s, "bob", {"smoothing": 1.5})
    with session_scope(engine) as s:
        got = load_settings(s, "alice")
        assert got == {**DEFAULTS, "smoothing": 3.0, "queue_order": "sn", "rest": True, "name": "Alice Ö.",
                       "show_sky": False}  # fmt: skip
        assert isinstance(got["smoothing"], float) and got["rest"] is True
        assert load_settings(s, " bob ")["smoothing"] == 1.5  # the name as everywhere else: trimmed
        save_settings(s, "alice", {"rest": None, "smoothing": 8.0})  # None: back to the default
    with session_scope(engine) as s:
        got = load_settings(s, "alice")
        assert got["rest"] is False and got["smoothing"] == 8.0 and got["queue_order"] == "sn"
        rows = s.scalars(select(InspectorSetting).order_by(InspectorSetting.key)).all()
        assert {r.key for r in rows} == {"smoothing", "queue_order", "name", "show_sky"}  # alice's; bob's below
        assert all(abs(r.updated_at - utcnow()) < timedelta(minutes=5) for r in rows)


@pytest.mark.parametrize("changes, match", [
    ({"smooth": 1.0}, "setting must be one of name, smoothing, .*got 'smooth'"),
    ({"nope": None}, "setting must be one of .*got 'nope'"),
    ({3: True}, "setting must be one of .*got 3"),
    ({"smoothing": "3"}, r"smoothing must be a number in \[0, 20\], got '3'"),
    ({"smoothing": 25}, r"smoothing must be a number in \[0, 20\], got 25"),
    ({"smoothing": float("nan")}, "smoothing must be a number"),
    ({"smoothing": True}, "smoothing must be a number"),
    ({"rest": 1}, "rest must be true or false, got 1"),
    ({"show_chi2": "yes"}, "show_chi2 must be true or false"),
    ({"queue_order": "random"}, "queue_order must be one of priority, sn, rule, z, got 'random'"),
    ({"name": 7}, "name must be text, got 7"),
    ({"name": "x" * 65}, "name must be at most 64 characters"),
    ({"name": "a\x00b"}, "name must not contain control characters"),
    ({"name": "\ud800"}, "name is not valid unicode"),
])  # fmt: skip
def test_unknown_keys_and_wrong_values_are_refused_by_name(engine, changes, match):
    with session_scope(engine) as s:
        save_settings(s, "alice", {"smoothing": 2.0})
        with pytest.raises(SettingError, match=match) as err:
            save_settings(s, "alice", {"rest": True, **changes})  # a good key beside the bad one...
        assert isinstance(err.value, DecisionError)  # the app shows these as it shows a decision's
        assert load_settings(s, "alice") == {**DEFAULTS, "smoothing": 2.0}  # ...is not written either
    with pytest.raises(SettingError, match="mapping"), session_scope(engine) as s:
        save_settings(s, "alice", [("rest", True)])


def test_a_stored_value_no_longer_valid_reads_as_the_default(engine):
    """A key dropped or a choice renamed by a later version must not stop the app from starting."""
    with session_scope(engine) as s:
        save_settings(s, "alice", {"queue_order": "z", "smoothing": 4.0})
        me = s.scalar(text("SELECT id FROM inspectors WHERE name = 'alice'"))
    with engine.begin() as conn:
        conn.execute(InspectorSetting.__table__.update().where(InspectorSetting.key == "queue_order")
                     .values(value="by_colour"))  # fmt: skip
        conn.execute(InspectorSetting.__table__.insert().values(inspector_id=me, key="old_key", value=[1, 2],
                                                                 updated_at=utcnow()))  # fmt: skip
    with session_scope(engine) as s:
        assert load_settings(s, "alice") == {**DEFAULTS, "smoothing": 4.0}


def test_upgrade_from_the_previous_head_keeps_the_data(db_url):
    """0006 adds inspector_settings: down to 0005 keeps the spectra, flags and decisions (only the settings
    go), up again gives an empty table that takes settings."""
    e = make_engine(db_url)
    with session_scope(e) as s:
        load.load_spectra(s, pd.DataFrame({"object_id": ["o0", "o1"], "row": np.arange(2), "sn_median_all": [3.0, 4.0]}))
        load.load_triage_flags(s, pd.DataFrame({"object_id": ["o0", "o1"], "rule": "r", "priority": [1.0, 2.0]}))
        record_decision(s, "o1", "alice", "correct", z_final=2.0, quality=3, comment="CIV")
        save_settings(s, "alice", {"queue_order": "sn"})
    e.dispose()
    assert current_revision(db_url) == HEAD

    downgrade(db_url, "0005")
    e = make_engine(db_url)
    assert "inspector_settings" not in inspect(e).get_table_names()
    with e.connect() as conn:
        assert conn.execute(text("SELECT name FROM inspectors")).scalars().all() == ["alice"]
        assert conn.execute(text("SELECT sn FROM triage_flags ORDER BY spectrum_id")).scalars().all() == [3.0, 4.0]
    e.dispose()

    upgrade(db_url)
    assert current_revision(db_url) == HEAD
    e = make_engine(db_url)
    with session_scope(e) as s:
        assert count_decisions(s) == 1
        assert load_settings(s, "alice") == DEFAULTS
        save_settings(s, "alice", {"queue_order": "rule"})
    with session_scope(e) as s:
        assert load_settings(s, "alice")["queue_order"] == "rule"
    e.dispose()
