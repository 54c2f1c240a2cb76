"""db schema, engine and bulk loading: migrations match the ORM, append-only decisions, pragmas, UTC, loaders.

Runs on a temp SQLite file, or on PostgreSQL with FNET_TEST_DB_URL set (see tests/db_helpers.py).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from db_helpers import HEAD, backend
from sqlalchemy import delete, func, insert, inspect, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from db import load
from db.decisions import record_decision
from db.engine import current_revision, make_engine, session_scope
from db.schema import (
    AppendOnlyError,
    Base,
    Decision,
    ModelVersion,
    Prediction,
    Spectrum,
    TriageFlag,
)
from db.validate import DecisionError

TABLES = {"spectra", "model_versions", "predictions", "inspectors", "decisions", "resolutions", "triage_flags",
          "queue_leases", "inspector_settings", "job_locks"}  # fmt: skip


@pytest.fixture
def engine(db_url):
    e = make_engine(db_url)
    yield e
    e.dispose()


def _spectra(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": np.arange(n, dtype=np.int64),
            "object_id": [f"7166-56602-{i:04d}" for i in range(n)],
            "file": [f"sdss/spec-7166-56602-{i:04d}.fits" for i in range(n)],
            "survey": "boss",
            "plate": pd.array([7166] * n, dtype="Int64"),
            "mjd": pd.array([56602] * n, dtype="Int64"),
            "fiberid": pd.array(list(range(n)), dtype="Int64"),
            "targetid": pd.array([pd.NA] * n, dtype="Int64"),
            "ra": np.linspace(10, 11, n),
            "dec": np.linspace(-1, 1, n),
            "sn_median_all": np.linspace(1, 5, n),
            "Z": np.linspace(0.5, 3, n),
            "Z_PIPE": np.linspace(0.5, 3, n),
            "Z_QN": [-1.0] + [1.0] * (n - 1),
            "Z_PCA": np.nan,
            "Z_VI": np.linspace(0.5, 3, n),
            "CLASS_PERSON": pd.array([3] * n, dtype="Int64"),
        }
    )


def _one_decision(engine) -> int:
    with session_scope(engine) as s:
        load.load_spectra(s, _spectra(2))
        return record_decision(s, "7166-56602-0000", "alice", "correct", z_final=2.0, quality=3).id


# --------------------------------------------------------------------------- migrations and schema
def test_migration_creates_every_table_and_matches_the_orm(engine, db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    assert TABLES <= set(inspect(engine).get_table_names())
    assert current_revision(db_url) == HEAD
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], diff


def test_queue_indexes_exist(engine):
    names = {ix["name"] for ix in inspect(engine).get_indexes("triage_flags")}
    assert {"ix_triage_queue", "ix_triage_rule_queue", "ix_triage_crosscheck", "ix_triage_sn_queue",
            "ix_triage_z_queue"} <= names
    assert {"ix_decisions_spectrum", "ix_decisions_inspector"} <= {ix["name"] for ix in inspect(engine).get_indexes("decisions")}


@pytest.mark.skipif(backend() != "sqlite", reason="SQLite pragmas")
def test_sqlite_connection_pragmas(engine):
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_foreign_keys_are_enforced(engine):
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(TriageFlag).values(spectrum_id=12345, rule="x", priority=1.0, n_inspectors=0))


# --------------------------------------------------------------------------- append-only decisions
def test_triggers_refuse_update_and_delete_of_decisions(engine):
    did = _one_decision(engine)
    for stmt in (
        text("UPDATE decisions SET z_final = :z WHERE id = :id").bindparams(z=3.0, id=did),
        text("DELETE FROM decisions WHERE id = :id").bindparams(id=did),
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(stmt)
    with engine.connect() as conn:
        assert conn.execute(select(Decision.z_final)).scalars().all() == [2.0]


def test_orm_refuses_to_change_or_delete_a_decision(engine):
    did = _one_decision(engine)
    with session_scope(engine) as s:
        d = s.get(Decision, did)
        d.z_final = 1.0
        with pytest.raises(AppendOnlyError):
            s.flush()
        s.rollback()
    with session_scope(engine) as s:
        s.delete(s.get(Decision, did))
        with pytest.raises(AppendOnlyError):
            s.flush()
        s.rollback()
    with session_scope(engine) as s:
        with pytest.raises(AppendOnlyError):
            s.execute(update(Decision).values(quality=0))
        with pytest.raises(AppendOnlyError):
            s.execute(delete(Decision))
    with session_scope(engine) as s:
        d = s.get(Decision, did)
        assert (d.z_final, d.quality, d.action) == (2.0, 3, "correct")


def test_check_constraints_back_up_validation(engine):
    _one_decision(engine)
    base = {"spectrum_id": 1, "inspector_id": 1, "action": "accept", "z_final": 1.0, "quality": 3, "flags": 0,
            "spectral_type": "QSO", "decided_at": datetime.now(UTC)}  # fmt: skip
    for bad in ({"action": "maybe"}, {"z_final": 9.0}, {"quality": 5}, {"flags": 8}, {"spectral_type": "quasar"},
                {"comment": "x" * 2001}):  # fmt: skip
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(Decision).values(**{**base, **bad}))


def test_times_are_stored_in_utc_and_come_back_aware(engine):
    with session_scope(engine) as s:
        load.load_spectra(s, _spectra(1))
        east = timezone(timedelta(hours=5))
        d = record_decision(s, "7166-56602-0000", "alice", "skip", decided_at=datetime(2024, 1, 1, 5, 30, tzinfo=east))
        n = record_decision(s, "7166-56602-0000", "alice", "skip", decided_at=datetime(2024, 1, 1, 0, 31))  # naive = UTC
    with session_scope(engine) as s:
        got = s.scalars(select(Decision.decided_at).order_by(Decision.id)).all()
    assert got == [datetime(2024, 1, 1, 0, 30, tzinfo=UTC), datetime(2024, 1, 1, 0, 31, tzinfo=UTC)]
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in got)
    assert d.id < n.id


def test_session_scope_rolls_back_on_error(engine):
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        s.add(Spectrum(object_id="x"))
        s.flush()
        raise RuntimeError("boom")
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Spectrum)) == 0


# --------------------------------------------------------------------------- loading
def test_load_spectra_maps_store_and_catalog_columns_and_upserts(engine):
    df = _spectra(5)
    desi = pd.DataFrame({"object_id": ["39627775148361732-main-dark"], "survey": ["desi"],
                         "targetid": pd.array([39627775148361732], dtype="Int64"), "row": [5],
                         "plate": pd.array([pd.NA], dtype="Int64")})  # fmt: skip
    with session_scope(engine) as s:
        assert load.load_spectra(s, pd.concat([df, desi], ignore_index=True)) == 6
        sp = s.scalars(select(Spectrum).where(Spectrum.object_id == "7166-56602-0000")).one()
        assert (sp.plate, sp.mjd, sp.fiberid, sp.store_row, sp.z_qn, sp.class_person) == (7166, 56602, 0, 0, -1.0, 3)
        assert sp.z_pca is None and sp.targetid is None and sp.file == "sdss/spec-7166-56602-0000.fits"
        assert sp.sn == pytest.approx(1.0) and sp.z_catalog == pytest.approx(0.5)
        d = s.scalars(select(Spectrum).where(Spectrum.survey == "desi")).one()
        assert d.targetid == 39627775148361732 and d.plate is None  # exact 64-bit id
        # reloading updates in place (same ids), new catalog values win
        df2 = df.assign(Z_VI=9.9)
        assert load.load_spectra(s, df2) == 5
        assert s.scalar(select(func.count()).select_from(Spectrum)) == 6
        s.expire_all()
        assert set(s.scalars(select(Spectrum.z_vi).where(Spectrum.survey == "boss"))) == {9.9}
        ids = load.spectrum_ids(s, ["7166-56602-0003", "nope"])
        assert ids.iloc[0] == s.scalar(select(Spectrum.id).where(Spectrum.object_id == "7166-56602-0003"))
        assert pd.isna(ids.iloc[1])


def test_load_spectra_refuses_duplicates_and_missing_object_id(engine):
    with session_scope(engine) as s:
        with pytest.raises(DecisionError, match="object_id"):
            load.load_spectra(s, pd.concat([_spectra(2), _spectra(1)]))
        with pytest.raises(DecisionError, match="object_id"):
            load.load_spectra(s, _spectra(2).drop(columns="object_id"))
        assert s.scalar(select(func.count()).select_from(Spectrum)) == 0


def test_model_versions_and_predictions(engine):
    df = _spectra(4)
    pred = pd.DataFrame({"row": df["row"], "object_id": df["object_id"], "z_fnet": [1.0, 2.0, np.nan, 3.0],
                         "z_fnet_err": [0.01, 0.02, np.nan, 0.03], "p_fnet": 0.9,
                         "z_alt1": [1.5, np.nan, np.nan, 0.4], "p_alt1": [0.05, np.nan, np.nan, 0.1],
                         "z_alt2": np.nan, "p_alt2": np.nan, "model_sha1": "ab" * 20})  # fmt: skip
    with session_scope(engine) as s:
        load.load_spectra(s, df)
        m1 = load.add_model_version(s, "fnet-small", "ab" * 20, config={"channels": np.int64(32)},
                                    metrics={"acc6000": np.float32(0.91), "nan": float("nan")}, data_hash="d1",
                                    label_count=1000, path="/models/a.pt", make_current=True)  # fmt: skip
        again = load.add_model_version(s, "fnet-small", "ab" * 20)
        assert again.id == m1.id
        m2 = load.add_model_version(s, "fnet-small-ft", "cd" * 20, parent_sha1="ab" * 20, make_current=True)
        assert m2.parent_id == m1.id
        assert load.current_model(s).id == m2.id
        assert s.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.is_current)) == 1
        load.set_current_model(s, m1.id)
        assert load.current_model(s).sha1 == "ab" * 20
        with pytest.raises(DecisionError, match="parent_sha1"):
            load.add_model_version(s, "orphan", "ef" * 20, parent_sha1="00" * 20)
        assert load.load_predictions(s, pred, m1.id) == 4
        assert load.load_predictions(s, pred.assign(z_fnet=pred["z_fnet"] + 0.1), m1.id) == 4  # upsert
        assert s.scalar(select(func.count()).select_from(Prediction)) == 4
        got = load.predictions_frame(s, m1.id)
        assert got["z"].tolist()[:2] == pytest.approx([1.1, 2.1]) and pd.isna(got["z"].iloc[2])
        assert got["alternatives"].iloc[0] == [{"z": 1.5, "p": 0.05}]
        assert got["alternatives"].iloc[1] is None
        mv = s.get(ModelVersion, m1.id)
        assert mv.config == {"channels": 32} and mv.metrics["nan"] is None
        with pytest.raises(DecisionError, match="object_id"):
            load.load_predictions(s, pred.assign(object_id="unknown"), m1.id)
        with pytest.raises(DecisionError, match="model_version_id"):
            load.load_predictions(s, pred, 999)


def test_predictions_carry_fnet_class(engine):
    """A predictions frame with FNet's class stores fnet_class, p_qso and the class probabilities by name; a
    frame from a model without a class head (null class columns) stores nulls; one without the columns at all
    keeps what is stored."""
    from db.validate import CLASS_PROB_PREFIX
    from inspector.pipeline.predict import class_columns
    from model.classes import PROB_COLUMNS

    assert all(c.startswith(CLASS_PROB_PREFIX) for c in PROB_COLUMNS)  # the loader reads them by this prefix
    df = _spectra(3)
    prob = np.array([[0.96, 0.02, 0.01, 0.005, 0.005], [0.01, 0.0, 0.02, 0.95, 0.02], [0.3, 0.2, 0.4, 0.05, 0.05]])
    pred = pd.DataFrame({"object_id": df["object_id"], "z_fnet": [2.1, 0.12, 1.0], **class_columns(prob, 3)})
    with session_scope(engine) as s:
        load.load_spectra(s, df)
        mv = load.add_model_version(s, "fnet-class", "12" * 20, make_current=True)
        load.load_predictions(s, pred, mv.id)
        got = load.predictions_frame(s, mv.id)
        assert got["fnet_class"].tolist() == ["QSO", "GALAXY", "STAR"]
        np.testing.assert_allclose(got["p_qso"], [0.98, 0.01, 0.5])
        assert got["class_probs"][1] == {"QSO": 0.01, "BAL": 0.0, "STAR": 0.02, "GALAXY": 0.95, "BAD": 0.02}
        load.load_predictions(s, pred[["object_id", "z_fnet"]], mv.id)  # FNet's z alone: the class stays
        assert load.predictions_frame(s, mv.id)["fnet_class"].tolist() == ["QSO", "GALAXY", "STAR"]
        no_head = pred[["object_id", "z_fnet"]].assign(**class_columns(None, 3))
        load.load_predictions(s, no_head, mv.id)  # a model without a class head says nothing: nulls
        got = load.predictions_frame(s, mv.id)
        assert got["fnet_class"].isna().all() and got["p_qso"].isna().all() and got["class_probs"].isna().all()


def test_triage_flags_replace_and_keep_decided_counts(engine):
    df = _spectra(4)
    flags = pd.DataFrame({"object_id": df["object_id"][:3], "rule": ["dv_pipe", "dv_pipe", "zqn_missing"],
                          "value": [5000.0, 4000.0, np.nan], "priority": [3.0, 2.0, 1.0]})  # fmt: skip
    with session_scope(engine) as s:
        load.load_spectra(s, df)
        assert load.load_triage_flags(s, flags) == 3
        record_decision(s, "7166-56602-0000", "alice", "accept", quality=4, z_model=1.0)
        record_decision(s, "7166-56602-0000", "bob", "accept", quality=4, z_model=1.0)
        assert load.load_triage_flags(s, flags.iloc[[0, 2]]) == 2  # a new triage run replaces the old one
        rows = s.execute(select(TriageFlag.spectrum_id, TriageFlag.rule, TriageFlag.n_inspectors)
                         .order_by(TriageFlag.spectrum_id)).all()  # fmt: skip
        assert [(r.rule, r.n_inspectors) for r in rows] == [("dv_pipe", 2), ("zqn_missing", 0)]
        load.load_triage_flags(s, flags.iloc[[1]], replace=False)
        assert s.scalar(select(func.count()).select_from(TriageFlag)) == 3
        with pytest.raises(DecisionError, match="rule"):
            load.load_triage_flags(s, flags.assign(rule=""))
        assert load.table_counts(s)["triage_flags"] == 3


def test_a_load_writes_the_same_rows_on_either_backend(engine):
    """PostgreSQL loads through COPY into a staging table (`db.copy_load`), SQLite row by row: the rows are
    the same. Text with tabs, newlines and backslashes arrives whole, NaN is NULL, the alternatives are JSON,
    of two rows for one key the later wins, a flag carries its spectrum's S/N and its model's z, and a
    re-load updates the rows in place."""
    df = _spectra(4)
    df.loc[0, "file"] = "dir\twith tab/new\nline\\back\\slash 'q' \"d\".fits"
    with session_scope(engine) as s:
        assert load.load_spectra(s, df, chunk=3) == 4
        mv = load.add_model_version(s, "m", "cd" * 20, make_current=True)
        preds = pd.DataFrame({"object_id": [*df["object_id"], df["object_id"][1]], "z_fnet": [1.0, 2.0, np.nan, 4.0, 2.5],
                              "z_alt1": [1.5, np.nan, 0.7, 4.1, 0.2], "p_alt1": [0.2, np.nan, np.nan, 0.1, 0.3]})  # fmt: skip
        assert load.load_predictions(s, preds, mv.id, chunk=2) == 5
        flags = pd.DataFrame({"object_id": [df["object_id"][1], df["object_id"][2], df["object_id"][1]],
                              "rule": ["r", "r", "r"], "value": [1.0, np.nan, 3.0], "priority": [1.0, 2.0, 5.0]})  # fmt: skip
        assert load.load_triage_flags(s, flags) == 3
        s.expire_all()
        assert s.scalar(select(Spectrum.file).where(Spectrum.object_id == df["object_id"][0])) == df["file"][0]
        rows = {o: (z, alt) for o, z, alt in s.execute(select(Spectrum.object_id, Prediction.z, Prediction.alternatives)
                                                       .join(Prediction, Prediction.spectrum_id == Spectrum.id))}  # fmt: skip
        assert rows[df["object_id"][0]] == (1.0, [{"z": 1.5, "p": 0.2}])
        assert rows[df["object_id"][1]] == (2.5, [{"z": 0.2, "p": 0.3}])  # the later of its two rows
        assert rows[df["object_id"][2]] == (None, [{"z": 0.7, "p": None}])
        got = s.execute(select(Spectrum.object_id, TriageFlag.value, TriageFlag.priority, TriageFlag.sn, TriageFlag.z_fnet)
                        .join(Spectrum, Spectrum.id == TriageFlag.spectrum_id).order_by(Spectrum.object_id)).all()  # fmt: skip
        sn = df["sn_median_all"]
        assert [tuple(r) for r in got] == [(df["object_id"][1], 3.0, 5.0, pytest.approx(sn[1]), 2.5),
                                           (df["object_id"][2], None, 2.0, pytest.approx(sn[2]), None)]  # fmt: skip
        assert load.load_spectra(s, df.assign(Z_VI=1.25)) == 4  # in place: same ids, new values
        s.expire_all()
        assert set(s.scalars(select(Spectrum.z_vi))) == {1.25} and load.table_counts(s)["spectra"] == 4


def test_loading_in_chunks_and_whole_numbers_checked_first(engine):
    df = _spectra(5)
    with session_scope(engine) as s:
        with pytest.raises(DecisionError, match="plate must hold whole numbers"):
            load.load_spectra(s, df.assign(plate=[7166.0, 7166.0, 7166.0, 7166.0, 7166.5]), chunk=2)
        assert s.scalar(select(func.count()).select_from(Spectrum)) == 0  # nothing half-loaded
        assert load.load_spectra(s, df.assign(plate=[7166.0, np.nan, 7166.0, 7166.0, 7166.0]), chunk=2) == 5
        assert s.scalars(select(Spectrum.plate).order_by(Spectrum.id)).all() == [7166, None, 7166, 7166, 7166]
        flags = pd.DataFrame({"object_id": df["object_id"], "rule": "r", "priority": np.arange(5.0)})
        assert load.load_triage_flags(s, flags, chunk=2) == 5
        mv = load.add_model_version(s, "m", "ab" * 20)
        assert load.load_predictions(s, pd.DataFrame({"object_id": df["object_id"], "z": 1.0}), mv.id, chunk=3) == 5
        assert load.table_counts(s)["predictions"] == 5
