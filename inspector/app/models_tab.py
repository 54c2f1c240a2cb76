"""The Models tab: model versions, a retrain job run in a separate process, promote and roll back.

    view = models_view(engine, store_path, db_url)     # a Panel object for a tab
    mv = view.models_state                              # the ModelsView behind it (buttons, poll())

The table lists every model version (`inspector.pipeline.retrain.versions_frame`): id, name, parent, created,
label count, acc@6000 before/after on the held-out decided spectra and on the mock test split, and a
marker on the current one. "Retrain" starts `inspector.pipeline.retrain_job.start_job` (fine-tune or from
scratch, N epochs, promotion never/auto/always) in a child process, so the app stays responsive; a
periodic callback (served sessions; `poll()` otherwise) shows its epoch, loss, validation accuracy and
state; "Cancel" asks it to stop at the end of its epoch (nothing is registered). When it is done the
table is re-read. "Promote selected" and "Rollback to selected" start `inspector models promote|rollback`
on the selected row in a child process too (`retrain_job.start_promote_job`: re-predict the store,
re-triage, then one switch; decisions kept), its step shown on the same bar and line: a promotion of a
large store takes minutes, and the page must not freeze for them. One job at a time: this tab refuses a
second, and the database's job lock refuses one started anywhere else (the job's error names the holder).
Errors are shown as messages, never raised into the page.
"""
from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn

from inspector.pipeline import retrain_job
from inspector.pipeline.promote import STEPS
from inspector.pipeline.retrain import models_dir, versions_frame

log = logging.getLogger(__name__)

POLL_MS = 1000
COLUMNS = {  # versions_frame column -> header shown
    "current": "current", "id": "id", "name": "name", "parent_id": "parent", "created_at": "created",
    "label_count": "labels", "before_held_out": "held-out before", "after_held_out": "held-out after",
    "before_mock_test": "mock test before", "after_mock_test": "mock test after",
}  # fmt: skip
FINISHED = ("done", "cancelled", "failed", "crashed")


def _msg(text: str, kind: str = "info") -> str:
    color = {"info": "#1b5e20", "error": "#b00020", "note": "#444"}[kind]
    return f"<span style='color:{color}'>{html.escape(text)}</span>"


def _fmt(v: Any, spec: str = ".4g") -> str:
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return "–"


def progress_text(p: dict[str, Any]) -> str:
    """One line: state, epoch/epochs, train loss, validation acc@6000 (and version / error when there); for a
    promotion, its step instead of the epoch."""
    if "step" in p:
        parts = [f"state: {p.get('state', '?')}", f"step {p.get('step_no', 0)}/{p.get('steps', len(STEPS))}: "
                 f"{p['step']}", f"model version {p.get('version_id', '?')}"]  # fmt: skip
        if p.get("error"):
            parts.append(f"error: {p['error']}")
        if p.get("returncode") is not None and p.get("state") == "crashed":
            parts.append(f"exit code {p['returncode']}")
        return " · ".join(parts)
    parts = [f"state: {p.get('state', '?')}", f"epoch {p.get('epoch', 0)}/{p.get('epochs', '?')}"]
    if "train_loss" in p:
        parts.append(f"loss {_fmt(p['train_loss'])}")
    if "val_acc@6000" in p:
        parts.append(f"val acc@6000 {_fmt(p['val_acc@6000'], '.1f')}%")
    if p.get("version_id") is not None:
        parts.append(f"new version {p['version_id']}" + (" (promoted)" if p.get("promoted") else ""))
    if p.get("error"):
        parts.append(f"error: {p['error']}")
    if p.get("returncode") is not None and p.get("state") == "crashed":
        parts.append(f"exit code {p['returncode']}")
    return " · ".join(parts)


class ModelsView:
    def __init__(self, engine: Any, store_path: str | Path, db_url: str, *, job_root: Path | None = None,
                 poll_ms: int = POLL_MS, device: str = "auto", extra_args: list[str] | None = None) -> None:
        self.engine = engine
        self.store = Path(store_path)
        self.db_url = db_url
        self.job_root = Path(job_root) if job_root else models_dir(db_url, self.store.parent / "models") / "jobs"
        self.poll_ms = poll_ms
        self.device = device
        self.extra_args = list(extra_args or [])
        self.job: retrain_job.RetrainJob | None = None
        self.job_kind = "retrain"  # or "Promote" / "Rollback": what self.job runs
        self._cb: Any = None

        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=list(COLUMNS.values())), disabled=True,
                                          selectable=1, show_index=False, sizing_mode="stretch_width",
                                          css_classes=["fnet-models-table"])  # fmt: skip
        self.mode = pn.widgets.Select(name="Training", options={"Fine-tune current model": "finetune",
                                                                "From scratch": "scratch"}, width=200)
        self.epochs = pn.widgets.IntInput(name="Epochs", value=3, start=1, end=200, width=90)
        self.promote_mode = pn.widgets.Select(name="Promote when done", options=["never", "auto", "always"],
                                              value="never", width=140)
        self.retrain_button = pn.widgets.Button(name="Retrain", button_type="primary", css_classes=["fnet-retrain"])
        self.cancel_button = pn.widgets.Button(name="Cancel", button_type="warning", disabled=True,
                                               css_classes=["fnet-cancel"])
        self.promote_button = pn.widgets.Button(name="Promote selected", button_type="success",
                                                css_classes=["fnet-promote"])
        self.rollback_button = pn.widgets.Button(name="Rollback to selected", css_classes=["fnet-rollback"])
        self.refresh_button = pn.widgets.Button(name="Refresh", width=90)
        self.bar = pn.indicators.Progress(value=0, max=1, width=300, bar_color="primary", visible=False)
        self.progress_line = pn.pane.HTML(_msg("No retrain job started in this session.", "note"))
        self.message = pn.pane.HTML("")

        self.retrain_button.on_click(lambda *_: self.start())
        self.cancel_button.on_click(lambda *_: self.cancel())
        self.promote_button.on_click(lambda *_: self.promote())
        self.rollback_button.on_click(lambda *_: self.rollback())
        self.refresh_button.on_click(lambda *_: self.refresh())
        self.refresh()

    # -- table ---------------------------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        df = versions_frame(self.db_url)
        if df.empty:
            return pd.DataFrame(columns=list(COLUMNS.values()))
        df = df[list(COLUMNS)].copy()
        df["current"] = df["current"].map(lambda c: "● current" if c else "")
        df["created_at"] = pd.to_datetime(df["created_at"]).dt.strftime("%Y-%m-%d %H:%M")
        df["parent_id"] = df["parent_id"].map(lambda v: "" if pd.isna(v) else str(int(v)))
        for c in list(COLUMNS)[6:]:  # accuracies: one decimal, blank where not measured (not "NaN")
            df[c] = df[c].map(lambda v: "" if v is None or pd.isna(v) else f"{float(v):.1f}")
        return df.rename(columns=COLUMNS).reset_index(drop=True)

    def refresh(self) -> None:
        try:
            self.table.value = self.frame()
        except Exception as e:  # shown, not raised
            log.exception("models table")
            self.message.object = _msg(f"Could not read the model versions: {e}", "error")

    def selected_id(self) -> int | None:
        sel = self.table.selection
        if not sel or self.table.value is None or not len(self.table.value):
            return None
        return int(self.table.value.iloc[sel[0]]["id"])

    def current_id(self) -> int | None:
        df = self.table.value
        if df is None or not len(df):
            return None
        cur = df[df["current"] != ""]
        return int(cur["id"].iloc[0]) if len(cur) else None

    # -- the job -------------------------------------------------------------------------------------------------
    def busy(self) -> bool:
        """Whether a job this tab started still runs (a retrain or a promotion)."""
        return self.job is not None and self.job.running()

    def _buttons(self, running: bool) -> None:
        self.retrain_button.disabled = self.promote_button.disabled = self.rollback_button.disabled = running
        self.cancel_button.disabled = not (running and self.job_kind == "retrain")

    def start(self) -> retrain_job.RetrainJob | None:
        if self.busy():
            what = "A retrain job" if self.job_kind == "retrain" else f"A {self.job_kind.lower()}"
            self.message.object = _msg(f"{what} is already running; cancel it or wait.", "error")
            return None
        try:
            job_dir = self.job_root / datetime.now(UTC).strftime("job-%Y%m%dT%H%M%S%f")
            self.job = retrain_job.start_job(self.store, self.db_url, job_dir, epochs=int(self.epochs.value),
                                             promote=self.promote_mode.value, device=self.device,
                                             from_scratch=self.mode.value == "scratch",
                                             extra_args=self.extra_args)  # fmt: skip
        except Exception as e:
            log.exception("retrain start")
            self.message.object = _msg(f"Could not start the retrain job: {e}", "error")
            return None
        self.job_kind = "retrain"
        self.message.object = _msg(f"Retrain job started ({job_dir.name}).")
        self._buttons(True)
        self.bar.visible, self.bar.max, self.bar.value = True, int(self.epochs.value), 0
        self.progress_line.object = _msg("state: starting", "note")
        self._start_polling()
        return self.job

    def _start_polling(self) -> None:
        if self._cb is not None or pn.state.curdoc is None or pn.state.curdoc.session_context is None:
            return  # no served session (tests call poll() themselves)
        try:
            self._cb = pn.state.add_periodic_callback(self.poll, period=self.poll_ms)
        except Exception:
            log.exception("periodic callback")

    def _stop_polling(self) -> None:
        if self._cb is not None:
            try:
                self._cb.stop()
            except Exception:
                log.debug("stopping the periodic callback", exc_info=True)
            self._cb = None

    def poll(self) -> dict[str, Any] | None:
        """Read the job's progress into the line and bar; at its end re-enable the buttons and re-read the table."""
        if self.job is None:
            return None
        try:
            p = self.job.progress()
            self.progress_line.object = _msg(progress_text(p), "error" if p.get("state") in ("failed", "crashed")
                                             else "note")  # fmt: skip
            if self.job_kind == "retrain":
                self.bar.max = max(int(p.get("epochs") or self.bar.max or 1), 1)
                self.bar.value = min(int(p.get("epoch") or 0), self.bar.max)
            else:
                self.bar.max = max(int(p.get("steps") or len(STEPS)), 1)
                self.bar.value = min(int(p.get("step_no") or 0), self.bar.max)
            if p.get("state") in FINISHED and not self.job.running():
                self._stop_polling()
                self._buttons(False)
                self.refresh()
                self.message.object = (self._retrain_ended(p) if self.job_kind == "retrain"
                                       else self._switch_ended(p))  # fmt: skip
            return p
        except Exception as e:
            log.exception("job poll")
            self.message.object = _msg(f"Could not read the job's progress: {e}", "error")
            return None

    def _retrain_ended(self, p: dict[str, Any]) -> str:
        state = p["state"]
        if state == "done":
            return _msg(f"Retrain done: model version {p.get('version_id')}"
                        + (" is now current." if p.get("promoted") else
                           " registered (select it and Promote to make it current)."))  # fmt: skip
        if state == "cancelled":
            return _msg("Retrain cancelled: nothing registered, the current model is unchanged.")
        tail = "\n".join(self.job.log().strip().splitlines()[-3:]) if self.job else ""
        return _msg(f"Retrain {state}; the current model is unchanged. {tail}", "error")

    def _switch_ended(self, p: dict[str, Any]) -> str:
        what, vid = self.job_kind, p.get("version_id")
        if p["state"] == "done":
            return _msg(f"{what}: model version {vid} is current; {p.get('predictions', '?')} predictions and "
                        f"{p.get('flags', '?')} flags reloaded (decisions kept).")  # fmt: skip
        if p["state"] == "failed":
            return _msg(f"{what} of version {vid} failed: {p.get('error', '?')} The current model is unchanged.",
                        "error")  # fmt: skip
        return _msg(f"{what} of version {vid} {p['state']} (exit code {p.get('returncode')}): the switch is one "
                    "transaction, so the table shows one current model with all its predictions.", "error")

    def cancel(self) -> None:
        if self.job is None or not self.job.running() or self.job_kind != "retrain":
            self.message.object = _msg("No retrain job is running.", "error")
            return
        try:
            self.job.cancel()
            self.cancel_button.disabled = True
            self.message.object = _msg("Cancel requested: the job stops at the end of its epoch.")
        except Exception as e:
            log.exception("retrain cancel")
            self.message.object = _msg(f"Could not cancel: {e}", "error")

    # -- promote / rollback ----------------------------------------------------------------------------------------
    def _make_current(self, what: str) -> retrain_job.RetrainJob | None:
        """Start `inspector models promote|rollback` on the selected version in a child process."""
        vid = self.selected_id()
        if vid is None:
            self.message.object = _msg(f"Select a model version in the table to {what.lower()}.", "error")
            return None
        if self.busy():
            self.message.object = _msg(f"A {'retrain' if self.job_kind == 'retrain' else self.job_kind.lower()} "
                                       "job is already running; wait for it.", "error")  # fmt: skip
            return None
        try:
            job_dir = self.job_root / datetime.now(UTC).strftime(f"{what.lower()}-%Y%m%dT%H%M%S%f")
            self.job = retrain_job.start_promote_job(self.store, self.db_url, job_dir, vid,
                                                     rollback=what == "Rollback")  # fmt: skip
        except Exception as e:
            log.exception("%s", what)
            self.message.object = _msg(f"{what} of version {vid} failed: {e}", "error")
            return None
        self.job_kind = what
        self._buttons(True)
        self.bar.visible, self.bar.max, self.bar.value = True, len(STEPS), 0
        self.progress_line.object = _msg("state: starting", "note")
        self.message.object = _msg(f"{what} of model version {vid} started: re-predicting and re-triaging; the "
                                   "current model stays until the switch at the end.")  # fmt: skip
        self._start_polling()
        return self.job

    def promote(self) -> retrain_job.RetrainJob | None:
        return self._make_current("Promote")

    def rollback(self) -> retrain_job.RetrainJob | None:
        return self._make_current("Rollback")

    def panel(self) -> pn.viewable.Viewable:
        col = pn.Column(
            pn.pane.Markdown("## Model versions"),
            pn.pane.Markdown("acc@6000 (%) on the held-out decided spectra and the mock test split, before "
                             "(current model at the time) and after (this version)."),
            self.table,
            pn.Row(self.promote_button, self.rollback_button, self.refresh_button),
            pn.pane.Markdown("## Retrain"),
            pn.Row(self.mode, self.epochs, self.promote_mode),
            pn.Row(self.retrain_button, self.cancel_button),
            self.bar, self.progress_line, self.message,
            sizing_mode="stretch_width",
        )  # fmt: skip
        col.models_state = self
        return col


def models_view(engine: Any, store_path: str | Path, db_url: str, **kw: Any) -> pn.viewable.Viewable:
    """The Models tab (a Panel object carrying `.models_state`, the ModelsView)."""
    return ModelsView(engine, store_path, db_url, **kw).panel()
