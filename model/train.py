"""Train FNet, predict with it, and save / load it.

`train` is the published recipe at CPU scale: MSE on the min-max scaled
redshift, Adam with weight decay 1e-5, gradient-norm clipping, He-normal init,
seeded shuffling. The label scaling is stored in the model (buffers z_min /
z_max) and in the checkpoint. Hooks for what comes next (paper step schedule,
resume, bf16 on CUDA) are the `scheduler` factory and `device` arguments and the
`extra` dict of a checkpoint.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import SpectraDataset, make_loader
from .fnet import FNet, FNetConfig
from .grid import normalise
from .metrics import accuracy_row

CHECKPOINT_FORMAT = "fnet-inspector/fnet-checkpoint/1"

SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


def step_schedule(milestones=(75, 85, 90), gamma: float = 0.1) -> SchedulerFactory:
    """The paper's schedule (x0.1 at epochs 75/85/90) as a `scheduler` factory for `train`."""
    return lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), gamma)


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
    scheduler: SchedulerFactory | None = None,
    device: str | torch.device | None = None,
    num_threads: int | None = None,
    eval_batch_size: int = 256,
    progress: bool = True,
    model: FNet | None = None,
) -> tuple[FNet, list[dict[str, float]]]:
    """Train an FNet; returns (model in eval mode, history: one dict per epoch).

    Flux arrays are N x n_pix float32 on the FNet grid, not normalised (arrays
    or memmaps); z arrays are aligned with them. `train_rows` / `val_rows`
    select rows of those arrays without copying (so one memmap can hold both
    splits). The label scaling is the min / max of the training redshifts.
    History entries: epoch, lr, train_loss (MSE, scaled units), seconds, and
    when validation data is given val_loss, val_acc@6000/12000/30000 (%) and
    val_median_abs_dv (km/s). `scheduler(optimizer)` is stepped once per epoch.
    Pass `model` to continue training an existing one (its label scaling kept).
    """
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    torch.manual_seed(seed)  # initial weights; shuffling has its own seeded generator

    train_ds = SpectraDataset(train_flux, train_z, train_rows, n_pix=cfg.n_pix)
    val_ds = None
    if val_flux is not None and val_z is not None:
        val_ds = SpectraDataset(val_flux, val_z, val_rows, n_pix=cfg.n_pix)
    if len(train_ds) == 0:
        raise ValueError("no training spectra")

    if model is None:
        model = FNet(cfg)
        zt = train_ds.labels
        model.set_label_scaling(float(np.min(zt)), float(np.max(zt)))
    model.to(dev)

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = scheduler(opt) if scheduler is not None else None
    loss_fn = nn.MSELoss()
    # a size-1 last batch would break BatchNorm in train mode
    drop_last = len(train_ds) > batch_size and len(train_ds) % batch_size == 1
    loader = make_loader(train_ds, batch_size, shuffle=True, seed=seed, drop_last=drop_last)

    history: list[dict[str, float]] = []
    bar = tqdm(total=epochs * len(loader), disable=not progress, unit="batch", dynamic_ncols=True)
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            t0 = time.perf_counter()
            total, count = 0.0, 0
            for x, z in loader:
                x = x.to(dev, non_blocking=True)
                y = model.scale_z(z.to(dev))
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}")
                loss.backward()
                if clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                opt.step()
                total += loss.item() * x.shape[0]
                count += x.shape[0]
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{total / count:.3g}", refresh=False)
            rec: dict[str, float] = {
                "epoch": epoch,
                "lr": opt.param_groups[0]["lr"],
                "train_loss": total / max(count, 1),
            }
            if sched is not None:
                sched.step()
            if val_ds is not None and len(val_ds):
                zp = _predict_ds(model, val_ds, eval_batch_size, dev)
                zv = val_ds.labels
                yv = (zv - float(model.z_min)) / float(model.z_max - model.z_min)
                yp = (zp - float(model.z_min)) / float(model.z_max - model.z_min)
                rec["val_loss"] = float(np.mean((yp - yv) ** 2))
                row = accuracy_row(zp, zv)
                rec.update({f"val_{k}": v for k, v in row.items() if k != "n"})
                bar.set_postfix(
                    epoch=epoch, loss=f"{rec['train_loss']:.3g}", val_acc6000=f"{rec['val_acc@6000']:.1f}%"
                )
            rec["seconds"] = time.perf_counter() - t0
            history.append(rec)
    finally:
        bar.close()
    model.eval()
    return model, history


@torch.inference_mode()
def _predict_ds(model: FNet, ds: SpectraDataset, batch_size: int, dev: torch.device) -> np.ndarray:
    was_training = model.training
    model.eval()
    out = []
    try:
        for x, _ in make_loader(ds, batch_size):
            out.append(model.predict_z(x.to(dev)).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


@torch.inference_mode()
def predict(model: FNet, flux_batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Redshifts (float64, shape (N,)) for N x n_pix raw (not normalised) flux on the FNet grid."""
    flux = np.asarray(flux_batch, dtype=np.float32)
    if flux.ndim == 1:
        flux = flux[None]
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, flux.shape[0], batch_size):
            x = torch.from_numpy(normalise(flux[i : i + batch_size])).to(dev)
            out.append(model.predict_z(x).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def _plain(obj: Any) -> Any:
    """Numpy scalars / arrays and DataFrames -> Python builtins (for weights_only loading)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # pandas DataFrame
        return _plain(obj.to_dict(orient="index"))
    return obj


def save_checkpoint(
    path: str | Path,
    model: FNet,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, float]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write config, label scaling, state dict, metrics (and history / extra) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "config": model.cfg.to_dict(),
        "label_scaling": {"z_min": float(model.z_min), "z_max": float(model.z_max)},
        "state_dict": state,
        "metrics": _plain(metrics or {}),
        "history": _plain(history or []),
        "extra": _plain(extra or {}),
        "torch_version": str(torch.__version__),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[FNet, dict[str, Any]]:
    """(model in eval mode, the checkpoint dict without the state dict); loads with weights_only=True."""
    ckpt = torch.load(Path(path), map_location=map_location, weights_only=True)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an FNet checkpoint (format {ckpt.get('format')!r})")
    model = FNet(FNetConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt.pop("state_dict"))
    ls = ckpt["label_scaling"]
    if abs(float(model.z_min) - ls["z_min"]) > 1e-12 or abs(float(model.z_max) - ls["z_max"]) > 1e-12:
        raise ValueError(f"{path}: label scaling in the state dict disagrees with the metadata")
    model.to(map_location).eval()
    return model, ckpt
