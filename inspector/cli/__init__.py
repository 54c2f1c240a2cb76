"""The `inspector` command line: one subcommand per step of the data flow, one module each in this package.

Every module here parses its options, calls one function of the pipeline (`inspector.pipeline`,
`inspector.risk`, `inspector.ingest`, ...) and prints; nothing outside this package imports it
(`tests/test_layers.py` holds that).

The subcommands import what their work needs inside the command, not at module top: every module here
is imported to build `inspector --help`, and hoisting those imports pulls torch and panel into it
(README, 'Where things live'; `python bench/startup.py`).
"""
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
    # One module per subcommand in this package; each parses, calls a pipeline function and prints.
    from inspector.cli import (  # noqa: F401
        baseline,
        demo,
        evaluate,
        export,
        import_vi,
        ingest,
        mock,
        predict,
        retrain,
        risk,
        serve,
        shipped_model,
        train,
        triage,
    )


_register()
