"""Panes and widgets of the inspection page whose changes for each new spectrum travel lean.

Panel's HTML pane sends its stylesheets again with every new object (fresh ImportedStyleSheet models), and
the browser answers each with new <style> elements and a re-layout of the whole page. And for any change
of any widget's value Panel first rebuilds the widget's design stylesheets (new Bokeh models, ~2 ms each on
the server) only to drop them again unless the stylesheets themselves changed. The inspection page
changes several of these for every spectrum (title, message, why-it-is-here, the clicked feature, the
quality buttons, the z field, the candidates), inside the time between a key and the next spectrum drawn.
"""
from __future__ import annotations

from typing import Any

import panel as pn
import param
from bokeh.document import Document
from bokeh.model import Model


class LeanUpdates:
    """A Panel component mixin: a value change sends the value alone (the stylesheets, fixed when the
    component was built, are only rebuilt when they are what changed)."""

    def _update_properties(self, *events: param.parameterized.Event, doc: Document) -> dict[str, Any]:
        if any(e.name == "stylesheets" for e in events):
            return super()._update_properties(*events, doc=doc)  # type: ignore[misc]
        return self._process_param_change({e.name: e.new for e in events})  # type: ignore[attr-defined]


class TextPane(pn.pane.HTML):
    """`pn.pane.HTML` whose object changes send only the text (made by the pane's own transform:
    sanitised and escaped as Panel does)."""

    def _update(self, ref: str, model: Model) -> None:
        text = self._transform_object(self.object)["object"]
        if model.text != text:
            model.text = text


class RadioButtonGroup(LeanUpdates, pn.widgets.RadioButtonGroup):
    """`pn.widgets.RadioButtonGroup` with lean value changes."""


class TextInput(LeanUpdates, pn.widgets.TextInput):
    """`pn.widgets.TextInput` with lean value changes."""
