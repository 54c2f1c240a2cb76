"""SDSS-I/II `spSpec-MJD-PLATE-FIBER.fit` (DR1-DR7, spectro1d output): one spectrum per file.

Layout, as the two real files in tests/data/real/other_formats show it and the
DR7 datamodel describes it: HDU0 is a float image [row, pixel] whose header
labels its rows ARRAY1..ARRAY4:
  row 0 SPECTRUM (flux, 1e-17 erg/s/cm^2/A), row 1 CONTINUUM-SUBTRACTED SPECTRUM,
  row 2 ERROR (a sigma, not an ivar), row 3 MASK (pixel mask bits stored as floats),
  row 4 (DR6/DR7 files, unlabelled) the sky: its [O I] 5577 line peaks there.
HDU1-6 are spectro1d's line fits, redshift tables and andMask/orMask table: not
needed, because the primary header already carries the answers (Z, Z_ERR,
SPEC_CLN, Z_WARNIN, MJD, PLATEID, FIBERID, RAOBJ/DECOBJ).

Decisions, each from the files:
- wavelength = 10**(COEFF0 + COEFF1 * i), vacuum (VACUUM = T in the header; in
  the galaxy 1307-52999-323 H-alpha at z = 0.0410 peaks at 6834.4 A, where vacuum
  puts it at 6834.0 and air at 6832.1). A file saying VACUUM = F is refused
  rather than read as vacuum, since every reader hands out vacuum wavelengths.
- ivar = 1/ERROR^2 where ERROR > 0 and finite, else 0 (the pipeline writes 0 there).
- the MASK row uses the idlspec2d pixel-mask bits (16 NEARBADPIXEL ... 24 NODATA,
  30 EMLINE), so it becomes `and_mask` exactly as a spec-lite file's and_mask
  does; the FNet grid then drops FULLREJECT/NODATA pixels the same way.
- SPEC_CLN becomes the spec-lite CLASS vocabulary (QSO / GALAXY / STAR) so that
  `spec_class`, `is_qso` and the class labels read it like a spec file's CLASS;
  HIZ_QSO is a QSO, STAR_LATE a STAR, GAL_EM a GALAXY. UNKNOWN and SKY make no
  claim about the object, so `spec_class` stays None (the code is kept in
  extra['SPEC_CLN']).
- Z_WARNIN becomes `zwarning`. Its bits are spectro1d's, not idlspec2d's
  ZWARNING bits (512 is not NODATA here); downstream only asks whether it is 0.
- RA/DEC come from RAOBJ/DECOBJ: the header's RA/DEC are the telescope boresight.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inspector.readers import rawfits
from inspector.readers.common import (
    PathLike,
    check_pixel_count,
    coeff_wavelengths,
    header_number,
    names_the_file,
    open_hdus,
    require_float,
    sigma_to_ivar,
)
from inspector.readers.errors import SpectrumFileError
from inspector.readers.validate import validate_spectrum
from inspector.spectrum import Spectrum

FLUX_ROW, ERROR_ROW, MASK_ROW, SKY_ROW = 0, 2, 3, 4
ROW_COUNTS = (4, 5)  # DR1-DR5 files end at the mask, DR6/DR7 add the sky
# spectro1d SPEC_CLN codes: (its own name, the spec-lite CLASS it means or None)
SPEC_CLN: dict[int, tuple[str, str | None]] = {
    0: ("UNKNOWN", None), 1: ("STAR", "STAR"), 2: ("GALAXY", "GALAXY"), 3: ("QSO", "QSO"),
    4: ("HIZ_QSO", "QSO"), 5: ("SKY", None), 6: ("STAR_LATE", "STAR"), 7: ("GAL_EM", "GALAXY"),
}
_NAME = re.compile(r"^spSpec-\d+-\d+-\d+\.fits?(\.gz)?$", re.IGNORECASE)
_MASK_LIMIT = 2**32  # pixel masks are 32-bit words


def read_spspec(path: PathLike) -> list[Spectrum]:
    """A one-element list, like the other readers `read_any` dispatches to; raises SpectrumFileError."""
    return from_hdus(path, open_hdus(path))


def looks_like(hdus: list[rawfits.HDU]) -> bool:
    """spectro1d's own primary cards: an spPlate's 2-D flux image has none of them, so the two
    image layouts are told apart by header, not by the (possibly small) number of rows."""
    primary = hdus[0]
    if not primary.is_image:
        return False
    if "SPEC_CLN" in primary or "Z_WARNIN" in primary:
        return True
    return str(primary.get("ARRAY1", "")).strip().upper() == "SPECTRUM"


def named_like(path: PathLike) -> bool:
    """The file name says spSpec: lets a file that lost its spectro1d cards still get spSpec errors."""
    return bool(_NAME.match(Path(path).name))


@names_the_file
def from_hdus(path: PathLike, hdus: list[rawfits.HDU]) -> list[Spectrum]:
    return [_spectrum(path, hdus)]


def _spectrum(path: PathLike, hdus: list[rawfits.HDU]) -> Spectrum:
    primary = hdus[0]
    if len(primary.shape) != 2:
        raise SpectrumFileError(path, f"HDU 0 should be a 2-D spSpec image [row, pixel], got shape {primary.shape}")
    nrows, npix = primary.shape
    if nrows not in ROW_COUNTS:
        raise SpectrumFileError(path, f"HDU 0 has {nrows} rows; an spSpec image has 4 (flux, continuum-subtracted "
                                      "flux, error, mask) or 5 (and sky)")
    check_pixel_count(path, npix, "HDU 0 (spSpec image)")
    if primary.get("VACUUM") is False:
        raise SpectrumFileError(path, "HDU 0 VACUUM = F: air wavelengths, but SDSS spSpec files are in vacuum")
    wave = coeff_wavelengths(path, primary, npix)
    image = require_float(path, primary.image(), "HDU 0 (spSpec image)")
    ivar = sigma_to_ivar(image[ERROR_ROW])

    spec = Spectrum(
        wave=wave, flux=image[FLUX_ROW].astype(np.float32), ivar=ivar, source=str(path), survey="SDSS",
        and_mask=_mask(path, image[MASK_ROW]), sky=image[SKY_ROW].astype(np.float32) if nrows > SKY_ROW else None,
        plate=header_number(path, primary, "PLATEID", integer=True),
        mjd=header_number(path, primary, "MJD", integer=True),
        fiberid=header_number(path, primary, "FIBERID", integer=True),
        ra=header_number(path, primary, "RAOBJ"), dec=header_number(path, primary, "DECOBJ"),
        z=header_number(path, primary, "Z"), z_err=header_number(path, primary, "Z_ERR"),
        zwarning=header_number(path, primary, "Z_WARNIN", integer=True),
    )
    code = header_number(path, primary, "SPEC_CLN", integer=True)
    if code is not None:
        if code not in SPEC_CLN:
            raise SpectrumFileError(path, f"HDU 0 SPEC_CLN = {code} is not a spectro1d class (0-7)")
        spec.spec_class = SPEC_CLN[code][1]
        spec.extra["SPEC_CLN"] = code
    objtype = str(primary.get("OBJTYPE", "") or "").strip()
    if objtype:
        spec.extra["OBJTYPE"] = objtype
    spec.extra["hdu_layout"] = f"spSpec image ({nrows} rows)"
    return validate_spectrum(spec, path)


def _mask(path: PathLike, row: np.ndarray) -> np.ndarray:
    """The MASK row as integer bits. Floats that are no 32-bit word mean the image is damaged."""
    values = row.astype(np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & (values >= 0) & (values < _MASK_LIMIT) & (values == np.floor(values))
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise SpectrumFileError(path, f"HDU 0 row {MASK_ROW} (mask) holds {int((~ok).sum())} values that are not "
                                      f"bit masks (pixel {bad}: {float(row[bad]):g})")
    return values.astype(np.int64)
