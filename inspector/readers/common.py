"""Helpers shared by the readers: opening with clear errors, required HDUs/columns, survey names."""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TypeVar

from inspector.readers import rawfits
from inspector.readers.errors import SpectrumFileError

PathLike = str | os.PathLike[str]

# eBOSS took over the BOSS spectrographs in July 2014 (MJD 56839). Spec files
# do not name their survey, so plate-era BOSS/eBOSS is told apart by date.
EBOSS_FIRST_MJD = 56839
SURVEYS = ("SDSS", "BOSS", "eBOSS", "DESI", "MOCK")


def open_hdus(path: PathLike) -> list[rawfits.HDU]:
    """Parse a FITS file; every failure (missing, unreadable, not FITS, truncated) becomes SpectrumFileError."""
    try:
        return rawfits.read(path)
    except FileNotFoundError:
        raise SpectrumFileError(path, "file not found") from None
    except IsADirectoryError:
        raise SpectrumFileError(path, "is a directory, not a FITS file") from None
    except OSError as err:
        raise SpectrumFileError(path, f"cannot read file ({err.strerror or err})") from None
    except rawfits.FitsFormatError as err:
        raise SpectrumFileError(path, str(err)) from None


T = TypeVar("T")


def names_the_file(parse: Callable[[PathLike, list[rawfits.HDU]], T]) -> Callable[[PathLike, list[rawfits.HDU]], T]:
    """For a parser of already-opened HDUs: columns are decoded lazily, so a format fault can surface
    mid-parse; it must still reach the user as a SpectrumFileError naming the file."""

    @functools.wraps(parse)
    def wrapper(path: PathLike, hdus: list[rawfits.HDU]) -> T:
        try:
            return parse(path, hdus)
        except rawfits.FitsFormatError as err:
            raise SpectrumFileError(path, str(err)) from None

    return wrapper


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


def guess_survey(run2d: str | None, mjd: int | None, layout_hint: str = "") -> str:
    """SDSS (SDSS-I/II: numeric RUN2D such as '26', or a SPECOBJ HDU2), else BOSS/eBOSS by date."""
    run2d = (run2d or "").strip()
    if layout_hint.upper() == "SPECOBJ" or (run2d and not run2d.lower().startswith("v")):
        return "SDSS"
    if mjd is not None and mjd >= EBOSS_FIRST_MJD:
        return "eBOSS"
    return "BOSS"
