"""The `inspector train` subcommand: train FNet on the labelled spectra of a spectrum store."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from inspector.cli import app
from inspector.pipeline.train import checkpoint_path_for


@app.command("train")
def train_command(
    store: Path = typer.Option(..., "--store", help="Spectrum store directory (see `inspector ingest`)."),
    out: Path = typer.Option(..., "--out", help="Where to write the trained model (e.g. model.pt)."),
    config: str = typer.Option("small", "--config", help="small (CPU-trainable, bins head) or paper (published FNet)."),
    output: str | None = typer.Option(None, "--output", help="Output head: bins or regression (default: the config's)."),
    epochs: int = typer.Option(10, "--epochs", min=1),
    batch_size: int | None = typer.Option(None, "--batch-size", min=2, help="Default: 64 (small), 128 (paper)."),
    lr: float | None = typer.Option(None, "--lr", help="Default: 1e-3 (small), 2.4e-4 (paper)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", min=0.0, max=0.9),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the training checkpoint beside --out."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu or cuda."),
    balance_z: bool = typer.Option(False, "--balance-z", help="Sample the training set flat in z (inverse n(z))."),
    schedule: str = typer.Option("auto", "--schedule", help="auto, step (paper), plateau, cosine or none."),
    dropout: float | None = typer.Option(None, "--dropout", min=0.0, max=0.9, help="Dropout in the dense head."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's)."),
    class_head: bool = typer.Option(
        True, "--class-head/--no-class-head",
        help="Also learn the class (QSO, BAL, STAR, GALAXY, BAD) from every labelled spectrum, not only quasars.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train FNet on the store's labelled spectra, validating on a split grouped by object.

    With the class head (default) every spectrum with a class trains it, and every one with a
    redshift trains the redshift head (stars near 0, galaxies theirs); without it only the
    quasars (is_qso, finite z) are used, as the published FNet was trained.

    A training checkpoint is written after every epoch next to --out
    (model.pt -> model.ckpt.pt); after an interruption, the same command with
    --resume continues where it stopped and ends with the same weights.

    Data-parallel on N GPUs or CPU workers: `torchrun --nproc_per_node N -m inspector.cli train ...`;
    --batch-size is the global batch, and rank 0 alone prints and writes.
    """
    from inspector.pipeline.train import TrainingSetError, train_on_store
    from model import distributed

    if output is not None and output not in ("bins", "regression"):
        raise typer.BadParameter("--output must be bins or regression")
    try:
        res = train_on_store(
            store, out, config=config, output=output, epochs=epochs, batch_size=batch_size, lr=lr,
            val_fraction=val_fraction, seed=seed, resume=resume, device=device, balance_z=balance_z,
            schedule=schedule, dropout=dropout, threads=threads, class_head=class_head, progress=progress,
            echo=typer.echo,
        )  # fmt: skip
        if not distributed.is_main():
            return
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted; the last finished epoch is in {checkpoint_path_for(out)}: rerun with --resume to continue", err=True)
        raise typer.Exit(130) from None
    except (FileNotFoundError, ValueError, RuntimeError, TrainingSetError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        distributed.teardown()

    with pd.option_context("display.width", 160, "display.max_columns", 20):
        typer.echo("\n" + res.history.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if res.validation_table:
        typer.echo(f"\nvalidation quasars ({res.n_val_quasars} spectra), accuracy in % within |dv|:\n{res.validation_table}")
    typer.echo(
        f"\nmodel: {res.out}\ntraining checkpoint: {res.checkpoint} ({len(res.history)} epochs, "
        f"{res.train_seconds:.0f} s of training)"
    )
