"""The numbered candidates table of the inspection page, as one light browser component.

A Tabulator redrawn for every spectrum cost about 100 ms of the browser's time between Enter and the next
spectrum on screen (`bench/app_latency.py`, 2 cores): its data reload, its own table sizing and the
page re-layout it asks for. Here the rows travel as one list of strings and the browser rewrites one
<tbody>; a click on a row comes back as its index (`on_click` gets an object with `.row`, as a Tabulator
click event has).
"""
from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pandas as pd
import param
from panel.custom import JSComponent

from inspector.app.lean_panes import LeanUpdates

_ESM = """
export function render({ model, el }) {
  const table = document.createElement('table');
  table.className = 'fnet-cand-table';
  const head = document.createElement('thead');
  const body = document.createElement('tbody');
  table.append(head, body);
  const cell = (tag, text) => { const c = document.createElement(tag); c.textContent = text; return c; };
  const draw_head = () => {
    const tr = document.createElement('tr');
    for (const c of model.columns) tr.append(cell('th', c));
    head.replaceChildren(tr);
  };
  const draw_rows = () => {
    const rows = model.rows.map((r, i) => {
      const tr = document.createElement('tr');
      tr.className = 'fnet-cand-row' + (String(r[0]).startsWith('●') ? ' fnet-cand-here' : '');
      for (const v of r) tr.append(cell('td', v));
      tr.addEventListener('click', () => model.send_msg({ row: i }));
      return tr;
    });
    body.replaceChildren(...rows);
  };
  draw_head(); draw_rows();
  model.on('columns', draw_head);
  model.on('rows', draw_rows);
  el.append(table);
}
"""

_CSS = """
.fnet-cand-table { width: 100%; border-collapse: collapse; font-size: 12px; font-family: inherit; }
.fnet-cand-table th { text-align: left; font-weight: 600; background: #f3f3f3; border-bottom: 1px solid #ccc;
  padding: 2px 4px; }
.fnet-cand-table td { padding: 2px 4px; border-bottom: 1px solid #eee; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; max-width: 220px; }
.fnet-cand-row { cursor: pointer; }
.fnet-cand-row:hover { background: #e8f0fe; }
.fnet-cand-here { font-weight: 600; background: #fff8e1; }
"""


class CandidateTable(LeanUpdates, JSComponent):
    """`rows` (each row's cells as text) under `columns`; `value` reads them as a DataFrame; a row click calls
    `on_click`."""

    columns = param.List(default=[])
    rows = param.List(default=[], doc="each row's cells as text, in the order of `columns`")
    _esm = _ESM
    _stylesheets = [_CSS]

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._click: list[Callable[[Any], None]] = []

    @property
    def value(self) -> pd.DataFrame:
        """The rows shown, as a DataFrame of their text."""
        return pd.DataFrame(self.rows, columns=self.columns)

    def on_click(self, callback: Callable[[Any], None]) -> None:
        self._click.append(callback)

    def _handle_msg(self, msg: Any) -> None:
        row = msg.get("row") if isinstance(msg, dict) else None
        if isinstance(row, int) and 0 <= row < len(self.rows):
            for cb in self._click:
                cb(SimpleNamespace(row=row))
