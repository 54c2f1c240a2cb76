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
        """Id of this spectrum as people quote it: PLATE-MJD-FIBER for SDSS; for DESI the TARGETID
        plus the coadd it comes from, e.g. "39632936152072660-sv3-dark-9144" (healpix 9144 of
        sv3/dark) or "...-main-dark-80605-cumulative-20210205" (a tile coadd), because one target
        has a spectrum in each healpix / tile coadd it is in."""
        if self.plate is not None and self.mjd is not None and self.fiberid is not None:
            return f"{self.plate:04d}-{self.mjd:05d}-{self.fiberid:04d}"
        if self.targetid is not None:
            return "-".join([str(self.targetid), *self._coadd_keys()]) if self.survey == "DESI" else str(self.targetid)
        return self.source

    def _coadd_keys(self) -> list[str]:
        """What the DESI reader found of the coadd (primary header keys in `extra`): survey, program, then
        the healpix pixel, or the tile with its coadd group (SPGRP/SPGRPVAL: cumulative/night, pernight/night)."""
        e = self.extra

        def text(key: str) -> str | None:
            return None if e.get(key) in (None, "") else str(e[key]).strip().lower()

        keys = [text("SURVEY"), text("PROGRAM")]
        group = text("SPGRP")
        if group == "healpix" or ("HPXPIXEL" in e and "TILEID" not in e):
            keys.append(text("HPXPIXEL") or text("SPGRPVAL"))
        elif "TILEID" in e:
            keys.append(text("TILEID"))
            if group is not None:
                keys += [group, text("SPGRPVAL")]
        return [k for k in keys if k is not None]

    @property
    def n_pix(self) -> int:
        return int(self.wave.size)
