"""Rest-frame spectral templates shipped in `assets/`: redrock QSO eigenspectra, prospect's star/galaxy.

Data only; the physics that combines them lives in `quasar.py` and `contaminants.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits

ASSETS = Path(__file__).resolve().parents[2] / "assets"
TEMPLATE_DIR = ASSETS / "templates"


@dataclass(frozen=True)
class EigenBasis:
    """A redrock PCA basis: `vectors` (k x n) on rest-frame `loglam` (1e-4 dex steps)."""

    name: str
    loglam: np.ndarray
    vectors: np.ndarray

    @property
    def wave(self) -> np.ndarray:
        return 10.0**self.loglam

    def at(self, rest_wave: np.ndarray) -> np.ndarray:
        """The basis interpolated to `rest_wave` (k x m); NaN outside the template's range."""
        ll = np.log10(rest_wave)
        out = np.vstack([np.interp(ll, self.loglam, v, left=np.nan, right=np.nan) for v in self.vectors])
        return out


@lru_cache(maxsize=None)
def qso_basis(which: str) -> EigenBasis:
    """`which` is "LOZ" (rest 1329-9632 A, for z < 1.7) or "HIZ" (rest 444-4498 A, for z > 1.3)."""
    path = TEMPLATE_DIR / f"rrtemplate-QSO-{which}-v1.1.fits"
    with fits.open(path) as h:
        hdr = h[0].header
        vec = np.asarray(h[0].data, dtype=np.float64)
        loglam = hdr["CRVAL1"] + hdr["CDELT1"] * (np.arange(vec.shape[1]) + 1 - hdr["CRPIX1"])
    return EigenBasis(which, loglam, vec)


@lru_cache(maxsize=None)
def std_template(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """prospect's standard rest-frame template for "GALAXY", "STAR" or "QSO": (wave A, flux)."""
    with fits.open(TEMPLATE_DIR / "std_templates.fits") as h:
        for hdu in h[1:]:
            names = hdu.columns.names
            if f"wave_{kind}" in names:
                return (np.asarray(hdu.data[f"wave_{kind}"], float), np.asarray(hdu.data[f"flux_{kind}"], float))
    raise KeyError(kind)
