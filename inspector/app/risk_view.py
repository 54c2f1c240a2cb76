"""The risk model's answer in "why it is here": how likely the automatic catalog answer is wrong, and why.

    risk_html(item)   # "<p>risk 62 %: P(this z or class is wrong) ...</p><ul>drivers</ul>"; "" without a risk

The risk (`inspector.risk`) is loaded with the predictions of a triage run with a queue policy; a
rules-only triage or a database from before revision 0004 has none, and then nothing is shown, so the
page reads as it did. Drivers are named by `inspector.risk.features.DESCRIPTIONS`, in the words a
survey scientist uses, not by column name.
"""
from __future__ import annotations

import html
import math
from typing import Any

from inspector.risk.features import DESCRIPTIONS

SOURCE_WORDS = {"fnet": "FNet", "tpl": "the template fit", "pipe": "the pipeline"}
MAX_DRIVERS = 4  # the learner explains its top 4; more would not fit the side panel


def percent(p: float, signed: bool = False) -> str:
    """A probability as a percentage a person reads at a glance: 62, 4.5, 0.3, < 0.1 (with + / − if signed)."""
    v = 100.0 * abs(p) if signed else 100.0 * p
    text = f"{v:.0f}" if v >= 10 else f"{v:.1f}" if v >= 0.1 else "< 0.1"
    return (("+" if p >= 0 else "−") + text) if signed and v >= 0.1 else text


def _value(v: Any) -> str:
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "–"  # the estimate the feature compares was missing
    return format(float(v), ".3g")


def driver_text(name: str, value: Any, added: Any) -> str:
    """'log10 |dv| FNet vs the template fit (km/s): 4.3 (+31 %)' (plain text, not yet escaped)."""
    known = isinstance(added, (int, float)) and math.isfinite(added)
    gain = f" ({percent(float(added), signed=True)} %)" if known else ""
    return f"{DESCRIPTIONS.get(name, name)}: {_value(value)}{gain}"


def risk_html(it: Any) -> str:
    """The risk as a percentage, where the catalog's z comes from, and the drivers (the features that add
    most to the risk) as a short list; "" for an item without a risk."""
    risk = getattr(it, "risk", None)
    if risk is None or not math.isfinite(risk):
        return ""
    src = getattr(it, "z_best_source", None)
    z_best = getattr(it, "z_best", None)
    where = ""
    if src is not None:
        z = f" {z_best:.5f}" if z_best is not None and math.isfinite(z_best) else ""
        where = f" · catalog z{z} from {html.escape(SOURCE_WORDS.get(src, src))}"
    items = "".join(
        f"<li title='{html.escape(str(d[0]), quote=True)}'>{html.escape(driver_text(*d))}</li>"
        for d in (getattr(it, "risk_drivers", None) or [])[:MAX_DRIVERS]
    )
    drivers = f"<ul class='fnet-risk-drivers'>{items}</ul>" if items else ""
    return (f"<p class='fnet-risk'>risk <b>{percent(risk)} %</b>: P(this z or class is wrong){where}</p>"
            + drivers)
