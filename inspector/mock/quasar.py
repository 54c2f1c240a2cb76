"""A mock quasar's noiseless observed spectrum, built from the redrock eigenspectra.

The eigen-coefficients are drawn from those fitted to real SDSS quasars
(`calibration.py`), which gives real line shapes, FeII and continuum variety;
on top of that each object gets its own continuum slope, line strength
(Baldwin effect) and line width, host-galaxy light at low z, the Lyman-alpha
forest, DLAs and BAL troughs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d, minimum_filter1d

from inspector.mock import absorption
from inspector.mock.observe import RED_OF_LYA, forest_safe_median
from inspector.mock.templates import qso_basis, std_template

BAL_FRACTION = 0.12  # of quasars with CIV in the window, z > 1.6
# Lines a little stronger than the eigen fit's own: matches the real EW(CIV, MgII, Hb) medians (compare.py)
LINE_SCALE_LOG_MEAN = 0.2
# Fits of noisy real spectra can combine into an unphysical (negative) model; such draws are redrawn.
MAX_DRAWS = 30
MIN_FIT_SN = 2.0


@dataclass
class QuasarTruth:
    """What went into a mock quasar: written to the catalog so statistics can be checked."""

    z: float
    template: str
    line_scale: float
    line_sigma_kms: float
    slope_delta: float
    host_fraction: float
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


def emitted_rest(rng: np.random.Generator, calib: dict, z: float, luminosity: float) -> tuple[np.ndarray, np.ndarray, QuasarTruth, np.ndarray]:
    """Rest-frame (wave, flux) of the emission, its truth record, and the Legendre terms to add.

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

    host = 0.0
    if z < 0.6:
        host = float(rng.uniform(0, 0.8) * (1 - z / 0.6))
        gw, gf = std_template("GALAXY")
        g = np.interp(basis.wave, gw, gf, left=0, right=0)
        norm = np.interp(5100, basis.wave, flux) / max(np.interp(5100, gw, gf), 1e-30)
        flux = flux + host / max(1 - host, 0.05) * norm * g
    truth = QuasarTruth(z, which, line_scale, line_sigma, slope_delta, host)
    return basis.wave, flux, truth, coef[4:]


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
        rest_wave, rest_flux, truth, legendre = emitted_rest(rng, calib, z, luminosity)
        flux = np.interp(wave_obs / (1 + z), rest_wave, rest_flux) + np.polynomial.legendre.legval(x, legendre)
        med = np.median(flux[judged]) if judged.any() else np.median(flux)
        if med > 0 and np.mean(flux[judged] < 0.1 * med) <= 0.005:
            break  # a physical spectrum: no stretch of the continuum at or below zero
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
