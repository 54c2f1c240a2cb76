"""The `inspector train` subcommand: train FNet on the quasars of a spectrum store."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer

from inspector.cli import app
from inspector.training_set import object_groups, training_rows  # noqa: F401  (old import path, kept for callers)

Z_EDGES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 7.0)
CONFIG_DEFAULTS = {
    # config name -> (lr, batch size); the paper's for the paper config, what the small one trains well with
    "paper": (2.4e-4, 128),
    "small": (1e-3, 64),
}


def checkpoint_path_for(out: Path) -> Path:
    """Where `inspector train --out OUT` keeps its resumable training checkpoint."""
    return out.with_name(out.stem + ".ckpt" + (out.suffix or ".pt"))


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
    """
    from inspector import training_set
    from inspector.store import open_store
    from model.fnet import FNet, FNetConfig, count_parameters
    from model.metrics import accuracy_table, format_table, z_bin_groups
    from model.predict import predict_store
    from model.train import save_checkpoint, train

    if config not in CONFIG_DEFAULTS:
        raise typer.BadParameter(f"--config must be one of {sorted(CONFIG_DEFAULTS)}")
    if output is not None and output not in ("bins", "regression"):
        raise typer.BadParameter("--output must be bins or regression")
    try:
        st = open_store(store)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not st.complete:
        typer.echo("warning: the store's ingest is not complete; training on the rows committed so far", err=True)
    index = st.index
    rows = training_set.training_rows(index, class_head)
    if rows.size < 2:
        typer.echo(f"error: {rows.size} labelled spectra in {store}; need at least 2", err=True)
        raise typer.Exit(2)
    groups = training_set.object_groups(index.iloc[rows])
    train_rows, val_rows = training_set.split(index, val_fraction, seed, class_head)
    if train_rows.size < 2:
        typer.echo("error: the validation split left fewer than 2 training spectra", err=True)
        raise typer.Exit(2)

    overrides = {}
    if output is not None:
        overrides["output"] = output
    if dropout is not None:
        overrides["dropout"] = dropout
    if class_head:
        overrides["n_classes"] = len(training_set.CLASSES)
    cfg = getattr(FNetConfig, config)(**overrides)
    lr0, bs0 = CONFIG_DEFAULTS[config]
    lr = lr0 if lr is None else lr
    batch_size = bs0 if batch_size is None else batch_size
    z_all, cls_all = training_set.labels(index, class_head)
    ids = index["object_id"].astype(str).to_numpy()
    ckpt = checkpoint_path_for(out)
    if ckpt.exists() and not resume:
        typer.echo(f"note: {ckpt} exists; starting afresh and overwriting it (use --resume to continue it)")
    if resume and not ckpt.exists():
        typer.echo(f"note: no training checkpoint at {ckpt}; starting afresh")

    n_params = count_parameters(FNet(cfg))
    typer.echo(
        f"training FNet ({config}, {cfg.output} head, {n_params:,} parameters) on {train_rows.size} spectra, "
        f"validating on {val_rows.size} ({len(set(groups))} objects in all); checkpoint {ckpt}"
    )
    try:
        model, history = train(
            cfg, st.flux, z_all, st.flux, z_all,
            train_rows=train_rows, val_rows=val_rows if val_rows.size else None, train_ids=ids,
            train_classes=cls_all, val_classes=cls_all,
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, schedule=schedule, balance_z=balance_z,
            device=device, num_threads=threads, progress=progress, checkpoint_path=ckpt, resume=resume,
            provenance={
                "store": str(Path(store).resolve()), "config_name": config, "store_rows": len(index),
                "class_head": class_head, "val_fraction": val_fraction,
            },
        )  # fmt: skip
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted; the last finished epoch is in {ckpt}: rerun with --resume to continue", err=True)
        raise typer.Exit(130) from None
    except (ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    metrics: dict = {}
    table_text = ""
    val_qso = training_set.quasar_rows(index, val_rows) if class_head else val_rows
    if val_qso.size:
        zp = np.concatenate([b.z for b in predict_store(model, st.flux, val_qso, batch_size=256, n_alt=0)])
        zv = z_all[val_qso]
        table = accuracy_table(zp, zv, groups=z_bin_groups(zv, Z_EDGES))
        metrics = {"validation": table.reset_index().to_dict(orient="records")}
        table_text = format_table(table)
    save_checkpoint(out, model, metrics=metrics, history=history)

    hist = pd.DataFrame(history)
    cols = [c for c in ("epoch", "lr", "train_loss", "val_loss", "val_acc@6000", "val_acc@12000", "val_acc@30000",
                        "val_median_abs_dv", "val_class_acc", "seconds") if c in hist]  # fmt: skip
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        typer.echo("\n" + hist[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if table_text:
        typer.echo(f"\nvalidation quasars ({val_qso.size} spectra), accuracy in % within |dv|:\n{table_text}")
    secs = float(model.provenance.get("train_seconds", 0.0))
    typer.echo(f"\nmodel: {out}\ntraining checkpoint: {ckpt} ({len(history)} epochs, {secs:.0f} s of training)")
