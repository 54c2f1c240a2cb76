"""Mock quasars drawn one by one and a line measured on each: how the mock tests check that a catalog's
drawn truth (MOCK_OIII_EW, MOCK_HALPHA_EW) is what a person measures on the spectrum."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from inspector.mock import quasar

WAVE = 10 ** (3.55 + 1e-4 * np.arange(4700))  # BOSS-like observed grid


def drawn_and_measured(
    calib: dict, seed: int, n: int, z_range: tuple[float, float], truth_field: str,
    measure: Callable[[np.ndarray, np.ndarray], float],
) -> tuple[np.ndarray, np.ndarray]:
    """(drawn, measured) for `n` noiseless quasars at z uniform in `z_range`: the truth record's
    `truth_field` and `measure(rest_wave, flux)` on the observed spectrum."""
    rng = np.random.default_rng(seed)
    drawn, measured = [], []
    for _ in range(n):
        z = rng.uniform(*z_range)
        flux, truth = quasar.observed_flux(rng, calib, z, WAVE)
        drawn.append(getattr(truth, truth_field))
        measured.append(measure(WAVE / (1 + z), flux))
    return np.asarray(drawn, float), np.asarray(measured, float)
