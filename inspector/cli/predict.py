"""The `inspector predict` subcommand: FNet redshifts and classes for every spectrum of a store.

The work is `inspector.pipeline.predict.write_predictions`; this module parses, calls it and prints.
"""
from __future__ import annotations

from pathlib import Path

import typer

from inspector.cli import app
from inspector.pipeline.predict import write_predictions
from inspector.store.files import sidecar_path


@app.command("predict")
def predict_command(
    store: Path = typer.Option(..., "--store", help="Spectrum store directory."),
    model: Path = typer.Option(..., "--model", help="A model written by `inspector train` (or its checkpoint)."),
    out: Path | None = typer.Option(None, "--out", help="Parquet file (default STORE/predictions/<model-stem>.parquet)."),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    mc_samples: int | None = typer.Option(
        None, "--mc-samples", help="Dropout passes for the uncertainty (default 20 if the model has dropout, else 0)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    threads: int | None = typer.Option(None, "--threads", min=1,
                                        help="torch CPU threads (here, and per task on the Dask workers)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    template: bool = typer.Option(
        True, "--template/--no-template",
        help="Also store the template-fit redshift Z_TPL of every spectrum (fitted once per store, then reused).",
    ),
    template_processes: int | None = typer.Option(None, "--template-processes", min=1,
                                                  help="Processes for the template fit (default: the CPU count, <= 8)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline",
                                  help="Where the store has no catalog Z_QN, also run the QuasarNET-style baseline "
                                       "(its Z_QN stands in for DR16Q's in triage)."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address (tcp://host:8786): FNet, the template fit and the baseline "
        "run on the cluster's workers, which open the store and the model at the same paths (a shared filesystem)."
    ),
    scheduler_timeout: float = typer.Option(10.0, "--scheduler-timeout", help="Seconds to wait for the scheduler."),
    chunk_rows: int = typer.Option(4096, "--chunk-rows", min=1, help="Spectra per Dask task (with --scheduler)."),
) -> None:
    """Predict z, its uncertainty, alternative redshifts and the class for every spectrum in the store.

    Streams over the store in batches (memory does not grow with its size).
    Writes one row per stored spectrum (row, object_id, z_fnet, z_fnet_err,
    p_fnet, z_alt1..3, p_alt1..3, fnet_class, p_qso, p_cls_qso..p_cls_bad (null
    for a model without a class head), model_sha1, and the template fit's z_tpl,
    z_tpl_err, tpl_dchi2, ...) and a JSON sidecar beside it with the model's
    provenance (training data hash, git revision, config, metrics).
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from inspector.cluster import client_for

    try:
        with client_for(scheduler, scheduler_timeout) as client:
            side = write_predictions(store, model, out, batch_size, mc_samples, device, progress, template,
                                     template_processes, baseline, scheduler=client, chunk_rows=chunk_rows,
                                     threads=threads)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    n, s = side["n_spectra"], side["predict_seconds"]
    typer.echo(
        f"{n} spectra in {s:.1f} s ({n / max(s, 1e-9):.0f} /s) on {side['device']}; "
        f"uncertainty: {side['uncertainty']['method']}; classes: "
        f"{', '.join(side['classes']) if side['classes'] else 'none (the model has no class head)'}\n"
        f"predictions: {side['predictions']}\nprovenance: {sidecar_path(Path(side['predictions']))}"
        + (f"\nbaseline Z_QN (no catalog Z_QN in this store): {side['baseline']['path']}" if side.get("baseline") else "")
    )
