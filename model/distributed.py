"""Data-parallel training under `torchrun`: one process per GPU (NCCL) or per CPU worker (gloo).

Why a run on N processes gives the 1-process result (to float reduction order):

* every rank draws the same global epoch order and cuts the same global batches (`--batch-size` is
  the global batch); rank r trains on its contiguous share of each batch (`shard`), so the sequence
  of samples is the 1-process one;
* the loss of a share is scaled by n_share * N / n_batch (`loss_scale`), so DDP's mean of the ranks'
  gradients is the gradient of the global batch's mean loss even when the shares differ in size;
* batch normalisation uses the statistics of the global batch: `torch.nn.SyncBatchNorm` on GPUs, and
  on CPUs (where torch's refuses to run) `GlooSyncBatchNorm`; the running statistics therefore
  agree too. `unwrap` turns them back into plain BatchNorm1d, so the model saved is the usual FNet;
* what only one process may do (checkpoints, logs, callbacks, database rows) runs on rank 0, and
  `from_main` tells the other ranks its outcome, so a failure or a stop on rank 0 stops every rank
  instead of leaving them waiting in a collective.

A last batch smaller than N (one row per rank would not go round) is dropped under DDP
(`drop_short`); dropout masks are drawn per share, so with dropout > 0 the runs agree only in
distribution. Without torchrun's environment (WORLD_SIZE <= 1) every function here is a no-op.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun launch."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class MainRankFailed(RuntimeError):
    """Raised on ranks > 0 when what rank 0 ran alone raised (rank 0 raises the original)."""


def launched() -> bool:
    """True in a process torchrun started with more than one worker in all."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main() -> bool:
    """Whether this process may write (files, logs, the database): rank 0, or the only process."""
    return not launched() or int(os.environ.get("RANK", "0")) == 0


def setup(device: torch.device) -> tuple[Dist | None, torch.device]:
    """Join torchrun's process group (once per process) and pick this rank's device.

    NCCL for CUDA (each rank on cuda:LOCAL_RANK, whatever CUDA index was asked for), gloo otherwise.
    Returns (None, device) when not launched by torchrun."""
    if not launched():
        return None, device
    d = Dist(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return d, device


def teardown() -> None:
    """Leave the process group (torch warns at exit about one never destroyed)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def drop_short(batches: list[np.ndarray], d: Dist | None) -> list[np.ndarray]:
    """The batches every rank gets at least one row of (a rank with none would break the loss and BN)."""
    if d is None:
        return batches
    kept = [b for b in batches if b.size >= d.world]
    if not kept:
        raise ValueError(f"{sum(b.size for b in batches)} training spectra cannot go round {d.world} processes")
    return kept


def shard(batch: np.ndarray, d: Dist | None) -> np.ndarray:
    """This rank's contiguous share of a global batch (sizes differ by at most one)."""
    if d is None:
        return batch
    return np.array_split(batch, d.world)[d.rank]


def loss_scale(n_share: int, n_batch: int, d: Dist | None) -> float:
    """Factor on a share's mean loss so that DDP's gradient mean is the global batch's mean gradient."""
    return 1.0 if d is None else n_share * d.world / n_batch


def global_sum(values: Sequence[float], d: Dist | None, device: torch.device) -> list[float]:
    """Sum over the ranks (float64): a batch's loss total for the history and the NaN check every rank makes."""
    if d is None:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def from_main(fn: Callable[[], T], d: Dist | None, *, share: bool = True) -> T | None:
    """Run `fn` on rank 0 only; every rank learns whether it raised, and with `share` its result.

    Rank 0 re-raises what `fn` raised, the others raise MainRankFailed, so no rank is left waiting
    in a collective for one that has gone. Without `share` ranks > 0 get None (for results that
    cannot be pickled, e.g. a held lock)."""
    if d is None:
        return fn()
    result: T | None = None
    failed: BaseException | None = None
    if d.is_main:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 (re-raised below, after the others are told)
            failed = exc
    box: list[object] = [(result if share else None, None if failed is None else repr(failed))]
    dist.broadcast_object_list(box, src=0)
    if failed is not None:
        raise failed
    value, err = box[0]  # type: ignore[misc]
    if err is not None:
        raise MainRankFailed(f"rank 0 stopped: {err}")
    return result if d.is_main else value  # type: ignore[return-value]


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks whose gradient is the sum of the ranks' gradients (each rank's loss
    depends on every rank's share through the global statistics)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        g = g.clone()
        dist.all_reduce(g)
        return g


class GlooSyncBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d with the statistics of the global batch, for CPU ranks (torch.nn.SyncBatchNorm is GPU-only).

    One all-reduce of (sum, sum of squares, count) per layer and step, accumulated in float64 so that
    E[x^2] - E[x]^2 loses nothing that matters against the float32 one-process statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        xd = x.double()
        n_local = x.numel() // c
        stats = _AllReduceSum.apply(torch.cat([xd.sum(dims), (xd * xd).sum(dims), xd.new_tensor([n_local])]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr,operator]
                f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                count = float(n)
                unbiased = var * (count / max(count - 1.0, 1.0))  # what F.batch_norm keeps
                self.running_mean.mul_(1 - f).add_(mean.to(self.running_mean.dtype), alpha=f)
                self.running_var.mul_(1 - f).add_(unbiased.to(self.running_var.dtype), alpha=f)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.to(x.dtype).view(shape)) * torch.rsqrt(var + self.eps).to(x.dtype).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def _swap_bn(module: nn.Module, cls: type[_BatchNorm], kinds: tuple[type, ...]) -> None:
    """Replace every BN of `kinds` under `module` by a `cls` sharing its parameters and buffers
    (the optimizer and DDP hold those very tensors)."""
    for name, child in module.named_children():
        if isinstance(child, kinds) and type(child) is not cls:
            new = cls(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            new.running_mean, new.running_var = child.running_mean, child.running_var
            new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(module, name, new)
        else:
            _swap_bn(child, cls, kinds)


def wrap(model: nn.Module, d: Dist | None, device: torch.device) -> nn.Module:
    """The module to call in training: `model` itself, or under torchrun `model` with synchronised BN
    (changed in place) inside DistributedDataParallel. Parameters are `model`'s own either way.

    No find_unused_parameters: FNet's heads meet in one output tensor (torch.cat), so a share without
    class labels (or redshifts) still gives every head a gradient (zero), as in one process."""
    if d is None:
        return model
    sync = nn.SyncBatchNorm if device.type == "cuda" else GlooSyncBatchNorm
    _swap_bn(model, sync, (nn.BatchNorm1d, nn.SyncBatchNorm))
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """Plain BatchNorm1d again (same tensors), so the trained model saves, loads and predicts as ever."""
    _swap_bn(model, nn.BatchNorm1d, (nn.SyncBatchNorm, GlooSyncBatchNorm))
    return model
