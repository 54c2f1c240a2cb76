"""The `inspector mock` subcommand: write a mock survey in the real SDSS formats."""
from __future__ import annotations

from pathlib import Path

import typer

from inspector.cli import app


@app.command("mock")
def mock(
    out: Path = typer.Argument(..., help="Output directory: spectra/PPPP/spec-*.fits and DR16Q_mock.fits go here."),
    n: int = typer.Option(1000, "--n", min=1, help="Number of spectra (see --population for the mix)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same survey."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes (0: one per core)."),
    z_distribution: str = typer.Option("dr16q", "--z-dist", help="The quasars' n(z). dr16q: the survey's; flat: uniform to z=4.5 (for training sets); uniform:LO-HI: one z window."),
    population: str = typer.Option(
        "qso", "--population",
        help="qso: quasars plus ~5% stars and galaxies; superset: a quasar-target superset, about half quasars, "
             "the rest stars of every type, galaxies and spectra with no signal (truth in CLASS_PERSON, Z_VI, MOCK_KIND).",
    ),
    sn_distribution: str = typer.Option(
        "dr16q", "--sn-dist",
        help="The quasars' S/N. dr16q: the survey's (median ~3.5); flat: log-uniform 1-60 (for training sets).",
    ),
    z_pca: str = typer.Option(
        "simulated", "--z-pca",
        help="Where Z_PCA comes from: simulated (truth + a DR16Q-like error model) or template "
             "(measured on each mock spectrum by the template fit; slower).",
    ),
) -> None:
    """Write a mock survey: real-format spec files plus a DR16Q-like catalog with the truth in Z_VI."""
    from inspector.mock.survey import check_options, make_survey

    try:
        check_options(z_distribution, population, sn_distribution)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if z_pca not in ("simulated", "template"):
        raise typer.BadParameter("--z-pca must be simulated or template")
    cat = make_survey(out, n, seed=seed, workers=workers or None, z_distribution=z_distribution, z_pca_source=z_pca,
                    population=population, sn_distribution=sn_distribution)
    typer.echo(f"wrote {n} spectra under {out / 'spectra'} and the catalog {cat}")
