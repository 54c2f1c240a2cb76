"""The `inspector mock` subcommand: write a mock survey in the real SDSS formats."""
from __future__ import annotations

from pathlib import Path

import typer

from inspector.cli import app


@app.command("mock")
def mock(
    out: Path = typer.Argument(..., help="Output directory: spectra/PPPP/spec-*.fits and DR16Q_mock.fits go here."),
    n: int = typer.Option(1000, "--n", min=1, help="Number of spectra (quasars plus ~5% stars and galaxies)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same survey."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes (0: one per core)."),
    z_distribution: str = typer.Option("dr16q", "--z-dist", help="dr16q: the survey's n(z); flat: uniform to z=4.5 (for training sets)."),
    z_pca: str = typer.Option(
        "simulated", "--z-pca",
        help="Where Z_PCA comes from: simulated (truth + a DR16Q-like error model) or template "
             "(measured on each mock spectrum by the template fit; slower).",
    ),
) -> None:
    """Write a mock survey: real-format spec files plus a DR16Q-like catalog with the truth in Z_VI."""
    from inspector.mock import make_survey

    if z_distribution not in ("dr16q", "flat"):
        raise typer.BadParameter("--z-dist must be dr16q or flat")
    if z_pca not in ("simulated", "template"):
        raise typer.BadParameter("--z-pca must be simulated or template")
    cat = make_survey(out, n, seed=seed, workers=workers or None, z_distribution=z_distribution, z_pca_source=z_pca)
    typer.echo(f"wrote {n} spectra under {out / 'spectra'} and the catalog {cat}")
