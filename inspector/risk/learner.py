"""The risk model: calibrated gradient-boosting classifiers learned on mock surveys, tied to one FNet.

Two questions, one feature table (`inspector.risk.features`):
- per redshift source (FNet, the template fit, the pipeline): P(this z is more than 6000 km/s
  off). The catalog's z is the source with the smallest such risk (`best_z`), the rule DR16Q's
  Z / SOURCE_Z states by hand, here learned.
- P(the catalog answer is wrong): the best z and the automatic class together (`answer_risk`),
  which is what a leak rate counts.

Each is scikit-learn's HistGradientBoostingClassifier (missing estimates are NaN, which it
handles natively) inside CalibratedClassifierCV (isotonic on 3-fold out-of-fold predictions, one booster kept so a
survey of 1.44 M spectra scores in seconds), so a risk of 0.02 means two
in a hundred such spectra are wrong. The model records the sha1 of the FNet whose predictions it
learned from; scoring another model's predictions is refused, since its errors are not these.
Stored with joblib (pickles: load only files you trust; scikit-learn is pinned for that reason).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inspector.estimates import catalog_z
from inspector.risk.features import DESCRIPTIONS, FEATURE_NAMES, feature_matrix
from inspector.risk.truth import answer_wrong, called_quasar, z_wrong
from inspector.store.files import atomic_path, write_json
from model.classes import UNKNOWN, class_index

Z_SOURCES: tuple[tuple[str, str], ...] = (("fnet", "z_fnet"), ("tpl", "z_tpl"), ("pipe", "z_pipe"))  # ties: first
SOURCE_CODES = {name: float(i) for i, (name, _) in enumerate(Z_SOURCES)}
ANSWER_FEATURES = (*FEATURE_NAMES, "z_source", *(f"risk_z_{s}" for s, _ in Z_SOURCES))
# Estimates a survey may lack: blanked at random in training so the model has seen spectra without them.
DROPOUT = {"z_pca": 0.5, "z_qn": 0.2, "zwarning": 0.2, "pipe_class": 0.2}
RISK_SUFFIX = ".risk.joblib"
MIN_EACH = 3  # wrong and right answers a classifier needs at the least: one of each in each of 3 calibration folds
BAD = class_index("BAD")


class RiskModelMismatch(ValueError):
    """The predictions come from another FNet than the one the risk model describes."""


def risk_path_for(model_path: str | Path) -> Path:
    """Where a model's risk model lives: beside it, `<model stem>.risk.joblib`."""
    p = Path(model_path)
    return p.with_name(p.stem + RISK_SUFFIX)


def _classifier(seed: int):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    hgb = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.06, max_leaf_nodes=31, min_samples_leaf=40,
                                         l2_regularization=1.0, early_stopping=True, random_state=seed)  # fmt: skip
    return CalibratedClassifierCV(hgb, method="isotonic", cv=3, ensemble=False)  # one booster to evaluate


def _fit(X: np.ndarray, y: np.ndarray, seed: int):
    if y.size < MIN_EACH * 2 or y.sum() < MIN_EACH or (~y).sum() < MIN_EACH:
        raise ValueError(f"cannot learn a risk from {int(y.sum())} wrong and {int((~y).sum())} right answers: "
                         f"at least {MIN_EACH} of each (a larger mock survey)")
    return _classifier(seed).fit(X, y.astype(np.int64))


def _proba(clf, X: np.ndarray) -> np.ndarray:
    return clf.predict_proba(X)[:, 1] if len(X) else np.zeros(0)


def _dropout(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    out = frame.copy()
    for col, frac in DROPOUT.items():
        hit = rng.random(len(out)) < frac
        out.loc[hit, col] = "" if out[col].dtype == object else np.nan
    return out


@dataclass
class RiskModel:
    z_models: dict[str, Any]
    answer_model: Any
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ scoring
    def check(self, model_sha1: str | None) -> None:
        """Refuse predictions of another FNet (RiskModelMismatch)."""
        mine = self.meta.get("fnet_sha1")
        if mine and model_sha1 and model_sha1 != mine:
            raise RiskModelMismatch(
                f"the risk model describes FNet {mine[:12]}, these predictions come from {model_sha1[:12]}: "
                f"refit it (`inspector risk fit`) or triage by the rules alone"
            )

    def z_risks(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {name: _proba(clf, X) for name, clf in self.z_models.items()}

    def best_z(self, frame: pd.DataFrame, X: np.ndarray | None = None) -> pd.DataFrame:
        """z_best, z_best_source and each source's risk (risk_z_<source>): the least risky estimate."""
        X = feature_matrix(frame) if X is None else X
        return _choose(frame, self.z_risks(X))

    def answer_features(self, X: np.ndarray, chosen: pd.DataFrame) -> np.ndarray:
        extra = [chosen["z_best_source"].map(SOURCE_CODES).to_numpy(np.float64)]
        extra += [chosen[f"risk_z_{s}"].to_numpy(np.float64) for s, _ in Z_SOURCES]
        return np.column_stack([X, *extra]) if len(X) else np.zeros((0, len(ANSWER_FEATURES)))

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per spectrum: z_best, z_best_source, risk_z_<source> and `risk` = P(the catalog answer is wrong)."""
        X = feature_matrix(frame)
        chosen = self.best_z(frame, X)
        chosen["risk"] = _proba(self.answer_model, self.answer_features(X, chosen))
        return chosen

    def explain(self, frame: pd.DataFrame, top: int = 4) -> list[list[tuple[str, float, float]]]:
        """Per spectrum, the features that drove its risk: (feature, its value, risk minus the risk with
        that feature set to a typical right answer's), largest first. For the app's few spectra at a time."""
        X = feature_matrix(frame)
        n, k = X.shape
        ref = np.asarray(self.meta["reference"], np.float64)
        stack = np.repeat(X[None], k + 1, axis=0)  # stack[0]: as measured; stack[j + 1]: feature j typical
        for j in range(k):
            stack[j + 1, :, j] = ref[j]
        flat = stack.reshape(-1, k)
        big = pd.concat([frame] * (k + 1), ignore_index=True)
        chosen = _choose(big, self.z_risks(flat))
        risk = _proba(self.answer_model, self.answer_features(flat, chosen)).reshape(k + 1, n)
        deltas = (risk[0][None] - risk[1:]).T  # n x k
        out = []
        for i in range(n):
            order = np.argsort(-deltas[i])[:top]
            out.append([(FEATURE_NAMES[j], float(X[i, j]), float(deltas[i, j])) for j in order if deltas[i, j] > 0.005])
        return out

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        import joblib

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)

        with atomic_path(path) as tmp:
            joblib.dump({"z_models": self.z_models, "answer_model": self.answer_model, "meta": self.meta}, tmp,
                        compress=3)  # fmt: skip
        write_json(path.with_suffix(".json"), self.meta)
        return path


def load_risk_model(path: str | Path) -> RiskModel:
    import joblib

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no risk model there (`inspector risk fit` writes one)")
    try:
        d = joblib.load(path)
        return RiskModel(d["z_models"], d["answer_model"], d["meta"])
    except (KeyError, TypeError, ValueError, EOFError, AttributeError, ImportError) as exc:
        raise ValueError(f"{path}: not a risk model this version can read ({exc})") from None


def _choose(frame: pd.DataFrame, risks: dict[str, np.ndarray]) -> pd.DataFrame:
    n = len(frame)
    best = np.full(n, np.inf)
    z = np.full(n, np.nan)
    src = np.full(n, "", dtype=object)
    out: dict[str, Any] = {}
    for name, col in Z_SOURCES:
        zc = catalog_z(frame[col])
        r = np.where(np.isfinite(zc), risks[name], np.inf)
        take = r < best
        best[take], z[take], src[take] = r[take], zc[take], name
        out[f"risk_z_{name}"] = np.where(np.isfinite(zc), risks[name], np.nan)
    return pd.DataFrame({"z_best": z, "z_best_source": src, **out})


def fit_risk_model(
    frames: Sequence[pd.DataFrame], truths: Sequence[tuple[np.ndarray, np.ndarray]], *, fnet_sha1: str | None,
    trained_on: Sequence[str], seed: int = 0,
) -> RiskModel:
    """Learn the risk model from mock surveys: one estimates frame and its (true class, true z) per survey."""
    from sklearn.model_selection import cross_val_predict

    rng = np.random.default_rng(seed)
    frame = pd.concat([_dropout(f, rng) for f in frames], ignore_index=True)
    true_cls = np.concatenate([t[0] for t in truths])
    z_true = np.concatenate([t[1] for t in truths])
    if (true_cls != UNKNOWN).sum() == 0:
        raise ValueError("no spectrum in these stores has a known truth (a class): the risk model learns from mock "
                         "surveys (`inspector mock`), never from the spectra it will judge")
    X = feature_matrix(frame)
    has_z = np.isfinite(z_true) & (true_cls != BAD)
    z_models, oof = {}, {}
    for name, col in Z_SOURCES:
        y = z_wrong(frame[col].to_numpy(np.float64, na_value=np.nan), z_true)[has_z]
        z_models[name] = _fit(X[has_z], y, seed)
        p = np.full(len(frame), np.nan)  # out-of-fold risks for choosing the z the answer model learns from
        oof_p = cross_val_predict(_classifier(seed), X[has_z], y.astype(np.int64), cv=3, method="predict_proba")
        p[has_z] = oof_p[:, 1]
        p[~has_z] = _proba(z_models[name], X[~has_z])
        oof[name] = p
    chosen = _choose(frame, oof)
    wrong, scored = answer_wrong(called_quasar(frame), chosen["z_best"].to_numpy(), true_cls, z_true)
    model = RiskModel(z_models, None, {})
    A = model.answer_features(X, chosen)
    model.answer_model = _fit(A[scored], wrong[scored], seed)
    right = scored & ~wrong
    model.meta = {
        "fnet_sha1": fnet_sha1,
        "trained_on": list(trained_on),
        "n_spectra": int(scored.sum()),
        "n_wrong": int(wrong[scored].sum()),
        "features": {n: DESCRIPTIONS.get(n, n) for n in ANSWER_FEATURES},
        "z_sources": [s for s, _ in Z_SOURCES],
        "reference": np.nanmedian(X[right], axis=0).tolist(),
        "dropout": DROPOUT,
        "seed": seed,
        "sklearn": __import__("sklearn").__version__,
    }
    return model
