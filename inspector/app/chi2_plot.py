"""The template fit's chi2(z) curve for the spectrum on screen: a small Bokeh figure updated in place.

    fit = fit_item(item)                      # model.template_fit on the item's native pixels (grid row if none)
    fig = chi2_figure(fit, markers(item, fit, z), z)  # a figure for a fit (pure: a new figure every call)
    p = Chi2Plot(); p.show(fit, rows, z); p.set_z(z2)  # the app's one figure, sources replaced in place

The y axis is chi2 - min chi2 + 1 on a log scale: the best minimum sits at 1
and a secondary minimum's height above it reads directly as its delta chi2
(redrock's DELTACHI2), which a linear axis squashes against the bottom for a
bright spectrum. Redshifts the fit did not evaluate (outside a template's
range, or a negative leading eigen-coefficient) are gaps in the curve.
Vertical markers: the current z (solid red, follows z), FNet's z, the
template fit's best z and next minima, and Z_PIPE; their labels hang from the
top of the frame (kept clear of the curve: the y range leaves its top third
to them), the current z's label stands on the bottom.

Nothing here runs unless the panel is shown: the fit costs more than a
keystroke may, so it is the caller's to cache per spectrum
(inspector.app.inspect_view).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, LabelSet, Range1d
from bokeh.plotting import figure

from model.metrics import dv_kms
from model.template_fit import LYMAN_VETO_Z, Z_MAX, fit_redshift

COLORS = {"current": "#d62728", "FNet": "#1f77b4", "Z_TPL": "#2ca02c", "tpl alt": "#2ca02c", "Z_PIPE": "#7f7f7f"}


def spectrum_arrays(item: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, str] | None:
    """(log10 wavelength, flux, ivar, 'native' | 'FNet grid') to fit: the native pixels, else the store's
    FNet-grid row; None when neither has 10 usable pixels. Weights are the ivar as given: the pipeline puts
    ivar = 0 where a pixel is unusable, and the and_mask's other bits are warnings, not masks (model.grid)."""
    tries = [(item.wave, item.flux, item.ivar, "native" if item.source == "file" else "FNet grid")]
    if item.grid_wave is not None and item.source == "file":
        tries.append((item.grid_wave, item.grid_flux, item.grid_ivar, "FNet grid"))
    for wave, flux, ivar, name in tries:
        if wave is None or flux is None or ivar is None or len(wave) < 10:
            continue
        w, f, iv = (np.asarray(a, float) for a in (wave, flux, ivar))
        good = np.isfinite(f) & np.isfinite(iv) & (iv > 0) & (w > 0)
        if good.sum() < 10:
            continue
        order = np.argsort(w, kind="stable")
        w, f, iv, good = w[order], f[order], iv[order], good[order]
        return np.log10(w), np.where(good, f, 0.0), np.where(good, iv, 0.0), name
    return None


def fit_item(item: Any, z_max: float = Z_MAX) -> tuple[Any, str] | None:
    """(model.template_fit.TemplateFit with its chi2 curve, which pixels) for the item, or None."""
    arrays = spectrum_arrays(item)
    if arrays is None:
        return None
    loglam, flux, ivar, name = arrays
    fit = fit_redshift(loglam, flux, ivar, z_max=z_max, keep_curve=True)
    return (fit, name) if np.isfinite(fit.z) else None


def curve(fit: Any) -> dict[str, np.ndarray]:
    """{'z', 'y'}: y = chi2 - min(chi2) + 1 over the scanned grid (not the parabola-refined chi2_min, which
    can sit tens below the grid for a sharp minimum), NaN where not fitted: a gap in the line."""
    z, chi2 = (np.asarray(a, float) for a in fit.chi2_curve)
    fin = np.isfinite(chi2)
    lowest = chi2[fin].min() if fin.any() else 0.0
    y = np.where(fin, chi2 - lowest + 1.0, np.nan)
    return {"z": z.astype(np.float32), "y": y.astype(np.float32)}  # half the bytes to the browser


# why the fit has no chi2 over a z range: each gap of the curve is shaded and says which
WHY_BLANK = {
    "lyman": "ruled out: flux below the Lyman limit, 912 Å (1+z)",
    "negative": "no physical fit: the quasar template would need a negative amplitude",
}


def gaps(fit: Any) -> list[dict[str, Any]]:
    """The z ranges the fit left without chi2, each with why ({'x0', 'x1', 'why'}): at z >= LYMAN_VETO_Z the
    spectrum's own flux below the Lyman limit rules z out (`model.template_fit.lyman_limit_veto`); elsewhere
    the leading eigen-coefficient came out negative (the fit's positive prior)."""
    z, chi2 = (np.asarray(a, float) for a in fit.chi2_curve)
    blank = ~np.isfinite(chi2)
    if not blank.any():
        return []
    edges = np.flatnonzero(np.diff(np.r_[0, blank.astype(int), 0]))
    out = []
    for a, b in zip(edges[::2], edges[1::2] - 1):
        for lo, hi, why in _split(float(z[a]), float(z[b])):
            out.append({"x0": lo, "x1": hi, "why": WHY_BLANK[why]})
    return out


def _split(z0: float, z1: float) -> list[tuple[float, float, str]]:
    """A blank z range cut at LYMAN_VETO_Z: the veto's part above, the negative amplitude's below."""
    if z0 >= LYMAN_VETO_Z:
        return [(float(z0), float(z1), "lyman")]
    if z1 < LYMAN_VETO_Z:
        return [(float(z0), float(z1), "negative")]
    return [(float(z0), LYMAN_VETO_Z, "negative"), (LYMAN_VETO_Z, float(z1), "lyman")]


def blank_note(fit: Any) -> str:
    """' · blank: 64 % of z (shaded: ...)' for the title; '' when the whole range was fitted."""
    z, chi2 = (np.asarray(a, float) for a in fit.chi2_curve)
    share = float(np.mean(~np.isfinite(chi2))) if chi2.size else 0.0
    if share == 0:
        return ""
    whys = sorted({g["why"].split(":")[0] for g in gaps(fit)})
    return f" · blank {100 * share:.0f} % of z (shaded, hover: {', '.join(whys)})"


def markers(item: Any, fit: Any | None) -> list[dict[str, Any]]:
    """The marker rows (x, label, color) besides the current z: FNet, the live fit's minima, Z_PIPE."""
    rows = []
    if item is not None and item.z_fnet is not None:
        rows.append({"x": float(item.z_fnet), "label": "FNet", "color": COLORS["FNet"]})
    if fit is not None:
        rows.append({"x": float(fit.z), "label": "Z_TPL", "color": COLORS["Z_TPL"]})
        for k, (zc, c2) in enumerate(fit.candidates[1:3], 1):
            d = c2 - fit.chi2_min
            rows.append({"x": float(zc), "label": f"alt {k} (Δχ² {d:.0f})" if d >= 10 else f"alt {k} (Δχ² {d:.1f})",
                         "color": COLORS["tpl alt"]})
    zp = None if item is None else item.info.get("z_pipe")
    if zp is not None and np.isfinite(zp) and zp >= 0:
        rows.append({"x": float(zp), "label": "Z_PIPE", "color": COLORS["Z_PIPE"]})
    return _merge_labels(rows)


def _merge_labels(rows: list[dict[str, Any]], kms: float = 1500.0) -> list[dict[str, Any]]:
    """Markers closer than `kms` share one label ('FNet, Z_TPL') on the first; the others get none."""
    for i, r in enumerate(rows):
        if not r["label"]:
            continue
        for o in rows[i + 1:]:
            if o["label"] and abs(dv_kms(o["x"], r["x"])) < kms:
                r["label"], o["label"] = f"{r['label']}, {o['label'].split(' (')[0]}", ""
    return rows


def snap(fit: Any, z: float, window_kms: float = 5000.0) -> float:
    """The z of the lowest chi2 within +-window_kms of z (a click near a minimum adopts the minimum)."""
    zg, chi2 = (np.asarray(a, float) for a in fit.chi2_curve)
    near = np.abs(dv_kms(zg, z)) <= window_kms
    near &= np.isfinite(chi2)
    if not near.any():
        return float(z)
    i = np.flatnonzero(near)[np.argmin(chi2[near])]
    if abs(dv_kms(zg[i], fit.z)) < 100.0:  # the best minimum: its refined z
        return float(fit.z)
    return float(zg[i])


def title(fit: Any | None, pixels: str, item: Any = None) -> str:
    if fit is None:
        return "template χ²(z): no usable pixels to fit"
    t = (f"template χ²(z) on the {pixels} pixels ({fit.npix} used, {fit.template}): Z_TPL {fit.z:.5f} ± "
         f"{fit.z_err:.5f}, Δχ² {fit.delta_chi2:.1f}" + blank_note(fit))
    stored = None if item is None else item.z_tpl
    if stored is not None and abs(dv_kms(stored, fit.z)) > 300.0:
        t += f" · stored (FNet grid) {stored:.5f}"
    return t


class Chi2Plot:
    """One chi2(z) figure; `show(fit, rows, z, text)` for a new spectrum, `set_z(z)` as z moves."""
    def __init__(self, height: int = 230) -> None:
        self.curve = ColumnDataSource({"z": [], "y": []})
        self.marks = ColumnDataSource({"x": [], "label": [], "color": []})
        self.current = ColumnDataSource({"x": [], "label": [], "color": []})
        self.blank = ColumnDataSource({"x0": [], "x1": [], "why": []})
        # a title from the start, so that Bokeh lays out its space (set later, it is drawn clipped)
        self.fig = figure(height=height, sizing_mode="stretch_width", y_axis_type="log",
                          tools="xpan,xwheel_zoom,box_zoom,reset,tap", active_scroll="xwheel_zoom",
                          x_range=Range1d(0, Z_MAX), y_range=Range1d(0.8, 1e4), x_axis_label="z",
                          y_axis_label="χ² − min χ² + 1", name="chi2_curve",
                          title="template χ²(z)")  # fmt: skip
        self.fig.title.text_font_size = "11px"
        strips = self.fig.vstrip(x0="x0", x1="x1", source=self.blank, fill_color="#9e9e9e", fill_alpha=0.18,
                                 line_alpha=0, level="underlay")
        self.fig.add_tools(HoverTool(renderers=[strips], tooltips=[("no χ²", "@why"), ("z", "@x0{0.00}-@x1{0.00}")]))
        for src, width, dash in ((self.marks, 1, "dashed"), (self.current, 2, "solid")):
            self.fig.vspan(x="x", source=src, line_color="color", line_width=width, line_dash=dash, line_alpha=0.8,
                           level="underlay")  # fmt: skip
        line = self.fig.line("z", "y", source=self.curve, color="#1f1f1f", line_width=1)
        self.fig.add_tools(HoverTool(renderers=[line], mode="vline", tooltips=[("z", "@z{0.0000}"),
                                                                               ("χ² − min χ² + 1", "@y{0.0}")]))
        self.labels = []
        for src, dx, edge, align in ((self.marks, -6, "end", "right"), (self.current, 7, "start", "left")):
            lab = LabelSet(x="x", y=1e4 if edge == "end" else 0.8, text="label", source=src, angle=np.pi / 2,
                           text_align=align, text_baseline="middle", text_font_size="10px", text_color="color",
                           x_offset=dx)  # fmt: skip
            self.fig.add_layout(lab)
            self.fig.y_range.js_link(edge, lab, "y")
            self.labels.append((lab, edge))

    def show(self, fit: Any | None, rows: list[dict[str, Any]], z: float, text: str = "template χ²(z)") -> None:
        data = curve(fit) if fit is not None else {"z": np.zeros(0, np.float32), "y": np.zeros(0, np.float32)}
        old = self.curve.data["z"]
        if len(old) == len(data["z"]) and np.array_equal(old, data["z"]):
            self.curve.data.update(y=data["y"])  # the same z grid (the usual case): only y goes to the browser
        else:
            self.curve.data = data
        self.marks.data = {k: [r[k] for r in rows] for k in ("x", "label", "color")}
        g = gaps(fit) if fit is not None else []
        self.blank.data = {k: [r[k] for r in g] for k in ("x0", "x1", "why")}
        y = data["y"][np.isfinite(data["y"])]
        decades = max(float(np.log10(y.max())) if y.size else 4.0, 1.0)
        self.fig.y_range.update(start=0.8, end=10.0 ** (decades / 0.65))  # the top third for the labels
        for lab, edge in self.labels:
            lab.y = getattr(self.fig.y_range, edge)
        self.fig.x_range.update(start=0.0, end=Z_MAX)
        self.fig.title.text = text
        self.set_z(z)

    def set_z(self, z: float) -> None:
        self.current.data = {"x": [float(z)], "label": [f"z {z:.4f}"], "color": [COLORS["current"]]}


def chi2_figure(fit: Any | None, rows: list[dict[str, Any]], z: float, text: str = "template χ²(z)") -> Any:
    """A new Bokeh figure of the fit's chi2(z) with these markers and the current z."""
    p = Chi2Plot()
    p.show(fit, rows, z, text)
    return p.fig
