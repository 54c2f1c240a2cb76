"""The `inspector evaluate` subcommand: the paper's accuracy tables, Fig. 4 and the class scores.

Two modes, each in its own module: store mode (`--store DIR --predictions
P.parquet`, `inspector.pipeline.evaluate_store`) and real mode (`--real --model
fnet.pt`, `inspector.pipeline.evaluate_real`: the labelled real SDSS spectra). Both
report every redshift table by true z, by survey and by S/N, and FNet's class
(confusion matrix, quasar completeness and purity) where the model has a class
head; both print the tables and write fig4*.png and evaluation*.json to
--out-dir; --no-template leaves the template fit out.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from inspector.cli import app
from inspector.pipeline.evaluate_store import evaluate_store


# --------------------------------------------------------------------------- the command
@app.command("evaluate")
def evaluate_command(
    store: Path | None = typer.Option(None, "--store", help="Spectrum store whose quasars are scored."),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="FNet predictions parquet (row, object_id, z_fnet), e.g. STORE/predictions/fnet.parquet."
    ),
    baseline: Path | None = typer.Option(
        None, "--baseline",
        help="QuasarNET-style baseline: its predictions parquet (row, z_qn, qn_failed) with --store, its checkpoint with --real.",
    ),
    split: str = typer.Option(
        "test", "--split", help="'all', or which value of the predictions' split column to score (test, val, train)."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out-dir",
        help="Where fig4*.png and evaluation*.json go (default STORE/evaluation/<predictions stem>, or evaluation/real-<model stem>).",
    ),
    real: bool = typer.Option(
        False, "--real", help="Score --model on the labelled real SDSS spectra instead (quasars' z; every spectrum's class).",
    ),
    model: Path | None = typer.Option(None, "--model", help="FNet checkpoint (with --real)."),
    real_root: Path | None = typer.Option(None, "--real-root", help="Real data directory (default ../shared/data/real)."),
    threads: int | None = typer.Option(None, "--threads", help="torch threads for --real (default: torch's)."),
    template: bool = typer.Option(
        True, "--template/--no-template",
        help="Score the chi2 template fit (Z_TPL) too: the predictions' z_tpl column, else fitted on the store "
        "(cached) or, with --real, on the files' native pixels.",
    ),
    template_processes: int | None = typer.Option(
        None, "--template-processes", min=1, help="Processes for a template fit that must be run (default: the CPU count, <= 8).",
    ),
) -> None:
    """Print the paper's accuracy tables (|dv| < 6000/12000/30000 km/s) by z, survey and S/N, FNet's class
    scores, and save a Fig. 4 plot."""
    try:
        if real:
            if model is None:
                raise ValueError("--real needs --model fnet.pt")
            if threads:
                import torch

                torch.set_num_threads(threads)
            from inspector.pipeline.evaluate_real import evaluate_real

            ev = evaluate_real(model, baseline, out_dir, real_root, template=template, template_processes=template_processes)
        else:
            if store is None or predictions is None:
                raise ValueError("give --store and --predictions (or --real --model)")
            ev = evaluate_store(
                store, predictions, baseline, split, out_dir, template=template, template_processes=template_processes
            )
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        typer.echo(ev.text)
    for f in ev.files:
        typer.echo(f"wrote {f}")


__all__ = ["evaluate_command", "evaluate_store"]  # evaluate_store: for `inspector demo`
