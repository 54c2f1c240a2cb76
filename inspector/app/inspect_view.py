"""The inspection page: spectrum + zoom, the template chi2(z) panel (hidden until asked for), candidates,
why-it-is-here, current z, decision widgets, help.

Everything a widget or a key does is a method of `inspector.app.session.InspectSession`;
this module only lays out widgets bound to its parameters and forwards keys
(`KeyCatcher`, generated from `keymap.KEYMAP`). Text from the database or a
person (comments, names, messages) is always shown HTML-escaped.

The chi2(z) panel fits the spectrum on screen (`chi2_plot.fit_item`) only
while it is shown, and the last 32 fits are kept per spectrum. On the server
the fit starts CHI2_DELAY_MS after a new spectrum, in a worker thread, and is
drawn on a later tick: fitted on the event loop (even on the next tick) it
delays the next spectrum's drawing, which `bench/app_latency.py` measures. Until
it is drawn the panel still shows the previous spectrum's curve.
"""
from __future__ import annotations

import html
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.events import Tap
from panel.custom import JSComponent

from db.validate import ACTIONS, FLAGS, SPECTRAL_TYPES
from inspector.app import chi2_plot as C
from inspector.app import keymap
from inspector.app.candidates_table import CandidateTable
from inspector.app.why_panel import fmt, why_html
from inspector.app.desk import feature_lines
from inspector.app.session import InspectSession
from inspector.app.spectrum_plot import SpectrumPlot
from inspector.app.lean_panes import RadioButtonGroup, TextInput, TextPane
from model.template_model import template_model

pn.extension("tabulator")
MAIN_HEIGHT, ZOOM_HEIGHT, BOTTOM_HEIGHT, RIGHT_WIDTH = 320, 200, 235, 500  # px: one screen at 1440x900
# px: the candidates table's fixed height, its header and 13 rows (FNet and 3 alternatives, the template fit
# and 2, the 3 catalog z, 3 other inspectors); a table that grew or shrank with each spectrum made the
# browser lay out the whole page again (~15 ms of every accept -> next), more rows scroll inside it
CANDIDATES_HEIGHT = 292
CANDIDATE_COLUMNS = ["#", "source", "z", "note", "dv (km/s)"]
# a click on these curves' legend entries sets the session's toggle (kept per inspector), and the toggle
# shows or hides the curve in both panels
LEGEND_TOGGLES = {"sky": "show_sky", "template model": "show_model", "FNet grid": "show_grid"}
ZOOM_STEP = 1.5  # + / - narrow / widen the zoom panel by this factor
TYPE_NAMES = [t.name for t in SPECTRAL_TYPES]
MODEL_KIND = {"STAR": "STAR", "GALAXY": "GALAXY"}  # the template set drawn for a type; any other: QSO
TOGGLES = (("show_model", "toggle_model", "model", "fnet-model-toggle"), ("show_sky", "toggle_sky", "sky", "fnet-sky"),
           ("rest", "toggle_rest", "rest", "fnet-rest"), ("major_only", "toggle_major", "major", "fnet-major"),
           ("show_grid", "toggle_grid", "grid", "fnet-grid"),
           ("show_chi2", "toggle_chi2", "χ²(z)", "fnet-chi2-toggle"))  # (param, action, label, css class)
SMALL_BUTTONS = ".bk-btn { padding: 4px 8px; font-size: 13px; }"
_FITTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chi2-fit")  # one at a time, for every session
CHI2_DELAY_MS = 120  # the browser draws the new spectrum first; then the chi2 panel follows

_ESM = """
export function render({ model }) {
  // Panel draws each widget in its own shadow root: look through them for the comment box
  const deep = (root, sel) => {
    const hit = root.querySelector(sel);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const r = deep(el.shadowRoot, sel); if (r) return r; }
    }
    return null;
  };
  const focus = () => {
    const host = deep(document, '.fnet-comment');
    const box = host && (host.shadowRoot ? host.shadowRoot.querySelector('textarea') : host.querySelector('textarea'));
    if (box) box.focus();
  };
  const handler = (e) => {
    const t = e.composedPath()[0] || e.target;
    const tag = ((t && t.tagName) || '').toLowerCase();
    if (tag === 'input' || tag === 'textarea' || tag === 'select' || (t && t.isContentEditable)) {
      if (e.key === 'Escape') t.blur();  // at once: a key pressed right after is the desk's, not the box's
      else if (e.key === 'Enter' && tag === 'input') setTimeout(() => t.blur(), 0);  // after the field takes it
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || !model.keys.includes(e.key)) return;
    e.preventDefault();
    if (t && t.blur && tag === 'button') t.blur();
    if (model.focus_keys.includes(e.key)) focus();  // at once: the next keystrokes are the comment's
    model.send_msg({ key: e.key });
  };
  document.addEventListener('keydown', handler);
  model.on('focus', focus);
  model.on('remove', () => document.removeEventListener('keydown', handler));
}
"""


class KeyCatcher(JSComponent):
    """Forwards the keymap's keys (pressed anywhere but in a text field) to `on_key`; a `focus` event puts
    the keyboard in the comment box."""
    keys = param.List(default=[])
    focus_keys = param.List(default=[], doc="keys that put the keyboard in the comment box in the browser itself")
    focus = param.Event()
    _esm = _ESM

    def __init__(self, on_key: Any, **params: Any) -> None:
        super().__init__(keys=keymap.js_keys(), focus_keys=[b.key for b in keymap.KEYMAP if b.action == "focus_comment"],
                         height=0, width=0, margin=0, **params)
        self._on_key = on_key

    def _handle_msg(self, msg: Any) -> None:
        self._on_key(str(msg.get("key", "")))


def _label(action: str, text: str) -> str:
    key = keymap.key_for(action)
    return f"{text} [{keymap.shown(key)}]" if key else text


# How each action of the decision vocabulary (`db.validate.ACTIONS`) looks as a button at the desk, and the
# navigation after them. The vocabulary decides which decisions there are; this only dresses them.
BUTTON_LOOK = {"accept": ("Accept FNet z", "success"), "correct": ("Correct (current z)", "primary"),
               "not_qso": ("Not a quasar", "warning"), "bad_spectrum": ("Bad spectrum", "danger"),
               "skip": ("Skip", "light")}  # fmt: skip
NAVIGATION = (("previous", "Back", "light"), ("next", "Next", "light"))
NOT_AT_THE_DESK = ("resolve",)  # settles a conflict between inspectors: `db.consensus`, not a button here


def desk_buttons() -> list[tuple[str, str, str]]:
    """(action, label, style) of the Inspect buttons: every action of the vocabulary an inspector takes at the
    desk, in its order, then the navigation. An action without a look is an error, not a missing button."""
    acts = [a.name for a in ACTIONS if a.name not in NOT_AT_THE_DESK]
    missing = [a for a in acts if a not in BUTTON_LOOK]
    if missing:
        raise KeyError(f"decision actions without a button look: {missing} (add them to BUTTON_LOOK)")
    return [(a, *BUTTON_LOOK[a]) for a in acts] + list(NAVIGATION)


class InspectView:
    """The page for one session: `InspectView(session).panel()`. One screen at 1440x900: the spectrum, its
    zoom, and under them why it is here beside the chi2(z) panel on the left; every control on the right,
    messages just above the decision buttons."""
    def __init__(self, session: InspectSession) -> None:
        self.t = t = session
        self.plot = SpectrumPlot(height=MAIN_HEIGHT, zoom_height=ZOOM_HEIGHT)
        self.chi2 = C.Chi2Plot()
        # shown / hidden by the Bokeh figure's own `visible`: toggling the Panel pane's visibility instead left
        # a blank panel on first load, and made a later z typed in the text field fail now and then (Bokeh
        # "_pending_writes should be non-None" on the spectrum's next update)
        self.chi2.fig.visible = t.show_chi2
        self.chi2.fig.height = BOTTOM_HEIGHT
        self.chi2_pane = pn.Column(pn.pane.Bokeh(self.chi2.fig, sizing_mode="stretch_width"),
                                   sizing_mode="stretch_width", css_classes=["fnet-chi2"], margin=0)
        self.chi2.fig.on_event(Tap, self._chi2_tapped)
        self._fits: OrderedDict[int, Any] = OrderedDict()  # spectrum id -> (fit, pixels) or None
        self.keys = KeyCatcher(self._key)
        t.param.watch(lambda e: self.keys.param.trigger("focus"), "focus")
        self.title = TextPane("", css_classes=["fnet-title"], sizing_mode="stretch_width", margin=(0, 5))
        self.msg = TextPane("", css_classes=["fnet-message"], sizing_mode="stretch_width", margin=(0, 5))
        self.why = TextPane("", sizing_mode="stretch_width", height=BOTTOM_HEIGHT,
                                styles={"overflow-y": "auto"}, css_classes=["fnet-why-box"])  # fmt: skip
        self.z_in = TextInput(name="current z (type, Enter)", value="", width=120, css_classes=["fnet-z"])
        self.z_in.param.watch(self._typed_z, "value")
        self.cands = CandidateTable(columns=CANDIDATE_COLUMNS, rows=self._cand_rows(), sizing_mode="stretch_width",
                                    css_classes=["fnet-candidates"], margin=(0, 5), height=CANDIDATES_HEIGHT,
                                    styles={"overflow-y": "auto"})  # fmt: skip
        self.cands.on_click(self._cand_click)
        # a feature clicked in either panel (its centre fitted) + its line named here or with l -> z
        self.feature = TextPane(self._feature_text(), css_classes=["fnet-feature"], width=200, margin=(18, 5, 0, 5))
        self.line_pick = pn.widgets.Select(name=_label("next_line", "is the line"), options=["", *feature_lines()],
                                           value="", width=170, css_classes=["fnet-line-pick"])  # fmt: skip
        self.line_pick.param.watch(self._line_picked, "value")
        for fig in (self.plot.main, self.plot.zoom):
            fig.on_event(Tap, self._tapped)
        nudges = [pn.widgets.Button(name=n, width=58, margin=(18, 2, 0, 2)) for n in ("−0.01", "−1e-4", "+1e-4", "+0.01")]
        for b, f in zip(nudges, (t.nudge_down_coarse, t.nudge_down_fine, t.nudge_up_fine, t.nudge_up_coarse)):
            b.on_click(lambda e, f=f: f())
        self.quality = RadioButtonGroup(name="quality", options=[0, 1, 2, 3, 4], value=None,
                                                   button_type="primary", button_style="outline",
                                                   css_classes=["fnet-quality-buttons"])  # fmt: skip
        self.quality.param.watch(lambda e: setattr(t, "quality", e.new), "value")
        types = {f"{n} {keymap.short(keymap.key_for('set_type', n) or '')}": n for n in TYPE_NAMES}
        self.types = RadioButtonGroup(options=types, value=t.spectral_type or None, button_type="primary",
                                                 button_style="outline", css_classes=["fnet-type"],
                                                 stylesheets=[SMALL_BUTTONS])  # fmt: skip
        self.types.param.watch(lambda e: setattr(t, "spectral_type", e.new or ""), "value")
        flags = {f"{f.name} {keymap.short(keymap.key_for('toggle_flag', f.name) or '')}": f.name for f in FLAGS}
        self.flags = pn.widgets.CheckButtonGroup(options=flags, value=list(t.flags), button_type="warning",
                                                 button_style="outline", css_classes=["fnet-flags"],
                                                 stylesheets=[SMALL_BUTTONS])  # fmt: skip
        self.flags.param.watch(lambda e: setattr(t, "flags", list(e.new)), "value")
        self.comment = pn.widgets.TextAreaInput.from_param(t.param.comment, name="", max_length=100_000, height=46,
                                                           placeholder=f"comment ({keymap.key_for('focus_comment')})",
                                                           sizing_mode="stretch_width", css_classes=["fnet-comment"])  # fmt: skip
        buttons = []
        for action, text, kind in desk_buttons():
            b = pn.widgets.Button(name=_label(action, text), button_type=kind, css_classes=[f"fnet-{action}"],
                                  margin=(2, 3))  # fmt: skip
            b.on_click(lambda e, a=action: getattr(t, a)())
            buttons.append(b)
        check = {"margin": (2, 6)}
        view = pn.Column(
            pn.Row(pn.widgets.FloatSlider.from_param(t.param.smoothing, name=_label("smooth_more", "smoothing σ (pix)"),
                                                     step=0.5, width=170, margin=(0, 6)),
                   pn.widgets.Checkbox.from_param(t.param.quality_submits, name="a quality key saves", **check),
                   pn.widgets.Select.from_param(t.param.queue_order, name="", width=90, margin=(0, 4),
                                                css_classes=["fnet-order"])),
            pn.Row(*(pn.widgets.Checkbox.from_param(getattr(t.param, p), name=_label(a, n), css_classes=[c], **check)
                     for p, a, n, c in TOGGLES)),
            margin=0,
        )  # fmt: skip
        self.help = pn.Card(pn.pane.Markdown(keymap.help_markdown()), title="Keys", collapsed=True,
                            sizing_mode="stretch_width", margin=(4, 5))  # fmt: skip
        controls = pn.Column(
            self.cands,
            pn.Row(self.z_in, *nudges), pn.Row(self.feature, self.line_pick),
            pn.Row(pn.pane.HTML("<b>quality</b>", width=52, margin=(8, 5)), self.quality),
            self.types, self.flags, self.comment, self.msg,
            pn.FlexBox(*buttons, gap="2px", margin=0), view, self.help,
            width=RIGHT_WIDTH, margin=0,
        )  # fmt: skip
        left = pn.Column(
            self.title,
            pn.pane.Bokeh(self.plot.main, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.plot.zoom, sizing_mode="stretch_width"),
            pn.Row(self.why, self.chi2_pane, sizing_mode="stretch_width"),
            sizing_mode="stretch_width", margin=0,
        )  # fmt: skip
        self.layout = pn.Row(self.keys, left, controls, sizing_mode="stretch_width")
        self._watch(self._item_changed, "item")
        self._watch(self._z_changed, "z")
        self._watch(self._view_changed, ["smoothing", "rest", "major_only", "show_grid"])
        self._watch(lambda *e: self._model_refresh(), ["show_model", "spectral_type"])
        for curve, toggle in LEGEND_TOGGLES.items():  # the legend and the toggles are one state
            self.plot.set_shown(curve, getattr(t, toggle))
            self.plot.on_legend(curve, lambda shown, toggle=toggle: setattr(t, toggle, shown))
            self._watch(lambda e, curve=curve: self.plot.set_shown(curve, e.new), toggle)
        self._watch(lambda e: self.plot.zoom_by(ZOOM_STEP ** (e.new - e.old)), "zoom_level")
        self._watch(self._chi2_toggled, "show_chi2")
        self._watch(lambda *e: self._message(), ["message", "done", "message_level"])
        self._watch(lambda e: self._set_quality(), "quality")
        self._watch(lambda e: setattr(self.types, "value", e.new or None), "spectral_type")
        self._watch(lambda e: setattr(self.flags, "value", list(e.new)), "flags")
        self._watch(lambda *e: self._feature_shown(), ["feature_wave", "feature_err", "line_name"])
        self._watch(lambda *e: self._title(), ["n_decided", "quality"])
        self._watch(lambda e: self._candidates_shown(), "picking")
        self._message()
        if t.item is not None:
            self._item_changed()

    # ------------------------------------------------------------------ from the session
    def _watch(self, fn: Any, names: str | list[str]) -> None:
        """Watch the session's `names` with `fn` under `pn.io.hold()`: a change typed into a widget can reach
        the session while Panel runs a browser event outside Bokeh's document lock (it flushes a pending
        value change first), and the plot's own Bokeh models then cannot be changed directly (Bokeh raises
        "_pending_writes should be non-None"); Panel's hold sends them itself."""
        def held(*events: Any) -> None:
            with pn.io.hold():
                fn(*events)

        self.t.param.watch(held, names)

    def _key(self, key: str) -> None:
        with pn.io.hold():  # every change one key makes goes to the browser as one message
            self.t.dispatch(key)

    def _kw(self) -> dict[str, Any]:
        t = self.t
        return {"rest": t.rest, "smoothing": t.smoothing, "show_grid": t.show_grid, "major_only": t.major_only}

    def _item_changed(self, *_: Any) -> None:
        t = self.t
        if t.item is not None:
            model = self._model_flux()
            self.plot.show_item(t.item, t.z, model=model, **self._kw())
            if t.zoom_level:
                self.plot.zoom_by(ZOOM_STEP ** -t.zoom_level)
        else:
            self._model_refresh()
        self._z_text()
        self._feature_shown()
        self._candidates_shown()
        self.why.object = why_html(t)
        self._set_quality()
        self._title()
        if t.show_chi2:
            self._chi2_soon()

    def _z_changed(self, *_: Any) -> None:
        t = self.t
        if t.item is not None and self.plot.item is not t.item:
            return  # a new spectrum with its z: `_item_changed` draws it all, once
        if t.rest:
            self.plot.set_view(t.z, **self._kw())
        else:
            self.plot.set_lines(t.z, rest=False, major_only=t.major_only)
        self._model_refresh()
        self._z_text()
        self._candidates_shown()
        if t.show_chi2:
            self.chi2.set_z(t.z)

    def _view_changed(self, event: Any) -> None:
        self.plot.set_view(self.t.z, reframe=event.name == "rest", **self._kw())  # the model column is kept

    def _model_flux(self) -> np.ndarray | None:
        """The best-fit template model at the current z, for the type being recorded (`model.template_model`);
        None when hidden."""
        t = self.t
        if not t.show_model or t.item is None or t.item.wave.size == 0:
            return None
        return template_model(t.item.wave, t.item.flux, t.item.ivar, t.z, kind=MODEL_KIND.get(t.spectral_type, "QSO"))

    def _model_refresh(self) -> None:
        self.plot.set_model(self._model_flux(), self.t.z, rest=self.t.rest)

    def _set_quality(self) -> None:
        self.quality.value = self.t.quality

    def _message(self) -> None:
        t = self.t
        color = "#b00020" if t.message_level == "error" else "#1b5e20"
        self.msg.object = (f"<div style='color:{color};min-height:1.3em;font-weight:500' role='status' "
                           f"class='fnet-msg-{t.message_level}'>{html.escape(t.message)}</div>")

    def _title(self) -> None:
        t = self.t
        it = t.item
        oid = "–" if it is None else html.escape(it.object_id)
        zf = "–" if it is None or it.z_fnet is None else f"{it.z_fnet:.5f} ± {it.z_err or 0:.4f}"
        self.title.object = (f"<div style='font-size:15px;font-weight:600;margin:2px 0'><span class='fnet-object'>"
                             f"{oid}</span> · FNet z {zf} · inspector <span class='fnet-inspector'>"
                             f"{html.escape(t.inspector)}</span> · decided this session: {t.n_decided} · quality "
                             f"<span class='fnet-quality'>{'–' if t.quality is None else t.quality}</span></div>")

    def _z_text(self) -> None:
        self._updating = True
        try:
            self.z_in.value = f"{self.t.z:.5f}"
        finally:
            self._updating = False

    def _typed_z(self, event: Any) -> None:
        if getattr(self, "_updating", False):
            return
        if not self.t.set_z_text(event.new):
            self._z_text()

    def _tapped(self, event: Any) -> None:
        """A click in a spectrum panel: its observed wavelength (converted from rest frame when shown so)."""
        if event.x is None:
            return
        x = float(event.x)
        self.t.click_feature(x * (1.0 + self.t.z) if self.t.rest else x)

    def _feature_text(self) -> str:
        t = self.t
        if t.feature_wave is None:
            return "<span style='color:#666'>click a feature: its λ here</span>"
        err = "" if t.feature_err is None else f" ± {t.feature_err:.1f}"
        how = "fitted" if t.feature_err is not None else "clicked"
        return (f"<span>feature λ <b class='fnet-feature-wave'>{t.feature_wave:.1f}</b>{err} Å "
                f"<span style='color:#666'>({how})</span></span>")

    def _feature_shown(self) -> None:
        self.feature.object = self._feature_text()
        self._updating_line = True
        try:
            self.line_pick.value = self.t.line_name if self.t.line_name in self.line_pick.options else ""
        finally:
            self._updating_line = False

    def _line_picked(self, event: Any) -> None:
        if not getattr(self, "_updating_line", False) and event.new:
            self.t.call_line(event.new)

    def _candidates_shown(self) -> None:
        self.cands.rows = self._cand_rows()  # as text: no DataFrame on the way to the browser

    def _cand_rows(self) -> list[list[str]]:
        rows = self.t.candidates()
        n = 0
        out = []
        for c in rows:  # "#": the number `j` then a digit picks; ●: the candidate the current z is
            here = c["dv"] is not None and abs(c["dv"]) < 0.5
            if c["z"] is not None:
                n += 1
            num = (str(n % 10) if n <= 10 else "") if c["z"] is not None else ""
            out.append([("● " if here else "") + num, c["source"], fmt(c["z"]), c["note"] or "",
                        "–" if c["dv"] is None else f"{c['dv']:+.0f}"])  # fmt: skip
        return out

    def _cand_click(self, event: Any) -> None:
        rows = self.t.candidates()
        if 0 <= event.row < len(rows) and rows[event.row]["z"] is not None:
            self.t.z = rows[event.row]["z"]

    # ------------------------------------------------------------------ the chi2(z) panel
    @staticmethod
    def _fit_of(item: Any) -> Any:
        try:
            return C.fit_item(item)
        except Exception:  # noqa: BLE001 - a spectrum the fit cannot take: the panel says so
            return None

    def _keep(self, spectrum_id: int, got: Any) -> None:
        self._fits[spectrum_id] = got
        while len(self._fits) > 32:
            self._fits.popitem(last=False)

    def fit(self) -> Any:
        """(TemplateFit, pixels) of the spectrum on screen, fitted once per spectrum; None if it cannot be."""
        it = self.t.item
        if it is None:
            return None
        if it.spectrum_id not in self._fits:
            self._keep(it.spectrum_id, self._fit_of(it))
        return self._fits[it.spectrum_id]

    def _chi2_soon(self) -> None:
        """Fit and draw the new spectrum's chi2 after the spectrum itself: on the server CHI2_DELAY_MS
        later (if it is still on screen), the fit in a worker thread, the drawing on a later tick; off the
        server (tests) at once."""
        doc, it = pn.state.curdoc, self.t.item
        if doc is None or doc.session_context is None or it is None:
            return self._chi2_refresh()
        sid = it.spectrum_id

        def work() -> None:
            got = self._fit_of(it)
            doc.add_next_tick_callback(lambda: self._fitted(sid, got))  # thread-safe in Bokeh

        def start() -> None:
            if not self.t.show_chi2 or self.t.item is None or self.t.item.spectrum_id != sid:
                return  # moved on meanwhile: nothing to fit
            if sid in self._fits:
                self._chi2_refresh()
            else:
                _FITTER.submit(work)

        doc.add_timeout_callback(start, CHI2_DELAY_MS)
        return None

    def _fitted(self, spectrum_id: int, got: Any) -> None:
        self._keep(spectrum_id, got)
        if self.t.item is not None and self.t.item.spectrum_id == spectrum_id:
            self._chi2_refresh()

    def _chi2_refresh(self) -> None:
        t = self.t
        if not t.show_chi2 or t.item is None:
            return
        got = self.fit()
        fit, pixels = got if got is not None else (None, "")
        self.chi2.show(fit, C.markers(t.item, fit), t.z, C.title(fit, pixels, t.item))

    def _chi2_toggled(self, *_: Any) -> None:
        self.chi2.fig.visible = self.t.show_chi2
        self._chi2_refresh()

    def _chi2_tapped(self, event: Any) -> None:
        """A click in the chi2 panel adopts the lowest chi2 within 5000 km/s of it."""
        got = self.fit() if self.t.show_chi2 else None
        if got is None or event.x is None:
            return
        self.t.z = C.snap(got[0], float(event.x))

    def panel(self) -> pn.viewable.Viewable:
        return self.layout
