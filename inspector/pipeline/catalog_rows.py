"""The vetted catalog's rows before anyone decided: the automatic z and class for every stored spectrum.

    rows, meta = model_rows(store, predictions)     # the `db.export` contract, nobody decided anything yet
    rows = overlay_decisions(rows, final_decisions(session))   # then what people decided

The automatic z is FNet's (source "model") after a rules-only triage; after a queue policy's triage
(`inspector triage --max-leak / --budget`, which writes STORE/triage/<stem>.scores.parquet) it is the
best estimate the risk model chose, with its source ("fnet", "tpl" or "pipe"), each spectrum's risk
and whether the policy auto-accepted it.

`inspector export` and the app's Overview both start from these rows, so the file one downloads in the app
is the file the command writes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from db.export import MODEL_P_QSO_MIN
from inspector.estimates import estimates_frame
from inspector.pipeline.triage import read_scores, read_triage
from inspector.store import open_store
from inspector.store.files import read_sidecar, resolve_predictions, scores_path, triage_path
from inspector.triage import RULES
from model.classes import PROB_COLUMNS


def _num(index, *names: str) -> np.ndarray:
    for c in names:
        if c in index.columns:
            return pd.to_numeric(index[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return np.full(len(index), np.nan)


def model_version_of(predictions: Path, pred, sidecar: dict[str, Any] | None) -> str:
    """'<model stem>@<sha1[:12]>' (the stem from the sidecar's model path, else the predictions' stem)."""
    sha = ((sidecar or {}).get("model") or {}).get("sha1")
    if not sha and "model_sha1" in pred.columns:
        u = pred["model_sha1"].dropna().unique()
        sha = str(u[0]) if len(u) == 1 else None
    path = ((sidecar or {}).get("model") or {}).get("path")
    stem = Path(path).stem if path else Path(predictions).stem
    return f"{stem}@{sha[:12]}" if sha else stem


def model_rows(store: Path, predictions: Path) -> tuple[Any, dict[str, Any]]:
    """Catalog rows (the `db.export` contract) with the model's z for every stored spectrum, and the meta.

    Adds plate/mjd/fiberid/targetid, z_vi, sn_median_all, the template fit and
    FNet's class (fnet_class, p_qso, p_cls_*) where the run stored them and, when
    STORE/triage/<predictions-stem>.parquet exists, the triage rules and
    priority of each flagged spectrum; the meta carries that run's thresholds
    and "p_qso_min" for `db.export.export_catalog`. Where that triage ran a
    queue policy (its meta's "policy" and the scores parquet beside it), the
    best z instead of FNet's (`apply_scores`), and the policy's summary in
    meta["policy"] (None otherwise).
    """
    st = open_store(store)
    pred_path = resolve_predictions(st.path, predictions)
    pred = pd.read_parquet(pred_path)
    side = read_sidecar(pred_path)
    frame = estimates_frame(st.index, pred)  # checks the predictions belong to this store; NaN where none
    ix = st.index
    version = model_version_of(pred_path, pred, side)
    n = len(ix)
    rows = pd.DataFrame({
        "object_id": frame["object_id"].to_numpy(),
        "ra": _num(ix, "ra", "RA"), "dec": _num(ix, "dec", "DEC"),
        "z_final": frame["z_fnet"].to_numpy(),
        "z_source": np.full(n, "model", dtype=object),
        "quality": np.full(n, np.nan, dtype=np.float32),
        "inspectors": np.full(n, "", dtype=object),
        "n_decisions": np.zeros(n, np.int32),
        "z_fnet": frame["z_fnet"].to_numpy(), "z_fnet_err": frame["z_fnet_err"].to_numpy(),
        "z_pipe": _num(ix, "Z_PIPE"), "z_qn": _num(ix, "Z_QN"), "z_pca": _num(ix, "Z_PCA"),
        "model_version": np.full(n, version, dtype=object),
    })  # fmt: skip
    for c in ("plate", "mjd", "fiberid", "targetid"):
        if c in ix.columns:
            rows[c] = ix[c].astype("Int64").to_numpy()
    rows["z_vi"] = _num(ix, "Z_VI")
    r = pred["row"].to_numpy(np.int64)
    if "z_tpl" in pred.columns and pred["z_tpl"].notna().any():  # the template fit, where the run stored it
        for c in ("z_tpl", "z_tpl_err", "tpl_dchi2"):
            v = np.full(n, np.nan)
            v[r] = pd.to_numeric(pred[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
            rows[c] = v
    if "p_qso" in pred.columns and pred["p_qso"].notna().any():  # FNet's class, where the model has a class head
        cls = np.full(n, "", dtype=object)
        cls[r] = pred["fnet_class"].fillna("").astype(str).to_numpy()
        rows["fnet_class"] = cls
        for c in ("p_qso", *PROB_COLUMNS):
            v = np.full(n, np.nan)
            v[r] = pd.to_numeric(pred[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
            rows[c] = v
    rows["sn_median_all"] = _num(ix, "SN_MEDIAN_ALL", "sn_median_all")
    meta: dict[str, Any] = {
        "model_version": version,
        "store": str(st.path.resolve()),
        "predictions": str(Path(pred_path).resolve()),
        "model": {k: ((side or {}).get("model") or {}).get(k) for k in ("path", "sha1", "label_scaling")},
        "thresholds": {},
        "triage": None,
        "policy": None,
    }
    tri = triage_path(st.path, pred_path)
    if tri.exists():
        flags, tmeta = read_triage(tri)
        if tmeta.get("policy") and scores_path(tri).exists():
            rows = apply_scores(rows, read_scores(scores_path(tri), rows["object_id"].to_numpy()))
            meta["policy"] = tmeta["policy"]
            meta["scores"] = str(scores_path(tri).resolve())
        rules = np.full(n, "", dtype=object)
        prio = np.zeros(n)
        r = flags["row"].to_numpy(np.int64)
        rules[r] = [",".join(x) for x in flags["rules"]]
        prio[r] = flags["priority"].to_numpy(np.float64)
        rows["triage_rules"] = rules
        rows["priority"] = prio
        meta["triage"] = str(tri.resolve())
        meta["thresholds"] = {k: v.get("threshold") for k, v in (tmeta.get("rules") or {}).items()}
        for k in tmeta.get("disabled") or []:
            meta["thresholds"][k] = None
    meta["p_qso_min"] = p_qso_min(meta["thresholds"] if meta["triage"] else None, policy=meta["policy"] is not None)
    return rows, meta


def apply_scores(rows, scores):
    """`rows` (one per store row, in order) with the queue policy's scores (`inspector.pipeline.triage.write_scores`):
    z_final the best z and z_source its source ("fnet" / "tpl" / "pipe"; "model" stays where no estimate
    exists at all), risk, and auto_accepted (1 / 0; -1 where the scores lack the spectrum). `scores` as
    `inspector.pipeline.triage.read_scores` gives them, checked against this store."""
    n = len(rows)
    r = scores["row"].to_numpy(np.int64)
    rows = rows.copy()
    z_best = scores["z_best"].to_numpy(np.float64, na_value=np.nan)
    src = scores["z_best_source"].fillna("").astype(str).to_numpy()
    known = np.isfinite(z_best) & (src != "")
    z, source = rows["z_final"].to_numpy(np.float64, copy=True), rows["z_source"].to_numpy(object, copy=True)
    z[r[known]], source[r[known]] = z_best[known], src[known]
    rows["z_final"], rows["z_source"] = z, source
    risk = np.full(n, np.nan)
    risk[r] = scores["risk"].to_numpy(np.float64, na_value=np.nan)
    accepted = np.full(n, -1, np.int16)
    accepted[r] = scores["accepted"].astype(bool).to_numpy().astype(np.int16)
    rows["risk"], rows["auto_accepted"] = risk, accepted
    return rows


def p_qso_min(thresholds: dict[str, Any] | None, policy: bool = False) -> float:
    """FNet's p_qso from which an undecided spectrum is a quasar in the catalog (is_qso_final): the
    threshold below which the triage sent it to people (fnet_qso_unsure; its default when no triage ran),
    so a spectrum waiting in the queue is 'not known' until someone decides it. With that rule off, or
    after a queue policy's triage (`policy`: the risk already counts FNet's doubt about the class), FNet's
    own call (`db.export.MODEL_P_QSO_MIN`)."""
    if policy:
        return MODEL_P_QSO_MIN
    if thresholds is None:
        v = next(r.threshold for r in RULES if r.name == "fnet_qso_unsure")
    else:
        v = thresholds.get("fnet_qso_unsure")
    return MODEL_P_QSO_MIN if v is None else max(float(v), MODEL_P_QSO_MIN)
