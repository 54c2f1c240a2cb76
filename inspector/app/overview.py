"""The Overview tab: queue progress, the survey table (filters, jump-to), survey plots, catalog export.

    state = OverviewState()
    view = overview_view(engine, store_path, state=state)    # a Panel object for a tab
    state.param.watch(lambda e: show_in_inspect(e.new), "jump_to")

Shared state: `OverviewState.jump_to` is the object id the user asked to open, from the "jump to"
box (Enter) or a click on a table row; the Inspect page watches it (and switches to its tab). It is
re-triggered when the same id is asked for again. Pass your own `state` to share it with the
Inspect page, or read `view.overview_state` (the returned object carries it).

Data: the rows are the vetted catalog's, built by the same functions as `inspector export --db`
(`inspector.catalog_rows.model_rows` for every stored spectrum with the model's z and the triage rules,
`db.export.final_decisions` + `overlay_decisions` for what people decided), plus `z_ref`: the decided
z where people decided (person / consensus), else the store's reference `z` (the truth for a mock);
NaN where a person gave no z (not a quasar, bad spectrum) or there is none.

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
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from sqlalchemy import Engine, case, func, select

from db.engine import session_scope
from db.export import (
    FORMATS,
    MODEL_P_QSO_MIN,
    export_catalog,
    final_decisions,
    is_qso_final,
    overlay_decisions,
)
from db.queue import queue_stats
from db.schema import Decision, Inspector, utcnow
from db.validate import DECIDING_ACTIONS
from model.metrics import dv_kms

PAGE_SIZE = 25
REFRESH_S = 60
MIN_RATE_SPAN = timedelta(minutes=5)  # a rate over less time than this is taken over this long

# the table's columns: survey-table column -> header shown
TABLE_COLUMNS = {
    "object_id": "object_id", "z_fnet": "z_fnet", "z_fnet_err": "z_err", "fnet_class": "class", "p_qso": "p_qso",
    "z_tpl": "Z_TPL", "z_pipe": "Z_PIPE", "z_qn": "Z_QN", "triage_rules": "rules", "priority": "priority",
    "decision": "decision", "quality": "quality", "inspectors": "inspector", "z_final": "z_final",
    "z_source": "z_source", "is_qso_final": "is_qso", "dv_kms": "dv_kms",
}  # fmt: skip

FORMATTERS = {  # Tabulator number formats (the values themselves stay exact)
    **{c: {"type": "money", "precision": 5, "symbol": ""} for c in ("z_fnet", "Z_TPL", "Z_PIPE", "Z_QN", "z_final")},
    "z_err": {"type": "money", "precision": 4, "symbol": ""},
    "p_qso": {"type": "money", "precision": 3, "symbol": ""},
    "dv_kms": {"type": "money", "precision": 0, "symbol": ""},
}  # fmt: skip

ANY = "any"
RULE_NONE = "not flagged"
QUALITY_OPTIONS = {"any": None, "not inspected": -1, **{f"≥ {q}": q for q in range(5)}}
DECISION_SPECIAL = ("undecided", "decided", "conflict")


# --------------------------------------------------------------------------- data
def find_predictions(engine: Engine, store: Path) -> Path:
    """The predictions of the database's current model in STORE/predictions, else the newest run there (the
    baseline run and the template-fit cache are not prediction runs)."""
    from db.load import current_model
    from inspector.store.files import prediction_runs, predictions_path

    with session_scope(engine) as s:
        mv = current_model(s)
        names = [Path(mv.path).stem if mv.path else None, mv.name] if mv is not None else []
    for name in filter(None, names):
        p = predictions_path(store, f"{name}.pt")
        if p.exists():
            return p
    found = prediction_runs(store)
    if not found:
        raise FileNotFoundError(f"no predictions under {Path(store) / 'predictions'}")
    return found[-1]


def base_rows(store: Path, predictions: Path) -> tuple[pd.DataFrame, dict[str, Any], np.ndarray]:
    """(catalog rows with the model's z for every stored spectrum, the export meta, the store's reference z
    aligned with the rows) -- `model_rows` as `inspector export` reads them."""
    from inspector.catalog_rows import model_rows
    from inspector.store import open_store

    rows, meta = model_rows(store, predictions)
    ix = open_store(store).index
    ref = pd.Series(np.nan, index=rows.index)
    for col in ("z", "Z_VI", "Z"):
        if col in ix.columns:
            z = pd.Series(pd.to_numeric(ix[col], errors="coerce").to_numpy(np.float64), index=ix["object_id"])
            ref = pd.Series(z.reindex(rows["object_id"]).to_numpy(), index=rows.index)
            break
    return rows, meta, ref.to_numpy(np.float64)


def decided_rows(engine: Engine) -> pd.DataFrame:
    """One row per judged spectrum (`db.export.final_decisions`, as `inspector export --db`)."""
    with session_scope(engine) as s:
        return final_decisions(s)


def catalog_rows(base: pd.DataFrame, decided: pd.DataFrame) -> pd.DataFrame:
    """The export rows: `base` with the decisions laid over it (`db.export.overlay_decisions`)."""
    return overlay_decisions(base, decided) if len(decided) else base.copy()


def survey_table(base: pd.DataFrame, decided: pd.DataFrame, z_truth: np.ndarray,
                 p_qso_min: float = MODEL_P_QSO_MIN) -> pd.DataFrame:
    """The catalog rows plus decision, is_qso_final (as the export writes it, with `p_qso_min`), z_ref,
    z_ref_source ('decided' / 'store' / '') and dv_kms (FNet against z_ref), with every `TABLE_COLUMNS`
    column present."""
    t = catalog_rows(base, decided).reset_index(drop=True)
    for c, fill in (("decision", ""), ("triage_rules", ""), ("priority", 0.0), ("spectral_type", ""),
                    ("z_tpl", np.nan), ("fnet_class", ""), ("p_qso", np.nan)):  # fmt: skip
        if c not in t.columns:
            t[c] = fill
    for c in ("decision", "triage_rules", "spectral_type", "fnet_class"):
        t[c] = t[c].fillna("").astype(str)
    t["is_qso_final"] = is_qso_final(t["z_source"].astype(str).to_numpy(), t["spectral_type"].to_numpy(),
                                     t["decision"].to_numpy(), pd.to_numeric(t["p_qso"], errors="coerce").to_numpy(),
                                     p_qso_min)  # fmt: skip
    src = t["z_source"].astype(str).to_numpy()
    zf = pd.to_numeric(t["z_final"], errors="coerce").to_numpy(np.float64)
    vetted = np.isin(src, ["person", "consensus"])
    has_truth = np.isfinite(z_truth)
    t["z_ref"] = np.where(vetted, zf, z_truth)  # a person's "no z" stays NaN
    t["z_ref_source"] = np.where(vetted & np.isfinite(zf), "decided", np.where(~vetted & has_truth, "store", ""))
    t["dv_kms"] = dv_kms(pd.to_numeric(t["z_fnet"], errors="coerce").to_numpy(np.float64), t["z_ref"].to_numpy())
    return t


def rules_of(table: pd.DataFrame) -> list[str]:
    """The rule names that fired anywhere, sorted."""
    found: set[str] = set()
    for r in table["triage_rules"].unique():
        found.update(x for x in str(r).split(",") if x)
    return sorted(found)


def _has_item(col: pd.Series, item: str) -> np.ndarray:
    """Rows whose comma-separated `col` lists `item`."""
    return ("," + col.astype(str) + ",").str.contains("," + item + ",", regex=False).to_numpy()


def filter_table(
    table: pd.DataFrame,
    rule: str = ANY,
    quality: str = ANY,
    decision: str = ANY,
    z_range: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """The rows passing the filters (index reset).

    rule: ANY, RULE_NONE or a rule name. quality: a `QUALITY_OPTIONS` key ("≥ 3" keeps mean quality
    >= 3; "not inspected" keeps rows with no quality). decision: ANY, 'undecided' (nobody judged),
    'decided', 'conflict', or an action (accept, correct, ...). z_range: (lo, hi) on z_fnet, inclusive;
    rows without a z_fnet pass only when the range is None.
    """
    keep = np.ones(len(table), bool)
    if rule == RULE_NONE:
        keep &= table["triage_rules"].astype(str).to_numpy() == ""
    elif rule != ANY:
        keep &= _has_item(table["triage_rules"], rule)
    q = QUALITY_OPTIONS.get(quality, None) if quality != ANY else None
    qual = pd.to_numeric(table["quality"], errors="coerce").to_numpy(np.float64)
    if q == -1:
        keep &= np.isnan(qual)
    elif q is not None:
        keep &= qual >= q  # NaN compares False
    n_dec = table["n_decisions"].to_numpy()
    if decision == "undecided":
        keep &= n_dec == 0
    elif decision == "decided":
        keep &= n_dec > 0
    elif decision == "conflict":
        keep &= table["z_source"].astype(str).to_numpy() == "conflict"
    elif decision != ANY:
        keep &= _has_item(table["decision"], decision)
    if z_range is not None:
        z = pd.to_numeric(table["z_fnet"], errors="coerce").to_numpy(np.float64)
        keep &= (z >= float(z_range[0])) & (z <= float(z_range[1]))
    return table.loc[keep].reset_index(drop=True)


def display_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The columns the Tabulator shows, renamed to their headers."""
    return table[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)


def inspector_rates(engine: Engine, now: datetime | None = None) -> pd.DataFrame:
    """Per inspector: deciding decisions (skips not counted) in all and in the last hour, first / last,
    and the overall rate per hour (over first..last, at least `MIN_RATE_SPAN`). One SQL query."""
    now = now or utcnow()
    hour_ago = now - timedelta(hours=1)
    q = (
        select(Inspector.name, func.count(Decision.id),
               func.sum(case((Decision.decided_at >= hour_ago, 1), else_=0)),
               func.min(Decision.decided_at), func.max(Decision.decided_at))
        .join(Inspector, Inspector.id == Decision.inspector_id)
        .where(Decision.action.in_(list(DECIDING_ACTIONS)))
        .group_by(Inspector.name)
        .order_by(Inspector.name)
    )  # fmt: skip
    with session_scope(engine) as s:
        rows = s.execute(q).all()
    out = pd.DataFrame(rows, columns=["inspector", "decisions", "last_hour", "first", "last"])
    span_h = [max(b - a, MIN_RATE_SPAN).total_seconds() / 3600 for a, b in zip(out["first"], out["last"])]
    out["per_hour"] = (out["decisions"] / np.asarray(span_h, dtype=np.float64)).round(1) if len(out) else []
    out["last_hour"] = out["last_hour"].fillna(0).astype(int)
    return out


def progress(engine: Engine, now: datetime | None = None) -> dict[str, Any]:
    """Queue progress: flagged, decided, left, leased now (`db.queue.queue_stats`), decisions in the last
    hour and overall per hour, and `inspectors` (`inspector_rates`)."""
    now = now or utcnow()
    with session_scope(engine) as s:
        st = queue_stats(s, now=now)
    per = inspector_rates(engine, now)
    n = int(per["decisions"].sum()) if len(per) else 0
    if n:
        span = max(max(per["last"]) - min(per["first"]), MIN_RATE_SPAN).total_seconds() / 3600
        rate = round(n / span, 1)
    else:
        rate = 0.0
    return {
        "flagged": st["flagged"], "decided": st["flagged"] - st["undecided"], "left": st["undecided"],
        "leased": st["leased"], "crosschecked": st["decided_twice_or_more"],
        "decisions": n, "last_hour": int(per["last_hour"].sum()) if len(per) else 0, "per_hour": rate,
        "inspectors": per,
    }  # fmt: skip


def progress_markdown(p: dict[str, Any]) -> str:
    pct = 100.0 * p["decided"] / p["flagged"] if p["flagged"] else 0.0
    return (
        f"**{p['decided']} / {p['flagged']}** flagged spectra decided ({pct:.0f}%), **{p['left']} left**, "
        f"{p['leased']} on screen now, {p['crosschecked']} cross-checked · "
        f"{p['last_hour']} decisions in the last hour, {p['per_hour']:g} per hour overall"
    )


def export_bytes(base: pd.DataFrame, meta: dict[str, Any], engine: Engine, fmt: str = "fits",
                 only_inspected: bool = False) -> bytes:
    """The vetted catalog file as `inspector export --db` writes it (`db.export.export_catalog`), in memory."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    rows = catalog_rows(base, decided_rows(engine))
    meta = {**meta, "database": engine.url.render_as_string(hide_password=True)}
    with tempfile.TemporaryDirectory() as d:
        paths = export_catalog(rows, Path(d) / "fnet_catalog", meta, formats=[fmt], only_inspected=only_inspected,
                               p_qso_min=meta.get("p_qso_min", MODEL_P_QSO_MIN))  # fmt: skip
        return paths[0].read_bytes()


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
        from inspector.app.overview_plots import queue_vs_leak, survey_plots

        layout = survey_plots(self.filtered())
        policy = queue_vs_leak(self.meta.get("policy"))
        if policy is not None:
            layout = (layout + policy).cols(3)
        return pn.pane.HoloViews(layout, sizing_mode="stretch_width")

    def policy_panel(self) -> pn.pane.Markdown:
        """The queue policy in a line (its plot is with the survey plots), or the note that the triage had none."""
        from inspector.app.overview_plots import policy_caption

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
            pn.widgets.Checkbox.from_param(self.param.only_inspected, label="only inspected"),
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
