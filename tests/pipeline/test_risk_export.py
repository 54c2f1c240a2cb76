"""The catalog after a queue policy's triage: the best z with its source, the risk, what was auto-accepted,
the policy and its expected contamination in the FITS header and the sidecar, and the Overview's
queue-vs-leak curve -- on a mock survey predicted by the shipped demo FNet, with a risk model fitted on
another mock survey (never on the spectra it judges)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from typer.testing import CliRunner

MAX_LEAK = 0.005


def _mock(d: Path, n: int, seed: int) -> tuple[Path, Path]:
    """A mock survey ingested and predicted with the demo FNet (template fit included): (store, predictions)."""
    from inspector.ingest import ingest
    from inspector.mock import make_survey
    from inspector.pipeline.predict import write_predictions
    from inspector.store.files import predictions_path
    from model.assets import DEMO_MODEL

    make_survey(d / "survey", n, seed=seed, workers=1, progress=False)
    ingest([str(d / "survey")], d / "store", workers=1, progress=False)
    write_predictions(d / "store", DEMO_MODEL, device="cpu")
    return d / "store", predictions_path(d / "store", DEMO_MODEL)


@pytest.fixture(scope="module")
def policy_triage(tmp_path_factory):
    """(store, predictions, flags, triage meta, scores, risk model path, tmp dir): 60 spectra triaged with
    `Policy(max_leak=0.005)` and a risk model fitted on a 200-spectrum mock of another seed."""
    from inspector.pipeline.triage import run_triage
    from inspector.risk.policy import Policy
    from inspector.risk.stores import fit_on_stores
    from inspector.store.files import scores_path

    tmp = tmp_path_factory.mktemp("risk_export")
    train = _mock(tmp / "train", 200, seed=11)
    store, predictions = _mock(tmp / "judged", 60, seed=5)
    risk = tmp / "risk.joblib"
    fit_on_stores([train], risk)
    flags, out, meta = run_triage(store, predictions, policy=Policy(max_leak=MAX_LEAK), risk=risk)
    scores = pd.read_parquet(scores_path(out))
    return store, predictions, flags, meta, scores, risk, tmp


def test_undecided_z_is_the_best_estimate_with_its_source(policy_triage):
    from db.export import catalog_table
    from inspector.pipeline.catalog_rows import model_rows

    store, predictions, _, tmeta, scores, *_ = policy_triage
    rows, meta = model_rows(store, predictions)
    assert meta["policy"] == tmeta["policy"] and meta["scores"].endswith(".scores.parquet")
    sc = scores.set_index("object_id").loc[rows["object_id"]]
    src = sc["z_best_source"].to_numpy(str)
    # the risk model did not take FNet's z everywhere: the test sees the template fit chosen somewhere
    assert set(src) <= {"fnet", "tpl", "pipe"} and (src != "fnet").any()
    assert rows["z_source"].tolist() == src.tolist()
    np.testing.assert_array_equal(rows["z_final"].to_numpy(float), sc["z_best"].to_numpy(float))
    tpl = src == "tpl"
    np.testing.assert_array_equal(rows["z_final"].to_numpy(float)[tpl], rows["z_tpl"].to_numpy(float)[tpl])
    assert (np.abs(rows["z_final"] - rows["z_fnet"]).to_numpy()[tpl] > 1e-3).any()  # not FNet's z
    fn = src == "fnet"
    np.testing.assert_array_equal(rows["z_final"].to_numpy(float)[fn], rows["z_fnet"].to_numpy(float)[fn])
    np.testing.assert_allclose(rows["risk"].to_numpy(float), sc["risk"].to_numpy(float))
    assert rows["auto_accepted"].tolist() == sc["accepted"].astype(int).tolist()
    assert int(rows["auto_accepted"].sum()) == tmeta["policy"]["n_accepted"] > 0
    # with a policy the class is FNet's own call: the risk already counts its doubt
    assert meta["p_qso_min"] == 0.5
    t = catalog_table(rows, meta["p_qso_min"])
    p = rows["p_qso"].to_numpy(float)
    np.testing.assert_array_equal(t["is_qso_final"], np.where(p >= 0.5, 1, np.where(p <= 0.5, -1, 0)))
    assert t["auto_accepted"].dtype == np.int16 and t["risk"].between(0, 1).all()


@pytest.fixture(scope="module")
def decided_export(policy_triage):
    """The policy triage loaded into SQLite, four spectra decided, `inspector export --db` written:
    (object ids decided {role: object_id}, catalog parquet, FITS header, sidecar, CLI output, database URL)."""
    from db_helpers import fresh_database

    from db.decisions import record_decision
    from db.engine import make_engine, session_scope
    from inspector.cli import app
    from inspector.pipeline.triage import load_into_db

    store, predictions, flags, tmeta, scores, _, tmp = policy_triage
    d = tmp / "decided"
    d.mkdir()
    url = fresh_database(d, name="risk_export")  # a module-wide database: a schema of its own on PostgreSQL
    load_into_db(url, store, predictions, flags, tmeta)
    tpl = scores[scores["z_best_source"] == "tpl"]
    acc = scores[scores["accepted"] & (scores["z_best_source"] == "fnet")]
    who = {
        "tpl corrected": str(tpl["object_id"].iloc[0]),  # the template fit's z in the catalog, a person corrects it
        "accepted, not a quasar": str(acc["object_id"].iloc[0]),  # auto-accepted, a person says it is a star
        "accepted, confirmed": str(acc["object_id"].iloc[1]),
        "conflict": str(acc["object_id"].iloc[2]),  # two disagree: nothing vetted, the automatic z stays
    }
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            record_decision(s, who["tpl corrected"], "alice", "correct", z_final=0.4321, quality=4)
            record_decision(s, who["accepted, not a quasar"], "alice", "not_qso", quality=3, spectral_type="STAR")
            record_decision(s, who["accepted, confirmed"], "bob", "accept", z_final=1.2345, quality=4)
            record_decision(s, who["conflict"], "alice", "correct", z_final=1.0, quality=4)
            record_decision(s, who["conflict"], "bob", "correct", z_final=3.0, quality=4)
    finally:
        engine.dispose()
    res = CliRunner().invoke(app, ["export", "--store", str(store), "--predictions", str(predictions),
                                   "--out", str(d / "cat"), "--db", url])  # fmt: skip
    assert res.exit_code == 0, res.output
    cat = pd.read_parquet(d / "cat.parquet").set_index("object_id")
    hdr = fits.getheader(d / "cat.fits", 1)
    side = json.loads((d / "cat.json").read_text())
    return who, cat, hdr, side, res.output, url


def test_a_persons_decision_still_wins(policy_triage, decided_export):
    *_, scores, _, _ = policy_triage
    who, cat, *_ = decided_export
    sc = scores.set_index("object_id")
    r = cat.loc[who["tpl corrected"]]
    assert (r["z_source"], r["z_final"], r["quality"]) == ("person", 0.4321, 4.0)
    assert r["risk"] == pytest.approx(sc.loc[who["tpl corrected"], "risk"])  # the risk stays, for the record
    r = cat.loc[who["accepted, not a quasar"]]
    assert r["z_source"] == "person" and r["is_qso_final"] == -1 and r["auto_accepted"] == 1
    r = cat.loc[who["accepted, confirmed"]]
    assert (r["z_source"], r["z_final"], r["is_qso_final"]) == ("person", 1.2345, 1)  # accepted as a quasar
    r = cat.loc[who["conflict"]]
    assert r["z_source"] == "conflict" and r["z_final"] == sc.loc[who["conflict"], "z_best"]
    rest = cat.drop(index=list(who.values()))
    assert (rest["n_decisions"] == 0).all()
    assert rest["z_source"].tolist() == sc.loc[rest.index, "z_best_source"].tolist()
    np.testing.assert_array_equal(rest["z_final"].to_numpy(float), sc.loc[rest.index, "z_best"].to_numpy(float))
    assert rest["auto_accepted"].tolist() == sc.loc[rest.index, "accepted"].astype(int).tolist()


def test_header_and_sidecar_say_how_clean_the_catalog_is(policy_triage, decided_export):
    from db.catalog_files import POLICY_KEYS

    *_, tmeta, scores, _, _ = policy_triage
    _, cat, hdr, side, output, _ = decided_export
    pol = tmeta["policy"]
    acc = scores["accepted"].to_numpy()
    assert hdr["POLICY"] == "max leak 0.005" and hdr["MAXLEAK"] == MAX_LEAK and "BUDGET" not in hdr
    assert hdr["NACCEPT"] == pol["n_accepted"] == int(acc.sum())
    assert hdr["EXPLEAK"] == pytest.approx(pol["expected_leak"], rel=1e-12)
    assert hdr["EXPLEAK"] == pytest.approx(scores["risk"][acc].mean()) and hdr["EXPLEAK"] <= MAX_LEAK
    assert hdr["EXPWRONG"] == pytest.approx(pol["expected_wrong_accepted"], rel=1e-12)
    assert hdr["NQUEUED"] + hdr["NNOSIG"] + hdr["NACCEPT"] == hdr["NSPECTRA"] == hdr["NTOTAL"] == len(cat)
    for key, (_, comment) in POLICY_KEYS.items():  # each comment whole, none truncated
        assert key == "BUDGET" or hdr.comments[key] == comment, key
    assert "leak" in hdr.comments["EXPLEAK"] and "auto-accepted" in hdr.comments["NACCEPT"]
    assert hdr["PQSOMIN"] == 0.5
    undecided = cat[cat["n_decisions"] == 0]
    assert hdr["NMODEL"] == len(undecided) == len(cat) - 4
    assert hdr["NZTPL"] == int((undecided["z_source"] == "tpl").sum()) >= 1
    assert hdr["NZFNET"] + hdr["NZTPL"] + hdr["NZPIPE"] == hdr["NMODEL"]
    assert hdr["NAUTO"] == pol["n_accepted"] - 3  # three auto-accepted spectra were decided since
    assert side["policy"] == pol and side["counts"]["n_auto_accepted"] == hdr["NAUTO"]
    names = [hdr[f"TTYPE{i}"] for i in range(1, hdr["TFIELDS"] + 1)]
    assert "P(the automatic" in hdr[f"TCOMM{names.index('risk') + 1}"] and "auto_accepted" in names
    assert "model " in output  # the CLI's count of what nobody decided


def test_a_rules_only_triage_exports_fnets_z_and_no_policy(policy_triage, tmp_path):
    """Triaged again by the rules alone: FNet's z ("model"), no risk, no policy keys; the old scores, even
    put back by hand, are not read."""
    from db.export import export_catalog
    from inspector.pipeline.catalog_rows import model_rows
    from inspector.pipeline.triage import run_triage
    from inspector.store.files import scores_path

    store, predictions, *_ = policy_triage
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    pred = copy / "predictions" / Path(predictions).name
    stale = scores_path(copy / "triage" / f"{pred.stem}.parquet").read_bytes()
    _, out, meta = run_triage(copy, pred, policy=None)  # the rules alone
    assert meta["policy"] is None and not scores_path(out).exists()
    scores_path(out).write_bytes(stale)
    rows, m = model_rows(copy, pred)
    assert m["policy"] is None and m["p_qso_min"] == 0.9  # the fnet_qso_unsure threshold again
    assert set(rows["z_source"]) == {"model"} and "risk" not in rows.columns and "auto_accepted" not in rows.columns
    np.testing.assert_array_equal(rows["z_final"].to_numpy(float), rows["z_fnet"].to_numpy(float))
    export_catalog(rows, tmp_path / "cat", m, formats=("fits",), p_qso_min=m["p_qso_min"])
    hdr = fits.getheader(tmp_path / "cat.fits", 1)
    for key in ("POLICY", "NACCEPT", "EXPLEAK", "EXPWRONG", "NZTPL", "NAUTO"):
        assert key not in hdr, key
    assert hdr["NMODEL"] == len(rows)
    assert json.loads((tmp_path / "cat.json").read_text())["policy"] is None


def test_overview_curve_marks_the_chosen_point(policy_triage):
    import holoviews as hv

    from inspector.app.overview_plots import (
        NO_POLICY_NOTE,
        policy_caption,
        policy_curve,
        queue_vs_leak,
    )

    *_, tmeta, scores, _, _ = policy_triage
    pol = tmeta["policy"]
    curve, chosen = policy_curve(pol)
    acc = scores["accepted"].to_numpy()
    assert chosen["queue_fraction"] == pytest.approx((pol["n_queued"] + pol["n_no_signal"]) / pol["n_spectra"])
    assert chosen["queue_fraction"] == pytest.approx(1.0 - acc.mean())
    assert chosen["expected_leak"] == pytest.approx(scores["risk"][acc].mean())
    # the max-leak policy accepts the least risky: its point lies on the curve, and queueing one spectrum
    # fewer would break the target
    q = curve["queue_fraction"].to_numpy()
    k = int(np.argmin(np.abs(q - chosen["queue_fraction"])))
    assert q[k] == pytest.approx(chosen["queue_fraction"], abs=1e-5)
    assert curve["expected_leak"].iloc[k] == pytest.approx(chosen["expected_leak"], abs=2e-6)
    assert chosen["expected_leak"] <= MAX_LEAK < curve["expected_leak"].iloc[k - 1]
    assert "max leak 0.005" in chosen["label"] and f"{100 * chosen['queue_fraction']:.1f} %" in chosen["label"]
    plot = queue_vs_leak(pol)
    (point,) = [e for e in plot if isinstance(e, hv.Scatter)]
    (text,) = [e for e in plot if isinstance(e, hv.Text)]
    assert point.dframe()["queue_pct"].tolist() == pytest.approx([100 * chosen["queue_fraction"]])
    assert point.dframe()["leak_pct"].tolist() == pytest.approx([100 * chosen["expected_leak"]])
    assert text.text == chosen["label"]
    hv.render(plot, backend="bokeh")
    assert f"{pol['n_accepted']} of 60 auto-accepted" in policy_caption(pol)
    assert policy_curve(None) is None and queue_vs_leak(None) is None and policy_caption(None) == NO_POLICY_NOTE


def test_overview_tab_shows_the_policy(policy_triage, decided_export):
    import holoviews as hv

    from db.engine import make_engine
    from inspector.app.overview import Overview

    store, predictions, *_ = policy_triage
    who, *_, url = decided_export
    engine = make_engine(url)
    try:
        ov = Overview(engine, store, predictions)
        assert "auto-accepted" in ov.policy_panel().object
        # the queue-vs-leak plot is the fourth of the survey plots
        layout = ov.plots().object
        assert len(layout) == 4 and isinstance(layout[3], hv.Overlay)
        assert "expected leak" in layout[3].opts.get().kwargs["title"]
        t = ov.table.set_index("object_id")
        assert t.loc[who["tpl corrected"], "z_source"] == "person"
        assert set(t.drop(index=list(who.values()))["z_source"]) <= {"fnet", "tpl", "pipe"}
    finally:
        engine.dispose()
