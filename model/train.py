"""Train FNet: the published recipe, resumable, seeded, on a CPU or a GPU.

`train` is the published recipe (Adam, weight decay 1e-5, gradient-norm
clipping, He-normal init) with the loss of the model's output head: MSE on the
min-max scaled redshift (regression, as published) or label-smoothed
cross-entropy over log(1+z) bins. The label scaling is stored in the model
(buffers z_min / z_max) and in every checkpoint.

Device: "auto" takes CUDA when available, with bfloat16 autocast for the
convolutions (the dense head stays float32), else the CPU in float32.

Schedules: "step" (the paper: lr x0.1 at epochs 75, 85 and 90; the default for
regression), "plateau" (the published code: ReduceLROnPlateau on the
validation loss, here x0.5 after 2 epochs without improvement), "cosine"
(cosine decay to lr/100 over `epochs`; the default for the bins head, which is
trained for a few epochs on a CPU where the paper's milestones never come),
"none"; or pass any `scheduler(optimizer)` factory.

Reproducible: `seed` fixes the initial weights (torch.manual_seed) and the
order of every epoch (a numpy Generator seeded with (seed, epoch), so epoch k's
order does not depend on how the run got there). On a CPU, the same seed and
thread count give the same weights bit for bit.

Resumable: with `checkpoint_path`, a training checkpoint (model, optimizer,
scheduler, epoch, torch RNG state, metrics history, data hash, arguments, git
revision) is written atomically after every epoch; `resume=True` continues
from it, and an interrupted-then-resumed run ends with the same weights as an
uninterrupted one. Resuming refuses a checkpoint whose config, training data
(hash of the training rows' ids and z) or arguments (other than `epochs`)
differ from the call's.

Balanced-z sampling (`balance_z=True`): each epoch draws N training spectra
with replacement, with probability inverse to the training n(z) in bins of
0.05 in log(1+z), capped so that no spectrum is drawn more than 10x as often
as under uniform sampling (a lone z = 5 spectrum would otherwise fill epochs).
The survey's n(z) under-samples z < 0.8 and z > 3.5.

Data-parallel under `torchrun` (DDP, the same global batches and samples as one process, rank 0
writing): `model.distributed`.
"""
from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed as dd
from .checkpoint import (
    CHECKPOINT_FORMAT,
    _plain,
    data_hash,
    git_revision,
    load_checkpoint,
    model_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from .classes import UNKNOWN, is_qso_class
from .data import SpectraDataset, make_loader
from .fnet import FNet, FNetConfig
from .metrics import THRESHOLDS_KMS, accuracy_row
from .predict import autocast_for, predict, resolve_device

SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
SCHEDULES = ("auto", "step", "plateau", "cosine", "none")
PAPER_MILESTONES = (75, 85, 90)
BALANCE_BIN = 0.05  # width in log(1+z) of the n(z) histogram for balanced sampling
BALANCE_MAX_RATIO = 10.0  # no spectrum drawn more than this x as often as uniformly
# training arguments that must match to resume (epochs may grow)
RESUME_KEYS = ("batch_size", "lr", "weight_decay", "clip_grad_norm", "seed", "schedule", "balance_z")


def step_schedule(milestones=PAPER_MILESTONES, gamma: float = 0.1) -> SchedulerFactory:
    """The paper's schedule (x0.1 at epochs 75/85/90) as a `scheduler` factory for `train`."""
    return lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), gamma)


def make_scheduler(name: str, opt: torch.optim.Optimizer, epochs: int, lr: float) -> Any:
    if name == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, list(PAPER_MILESTONES), 0.1)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, min_lr=lr * 1e-3)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1), eta_min=lr * 0.01)
    if name == "none":
        return None
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")


def resolve_schedule(schedule: str, cfg: FNetConfig) -> str:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "auto":
        return "step" if cfg.output == "regression" else "cosine"
    return schedule


def balanced_weights(
    z: np.ndarray, bin_width: float = BALANCE_BIN, max_ratio: float = BALANCE_MAX_RATIO, classes: np.ndarray | None = None
) -> np.ndarray:
    """Sampling probabilities (sum 1) inverse to n(z) in bins of `bin_width` in log(1+z), capped at max_ratio / N.

    With `classes`, the histogram is per class (a star at z ~ 0 is not a rare low-z quasar), and
    spectra without a redshift form one bin of their class."""
    zz = np.asarray(z, dtype=np.float64)
    u = np.log1p(np.clip(np.nan_to_num(zz, nan=0.0), 0.0, None))
    idx = np.floor((u - u.min()) / bin_width).astype(np.int64)
    if classes is not None:
        idx = np.where(np.isfinite(zz), idx, -1)
        _, idx = np.unique(np.stack([np.asarray(classes, np.int64), idx]), axis=1, return_inverse=True)
        idx = idx.ravel()
    counts = np.bincount(idx)
    w = 1.0 / counts[idx]
    w /= w.sum()
    n = w.size
    for _ in range(50):  # clip and renormalise until the cap holds
        if w.max() <= max_ratio / n * (1 + 1e-9):
            break
        w = np.minimum(w, max_ratio / n)
        w /= w.sum()
    return w


def epoch_order(n: int, seed: int, epoch: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Indices 0..n-1 in the order of epoch `epoch` (a permutation, or n weighted draws with replacement)."""
    rng = np.random.default_rng([int(seed), int(epoch)])
    if weights is None:
        return rng.permutation(n)
    return rng.choice(n, size=n, replace=True, p=weights)


def _batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    out = [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
    if len(out) > 1 and out[-1].size == 1:  # a size-1 batch would break BatchNorm in train mode
        out.pop()
    return out


def _rng_state() -> dict[str, Any]:
    st: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def train(
    cfg: FNetConfig,
    train_flux: np.ndarray,
    train_z: np.ndarray,
    val_flux: np.ndarray | None = None,
    val_z: np.ndarray | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 2.4e-4,
    weight_decay: float = 1e-5,
    clip_grad_norm: float | None = 1.0,
    seed: int = 0,
    train_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
    train_ids: Sequence[Any] | np.ndarray | None = None,
    train_classes: np.ndarray | None = None,
    val_classes: np.ndarray | None = None,
    schedule: str = "auto",
    scheduler: SchedulerFactory | None = None,
    balance_z: bool = False,
    device: str | torch.device | None = "auto",
    num_threads: int | None = None,
    eval_batch_size: int = 256,
    progress: bool = True,
    model: FNet | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    callback: Callable[[int, dict[str, float], FNet], Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> tuple[FNet, list[dict[str, float]]]:
    """Train an FNet; returns (model in eval mode, history: one dict per epoch).

    Flux arrays are N x n_pix float32 on the FNet grid, not normalised (arrays
    or memmaps); z arrays are aligned with them. `train_rows` / `val_rows`
    select rows of those arrays without copying (so one memmap can hold both
    splits); `train_ids` (aligned with train_flux, e.g. object ids) names the
    rows in the data hash (default: the row numbers). The label scaling is the
    min / max of the training redshifts.

    History entries: epoch, lr, train_loss, seconds, and with validation data
    val_loss, val_acc@6000/12000/30000 (%) and val_median_abs_dv (km/s);
    the progress bar shows them as the epoch ends. `schedule` (see the module
    docstring) or a `scheduler(optimizer)` factory is stepped once per epoch.
    Pass `model` to continue training an existing one (its label scaling kept).
    `checkpoint_path` / `resume`: see the module docstring. `callback(epoch,
    record, model)` runs after each epoch's checkpoint is written; returning
    True stops training there (an exception propagates, the checkpoint stays).
    `model.provenance` is set to the data hash, git revision, arguments,
    versions and times (merged with `provenance`), and `save_checkpoint` stores it.
    Under torchrun every rank calls this with the same arguments: see `model.distributed` (batch_size is
    the global batch; rank 0 alone writes the checkpoint and runs `callback`).
    """
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    ddp, dev = dd.setup(resolve_device(device))  # under torchrun: join the group, this rank's GPU
    sched_name = resolve_schedule(schedule, cfg) if scheduler is None else "custom"

    if cfg.n_classes == 0 and (train_classes is not None or val_classes is not None):
        raise ValueError("class labels given for a model without a class head (FNetConfig.n_classes = 0)")
    train_ds = SpectraDataset(train_flux, train_z, train_rows, n_pix=cfg.n_pix, classes=train_classes)
    val_ds = None
    if val_flux is not None and val_z is not None:
        val_ds = SpectraDataset(val_flux, val_z, val_rows, n_pix=cfg.n_pix, classes=val_classes)
    if len(train_ds) == 0:
        raise ValueError("no training spectra")
    zt = train_ds.labels
    ct = train_ds.class_labels if train_classes is not None else None
    has_z = np.isfinite(zt)
    if ct is None and not has_z.all():
        raise ValueError("training redshifts must be finite")
    if ct is not None and not np.all(has_z | (ct != UNKNOWN)):
        raise ValueError("every training spectrum needs a finite redshift or a class label")
    if not has_z.any():
        raise ValueError("no training spectrum has a finite redshift")
    ids = np.asarray(train_ids)[train_ds.rows] if train_ids is not None else train_ds.rows
    dhash = data_hash(ids, zt, ct)
    args = {
        "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "weight_decay": float(weight_decay),
        "clip_grad_norm": None if clip_grad_norm is None else float(clip_grad_norm), "seed": int(seed),
        "schedule": sched_name, "balance_z": bool(balance_z),
    }  # fmt: skip

    ckpt_path = Path(checkpoint_path) if checkpoint_path is not None else None
    state = None
    if ckpt_path is not None and resume:  # rank 0 reads it for all (a node may not see its disk)
        state = dd.from_main(lambda: read_checkpoint(ckpt_path) if ckpt_path.exists() else None, ddp)
    if state is not None:
        _check_resumable(state, cfg, dhash, args, ckpt_path)

    torch.manual_seed(seed)  # initial weights; epoch orders have their own seeded generators
    if state is not None:
        model = model_from_checkpoint(state, str(ckpt_path))
    elif model is None:
        model = FNet(cfg)
        model.set_label_scaling(float(np.min(zt[has_z])), float(np.max(zt[has_z])))
    model.to(dev)
    net = dd.wrap(model, ddp, dev)  # DDP with synchronised batch norm under torchrun, else `model`

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = scheduler(opt) if scheduler is not None else make_scheduler(sched_name, opt, epochs, lr)
    weights = balanced_weights(zt, classes=ct) if balance_z else None

    history: list[dict[str, float]] = []
    start_epoch = 1
    prov = {
        "data_hash": dhash, "n_train": len(train_ds), "n_val": 0 if val_ds is None else len(val_ds),
        "train_args": args, "git": git_revision(), "device": str(dev), "threads": torch.get_num_threads(),
        "torch_version": str(torch.__version__), "numpy_version": np.__version__,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "train_seconds": 0.0,
    }  # fmt: skip
    prov.update(_plain(provenance or {}))
    if ddp is not None:
        prov["processes"] = ddp.world
    if state is not None:
        tr = state["training"]
        opt.load_state_dict(tr["optimizer"])
        if sched is not None and tr.get("scheduler") is not None:
            sched.load_state_dict(tr["scheduler"])
        history = list(state.get("history") or [])
        start_epoch = int(tr["epoch"]) + 1
        _set_rng_state(tr["rng"])
        old = state.get("provenance") or {}
        prov["started"] = old.get("started", prov["started"])
        prov["train_seconds"] = float(old.get("train_seconds", 0.0))
        prov["resumed_at_epochs"] = list(old.get("resumed_at_epochs", [])) + [start_epoch - 1]
    model.provenance = prov

    amp = autocast_for(dev)
    n_batches = len(_batches(np.arange(len(train_ds)), batch_size))
    bar = tqdm(
        total=max(0, epochs - start_epoch + 1) * n_batches, disable=not progress or not dd.is_main(), unit="batch",
        dynamic_ncols=True,
    )
    pool = ThreadPoolExecutor(1)  # reads + normalises the next batch while this one trains
    try:
        for epoch in range(start_epoch, epochs + 1):
            model.train()
            t0 = time.perf_counter()
            total, count = 0.0, 0
            batches = dd.drop_short(_batches(epoch_order(len(train_ds), seed, epoch, weights), batch_size), ddp)
            nxt = pool.submit(train_ds.__getitems__, dd.shard(batches[0], ddp))
            for bi in range(len(batches)):
                x, z, c = nxt.result()
                if bi + 1 < len(batches):
                    nxt = pool.submit(train_ds.__getitems__, dd.shard(batches[bi + 1], ddp))
                x = x.to(dev, non_blocking=True)
                z = z.to(dev)
                opt.zero_grad(set_to_none=True)
                with amp:
                    out = net(x)
                loss = model.loss(out, z, c.to(dev) if train_classes is not None else None)
                loss_sum = dd.global_sum([loss.item() * x.shape[0]], ddp, dev)[0]  # the global batch's
                if not math.isfinite(loss_sum):
                    raise FloatingPointError(f"loss is {loss_sum / batches[bi].size} at epoch {epoch}")
                (loss if ddp is None else loss * dd.loss_scale(x.shape[0], batches[bi].size, ddp)).backward()
                if clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                opt.step()
                total += loss_sum
                count += int(batches[bi].size)
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{total / count:.3g}", refresh=False)
            rec: dict[str, float] = {
                "epoch": epoch,
                "lr": opt.param_groups[0]["lr"],
                "train_loss": total / max(count, 1),
            }
            if val_ds is not None and len(val_ds):
                zp, vloss, cp = evaluate_dataset(model, val_ds, eval_batch_size, dev, with_classes=True)
                rec["val_loss"] = vloss
                scored = _quasar_rows(val_ds, val_classes is not None)
                row = accuracy_row(zp[scored], val_ds.labels[scored])
                rec.update({f"val_{k}": v for k, v in row.items() if k != "n"})
                if cp is not None and val_classes is not None:
                    known = val_ds.class_labels != UNKNOWN
                    rec["val_class_acc"] = 100.0 * float(np.mean(cp.argmax(axis=1)[known] == val_ds.class_labels[known]))
                bar.set_postfix(
                    epoch=epoch, loss=f"{rec['train_loss']:.3g}",
                    **{f"acc{t // 1000}k": f"{rec[f'val_acc@{t}']:.1f}%" for t in THRESHOLDS_KMS},
                )  # fmt: skip
            if sched is not None:
                if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    sched.step(rec.get("val_loss", rec["train_loss"]))
                else:
                    sched.step()
            rec["seconds"] = time.perf_counter() - t0
            history.append(rec)
            prov["train_seconds"] = float(prov["train_seconds"]) + rec["seconds"]
            prov["epochs_done"] = epoch
            if ckpt_path is not None and dd.is_main():
                training = {
                    "optimizer": opt.state_dict(),
                    "scheduler": None if sched is None else _plain_sched(sched.state_dict()),
                    "epoch": epoch,
                    "rng": _rng_state(),
                    "args": args,
                }
                save_checkpoint(ckpt_path, model, metrics=_last_metrics(history), history=history, training=training)
            if callback is not None and dd.from_main(lambda: callback(epoch, rec, model) is True, ddp):
                break
    finally:
        bar.close()
        pool.shutdown(wait=True)
        dd.unwrap(model)
    prov["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    model.eval()
    return model, history


def _plain_sched(sd: dict[str, Any]) -> dict[str, Any]:
    # MultiStepLR keeps its milestones in a collections.Counter; make it a plain dict
    return {k: (dict(v) if type(v) is not dict and isinstance(v, dict) else v) for k, v in sd.items()}


def _last_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    return {k: v for k, v in history[-1].items() if k.startswith("val_")} if history else {}


def _check_resumable(state: dict[str, Any], cfg: FNetConfig, dhash: str, args: dict[str, Any], path: Path) -> None:
    if "training" not in state:
        raise ValueError(f"{path} is a finished model, not a training checkpoint; cannot resume from it")
    if FNetConfig.from_dict(state["config"]) != cfg:
        raise ValueError(f"{path} was trained with another config; resume with the same one or start afresh")
    old_hash = (state.get("provenance") or {}).get("data_hash")
    if old_hash != dhash:
        raise ValueError(
            f"{path} was trained on other data (hash {old_hash} != {dhash}): the training rows or labels changed"
        )
    old = state["training"].get("args", {})
    diff = {k: (old.get(k), args[k]) for k in RESUME_KEYS if old.get(k) != args[k]}
    if diff:
        raise ValueError(f"{path}: cannot resume with other training arguments {diff} (checkpoint, now)")


@torch.inference_mode()
def evaluate_dataset(
    model: FNet, ds: SpectraDataset, batch_size: int, dev: torch.device, with_classes: bool = False
) -> tuple[np.ndarray, float] | tuple[np.ndarray, float, np.ndarray | None]:
    """(predicted z, mean loss) over a labelled dataset, in eval mode; with_classes adds the class
    probabilities (N x n_classes, None without a class head)."""
    was_training = model.training
    model.eval()
    zs, probs, loss_sum, n = [], [], 0.0, 0
    amp = autocast_for(dev)
    use_cls = ds.classes is not None
    try:
        for x, z, c in make_loader(ds, batch_size):
            with amp:
                out = model(x.to(dev))
            zs.append(model.output_z(out).cpu().numpy())
            probs.append(model.class_prob(out.float()))
            loss_sum += float(model.loss(out, z.to(dev), c.to(dev) if use_cls else None)) * x.shape[0]
            n += x.shape[0]
    finally:
        model.train(was_training)
    zp = np.concatenate(zs) if zs else np.zeros(0)
    mean_loss = loss_sum / n if n else math.nan
    if not with_classes:
        return zp, mean_loss
    cp = np.concatenate(probs) if probs and probs[0] is not None else None
    return zp, mean_loss, cp


def _quasar_rows(ds: SpectraDataset, has_classes: bool) -> np.ndarray:
    """Which rows the redshift accuracy is about: the quasars (all rows when no classes are given)."""
    if not has_classes:
        return np.ones(len(ds), dtype=bool)
    return is_qso_class(ds.class_labels) & np.isfinite(ds.labels)


def _predict_ds(model: FNet, ds: SpectraDataset, batch_size: int, dev: torch.device) -> np.ndarray:
    return evaluate_dataset(model, ds, batch_size, dev)[0]


__all__ = [
    "CHECKPOINT_FORMAT", "SCHEDULES", "train", "predict", "save_checkpoint", "load_checkpoint", "step_schedule",
    "balanced_weights", "epoch_order", "evaluate_dataset",
]
