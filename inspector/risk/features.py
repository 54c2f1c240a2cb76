"""What the risk model looks at: one table of features, each a function of the estimates frame.

Agreements are |dv| between two estimates in log10 km/s, so 300 km/s (the same line) and
30,000 km/s (another line) are far apart and a missing estimate stays NaN: the gradient-boosting
learner sends NaN down its own branch, so a survey without DR16Q's Z_PCA or Z_QN is scored with
what it has. Everything here is pure numpy over whole columns (1.44 M spectra in about a second).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from inspector.estimates import NO_Z, catalog_z
from model.metrics import C_KMS, dv_kms

SURVEY_CODES = {"SDSS": 0.0, "BOSS": 1.0, "EBOSS": 1.0, "DESI": 2.0}  # by the first word of the store's survey


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    func: Callable[[pd.DataFrame], np.ndarray]


def _f(frame: pd.DataFrame, col: str) -> np.ndarray:
    return frame[col].to_numpy(np.float64, na_value=np.nan)


def _z(frame: pd.DataFrame, col: str) -> np.ndarray:
    return catalog_z(_f(frame, col)) if col in ("z_pipe", "z_qn", "z_pca") else _f(frame, col)


def _log_dv(a: str, b: str) -> Callable[[pd.DataFrame], np.ndarray]:
    def fn(frame: pd.DataFrame) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log10(np.abs(dv_kms(_z(frame, a), _z(frame, b))) + 1.0)

    return fn


def _col(col: str) -> Callable[[pd.DataFrame], np.ndarray]:
    return lambda frame: _f(frame, col)


def _log1p(col: str) -> Callable[[pd.DataFrame], np.ndarray]:
    def fn(frame: pd.DataFrame) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.log10(1.0 + np.clip(_f(frame, col), 0.0, None))

    return fn


def _qn_failed(frame: pd.DataFrame) -> np.ndarray:
    z = _f(frame, "z_qn")
    return np.where(np.isnan(z), np.nan, (z <= NO_Z).astype(np.float64))


def _sigma_v(frame: pd.DataFrame) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log10(C_KMS * _f(frame, "z_fnet_err") / (1.0 + _f(frame, "z_fnet")) + 1.0)


def _zwarning(frame: pd.DataFrame) -> np.ndarray:
    w = _f(frame, "zwarning")
    return np.where(np.isnan(w), np.nan, (w != 0).astype(np.float64))


def _pipe_says_qso(frame: pd.DataFrame) -> np.ndarray:
    c = frame["pipe_class"].astype(str).to_numpy()
    return np.where(c == "", np.nan, (c == "QSO").astype(np.float64))


def _survey(frame: pd.DataFrame) -> np.ndarray:
    first = frame["survey"].astype(str).str.upper().str.split("-").str[0].str.strip()
    return first.map(SURVEY_CODES).to_numpy(np.float64, na_value=np.nan)


FEATURES: tuple[Feature, ...] = (
    Feature("dv_fnet_tpl", "log10 |dv| FNet vs the template fit (km/s)", _log_dv("z_fnet", "z_tpl")),
    Feature("dv_fnet_pipe", "log10 |dv| FNet vs the pipeline", _log_dv("z_fnet", "z_pipe")),
    Feature("dv_fnet_qn", "log10 |dv| FNet vs QuasarNET", _log_dv("z_fnet", "z_qn")),
    Feature("dv_fnet_pca", "log10 |dv| FNet vs Z_PCA", _log_dv("z_fnet", "z_pca")),
    Feature("dv_tpl_pipe", "log10 |dv| template fit vs the pipeline", _log_dv("z_tpl", "z_pipe")),
    Feature("dv_tpl_qn", "log10 |dv| template fit vs QuasarNET", _log_dv("z_tpl", "z_qn")),
    Feature("dv_pipe_qn", "log10 |dv| pipeline vs QuasarNET", _log_dv("z_pipe", "z_qn")),
    Feature("dv_fnet_alt", "log10 |dv| FNet's z vs its second posterior peak", _log_dv("z_fnet", "z_alt1")),
    Feature("qn_failed", "QuasarNET gave no redshift (Z_QN = -1)", _qn_failed),
    Feature("p_fnet", "FNet posterior mass near its z", _col("p_fnet")),
    Feature("p_alt", "FNet posterior mass at its second peak", _col("p_alt1")),
    Feature("sigma_v_fnet", "log10 FNet uncertainty c z_err / (1 + z) (km/s)", _sigma_v),
    Feature("p_qso", "FNet: P(quasar)", _col("p_qso")),
    Feature("p_bal", "FNet: P(BAL quasar)", _col("p_cls_bal")),
    Feature("p_star", "FNet: P(star)", _col("p_cls_star")),
    Feature("p_galaxy", "FNet: P(galaxy)", _col("p_cls_galaxy")),
    Feature("p_bad", "FNet: P(no usable signal)", _col("p_cls_bad")),
    Feature("tpl_dchi2", "log10 (1 + template fit's delta chi2 to its next minimum)", _log1p("tpl_dchi2")),
    Feature("zwarning", "pipeline ZWARNING set", _zwarning),
    Feature("pipe_qso", "pipeline CLASS is QSO", _pipe_says_qso),
    Feature("sn", "median S/N per pixel", _col("sn")),
    Feature("z_fnet", "FNet's redshift", _col("z_fnet")),
    Feature("survey", "survey (0 SDSS-I/II, 1 BOSS/eBOSS, 2 DESI)", _survey),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
DESCRIPTIONS = {f.name: f.description for f in FEATURES}


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    """N x len(FEATURES) float64, NaN where an estimate is missing."""
    return np.column_stack([f.func(frame) for f in FEATURES]) if len(frame) else np.zeros((0, len(FEATURES)))
