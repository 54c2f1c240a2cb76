"""A triage run: the rules applied to a prediction run, written beside the store, and loaded into the
inspection database.

    flags, path, meta = run_triage(store, predictions)          # STORE/triage/<predictions-stem>.parquet
    load_into_db(url, store, predictions, flags, meta)          # spectra, model version, predictions, flags
    staged = stage_into_db(...); switch_into_db(staged, lock)   # the same in two phases (a promotion's)

The flags parquet has one row per flagged spectrum, highest priority first (`inspector.triage.apply_rules`),
with the thresholds, weights, z range and counts in its Parquet metadata (key `fnet_inspector.triage`) and
in a JSON sidecar beside it. Loading migrates the database to head and loads the store's spectra (upsert),
the model version, its predictions (with the template fit and FNet's class where the run has them); then,
in one transaction, makes the version current and replaces the flags, one row per spectrum and rule, each
carrying the spectrum's priority (`db.promotion.switch_model`; decisions are kept).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from db.engine import make_engine, session_scope, settle_after_load, upgrade
from db.jobs import Lock
from db.load import (
    add_model_version,
    load_predictions,
    load_spectra,
)
from db.promotion import switch_model
from inspector.estimates import check_rows, estimates_frame, read_baseline
from inspector.risk.learner import RiskModelMismatch
from inspector.risk.policy import DEFAULT_MAX_LEAK, Policy, apply_policy, policy_summary
from inspector.risk.report import risk_model_for
from inspector.risk.stores import model_sha1
from inspector.store import open_store
from inspector.store.files import (
    atomic_path,
    read_sidecar,
    resolve_predictions,
    scores_path,
    sidecar_path,
    triage_path,
    write_json,
)
from inspector.triage import apply_rules, summary, training_z_range

META_KEY = b"fnet_inspector.triage"


def run_triage(
    store: Path,
    predictions: Path,
    thresholds: dict[str, Any] | None = None,
    weights: dict[str, float] | None = None,
    out: Path | None = None,
    policy=None,
    risk: Path | None = None,
):
    """Apply the rules, and the queue policy if one is given (`inspector.risk.policy.Policy`, with the risk
    model beside the FNet model or `risk`); write the flags parquet and its sidecar.
    Returns (flags DataFrame, out path, meta)."""
    t0 = time.perf_counter()
    st = open_store(store)
    pred_path = resolve_predictions(st.path, predictions)
    pred = pd.read_parquet(pred_path)
    side = read_sidecar(pred_path)
    z_range = training_z_range(side)
    t1 = time.perf_counter()
    frame = estimates_frame(st.index, pred, read_baseline(st.path))
    policy_meta, priority = None, None
    if policy is not None:
        frame, priority, policy_meta = score_and_queue(frame, pred_path, pred, policy, risk)
    flags = apply_rules(st.index, pred, thresholds, weights=weights, z_range=z_range, frame=frame,
                        policy_priority=priority)
    t2 = time.perf_counter()
    out = Path(out) if out is not None else triage_path(st.path, pred_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    shas = pred["model_sha1"].dropna().unique().tolist() if "model_sha1" in pred.columns else []
    meta: dict[str, Any] = {
        **flags.attrs["triage"],
        "store": str(st.path.resolve()),
        "predictions": str(Path(pred_path).resolve()),
        "model_sha1": shas[0] if len(shas) == 1 else shas,
        "model_path": ((side or {}).get("model") or {}).get("path"),
        "z_range_source": "predictions sidecar" if z_range is not None else None,
        "triaged_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": {"read": t1 - t0, "rules": t2 - t1},
        "policy": policy_meta,
        "summary": json.loads(summary(flags).reset_index().to_json(orient="records")),
    }
    if policy is not None:
        write_scores(frame, scores_path(out))
    else:
        scores_path(out).unlink(missing_ok=True)  # a rules-only triage leaves no stale scores behind
    table = pa.Table.from_pandas(flags, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    write_json(sidecar_path(out), meta)
    return flags, out, meta


def choose_policy(max_leak: float | None, budget: int | None, rules_only: bool, store: Path, predictions: Path,
                  risk: Path | None = None):
    """(Policy or None, a note to print): what the user asked for; with nothing asked, the default leak
    target where the model has a risk model that matches the run, else the rules alone (and why)."""
    if rules_only:
        if max_leak is not None or budget is not None:
            raise ValueError("--rules-only takes no --max-leak / --budget")
        return None, None
    if max_leak is not None or budget is not None:
        return Policy(max_leak=max_leak, budget=budget), None
    pred_path = resolve_predictions(Path(store), Path(predictions))
    try:
        risk_model_for(pred_path, model_sha1(pd.read_parquet(pred_path, columns=["model_sha1"]), str(pred_path)), risk)
    except (FileNotFoundError, RiskModelMismatch, ValueError, KeyError) as exc:
        return None, f"note: no risk model for this run ({exc}); queueing by the rules alone"
    return Policy(max_leak=DEFAULT_MAX_LEAK), None


def format_policy(p: dict[str, Any]) -> str:
    """The policy's outcome in a survey scientist's words."""
    n = max(int(p["n_spectra"]), 1)
    return (
        f"queue policy: {p['policy']}\n"
        f"  auto-accepted {p['n_accepted']} ({100 * p['n_accepted'] / n:.1f} %), expected wrong among them "
        f"{p['expected_wrong_accepted']:.1f} (leak {100 * p['expected_leak']:.2f} %)\n"
        f"  to people {p['n_queued']} ({100 * p['n_queued'] / n:.1f} %); no signal, own bucket {p['n_no_signal']} "
        f"({100 * p['n_no_signal'] / n:.1f} %)\n"
        f"  catalog z from: " + ", ".join(f"{k} {v}" for k, v in (p.get("z_best_sources") or {}).items())
    )


def score_and_queue(frame, pred_path: Path, pred, policy, risk: Path | None):
    """The risk model's scores added to the frame (risk, z_best, z_best_source, policy_queue,
    no_signal_bucket) and the policy's priorities (NaN where accepted), with the policy's summary."""
    model = risk_model_for(pred_path, model_sha1(pred, str(pred_path)), risk)
    scored = model.score(frame)
    frame = frame.copy()
    for c in ("risk", "z_best", "z_best_source"):
        frame[c] = scored[c].to_numpy()
    r = frame["risk"].to_numpy(np.float64)
    decision = apply_policy(r, frame["sn"].to_numpy(np.float64), frame["tpl_dchi2"].to_numpy(np.float64), policy)
    frame["policy_queue"] = decision["queued"].to_numpy()
    frame["no_signal_bucket"] = decision["no_signal"].to_numpy()
    frame["accepted"] = decision["accepted"].to_numpy()
    priority = np.where(decision["accepted"].to_numpy(), np.nan, decision["priority"].to_numpy())
    frame["risk_drivers"] = explain_head(model, frame, priority)
    meta = policy_summary(r, decision, policy)
    meta["risk_model"] = {k: model.meta.get(k) for k in ("fnet_sha1", "trained_on", "n_spectra", "sklearn")}
    meta["z_best_sources"] = {str(k): int(v) for k, v in frame["z_best_source"].value_counts().items()}
    return frame, priority, meta


SCORE_COLUMNS = ("row", "object_id", "risk", "z_best", "z_best_source", "accepted", "policy_queue",
                 "no_signal_bucket", "risk_drivers")  # fmt: skip
EXPLAIN_MAX = 5000  # queued spectra, from the head, whose risk drivers the triage works out (the app's next hours)


def explain_head(model, frame, priority) -> list[str]:
    """Per spectrum, a JSON list of [feature, value, risk it adds] for the head of the queue; "" elsewhere."""
    out = [""] * len(frame)
    queued = np.flatnonzero(np.isfinite(priority))
    head = queued[np.argsort(-priority[queued], kind="stable")[:EXPLAIN_MAX]]
    for start in range(0, head.size, 500):
        rows = head[start:start + 500]
        for i, drivers in zip(rows, model.explain(frame.iloc[rows]), strict=True):
            out[i] = json.dumps([[name, round(v, 4), round(d, 4)] for name, v, d in drivers])
    return out


def write_scores(frame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame[list(SCORE_COLUMNS)].to_parquet(tmp, index=False)
    return path


def read_scores(path: Path, object_ids: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
    """A triage's scores, checked to belong to the store whose object ids (in row order) are given."""
    cols = None if columns is None else ["row", "object_id", *columns]
    scores = pd.read_parquet(path, columns=cols)
    check_rows(f"{path}: the triage scores", scores, np.asarray(object_ids).astype(str))
    return scores


def flags_long(flags, meta: dict[str, Any], model_version_id: int | None = None):
    """One row per (spectrum, rule that fired): object_id, rule, value (the rule's value column), priority
    (the spectrum's total, so the database queue orders as `apply_rules` does), model_version_id."""
    rules = meta.get("rules") or {}
    counts = flags["rules"].map(len).to_numpy()
    pos = np.repeat(np.arange(len(flags)), counts)
    rule = np.concatenate([np.asarray(list(r), dtype=object) for r in flags["rules"]]) if len(flags) else []
    value = np.full(len(pos), np.nan)
    for name, r in rules.items():
        col = r.get("value_column")
        m = np.asarray(rule == name) if len(pos) else np.zeros(0, bool)
        if col in flags.columns and m.any():
            value[m] = flags[col].to_numpy(np.float64)[pos[m]]
    return pd.DataFrame({
        "object_id": flags["object_id"].to_numpy()[pos], "rule": rule, "value": value,
        "priority": flags["priority"].to_numpy(np.float64)[pos],
        "model_version_id": np.full(len(pos), model_version_id, dtype=object),
    })  # fmt: skip


@dataclass
class Staged:
    """A triage run loaded into the database under its own model version, not yet current (`stage_into_db`)."""

    url: str
    model_version_id: int
    flags: pd.DataFrame  # flags_long: one row per spectrum and rule, naming the version
    counts: dict[str, int]


def stage_into_db(url: str, store: Path, predictions: Path, flags, meta: dict[str, Any],
                  scores: Path | None = None) -> Staged:
    """Migrate the database at `url` to head, then load the store's spectra (upsert), register the model
    version (NOT made current) and load its predictions under its id: the heavy part of a promotion,
    inert while another version is current, and redone in place by a rerun. `switch_into_db` then makes
    it current with its flags in one transaction.

    `scores`: this triage's scores parquet (`scores_path(triage output)`). Where it exists its risk, z_best,
    z_best_source and risk_drivers go in with the predictions (matched by store row), so the app can say
    how likely the automatic answer is wrong; where it is given but absent (a rules-only triage) the
    stored risk is cleared, so no risk from an earlier policy triage is shown beside these flags. None
    (the default) leaves the stored risk as it is."""
    st = open_store(store)
    pred = pd.read_parquet(predictions)
    if scores is not None:
        risk_cols = ["risk", "z_best", "z_best_source", "risk_drivers"]
        if Path(scores).exists():
            if "row" not in pred.columns:
                raise ValueError(f"{predictions}: no row column, so {scores} cannot be matched to it")
            sc = read_scores(Path(scores), st.index["object_id"].to_numpy(), risk_cols).drop(columns="object_id")
            pred = pred.drop(columns=[c for c in risk_cols if c in pred.columns])
            pred = pred.merge(sc, on="row", how="left", validate="1:1")
        else:
            pred = pred.assign(risk=float("nan"), z_best=float("nan"), z_best_source=None, risk_drivers=None)
    side = read_sidecar(predictions) or {}
    model = side.get("model") or {}
    sha = model.get("sha1") or (meta.get("model_sha1") if isinstance(meta.get("model_sha1"), str) else None)
    if not sha:
        raise ValueError(f"{predictions}: no model sha1 (sidecar or model_sha1 column): cannot register the model")
    name = Path(model["path"]).stem if model.get("path") else Path(predictions).stem
    prov = model.get("provenance") or {}
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            n_spectra = load_spectra(s, st.index)
            mv = add_model_version(
                s, name=name, sha1=sha, config=model.get("config"), data_hash=prov.get("data_hash"),
                label_count=prov.get("n_train"), metrics=model.get("metrics") or None, path=model.get("path"),
            )  # fmt: skip
            n_pred = load_predictions(s, pred, mv.id)
            mv_id = mv.id
    finally:
        engine.dispose()
    counts = {"spectra": n_spectra, "predictions": n_pred, "model_version_id": mv_id}
    return Staged(url, mv_id, flags_long(flags, meta, mv_id), counts)


def switch_into_db(staged: Staged, lock: Lock | None = None) -> dict[str, int]:
    """Make the staged version current and replace the triage flags with its own, in one transaction
    (`db.promotion.switch_model`: refused unless all its predictions are loaded, and, with `lock`, unless
    the job lock is still this job's). Returns the counts: spectra, predictions, flags, model_version_id."""
    engine = make_engine(staged.url)
    try:
        with session_scope(engine) as s:
            n_flags = switch_model(s, staged.model_version_id, staged.flags,
                                   expected_predictions=staged.counts["predictions"], lock=lock)  # fmt: skip
        settle_after_load(engine)
    finally:
        engine.dispose()
    return {**staged.counts, "flags": n_flags}


def load_into_db(url: str, store: Path, predictions: Path, flags, meta: dict[str, Any],
                 scores: Path | None = None) -> dict[str, int]:
    """`stage_into_db` then `switch_into_db`: the store's spectra, the model version, its predictions, and
    then, in one transaction, the version made current with its triage flags (replacing the previous
    triage; decisions kept). A process killed part-way leaves the previous current model with its own
    flags. Returns counts: spectra, predictions, flags, model_version_id."""
    return switch_into_db(stage_into_db(url, store, predictions, flags, meta, scores=scores))


def read_triage(path: Path):
    """A triage parquet and its metadata dict (thresholds, counts, ...)."""
    t = pq.read_table(path)
    raw = (t.schema.metadata or {}).get(META_KEY)
    return t.to_pandas(), (json.loads(raw) if raw else {})
