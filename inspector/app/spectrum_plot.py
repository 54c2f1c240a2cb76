"""The spectrum figures: a full view and a zoom panel, Bokeh models updated in place.

Why plain Bokeh rather than a HoloViews DynamicMap: the accept-to-next target
(README, 'Speed') leaves no room for re-rendering a figure; here a new spectrum, a new
z or a new smoothing only replaces the `ColumnDataSource` data of figures that
stay in the page. The curves (sky, noise, FNet grid, flux, template model) are the
rows of one source, drawn by one MultiLine per panel: Bokeh's browser-side cost is
per renderer, and five renderers per panel were most of the time from Enter to the
next spectrum drawn.

Drawing order keeps the data visible: masked pixels (`vstrip`) and line markers
(`vspan`, dashed, translucent) sit on the underlay level below the flux, and the
labels are small rotated text pinned to the top of each panel in screen units.
Both panels share every source, so the markers follow z identically in each.
The zoom panel follows a click on the full view, or the region dragged with the
range tool; its y axis fits the data inside its window.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from bokeh.models import (BooleanFilter, CDSView, ColumnDataSource, CustomJS, CustomJSTickFormatter, LabelSet, Range1d,
                          RangeTool)
from bokeh.plotting import figure
from model import lines as L
from model.smoothing import smooth

EMPTY = {"x": np.zeros(0)}


def _runs(mask: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start/end x of each run of True pixels (half a pixel either side)."""
    if mask is None or not mask.any() or x.size < 2:
        return np.zeros(0), np.zeros(0)
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.diff(m.astype(int))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    half = np.gradient(x) / 2
    return x[starts] - half[starts], x[ends] + half[ends]


def window_limits(flux: np.ndarray) -> tuple[float, float]:
    """The zoom panel's y range: every point of the window in view, peaks included, room for the labels.
    The same rule as the browser's refit when the window moves (`_ZOOM_Y_JS`), so the two never disagree."""
    f = flux[np.isfinite(flux)]
    if f.size == 0 or f.max() <= f.min():
        return -1.0, 1.0
    lo, hi = float(f.min()), float(f.max())
    pad = 0.1 * (hi - lo)
    return lo - pad, hi + 3 * pad


# y tick labels of one width whatever the flux (7 monospace characters, figure-space padded): a label that
# grows or shrinks with the next spectrum's flux resizes the axis, and Bokeh then lays out the whole page
# again (about a third of the browser's work between Enter and the next spectrum drawn)
_Y_TICKS_JS = """
const a = Math.abs(tick);
const s = (a !== 0 && (a >= 1e5 || a < 1e-2)) ? tick.toExponential(1) : String(+tick.toPrecision(4));
return s.padStart(7, '\u2007');"""

_ZOOM_Y_JS = """
const x = s.data.xs[row], f = s.data.ys[row], r = cb_obj; let lo = Infinity, hi = -Infinity;
for (let i = 0; i < x.length; i++) { if (x[i] < r.start || x[i] > r.end || !isFinite(f[i])) continue;
  lo = Math.min(lo, f[i]); hi = Math.max(hi, f[i]); }
if (isFinite(lo) && hi > lo) { const p = 0.1 * (hi - lo); y.start = lo - p; y.end = hi + 3 * p; }"""


def y_limits(flux: np.ndarray) -> tuple[float, float]:
    f = flux[np.isfinite(flux)]
    if f.size == 0:
        return -1.0, 1.0
    lo, hi = np.percentile(f, [0.5, 99.5])
    pad = 0.08 * (hi - lo or 1.0)
    return float(lo - pad), float(hi + 3 * pad)  # room for the labels on top


# (legend name, style): the curves, drawn in this order, one row each of the `curves` source
_CURVES = (
    ("sky", {"color": "#2ca02c", "alpha": 0.35, "width": 1.0}),
    ("noise", {"color": "#7f7f7f", "alpha": 0.8, "width": 1.0}),
    ("FNet grid", {"color": "#ff7f0e", "alpha": 0.8, "width": 1.0}),
    ("flux", {"color": "#1f1f1f", "alpha": 1.0, "width": 1.0}),
    ("template model", {"color": "#d62728", "alpha": 0.85, "width": 1.5}),
)
ROW = {name: i for i, (name, _style) in enumerate(_CURVES)}  # a curve's row in the `curves` source


@lru_cache(maxsize=4)
def _drawn_lines(major_only: bool, *, absorption: bool) -> tuple[Any, list[str], list[str]]:
    """(table, names, colours) of the lines drawn: selected once, not for every spectrum."""
    t = L.select(L.line_table(), major_only=major_only, absorption=absorption)
    colors = np.where(t["kind"].to_numpy() == "emission", "#1f77b4", "#9467bd")
    return t, t["name"].tolist(), colors.tolist()


class SpectrumPlot:
    """Two Bokeh figures sharing their sources; call `show_item`, `set_view`, `set_model`, `set_lines`."""
    def __init__(self, height: int = 360, zoom_height: int = 260) -> None:
        # a row per curve (`_CURVES`), one MultiLine per panel; a new z sends only the model's row (a patch)
        n = len(_CURVES)
        self.curves = ColumnDataSource({"xs": [np.zeros(0)] * n, "ys": [np.zeros(0)] * n,
                                        **{k: [st[k] for _, st in _CURVES] for k in ("color", "alpha", "width")}},
                                       name="fnet_spectrum")  # fmt: skip
        self.shown = BooleanFilter(booleans=[True] * n, name="fnet_curves_shown")  # both panels' view of the rows
        self.masked = ColumnDataSource({"x0": [], "x1": []})
        self.lines = ColumnDataSource({"x": [], "label": [], "color": []}, name="fnet_lines")
        self.main = figure(height=height, sizing_mode="stretch_width", tools="xpan,xwheel_zoom,box_zoom,reset,tap",
                           active_scroll="xwheel_zoom", x_range=Range1d(3500, 10500), y_range=Range1d(-1, 1),
                           x_axis_label="observed wavelength (Å, vacuum)",
                           y_axis_label="flux (1e-17 erg/s/cm²/Å)", name="spectrum_main")  # fmt: skip
        self.zoom = figure(height=zoom_height, sizing_mode="stretch_width", tools="xpan,xwheel_zoom,reset",
                           active_scroll="xwheel_zoom", x_range=Range1d(4000, 5000), y_range=Range1d(-1, 1),
                           name="spectrum_zoom")  # fmt: skip
        self._labels: dict[str, LabelSet] = {}
        for p in (self.main, self.zoom):
            p.vstrip(x0="x0", x1="x1", source=self.masked, fill_color="#d62728", fill_alpha=0.12, line_alpha=0,
                     level="underlay")  # fmt: skip
            p.vspan(x="x", source=self.lines, line_color="color", line_dash="dashed", line_alpha=0.7,
                    line_width=1, level="underlay")  # fmt: skip
            p.multi_line("xs", "ys", source=self.curves, view=CDSView(filter=self.shown), line_color="color",
                         line_alpha="alpha", line_width="width", name=f"curves:{p.name}")  # fmt: skip
            labels = LabelSet(x="x", y=1.0, text="label", source=self.lines,
                                  angle=np.pi / 2, text_align="right", text_baseline="middle", text_font_size="10px",
                                  text_color="color", text_alpha=0.9, x_offset=3)  # fmt: skip
            p.add_layout(labels)
            self._labels[p.name] = labels
            p.y_range.js_link("end", labels, "y")  # pinned to the top of the panel, hanging down
            p.yaxis.formatter = CustomJSTickFormatter(code=_Y_TICKS_JS)
            p.yaxis.major_label_text_font = "monospace"
        self.stand_ins = self._legend()  # legend name -> the renderer its legend entry shows
        self.range_tool = RangeTool(x_range=self.zoom.x_range)
        self.range_tool.overlay.fill_alpha = 0.08
        self.main.add_tools(self.range_tool)
        self.main.js_on_event("tap", CustomJS(args={"r": self.zoom.x_range}, code="""
            const w = r.end - r.start; r.start = cb_obj.x - w / 2; r.end = cb_obj.x + w / 2;"""))
        self.zoom.x_range.js_on_change("start", CustomJS(args={"s": self.curves, "y": self.zoom.y_range,
                                                               "row": ROW["flux"]}, code=_ZOOM_Y_JS))
        self._wave = np.zeros(0)
        self._flux = np.zeros(0)
        self._ivar = np.zeros(0)
        self._drawn_x = np.zeros(0, np.float32)  # the spectrum's x and (smoothed) flux as drawn now
        self._drawn_flux = np.zeros(0, np.float32)
        self._item: Any = None

    def _legend(self) -> dict[str, Any]:
        """The main panel's legend, above the frame, drawn from stand-ins: a Bokeh legend redraws itself
        (a canvas per entry) on any change of what its renderers reach, i.e. on every new spectrum if they
        were the real curves. Clicking an entry hides the curve's row in both panels (`shown`), found by
        name so that the legend does not reach the panels' renderers."""
        stand_ins = {}
        for name, style in _CURVES:
            r = self.main.line([np.nan], [np.nan], legend_label=name, line_color=style["color"],
                               line_alpha=style["alpha"], line_width=style["width"])  # a row, or no sample is drawn
            r.js_on_change("visible", CustomJS(args={"row": ROW[name]}, code="""
                const f = cb_obj.document.get_model_by_name('fnet_curves_shown');
                if (f && f.booleans[row] !== cb_obj.visible) {
                  const b = [...f.booleans]; b[row] = cb_obj.visible; f.booleans = b; }"""))
            stand_ins[name] = r
        leg = self.main.legend[0]
        leg.orientation, leg.click_policy, leg.label_text_font_size = "horizontal", "hide", "9px"
        leg.margin, leg.padding, leg.spacing = 0, 2, 8
        self.main.add_layout(leg, "above")  # outside the frame: it never covers the data
        return stand_ins

    @property
    def item(self) -> Any:
        """The spectrum drawn now (None before the first)."""
        return self._item

    # ------------------------------------------------------------------ updates
    def show_item(self, item: Any, z: float, *, rest: bool, smoothing: float, show_grid: bool,
                  major_only: bool, model: np.ndarray | None = None) -> None:
        """A new spectrum: data (with its template `model` if given: one update of the source, not two),
        ranges, markers."""
        self._item = item
        self._wave, self._flux, self._ivar = item.wave, item.flux, item.ivar
        if model is None:  # not the last spectrum's
            model = np.full(len(item.wave), np.nan, np.float32)
        self._draw_data(z, rest, smoothing, show_grid, model)
        self.set_lines(z, rest=rest, major_only=major_only)
        x = self._drawn_x
        if len(x):
            self.main.x_range.update(start=float(np.nanmin(x)), end=float(np.nanmax(x)))
            lo, hi = y_limits(self._drawn_flux)
            self.main.y_range.update(start=lo, end=hi)
            self._labels["spectrum_main"].y = hi  # (the JS link moves them on later zooms)
            self._center_zoom(z, rest, float(np.nanmin(x)), float(np.nanmax(x)))

    def _x(self, wave: np.ndarray, z: float, rest: bool) -> np.ndarray:
        return wave / (1.0 + z) if rest else wave

    def _draw_data(self, z: float, rest: bool, smoothing: float, show_grid: bool,
                   model: np.ndarray | None = None) -> None:
        item = self._item
        x = self._x(self._wave, z, rest)
        flux, noise = smooth(self._flux, self._ivar, smoothing)  # the noise of the smoothed flux, not the pixels'
        n = x.size
        f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731 - half the bytes to the browser, ample precision
        if model is None or len(model) != n:  # the one drawn, when it is still this spectrum's
            model = self._model_drawn() if self._drawn_x.size == n else np.full(n, np.nan, np.float32)
        sky = item.sky if item.sky is not None and len(item.sky) == n else np.full(n, np.nan)
        grid = show_grid and item.grid_wave is not None
        rows = {"sky": (x, sky), "noise": (x, noise), "flux": (x, flux), "template model": (x, model),
                "FNet grid": (self._x(item.grid_wave, z, rest), item.grid_flux) if grid else (x[:0], x[:0])}
        self._drawn_x, self._drawn_flux = f32(x), f32(flux)
        self.curves.data = {**self.curves.data, "xs": [f32(rows[name][0]) for name, _ in _CURVES],
                            "ys": [f32(rows[name][1]) for name, _ in _CURVES]}  # fmt: skip
        x0, x1 = _runs(item.mask if item.mask is not None else np.zeros(0, bool), x)
        self.masked.data = {"x0": x0, "x1": x1}
        for p in (self.main, self.zoom):
            p.xaxis.axis_label = "rest wavelength (Å, vacuum)" if rest else "observed wavelength (Å, vacuum)"

    def _model_drawn(self) -> np.ndarray:
        """The template model's row as drawn (NaN where there is none)."""
        return np.asarray(self.curves.data["ys"][ROW["template model"]])

    def set_view(self, z: float, *, rest: bool, smoothing: float, show_grid: bool, major_only: bool,
                 reframe: bool = False) -> None:
        """Same spectrum, another smoothing / frame / z (in the rest frame the data move with z)."""
        if self._item is None:
            return
        old = self._drawn_x
        self._draw_data(z, rest, smoothing, show_grid)
        self.set_lines(z, rest=rest, major_only=major_only)
        new = self._drawn_x
        if reframe and old.size and new.size:  # keep the same pixels in view when the frame changes
            f = float(new[0] / old[0])
            for r in (self.main.x_range, self.zoom.x_range):
                r.update(start=r.start * f, end=r.end * f)
        self._fit_y()  # smoothing changes the peaks: both panels refit their y ranges

    def _fit_y(self) -> None:
        if not self._drawn_x.size:
            return
        lo, hi = y_limits(self._drawn_flux)
        self.main.y_range.update(start=lo, end=hi)
        self._labels["spectrum_main"].y = hi
        self._fit_zoom_y()

    def _fit_zoom_y(self) -> None:
        """The zoom panel's y range to the data inside its window (`window_limits`), its labels on top."""
        x, flux = self._drawn_x, self._drawn_flux
        r = self.zoom.x_range
        sel = (x >= r.start) & (x <= r.end)
        ylo, yhi = window_limits(flux[sel]) if sel.any() else (-1.0, 1.0)
        self.zoom.y_range.update(start=ylo, end=yhi)
        self._labels["spectrum_zoom"].y = yhi

    def set_model(self, model_flux: np.ndarray | None, z: float, *, rest: bool) -> None:
        """The template model over the data (None: hidden, or no fit at this z)."""
        n = self._drawn_x.size
        if model_flux is None or self._item is None or len(model_flux) != n:
            model_flux = np.full(n, np.nan)
        self.curves.patch({"ys": [(ROW["template model"], np.asarray(model_flux, np.float32))]})  # its row alone

    def set_shown(self, curve: str, visible: bool) -> None:
        """Show or hide a curve (a `_CURVES` name) in both panels, its legend entry greyed when hidden."""
        self.stand_ins[curve].visible = bool(visible)
        if self.shown.booleans[ROW[curve]] != bool(visible):
            self.shown.booleans = [bool(visible) if i == ROW[curve] else b for i, b in enumerate(self.shown.booleans)]

    def is_shown(self, curve: str) -> bool:
        """Whether the curve is drawn in the panels (both share one view of the rows)."""
        return bool(self.shown.booleans[ROW[curve]])

    def on_legend(self, curve: str, callback: Callable[[bool], None]) -> None:
        """Call `callback(shown)` when a click on the curve's legend entry shows or hides it."""
        self.stand_ins[curve].on_change("visible", lambda _attr, _old, new: callback(bool(new)))

    def zoom_by(self, factor: float) -> None:
        """Narrow (factor > 1) or widen the zoom panel about its centre; its y range follows the data."""
        r = self.zoom.x_range
        c, w = (r.start + r.end) / 2, (r.end - r.start) / factor
        x = self._drawn_x
        if x.size:
            w = min(w, float(np.nanmax(x) - np.nanmin(x)))
        r.update(start=c - w / 2, end=c + w / 2)
        self._fit_zoom_y()

    def set_lines(self, z: float, *, rest: bool, major_only: bool) -> None:
        """Markers at lambda_vac (1 + z) exactly (or lambda_vac in the rest frame)."""
        t, names, colors = _drawn_lines(major_only, absorption=True)
        self.lines.data = {"x": L.observed(t, z, rest=rest), "label": names, "color": colors}

    def _center_zoom(self, z: float, rest: bool, lo: float, hi: float) -> None:
        x = L.observed(_drawn_lines(True, absorption=False)[0], z, rest=rest)
        inside = x[(x > lo) & (x < hi)]
        width = min(800.0 / (1 + z) if rest else 800.0, hi - lo)
        c = float(inside[0]) if inside.size else (lo + hi) / 2
        start = max(lo, c - width / 2)
        self.zoom.x_range.update(start=start, end=start + width)
        self._fit_zoom_y()
