"""The `inspector triage` subcommand: apply the triage rules to a prediction run.

Prints, per rule, how many spectra it sends to people and what fraction of
the survey that is, the queue (any rule) and the overlap (flagged by >= 2
rules); writes `STORE/triage/<predictions-stem>.parquet` (one row per flagged
spectrum, highest priority first; see `inspector.triage.apply_rules`) with
the thresholds, weights, z range and counts in its Parquet metadata (key
`fnet_inspector.triage`) and in a JSON sidecar beside it.

With `--db URL` it also migrates that database to head and loads the store's
spectra (upsert), the model version (made current), its predictions and the
flags, one row per spectrum and rule, each carrying the spectrum's priority
(`db.load.load_triage_flags`, replacing the previous triage; decisions are
kept). The queue then serves the spectra in the order printed here.
"""
from __future__ import annotations

from pathlib import Path

import typer

from inspector.cli import app
from inspector.pipeline.triage import (
    choose_policy,
    format_policy,
    load_into_db,
    run_triage,
)
from inspector.store.files import scores_path


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
    max_leak: float | None = typer.Option(
        None, "--max-leak", help="Auto-accept the least risky spectra while the expected fraction of wrong answers "
        "among them stays at or below this (default 0.005 when the model has a risk model)."
    ),
    budget: int | None = typer.Option(
        None, "--budget", help="Queue the N spectra whose inspection removes the most expected errors."
    ),
    risk: Path | None = typer.Option(None, "--risk", help="Risk model (default: <model>.risk.joblib beside the model)."),
    rules_only: bool = typer.Option(
        False, "--rules-only", help="No risk model: queue every spectrum any rule sends, by the sum of rule weights."
    ),
) -> None:
    """Flag the spectra a person should inspect and rank them by priority.

    Rules (defaults; --list-rules prints them): |dv(FNet, Z_PIPE)| > 3000 km/s,
    |dv(FNet, Z_QN)| > 3000 km/s where Z_QN is a redshift, Z_QN = -1,
    |dv(FNet, Z_TPL)| > 3000 km/s, template delta chi2 < 25, FNet's class
    (p_qso < 0.5: likely not a quasar; 0.5 <= p_qso < 0.9: not sure), FNet
    uncertainty c z_err/(1+z) > 6000 km/s and p_fnet < 0.5 (where the template
    fit does not back FNet), SN_MEDIAN_ALL < 2, FNet z outside the training
    range, no FNet z; dv(FNet, Z_PCA) is off unless given a threshold.
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
        policy, note = choose_policy(max_leak, budget, rules_only, store, predictions, risk)
        if note:
            typer.echo(note)
        flags, path, meta = run_triage(store, predictions, th, wt, out, policy=policy, risk=risk)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_summary(flags))
    if meta.get("policy"):
        typer.echo(format_policy(meta["policy"]))
    s = meta["seconds"]
    typer.echo(f"rules applied in {s['rules']:.2f} s (read {s['read']:.2f} s)\nflags: {path}")
    if db is not None:
        try:
            n = load_into_db(db, store, Path(meta["predictions"]), flags, meta, scores=scores_path(path))
        except (FileNotFoundError, ValueError) as exc:  # DecisionError is a ValueError
            typer.echo(f"error: --db: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(
            f"database: {n['spectra']} spectra, {n['predictions']} predictions (model version "
            f"{n['model_version_id']}, now current), {n['flags']} flags (spectrum x rule) loaded"
        )
