"""One spectrum stored as 1-D image HDUs (linetools / IRAF style).

Layout seen in linetools' test file (a BOSS v5_7_0 spectrum, plate 5063):
HDU0 flux image with COEFF0/COEFF1 and the pipeline's primary header,
HDU1 an error-like array, HDU2 log10 wavelength, HDU3 a 0/1 mask.

Decisions, each from what the file itself shows:
- HDU1 is "error-like" but its kind is not labelled. In linetools' file it is
  an inverse variance, not a sigma: 1/sqrt(HDU1) matches the pixel-to-pixel
  scatter of the flux (e.g. 0.44 vs 0.45 around 4400 A) while HDU1 itself is
  ~12x too large to be a sigma. So the kind is decided per file from the data:
  the robust scatter of first differences is compared with what each reading
  predicts, the closer one (in log) wins, and extra['error_hdu'] says which
  ('ivar' or 'sigma'). As sigma: ivar = 1/err^2 where err > 0, else 0.
- HDU3: 1 = good, 0 = bad (ivar set to 0). Every pixel with err = 0 has mask 0,
  and 97% of pixels are 1, so 1 cannot mean "masked".
- Wavelength from HDU2 when present (it is what the file says per pixel),
  else from COEFF0/COEFF1.
- No class/z/fiber in the file. When the file name is an SDSS designation
  (SDSSJhhmmss.ss+ddmmss.s) RA/DEC are decoded from it, and
  extra['radec_from_name'] = True records where they came from.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inspector.readers import rawfits
from inspector.readers.common import (
    PathLike,
    check_pixel_count,
    guess_survey,
    header_number,
    names_the_file,
    open_hdus,
    require_float,
)
from inspector.readers.errors import SpectrumFileError
from inspector.readers.validate import validate_spectrum
from inspector.spectrum import Spectrum

_SDSS_NAME = re.compile(r"J(\d{2})(\d{2})(\d{2}(?:\.\d+)?)([+-])(\d{2})(\d{2})(\d{2}(?:\.\d+)?)")


def read_image_spectrum(path: PathLike) -> list[Spectrum]:
    """A one-element list, like the other many-spectrum readers."""
    return from_hdus(path, open_hdus(path))


def looks_like(hdus: list[rawfits.HDU]) -> bool:
    return len(hdus[0].shape) == 1 and ("COEFF0" in hdus[0] or (len(hdus) > 2 and len(hdus[2].shape) == 1))


def _vector(path: PathLike, hdus: list[rawfits.HDU], index: int, npix: int, what: str) -> np.ndarray | None:
    if len(hdus) <= index or not hdus[index].is_image:
        return None
    data = hdus[index].image().reshape(-1)
    if data.size != npix:
        raise SpectrumFileError(path, f"array length mismatch: HDU {index} ({what}) has {data.size} pixels, flux has {npix}")
    return data


@names_the_file
def from_hdus(path: PathLike, hdus: list[rawfits.HDU]) -> list[Spectrum]:
    return [_spectrum(path, hdus)]


def _spectrum(path: PathLike, hdus: list[rawfits.HDU]) -> Spectrum:
    primary = hdus[0]
    if len(primary.shape) != 1:
        raise SpectrumFileError(path, f"HDU 0 should be a 1-D flux image, got shape {primary.shape}")
    check_pixel_count(path, primary.shape[0], "HDU 0 (flux)")
    flux = require_float(path, primary.image(), "HDU 0 (flux)").astype(np.float32)
    npix = flux.size
    loglam = _vector(path, hdus, 2, npix, "log10 wavelength")
    if loglam is None:
        if "COEFF0" not in primary or "COEFF1" not in primary:
            raise SpectrumFileError(path, "no wavelength: neither an HDU 2 loglam array nor COEFF0/COEFF1 in HDU 0")
        loglam = header_number(path, primary, "COEFF0") + header_number(path, primary, "COEFF1") * np.arange(npix)
    else:
        require_float(path, loglam, "HDU 2 (log10 wavelength)")
    err = _vector(path, hdus, 1, npix, "error")
    if err is None:
        raise SpectrumFileError(path, "missing HDU 1 (error array): the file has only 1 HDU")
    err = require_float(path, err, "HDU 1 (error)").astype(np.float64)
    kind = _error_kind(flux, err)
    good = np.isfinite(err) & (err > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ivar = np.where(good, err if kind == "ivar" else 1.0 / err**2, 0.0).astype(np.float32)
    mask = _vector(path, hdus, 3, npix, "mask")
    if mask is not None:
        ivar[mask == 0] = 0.0

    mjd, run2d = header_number(path, primary, "MJD", integer=True), str(primary.get("RUN2D", "") or "").strip()
    with np.errstate(over="ignore"):  # an absurd loglam gives inf, which validation names
        wave = np.power(10.0, loglam.astype(np.float64))
    spec = Spectrum(wave=wave, flux=flux, ivar=ivar, source=str(path), survey=guess_survey(run2d, mjd),
                    plate=header_number(path, primary, "PLATEID", integer=True), mjd=mjd)
    spec.extra["error_hdu"] = kind
    if run2d:
        spec.extra["RUN2D"] = run2d
    match = _SDSS_NAME.search(Path(path).name)
    if match:
        h, m, s, sign, d, dm, ds = match.groups()
        spec.ra = 15.0 * (int(h) + int(m) / 60 + float(s) / 3600)
        spec.dec = (1 if sign == "+" else -1) * (int(d) + int(dm) / 60 + float(ds) / 3600)
        spec.extra["radec_from_name"] = True
    return validate_spectrum(spec, path)


def _error_kind(flux: np.ndarray, err: np.ndarray) -> str:
    """'ivar' or 'sigma': which reading of the error HDU agrees with the flux's own scatter."""
    good = np.isfinite(err) & (err > 0) & np.isfinite(flux)
    pair = good[1:] & good[:-1]
    if pair.sum() < 20:
        return "sigma"
    diff = np.diff(flux.astype(np.float64))[pair] / np.sqrt(2.0)
    noise = 1.4826 * np.median(np.abs(diff - np.median(diff)))
    typical = float(np.median(err[good]))
    if not noise > 0:
        return "sigma"
    as_sigma = abs(np.log(typical / noise))
    as_ivar = abs(np.log(1.0 / np.sqrt(typical) / noise))
    return "ivar" if as_ivar < as_sigma else "sigma"
