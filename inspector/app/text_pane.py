"""An HTML pane whose new content travels as its text alone.

Panel's HTML pane sends its stylesheets again with every new object (fresh ImportedStyleSheet models), and
the browser answers each with new <style> elements and a re-layout of the whole page. The panes the
inspection page rewrites for every spectrum (title, message, why-it-is-here, the clicked feature) keep the
stylesheets they were built with and send only `text`.
"""
from __future__ import annotations

import panel as pn
from bokeh.model import Model


class TextPane(pn.pane.HTML):
    """`pn.pane.HTML` whose object changes send only the text (its styles are fixed when it is built)."""

    def _update(self, ref: str, model: Model) -> None:
        text = self._get_properties(model.document)["text"]
        if model.text != text:
            model.text = text
