"""The Overview tab's survey plots (HoloViews / Bokeh): FNet z vs reference z, the dv histogram, and
accuracy against the |dv| threshold like Fig. 4 of Rastegar Nia et al. (2022); and the queue policy's
trade-off, the fraction of the survey sent to people against the expected leak rate.

Each survey plot takes the survey table of `inspector.app.overview` (columns z_fnet, z_ref, z_pipe, z_qn;
z_ref NaN where there is no reference) and returns a HoloViews element. Above `DATASHADE_MIN` spectra
the z-z plot is rasterized by datashader (`holoviews.operation.datashader.rasterize`) instead of
sending every point to the browser. The policy plot takes the triage's policy summary
(`inspector.risk.policy.policy_summary`, the export meta's "policy"): `policy_curve` reads the curve
and the chosen point out of it, `queue_vs_leak` draws them, `policy_caption` says it in a line.
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


# --------------------------------------------------------------------------- the queue policy
NO_POLICY_NOTE = (
    "No queue policy: this triage ran the rules alone, so there is no risk per spectrum and no expected "
    "leak rate. `inspector triage --max-leak 0.005` (with a risk model for this FNet) queues by risk and "
    "says how clean the auto-accepted part is."
)


def policy_curve(policy: dict | None) -> tuple[pd.DataFrame, dict] | None:
    """(curve, chosen) from a policy triage's summary; None for a rules-only triage (`policy` None or empty).

    curve: queue_fraction (the fraction of the survey sent to people, auto-accepting the least risky rest)
    and expected_leak (the expected fraction wrong among those accepted), as the triage computed them.
    chosen: the policy's point: queue_fraction = (n_queued + n_no_signal) / n_spectra (everything not
    accepted; the no-signal bucket is not accepted either), expected_leak, and the counts, the policy's
    name, max_leak / budget and a label.
    """
    if not policy or not policy.get("curve"):
        return None
    c = policy["curve"]
    curve = pd.DataFrame({"queue_fraction": np.asarray(c["queue_fraction"], np.float64),
                          "expected_leak": np.asarray(c["expected_leak"], np.float64)})  # fmt: skip
    n = max(int(policy["n_spectra"]), 1)
    not_accepted = int(policy["n_queued"]) + int(policy["n_no_signal"])
    chosen = {
        "queue_fraction": not_accepted / n,
        "expected_leak": float(policy["expected_leak"]),
        "n_spectra": int(policy["n_spectra"]),
        "n_accepted": int(policy["n_accepted"]),
        "n_queued": int(policy["n_queued"]),
        "n_no_signal": int(policy["n_no_signal"]),
        "expected_wrong_accepted": float(policy["expected_wrong_accepted"]),
        "policy": str(policy["policy"]),
        "max_leak": policy.get("max_leak"),
        "budget": policy.get("budget"),
    }
    chosen["label"] = (f"{chosen['policy']}: {100 * chosen['queue_fraction']:.1f} % to people, "
                       f"leak {100 * chosen['expected_leak']:.2f} %")  # fmt: skip
    return curve, chosen


def policy_caption(policy: dict | None) -> str:
    """The policy's outcome in one Markdown line, or `NO_POLICY_NOTE`."""
    got = policy_curve(policy)
    if got is None:
        return NO_POLICY_NOTE
    ch = got[1]
    n = max(ch["n_spectra"], 1)
    return (
        f"**Queue policy {ch['policy']}**: {ch['n_accepted']} of {ch['n_spectra']} auto-accepted "
        f"({100 * ch['n_accepted'] / n:.1f} %), expected wrong among them {ch['expected_wrong_accepted']:.1f} "
        f"(leak {100 * ch['expected_leak']:.2f} %); {ch['n_queued']} to people, {ch['n_no_signal']} with no "
        f"usable signal in their own bucket"
    )


def queue_vs_leak(policy: dict | None) -> hv.Overlay | None:
    """The queue size (percent of the survey sent to people) against the expected leak rate (percent wrong
    among the auto-accepted), with the policy's point marked and labelled and its target leak, if any, as a
    dotted line; None for a rules-only triage."""
    got = policy_curve(policy)
    if got is None:
        return None
    curve, ch = got
    x, y = 100 * curve["queue_fraction"].to_numpy(), 100 * curve["expected_leak"].to_numpy()
    cx, cy = 100 * ch["queue_fraction"], 100 * ch["expected_leak"]
    line = hv.Curve((x, y), "queue_pct", "leak_pct", label="accept the least risky").opts(color="#1f77b4",
                                                                                         line_width=2)  # fmt: skip
    point = hv.Scatter([(cx, cy)], "queue_pct", "leak_pct", label="this triage").opts(
        color="#d62728", size=10, marker="circle", tools=["hover"]
    )
    ymax = float(np.nanmax(y)) if y.size and np.isfinite(y).any() else 1.0
    ymax = max(ymax, cy, 100 * (ch["max_leak"] or 0.0), 1e-3) * 1.1
    # the x range: to well past where the leak reaches zero (most of a survey is plain; pan for the rest)
    flat = x[np.nan_to_num(y, nan=np.inf) <= 1e-9]
    x0 = float(flat.min()) if flat.size else 100.0
    xmax = float(min(100.0, max(10.0, 1.5 * x0, 2.0 * cx)))
    text = hv.Text(min(cx + 0.02 * xmax, 0.6 * xmax), min(cy + 0.06 * ymax, 0.95 * ymax), ch["label"],
                   halign="left", fontsize=9).opts(color="#d62728")  # fmt: skip
    parts = [line, point, text]
    if ch["max_leak"] is not None:
        parts.append(hv.HLine(100 * ch["max_leak"]).opts(color="gray", line_dash="dotted", line_width=1))
    return hv.Overlay(parts).opts(
        title=f"queue size vs expected leak ({ch['n_spectra']} spectra)", xlim=(0, xmax), ylim=(0, ymax),
        xlabel="sent to people (% of the survey)", ylabel="expected wrong among auto-accepted (%)",
        legend_position="top_right", **SIZE,
    )  # fmt: skip


__all__ = [
    "DATASHADE_MIN", "NO_POLICY_NOTE", "accuracy_vs_dv", "dv_histogram", "policy_caption", "policy_curve",
    "queue_vs_leak", "survey_plots", "z_vs_ref",
]  # fmt: skip
