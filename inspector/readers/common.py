"""Helpers shared by the readers: opening with clear errors, required HDUs/columns, survey names."""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from inspector.readers import astropy_hdus, rawfits
from inspector.readers.errors import SpectrumFileError

PathLike = str | os.PathLike[str]

# eBOSS took over the BOSS spectrographs in July 2014 (MJD 56839). Spec files
# do not name their survey, so plate-era BOSS/eBOSS is told apart by date.
EBOSS_FIRST_MJD = 56839
SURVEYS = ("SDSS", "BOSS", "eBOSS", "DESI", "MOCK")
# Spectra in one file: an spPlate holds 1000, a DESI coadd a few thousand at most. Each costs a
# validation pass, so a corrupt header claiming millions of 1-pixel spectra must be refused, not run.
MAX_SPECTRA_PER_FILE = 100_000
# Pixels in one spectrum: SDSS/BOSS ~4,600, a merged DESI spectrum ~7,800. A header claiming more
# (a COADD with 5e7 rows over a sparse hole) is refused before its columns are allocated.
MAX_PIXELS_PER_SPECTRUM = 1_000_000


def open_hdus(path: PathLike) -> list[rawfits.HDU]:
    """Parse a FITS file; every failure (missing, unreadable, not FITS, truncated) becomes SpectrumFileError.

    FITS that rawfits does not decode (FitsUnsupported) is read by astropy instead (astropy_hdus.py)."""
    try:
        try:
            return rawfits.read(path)
        except rawfits.FitsUnsupported:
            return astropy_hdus.open_hdus(path)  # type: ignore[return-value]
    except FileNotFoundError:
        raise SpectrumFileError(path, "file not found") from None
    except IsADirectoryError:
        raise SpectrumFileError(path, "is a directory, not a FITS file") from None
    except OSError as err:
        raise SpectrumFileError(path, f"cannot read file ({err.strerror or err})") from None
    except rawfits.FitsFormatError as err:
        raise SpectrumFileError(path, str(err)) from None


T = TypeVar("T")


def names_the_file(parse: Callable[..., T]) -> Callable[..., T]:
    """For a parser of already-opened HDUs, `parse(path, hdus, ...)`: columns are decoded lazily, so a format fault can surface
    mid-parse; it must still reach the user as a SpectrumFileError naming the file. A feature rawfits
    meets only when decoding (a variable-length or TNULL column) sends the whole parse to astropy."""

    @functools.wraps(parse)
    def wrapper(path: PathLike, hdus: list[rawfits.HDU], *args: Any, **kwargs: Any) -> T:
        try:
            try:
                return parse(path, hdus, *args, **kwargs)
            except rawfits.FitsUnsupported:
                if hdus and isinstance(hdus[0], astropy_hdus.AstropyHDU):
                    raise
                return parse(path, astropy_hdus.open_hdus(path), *args, **kwargs)
        except rawfits.FitsFormatError as err:
            raise SpectrumFileError(path, str(err)) from None
        except OSError as err:
            raise SpectrumFileError(path, f"cannot read file ({err.strerror or err})") from None

    return wrapper


def header_number(path: PathLike, hdu: rawfits.HDU, key: str, integer: bool = False) -> Any:
    """A numeric header value, None when absent; text that is no number is a SpectrumFileError naming the key."""
    value = hdu.get(key)
    what = f"HDU {hdu.index} {key}"
    return as_int(path, value, what) if integer else as_float(path, value, what)


def as_int(path: PathLike, value: Any, what: str | Callable[[], str]) -> int | None:
    """A file's value (cell or header) as int; None and '' stay None; anything else unusable names `what`
    (a callable is asked only then)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise ValueError
        return int(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise SpectrumFileError(path, f"{_name(what)} = {_show(value)} is not an integer") from None


def as_float(path: PathLike, value: Any, what: str | Callable[[], str]) -> float | None:
    """As `as_int`, for a float (NaN and inf pass: they are floats, and readers check finiteness)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise SpectrumFileError(path, f"{_name(what)} = {_show(value)} is not a number") from None


def _name(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def require_float(path: PathLike, data: np.ndarray, what: str) -> np.ndarray:
    """Flux, ivar and wavelength are floating point in every survey format; integers there mean the
    column type was changed (a TFORM E -> J reads float bits as huge integers) and the values are garbage."""
    if data.dtype.kind != "f":
        raise SpectrumFileError(path, f"{what} holds {data.dtype.name} values, not floating point: "
                                      "the column or image type is wrong")
    return data


def require_numeric(path: PathLike, data: np.ndarray, what: str) -> np.ndarray:
    """Ids, coordinates and redshifts read from a table must be numbers, not text."""
    if data.dtype.kind not in "biuf":
        raise SpectrumFileError(path, f"{what} holds {data.dtype} values, expected numbers")
    return data


def require_hdu(path: PathLike, hdus: list[rawfits.HDU], index: int, what: str) -> rawfits.HDU:
    if len(hdus) <= index:
        raise SpectrumFileError(path, f"missing HDU {index} ({what}): the file has only {len(hdus)} HDU(s)")
    return hdus[index]


def require_columns(path: PathLike, hdu: rawfits.HDU, names: tuple[str, ...], what: str) -> None:
    if not hdu.is_table:
        raise SpectrumFileError(path, f"HDU {hdu.index} ({what}) is not a binary table")
    missing = [n for n in names if not hdu.has_column(n)]
    if missing:
        raise SpectrumFileError(
            path, f"HDU {hdu.index} ({what}) lacks required column(s) {', '.join(missing)} "
                  f"(has: {', '.join(hdu.column_names[:12])}{', ...' if len(hdu.column_names) > 12 else ''})")


def check_spectra_count(path: PathLike, count: int, what: str) -> None:
    if count > MAX_SPECTRA_PER_FILE:
        raise SpectrumFileError(path, f"{count} {what} in one file, more than the {MAX_SPECTRA_PER_FILE} "
                                      "a survey file holds: a corrupt header")


def check_pixel_count(path: PathLike, count: int, what: str) -> None:
    if count > MAX_PIXELS_PER_SPECTRUM:
        raise SpectrumFileError(path, f"{what}: {count} pixels per spectrum, more than the "
                                      f"{MAX_PIXELS_PER_SPECTRUM} a survey spectrum has: a corrupt header")


def coeff_wavelengths(path: PathLike, hdu: rawfits.HDU, npix: int) -> np.ndarray:
    """10**(COEFF0 + COEFF1 * i): the log-linear vacuum wavelength solution of SDSS image files (spPlate,
    spSpec). Missing cards are refused here; absurd ones give inf/NaN, which validation names."""
    missing = [k for k in ("COEFF0", "COEFF1") if k not in hdu]
    if missing:
        raise SpectrumFileError(path, f"HDU {hdu.index} lacks {'/'.join(missing)} (log10 wavelength solution): "
                                      "no wavelengths")
    coeff0, coeff1 = header_number(path, hdu, "COEFF0"), header_number(path, hdu, "COEFF1")
    with np.errstate(over="ignore", invalid="ignore"):
        return np.power(10.0, coeff0 + coeff1 * np.arange(npix))


def sigma_to_ivar(err: np.ndarray) -> np.ndarray:
    """1/sigma^2 where sigma is finite and positive, else 0 (how the pipelines mark a pixel without data)."""
    err = np.asarray(err, np.float64)
    good = np.isfinite(err) & (err > 0)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return np.where(good, 1.0 / np.where(good, err, 1.0) ** 2, 0.0).astype(np.float32)


def guess_survey(run2d: str | None, mjd: int | None, layout_hint: str = "") -> str:
    """SDSS (SDSS-I/II: numeric RUN2D such as '26', or a SPECOBJ HDU2), else BOSS/eBOSS by date."""
    run2d = (run2d or "").strip()
    if layout_hint.upper() == "SPECOBJ" or (run2d and not run2d.lower().startswith("v")):
        return "SDSS"
    if mjd is not None and mjd >= EBOSS_FIRST_MJD:
        return "eBOSS"
    return "BOSS"
