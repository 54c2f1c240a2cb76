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
    address: str = typer.Option("127.0.0.1", "--address", help="Address to listen on: this machine only unless "
                                "told otherwise (0.0.0.0: every interface; the demo has no login)."),
    max_leak: float | None = typer.Option(None, "--max-leak", help="Queue policy: target leak rate (see `inspector triage`)."),
    budget: int | None = typer.Option(None, "--budget", help="Queue policy: the N spectra worth most a look."),
    rules_only: bool = typer.Option(False, "--rules-only", help="Queue every spectrum any triage rule sends."),
    db: str | None = typer.Option(None, "--db", help="Database URL (e.g. postgresql+psycopg://user@host/fnet; "
                                  "default: the SQLite file fnet_inspector.sqlite in --dir)."),
) -> None:
    """Make a mock survey, ingest it, predict with FNet, score it, triage it into the database, serve the app.

    Each step is reused when already done, so a second run goes straight on to the app.
    """
    from inspector.pipeline.demo import run_demo

    try:
        run = run_demo(workdir, n=n, seed=seed, model=model, echo=typer.echo, max_leak=max_leak, budget=budget,
                       rules_only=rules_only, db_url=db)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(run.summary())
    if serve:
        from inspector.app.serve import serve as run_app

        host = "localhost" if address in ("127.0.0.1", "localhost") else address
        typer.echo(f"\nFNet Inspector on http://{host}:{port}/  (Ctrl-C to stop)")
        run_app(run.store, run.db_url, port=port, address=address)
