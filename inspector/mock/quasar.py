"""A mock quasar's noiseless observed spectrum, built from the redrock eigenspectra.

The eigen-coefficients are drawn from those fitted to real SDSS quasars
(`calibration.py`), which gives real line shapes, FeII and continuum variety;
on top of that each object gets its own continuum slope, line strength
(Baldwin effect) and line width, a narrow-line region with the real
quasars' [O III] strengths (`narrow_lines.py`), host-galaxy light at z < 0.8
(`host.py`), broad Halpha as strong as real quasars' (`broad_halpha.py`), the Lyman-alpha forest, DLAs and BAL troughs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d, minimum_filter1d

from inspector.mock import absorption, broad_halpha, host, narrow_lines
from inspector.mock.observe import RED_OF_LYA, forest_safe_median
from inspector.mock.templates import qso_basis

BAL_FRACTION = 0.12  # of quasars with CIV in the window, z > 1.6
# Lines a little stronger than the eigen fit's own: matches the real EW(CIV, MgII, Hb) medians (compare.py)
LINE_SCALE_LOG_MEAN = 0.2
# Fits of noisy real spectra can combine into an unphysical (negative) model; such draws are redrawn.
MAX_DRAWS = 30
MIN_FIT_SN = 2.0
# Host light at 5100 A, as a fraction of the total: up to HOST_MAX_FRACTION at z = 0, none from HOST_Z_MAX
# (an SDSS fiber's 2-3" take in most of a z < 0.3 host, little of one at z 0.8).
HOST_Z_MAX = 0.8
HOST_MAX_FRACTION = 0.85
# Broad Halpha is drawn to the real quasars' EWs (`broad_halpha`) where a spectrograph can see it.
HALPHA_Z_MAX = 0.6


@dataclass
class QuasarTruth:
    """What went into a mock quasar: written to the catalog so statistics can be checked."""

    z: float
    template: str
    line_scale: float
    line_sigma_kms: float
    slope_delta: float
    host_fraction: float
    oiii_ew: float = np.nan  # rest EW([O III] 5007) against the 5100 A continuum, as drawn
    halpha_ew: float = np.nan  # rest EW(broad Halpha + [N II]) as drawn (z < HALPHA_Z_MAX only)
    bal: absorption.Bal | None = None
    dlas: list[absorption.Dla] = field(default_factory=list)


def _draw_coefficients(rng: np.random.Generator, calib: dict, which: str) -> np.ndarray:
    """Smoothed bootstrap of the real fits: pick a real quasar's coefficients, add a little jitter.

    Fits of low S/N spectra are mostly noise, so draws are weighted by S/N.
    """
    sn = calib[f"{which}_sn"].astype(float)
    coefs = calib[f"{which}_coef"].astype(float)[sn >= MIN_FIT_SN]
    w = np.clip(sn[sn >= MIN_FIT_SN], 0.5, 15.0)
    pick = coefs[rng.choice(len(coefs), p=w / w.sum())].copy()
    q25, q75 = np.percentile(coefs, [25, 75], axis=0)
    pick[1:] += rng.normal(0, 0.1 * (q75 - q25)[1:] / 1.35)
    return pick


def _split_lines(model: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(continuum, lines) of a rest-frame model: continuum is a smoothed running lower envelope."""
    cont = gaussian_filter1d(minimum_filter1d(model, 401, mode="nearest"), 120, mode="nearest")
    cont = np.minimum(cont, model)
    cont = gaussian_filter1d(cont, 40, mode="nearest")
    return cont, model - cont


def emitted_rest(
    rng: np.random.Generator, calib: dict, z: float, luminosity: float
) -> tuple[np.ndarray, np.ndarray, QuasarTruth, np.ndarray, np.ndarray]:
    """Rest-frame (wave, flux) of the emission but the narrow lines, its truth record, the Legendre terms
    to add, and the broad-line part of the flux (what `broad_halpha` rescales).

    `luminosity` is relative to L* (log-normal around 1): lines get weaker as it grows.
    """
    if z < 1.3:
        which = "LOZ"
    elif z > 1.7:
        which = "HIZ"
    else:
        which = "LOZ" if rng.random() < 0.5 else "HIZ"
    basis = qso_basis(which)
    coef = _draw_coefficients(rng, calib, which)
    model = coef[:4] @ basis.vectors
    cont, lines = _split_lines(model)

    slope_delta = float(rng.normal(0, 0.3))
    tilt = (basis.wave / 3000.0) ** slope_delta
    line_scale = float(np.exp(rng.normal(LINE_SCALE_LOG_MEAN, 0.25)) * luminosity**-0.15)
    line_sigma = float(abs(rng.normal(0, 700)))
    lines = gaussian_filter1d(lines, line_sigma / 69.0) if line_sigma > 35 else lines
    flux = cont * tilt + line_scale * lines

    host_fraction = 0.0
    if z < HOST_Z_MAX:
        host_fraction = float(rng.uniform(0, HOST_MAX_FRACTION) * (1 - z / HOST_Z_MAX))
        quasar_5100 = narrow_lines.continuum_5100(basis.wave, flux)
        flux = flux + host_fraction / (1 - host_fraction) * quasar_5100 * host.draw_host(rng, basis.wave)
    truth = QuasarTruth(z, which, line_scale, line_sigma, slope_delta, host_fraction)
    return basis.wave, flux, truth, coef[4:], line_scale * lines


def _with_narrow_lines(
    rng: np.random.Generator, calib: dict, z: float, wave_obs: np.ndarray, rest_wave: np.ndarray, rest_flux: np.ndarray,
    poly: np.ndarray, truth: QuasarTruth, broad_lines: np.ndarray,
) -> np.ndarray:
    """Observed flux with the narrow lines added in the rest frame and broad Halpha at its drawn EW;
    sets `truth.oiii_ew` and `truth.halpha_ew`.

    The EW reference is the continuum at 5100 A as observed, i.e. with the
    Legendre terms (`poly`, observed frame) that real-fit distortions add,
    since that is what a measurement on the spectrum divides by. The eigen
    fit's own blurred, average [O III] is cut out first, so the drawn EW is
    the spectrum's whole [O III].
    """
    rest_cont = narrow_lines.continuum_5100(rest_wave, rest_flux)
    cont = max(rest_cont + float(np.interp(5100 * (1 + z), wave_obs, poly)), 0.1 * rest_cont)
    truth.oiii_ew = narrow_lines.draw_oiii_ew(rng, calib)
    rest_flux = narrow_lines.without_oiii(rest_wave, rest_flux)
    with_lines = narrow_lines.add_narrow_lines(rng, rest_wave, rest_flux, truth.oiii_ew, cont)
    if z < HALPHA_Z_MAX:  # measured, like the EW of a real spectrum, with the observed-frame terms in
        poly_rest = np.interp(rest_wave * (1 + z), wave_obs, poly)
        truth.halpha_ew = broad_halpha.draw_halpha_ew(rng, calib)
        with_lines = broad_halpha.with_halpha_ew(rest_wave, with_lines + poly_rest, broad_lines, truth.halpha_ew) - poly_rest
    return np.interp(wave_obs / (1 + z), rest_wave, with_lines) + poly


def observed_flux(
    rng: np.random.Generator,
    calib: dict,
    z: float,
    wave_obs: np.ndarray,
    luminosity: float = 1.0,
    allow_bal: bool = True,
) -> tuple[np.ndarray, QuasarTruth]:
    """Noiseless observed-frame flux (arbitrary units, median ~1) and the truth record.

    A draw whose continuum dips to zero redward of 1100 A rest (an unphysical
    combination of noisy real fits) is redrawn. Pixels beyond the template's
    rest range take its edge value; that only happens far below the Lyman limit.
    """
    x = np.linspace(-1, 1, wave_obs.size)
    judged = wave_obs / (1 + z) > 1100  # the far-UV below is mostly absorbed anyway
    for _ in range(MAX_DRAWS):
        rest_wave, rest_flux, truth, legendre, broad_lines = emitted_rest(rng, calib, z, luminosity)
        poly = np.polynomial.legendre.legval(x, legendre)
        flux = np.interp(wave_obs / (1 + z), rest_wave, rest_flux) + poly
        med = np.median(flux[judged]) if judged.any() else np.median(flux)
        if med > 0 and np.mean(flux[judged] < 0.1 * med) <= 0.005:
            break  # a physical spectrum: no stretch of the continuum at or below zero
    flux = _with_narrow_lines(rng, calib, z, wave_obs, rest_wave, rest_flux, poly, truth, broad_lines)
    flux = np.maximum(flux, 0.02 * abs(med))

    trans = absorption.forest_transmission(rng, wave_obs, z)
    truth.dlas = absorption.draw_dlas(rng, z, float(wave_obs[0]))
    if truth.dlas:
        trans *= absorption.dla_transmission(wave_obs, truth.dlas)
    if allow_bal and z > 1.6 and rng.random() < BAL_FRACTION:
        truth.bal = absorption.draw_bal(rng)
        trans *= absorption.bal_transmission(wave_obs, z, truth.bal)
    flux = flux * trans
    pos = flux > 0
    return flux / forest_safe_median(flux[pos], (wave_obs / (1 + z) > RED_OF_LYA)[pos]), truth
