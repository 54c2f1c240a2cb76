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
import pandas as pd
import panel as pn
import param
from bokeh.events import Tap
from panel.custom import JSComponent

from db.validate import ACTIONS
from inspector.app import chi2_plot as C
from inspector.app import keymap
from inspector.app.risk_view import risk_html
from inspector.app.session import InspectSession
from inspector.app.spectrum_plot import SpectrumPlot
from inspector.triage import RULES
from model import lines as L

pn.extension("tabulator")
_FITTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chi2-fit")  # one at a time, for every session
CHI2_DELAY_MS = 120  # the browser draws the new spectrum first; then the chi2 panel follows

_ESM = """
export function render({ model }) {
  const handler = (e) => {
    const t = e.composedPath()[0] || e.target;
    const tag = ((t && t.tagName) || '').toLowerCase();
    if (tag === 'input' || tag === 'textarea' || tag === 'select' || (t && t.isContentEditable)) {
      if (e.key === 'Escape' || (e.key === 'Enter' && tag === 'input')) setTimeout(() => t.blur(), 0);
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || !model.keys.includes(e.key)) return;
    e.preventDefault();
    if (t && t.blur && tag === 'button') t.blur();
    model.send_msg({ key: e.key });
  };
  document.addEventListener('keydown', handler);
  model.on('remove', () => document.removeEventListener('keydown', handler));
}
"""


class KeyCatcher(JSComponent):
    """Forwards the keymap's keys (pressed anywhere but in a text field) to `on_key`."""
    keys = param.List(default=[])
    _esm = _ESM

    def __init__(self, on_key: Any, **params: Any) -> None:
        super().__init__(keys=keymap.js_keys(), height=0, width=0, margin=0, **params)
        self._on_key = on_key

    def _handle_msg(self, msg: Any) -> None:
        self._on_key(str(msg.get("key", "")))


def _label(action: str, text: str) -> str:
    keys = [b.key for b in keymap.KEYMAP if b.action == action]
    return f"{text} [{keys[0]}]" if keys else text


def _fmt(v: Any, spec: str = ".5f") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return format(v, spec) if isinstance(v, (int, float)) else html.escape(str(v))


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


POLICY_RULES = ("risk", "no_signal")  # rules the queue policy fires (`inspector.triage.RULES`)


def _rule_html(rule: str, value: Any, priority: Any, fnet_class: str | None = None) -> str:
    """One fired rule: its name, the value it judged with its unit (from `inspector.triage.RULES`), the
    priority; the rule's description as the tooltip. A rule on FNet's class names the value (p_qso) and
    the class FNet gave."""
    r = next((x for x in RULES if x.name == rule), None)
    unit = r.unit if r is not None else ""
    spec = ("+,.0f" if rule.startswith("dv_") else ",.0f") if unit == "km/s" else ".4g"  # dv signed, sigma not
    shown = _fmt(value, spec) + (f" {unit}" if unit else "")
    if r is not None and "p_qso" in r.needs:
        shown = f"p_qso {shown}" + (f", FNet: {fnet_class}" if fnet_class else "")
    order = f"priority {_fmt(priority, '.2g')}" if priority is not None else ""
    if rule in POLICY_RULES:  # the queue policy's own rules: the risk, and the bucket's place after the queue
        shown = f"P(wrong) {_fmt(100 * value, '.0f')} %" if isinstance(value, (int, float)) else shown
        removes = f"expected errors a look removes {_fmt(priority, '.2f')}"
        order = "own bucket, after the queue" if rule == "no_signal" else removes
    tip = f" title='{html.escape(r.description, quote=True)}'" if r is not None else ""
    tail = f" ({html.escape(order)})" if order else ""
    return f"<li{tip}><b>{html.escape(rule)}</b> {html.escape(shown)}{tail}</li>"


def class_html(it: Any) -> str:
    """FNet's class, p_qso and every class probability in one line (or why there is none)."""
    if it.fnet_class is None:
        return "<p class='fnet-class'>FNet class: – (the model has no class head)</p>"
    probs = " · ".join(f"{html.escape(k)} {v:.2f}" for k, v in it.class_probs.items())
    return (f"<p class='fnet-class'>FNet class: <b>{html.escape(it.fnet_class)}</b>, p_qso {_fmt(it.p_qso, '.3f')}"
            + (f" <span style='color:#555'>({probs})</span>" if probs else "") + "</p>")


def why_html(t: InspectSession) -> str:
    """The side panel: the rules that fired, the risk model's answer (where the triage had one), FNet's
    class, ids, position, earlier decisions."""
    it = t.item
    if it is None:
        return ""
    i = it.info
    # under a queue policy the order is the policy's (its rule says so); the other rules only explain
    policy = any(r in POLICY_RULES for r, _, _ in it.rules)
    rules = "".join(_rule_html(r, v, None if policy and r not in POLICY_RULES else p, it.fnet_class)
                    for r, v, p in it.rules) or "<li>none (jumped to)</li>"  # fmt: skip
    ra, dec = i.get("ra"), i.get("dec")
    link = ""
    if ra is not None and dec is not None:
        link = (f' <a href="https://skyserver.sdss.org/dr16/en/tools/chart/navi.aspx?ra={ra:.6f}&dec={dec:.6f}"'
                f' target="_blank" rel="noopener">finder</a>')
    ids = " ".join(f"{k}={_fmt(i.get(k), '')}" for k in ("plate", "mjd", "fiberid", "targetid") if i.get(k) is not None)
    others = "".join(f"<li>{html.escape(n)}: {html.escape(a)} z={_fmt(z)} q={_fmt(q, '')}</li>"
                     for n, a, z, q in it.others)
    mine = ""
    if it.mine:
        m = it.mine
        mine = (f"<p><b>your last decision:</b> {html.escape(m['action'])} z={_fmt(m['z_final'])} "
                f"q={_fmt(m['quality'], '')} comment: <span class='fnet-comment'>{html.escape(m['comment'] or '')}</span></p>")
    return (f"<div class='fnet-why'><b>why it is here</b><ul>{rules}</ul>{risk_html(it)}{class_html(it)}"
            f"<p>S/N {_fmt(i.get('sn'), '.2f')} · {html.escape(ids)} · survey {_fmt(i.get('survey'), '')}</p>"
            f"<p>RA {_fmt(ra, '.6f')} DEC {_fmt(dec, '.6f')}{link}</p>"
            f"<p>pipeline CLASS {_fmt(i.get('spec_class'), '')}, source: {it.source}</p>"
            + (f"<b>other inspectors</b><ul>{others}</ul>" if others else "") + mine + "</div>")


class InspectView:
    """The page for one session: `InspectView(triage).panel()`."""
    def __init__(self, triage: InspectSession) -> None:
        self.t = t = triage
        self.plot = SpectrumPlot()
        self.chi2 = C.Chi2Plot()
        # shown / hidden by the Bokeh figure's own `visible`: toggling the Panel pane's visibility instead left
        # a blank panel on first load, and made a later z typed in the text field fail now and then (Bokeh
        # "_pending_writes should be non-None" on the spectrum's next update)
        self.chi2.fig.visible = t.show_chi2
        self.chi2_pane = pn.Column(pn.pane.Bokeh(self.chi2.fig, sizing_mode="stretch_width"),
                                   sizing_mode="stretch_width", css_classes=["fnet-chi2"], margin=0)
        self.chi2.fig.on_event(Tap, self._chi2_tapped)
        self._fits: OrderedDict[int, Any] = OrderedDict()  # spectrum id -> (fit, pixels) or None
        self.keys = KeyCatcher(self._key)
        self.title = pn.pane.HTML("", css_classes=["fnet-title"], sizing_mode="stretch_width")
        self.msg = pn.pane.HTML("", css_classes=["fnet-message"], sizing_mode="stretch_width")
        self.why = pn.pane.HTML("", sizing_mode="stretch_width")
        self.z_in = pn.widgets.TextInput(name="current z (type, Enter)", value="", width=160, css_classes=["fnet-z"])
        self.z_in.param.watch(self._typed_z, "value")
        self.cands = pn.widgets.Tabulator(
            value=self._cand_frame(), disabled=True, show_index=False, selectable=False, height=340,
            sizing_mode="stretch_width", css_classes=["fnet-candidates"],
            widths={"on": 52, "source": 130, "z": 90, "note": 230},
        )  # fmt: skip
        self.cands.on_click(self._cand_click)
        # a feature clicked in either panel + a line chosen from the table -> z (InspectSession.z_from_feature)
        table = L.line_table()
        self._line_waves = {f"{r['name']} {r['lambda']:.2f}": float(r["lambda"]) for _, r in table.iterrows()}
        self.feature = pn.widgets.FloatInput(name="clicked feature λ (observed Å)", value=None, width=200,
                                             css_classes=["fnet-feature"])  # fmt: skip
        self.line_pick = pn.widgets.Select(name="is the line", options=["", *self._line_waves], value="", width=200,
                                           css_classes=["fnet-line-pick"])  # fmt: skip
        self.line_pick.param.watch(lambda e: self._feature_z(), "value")
        for fig in (self.plot.main, self.plot.zoom):
            fig.on_event(Tap, self._tapped)
        nudges = [pn.widgets.Button(name=n, width=70) for n in ("−0.01", "−0.0001", "+0.0001", "+0.01")]
        for b, f in zip(nudges, (t.nudge_down_coarse, t.nudge_down_fine, t.nudge_up_fine, t.nudge_up_coarse)):
            b.on_click(lambda e, f=f: f())
        self.quality = pn.widgets.RadioButtonGroup(name="quality", options=[0, 1, 2, 3, 4], value=None,
                                                   button_type="primary", button_style="outline")  # fmt: skip
        self.quality.param.watch(lambda e: setattr(t, "quality", e.new), "value")
        self.comment = pn.widgets.TextAreaInput.from_param(t.param.comment, max_length=100_000, height=70,
                                                           sizing_mode="stretch_width")  # fmt: skip
        buttons = []
        for action, text, kind in desk_buttons():
            b = pn.widgets.Button(name=_label(action, text), button_type=kind, css_classes=[f"fnet-{action}"])
            b.on_click(lambda e, a=action: getattr(t, a)())
            buttons.append(b)
        view = pn.Row(
            pn.widgets.FloatSlider.from_param(t.param.smoothing, name="smoothing σ (pix)", step=0.5, width=180),
            pn.widgets.Checkbox.from_param(t.param.rest, name="rest frame"),
            pn.widgets.Checkbox.from_param(t.param.major_only, name="major lines only"),
            pn.widgets.Checkbox.from_param(t.param.show_grid, name="FNet grid"),
            pn.widgets.Checkbox.from_param(t.param.show_chi2, name=_label("toggle_chi2", "template χ²(z)"),
                                           css_classes=["fnet-chi2-toggle"]),
        )  # fmt: skip
        decide = pn.Column(
            pn.Row(self.z_in, *nudges), pn.Row(self.feature, self.line_pick), pn.Row(pn.pane.HTML("<b>quality</b>", width=60), self.quality),
            pn.widgets.CheckButtonGroup.from_param(t.param.flags, name="issue flags"),
            pn.widgets.Select.from_param(t.param.spectral_type, name="type (blank: the action's default)", width=220),
            self.comment, pn.Row(*buttons[:5]), pn.Row(*buttons[5:]), sizing_mode="stretch_width",
        )  # fmt: skip
        self.help = pn.Card(pn.pane.Markdown(keymap.help_markdown()), title="Keys", collapsed=True, width=420)
        self.layout = pn.Column(
            self.keys, self.title, self.msg,
            pn.pane.Bokeh(self.plot.main, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.plot.zoom, sizing_mode="stretch_width"), self.chi2_pane, view,
            pn.Row(pn.Column(self.cands, decide, sizing_mode="stretch_width"),
                   pn.Column(self.why, self.help, width=440)),
            sizing_mode="stretch_width",
        )  # fmt: skip
        t.param.watch(self._item_changed, "item")
        t.param.watch(self._z_changed, "z")
        t.param.watch(self._view_changed, ["smoothing", "rest", "major_only", "show_grid"])
        t.param.watch(self._chi2_toggled, "show_chi2")
        t.param.watch(lambda e: self._message(), ["message", "done"])
        t.param.watch(lambda e: self._set_quality(), "quality")
        t.param.watch(lambda e: self._title(), ["n_decided", "quality"])
        if t.item is not None:
            self._item_changed()

    # ------------------------------------------------------------------ from the triage state
    def _key(self, key: str) -> None:
        self.t.dispatch(key)

    def _kw(self) -> dict[str, Any]:
        t = self.t
        return {"rest": t.rest, "smoothing": t.smoothing, "show_grid": t.show_grid, "major_only": t.major_only}

    def _item_changed(self, *_: Any) -> None:
        t = self.t
        if t.item is not None:
            self.plot.show_item(t.item, t.z, **self._kw())
        self._z_text()
        self.line_pick.value, self.feature.value = "", None
        self.cands.value = self._cand_frame()
        self.why.object = why_html(t)
        self._set_quality()
        self._title()
        if t.show_chi2:
            self._chi2_soon()

    def _z_changed(self, *_: Any) -> None:
        t = self.t
        if t.rest:
            self.plot.set_view(t.z, **self._kw())
        else:
            self.plot.set_lines(t.z, rest=False, major_only=t.major_only)
        self._z_text()
        self.cands.value = self._cand_frame()
        if t.show_chi2:
            self.chi2.set_z(t.z)

    def _view_changed(self, event: Any) -> None:
        self.plot.set_view(self.t.z, reframe=event.name == "rest", **self._kw())

    def _set_quality(self) -> None:
        self.quality.value = self.t.quality

    def _message(self) -> None:
        m = self.t.message
        bad = m.startswith(("Not", "Comment", "Decide", "No "))
        color = "#b00020" if bad else "#1b5e20"
        self.msg.object = f"<div style='color:{color};min-height:1.2em' role='status'>{html.escape(m)}</div>"

    def _title(self) -> None:
        t = self.t
        it = t.item
        oid = "–" if it is None else html.escape(it.object_id)
        zf = "–" if it is None or it.z_fnet is None else f"{it.z_fnet:.5f} ± {it.z_err or 0:.4f}"
        self.title.object = (f"<h3 style='margin:4px 0'><span class='fnet-object'>{oid}</span> · FNet z {zf} · "
                             f"inspector <span class='fnet-inspector'>{html.escape(t.inspector)}</span> · "
                             f"decided this session: {t.n_decided} · quality <span class='fnet-quality'>"
                             f"{'–' if t.quality is None else t.quality}</span></h3>")

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
        self.feature.value = round(x * (1.0 + self.t.z) if self.t.rest else x, 2)
        self._feature_z()

    def _feature_z(self) -> None:
        rest = self._line_waves.get(self.line_pick.value)
        if rest is None or self.feature.value is None:
            return
        self.t.z_from_feature(float(self.feature.value), rest)

    def _cand_frame(self) -> Any:
        rows = self.t.candidates()
        # "on": the candidate the current z is (a/A step through them, a click adopts one)
        return pd.DataFrame([{"on": "●" if c["dv"] is not None and abs(c["dv"]) < 0.5 else "", "source": c["source"],
                              "z": _fmt(c["z"]), "note": c["note"],
                              "dv to current (km/s)": "–" if c["dv"] is None else f"{c['dv']:+.0f}"}
                             for c in rows],
                            columns=["on", "source", "z", "note", "dv to current (km/s)"])  # fmt: skip

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
