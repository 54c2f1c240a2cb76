"""How well a spectrum's class is predicted: the confusion matrix and quasar purity and completeness.

A quasar catalog is judged by two numbers: completeness (the share of true
quasars it keeps) and purity (the share of what it keeps that is a quasar).
"Quasar" is any class `model.classes` marks as one (QSO or BAL), because a BAL
quasar called a plain quasar still belongs in the catalog: that mistake is the
confusion matrix's business, not the catalog's.

Class labels are indices into `model.classes.CLASSES`; `UNKNOWN` truth (no
label, or a label people disagree on) is left out of every score, so a
disputed spectrum can neither help nor hurt.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .classes import CLASSES, UNKNOWN, class_indices, is_qso_class


def _pair(true_idx, pred_idx) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(true_idx, dtype=np.int64).ravel()
    p = np.asarray(pred_idx, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"{t.size} true classes but {p.size} predicted ones")
    return t, p


def confusion_table(true_idx, pred_idx) -> pd.DataFrame:
    """Counts: one row per true class, one column per predicted class (plus "none" where no class was
    predicted), in `CLASSES` order; spectra of UNKNOWN truth are left out."""
    t, p = _pair(true_idx, pred_idx)
    known = t != UNKNOWN
    cols = [*CLASSES, "none"]
    counts = np.zeros((len(CLASSES), len(cols)), dtype=np.int64)
    p_col = np.where(p == UNKNOWN, len(CLASSES), p)
    np.add.at(counts, (t[known], p_col[known]), 1)
    df = pd.DataFrame(counts, index=pd.Index(CLASSES, name="true"), columns=pd.Index(cols, name="predicted"))
    return df if counts[:, -1].any() else df.drop(columns="none")


def quasar_row(true_idx, pred_idx) -> dict[str, float]:
    """n (spectra with a known class), n_quasars, n_called (called a quasar), completeness and purity (percent)."""
    t, p = _pair(true_idx, pred_idx)
    known = t != UNKNOWN
    is_q, called = is_qso_class(t[known]), is_qso_class(p[known])
    n_q, n_called, n_hit = int(is_q.sum()), int(called.sum()), int((is_q & called).sum())
    return {
        "n": int(known.sum()), "n_quasars": n_q, "n_called": n_called,
        "completeness": 100.0 * n_hit / n_q if n_q else float("nan"),
        "purity": 100.0 * n_hit / n_called if n_called else float("nan"),
    }  # fmt: skip


def quasar_table(true_idx, pred_idx, groups: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """`quasar_row` for all spectra ("all") and for each group (a boolean mask over the spectra)."""
    t, p = _pair(true_idx, pred_idx)
    rows = {"all": quasar_row(t, p)}
    for name, mask in (groups or {}).items():
        m = np.asarray(mask, dtype=bool).ravel()
        if m.shape != t.shape:
            raise ValueError(f"group {name!r} mask has shape {m.shape}, expected {t.shape}")
        rows[str(name)] = quasar_row(t[m], p[m])
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "group"
    return df.astype({"n": int, "n_quasars": int, "n_called": int})


def purity_at_completeness(true_idx, p_qso, completeness: float = 98.0) -> dict[str, float]:
    """The purity of the catalog cut at the highest p_qso threshold that keeps `completeness` percent of the
    true quasars: how pure a catalog that complete can be with this model. NaN where there is no quasar."""
    t = np.asarray(true_idx, dtype=np.int64).ravel()
    p = np.asarray(p_qso, dtype=np.float64).ravel()
    known = (t != UNKNOWN) & np.isfinite(p)
    is_q, p = is_qso_class(t[known]), p[known]
    if not is_q.any():
        return {"threshold": float("nan"), "completeness": float("nan"), "purity": float("nan")}
    q = np.sort(p[is_q])[::-1]
    k = max(int(np.ceil(completeness / 100.0 * q.size)), 1)
    threshold = float(q[k - 1])
    kept = p >= threshold
    return {
        "threshold": threshold,
        "completeness": 100.0 * float((kept & is_q).sum()) / is_q.sum(),
        "purity": 100.0 * float((kept & is_q).sum()) / kept.sum(),
    }


def format_quasar_table(df: pd.DataFrame) -> str:
    """The purity/completeness table as text, percentages to 0.1 and "-" where undefined."""
    out = df.copy()
    for c in ("completeness", "purity"):
        out[c] = out[c].map(lambda v: "-" if pd.isna(v) else f"{v:.1f}")
    return out.to_string()


__all__ = [
    "class_indices", "confusion_table", "format_quasar_table", "purity_at_completeness", "quasar_row",
    "quasar_table",
]
