"""Refine a click on a spectral feature to the feature's fitted centre (Marz-style).

A person clicks a line to within a few pixels at best, and on a smoothed or zoomed-out plot to
within tens of Angstrom; a redshift taken from the raw click would carry that error. So the click
only chooses a window (+-`half_width_kms`), and inside it a Gaussian on a linear continuum is fitted
by ivar-weighted least squares, started at the extremum that stands furthest out of the noise: the
peak makes it an emission line, the trough an absorption line.

Every failure (too few pixels, no convergence, a centre that runs out of the window, a line not
significant, a one-pixel spike) returns None, never an exception: the caller then keeps the click.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from model.metrics import C_KMS

MIN_PIXELS = 8  # 5 parameters plus enough to tell a line from its continuum
# |amplitude| / its 1-sigma error. Not 3: the fit starts at the largest of the window's few dozen noise
# excursions and its width is free, so on pure noise 3 sigma is passed often enough to mislead.
MIN_SNR = 4.0
# A fitted sigma below half a pixel is a single hot pixel or cosmic ray, not a resolved line.
MIN_SIGMA_PIX = 0.5


@dataclass(frozen=True)
class FeatureFit:
    """A fitted line: observed centre and width in Angstrom, amplitude in flux units (negative for
    absorption), `snr` = |amplitude| / its error."""

    center: float
    center_err: float
    kind: Literal["emission", "absorption"]
    amplitude: float
    sigma: float
    snr: float


def _model(x: np.ndarray, amp: float, mu: float, sig: float, c0: float, c1: float) -> np.ndarray:
    return amp * np.exp(-0.5 * ((x - mu) / sig) ** 2) + c0 + c1 * x


def _start(x: np.ndarray, f: np.ndarray, w: np.ndarray) -> tuple[float, float, float, float, float]:
    """Starting values: a flat continuum at the weighted median flux, the line at the 3-pixel mean that
    stands furthest from it in units of its noise.

    The median, not a fit to the window's edges: a click 10-15 A off a line puts the line itself near
    an edge, where it would drag an edge-fitted continuum onto it; a line covering less than half the
    window leaves the median on the continuum."""
    order = np.argsort(f)
    cw = np.cumsum(w[order])
    c0 = float(f[order][min(np.searchsorted(cw, 0.5 * cw[-1]), f.size - 1)])
    resid = f - c0
    box = np.ones(3)  # so that one noisy pixel does not choose the line
    wsum = np.convolve(w, box, mode="same")
    mean = np.convolve(w * resid, box, mode="same") / wsum
    i = int(np.argmax(np.abs(mean * np.sqrt(wsum))))
    amp = float(mean[i])
    # FWHM: where the residual first falls below half the extremum on either side
    beyond_half = np.sign(amp or 1.0) * resid >= 0.5 * abs(amp)
    lo = hi = i
    while lo > 0 and beyond_half[lo - 1]:
        lo -= 1
    while hi < f.size - 1 and beyond_half[hi + 1]:
        hi += 1
    dx = float(np.median(np.diff(x)))
    return amp, float(x[i]), max((x[hi] - x[lo] + dx) / 2.355, dx), c0, 0.0


def fit_feature(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, click_wave: float,
                half_width_kms: float = 1500.0) -> FeatureFit | None:
    """The line nearest the click (`click_wave`, observed Angstrom), or None where no line is
    significant within +-`half_width_kms` of it."""
    wave = np.asarray(wave, dtype=float)
    flux = np.asarray(flux, dtype=float)
    ivar = np.asarray(ivar, dtype=float)
    if not (np.isfinite(click_wave) and click_wave > 0 and half_width_kms > 0):
        return None
    half = click_wave * half_width_kms / C_KMS
    lo, hi = click_wave - half, click_wave + half
    sel = (wave >= lo) & (wave <= hi) & np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    if np.count_nonzero(sel) < MIN_PIXELS:
        return None
    x, f, w = wave[sel], flux[sel], ivar[sel]
    p0 = _start(x - click_wave, f, w)  # centred on the click: a well-conditioned continuum slope
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, pcov = curve_fit(_model, x - click_wave, f, p0=p0, sigma=1.0 / np.sqrt(w),
                                   absolute_sigma=True, maxfev=2000)
    except (RuntimeError, ValueError, np.linalg.LinAlgError):
        return None
    amp, mu, sig = float(popt[0]), float(popt[1]) + click_wave, abs(float(popt[2]))
    with np.errstate(invalid="ignore"):
        err = np.sqrt(np.diag(pcov)) if np.all(np.isfinite(pcov)) else np.full(5, np.inf)
    dx = float(np.median(np.diff(x))) if x.size > 1 else np.inf
    snr = abs(amp) / err[0] if err[0] > 0 else 0.0
    # a Gaussian wider than the window is the continuum's curvature, not a line
    if not (np.isfinite(err[1]) and lo <= mu <= hi and snr >= MIN_SNR and MIN_SIGMA_PIX * dx <= sig <= hi - lo):
        return None
    return FeatureFit(center=mu, center_err=float(err[1]), kind="emission" if amp > 0 else "absorption",
                      amplitude=amp, sigma=sig, snr=float(snr))


def z_from_feature(center: float, center_err: float, rest_wave: float) -> tuple[float, float]:
    """(z, its 1-sigma error) if the fitted line is the one at `rest_wave` (vacuum Angstrom)."""
    return center / rest_wave - 1.0, center_err / rest_wave
