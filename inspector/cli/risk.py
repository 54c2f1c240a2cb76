"""The `inspector risk` subcommands: learn the calibrated risk model on mock surveys, check its calibration."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from inspector.cli import app

risk_app = typer.Typer(
    help="The calibrated risk model: P(the automatic z or class is wrong) per spectrum, learned on mock surveys.",
    no_args_is_help=True,
)
app.add_typer(risk_app, name="risk")


@risk_app.command("fit")
def fit_command(
    store: list[Path] = typer.Option(..., "--store", help="Mock survey store with the truth (repeatable)."),
    predictions: list[Path] = typer.Option(
        ..., "--predictions", help="Its prediction run, one per --store, all from the FNet the risk model describes."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Risk model file (default: beside the FNet model, <model>.risk.joblib)."
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fit the risk model on mock surveys whose truth is known; never on the spectra it will judge."""
    from inspector.risk.learner import risk_path_for
    from inspector.risk.stores import fit_on_stores
    from inspector.store.files import read_sidecar, resolve_predictions

    if len(store) != len(predictions):
        typer.echo(f"error: {len(store)} --store but {len(predictions)} --predictions: give one run per store", err=True)
        raise typer.Exit(2)
    pairs = [(s, resolve_predictions(s, p)) for s, p in zip(store, predictions, strict=True)]
    if out is None:
        model_path = ((read_sidecar(pairs[0][1]) or {}).get("model") or {}).get("path")
        if not model_path:
            typer.echo("error: the predictions' sidecar names no model: give --out", err=True)
            raise typer.Exit(2)
        out = risk_path_for(model_path)
    t0 = time.perf_counter()
    try:
        model = fit_on_stores(pairs, out, seed=seed)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    m = model.meta
    typer.echo(f"risk model for FNet {str(m['fnet_sha1'])[:12]}: {m['n_spectra']} spectra, {m['n_wrong']} wrong "
               f"answers; fitted in {time.perf_counter() - t0:.0f} s; wrote {out}")


@risk_app.command("reliability")
def reliability_command(
    store: Path = typer.Option(..., "--store", help="A store whose truth is known (a mock survey)."),
    predictions: Path = typer.Option(..., "--predictions", help="Its prediction run."),
    risk: Path | None = typer.Option(None, "--risk", help="Risk model (default: the one beside the FNet model)."),
) -> None:
    """Predicted against observed error rate, per bin of risk, on a survey the risk model never saw."""
    from inspector.risk.report import reliability_report

    try:
        typer.echo(reliability_report(store, predictions, risk))
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
