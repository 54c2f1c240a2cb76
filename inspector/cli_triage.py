"""The `inspector triage` subcommand: apply the triage rules to a prediction run.

Prints, per rule, how many spectra it sends to people and what fraction of
the survey that is, the queue (any rule) and the overlap (flagged by >= 2
rules); writes `STORE/triage/<predictions-stem>.parquet` (one row per flagged
spectrum, highest priority first; see `inspector.triage.apply_rules`) with
the thresholds, weights, z range and counts in its Parquet metadata (key
`fnet_inspector.triage`) and in a JSON sidecar beside it.
"""
from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from inspector.cli import app

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


def read_triage(path: Path):
    """A triage parquet and its metadata dict (thresholds, counts, ...)."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    raw = (t.schema.metadata or {}).get(META_KEY)
    return t.to_pandas(), (json.loads(raw) if raw else {})


@app.command("triage")
def triage_command(
    store: Path | None = typer.Option(None, "--store", help="Spectrum store directory."),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="Predictions parquet (`inspector predict`), or its name under STORE/predictions."
    ),
    threshold: list[str] | None = typer.Option(
        None, "--threshold", help="rule=value (repeatable); value 'off' disables a rule. See --list-rules."
    ),
    weight: list[str] | None = typer.Option(None, "--weight", help="rule=weight (repeatable): priority weights."),
    out: Path | None = typer.Option(
        None, "--out", help="Output parquet (default STORE/triage/<predictions-stem>.parquet)."
    ),
    db: str | None = typer.Option(
        None, "--db", help="SQLAlchemy URL: also load the flags into the inspection database."
    ),
    list_rules: bool = typer.Option(False, "--list-rules", help="Print the rule table and exit."),
) -> None:
    """Flag the spectra a person should inspect and rank them by priority.

    Rules (defaults; --list-rules prints them): |dv(FNet, Z_PIPE)| > 3000 km/s,
    |dv(FNet, Z_QN)| > 3000 km/s where Z_QN is a redshift, Z_QN = -1, FNet
    uncertainty c z_err/(1+z) > 6000 km/s, p_fnet < 0.5, SN_MEDIAN_ALL < 2,
    FNet z outside the training range, no FNet z; dv(FNet, Z_PCA) is off
    unless given a threshold.
    """
    from inspector.triage import format_summary, parse_assignments, rules_table

    if list_rules:
        typer.echo(rules_table().to_string())
        return
    if store is None or predictions is None:
        typer.echo("error: --store and --predictions are required", err=True)
        raise typer.Exit(2)
    try:
        th = parse_assignments(threshold, "--threshold")
        wt = {k: float(v) for k, v in parse_assignments(weight, "--weight").items()}
        flags, path, meta = run_triage(store, predictions, th, wt, out)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_summary(flags))
    s = meta["seconds"]
    typer.echo(f"rules applied in {s['rules']:.2f} s (read {s['read']:.2f} s)\nflags: {path}")
    if db is not None:
        # TODO(db): load the flags into the inspection database once db/load.py offers a triage-flag loader.
        typer.echo("error: --db: the db package has no triage-flag loader yet; flags written to parquet only", err=True)
        raise typer.Exit(3)
