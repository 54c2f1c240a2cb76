"""Inverse-variance weighted Gaussian smoothing of a spectrum, and the noise of what it draws.

An unweighted kernel lets a sky-line residual (huge flux, tiny ivar) leak into its neighbours and
look like an emission line once smoothed; weighting each pixel by g_k * ivar_k makes it count as
little as its noise deserves, and pixels without data (ivar = 0) not at all. The smoothed value is
then a weighted mean, whose 1-sigma error sqrt(sum g^2 ivar) / sum(g ivar) is the noise curve to
draw under it: it narrows as the smoothing widens, so a feature that only appears smoothed can be
judged against the noise it is actually seen at.

Outside the spectrum there is no data, so the kernel sees zeros there (no mirrored pixels that would
count the edge twice and understate its noise).
"""
from __future__ import annotations

from functools import partial

import numpy as np
from scipy.ndimage import correlate1d

TRUNCATE = 4.0  # kernel half-width in sigma, as scipy's gaussian_filter1d
# A pixel is NaN when the data within its kernel carry less than this fraction of the kernel's weight
# (only the far tails reach a data pixel): its "mean" would be a few distant pixels, not a smoothing.
MIN_COVERAGE = 1e-3


def smooth(flux: np.ndarray, ivar: np.ndarray, sigma_pix: float) -> tuple[np.ndarray, np.ndarray]:
    """(smoothed flux, its 1-sigma noise) per pixel; NaN in both where there is no data to smooth.

    `sigma_pix` <= 0 returns the flux as it is with noise 1/sqrt(ivar), NaN where ivar = 0 so a plot
    shows a gap rather than an infinite band."""
    f = np.asarray(flux, dtype=float)
    iv = np.asarray(ivar, dtype=float)
    good = np.isfinite(f) & np.isfinite(iv) & (iv > 0)
    w = np.where(good, iv, 0.0)
    if not sigma_pix > 0 or f.size == 0:
        with np.errstate(divide="ignore"):
            return f.copy(), np.where(good, 1.0 / np.sqrt(np.where(good, w, 1.0)), np.nan)
    half = max(int(TRUNCATE * sigma_pix + 0.5), 1)
    k = np.arange(-half, half + 1, dtype=float)
    g = np.exp(-0.5 * (k / sigma_pix) ** 2)
    g /= g.sum()
    conv = partial(correlate1d, mode="constant", cval=0.0)
    den = conv(w, g)
    num = conv(np.where(good, w * f, 0.0), g)
    var = conv(w, g * g)
    coverage = conv(good.astype(float), g)
    ok = (coverage > MIN_COVERAGE) & (den > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        flux_s = np.where(ok, num / den, np.nan)
        noise_s = np.where(ok, np.sqrt(var) / den, np.nan)
    return flux_s, noise_s
