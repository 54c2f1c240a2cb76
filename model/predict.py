"""Batch prediction with FNet: streaming over a memmap, with a per-spectrum uncertainty.

`predict_store` walks the rows of an N x 4618 flux array (a read-only
`np.load(mmap_mode="r")` memmap of a spectrum store, or any array) in batches:
it reads one batch (one sorted fancy index), normalises it, runs the network
and yields the results, reading the next batch in a helper thread meanwhile.
Nothing grows with N, so memory stays flat however large the store.

Uncertainty, and why each:

* bins head ("posterior"): z_err is half the width of the interval holding
  68% of the network's posterior over log(1+z), grown around its peak
  (`model.fnet.decode_posterior`). It costs nothing extra, is calibrated by
  the cross-entropy training itself, and widens when a second redshift is
  plausible; the alternatives come from the same posterior. With dropout in
  the config and mc_samples > 0, the posterior is the mean of mc_samples
  dropout passes (adds the network's own, epistemic, uncertainty).
* regression head with dropout > 0 ("mc_dropout", Gal & Ghahramani 2016):
  z is the mean and z_err the standard deviation of mc_samples forward passes
  with dropout active (BatchNorm stays in eval mode); seeded, so reruns agree.
  This is the cheapest uncertainty a single regression network can give;
  an ensemble would cost K trainings.
* regression head without dropout ("none"): the published FNet has no
  dropout and a single output, so there is nothing to sample; z_err is NaN
  rather than a made-up number. Train with dropout (or use the bins head)
  to get one.

Inference runs in eval mode under `torch.inference_mode`, with bfloat16
autocast on CUDA (the dense head stays float32).
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .data import SpectraDataset
from .fnet import Alternatives, FNet

UNCERTAINTY_METHODS = ("posterior", "mc_dropout", "none")
MC_SEED = 12345


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """"auto" / None -> CUDA when available, else CPU; anything else as torch.device."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    return dev


def autocast_for(dev: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA, nothing elsewhere."""
    if dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uncertainty_method(model: FNet, mc_samples: int = 0) -> str:
    """Which z_err `predict_store` gives for this model: "posterior", "mc_dropout" or "none"."""
    if model.cfg.output == "bins":
        return "posterior"
    if model.cfg.dropout > 0 and mc_samples > 1:
        return "mc_dropout"
    return "none"


class PredictionBatch(NamedTuple):
    rows: np.ndarray  # (B,) rows of the flux array
    z: np.ndarray  # (B,) float64
    z_err: np.ndarray  # (B,) float64, NaN where no uncertainty (see the module docstring)
    alternatives: Alternatives  # z, p: (B, n_alt); p_z: (B,); NaN for regression
    class_prob: np.ndarray | None = None  # (B, n_classes) in model.classes.CLASSES order; None: no class head


def _dropout_on(model: nn.Module) -> list[nn.Module]:
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    for m in drops:
        m.train()
    return drops


@torch.inference_mode()
def predict_store(
    model: FNet,
    flux_memmap: np.ndarray,
    rows: np.ndarray | None = None,
    batch_size: int = 256,
    mc_samples: int = 0,
    n_alt: int = 3,
    seed_offset: int = 0,
) -> Iterator[PredictionBatch]:
    """Yield a `PredictionBatch` (rows, z, z_err, alternatives) per batch of `rows` (default: all), in order.

    flux_memmap: N x n_pix raw (not normalised) flux on the FNet grid. The
    model runs on whatever device it is on. mc_samples: dropout passes (see
    the module docstring); ignored, with a warning, for a model without dropout.
    seed_offset: where `rows` start in a larger run cut into pieces (a Dask
    task's chunk): each batch's dropout seed follows its place in the whole
    run, so the pieces draw the masks the whole run would.
    """
    n = flux_memmap.shape[0]
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if mc_samples == 1 or mc_samples < 0:
        raise ValueError("mc_samples must be 0 (no sampling) or >= 2")
    if rows.size == 0:
        return
    if mc_samples > 0 and model.cfg.dropout <= 0:
        warnings.warn("mc_samples ignored: the model has no dropout", stacklevel=2)
        mc_samples = 0
    dev = next(model.parameters()).device
    amp = autocast_for(dev)
    ds = SpectraDataset(flux_memmap, None, rows, n_pix=model.cfg.n_pix)
    starts = list(range(0, rows.size, batch_size))
    was_training = model.training
    model.eval()
    pool = ThreadPoolExecutor(1)
    rng_devices = [dev] if dev.type == "cuda" else []
    try:
        if mc_samples > 0:
            _dropout_on(model)
        nxt = pool.submit(ds.__getitems__, np.arange(0, min(batch_size, rows.size)))
        for s in starts:
            x, _, _ = nxt.result()
            e = min(s + batch_size, rows.size)
            if e < rows.size:
                nxt = pool.submit(ds.__getitems__, np.arange(e, min(e + batch_size, rows.size)))
            x = x.to(dev, non_blocking=True)
            r = rows[s:e]
            if mc_samples > 0:
                # dropout masks from a seed of our own; the caller's RNG is untouched
                with torch.random.fork_rng(devices=rng_devices):
                    torch.manual_seed(MC_SEED + seed_offset + s)
                    outs = []
                    for _ in range(mc_samples):
                        with amp:
                            outs.append(model(x).float())
                out = torch.stack(outs)  # (S, B), (S, B, n_bins) or with the class logits appended
                cls = model.class_logits(out)
                cls_prob = None if cls is None else torch.softmax(cls.double(), dim=-1).mean(dim=0).cpu().numpy()
                zo = model.z_part(out)
                if model.bins is None:
                    zs = model.unscale_z(zo).cpu().numpy()
                    z, z_err = zs.mean(axis=0), zs.std(axis=0, ddof=1)
                    yield PredictionBatch(r, z, z_err, Alternatives.empty(r.size, n_alt), cls_prob)
                else:
                    logp = torch.log(torch.softmax(zo.double(), dim=-1).mean(dim=0))
                    d = model.bins_decode(logp, n_alt=n_alt)
                    yield PredictionBatch(r, d.z, d.z_err, d.alternatives, cls_prob)
            else:
                with amp:
                    out = model(x)
                d = model.decode(out.float(), n_alt=n_alt)
                yield PredictionBatch(r, d.z, d.z_err, d.alternatives, model.class_prob(out.float()))
    finally:
        pool.shutdown(wait=True)
        model.train(was_training)


def predict(model: FNet, flux_batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Redshifts (float64, shape (N,)) for N x n_pix raw (not normalised) flux on the FNet grid."""
    flux = flux_batch if isinstance(flux_batch, np.ndarray) else np.asarray(flux_batch, dtype=np.float32)
    if flux.ndim == 1:
        flux = flux[None]
    out = [b.z for b in predict_store(model, flux, batch_size=batch_size)]
    return np.concatenate(out) if out else np.zeros(0)


__all__ = [
    "PredictionBatch", "UNCERTAINTY_METHODS", "autocast_for", "predict", "predict_store", "resolve_device",
    "uncertainty_method",
]
