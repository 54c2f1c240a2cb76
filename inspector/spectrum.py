"""The one record every reader returns, whatever the file format.

Readers differ (SDSS spec-lite, spPlate, DESI coadd, ...); everything downstream
(the FNet grid, the mock writer, the store, the app) sees only `Spectrum`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Spectrum:
    """A single 1-D spectrum on its native pixels, with the file's own labels.

    Units follow SDSS: `wave` in vacuum Angstrom, `flux` in 1e-17 erg/s/cm^2/A,
    `ivar` its inverse variance (0 where the pipeline has no information).
    """

    wave: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    source: str  # file path, plus "#fiber" / "#row" for files holding many spectra
    survey: str = "SDSS"  # SDSS | BOSS | eBOSS | DESI | MOCK
    and_mask: np.ndarray | None = None
    sky: np.ndarray | None = None
    plate: int | None = None
    mjd: int | None = None
    fiberid: int | None = None
    targetid: int | None = None
    ra: float | None = None
    dec: float | None = None
    spec_class: str | None = None  # the file's own CLASS (QSO / GALAXY / STAR)
    z: float | None = None  # the file's own pipeline redshift
    z_err: float | None = None
    zwarning: int | None = None
    sn_median_all: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def loglam(self) -> np.ndarray:
        return np.log10(self.wave)

    @property
    def object_id(self) -> str:
        """Survey id as people quote it: PLATE-MJD-FIBER for SDSS, TARGETID for DESI."""
        if self.plate is not None and self.mjd is not None and self.fiberid is not None:
            return f"{self.plate:04d}-{self.mjd:05d}-{self.fiberid:04d}"
        if self.targetid is not None:
            return str(self.targetid)
        return self.source

    @property
    def n_pix(self) -> int:
        return int(self.wave.size)
