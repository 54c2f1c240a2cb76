"""The Overview tab's survey plots (HoloViews / Bokeh): FNet z vs reference z, the dv histogram, and
accuracy against the |dv| threshold like Fig. 4 of Rastegar Nia et al. (2022).

Each function takes the survey table of `inspector.app.overview` (columns z_fnet, z_ref, z_pipe, z_qn;
z_ref NaN where there is no reference) and returns a HoloViews element. Above `DATASHADE_MIN` spectra
the z-z plot is rasterized by datashader (`holoviews.operation.datashader.rasterize`) instead of
sending every point to the browser.
"""
from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # registers the Bokeh backend: .opts works without hv.extension
import numpy as np
import pandas as pd

from model.evaluate import accuracy_curve
from model.metrics import THRESHOLDS_KMS, dv_kms

DATASHADE_MIN = 20_000  # above this many points the z-z plot is a datashader raster
DV_RANGE_KMS = 30_000.0  # the dv histogram's half range; beyond it spectra are counted in the title
DV_BINS = 120
ACC_GRID_KMS = np.logspace(1, np.log10(3e5), 300)
ESTIMATORS = (("FNet", "z_fnet", "#1f77b4"), ("Z_PIPE", "z_pipe", "#ff7f0e"), ("Z_QN", "z_qn", "#2ca02c"))
SIZE = {"height": 320, "responsive": True, "min_width": 300}


def _est(df: pd.DataFrame, col: str) -> np.ndarray:
    """An estimator's z as float, NaN where missing; the catalogs' -1 ("no z") is a failure (NaN)."""
    if col not in df.columns:
        return np.full(len(df), np.nan)
    z = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return np.where(z < 0, np.nan, z)


def _ref(df: pd.DataFrame) -> np.ndarray:
    return pd.to_numeric(df["z_ref"], errors="coerce").to_numpy(np.float64, na_value=np.nan)


def z_vs_ref(df: pd.DataFrame, datashade_min: int = DATASHADE_MIN) -> hv.Overlay:
    """FNet z against the reference z: points (coloured by where the reference came from), or a
    datashader raster above `datashade_min` spectra; the 1:1 line."""
    zr, zf = _ref(df), _est(df, "z_fnet")
    ok = np.isfinite(zr) & np.isfinite(zf)
    hi = float(max(np.nanmax(zr[ok]) if ok.any() else 1.0, np.nanmax(zf[ok]) if ok.any() else 1.0, 0.5)) * 1.05
    pts = pd.DataFrame({"z_ref": zr[ok], "z_fnet": zf[ok]})
    title = f"FNet z vs reference z ({int(ok.sum())} spectra)"
    if int(ok.sum()) > datashade_min:
        from holoviews.operation.datashader import rasterize

        main = rasterize(hv.Points(pts, kdims=["z_ref", "z_fnet"]), x_range=(0, hi), y_range=(0, hi)).opts(
            cmap="viridis", cnorm="log", colorbar=True, tools=["hover"]
        )
    else:
        src = df["z_ref_source"].to_numpy()[ok] if "z_ref_source" in df.columns else np.full(len(pts), "")
        pts["reference"] = src
        pts["object_id"] = df["object_id"].to_numpy()[ok]
        main = hv.Points(pts, kdims=["z_ref", "z_fnet"], vdims=["reference", "object_id"]).opts(
            color="reference", cmap={"decided": "#d62728", "store": "#1f77b4", "": "#7f7f7f"},
            size=4, alpha=0.6, tools=["hover"], legend_position="top_left",
        )  # fmt: skip
    line = hv.Curve([(0, 0), (hi, hi)], "z_ref", "z_fnet").opts(color="black", line_dash="dashed", line_width=1)
    return (main * line).opts(title=title, xlabel="reference z", ylabel="FNet z", xlim=(0, hi), ylim=(0, hi), **SIZE)


def dv_histogram(df: pd.DataFrame, half_range: float | None = None, bins: int = DV_BINS) -> hv.Histogram:
    """Histogram of dv = c (z_fnet - z_ref) / (1 + z_ref) within +-half_range km/s (outside: counted in
    the title). half_range None: ten times the median |dv|, between 1000 km/s and `DV_RANGE_KMS`."""
    dv = dv_kms(_est(df, "z_fnet"), _ref(df))
    dv = dv[np.isfinite(dv)]
    if half_range is None:
        med = float(np.median(np.abs(dv))) if dv.size else 0.0
        half_range = float(min(max(10.0 * med, 1000.0), DV_RANGE_KMS))
    inside = np.abs(dv) <= half_range
    counts, edges = np.histogram(dv[inside], bins=bins, range=(-half_range, half_range))
    out = int((~inside).sum())
    med = float(np.median(np.abs(dv))) if dv.size else float("nan")
    title = f"FNet dv: {dv.size} spectra, median |dv| {med:,.0f} km/s"
    if out:
        title += f", {out} beyond"
    return hv.Histogram((edges, counts), kdims=["dv_kms"], vdims=["spectra"]).opts(
        title=title, xlabel="dv (km/s)", ylabel="spectra", color="#1f77b4", line_color=None, tools=["hover"], **SIZE
    )


def accuracy_vs_dv(df: pd.DataFrame, grid: np.ndarray = ACC_GRID_KMS) -> hv.Overlay:
    """Percent of spectra with |dv| below a threshold against the threshold (log axis), per estimator,
    over the spectra with a reference z; a missing estimate counts as a failure (as in Fig. 4)."""
    zr = _ref(df)
    has_ref = np.isfinite(zr)
    curves = []
    for name, col, color in ESTIMATORS:
        if col not in df.columns:
            continue
        zp = _est(df, col)[has_ref]
        acc = accuracy_curve(zp, zr[has_ref], grid)
        a6 = float(accuracy_curve(zp, zr[has_ref], [THRESHOLDS_KMS[0]])[0]) if has_ref.any() else float("nan")
        label = f"{name} ({a6:.1f}% < {THRESHOLDS_KMS[0]:g})"
        curves.append(hv.Curve((grid, acc), "threshold_kms", "percent", label=label).opts(color=color, line_width=2))
    marks = [hv.VLine(t).opts(color="gray", line_dash="dotted", line_width=1) for t in THRESHOLDS_KMS]
    return hv.Overlay(curves + marks).opts(
        title=f"accuracy vs |dv| threshold ({int(has_ref.sum())} spectra)", logx=True, ylim=(0, 101),
        xlabel="|dv| threshold (km/s)", ylabel="spectra with |dv| below it (%)", legend_position="bottom_right",
        **SIZE,
    )  # fmt: skip


def survey_plots(df: pd.DataFrame, datashade_min: int = DATASHADE_MIN) -> hv.Layout:
    """The three plots side by side."""
    return (z_vs_ref(df, datashade_min) + dv_histogram(df) + accuracy_vs_dv(df)).opts(shared_axes=False)


__all__ = ["DATASHADE_MIN", "accuracy_vs_dv", "dv_histogram", "survey_plots", "z_vs_ref"]
