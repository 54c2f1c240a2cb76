"""The risk model's answer in the database and on the Inspect screen: revision 0004 (risk, z_best,
z_best_source, risk_drivers on predictions), `db.load.load_predictions`, `load_into_db` with a triage's
scores parquet, and "why it is here" / the candidates.

Runs on a temp SQLite file, or on PostgreSQL with FNET_TEST_DB_URL set (see tests/db_helpers.py).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from db_helpers import HEAD, fresh_database
from sqlalchemy import inspect, text

from db import load
from db.decisions import count_decisions, record_decision
from db.engine import current_revision, downgrade, make_engine, session_scope, upgrade
from db.validate import DecisionError

OIDS = ["7166-56602-0101", "7166-56602-0102", "7166-56602-0103", "7166-56602-0104"]
RISK_COLUMNS = {"risk", "z_best", "z_best_source", "risk_drivers"}
# a quasar whose FNet z disagrees with the template fit by ~20,000 km/s: the drivers the learner would give
DRIVERS = [["dv_fnet_tpl", 4.3012, 0.3104], ["tpl_dchi2", 0.6021, 0.1187], ["qn_failed", 1.0, 0.0412]]


def _predictions(**risk_columns) -> pd.DataFrame:
    """FNet z (two quasars at z~2.3, a z~0.9 quasar, a star), the template fit and the class, plus `risk_columns`."""
    return pd.DataFrame({
        "row": np.arange(4), "object_id": OIDS, "z_fnet": [2.3121, 2.2874, 0.9312, 0.0003],
        "z_fnet_err": [0.0011, 0.0009, 0.0023, 0.0004], "p_fnet": [0.52, 0.97, 0.91, 0.88],
        "z_tpl": [2.2410, 2.2871, 0.9310, np.nan], "z_tpl_err": 4e-4, "tpl_dchi2": [3.0, 412.5, 220.1, np.nan],
        "fnet_class": ["QSO", "QSO", "QSO", "STAR"], "p_qso": [0.93, 0.99, 0.97, 0.02], **risk_columns,
    })  # fmt: skip


RISK = {
    "risk": [0.6213, 0.0042, 0.0172, np.nan],
    "z_best": [2.3121, 2.2874, 0.9310, np.nan],
    "z_best_source": ["fnet", "fnet", "tpl", None],
    "risk_drivers": [json.dumps(DRIVERS), "", None, ""],  # drivers only for the queue's head
}


@pytest.fixture
def db_url(tmp_path):
    url = fresh_database(tmp_path)
    e = make_engine(url)
    with session_scope(e) as s:
        load.load_spectra(s, pd.DataFrame({"object_id": OIDS, "row": np.arange(4), "Z_PIPE": [2.25, 2.2869, 0.93, 0.0],
                                           "sn": [1.8, 6.2, 4.4, 12.0]}))  # fmt: skip
    e.dispose()
    return url


def _load(url: str, frame: pd.DataFrame) -> tuple[int, pd.DataFrame]:
    e = make_engine(url)
    try:
        with session_scope(e) as s:
            mv = load.add_model_version(s, "fnet-demo", "5e" * 20, make_current=True)
            load.load_predictions(s, frame, mv.id)
            return mv.id, load.predictions_frame(s, mv.id).set_index("object_id")
    finally:
        e.dispose()


# --------------------------------------------------------------------------- load_predictions
def test_load_predictions_round_trips_the_risk_and_a_reload_without_it_keeps_it(db_url):
    _, got = _load(db_url, _predictions(**RISK))
    assert got.loc[OIDS[0], "risk"] == pytest.approx(0.6213) and got.loc[OIDS[2], "z_best"] == pytest.approx(0.9310)
    assert got["z_best_source"].iloc[:3].tolist() == ["fnet", "fnet", "tpl"] and pd.isna(got["z_best_source"].iloc[3])
    assert got.loc[OIDS[0], "risk_drivers"] == DRIVERS  # a JSON string in, a list back
    assert got["risk_drivers"].iloc[1:].isna().all()  # "" and None: not worked out -> NULL
    assert pd.isna(got.loc[OIDS[3], "risk"]) and pd.isna(got.loc[OIDS[3], "z_best"])

    # a list goes in as it is; NaN inside it (a missing estimate) is stored as null (JSONB has no NaN)
    _, got = _load(db_url, _predictions(**{**RISK, "risk_drivers": [DRIVERS, [["dv_fnet_qn", float("nan"), 0.02]],
                                                                      [], None]}))  # fmt: skip
    assert got.loc[OIDS[0], "risk_drivers"] == DRIVERS and got.loc[OIDS[1], "risk_drivers"] == [["dv_fnet_qn", None, 0.02]]
    assert got.loc[OIDS[2], "risk_drivers"] == []  # worked out, nothing stands out: kept apart from "not worked out"

    # re-loading FNet's columns alone (an older predictions file, a rules-only load) keeps the stored risk
    _, again = _load(db_url, _predictions().assign(z_fnet=lambda f: f["z_fnet"] + 1e-5))
    assert np.allclose(again["z"], got["z"] + 1e-5)
    for c in ("risk", "z_best"):
        np.testing.assert_allclose(again[c].to_numpy(float), got[c].to_numpy(float))
    pd.testing.assert_series_equal(again["z_best_source"], got["z_best_source"])
    assert again.loc[OIDS[0], "risk_drivers"] == DRIVERS


@pytest.mark.parametrize(("column", "value", "match"), [
    ("risk", 1.3, "probability"),
    ("risk_drivers", "[[\"dv_fnet_tpl\", 4.3", "not JSON"),
    ("risk_drivers", '{"dv_fnet_tpl": 4.3}', "list of"),
    ("z_best_source", "template-fit", "at most 8"),
])  # fmt: skip
def test_load_predictions_refuses_a_bad_scores_column_before_writing(db_url, column, value, match):
    bad = _predictions(**RISK)
    bad[column] = bad[column].astype(object)
    bad.loc[0, column] = value
    with pytest.raises(DecisionError, match=match):
        _load(db_url, bad)
    e = make_engine(db_url)
    with e.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar() == 0
    e.dispose()


# --------------------------------------------------------------------------- migration 0004
def test_risk_revision_0004_keeps_predictions_and_decisions(db_url):
    """0004 adds the risk to predictions: down to 0003 keeps every prediction (template fit and class too) and
    decision (only the risk goes), up again gives the columns back empty, to be filled by a re-load."""
    mv_id, pred = _load(db_url, _predictions(**RISK))
    e = make_engine(db_url)
    with session_scope(e) as s:
        record_decision(s, OIDS[0], "alice", "correct", z_final=2.2410, quality=3, model_version_id=mv_id,
                        z_model=2.3121)  # fmt: skip
    e.dispose()
    assert current_revision(db_url) == HEAD

    downgrade(db_url, "0003")
    assert current_revision(db_url) == "0003"
    e = make_engine(db_url)
    with e.connect() as conn:
        assert not {c["name"] for c in inspect(e).get_columns("predictions")} & RISK_COLUMNS
        z, z_tpl, cls = zip(*conn.execute(text("SELECT z, z_tpl, fnet_class FROM predictions ORDER BY spectrum_id")).all())
        np.testing.assert_allclose(z, pred["z"])
        np.testing.assert_allclose(np.array(z_tpl, float), pred["z_tpl"].to_numpy(float))
        assert list(cls) == ["QSO", "QSO", "QSO", "STAR"]
        assert conn.execute(text("SELECT count(*) FROM decisions")).scalar() == 1
    e.dispose()

    upgrade(db_url)
    assert current_revision(db_url) == HEAD
    e = make_engine(db_url)
    with session_scope(e) as s:
        again = load.predictions_frame(s, mv_id).set_index("object_id")
        np.testing.assert_allclose(again["z"], pred["z"])
        assert again["risk"].isna().all() and again["z_best_source"].isna().all() and again["risk_drivers"].isna().all()
        assert count_decisions(s) == 1
    e.dispose()
    _, filled = _load(db_url, _predictions(**RISK))
    assert filled.loc[OIDS[0], "risk_drivers"] == DRIVERS and filled.loc[OIDS[0], "risk"] == pytest.approx(0.6213)


# --------------------------------------------------------------------------- the Inspect screen
def test_why_it_is_here_shows_the_risk_and_its_drivers_and_marks_the_catalog_z(db_url):
    pytest.importorskip("panel")
    from inspector.app.why_panel import why_html
    from inspector.app.session import InspectSession

    _load(db_url, _predictions(**RISK))
    e = make_engine(db_url)
    with session_scope(e) as s:
        load.load_triage_flags(s, pd.DataFrame({"object_id": OIDS, "rule": ["risk", "risk", "risk", "dv_pipe"],
                                                "value": [0.6213, 0.0042, 0.0172, 6000.0],
                                                "priority": [4.0, 3.0, 2.0, 1.0]}))  # fmt: skip
    t = InspectSession(e, None, inspector="alice")

    assert t.jump(OIDS[0])
    page = why_html(t)
    assert "risk <b>62 %</b>: P(this z or class is wrong) · catalog z 2.31210 from FNet" in page
    assert "log10 |dv| FNet vs the template fit (km/s): 4.3 (+31 %)" in page
    assert "QuasarNET gave no redshift (Z_QN = -1): 1 (+4.1 %)" in page
    rows = {c["source"]: c["note"] for c in t.candidates()}
    assert rows["FNet"].startswith("★ catalog z · ± 0.0011") and "catalog" not in rows["Template"]

    assert t.jump(OIDS[2])  # the template fit is the catalog's z; no drivers worked out
    page = why_html(t)
    assert "risk <b>1.7 %</b>" in page and "from the template fit" in page and "fnet-risk-drivers" not in page
    rows = {c["source"]: c["note"] for c in t.candidates()}
    assert rows["Template"].startswith("★ catalog z") and "catalog" not in rows["FNet"]

    assert t.jump(OIDS[3])  # no risk (NULL): the page reads as it did before revision 0004
    page = why_html(t)
    assert "fnet-risk" not in page and "P(this z" not in page and "%" not in page
    assert not any("catalog" in c["note"] or "catalog" in c["source"] for c in t.candidates())
    e.dispose()


def test_the_catalog_z_gets_a_row_where_no_candidate_shows_it():
    """The pipeline's z read from the spectrum file (no catalog Z_PIPE): the catalog's z is still on screen."""
    from inspector.app.item import Item, candidates
    from inspector.app.risk_view import risk_html

    it = Item(1, OIDS[0], {"z_pipe": None}, np.zeros(0), np.zeros(0), np.zeros(0), None, None, z_fnet=1.1021,
              z_err=0.004, risk=0.2875, z_best=2.5541, z_best_source="pipe",
              risk_drivers=[["dv_fnet_pipe", 4.61, 0.183], ["p_qso", 0.41, 0.05]])  # fmt: skip
    last = candidates(it, 1.1021)[-1]
    assert last["source"] == "catalog (pipe)" and last["z"] == pytest.approx(2.5541) and last["note"] == "★ catalog z"
    page = risk_html(it)
    assert "risk <b>29 %</b>" in page and "from the pipeline" in page
    assert "log10 |dv| FNet vs the pipeline: 4.61 (+18 %)" in page and "FNet: P(quasar): 0.41 (+5.0 %)" in page
    plain = Item(1, OIDS[0], {"z_pipe": None}, np.zeros(0), np.zeros(0), np.zeros(0), None, None, z_fnet=1.1021)
    assert risk_html(plain) == "" and [c["source"] for c in candidates(plain, 1.1021)] == [
        "FNet", "Template", "Z_PIPE", "Z_QN", "Z_PCA"]


# --------------------------------------------------------------------------- load_into_db with a triage's scores
@pytest.fixture(scope="module")
def triaged(tmp_path_factory):
    pytest.importorskip("torch")
    from app_helpers import triaged_mock

    return triaged_mock(tmp_path_factory.mktemp("risk"), n=40, seed=11)


def test_load_into_db_merges_the_scores_by_row_and_a_rules_only_triage_clears_them(triaged, tmp_path):
    from inspector.pipeline.triage import SCORE_COLUMNS, load_into_db, run_triage
    from inspector.store.files import scores_path

    store, predictions, _, _ = triaged
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    flags, out, meta = run_triage(store, predictions, out=tmp_path / "triage" / "demo.parquet")
    pred = pd.read_parquet(predictions)
    n = len(pred)
    rng = np.random.default_rng(3)
    scores = pd.DataFrame({
        "row": pred["row"].to_numpy()[::-1], "object_id": pred["object_id"].to_numpy()[::-1],  # any order
        "risk": rng.uniform(0.001, 0.9, n), "z_best": pred["z_fnet"].to_numpy()[::-1],
        "z_best_source": "fnet", "accepted": False, "policy_queue": True, "no_signal_bucket": False,
        "risk_drivers": [json.dumps(DRIVERS)] + [""] * (n - 1),
    })  # fmt: skip
    assert list(scores.columns) == list(SCORE_COLUMNS)
    scores.to_parquet(scores_path(out), index=False)

    load_into_db(url, store, predictions, flags, meta, scores=scores_path(out))
    with session_scope(make_engine(url)) as s:
        got = load.predictions_frame(s, load.current_model(s).id).set_index("object_id")
    exp = scores.set_index("object_id")
    np.testing.assert_allclose(got.loc[exp.index, "risk"], exp["risk"])
    np.testing.assert_allclose(got.loc[exp.index, "z_best"], got.loc[exp.index, "z"])
    assert got.loc[exp.index[0], "risk_drivers"] == DRIVERS and got["risk_drivers"].notna().sum() == 1

    load_into_db(url, store, predictions, flags, meta)  # no scores named: the stored risk stays
    with session_scope(make_engine(url)) as s:
        assert load.predictions_frame(s, load.current_model(s).id)["risk"].notna().all()

    bad = scores.assign(object_id=scores["object_id"].to_numpy()[::-1])  # scored on another run of the store
    bad.to_parquet(scores_path(out), index=False)
    with pytest.raises(ValueError, match="object ids differ"):
        load_into_db(url, store, predictions, flags, meta, scores=scores_path(out))

    scores_path(out).unlink()  # a rules-only triage leaves none: no risk from an earlier triage is shown
    load_into_db(url, store, predictions, flags, meta, scores=scores_path(out))
    with session_scope(make_engine(url)) as s:
        got = load.predictions_frame(s, load.current_model(s).id)
    assert got["risk"].isna().all() and got["z_best_source"].isna().all() and got["risk_drivers"].isna().all()
    assert got["z"].notna().all()


def test_a_policy_triage_puts_the_risk_model_answer_on_the_inspect_screen(triaged, tmp_path):
    """End to end with the demo model's own risk model: triage with the queue policy, load with the scores
    (as `inspector triage --db` does), and the head of the queue says how risky it is and why."""
    pytest.importorskip("panel")
    from inspector.app.why_panel import why_html
    from inspector.app.session import InspectSession
    from inspector.pipeline.triage import choose_policy, load_into_db, run_triage
    from inspector.store.files import scores_path

    store, predictions, _, _ = triaged
    policy, note = choose_policy(None, None, False, store, predictions)
    if policy is None:
        pytest.skip(note or "no risk model for the demo model")
    flags, out, meta = run_triage(store, predictions, policy=policy, out=tmp_path / "triage" / "policy.parquet")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    load_into_db(url, store, predictions, flags, meta, scores=scores_path(out))
    e = make_engine(url)
    with session_scope(e) as s:
        got = load.predictions_frame(s, load.current_model(s).id)
    assert got["risk"].between(0, 1).all() and set(got["z_best_source"]) <= {"fnet", "tpl", "pipe"}
    t = InspectSession(e, None, inspector="alice")
    t.start()
    if t.item is None:
        pytest.skip("the policy accepted every spectrum of this mock")
    page = why_html(t)
    assert "P(this z or class is wrong)" in page and t.item.risk is not None
    assert sum("★ catalog z" in c["note"] for c in t.candidates()) == 1
    if t.item.risk_drivers:  # the head of the queue has its drivers worked out
        assert "fnet-risk-drivers" in page
    e.dispose()
