"""The risk model's inputs from spectrum stores: estimates frames, truths, the FNet they describe.

    frame, truth, sha1 = store_inputs(store, predictions)
    model = fit_on_stores([(store_a, pred_a), (store_b, pred_b)], out)     # mock surveys with truth
    table = reliability(model.score(frame)["risk"], wrong)                   # predicted vs observed
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from inspector.estimates import estimates_frame, read_baseline
from inspector.risk.learner import RiskModel, fit_risk_model
from inspector.risk.truth import answer_wrong, called_quasar, store_truth
from inspector.store import open_store
from inspector.store.files import resolve_predictions


def model_sha1(pred: pd.DataFrame, where: str) -> str | None:
    """The one FNet sha1 of a prediction run (None for a run without the column); several is an error."""
    if "model_sha1" not in pred.columns:
        return None
    shas = pred["model_sha1"].dropna().astype(str).unique().tolist()
    if len(shas) > 1:
        raise ValueError(f"{where}: predictions from {len(shas)} models ({', '.join(s[:12] for s in shas)})")
    return shas[0] if shas else None


def store_inputs(store: Path, predictions: Path) -> tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray], str | None]:
    """(estimates frame, (true class, true z), FNet sha1) of a store and one of its prediction runs."""
    st = open_store(store)
    path = resolve_predictions(st.path, predictions)
    pred = pd.read_parquet(path)
    frame = estimates_frame(st.index, pred, read_baseline(st.path))
    return frame, store_truth(st.index), model_sha1(pred, str(path))


def fit_on_stores(pairs: Sequence[tuple[Path, Path]], out: Path, seed: int = 0) -> RiskModel:
    """Fit on the mock surveys (store, predictions) and save to `out`; all runs must come from one FNet."""
    frames, truths, shas = [], [], set()
    for store, pred in pairs:
        f, t, sha = store_inputs(store, pred)
        frames.append(f)
        truths.append(t)
        shas.add(sha)
    if len(shas) > 1:
        raise ValueError(f"the prediction runs come from {len(shas)} different models: a risk model describes one")
    model = fit_risk_model(frames, truths, fnet_sha1=shas.pop(), trained_on=[f"{s} ({p})" for s, p in pairs],
                           seed=seed)  # fmt: skip
    model.save(out)
    return model


def scored_wrong(frame: pd.DataFrame, scored_df: pd.DataFrame, truth: tuple[np.ndarray, np.ndarray]):
    """(wrong, scored) of the catalog answers `RiskModel.score` chose, against the truth."""
    return answer_wrong(called_quasar(frame), scored_df["z_best"].to_numpy(), truth[0], truth[1])


RISK_BINS = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.6, 1.0)


def reliability(risk: np.ndarray, wrong: np.ndarray, bins: Sequence[float] = RISK_BINS) -> pd.DataFrame:
    """Per bin of predicted risk: n, mean predicted risk, observed error rate (a calibrated model has them equal)."""
    r, w = np.asarray(risk, np.float64), np.asarray(wrong, bool)
    idx = np.clip(np.digitize(r, bins[1:-1], right=True), 0, len(bins) - 2)
    rows = []
    for b in range(len(bins) - 1):
        m = idx == b
        rows.append({"risk_bin": f"{bins[b]:g}-{bins[b + 1]:g}", "n": int(m.sum()),
                     "predicted": float(r[m].mean()) if m.any() else np.nan,
                     "observed": float(w[m].mean()) if m.any() else np.nan,
                     "n_wrong": int(w[m].sum())})  # fmt: skip
    return pd.DataFrame(rows).set_index("risk_bin")
