"""The `inspector baseline` subcommands: train the QuasarNET-style line finder on a store, predict with it."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from inspector.cli import app
from inspector.pipeline.baseline import fingerprint
from inspector.store.files import baseline_path

baseline_app = typer.Typer(
    help="QuasarNET-style baseline (443-bin line finder): train on a spectrum store, predict Z_QN for it.",
    no_args_is_help=True,
)
app.add_typer(baseline_app, name="baseline")



def _labels(store):
    import numpy as np

    idx = store.index
    z = idx["z"].astype("float64").to_numpy(na_value=np.nan) if "z" in idx else np.full(len(idx), np.nan)
    is_qso = idx["is_qso"].astype("boolean").fillna(False).to_numpy(dtype=bool) if "is_qso" in idx else None
    bal = None
    if "BAL_PROB" in idx:  # DR16Q / mock: 1 BAL, 0 not, -1 not measured
        bal = idx["BAL_PROB"].astype("float64").to_numpy(na_value=np.nan)
    return z, is_qso, bal


def _splits(n: int, usable, val_fraction: float, test_fraction: float, seed: int, split_from: Path | None, index):
    """(train, val, test) store rows: the `split` column of a predictions file, or our own seeded split of
    `usable`, grouped by astronomical object like `inspector train` (so no object is in two splits)."""
    import numpy as np
    import pandas as pd

    from model.data import split_rows

    if split_from is not None:
        pred = pd.read_parquet(split_from, columns=None)
        if not {"row", "split"} <= set(pred.columns):
            raise ValueError(f"{split_from}: needs 'row' and 'split' columns")
        if "object_id" in pred.columns:
            rows = pred["row"].to_numpy(np.int64)
            if rows.size and (rows.max() >= n or np.any(
                    index["object_id"].astype(str).to_numpy()[rows] != pred["object_id"].astype(str).to_numpy())):
                raise ValueError(f"{split_from} was made on another store (object ids differ)")
        lab = pd.Series("test", index=np.arange(n), dtype=object)
        lab[pred["row"].to_numpy(np.int64)] = pred["split"].astype(str).to_numpy()
        lab = lab.to_numpy()
        use = np.zeros(n, bool)
        use[usable] = True
        return tuple(np.flatnonzero(use & (lab == s)) for s in ("train", "val", "test"))
    from inspector.training_set import object_groups  # repeat epochs of one object stay on one side

    groups = object_groups(index)
    rest, test = (split_rows(usable, test_fraction, seed=seed, groups=groups[usable])
                  if test_fraction > 0 else (usable, usable[:0]))
    frac = val_fraction / (1.0 - test_fraction)
    train, val = (split_rows(rest, frac, seed=seed + 1, groups=groups[rest])
                  if val_fraction > 0 else (rest, rest[:0]))
    return train, val, test


@baseline_app.command("train")
def train_command(
    store: Path = typer.Option(..., "--store", help="Spectrum store directory (from `inspector ingest`)."),
    out: Path = typer.Option(..., "--out", help="Checkpoint to write (e.g. qn.pt)."),
    epochs: int = typer.Option(10, "--epochs", min=1),
    seed: int = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(256, "--batch-size", min=2, help="QuasarNET used 256."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate (Keras default, as QuasarNET)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", min=0.0, max=0.5, help="Scored every epoch."),
    test_fraction: float = typer.Option(
        0.1, "--test-fraction", min=0.0, max=0.5, help="Held out entirely; `predict` marks these rows split=test."
    ),
    split_from: Path | None = typer.Option(
        None, "--split-from",
        help="A predictions parquet with row and split (train/val/test) columns, e.g. FNet's on the same store: "
        "use its split, so both models are scored on the same unseen spectra.",
    ),
    threads: int | None = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train the baseline on the labelled spectra of a store (z and is_qso from its index)."""
    import numpy as np
    import torch

    from inspector.store import open_store
    from model.metrics import format_table
    from model.quasarnet_train import save_quasarnet, train_quasarnet

    st = open_store(store)
    z, is_qso, bal = _labels(st)
    if is_qso is None or len(st) == 0:
        typer.echo(f"error: {store} has no labelled spectra (is_qso / z columns)", err=True)
        raise typer.Exit(2)
    usable = np.flatnonzero(~(is_qso & ~np.isfinite(z)))
    try:
        tr, va, te = _splits(len(st), usable, val_fraction, test_fraction, seed, split_from, st.index)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"training on {tr.size} spectra ({int(is_qso[tr].sum())} quasars), validating on {va.size}, "
               f"holding out {te.size}; {epochs} epochs")
    t0 = time.perf_counter()
    model, hist = train_quasarnet(
        st.flux, st.ivar, z, is_qso, tr, va if va.size else None, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        bal=bal, num_threads=threads, progress=progress,
    )
    secs = time.perf_counter() - t0
    last = hist[-1]
    metrics = {k: v for k, v in last.items() if k.startswith("val_")}
    save_quasarnet(out, model, metrics=metrics, history=hist, extra={
        "store": str(Path(store).resolve()), "n_train": int(tr.size), "n_val": int(va.size), "n_test": int(te.size),
        "store_rows": len(st), "store_fingerprint": fingerprint(st.index["object_id"]),
        "train_rows": torch.from_numpy(tr.astype(np.int64)), "val_rows": torch.from_numpy(va.astype(np.int64)),
        "split_from": str(split_from) if split_from else None, "seed": seed, "epochs": epochs, "batch_size": batch_size, "lr": lr, "train_seconds": secs,
        "train_spectra_per_s": epochs * tr.size / secs if secs > 0 else None,
    })
    if "val_acc@6000" in last:
        import pandas as pd

        cols = ("acc@6000", "acc@12000", "acc@30000", "median_abs_dv")
        tab = pd.DataFrame([[int(last["val_n_qso"]), *(last[f"val_{c}"] for c in cols)]],
                           columns=["n", *cols], index=pd.Index(["val quasars"], name="group"))
        typer.echo(format_table(tab))
        typer.echo(f"failures (Z_QN = -1) among validation quasars: {100 * last['val_failed_frac']:.1f}%")
    if "val_other_rejected_frac" in last:
        typer.echo(f"validation non-quasars rejected: {100 * last['val_other_rejected_frac']:.1f}%")
    typer.echo(f"trained in {secs:.0f} s; wrote {out}")


@baseline_app.command("predict")
def predict_command(
    store: Path = typer.Option(..., "--store", help="Spectrum store directory."),
    model_path: Path = typer.Option(..., "--model", help="Checkpoint from `inspector baseline train`."),
    out: Path | None = typer.Option(None, "--out", help=f"Output parquet (default {baseline_path('STORE')})."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    threads: int | None = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address (tcp://host:8786): predict on the cluster's workers "
        "(the store and the model at the same paths there)."
    ),
    scheduler_timeout: float = typer.Option(10.0, "--scheduler-timeout", help="Seconds to wait for the scheduler."),
) -> None:
    """Z_QN for every spectrum of a store, streamed in batches to a parquet file.

    Columns: row, object_id, z_qn (-1 = failure), z_qn_conf, z_qn_line, is_qso_qn,
    qn_failed, bal_prob, per line (lya civ ciii mgii hb ha) qn_z_<line> and qn_conf_<line>, and, when the
    model was trained on this store, split (train, val, or test = never seen in training).
    """
    import torch

    from inspector.cluster import client_for
    from inspector.pipeline.baseline import write_baseline_predictions

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with client_for(scheduler, scheduler_timeout) as client:
            r = write_baseline_predictions(store, model_path, out, batch_size=batch_size, progress=progress,
                                           scheduler=client, threads=threads)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not r["split"]:
        typer.echo("note: the model was not trained on this store (or it changed): no split column written")
    rate = f", {r['n'] / r['seconds']:.0f} spectra/s" if r["seconds"] > 0 and r["n"] else ""
    typer.echo(f"{r['n']} spectra, {r['n_failed']} failures (Z_QN = -1){rate}; wrote {r['path']}")
