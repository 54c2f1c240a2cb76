"""Mask emission lines on FNet-grid spectra at a known redshift: the FNet paper's line-masking test.

Rastegar Nia et al. (arXiv 2201.03393, Figs. 6-7) asked whether FNet reads a
redshift only off the broad emission lines, as a line finder does, or also
off the continuum and the Lyman-alpha forest. They masked the strong UV lines
of 2.8 <= z <= 3.0 quasars in both the training and the test spectra and
still measured 98.5 % within 6000 km/s. This module does the masking, so the
test can be repeated on any set of FNet-grid spectra.

What "masked" means here:

* a window of +-`half_width_kms` around each line's observed wavelength
  lambda_rest (1 + z) is cut out; windows that overlap (Lya and N V, C II and
  Si IV at the default width) are merged into one;
* the flux in each window is replaced by the straight line joining the mean
  flux of `edge_pixels` pixels just outside either edge (one pixel would carry
  that pixel's noise into the whole window; a window that runs off the grid
  takes the value of its one inside edge); the grid ivar there becomes 0,
  which says "not data", as `model.grid` does for bridged pixels.

Why +-7500 km/s by default: broad UV lines have FWHM ~ 3000-10000 km/s
(typically ~5000) and C IV is blueshifted by up to ~2000 km/s. For a Gaussian
of FWHM 5000 km/s, +-7500 km/s is +-3.5 sigma (all but 0.05 % of the line);
for FWHM 8000 it is +-2.2 sigma (97 %). Much wider windows would swallow the
continuum between the lines, and the test is about what is left there.

The "noise" fill adds Gaussian noise to the straight line, with the
pixel-to-pixel scatter measured just outside the window. Why offer it: a
noise-free straight segment in a noisy spectrum is easy for a convolutional
network to spot, and its position is lambda_rest (1 + z): the mask itself
would then tell the network the redshift. Neither fill hides every trace of
a window (its edges, the forest missing inside it), so whether a model reads
z off the spectrum or off the mask is measured, not assumed: the decoy test
of `bench/line_masking.py` masks test spectra at a wrong z.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .grid import FNET_LOGLAM
from .metrics import C_KMS

# The lines the paper masks, rest-frame vacuum Angstrom. Si IV+O IV is the blend's usual centre.
PAPER_MASKED_LINES: tuple[tuple[str, float], ...] = (
    ("O VI", 1033.82),
    ("Lya", 1215.67),
    ("N V", 1240.81),
    ("C II", 1335.30),
    ("Si IV+O IV", 1400.0),
    ("C IV", 1549.06),
    ("C III]", 1908.73),
)
DEFAULT_HALF_WIDTH_KMS = 7500.0
DEFAULT_EDGE_PIXELS = 5
NOISE_PIXELS = 30  # pixels each side of a window over which the "noise" fill measures the scatter
FILLS = ("line", "noise")


def line_windows(
    z: float,
    lines: Sequence[tuple[str, float]] = PAPER_MASKED_LINES,
    half_width_kms: float = DEFAULT_HALF_WIDTH_KMS,
) -> np.ndarray:
    """Observed-frame (lo, hi) wavelengths of the masked windows at redshift z, merged and sorted (K x 2)."""
    if not half_width_kms > 0:
        raise ValueError(f"half_width_kms must be > 0, got {half_width_kms}")
    if not np.isfinite(z) or z <= -1:
        raise ValueError(f"redshift must be finite and > -1, got {z}")
    beta = half_width_kms / C_KMS
    centres = np.sort(np.array([lam for _, lam in lines], dtype=np.float64)) * (1.0 + z)
    merged: list[list[float]] = []
    for c in centres:
        lo, hi = c * (1.0 - beta), c * (1.0 + beta)
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return np.array(merged, dtype=np.float64).reshape(-1, 2)


def window_mask(
    z: np.ndarray,
    lines: Sequence[tuple[str, float]] = PAPER_MASKED_LINES,
    half_width_kms: float = DEFAULT_HALF_WIDTH_KMS,
    loglam: np.ndarray = FNET_LOGLAM,
) -> np.ndarray:
    """N x n_pix booleans: True where a pixel of the grid falls in a masked window of its spectrum's z."""
    zz = np.atleast_1d(np.asarray(z, dtype=np.float64))
    wave = 10.0 ** np.asarray(loglam, dtype=np.float64)
    out = np.zeros((zz.size, wave.size), dtype=bool)
    for i, zi in enumerate(zz):
        for lo, hi in line_windows(float(zi), lines, half_width_kms):
            out[i] |= (wave >= lo) & (wave <= hi)
    return out


def _runs(mask_row: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    d = np.diff(np.concatenate(([0], mask_row.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _bridge(row: np.ndarray, a: int, b: int, edge: int) -> tuple[np.ndarray, float]:
    """The straight line across row[a:b] between the edge means, and the scatter just outside (for the noise fill)."""
    n = row.size
    left = row[max(a - edge, 0) : a]
    right = row[b : min(b + edge, n)]
    if left.size == 0 and right.size == 0:
        raise ValueError("a masked window covers the whole spectrum; nothing is left to interpolate from")
    lv = float(left.mean()) if left.size else float(right.mean())
    rv = float(right.mean()) if right.size else lv
    t = (np.arange(a, b) - (a - 1)) / float(b - (a - 1))
    outside = np.concatenate((row[max(a - NOISE_PIXELS, 0) : a], row[b : min(b + NOISE_PIXELS, n)]))
    scatter = float(np.std(np.diff(outside)) / np.sqrt(2.0)) if outside.size > 2 else 0.0
    return lv + (rv - lv) * t, scatter


def mask_lines(
    flux: np.ndarray,
    z: np.ndarray,
    ivar: np.ndarray | None = None,
    *,
    lines: Sequence[tuple[str, float]] = PAPER_MASKED_LINES,
    half_width_kms: float = DEFAULT_HALF_WIDTH_KMS,
    fill: str = "line",
    edge_pixels: int = DEFAULT_EDGE_PIXELS,
    seed: int = 0,
    loglam: np.ndarray = FNET_LOGLAM,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(masked flux, masked ivar or None, window mask) for N spectra on `loglam` at their known z.

    The inputs are not changed. `fill`: "line" (a straight line) or
    "noise" (the straight line plus noise of the neighbouring scatter, drawn
    from a generator seeded with `seed`); see the module docstring.
    """
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    if edge_pixels < 1:
        raise ValueError(f"edge_pixels must be >= 1, got {edge_pixels}")
    f = np.array(flux, dtype=np.float32, copy=True, ndmin=2)
    zz = np.atleast_1d(np.asarray(z, dtype=np.float64))
    if zz.size != f.shape[0]:
        raise ValueError(f"{f.shape[0]} spectra but {zz.size} redshifts")
    if f.shape[1] != np.size(loglam):
        raise ValueError(f"spectra have {f.shape[1]} pixels, the grid {np.size(loglam)}")
    mask = window_mask(zz, lines, half_width_kms, loglam)
    rng = np.random.default_rng(seed)
    for i in range(f.shape[0]):
        row = f[i].astype(np.float64)
        for a, b in _runs(mask[i]):
            bridge, scatter = _bridge(row, a, b, edge_pixels)
            if fill == "noise":
                bridge = bridge + rng.normal(0.0, scatter, bridge.size)
            f[i, a:b] = bridge
    iv = None
    if ivar is not None:
        iv = np.array(ivar, dtype=np.float32, copy=True, ndmin=2)
        if iv.shape != f.shape:
            raise ValueError(f"ivar has shape {iv.shape}, flux {f.shape}")
        iv[mask] = 0.0
    return f, iv, mask


__all__ = [
    "DEFAULT_EDGE_PIXELS",
    "DEFAULT_HALF_WIDTH_KMS",
    "FILLS",
    "PAPER_MASKED_LINES",
    "line_windows",
    "mask_lines",
    "window_mask",
]
