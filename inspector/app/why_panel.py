"""The "why it is here" side panel of the inspection page: the triage rules that fired (each with its value,
unit and place in the queue), the risk model's answer (`risk_view`), FNet's class, the spectrum's ids and
position, and the decisions on it so far.

    why_html(session)   # the panel's HTML for the spectrum on screen ("" without one)
"""
from __future__ import annotations

import html
from typing import Any

import numpy as np

from inspector.app.risk_view import risk_html
from inspector.triage import RULES


def fmt(v: Any, spec: str = ".5f") -> str:
    """A value as the page shows it: '–' for none or not finite, escaped text for a string."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return format(v, spec) if isinstance(v, (int, float)) else html.escape(str(v))


POLICY_RULES = ("risk", "no_signal")  # rules the queue policy fires (`inspector.triage.RULES`)


def _rule_html(rule: str, value: Any, priority: Any, fnet_class: str | None = None) -> str:
    """One fired rule: its name, the value it judged with its unit (from `inspector.triage.RULES`), the
    priority; the rule's description as the tooltip. A rule on FNet's class names the value (p_qso) and
    the class FNet gave."""
    r = next((x for x in RULES if x.name == rule), None)
    unit = r.unit if r is not None else ""
    spec = ("+,.0f" if rule.startswith("dv_") else ",.0f") if unit == "km/s" else ".4g"  # dv signed, sigma not
    shown = fmt(value, spec) + (f" {unit}" if unit else "")
    if r is not None and "p_qso" in r.needs:
        shown = f"p_qso {shown}" + (f", FNet: {fnet_class}" if fnet_class else "")
    order = f"priority {fmt(priority, '.2g')}" if priority is not None else ""
    if rule in POLICY_RULES:  # the queue policy's own rules: the risk, and the bucket's place after the queue
        shown = f"P(wrong) {fmt(100 * value, '.0f')} %" if isinstance(value, (int, float)) else shown
        removes = f"expected errors a look removes {fmt(priority, '.2f')}"
        order = "own bucket, after the queue" if rule == "no_signal" else removes
    tip = f" title='{html.escape(r.description, quote=True)}'" if r is not None else ""
    tail = f" ({html.escape(order)})" if order else ""
    return f"<li{tip}><b>{html.escape(rule)}</b> {html.escape(shown)}{tail}</li>"


def class_html(it: Any) -> str:
    """FNet's class, p_qso and every class probability in one line (or why there is none)."""
    if it.fnet_class is None:
        return "<p class='fnet-class'>FNet class: – (the model has no class head)</p>"
    probs = " · ".join(f"{html.escape(k)} {v:.2f}" for k, v in it.class_probs.items())
    return (f"<p class='fnet-class'>FNet class: <b>{html.escape(it.fnet_class)}</b>, p_qso {fmt(it.p_qso, '.3f')}"
            + (f" <span style='color:#555'>({probs})</span>" if probs else "") + "</p>")


def why_html(t: Any) -> str:
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
    ids = " ".join(f"{k}={fmt(i.get(k), '')}" for k in ("plate", "mjd", "fiberid", "targetid") if i.get(k) is not None)
    others = "".join(f"<li>{html.escape(n)}: {html.escape(a)} z={fmt(z)} q={fmt(q, '')}</li>"
                     for n, a, z, q in it.others)
    mine = ""
    if it.mine:
        m = it.mine
        mine = (f"<p><b>your last decision:</b> {html.escape(m['action'])} z={fmt(m['z_final'])} "
                f"q={fmt(m['quality'], '')} comment: <span class='fnet-comment'>{html.escape(m['comment'] or '')}</span></p>")
    return (f"<div class='fnet-why'><b>why it is here</b><ul>{rules}</ul>{risk_html(it)}{class_html(it)}"
            f"<p>S/N {fmt(i.get('sn'), '.2f')} · {html.escape(ids)} · survey {fmt(i.get('survey'), '')}</p>"
            f"<p>RA {fmt(ra, '.6f')} DEC {fmt(dec, '.6f')}{link}</p>"
            f"<p>pipeline CLASS {fmt(i.get('spec_class'), '')}, source: {it.source}</p>"
            + (f"<b>other inspectors</b><ul>{others}</ul>" if others else "") + mine + "</div>")
