"""SDSS/BOSS `spPlate-PLATE-MJD.fits`: all fibers of a plate in one file.

Layout (idlspec2d): HDU0 flux image [nfiber, npix] with COEFF0/COEFF1
(log10 wavelength of pixel 0 and step), HDU1 ivar, HDU2 and_mask, HDU3
or_mask, HDU4 wdisp, HDU5 plug map (one row per fiber: RA, DEC, OBJTYPE,
FIBERID, ...). Only HDU0 is required.

Without HDU1 (pydl's test file ships HDU0 alone) there are no errors at all.
Rather than refuse the file, ivar is set to 1 where flux != 0 and 0 elsewhere,
and `extra['ivar_missing'] = True` says so: such spectra can be looked at and
fed to FNet (which ignores ivar) but any chi^2 or S/N computed from them is
meaningless.

A fiber that fails validation (unplugged, broken: ivar all zero) is skipped
with a SpectrumFileWarning instead of failing the other 999.
"""
from __future__ import annotations

import warnings

import numpy as np

from inspector.readers import rawfits
from inspector.readers.common import (
    PathLike,
    check_pixel_count,
    check_spectra_count,
    coeff_wavelengths,
    guess_survey,
    header_number,
    names_the_file,
    open_hdus,
    require_float,
    require_numeric,
)
from inspector.readers.errors import SpectrumFileError, SpectrumFileWarning
from inspector.readers.validate import validate_spectrum
from inspector.spectrum import Spectrum

PLUGMAP_HDU = 5


def read_spplate(path: PathLike) -> list[Spectrum]:
    """One Spectrum per usable fiber, in fiber order; source is "path#FIBER"."""
    return from_hdus(path, open_hdus(path))


def _image_like(path: PathLike, hdus: list[rawfits.HDU], index: int, shape: tuple[int, ...]) -> np.ndarray | None:
    if len(hdus) <= index or not hdus[index].is_image:
        return None
    if hdus[index].shape != shape:
        raise SpectrumFileError(path, f"HDU {index} has shape {hdus[index].shape}, HDU 0 (flux) has {shape}")
    return hdus[index].image()


@names_the_file
def from_hdus(path: PathLike, hdus: list[rawfits.HDU]) -> list[Spectrum]:
    primary = hdus[0]
    if len(primary.shape) != 2:
        raise SpectrumFileError(path, f"HDU 0 should be a 2-D flux image [fiber, pixel], got shape {primary.shape}")
    nfiber, npix = primary.shape
    check_spectra_count(path, nfiber, "fibers")
    check_pixel_count(path, npix, "HDU 0 (flux)")
    wave = coeff_wavelengths(path, primary, npix)
    flux = require_float(path, primary.image(), "HDU 0 (flux)").astype(np.float32, copy=False)
    ivar = _image_like(path, hdus, 1, flux.shape)
    if ivar is not None:
        require_float(path, ivar, "HDU 1 (ivar)")
    and_mask = _image_like(path, hdus, 2, flux.shape)
    ivar_missing = ivar is None
    if ivar is None:
        ivar = (flux != 0).astype(np.float32)
    plug = hdus[PLUGMAP_HDU] if len(hdus) > PLUGMAP_HDU and hdus[PLUGMAP_HDU].is_table else None
    if plug is not None and plug.nrows != nfiber:
        raise SpectrumFileError(path, f"plug map (HDU {PLUGMAP_HDU}) has {plug.nrows} rows for {nfiber} fibers")

    def plug_column(name: str, numeric: bool = True) -> np.ndarray | None:
        if plug is None or not plug.has_column(name):
            return None
        values = plug.values(name)
        if values.ndim != 1:
            raise SpectrumFileError(path, f"plug map column {name} has shape {values.shape}, expected one value per fiber")
        return require_numeric(path, values, f"plug map column {name}") if numeric else values

    fibers = plug_column("FIBERID")
    if fibers is not None and fibers.dtype.kind == "f" and not (np.isfinite(fibers) & (fibers == np.round(fibers))).all():
        raise SpectrumFileError(path, "plug map column FIBERID holds non-integer values")
    fibers = np.arange(1, nfiber + 1) if fibers is None else fibers
    ra, dec, objtype = plug_column("RA"), plug_column("DEC"), plug_column("OBJTYPE", numeric=False)
    plate = header_number(path, primary, "PLATEID", integer=True)
    mjd = header_number(path, primary, "MJD", integer=True)
    run2d = str(primary.get("RUN2D", "") or "").strip()
    survey = guess_survey(run2d, mjd)

    out: list[Spectrum] = []
    for i in range(nfiber):
        fiber = int(fibers[i])
        spec = Spectrum(
            wave=wave.copy(), flux=flux[i].copy(), ivar=ivar[i].astype(np.float32), source=f"{path}#{fiber}",
            survey=survey, and_mask=None if and_mask is None else and_mask[i].copy(),
            plate=plate, mjd=mjd, fiberid=fiber,
            ra=None if ra is None else float(ra[i]), dec=None if dec is None else float(dec[i]),
        )
        if run2d:
            spec.extra["RUN2D"] = run2d
        if objtype is not None:
            spec.extra["OBJTYPE"] = str(objtype[i])
        if ivar_missing:
            spec.extra["ivar_missing"] = True
        try:
            out.append(validate_spectrum(spec, path, f"fiber {fiber}"))
        except SpectrumFileError as err:
            warnings.warn(str(err) + " (fiber skipped)", SpectrumFileWarning, stacklevel=4)
    if not out:
        raise SpectrumFileError(path, f"none of the {nfiber} fibers is usable")
    return out
