"""Spectra on the FNet grid as a torch Dataset, normalised batch by batch.

The arrays are N x 4618 float32 flux on the FNet grid, NOT normalised (a numpy
array or a read-only `np.load(..., mmap_mode="r")` memmap), and optionally N
redshifts. `rows` selects a subset without copying, so one memmap can serve a
train and a validation split. Batches are read with one sorted fancy index (fast
on a memmap) and normalised with the published `grid.normalise`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .classes import UNKNOWN
from .grid import FNET_NPIX, normalise


class SpectraDataset(Dataset):
    """(flux, z, class) triples; item i is row `rows[i]` of the arrays.

    `__getitems__` (used by DataLoader for whole batches) returns
    (x: float32 (B, 1, n_pix) normalised, z: float64 (B,), cls: int64 (B,));
    z is NaN where no redshift is known and cls is `model.classes.UNKNOWN`
    (-1) where no class is. Use `make_loader`, which sets the matching collate_fn.
    """

    def __init__(
        self,
        flux: np.ndarray,
        z: np.ndarray | None = None,
        rows: Sequence[int] | np.ndarray | None = None,
        n_pix: int = FNET_NPIX,
        classes: np.ndarray | None = None,
    ) -> None:
        if flux.ndim != 2 or flux.shape[1] != n_pix:
            raise ValueError(f"flux must be N x {n_pix}, got {flux.shape}")
        self.flux = flux
        self.z = None if z is None else np.asarray(z, dtype=np.float64)
        if self.z is not None and self.z.shape[0] != flux.shape[0]:
            raise ValueError(f"{self.z.shape[0]} labels for {flux.shape[0]} spectra")
        self.classes = None if classes is None else np.asarray(classes, dtype=np.int64)
        if self.classes is not None and self.classes.shape[0] != flux.shape[0]:
            raise ValueError(f"{self.classes.shape[0]} class labels for {flux.shape[0]} spectra")
        self.rows = np.arange(flux.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= flux.shape[0]):
            raise IndexError("rows out of range")

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def labels(self) -> np.ndarray:
        """The redshifts of the selected rows, in dataset order."""
        if self.z is None:
            return np.full(len(self), np.nan)
        return self.z[self.rows]

    @property
    def class_labels(self) -> np.ndarray:
        """The class indices of the selected rows, in dataset order (UNKNOWN where not given)."""
        if self.classes is None:
            return np.full(len(self), UNKNOWN, dtype=np.int64)
        return self.classes[self.rows]

    def __getitems__(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r = self.rows[np.asarray(idx, dtype=np.int64)]
        order = np.argsort(r, kind="stable")
        inv = np.empty_like(order)
        inv[order] = np.arange(order.size)
        flux = np.asarray(self.flux[r[order]], dtype=np.float32)[inv]  # sorted read, original order
        x = torch.from_numpy(normalise(flux)).unsqueeze(1)
        z = torch.from_numpy(self.z[r] if self.z is not None else np.full(r.size, np.nan))
        c = torch.from_numpy(self.classes[r] if self.classes is not None else np.full(r.size, UNKNOWN, np.int64))
        return x, z, c

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, z, c = self.__getitems__([i])
        return x[0], z[0], c[0]


def _batch_is_ready(batch):
    return batch


def make_loader(
    ds: SpectraDataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """DataLoader yielding (x, z, cls) batches straight from `SpectraDataset.__getitems__`."""
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=_batch_is_ready,
    )


def split_rows(
    rows: np.ndarray | int,
    val_fraction: float = 0.1,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Random (train_rows, val_rows) split; with `groups`, whole groups go to one side.

    rows: the candidate row numbers, or N for 0..N-1. groups (same length as
    rows): e.g. an object id, so repeat epochs of one object never straddle.
    """
    rows = np.arange(rows) if np.isscalar(rows) else np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if groups is None:
        perm = rng.permutation(rows.size)
        n_val = int(round(val_fraction * rows.size))
        val = np.sort(rows[perm[:n_val]])
        train = np.sort(rows[perm[n_val:]])
        return train, val
    g = np.asarray(groups)
    uniq = rng.permutation(np.unique(g))
    n_val = int(round(val_fraction * uniq.size))
    in_val = np.isin(g, uniq[:n_val])
    return np.sort(rows[~in_val]), np.sort(rows[in_val])
