"""The Overview tab: queue progress, the survey table (filters, jump-to), survey plots, catalog export.

    state = OverviewState()
    view = overview_view(engine, store_path, state=state)    # a Panel object for a tab
    state.param.watch(lambda e: show_in_inspect(e.new), "jump_to")

Shared state: `OverviewState.jump_to` is the object id the user asked to open, from the "jump to"
box (Enter) or a click on a table row; the Inspect page watches it (and switches to its tab). It is
re-triggered when the same id is asked for again. Pass your own `state` to share it with the
Inspect page, or read `view.overview_state` (the returned object carries it).

Data: `inspector.app.overview_data` (the survey table, filters, rates, progress, export bytes).

Refreshing: the Refresh button re-reads the decisions (table, plots, progress); a periodic callback
(`refresh_s`, served sessions only) updates the progress numbers, which are cheap SQL counts.
The Export button writes the catalog with `db.export.export_catalog` (FITS, CSV or Parquet).

Queue policy: where the triage ran one (`inspector triage --max-leak / --budget`), the fraction of the
survey sent to people against the expected leak rate, with this triage's point marked
(`inspector.app.overview_plots.queue_vs_leak`, from the export meta's "policy"); a short note otherwise.
"""
from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from sqlalchemy import Engine

from db.export import (
    FORMATS,
    MODEL_P_QSO_MIN,
)
from db.validate import DECIDING_ACTIONS
from inspector.app.overview_data import (
    ANY,
    DECISION_SPECIAL,
    FORMATTERS,
    PAGE_SIZE,
    QUALITY_OPTIONS,
    REFRESH_S,
    RULE_NONE,
    TABLE_COLUMNS,
    base_rows,
    decided_rows,
    display_frame,
    export_bytes,
    filter_table,
    find_predictions,
    progress,
    progress_markdown,
    rules_of,
    survey_table,
)
from inspector.app.overview_plots import policy_caption, queue_vs_leak, survey_plots


# --------------------------------------------------------------------------- view
class OverviewState(param.Parameterized):
    """What the Overview shares with the Inspect page."""
    jump_to = param.String(default=None, allow_None=True, doc="object id the user asked to inspect")


class Overview(param.Parameterized):
    """The Overview tab's state and widgets; `panel()` lays them out."""
    table = param.DataFrame(doc="the survey table (`survey_table`), re-read on refresh")
    rule = param.Selector(default=ANY, objects=[ANY])
    quality = param.Selector(default=ANY, objects=list(QUALITY_OPTIONS))
    decision = param.Selector(default=ANY, objects=[ANY, *DECISION_SPECIAL, *DECIDING_ACTIONS])
    z_range = param.Range(default=(0.0, 7.5), bounds=(0.0, 7.5))
    export_format = param.Selector(default="fits", objects=list(FORMATS))
    only_inspected = param.Boolean(default=False, doc="export only the spectra someone decided")
    message = param.String(default="")

    def __init__(self, engine: Engine, store: str | Path, predictions: str | Path | None = None,
                 state: OverviewState | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.engine = engine
        self.store = Path(store)
        self.predictions = Path(predictions) if predictions else find_predictions(engine, self.store)
        self.state = state or OverviewState()
        self.base, self.meta, self.z_truth = base_rows(self.store, self.predictions)
        self.progress_pane = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.progress_bar = pn.indicators.Progress(value=0, max=1, sizing_mode="stretch_width", height=18)
        self.rates = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=140, width=520)
        self.grid = pn.widgets.Tabulator(
            pd.DataFrame(columns=list(TABLE_COLUMNS.values())), pagination="remote", page_size=PAGE_SIZE,
            disabled=True, show_index=False, sizing_mode="stretch_width", selectable=1,
            formatters=FORMATTERS,
        )  # fmt: skip
        self.grid.on_click(self._on_row_click)
        self.jump_input = pn.widgets.TextInput(label="Jump to object id", placeholder="e.g. 0300-51600-0003, Enter")
        self.jump_input.param.watch(lambda e: self.jump(e.new), "value")
        self.refresh_button = pn.widgets.Button(label="Refresh", color="default", icon="refresh")
        self.refresh_button.on_click(lambda _e: self.refresh())
        self.download = pn.widgets.FileDownload(
            callback=self._export, filename="fnet_catalog.fits", color="primary", label="Export catalog",
            embed=False,
        )
        self.refresh()

    # ---------------------------------------------------------------- data flow
    def refresh(self) -> None:
        """Re-read the decisions and the queue: table, plots and progress follow."""
        table = survey_table(self.base, decided_rows(self.engine), self.z_truth,
                             self.meta.get("p_qso_min", MODEL_P_QSO_MIN))  # fmt: skip
        rules = [ANY, RULE_NONE, *rules_of(table)]
        self.param.rule.objects = rules
        if self.rule not in rules:
            self.rule = ANY
        z = pd.to_numeric(table["z_fnet"], errors="coerce")
        hi = float(np.ceil(max(float(z.max()) if z.notna().any() else 1.0, 0.5) * 10) / 10)
        full = self.param.z_range.bounds
        self.param.z_range.bounds = (0.0, hi)
        if self.z_range == full or self.z_range[1] > hi:
            self.z_range = (0.0, hi)
        self.table = table
        self.refresh_progress()

    def refresh_progress(self) -> None:
        p = progress(self.engine)
        self.progress_pane.object = progress_markdown(p)
        self.progress_bar.max = max(int(p["flagged"]), 1)
        self.progress_bar.value = int(p["decided"])
        self.rates.value = p["inspectors"][["inspector", "decisions", "last_hour", "per_hour"]]

    def _z_filter(self) -> tuple[float, float] | None:
        return None if tuple(self.z_range) == tuple(self.param.z_range.bounds) else tuple(self.z_range)

    def filtered(self) -> pd.DataFrame:
        """The survey rows passing the current filters."""
        return filter_table(self.table, self.rule, self.quality, self.decision, self._z_filter())

    @param.depends("table", "rule", "quality", "decision", "z_range", watch=True, on_init=True)
    def _update_grid(self) -> None:
        if self.table is not None:
            self.grid.value = display_frame(self.filtered())

    @param.depends("table", "rule", "quality", "decision", "z_range")
    def plots(self) -> pn.pane.HoloViews:
        # the policy's plot joins the survey plots in one layout: as a second plot pane on the tab it left
        # these undrawn in Chromium

        layout = survey_plots(self.filtered())
        policy = queue_vs_leak(self.meta.get("policy"))
        if policy is not None:
            layout = (layout + policy).cols(3)
        return pn.pane.HoloViews(layout, sizing_mode="stretch_width")

    def policy_panel(self) -> pn.pane.Markdown:
        """The queue policy in a line (its plot is with the survey plots), or the note that the triage had none."""
        return pn.pane.Markdown("### Queue policy\n" + policy_caption(self.meta.get("policy")),
                                sizing_mode="stretch_width")

    @param.depends("export_format", watch=True)
    def _set_filename(self) -> None:
        self.download.filename = f"fnet_catalog.{self.export_format}"

    def _export(self) -> io.BytesIO:
        return io.BytesIO(export_bytes(self.base, self.meta, self.engine, self.export_format, self.only_inspected))

    # ---------------------------------------------------------------- jump to
    def jump(self, object_id: str | None) -> bool:
        """Ask the Inspect page to show `object_id` (sets `state.jump_to`); False if no such spectrum."""
        oid = (object_id or "").strip()
        if not oid:
            return False
        if not (self.table["object_id"].astype(str) == oid).any():
            self.message = f"no spectrum {oid!r} in this store"
            return False
        self.message = f"{oid}: shown in Inspect"
        if self.state.jump_to == oid:
            self.state.param.trigger("jump_to")
        else:
            self.state.jump_to = oid
        return True

    def _on_row_click(self, event: Any) -> None:
        try:
            oid = str(self.grid.value["object_id"].iloc[int(event.row)])
        except (IndexError, KeyError, TypeError, ValueError):
            return
        self.jump(oid)

    @param.depends("message")
    def _message_pane(self) -> pn.pane.HTML:
        return pn.pane.HTML(f"<span style='color:#555'>{html.escape(self.message)}</span>" if self.message else "")

    # ---------------------------------------------------------------- layout
    def panel(self) -> pn.viewable.Viewable:
        filters = pn.Row(
            pn.widgets.Select.from_param(self.param.rule, label="Rule", width=170),
            pn.widgets.Select.from_param(self.param.quality, label="Quality", width=120),
            pn.widgets.Select.from_param(self.param.decision, label="Decision", width=140),
            pn.widgets.EditableRangeSlider.from_param(self.param.z_range, label="z_fnet range", step=0.01, width=260),
            self.jump_input,
            self._message_pane,
        )
        export = pn.Row(
            pn.widgets.RadioButtonGroup.from_param(self.param.export_format, color="light"),
            # a toggle button: its words are what one clicks (a checkbox's label here did nothing)
            pn.widgets.Toggle.from_param(self.param.only_inspected, label="only inspected", button_style="outline",
                                         css_classes=["fnet-only-inspected"]),
            self.download,
        )
        top = pn.Row(
            pn.Column("### Queue progress", self.progress_bar, self.progress_pane, self.refresh_button,
                      sizing_mode="stretch_width"),
            pn.Column("### Per inspector", self.rates),
            pn.Column("### Export", export),
        )  # fmt: skip
        return pn.Column(top, self.policy_panel(), filters, self.grid, self.plots, sizing_mode="stretch_width")


def overview_view(engine: Engine, store_path: str | Path, *, predictions: str | Path | None = None,
                  state: OverviewState | None = None, refresh_s: float | None = REFRESH_S) -> pn.Column:
    """The Overview tab for one browser session; `.overview_state` on the result is its `OverviewState`
    (or `state`, when given), `.overview` the `Overview` behind it. In a served session the progress is
    re-read every `refresh_s` seconds (None: only by the Refresh button)."""
    ov = Overview(engine, store_path, predictions, state=state)
    view = ov.panel()
    view.overview_state = ov.state
    view.overview = ov
    doc = pn.state.curdoc
    if refresh_s and doc is not None and doc.session_context is not None:
        pn.state.add_periodic_callback(ov.refresh_progress, period=int(refresh_s * 1000))
    return view


__all__ = [
    "Overview", "OverviewState", "display_frame", "export_bytes", "filter_table", "find_predictions", "overview_view",
    "progress", "survey_table",
]  # fmt: skip
