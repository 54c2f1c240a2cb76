"""Synthetic quasar-like spectra for the model tests: a flat continuum, six broad lines at a known z, noise."""
from __future__ import annotations

import numpy as np

from model.grid import FNET_LOGLAM, FNET_NPIX

LINES = (1215.67, 1549.06, 1908.73, 2798.75, 4862.68, 6564.61)


def line_spectra(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N x 4618 flux on the FNet grid, not normalised; z uniform in [0.5, 3])."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.5, 3.0, n)
    flux = np.ones((n, FNET_NPIX), np.float32)
    for i in range(n):
        for line in LINES:
            flux[i] += 3 * np.exp(-0.5 * ((FNET_LOGLAM - np.log10(line * (1 + z[i]))) / 0.002) ** 2)
    flux += 0.05 * rng.standard_normal(flux.shape).astype(np.float32)
    return flux, z
