"""The `inspector` command line: one subcommand per step of the data flow."""
from __future__ import annotations

import typer

app = typer.Typer(
    help="FNet Inspector: ingest survey spectra, build a mock survey, predict, triage, inspect, export.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    """FNet Inspector command line."""


def _register() -> None:
    # Subcommands live beside what they drive; each module adds its own command.
    from inspector import cli_baseline, cli_demo, cli_evaluate, cli_export, cli_ingest, cli_mock, cli_predict, cli_retrain, cli_risk, cli_serve, cli_shipped_model, cli_train, cli_triage  # noqa: F401


_register()

if __name__ == "__main__":
    app()
