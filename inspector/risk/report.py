"""Finding the risk model that belongs to a prediction run, and the reliability report."""
from __future__ import annotations

from pathlib import Path

from inspector.risk.learner import RiskModel, load_risk_model, risk_path_for
from inspector.risk.stores import reliability, scored_wrong, store_inputs
from inspector.store.files import read_sidecar, resolve_predictions


def risk_model_for(predictions: Path, fnet_sha1: str | None, risk: Path | None = None) -> RiskModel:
    """The risk model of the FNet that made `predictions` (`risk`, else <model>.risk.joblib beside the model the
    sidecar names), checked against the run's model sha1 (`stores.model_sha1`)."""
    if risk is None:
        model_path = ((read_sidecar(predictions) or {}).get("model") or {}).get("path")
        if not model_path:
            raise FileNotFoundError(f"{predictions}: its sidecar names no model, so no risk model can be found")
        risk = risk_path_for(model_path)
    model = load_risk_model(risk)
    model.check(fnet_sha1)
    return model


def reliability_report(store: Path, predictions: Path, risk: Path | None = None) -> str:
    """The reliability table of a store with truth, and the predicted vs observed error count overall."""
    path = resolve_predictions(store, predictions)
    frame, truth, sha1 = store_inputs(store, path)
    model = risk_model_for(path, sha1, risk)
    scored = model.score(frame)
    wrong, ok = scored_wrong(frame, scored, truth)
    r = scored["risk"].to_numpy()
    table = reliability(r[ok], wrong[ok])
    src = scored.loc[ok, "z_best_source"].value_counts().to_dict()
    return (f"{ok.sum()} spectra with a truth: {int(wrong[ok].sum())} wrong answers, {r[ok].sum():.1f} predicted\n"
            f"catalog z from: {src}\n" + table.to_string(float_format=lambda v: f"{v:.4f}"))
