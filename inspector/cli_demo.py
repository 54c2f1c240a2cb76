"""The `inspector demo` subcommand: everything the README's first command promises, in order."""
from __future__ import annotations

from pathlib import Path

import typer

from inspector.cli import app


@app.command("demo")
def demo(
    workdir: Path = typer.Option(Path("demo"), "--dir", help="Where the demo survey, store and database live."),
    n: int = typer.Option(1000, "--n", min=10, help="Number of mock spectra."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Make a mock survey and ingest it into a spectrum store (reused when already there)."""
    from inspector.ingest import format_summary, ingest
    from inspector.mock import make_survey
    from inspector.mock.survey import CATALOG_NAME

    survey = workdir / "survey"
    if not (survey / CATALOG_NAME).exists():
        typer.echo(f"making a {n}-spectrum mock survey in {survey} ...")
        make_survey(survey, n, seed=seed)
    report = ingest([str(survey)], workdir / "store")
    typer.echo(format_summary(report))
    typer.echo(f"spectrum store: {workdir / 'store'}")
