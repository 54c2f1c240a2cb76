"""Stars and galaxies among the quasar candidates (~5% in the mock, as in a QSO target list)."""
from __future__ import annotations

import numpy as np

from inspector.mock.templates import std_template

C_KMS = 299792.458


def star_flux(rng: np.random.Generator, wave_obs: np.ndarray) -> tuple[np.ndarray, float]:
    """prospect's standard star, its colour varied by a power-law tilt; z from a radial velocity."""
    w, f = std_template("STAR")
    z = rng.normal(0, 60) / C_KMS
    flux = np.interp(wave_obs / (1 + z), w, f) * (wave_obs / 5000.0) ** rng.normal(0, 1.0)
    return flux / np.median(flux[flux > 0]), float(z)


def galaxy_flux(rng: np.random.Generator, wave_obs: np.ndarray) -> tuple[np.ndarray, float]:
    """prospect's standard galaxy at z in 0.02-0.7, its colour varied by a power-law tilt."""
    w, f = std_template("GALAXY")
    z = float(rng.uniform(0.02, 0.7))
    flux = np.interp(wave_obs / (1 + z), w, f, left=f[0], right=f[-1]) * (wave_obs / 5000.0) ** rng.normal(0, 0.5)
    flux = np.maximum(flux, 0)
    return flux / np.median(flux[flux > 0]), z
