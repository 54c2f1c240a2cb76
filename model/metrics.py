"""Redshift metrics as FNet and QuasarNET report them.

dv = c (z_pred - z_true) / (1 + z_true), in km/s; accuracy at a threshold is
the percentage of spectra with |dv| strictly below it. A non-finite prediction
counts as a failure (|dv| = inf).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

C_KMS = 299792.458
THRESHOLDS_KMS = (6000, 12000, 30000)
DEFAULT_Z_EDGES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.5)


def dv_kms(z_pred, z_true) -> np.ndarray:
    """Velocity offset c (z_pred - z_true) / (1 + z_true) in km/s (float64 array)."""
    zp = np.asarray(z_pred, dtype=np.float64)
    zt = np.asarray(z_true, dtype=np.float64)
    return C_KMS * (zp - zt) / (1.0 + zt)


def _abs_dv(z_pred, z_true) -> np.ndarray:
    adv = np.abs(dv_kms(z_pred, z_true))
    return np.where(np.isfinite(adv), adv, np.inf)


def acc_col(threshold: float) -> str:
    """Column name of the accuracy (in percent) at `threshold` km/s."""
    return f"acc@{threshold:g}"


def accuracy_row(z_pred, z_true, thresholds: Sequence[float] = THRESHOLDS_KMS) -> dict[str, float]:
    """n, accuracy in percent at each threshold, and median |dv| (km/s) for one set."""
    adv = _abs_dv(z_pred, z_true).ravel()
    row: dict[str, float] = {"n": int(adv.size)}
    for t in thresholds:
        row[acc_col(t)] = float(100.0 * np.mean(adv < t)) if adv.size else float("nan")
    row["median_abs_dv"] = float(np.median(adv)) if adv.size else float("nan")
    return row


def accuracy_table(
    z_pred,
    z_true,
    thresholds: Sequence[float] = THRESHOLDS_KMS,
    groups: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row "all" plus one per group (boolean mask over the spectra).

    Columns: n, acc@6000, acc@12000, acc@30000 (percent), median_abs_dv (km/s).
    Empty groups have n = 0 and NaN elsewhere.
    """
    zp = np.asarray(z_pred, dtype=np.float64).ravel()
    zt = np.asarray(z_true, dtype=np.float64).ravel()
    if zp.shape != zt.shape:
        raise ValueError(f"z_pred {zp.shape} and z_true {zt.shape} differ in shape")
    rows = {"all": accuracy_row(zp, zt, thresholds)}
    for name, mask in (groups or {}).items():
        m = np.asarray(mask, dtype=bool).ravel()
        if m.shape != zt.shape:
            raise ValueError(f"group {name!r} mask has shape {m.shape}, expected {zt.shape}")
        rows[str(name)] = accuracy_row(zp[m], zt[m], thresholds)
    df = pd.DataFrame.from_dict(rows, orient="index")
    df["n"] = df["n"].astype(int)
    df.index.name = "group"
    df.attrs["units"] = {"acc": "percent", "median_abs_dv": "km/s"}
    return df


def z_bin_groups(z, edges: Sequence[float] = DEFAULT_Z_EDGES) -> dict[str, np.ndarray]:
    """Masks for edges[i] <= z < edges[i+1], named "z[lo,hi)"; z outside the edges is in none."""
    zz = np.asarray(z, dtype=np.float64).ravel()
    e = [float(v) for v in edges]
    if any(b <= a for a, b in zip(e, e[1:])):
        raise ValueError("edges must increase")
    return {f"z[{lo:g},{hi:g})": (zz >= lo) & (zz < hi) for lo, hi in zip(e, e[1:])}


def format_table(df: pd.DataFrame, digits: int = 1) -> str:
    """The table as aligned text: accuracies to `digits` decimals, median |dv| to 1 km/s."""
    out = df.copy()
    for c in out.columns:
        if c.startswith("acc@"):
            out[c] = out[c].map(lambda v: "-" if pd.isna(v) else f"{v:.{digits}f}")
    if "median_abs_dv" in out:
        out["median_abs_dv"] = out["median_abs_dv"].map(
            lambda v: "-" if pd.isna(v) else ("inf" if np.isinf(v) else f"{v:.0f}")
        )
    return out.to_string()
