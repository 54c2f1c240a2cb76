"""What "wrong" means, on a survey whose truth is known (a mock, or the labelled real spectra).

A catalog answer is catastrophically wrong when its class is wrong on the question a quasar
catalog asks (quasar or not), or when a true quasar kept as a quasar has a redshift more than
6000 km/s from the truth (the FNet paper's and DR16Q's threshold). A star's or galaxy's redshift
in a quasar catalog is not scored; a spectrum without a class truth is not scored at all.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from db.catalog_decisions import MODEL_P_QSO_MIN
from inspector.training_set import store_classes, store_redshifts
from model.classes import UNKNOWN, is_qso_class
from model.metrics import dv_kms

CATASTROPHIC_KMS = 6000.0


def called_quasar(frame: pd.DataFrame) -> np.ndarray:
    """The automatic class call, quasar or not: FNet's p_qso against `MODEL_P_QSO_MIN` where the model
    has a class head, else the pipeline's CLASS, else a quasar (a quasar survey's default)."""
    p = frame["p_qso"].to_numpy(np.float64, na_value=np.nan)
    pipe = frame["pipe_class"].astype(str).to_numpy() if "pipe_class" in frame.columns else np.full(len(frame), "")
    by_pipe = np.where(pipe == "", True, pipe == "QSO")
    return np.where(np.isfinite(p), p >= MODEL_P_QSO_MIN, by_pipe)


def z_wrong(z: np.ndarray, z_true: np.ndarray) -> np.ndarray:
    """|dv| above the catastrophic threshold; a missing z is wrong wherever there is a true z."""
    with np.errstate(invalid="ignore", divide="ignore"):
        dv = np.abs(dv_kms(np.asarray(z, np.float64), np.asarray(z_true, np.float64)))
    return ~(dv <= CATASTROPHIC_KMS) & np.isfinite(z_true)


def store_truth(index: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(true class index, true z) per store row; UNKNOWN / NaN where the store has none."""
    cls = store_classes(index)
    return cls, store_redshifts(index, cls)


def answer_wrong(
    called_qso: np.ndarray, z: np.ndarray, true_class: np.ndarray, z_true: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(wrong, scored): the catalog answer is wrong (class, or a quasar's z), and whether it could be scored."""
    scored = np.asarray(true_class) != UNKNOWN
    true_qso = is_qso_class(true_class)
    wrong = (np.asarray(called_qso, bool) != true_qso) | (true_qso & np.asarray(called_qso, bool) & z_wrong(z, z_true))
    return wrong & scored, scored
