"""Evaluation as the FNet paper reports it: accuracy tables overall and by bin, and Fig. 4.

Every table is `model.metrics.accuracy_table` output (n, acc@6000, acc@12000,
acc@30000 in percent, median |dv| in km/s), so a non-finite prediction (a
failed estimator: QuasarNET's Z_QN = -1, a missing Z_PCA) counts as wrong.

Several estimators can be scored at once on the same spectra: pass
`{"FNet": z_fnet, "QuasarNET": z_qn, "Z_PIPE": z_pipe}` wherever `z_pred` is
taken. The tables then have a two-level index (group, estimator) so they read
as "one bin, each estimator below the other".

Per object (repeat epochs of one object kept together, as for the real SDSS
set): `object_accuracy_table` weights every object equally; an object's score
at a threshold is the fraction of its spectra within it (the per-object mean
of the per-spectrum hits). So an object observed twice, right once, counts
half. Its median |dv| is the median over objects of each object's median.

`model.plots.fig4` (apart, so that matplotlib loads only when plotting) draws
the paper's Fig. 4: predicted vs true z, and accuracy vs |dv| threshold.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .metrics import (
    THRESHOLDS_KMS,
    acc_col,
    accuracy_table,
    dv_kms,
    format_table,
    z_bin_groups,
)

# 4.5: above it the Lya forest fills most of an SDSS spectrum, the regime the paper singles out
Z_EDGES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 4.5, 7.0)
SN_EDGES = (0.0, 2.0, 3.0, 5.0, 10.0, math.inf)
# every "by survey" table has these rows, in this order (then any other survey found)
SURVEY_ORDER = ("SDSS-I/II", "BOSS", "eBOSS", "DESI")

# Rastegar Nia et al. 2022 (arXiv 2201.03393), DR16Q visually inspected quasars after DR12Q.
PAPER_REFERENCE = {
    "paper: FNet": (97.0, 98.0, 98.9),
    "paper: QuasarNET": (97.8, 97.9, 98.0),
    "paper: FNet on QN failures (Z_QN=-1, 5190)": (87.4, 91.6, 95.1),
}

TABLE_TITLES = {
    "overall": "overall",
    "by_z": "by true redshift",
    "by_survey": "by survey",
    "by_sn": "by S/N (SN_MEDIAN_ALL)",
    "bal": "BAL quasars or not",
    "baseline_failed": "where the baseline failed (Z_QN = -1) or not",
}

Estimates = Mapping[str, Any] | np.ndarray | Sequence[float]


def paper_reference() -> pd.DataFrame:
    """The published accuracies (percent at 6000/12000/30000 km/s), to print beside ours."""
    df = pd.DataFrame.from_dict(
        PAPER_REFERENCE, orient="index", columns=[acc_col(t) for t in THRESHOLDS_KMS]
    )
    df.index.name = "reference"
    return df


def as_estimates(z_pred: Estimates, default_name: str = "z_pred") -> dict[str, np.ndarray]:
    """{name: float64 array}; a bare array becomes {default_name: array}."""
    if isinstance(z_pred, Mapping):
        return {str(k): np.asarray(v, dtype=np.float64).ravel() for k, v in z_pred.items()}
    return {default_name: np.asarray(z_pred, dtype=np.float64).ravel()}


def compare_table(
    z_pred: Estimates,
    z_true,
    groups: Mapping[str, np.ndarray] | None = None,
    thresholds: Sequence[float] = THRESHOLDS_KMS,
) -> pd.DataFrame:
    """`accuracy_table` for one estimator; for a mapping, rows (group, estimator) in group order."""
    if not isinstance(z_pred, Mapping):
        return accuracy_table(z_pred, z_true, thresholds, groups)
    est = as_estimates(z_pred)
    if not est:
        raise ValueError("no estimators given")
    parts = {name: accuracy_table(zp, z_true, thresholds, groups) for name, zp in est.items()}
    df = pd.concat(parts, names=["estimator", "group"]).swaplevel(0, 1)
    order = list(next(iter(parts.values())).index)
    df = df.reindex(pd.MultiIndex.from_product([order, list(est)], names=["group", "estimator"]))
    df["n"] = df["n"].astype(int)
    return df


def sn_bin_groups(sn, edges: Sequence[float] = SN_EDGES) -> dict[str, np.ndarray]:
    """Masks edges[i] <= S/N < edges[i+1] named "S/N[lo,hi)", plus "S/N unknown" where S/N is NaN (if any)."""
    s = np.asarray(sn, dtype=np.float64).ravel()
    e = [float(v) for v in edges]
    if any(b <= a for a, b in itertools.pairwise(e)):
        raise ValueError("edges must increase")
    groups = {f"S/N[{lo:g},{hi:g})": (s >= lo) & (s < hi) for lo, hi in itertools.pairwise(e)}
    unknown = ~np.isfinite(s)
    if unknown.any():
        groups["S/N unknown"] = unknown
    return groups


def survey_groups(surveys, order: Sequence[str] = SURVEY_ORDER) -> dict[str, np.ndarray]:
    """Masks named "survey=NAME": every name of `order` (empty or not, so every report has the same rows),
    then any other survey found, sorted; a missing survey (None/NaN) is "survey=unknown"."""
    s = pd.Series(np.asarray(surveys, dtype=object).ravel()).fillna("unknown").astype(str).to_numpy()
    names = [*order, *sorted(set(s) - set(order))]
    return {f"survey={name}": s == name for name in names}


def evaluation_tables(
    z_pred: Estimates,
    z_true,
    sn=None,
    is_bal=None,
    baseline_failed=None,
    survey=None,
    z_edges: Sequence[float] = Z_EDGES,
    sn_edges: Sequence[float] = SN_EDGES,
    thresholds: Sequence[float] = THRESHOLDS_KMS,
) -> dict[str, pd.DataFrame]:
    """The paper's tables on one set of spectra.

    Keys (a table is left out when its input is None): "overall" (one row
    "all"), "by_z" (bins of the TRUE redshift, "z[lo,hi)"), "by_survey"
    (`survey_groups` of the survey names), "by_sn" ("S/N[lo,hi)"), "bal"
    ("BAL", "not BAL"), "baseline_failed" ("baseline failed", "baseline ok"). Every table but "overall" also has the "all" row
    first. `z_pred` is one array or a mapping name -> array (then the index is
    (group, estimator)).
    """
    zt = np.asarray(z_true, dtype=np.float64).ravel()
    n = zt.size
    for name, zp in as_estimates(z_pred).items():
        if zp.shape != zt.shape:
            raise ValueError(f"estimator {name!r} has {zp.size} values for {n} spectra")

    def mask(values, what: str) -> np.ndarray:
        m = np.asarray(values).ravel()
        if m.size != n:
            raise ValueError(f"{what} has {m.size} values for {n} spectra")
        return m

    tables = {
        "overall": compare_table(z_pred, zt, None, thresholds),
        "by_z": compare_table(z_pred, zt, z_bin_groups(zt, z_edges), thresholds),
    }
    if survey is not None:
        tables["by_survey"] = compare_table(z_pred, zt, survey_groups(mask(survey, "survey")), thresholds)
    if sn is not None:
        tables["by_sn"] = compare_table(z_pred, zt, sn_bin_groups(mask(sn, "sn"), sn_edges), thresholds)
    if is_bal is not None:
        b = mask(is_bal, "is_bal").astype(bool)
        tables["bal"] = compare_table(z_pred, zt, {"BAL": b, "not BAL": ~b}, thresholds)
    if baseline_failed is not None:
        f = mask(baseline_failed, "baseline_failed").astype(bool)
        tables["baseline_failed"] = compare_table(
            z_pred, zt, {"baseline failed": f, "baseline ok": ~f}, thresholds
        )
    return tables


def compact(df: pd.DataFrame, keep_all: bool = False) -> pd.DataFrame:
    """The table without empty groups and (unless `keep_all`) without its "all" rows, for printing."""
    keep = np.ones(len(df), bool) if keep_all else (df.index.get_level_values(0) != "all")
    for col in ("n", "n_objects"):
        if col in df:
            keep &= df[col].to_numpy() > 0
    return df[keep] if keep.any() else df


def format_tables(
    tables: Mapping[str, pd.DataFrame], reference: bool = True, digits: int = 1, compact_tables: bool = True
) -> str:
    """All tables as text with titles; the paper's figures after the overall table when `reference`.

    `compact_tables`: leave the repeated "all" rows and empty groups out of every
    table but the overall one (they stay in the DataFrames).
    """
    out: list[str] = []
    for key, df in tables.items():
        out.append(f"== {TABLE_TITLES.get(key, key)} ==")
        out.append(format_table(compact(df) if compact_tables and key != "overall" else df, digits))
        if reference and key == "overall":
            out.append(paper_reference().to_string(float_format=lambda v: f"{v:.1f}"))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def accuracy_curve(z_pred, z_true, thresholds_kms) -> np.ndarray:
    """Percent of spectra with |dv| < each threshold (non-finite predictions never count)."""
    adv = np.abs(dv_kms(z_pred, z_true)).ravel()
    adv = np.where(np.isfinite(adv), adv, np.inf)
    t = np.asarray(thresholds_kms, dtype=np.float64)
    if adv.size == 0:
        return np.full(t.shape, np.nan)
    s = np.sort(adv)
    return 100.0 * np.searchsorted(s, t, side="left") / adv.size


def object_accuracy_table(
    z_pred: Estimates,
    z_true,
    objects,
    groups: Mapping[str, np.ndarray] | None = None,
    thresholds: Sequence[float] = THRESHOLDS_KMS,
) -> pd.DataFrame:
    """Per-object accuracy: each object weighs 1, scored by the fraction of its spectra within each threshold.

    Columns: n_objects, n_spectra, acc@... (percent), median_abs_dv (median
    over objects of the per-object median |dv|). A group (boolean mask over
    spectra) keeps only those spectra of each object, so an object observed by
    two surveys counts once in each survey's row with its own spectra there.
    """
    if isinstance(z_pred, Mapping):
        est = as_estimates(z_pred)
        parts = {name: object_accuracy_table(zp, z_true, objects, groups, thresholds) for name, zp in est.items()}
        df = pd.concat(parts, names=["estimator", "group"]).swaplevel(0, 1)
        order = list(next(iter(parts.values())).index)
        df = df.reindex(pd.MultiIndex.from_product([order, list(est)], names=["group", "estimator"]))
        return df.astype({"n_objects": int, "n_spectra": int})
    zp = np.asarray(z_pred, dtype=np.float64).ravel()
    zt = np.asarray(z_true, dtype=np.float64).ravel()
    obj = np.asarray(objects).ravel()
    if not (zp.shape == zt.shape == obj.shape):
        raise ValueError(f"z_pred {zp.shape}, z_true {zt.shape} and objects {obj.shape} differ in shape")
    adv = np.abs(dv_kms(zp, zt))
    adv = np.where(np.isfinite(adv), adv, np.inf)
    frame = pd.DataFrame({"obj": obj, "adv": adv})
    for t in thresholds:
        frame[acc_col(t)] = (adv < t).astype(np.float64)

    def row(m: np.ndarray) -> dict[str, float]:
        sub = frame[m]
        r: dict[str, float] = {"n_objects": int(sub["obj"].nunique()), "n_spectra": len(sub)}
        if len(sub) == 0:
            r.update({acc_col(t): float("nan") for t in thresholds})
            r["median_abs_dv"] = float("nan")
            return r
        per_obj = sub.groupby("obj", sort=False)
        means = per_obj[[acc_col(t) for t in thresholds]].mean()
        for t in thresholds:
            r[acc_col(t)] = float(100.0 * means[acc_col(t)].mean())
        r["median_abs_dv"] = float(np.median(per_obj["adv"].median().to_numpy()))
        return r

    rows = {"all": row(np.ones(len(frame), bool))}
    for name, m in (groups or {}).items():
        mm = np.asarray(m, dtype=bool).ravel()
        if mm.shape != zt.shape:
            raise ValueError(f"group {name!r} mask has shape {mm.shape}, expected {zt.shape}")
        rows[str(name)] = row(mm)
    df = pd.DataFrame.from_dict(rows, orient="index")
    df = df.astype({"n_objects": int, "n_spectra": int})
    df.index.name = "group"
    return df


def worst(z_pred, z_true, k: int = 10, columns: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The k spectra with the largest |dv| (failures first), with `columns` alongside."""
    zp = np.asarray(z_pred, dtype=np.float64).ravel()
    zt = np.asarray(z_true, dtype=np.float64).ravel()
    dv = dv_kms(zp, zt)
    key = np.where(np.isfinite(dv), np.abs(dv), np.inf)
    df = pd.DataFrame(dict(columns or {}))
    df["z_true"] = zt
    df["z_pred"] = zp
    df["dv_kms"] = dv
    order = np.argsort(-key, kind="stable")[:k]
    return df.iloc[order].reset_index(drop=True)


def tables_to_records(tables: Mapping[str, pd.DataFrame]) -> dict[str, list[dict[str, Any]]]:
    """JSON-ready {table: [row dicts]} (index levels become columns; inf -> "inf")."""

    def clean(v: Any) -> Any:
        if isinstance(v, (float, np.floating)):
            v = float(v)
            return None if math.isnan(v) else ("inf" if math.isinf(v) else v)
        if isinstance(v, np.integer):
            return int(v)
        return v

    return {
        key: [{k: clean(v) for k, v in r.items()} for r in df.reset_index().to_dict(orient="records")]
        for key, df in tables.items()
    }


__all__ = [
    "PAPER_REFERENCE", "SN_EDGES", "SURVEY_ORDER", "Z_EDGES", "accuracy_curve", "as_estimates", "compact", "compare_table",
    "evaluation_tables", "format_tables", "object_accuracy_table", "paper_reference",
    "sn_bin_groups", "survey_groups", "tables_to_records", "worst",
]
