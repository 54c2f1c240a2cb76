"""Every estimate of every spectrum in one table, each marked with where it came from.

The triage rules, the risk model and the catalog's best z all read this one frame (one row per
store row). A survey catalog (DR16Q) is the first source of the pipeline, QuasarNET and PCA
redshifts; where it is absent, or has nothing for a spectrum, the spectrum file's own pipeline
Z / CLASS / ZWARNING play Z_PIPE's part and the project's baseline (`inspector baseline predict`,
STORE/predictions/quasarnet.parquet) plays Z_QN's part, with Z_QN = -1 where it failed, as in
DR16Q. `<column>_source` says, per spectrum, which source gave the value.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inspector.store.files import baseline_path
from model.classes import PROB_COLUMNS

NO_Z = -0.99  # catalog z at or below this is DR16Q's -1 "no redshift"

# Prediction-run columns copied into the frame (NaN where the run lacks them).
PREDICTION_SOURCES = ("z_fnet", "z_fnet_err", "p_fnet", "z_alt1", "p_alt1", "z_tpl", "tpl_dchi2", "p_qso",
                      *PROB_COLUMNS)  # fmt: skip
# Frame column -> its sources, most trusted first: (label, where, column). "index" is the store index
# (the catalog's upper-case columns, the spectrum files' lower-case ones); "baseline" the baseline run.
ESTIMATE_SOURCES: Mapping[str, tuple[tuple[str, str, str], ...]] = {
    "z_pipe": (("catalog Z_PIPE", "index", "Z_PIPE"), ("spec file Z", "index", "z_file")),
    "zwarning": (("catalog ZWARNING", "index", "ZWARNING"), ("spec file ZWARNING", "index", "zwarning")),
    "z_qn": (("catalog Z_QN", "index", "Z_QN"), ("baseline", "baseline", "z_qn")),
    "z_pca": (("catalog Z_PCA", "index", "Z_PCA"),),
    "sn": (("catalog SN_MEDIAN_ALL", "index", "SN_MEDIAN_ALL"), ("spec file", "index", "sn_median_all")),
}
SOURCED = ("z_pipe", "z_qn")  # frame columns that carry a per-spectrum `<column>_source`
FRAME_COLUMNS = ("row", "object_id", *PREDICTION_SOURCES, "fnet_class", *ESTIMATE_SOURCES, "pipe_class", "survey",
                 *(f"{c}_source" for c in SOURCED))  # fmt: skip


def catalog_z(values: Any) -> np.ndarray:
    """A redshift column as floats with DR16Q's -1 "no redshift" (and anything missing) as NaN."""
    z = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return np.where(z <= NO_Z, np.nan, z)


def read_baseline(store: Path) -> pd.DataFrame | None:
    """The store's baseline run (row, object_id, z_qn), or None where `inspector baseline predict` never ran."""
    p = baseline_path(store)
    if not p.exists():
        return None
    return pd.read_parquet(p, columns=["row", "object_id", "z_qn"])


def check_rows(what: str, df: pd.DataFrame, oid: np.ndarray) -> np.ndarray:
    """The store rows a per-row file (`row`, `object_id`) covers, after checking it was made on this store:
    rows in range, none twice, the same object ids. Every file keyed by store row is read through this."""
    n = oid.size
    prow = df["row"].to_numpy(np.int64)
    if prow.size and (prow.min() < 0 or prow.max() >= n):
        raise ValueError(f"{what} reach row {prow.max()} but the store has {n} spectra")
    counts = np.bincount(prow, minlength=n) if prow.size else np.zeros(n, np.int64)
    if (counts > 1).any():
        raise ValueError(f"{what} hold store row {int(np.argmax(counts > 1))} more than once")
    if "object_id" in df.columns:
        pid = df["object_id"].astype(str).to_numpy()
        bad = np.flatnonzero(oid[prow] != pid)
        if bad.size:
            raise ValueError(
                f"{what} were made on another store (their object ids differ): row {int(prow[bad[0]])} is "
                f"{oid[prow[bad[0]]]!r} here, "
                f"{pid[bad[0]]!r} there ({bad.size} rows differ)"
            )
    return prow


def _scatter(n: int, rows: np.ndarray, values: Any) -> np.ndarray:
    v = np.full(n, np.nan)
    v[rows] = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return v


def estimates_frame(
    index_df: pd.DataFrame, predictions_df: pd.DataFrame, baseline_df: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The store index joined to a prediction run (and the baseline run, if any) by store `row`.

    Spectra without a prediction row get NaN predictions. A prediction or baseline run made on
    another store (its object ids differ at the same rows) is an error. The frame's attrs
    "sources" say, per estimate, which sources gave how many values (empty: none did, so the rules
    on it cannot fire).
    """
    n = len(index_df)
    if "row" in index_df.columns and not np.array_equal(index_df["row"].to_numpy(np.int64), np.arange(n)):
        raise ValueError("the index's `row` column is not 0..N-1 in order (not a store index?)")
    missing = {"row", "z_fnet"} - set(predictions_df.columns)
    if missing:
        raise ValueError(f"predictions have no column(s) {sorted(missing)} (has {list(predictions_df.columns)[:12]})")
    oid = index_df["object_id"].astype(str).to_numpy() if "object_id" in index_df.columns else np.arange(n).astype(str)
    prow = check_rows("predictions", predictions_df, oid)
    cols: dict[str, Any] = {"row": np.arange(n, dtype=np.int64), "object_id": oid}
    for c in PREDICTION_SOURCES:
        cols[c] = _scatter(n, prow, predictions_df[c]) if c in predictions_df.columns else np.full(n, np.nan)
    fnet_class = np.full(n, "", dtype=object)
    if "fnet_class" in predictions_df.columns:
        fnet_class[prow] = predictions_df["fnet_class"].fillna("").astype(str).to_numpy()
    cols["fnet_class"] = fnet_class

    where: dict[str, Any] = {"index": (index_df, np.arange(n))}
    if baseline_df is not None:
        where["baseline"] = (baseline_df, check_rows("baseline predictions", baseline_df, oid))
    sources: dict[str, dict[str, int]] = {}
    for c, options in ESTIMATE_SOURCES.items():
        v = np.full(n, np.nan)
        src = np.full(n, "", dtype=object)
        used: dict[str, int] = {}
        for label, place, col in options:
            if place not in where or col not in where[place][0].columns:
                continue
            df, rows = where[place]
            w = _scatter(n, rows, df[col])
            take = np.isnan(v) & np.isfinite(w)
            v[take], src[take] = w[take], label
            if take.any():
                used[label] = int(take.sum())
        cols[c] = v
        sources[c] = used
        if c in SOURCED:
            cols[f"{c}_source"] = src
    cols["pipe_class"] = (index_df["spec_class"].fillna("").astype(str).str.strip().str.upper().to_numpy(object)
                          if "spec_class" in index_df.columns else np.full(n, "", dtype=object))  # fmt: skip
    cols["survey"] = (index_df["survey"].fillna("").astype(str).to_numpy(object)
                      if "survey" in index_df.columns else np.full(n, "", dtype=object))  # fmt: skip
    frame = pd.DataFrame(cols)
    frame.attrs["sources"] = sources
    return frame
