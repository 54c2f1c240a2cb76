"""The `inspector demo` subcommand: everything the README's first command promises, in order."""
from __future__ import annotations

from pathlib import Path

import typer

from inspector.cli import app
from model.assets import DEMO_MODEL


@app.command("demo")
def demo(
    workdir: Path = typer.Option(Path("demo"), "--dir", help="Where the demo survey, store and predictions live."),
    n: int = typer.Option(1000, "--n", min=10, help="Number of mock spectra."),
    seed: int = typer.Option(0, "--seed"),
    model: Path = typer.Option(DEMO_MODEL, "--model", help="FNet weights to predict with (default: the shipped demo model)."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the inspection app when the data are ready."),
    port: int = typer.Option(5006, "--port", help="Port of the app."),
) -> None:
    """Make a mock survey, ingest it, predict with FNet, score it, triage it into SQLite, serve the app.

    Each step is reused when already done, so a second run goes straight on to the app.
    """
    from inspector.evaluate_store import evaluate_store
    from inspector.ingest import format_summary, ingest
    from inspector.mock import make_survey
    from inspector.mock.survey import CATALOG_NAME
    from inspector.predict_run import default_output, write_predictions
    from inspector.triage import format_summary as format_triage
    from inspector.triage_run import load_into_db, run_triage

    survey, store = workdir / "survey", workdir / "store"
    if not (survey / CATALOG_NAME).exists():
        typer.echo(f"making a {n}-spectrum mock survey in {survey} ...")
        make_survey(survey, n, seed=seed)
    report = ingest([str(survey)], store)
    typer.echo(format_summary(report))
    predictions = default_output(store, model)
    if not predictions.exists():
        typer.echo(f"predicting with {model} ...")
        write_predictions(store, model, progress=True)
    result = evaluate_store(store, predictions, split="all", out_dir=workdir / "evaluation")
    typer.echo(result.text)
    flags, _, meta = run_triage(store, predictions)
    typer.echo(format_triage(flags))
    db_file = (workdir / "fnet_inspector.sqlite").resolve()
    db_url = f"sqlite:///{db_file}"
    counts = load_into_db(db_url, store, predictions, flags, meta)
    typer.echo(
        f"\nspectrum store: {store}\npredictions: {predictions}\nevaluation: {workdir / 'evaluation'}"
        f"\ndatabase: {db_file} ({counts['spectra']} spectra, {counts['flags']} triage flags in the queue)"
    )
    if serve:
        from inspector.app.serve import serve as run_app

        typer.echo(f"\nFNet Inspector on http://localhost:{port}/  (Ctrl-C to stop)")
        run_app(store, db_url, port=port)
