"""The calibrated risk and the queue policy: every estimate used, a risk that ranks the wrong answers, a policy
that keeps its leak promise, and a triage that states it."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from inspector.estimates import estimates_frame
from inspector.risk.policy import (
    NO_SIGNAL_PRIORITY_OFFSET,
    Policy,
    accept_for_leak,
    apply_policy,
    leak_curve,
)


# --------------------------------------------------------------------------- policy on numbers
def test_max_leak_accepts_the_largest_safe_set():
    rng = np.random.default_rng(1)
    risk = np.concatenate([rng.uniform(0, 0.002, 900), rng.uniform(0.05, 0.9, 100)])
    acc = accept_for_leak(risk, 0.005)
    assert risk[acc].mean() <= 0.005
    # one more spectrum (the least risky left out) would break the promise
    nxt = np.min(risk[~acc])
    assert np.append(risk[acc], nxt).mean() > 0.005
    # every accepted spectrum is less risky than every one left out
    assert risk[acc].max() <= risk[~acc].min()
    assert not accept_for_leak(np.full(5, 0.5), 0.005).any()
    assert accept_for_leak(np.zeros(5), 0.0).all()


def test_leak_curve_ends():
    frac, leak = leak_curve(np.array([0.0, 0.1, 0.2, 0.3]))
    assert frac[0] == 0 and leak[0] == pytest.approx(0.15)  # accept all: the mean risk
    assert frac[-1] == 1 and leak[-1] == 0
    assert np.all(np.diff(leak) <= 1e-12)  # sending more to people never raises the leak


def test_budget_and_the_no_signal_bucket():
    risk = np.array([0.9, 0.8, 0.6, 0.3, 0.01, 0.95])
    sn = np.array([0.5, 5.0, 3.0, 1.5, 8.0, 0.4])
    dchi2 = np.array([3.0, 400.0, 90.0, 30.0, 900.0, 200.0])  # row 5: faint but the template fit found a line
    d = apply_policy(risk, sn, dchi2, Policy(budget=2))
    assert list(np.flatnonzero(d["queued"])) == [1, 2]  # the most expected errors a look removes
    assert d["no_signal"].tolist() == [True, False, False, False, False, False]  # S/N 0.5, no decisive fit
    # the bucket comes after every queued spectrum
    assert d.loc[0, "priority"] < d.loc[d["queued"], "priority"].min()
    assert d.loc[0, "priority"] < 0 <= d.loc[1, "priority"]
    assert NO_SIGNAL_PRIORITY_OFFSET < 0
    # a faint spectrum with a decisive template line can be queued, ranked by risk x decidability
    d2 = apply_policy(risk, sn, dchi2, Policy(max_leak=0.02))
    assert d2["accepted"].tolist() == [False, False, False, False, True, False]
    assert d2.loc[5, "queued"] and d2.loc[5, "score"] == pytest.approx(0.95 * 0.4 / 2.0)
    with pytest.raises(ValueError, match="one of them"):
        Policy()
    with pytest.raises(ValueError, match="fraction"):
        Policy(max_leak=5)


# --------------------------------------------------------------------------- every estimate used
def test_estimates_fall_back_to_the_spec_file_and_the_baseline():
    index = pd.DataFrame({
        "row": [0, 1, 2], "object_id": ["a", "b", "c"], "z_file": [2.1, 0.5, 1.0], "zwarning": [0, 4, 0],
        "spec_class": ["QSO", "GALAXY", "qso"], "sn_median_all": [3.0, 9.0, 1.2], "survey": ["BOSS"] * 3,
        "Z_PIPE": [2.1004, np.nan, np.nan],  # a catalog that matched one spectrum only
    })  # fmt: skip
    pred = pd.DataFrame({"row": [0, 1, 2], "object_id": ["a", "b", "c"], "z_fnet": [2.1, 1.9, 1.0]})
    base = pd.DataFrame({"row": [0, 2], "object_id": ["a", "c"], "z_qn": [2.09, -1.0]})
    f = estimates_frame(index, pred, base)
    assert f["z_pipe"].tolist() == [2.1004, 0.5, 1.0]
    assert f["z_pipe_source"].tolist() == ["catalog Z_PIPE", "spec file Z", "spec file Z"]
    assert f["z_qn"].iloc[0] == 2.09 and f["z_qn"].iloc[2] == -1.0 and np.isnan(f["z_qn"].iloc[1])
    assert f["z_qn_source"].tolist() == ["baseline", "", "baseline"]
    assert f["pipe_class"].tolist() == ["QSO", "GALAXY", "QSO"]
    assert f.attrs["sources"]["z_pipe"] == {"catalog Z_PIPE": 1, "spec file Z": 2}
    assert f.attrs["sources"]["z_pca"] == {}
    with pytest.raises(ValueError, match="another store"):
        estimates_frame(index, pred, base.assign(object_id=["x", "c"]))


# --------------------------------------------------------------------------- learned on a mock, judged on another
@pytest.fixture(scope="module")
def surveys(tmp_path_factory, one_torch_thread):
    """Two superset mock surveys (quasars, stars, galaxies, empty spectra) predicted by the shipped FNet with
    the template fit: one to learn the risk on, one it never saw."""
    from inspector.ingest import ingest
    from inspector.mock import make_survey
    from inspector.pipeline.predict import write_predictions
    from inspector.store.files import predictions_path
    from model.assets import DEMO_MODEL

    out = {}
    for name, seed, n in (("train", 11, 500), ("test", 12, 300)):
        tmp = tmp_path_factory.mktemp(name)
        make_survey(tmp / "s", n, seed=seed, workers=1, progress=False, population="superset")
        ingest([str(tmp / "s")], tmp / "store", workers=1, progress=False)
        write_predictions(tmp / "store", DEMO_MODEL, template_processes=1)
        out[name] = (tmp / "store", predictions_path(tmp / "store", DEMO_MODEL))
    return out


@pytest.fixture(scope="module")
def fitted(surveys, tmp_path_factory):
    from inspector.risk.stores import fit_on_stores

    path = tmp_path_factory.mktemp("risk") / "fnet.risk.joblib"
    return fit_on_stores([surveys["train"]], path), path


@pytest.mark.slow
def test_risk_ranks_the_wrong_answers_of_an_unseen_survey(surveys, fitted):
    from inspector.risk.learner import load_risk_model
    from inspector.risk.stores import scored_wrong, store_inputs

    model, path = fitted
    frame, truth, sha = store_inputs(*surveys["test"])
    assert model.meta["fnet_sha1"] == sha
    scored = model.score(frame)
    wrong, ok = scored_wrong(frame, scored, truth)
    r = scored["risk"].to_numpy()
    assert ((r >= 0) & (r <= 1)).all()
    assert 5 <= wrong.sum() < 0.5 * ok.sum()
    # the wrong answers carry most of the risk: a random pair (wrong, right) is ordered right most of the time
    auc = (r[wrong][:, None] > r[ok & ~wrong][None, :]).mean()
    assert auc > 0.85, auc
    # and the predicted count of wrong answers is the right size
    assert 0.5 < r[ok].sum() / wrong.sum() < 2.0
    # the catalog z is an estimate that exists, from a named source
    assert set(scored["z_best_source"]) <= {"fnet", "tpl", "pipe"}
    assert np.isfinite(scored["z_best"]).mean() > 0.95
    # saved and loaded, the same numbers
    again = load_risk_model(path).score(frame)
    np.testing.assert_allclose(again["risk"], scored["risk"])
    drivers = model.explain(frame.iloc[np.argsort(-r)[:3]])
    assert any(drivers) and all(name in model.meta["features"] for d in drivers for name, _, _ in d)


def test_risk_model_refuses_another_fnet(fitted):
    from inspector.risk.learner import RiskModelMismatch

    model, _ = fitted
    model.check(model.meta["fnet_sha1"])
    with pytest.raises(RiskModelMismatch, match="refit"):
        model.check("0" * 40)


@pytest.mark.slow
def test_triage_cli_states_its_policy(surveys, fitted):
    from inspector.cli import app
    from inspector.pipeline.triage import read_triage
    from inspector.store.files import scores_path

    store, pred = surveys["test"]
    _, risk = fitted
    r = CliRunner().invoke(app, ["triage", "--store", str(store), "--predictions", str(pred), "--max-leak", "0.01",
                                 "--risk", str(risk)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "queue policy: max leak 0.01" in r.output and "auto-accepted" in r.output
    flags, meta = read_triage(store / "triage" / f"{pred.stem}.parquet")
    pol = meta["policy"]
    assert pol["expected_leak"] <= 0.01
    assert pol["n_queued"] + pol["n_no_signal"] == len(flags)
    assert all(("risk" in rs) or ("no_signal" in rs) for rs in flags["rules"])
    # the bucket is served after the queue
    bucket = flags["rules"].map(lambda rs: "no_signal" in rs).to_numpy()
    if bucket.any() and (~bucket).any():
        assert flags["priority"][bucket].max() < flags["priority"][~bucket].min()
    scores = pd.read_parquet(scores_path(store / "triage" / f"{pred.stem}.parquet"))
    assert len(scores) == pol["n_spectra"] and scores["accepted"].sum() == pol["n_accepted"]
    # a budget queues exactly that many
    r = CliRunner().invoke(app, ["triage", "--store", str(store), "--predictions", str(pred), "--budget", "7",
                                 "--risk", str(risk)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert read_triage(store / "triage" / f"{pred.stem}.parquet")[1]["policy"]["n_queued"] == 7
    # the rules alone, as before, leave no stale scores behind
    r = CliRunner().invoke(app, ["triage", "--store", str(store), "--predictions", str(pred), "--rules-only"])
    assert r.exit_code == 0, r.output
    assert not scores_path(store / "triage" / f"{pred.stem}.parquet").exists()
    assert json.loads((store / "triage" / f"{pred.stem}.json").read_text())["policy"] is None


def test_triage_without_a_risk_model_says_so(surveys, tmp_path):
    from inspector.cli import app

    store, pred = surveys["test"]
    r = CliRunner().invoke(app, ["triage", "--store", str(store), "--predictions", str(pred), "--max-leak", "0.01",
                                 "--risk", str(tmp_path / "none.risk.joblib")])  # fmt: skip
    assert r.exit_code == 2 and "no risk model there" in r.output


def test_risk_fit_refuses_a_survey_without_truth(surveys, tmp_path):
    """The real spectra a user ingests carry no truth: fitting on them must stop with a clear word."""
    from inspector.risk.learner import fit_risk_model
    from inspector.risk.stores import store_inputs
    from model.classes import UNKNOWN

    frame, (cls, z), sha = store_inputs(*surveys["test"])
    with pytest.raises(ValueError, match="no spectrum in these stores has a known truth"):
        fit_risk_model([frame], [(np.full_like(cls, UNKNOWN), z)], fnet_sha1=sha, trained_on=["x"])
    with pytest.raises(ValueError, match="wrong and"):
        fit_risk_model([frame.iloc[:4]], [(cls[:4], z[:4])], fnet_sha1=sha, trained_on=["x"])
