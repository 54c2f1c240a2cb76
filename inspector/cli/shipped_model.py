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
    n: int | None = typer.Option(None, "--n", min=100, help="Spectra in the training mock (default: the recipe's)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs on the quasars (default: the recipe's)."),
    class_epochs: int | None = typer.Option(None, "--class-epochs", min=1, help="Epochs with the class head."),
    non_quasar_z_weight: float | None = typer.Option(
        None, "--non-quasar-z-weight", min=0.0,
        help="Weight of the stars' and galaxies' redshift loss in the class stage (0: quasars only).",
    ),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch threads (default: the recipe's)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Make the training mock, ingest it, train FNet on its quasars, then with its class head on everything;
    rerun the same command to resume. With no options it rebuilds the shipped model."""
    from dataclasses import replace

    from inspector.pipeline.shipped_model import Recipe, build

    given = {
        "n": n, "epochs": epochs, "class_epochs": class_epochs, "threads": threads,
        "non_quasar_z_weight": non_quasar_z_weight,
    }  # fmt: skip
    recipe = replace(Recipe(), **{k: v for k, v in given.items() if v is not None})
    try:
        path = build(workdir, out, recipe, progress=progress, echo=typer.echo)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"model: {path}")
