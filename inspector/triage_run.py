"""A triage run: the rules applied to a prediction run, written beside the store, and loaded into the
inspection database.

    flags, path, meta = run_triage(store, predictions)          # STORE/triage/<predictions-stem>.parquet
    load_into_db(url, store, predictions, flags, meta)          # spectra, model version, predictions, flags

The flags parquet has one row per flagged spectrum, highest priority first (`inspector.triage.apply_rules`),
with the thresholds, weights, z range and counts in its Parquet metadata (key `fnet_inspector.triage`) and
in a JSON sidecar beside it. Loading migrates the database to head and loads the store's spectra (upsert),
the model version (made current), its predictions (with the template fit and FNet's class where the run has
them) and the flags, one row per spectrum and rule, each carrying the spectrum's priority
(`db.load.load_triage_flags`, replacing the previous triage; decisions are kept).
"""
from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

META_KEY = b"fnet_inspector.triage"


def resolve_predictions(store: Path, predictions: Path) -> Path:
    """A predictions path as given, else STORE/predictions/<name>(.parquet)."""
    p = Path(predictions)
    if p.exists():
        return p
    for cand in (Path(store) / "predictions" / p.name, Path(store) / "predictions" / f"{p.name}.parquet"):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"predictions {predictions} not found (nor under {Path(store) / 'predictions'})")


def default_triage_output(store: Path, predictions: Path) -> Path:
    return Path(store) / "triage" / f"{Path(predictions).stem}.parquet"


def run_triage(
    store: Path,
    predictions: Path,
    thresholds: dict[str, Any] | None = None,
    weights: dict[str, float] | None = None,
    out: Path | None = None,
):
    """Apply the rules; write the flags parquet and its sidecar. Returns (flags DataFrame, out path, meta)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from inspector.store import open_store
    from inspector.triage import apply_rules, read_sidecar, summary, training_z_range

    t0 = time.perf_counter()
    st = open_store(store)
    pred_path = resolve_predictions(st.path, predictions)
    pred = pd.read_parquet(pred_path)
    side = read_sidecar(pred_path)
    z_range = training_z_range(side)
    t1 = time.perf_counter()
    flags = apply_rules(st.index, pred, thresholds, weights=weights, z_range=z_range)
    t2 = time.perf_counter()
    out = Path(out) if out is not None else default_triage_output(st.path, pred_path)
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
        "summary": json.loads(summary(flags).reset_index().to_json(orient="records")),
    }
    table = pa.Table.from_pandas(flags, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    sc = out.with_suffix(".json")
    tmp_sc = sc.with_name(sc.name + ".tmp")
    tmp_sc.write_text(json.dumps(meta, indent=1, default=str))
    os.replace(tmp_sc, sc)
    return flags, out, meta


def flags_long(flags, meta: dict[str, Any], model_version_id: int | None = None):
    """One row per (spectrum, rule that fired): object_id, rule, value (the rule's value column), priority
    (the spectrum's total, so the database queue orders as `apply_rules` does), model_version_id."""
    import numpy as np
    import pandas as pd

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


def load_into_db(url: str, store: Path, predictions: Path, flags, meta: dict[str, Any]) -> dict[str, int]:
    """Migrate the database at `url` to head, then load the store's spectra (upsert), the model version
    (made current), its predictions and the triage flags (replacing the previous triage). Returns counts."""
    import pandas as pd

    from db.engine import make_engine, session_scope, upgrade
    from db.load import (
        add_model_version,
        load_predictions,
        load_spectra,
        load_triage_flags,
    )
    from inspector.store import open_store
    from inspector.triage import read_sidecar

    st = open_store(store)
    pred = pd.read_parquet(predictions)
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
                make_current=True,
            )  # fmt: skip
            n_pred = load_predictions(s, pred, mv.id)
            n_flags = load_triage_flags(s, flags_long(flags, meta, mv.id))
            mv_id = mv.id
    finally:
        engine.dispose()
    return {"spectra": n_spectra, "predictions": n_pred, "flags": n_flags, "model_version_id": mv_id}


def read_triage(path: Path):
    """A triage parquet and its metadata dict (thresholds, counts, ...)."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    raw = (t.schema.metadata or {}).get(META_KEY)
    return t.to_pandas(), (json.loads(raw) if raw else {})
