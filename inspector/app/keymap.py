"""The one keymap table: it drives the browser's key handler, the Python dispatch and the on-screen help.

Each row is (key, action, description). `key` is a DOM `KeyboardEvent.key`
value; `action` names a method of `inspector.app.session.InspectSession` (called with
no arguments). Nothing else in the app lists keys: `js_keys()` feeds the
browser snippet, `help_markdown()` the help panel, `action_for()` the dispatch.
"""
from __future__ import annotations

from typing import NamedTuple


class Binding(NamedTuple):
    key: str
    action: str
    description: str


KEYMAP: tuple[Binding, ...] = (
    Binding("Enter", "accept", "accept FNet's redshift (needs a quality) and go to the next spectrum"),
    Binding("c", "correct", "save the current z as a correction (needs a quality) and go on"),
    Binding("x", "not_qso", "not a quasar (needs a quality) and go on"),
    Binding("b", "bad_spectrum", "bad spectrum (quality 0) and go on"),
    Binding("s", "skip", "skip: pass it on to another inspector"),
    Binding("0", "quality_0", "quality 0: nothing there"),
    Binding("1", "quality_1", "quality 1: unlikely"),
    Binding("2", "quality_2", "quality 2: possible"),
    Binding("3", "quality_3", "quality 3: probable"),
    Binding("4", "quality_4", "quality 4: at least two secure features"),
    Binding("n", "next", "next spectrum (forward through your decisions, then the queue)"),
    Binding("p", "previous", "previous spectrum (the one you decided before)"),
    Binding("ArrowRight", "nudge_up_fine", "z + 0.0001"),
    Binding("ArrowLeft", "nudge_down_fine", "z - 0.0001"),
    Binding("ArrowUp", "nudge_up_coarse", "z + 0.01"),
    Binding("ArrowDown", "nudge_down_coarse", "z - 0.01"),
    Binding("a", "next_candidate", "adopt the next candidate redshift (FNet, alternatives, Template, Z_PIPE, ...)"),
    Binding("A", "previous_candidate", "adopt the previous candidate redshift"),
    Binding("f", "reset_z", "back to FNet's redshift"),
    Binding("]", "smooth_more", "more Gaussian smoothing"),
    Binding("[", "smooth_less", "less Gaussian smoothing"),
    Binding("r", "toggle_rest", "observed / rest frame"),
    Binding("m", "toggle_major", "major lines only / all lines"),
    Binding("g", "toggle_grid", "show / hide the FNet-grid spectrum"),
    Binding("t", "toggle_chi2", "show / hide the template fit's χ²(z) curve (click near a minimum there to adopt it)"),
)

_BY_KEY = {b.key: b for b in KEYMAP}
assert len(_BY_KEY) == len(KEYMAP), "a key is bound twice"


def action_for(key: str) -> str | None:
    """The action bound to a DOM key value, or None."""
    b = _BY_KEY.get(key)
    return None if b is None else b.action


def js_keys() -> list[str]:
    """The keys the browser handler forwards (and stops the browser from acting on)."""
    return [b.key for b in KEYMAP]


def _shown(key: str) -> str:
    return {"ArrowRight": "→", "ArrowLeft": "←", "ArrowUp": "↑", "ArrowDown": "↓", "A": "Shift+A"}.get(key, key)


def help_markdown() -> str:
    """The on-screen help: a Markdown table generated from KEYMAP."""
    rows = [f"| `{_shown(b.key)}` | {b.description} |" for b in KEYMAP]
    return "| key | does |\n|---|---|\n" + "\n".join(rows)
