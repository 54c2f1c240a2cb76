"""The one keymap table: it drives the browser's key handler, the Python dispatch, the buttons' labels and
the on-screen help.

Each row is (key, action, description, arg). `key` is a DOM `KeyboardEvent.key` value; `action` names a
method of `inspector.app.session.InspectSession`, called with `arg` when the row has one (the spectral type
or issue flag it sets), else with none. Nothing else in the app lists keys: `js_keys()` feeds the browser
snippet, `help_markdown()` the help panel, `binding_for()` the dispatch, `key_for()` the button labels.

The layout follows Marz where Marz has a key (quality digits, Enter to save) and otherwise keeps to
lower case for what is pressed on every spectrum and Shift for the rarer choices (types, flags).
"""
from __future__ import annotations

from typing import NamedTuple


class Binding(NamedTuple):
    key: str
    action: str
    description: str
    arg: str | None = None


KEYMAP: tuple[Binding, ...] = (
    # deciding
    Binding("Enter", "accept", "accept FNet's redshift (needs a quality) and go to the next spectrum"),
    Binding("c", "correct", "save the current z as a correction (needs a quality) and go on"),
    Binding("x", "not_qso", "not a quasar (needs a quality; a STAR or GALAXY keeps the current z) and go on"),
    Binding("b", "bad_spectrum", "bad spectrum (quality 0) and go on"),
    Binding("s", "skip", "skip: pass it on to another inspector"),
    Binding("0", "quality_0", "quality 0: nothing there"),
    Binding("1", "quality_1", "quality 1: unlikely"),
    Binding("2", "quality_2", "quality 2: possible"),
    Binding("3", "quality_3", "quality 3: probable"),
    Binding("4", "quality_4", "quality 4: at least two secure features"),
    Binding("Q", "set_type", "type QSO", "QSO"),
    Binding("B", "set_type", "type BAL QSO", "BAL QSO"),
    Binding("S", "set_type", "type STAR (z within ±0.01)", "STAR"),
    Binding("G", "set_type", "type GALAXY", "GALAXY"),
    Binding("U", "set_type", "type UNKNOWN", "UNKNOWN"),
    Binding("Z", "toggle_flag", "flag: the redshift shown is wrong", "bad_z"),
    Binding("K", "toggle_flag", "flag: the classification is wrong", "bad_class"),
    Binding("D", "toggle_flag", "flag: the spectrum itself is bad", "bad_spectrum"),
    Binding("i", "focus_comment", "write a comment (Esc leaves the box)"),
    # moving
    Binding("n", "next", "next spectrum (forward through your decisions, then the queue)"),
    Binding("p", "previous", "previous spectrum (the one you decided before)"),
    # the redshift
    Binding("ArrowRight", "nudge_up_fine", "z + 0.0001"),
    Binding("ArrowLeft", "nudge_down_fine", "z - 0.0001"),
    Binding("ArrowUp", "nudge_up_coarse", "z + 0.01"),
    Binding("ArrowDown", "nudge_down_coarse", "z - 0.01"),
    Binding("a", "next_candidate", "adopt the next candidate redshift (FNet, alternatives, Template, Z_PIPE, ...)"),
    Binding("j", "pick_candidate", "adopt a candidate by its row number: j, then 1-9 (0 the tenth)"),
    Binding("A", "previous_candidate", "adopt the previous candidate redshift"),
    Binding("e", "adopt_consensus", "adopt the estimators' consensus (the median of the largest group that agrees)"),
    Binding("f", "reset_z", "back to FNet's redshift"),
    Binding("l", "next_line", "after a click on a feature: call it the next line (sets z)"),
    Binding("L", "previous_line", "after a click on a feature: call it the previous line"),
    # the view
    Binding("]", "smooth_more", "more smoothing (inverse-variance weighted)"),
    Binding("[", "smooth_less", "less smoothing"),
    Binding("+", "zoom_in", "zoom panel: narrower"),
    Binding("=", "zoom_in", "zoom panel: narrower"),
    Binding("-", "zoom_out", "zoom panel: wider"),
    Binding("o", "toggle_model", "show / hide the best-fit template model at the current z"),
    Binding("y", "toggle_sky", "show / hide the sky"),
    Binding("r", "toggle_rest", "observed / rest frame"),
    Binding("m", "toggle_major", "major lines only / all lines"),
    Binding("g", "toggle_grid", "show / hide the FNet-grid spectrum"),
    Binding("t", "toggle_chi2", "show / hide the template fit's χ²(z) curve (click near a minimum there to adopt it)"),
)

_BY_KEY = {b.key: b for b in KEYMAP}
assert len(_BY_KEY) == len(KEYMAP), "a key is bound twice"
DIGITS = tuple("1234567890")  # after `j`: the candidate row (1-9, 0 the tenth) instead of a quality


def binding_for(key: str) -> Binding | None:
    """The row bound to a DOM key value, or None."""
    return _BY_KEY.get(key)


def action_for(key: str) -> str | None:
    """The action bound to a DOM key value, or None."""
    b = _BY_KEY.get(key)
    return None if b is None else b.action


def key_for(action: str, arg: str | None = None) -> str | None:
    """The first key bound to an action (with this arg), for a button's label; None if unbound."""
    return next((b.key for b in KEYMAP if b.action == action and b.arg == arg), None)


def js_keys() -> list[str]:
    """The keys the browser handler forwards (and stops the browser from acting on)."""
    return [b.key for b in KEYMAP]


def shown(key: str) -> str:
    """A key as printed on a label: arrows as arrows, capitals as Shift+letter."""
    arrows = {"ArrowRight": "→", "ArrowLeft": "←", "ArrowUp": "↑", "ArrowDown": "↓"}
    if key in arrows:
        return arrows[key]
    return f"Shift+{key.lower()}" if len(key) == 1 and key.isalpha() and key.isupper() else key


def short(key: str) -> str:
    """A key as printed on a small button: ⇧q for Shift+q."""
    return f"⇧{key.lower()}" if len(key) == 1 and key.isalpha() and key.isupper() else shown(key)


def help_markdown() -> str:
    """The on-screen help: a Markdown table generated from KEYMAP."""
    rows = [f"| `{shown(b.key)}` | {b.description} |" for b in KEYMAP]
    return "| key | does |\n|---|---|\n" + "\n".join(rows)
