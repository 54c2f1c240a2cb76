"""The `inspector shipped-model` subcommand: rebuild the shipped FNet from nothing but this repository."""
from __future__ import annotations

from pathlib import Path

import typer

from inspector.cli import app
from model.assets import DEMO_MODEL


@app.command("shipped-model")
def shipped_model(
    workdir: Path = typer.Argument(..., help="Working directory for the training mock, its store and checkpoints."),
    out: Path = typer.Option(DEMO_MODEL, "--out", help="Where the finished model goes (default: the shipped one)."),
    n: int = typer.Option(60_000, "--n", min=100, help="Spectra in the training mock."),
    epochs: int = typer.Option(10, "--epochs", min=1),
    threads: int = typer.Option(2, "--threads", min=1),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Make the training mock, ingest it and train FNet with its class head; rerun the same command to resume."""
    from inspector.shipped_model import Recipe, build

    try:
        path = build(workdir, out, Recipe(n=n, epochs=epochs, threads=threads), progress=progress, echo=typer.echo)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"model: {path}")
