"""The Overview tab's data: the survey table (the vetted catalog's rows plus what people decided), its
filters, the inspectors' rates, queue progress and the catalog export, apart from the view that shows them.

Data: the rows are the vetted catalog's, built by the same functions as `inspector export --db`
(`inspector.pipeline.catalog_rows.model_rows` for every stored spectrum with the model's z and the triage rules,
`db.export.final_decisions` + `overlay_decisions` for what people decided), plus `z_ref`: the decided
z where people decided (person / consensus), else the store's reference `z` (the truth for a mock);
NaN where a person gave no z (not a quasar, bad spectrum) or there is none.
"""
from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
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
from db.load import current_model
from db.queue import queue_stats
from db.schema import Decision, Inspector, utcnow
from db.validate import DECIDING_ACTIONS
from inspector.pipeline.catalog_rows import model_rows
from inspector.store import open_store
from inspector.store.files import prediction_runs, predictions_path
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
