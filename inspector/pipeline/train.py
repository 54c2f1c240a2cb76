"""Train FNet on a spectrum store: the use case behind `inspector train` and the shipped-model recipe.

It owns what a training run on a store decides beyond `model.train.train`: which rows and labels
(`inspector.training_set`), the per-config learning rate and batch size, where the resumable
checkpoint lives, what provenance the model carries (so `inspector evaluate` can rebuild the held-out
split) and the validation table written into the finished model.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inspector import training_set
from inspector.store import open_store
from model import distributed
from model.evaluate import Z_EDGES
from model.metrics import accuracy_table, format_table, z_bin_groups

CONFIG_DEFAULTS = {
    # config name -> (lr, batch size); the paper's for the paper config, what the small one trains well with
    "paper": (2.4e-4, 128),
    "small": (1e-3, 64),
}
HISTORY_COLUMNS = (
    "epoch", "lr", "train_loss", "val_loss", "val_acc@6000", "val_acc@12000", "val_acc@30000", "val_median_abs_dv",
    "val_class_acc", "seconds",
)  # fmt: skip


class TrainingSetError(ValueError):
    """The store cannot give a training set (too few labelled spectra, an empty split)."""


@dataclass
class TrainResult:
    out: Path
    checkpoint: Path
    history: pd.DataFrame
    validation_table: str  # accuracy by z on the held-out quasars ("" without a validation split)
    n_val_quasars: int
    train_seconds: float


def checkpoint_path_for(out: Path) -> Path:
    """Where a run writing OUT keeps its resumable training checkpoint (model.pt -> model.ckpt.pt)."""
    return out.with_name(out.stem + ".ckpt" + (out.suffix or ".pt"))


def train_on_store(
    store: Path,
    out: Path,
    *,
    config: str = "small",
    output: str | None = None,
    epochs: int = 10,
    batch_size: int | None = None,
    lr: float | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    resume: bool = False,
    device: str = "auto",
    balance_z: bool = False,
    schedule: str = "auto",
    dropout: float | None = None,
    threads: int | None = None,
    class_head: bool = True,
    init: Path | None = None,
    z_quasars_only: bool = False,
    non_quasar_z_weight: float | None = None,
    twin: bool = False,
    progress: bool = True,
    echo: Callable[[str], Any] = print,
) -> TrainResult:
    """Train, write the finished model to `out` (and a checkpoint after every epoch), return the figures.

    `init`: start from this trained model (its config; a class head is added if asked for and
    missing) instead of fresh weights. `z_quasars_only`: the redshift head learns only from the
    quasars, the class head from everything; `non_quasar_z_weight`: it learns from the stars' and
    galaxies' z too, at this weight. `twin` (with `init`): the class head goes into a copy of the
    initial network and only that copy trains, the initial one frozen (see `model.class_head` for why).
    Raises FileNotFoundError / ValueError for a store that is not one, TrainingSetError when it has
    too little to train on, and lets KeyboardInterrupt through (the last epoch stays in the checkpoint).

    Under torchrun every rank calls this alike and trains its share (`model.distributed`); rank 0 alone
    echoes, writes the checkpoint and the model and computes the validation table (the other ranks
    return their history with an empty table: nothing of theirs is written).
    """
    from model.fnet import FNet, FNetConfig, count_parameters
    from model.predict import predict_store
    from model.train import save_checkpoint, train

    if not distributed.is_main():
        echo = _quiet
    if config not in CONFIG_DEFAULTS:
        raise ValueError(f"config must be one of {sorted(CONFIG_DEFAULTS)}, not {config!r}")
    if twin and (init is None or not class_head):
        raise ValueError("a twin class network starts from a trained model: give init and class_head")
    st = open_store(store)
    if not st.complete:
        echo("warning: the store's ingest is not complete; training on the rows committed so far")
    index = st.index
    rows = training_set.training_rows(index, class_head)
    if rows.size < 2:
        raise TrainingSetError(f"{rows.size} labelled spectra in {store}; need at least 2")
    n_objects = len(set(training_set.object_groups(index.iloc[rows])))
    train_rows, val_rows = training_set.split(index, val_fraction, seed, class_head)
    if train_rows.size < 2:
        raise TrainingSetError("the validation split left fewer than 2 training spectra")

    overrides: dict[str, Any] = {}
    if output is not None:
        overrides["output"] = output
    if dropout is not None:
        overrides["dropout"] = dropout
    if class_head:
        overrides["n_classes"] = len(training_set.CLASSES)
    if non_quasar_z_weight is not None:
        overrides["non_quasar_z_weight"] = float(non_quasar_z_weight)
    cfg = getattr(FNetConfig, config)(**overrides)
    start = None
    if init is not None:
        from model.checkpoint import file_sha1, load_checkpoint
        from model.class_head import with_class_head

        start, _ = load_checkpoint(init)
        if class_head and not start.has_classes:
            start = with_class_head(start, seed=seed, twin=twin)
        if non_quasar_z_weight is not None:
            for net in (start, start.twin):
                if net is not None:
                    net.cfg = replace(net.cfg, non_quasar_z_weight=float(non_quasar_z_weight))
        if twin:
            start.freeze_redshift()
        cfg = start.cfg
    lr0, bs0 = CONFIG_DEFAULTS[config]
    z_all, cls_all = training_set.labels(index, class_head, z_quasars_only)
    ids = index["object_id"].astype(str).to_numpy()
    ckpt = checkpoint_path_for(out)
    if ckpt.exists() and not resume:
        echo(f"note: {ckpt} exists; starting afresh and overwriting it (use --resume to continue it)")
    if resume and not ckpt.exists():
        echo(f"note: no training checkpoint at {ckpt}; starting afresh")
    echo(
        f"training FNet ({config}, {cfg.output} head{', class head' if class_head else ''}"
        f"{' in a twin network' if cfg.class_net == 'twin' and class_head else ''}, "
        f"{count_parameters(FNet(cfg), trainable_only=False):,} parameters) on {train_rows.size} spectra, validating on {val_rows.size} "
        f"({n_objects} objects in all); checkpoint {ckpt}"
    )
    model, history = train(
        cfg, st.flux, z_all, st.flux, z_all,
        train_rows=train_rows, val_rows=val_rows if val_rows.size else None, train_ids=ids,
        train_classes=cls_all, val_classes=cls_all,
        epochs=epochs, batch_size=bs0 if batch_size is None else batch_size, lr=lr0 if lr is None else lr,
        seed=seed, schedule=schedule, balance_z=balance_z,
        device=device, num_threads=threads, progress=progress, checkpoint_path=ckpt, resume=resume, model=start,
        provenance={
            "store": str(Path(store).resolve()), "config_name": config, "store_rows": len(index),
            "class_head": class_head, "val_fraction": val_fraction,
            "z_labels": "quasars" if z_quasars_only else "all",
            "init": None if init is None else {"path": str(init), "sha1": file_sha1(init)},
        },
    )  # fmt: skip

    hist = pd.DataFrame(history)
    hist = hist[[c for c in HISTORY_COLUMNS if c in hist]]
    secs = float(model.provenance.get("train_seconds", 0.0))
    if not distributed.is_main():
        return TrainResult(Path(out), ckpt, hist, "", 0, secs)
    metrics: dict[str, Any] = {}
    table_text = ""
    val_qso = training_set.quasar_rows(index, val_rows) if class_head else val_rows
    if val_qso.size:
        zp = np.concatenate([b.z for b in predict_store(model, st.flux, val_qso, batch_size=256, n_alt=0)])
        zv = z_all[val_qso]
        table = accuracy_table(zp, zv, groups=z_bin_groups(zv, Z_EDGES))
        metrics = {"validation": table.reset_index().to_dict(orient="records")}
        table_text = format_table(table)
    save_checkpoint(out, model, metrics=metrics, history=history)
    return TrainResult(Path(out), ckpt, hist, table_text, int(val_qso.size), secs)


def _quiet(_msg: str) -> None:
    """The echo of a torchrun rank other than 0: one voice in the log, not N."""
