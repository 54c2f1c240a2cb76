"""The FNet input grid and the QuasarNET input grid, and the published normalisation.

FNet (arXiv 2201.03393, and its notebooks) feeds the network 4618 pixels of
log10(lambda/A) from 3.5522 to 4.0139 in steps of 1e-4 (3566.7-10325 A), the
flux linearly interpolated onto that grid with `np.interp`, whose behaviour
beyond the data is to repeat the edge value ("clamped"). We keep that exactly,
because a model trained on clamped edges sees clamped edges, but we make the
two hidden choices explicit:

* off-range pixels (SDSS-I/II covers only 3800-9200 A) are clamped to the
  nearest good pixel, as published, and get ivar = 0 on the grid, so the
  information that they are not data is kept;
* masked pixels (ivar = 0, or an and_mask bit given in `bad_mask_bits`) are
  not used as interpolation nodes: the flux there is interpolated linearly
  between the neighbouring good pixels, and their grid ivar is 0.

Normalisation is the published one, per spectrum: z-score, minus the minimum,
plus 0.001, divided by the maximum, which maps every spectrum into (0, 1].
All functions work on a batch (N spectra at once).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FNET_LOGLAM_MIN = 3.5522
FNET_DLOGLAM = 1e-4
FNET_NPIX = 4618
FNET_LOGLAM = FNET_LOGLAM_MIN + FNET_DLOGLAM * np.arange(FNET_NPIX)
FNET_WAVE = 10.0**FNET_LOGLAM

QN_LOGLAM_MIN = np.log10(3600.0)
QN_LOGLAM_MAX = np.log10(10000.0)
QN_DLOGLAM = 1e-3
QN_NBINS = int((QN_LOGLAM_MAX - QN_LOGLAM_MIN) / QN_DLOGLAM)  # 443
QN_LOGLAM = QN_LOGLAM_MIN + QN_DLOGLAM * (np.arange(QN_NBINS) + 0.5)
QN_WAVE = 10.0**QN_LOGLAM

# idlspec2d pixmask bits of the and_mask that mean "no flux here": 18 FULLREJECT
# and 24 NODATA. The fibre-level bits 0-15 (BADFLAT, MANYBADCOLUMNS, ...) are
# warnings, not masks: in the real files they sit on ~30,000 pixels with
# ivar > 0, whole red halves of good spectra; the pipeline already puts ivar = 0
# where a pixel is unusable, and that is what we trust.
DEFAULT_BAD_MASK_BITS = (18, 24)


def _bad_mask(and_mask: np.ndarray | None, bits: Sequence[int]) -> np.ndarray | None:
    if and_mask is None or len(bits) == 0:
        return None
    word = 0
    for b in bits:
        word |= 1 << int(b)
    return (np.asarray(and_mask).astype(np.int64) & word) != 0


def resample_one(
    loglam: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray | None = None,
    and_mask: np.ndarray | None = None,
    bad_mask_bits: Sequence[int] = DEFAULT_BAD_MASK_BITS,
    grid: np.ndarray = FNET_LOGLAM,
) -> tuple[np.ndarray, np.ndarray]:
    """One spectrum onto `grid`: (flux, ivar) as float32, see the module docstring.

    The grid ivar is the ivar of the nearest native pixel (pixels are the same
    size on the SDSS and FNet grids, so no rescaling is needed), 0 where the
    pixel was masked, interpolated across or off the instrument's range.
    A spectrum with no usable pixel comes back as all zeros.
    """
    loglam = np.asarray(loglam, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    good = np.isfinite(flux) & np.isfinite(loglam)
    if ivar is not None:
        ivar = np.asarray(ivar, dtype=np.float64)
        good &= np.isfinite(ivar) & (ivar > 0)
    bad = _bad_mask(and_mask, bad_mask_bits)
    if bad is not None:
        good &= ~bad
    out_ivar = np.zeros(grid.size, dtype=np.float32)
    if good.sum() < 2:
        return np.zeros(grid.size, dtype=np.float32), out_ivar
    x, y = loglam[good], flux[good]
    out_flux = np.interp(grid, x, y).astype(np.float32)
    if ivar is not None:
        # nearest native pixel; zero if it is masked or the grid pixel is off-range
        idx = np.clip(np.searchsorted(loglam, grid), 0, loglam.size - 1)
        prev = np.clip(idx - 1, 0, loglam.size - 1)
        nearer_prev = np.abs(loglam[prev] - grid) < np.abs(loglam[idx] - grid)
        idx = np.where(nearer_prev, prev, idx)
        iv = np.where(good[idx], ivar[idx], 0.0)
        half = 0.5 * FNET_DLOGLAM
        in_range = (grid >= x[0] - half) & (grid <= x[-1] + half)
        out_ivar = np.where(in_range, iv, 0.0).astype(np.float32)
    return out_flux, out_ivar


def resample_batch(
    loglams: Sequence[np.ndarray],
    fluxes: Sequence[np.ndarray],
    ivars: Sequence[np.ndarray | None] | None = None,
    and_masks: Sequence[np.ndarray | None] | None = None,
    bad_mask_bits: Sequence[int] = DEFAULT_BAD_MASK_BITS,
) -> tuple[np.ndarray, np.ndarray]:
    """Many spectra of different lengths onto the FNet grid: (N x 4618 flux, N x 4618 ivar)."""
    n = len(fluxes)
    out_f = np.zeros((n, FNET_NPIX), dtype=np.float32)
    out_i = np.zeros((n, FNET_NPIX), dtype=np.float32)
    for k in range(n):
        out_f[k], out_i[k] = resample_one(
            loglams[k],
            fluxes[k],
            None if ivars is None else ivars[k],
            None if and_masks is None else and_masks[k],
            bad_mask_bits,
        )
    return out_f, out_i


def normalise(flux: np.ndarray) -> np.ndarray:
    """The published per-spectrum normalisation into (0, 1], over the last axis.

    z-score, then minus the minimum plus 0.001, then divided by the maximum.
    A constant spectrum (std 0) maps to a constant 1.
    """
    f = np.asarray(flux, dtype=np.float32)
    mean = f.mean(axis=-1, keepdims=True)
    std = f.std(axis=-1, keepdims=True)
    z = (f - mean) / np.where(std > 0, std, 1.0)
    z = z - z.min(axis=-1, keepdims=True) + np.float32(0.001)
    return (z / z.max(axis=-1, keepdims=True)).astype(np.float32)


def rebin_quasarnet(
    loglam: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """QuasarNET's input: ivar-weighted mean flux in 443 bins of 1e-3 dex, 3600-10000 A.

    Returns (flux, ivar) per bin; empty bins have flux 0 and ivar 0.
    Follows QuasarNET's `io.read_spcframe`/`read_spplate` rebinning.
    """
    loglam = np.asarray(loglam, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    bins = np.floor((loglam - QN_LOGLAM_MIN) / QN_DLOGLAM).astype(np.int64)
    ok = (bins >= 0) & (bins < QN_NBINS) & np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    fl = np.bincount(bins[ok], weights=(ivar * flux)[ok], minlength=QN_NBINS)
    iv = np.bincount(bins[ok], weights=ivar[ok], minlength=QN_NBINS)
    has = iv > 0
    fl[has] /= iv[has]
    return fl.astype(np.float32), iv.astype(np.float32)


def standardise_quasarnet(flux: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """QuasarNET's per-spectrum standardisation: ivar-weighted mean 0 and rms 1 over the last axis."""
    fl = np.asarray(flux, dtype=np.float64)
    iv = np.asarray(ivar, dtype=np.float64)
    wsum = iv.sum(axis=-1, keepdims=True)
    wsum = np.where(wsum > 0, wsum, 1.0)
    mean = (fl * iv).sum(axis=-1, keepdims=True) / wsum
    rms = np.sqrt(((fl - mean) ** 2 * iv).sum(axis=-1, keepdims=True) / wsum)
    out = (fl - mean) / np.where(rms > 0, rms, 1.0)
    return np.where(iv > 0, out, 0.0).astype(np.float32)
