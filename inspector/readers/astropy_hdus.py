"""The astropy fallback: HDUs with rawfits.HDU's interface, for FITS that rawfits does not decode.

rawfits reads plain FITS fast and raises `FitsUnsupported` for valid FITS it
would otherwise misread (BLANK in integer images, TNULL, variable-length
columns, ASCII tables, random groups, tile-compressed images, a CONTINUE card
that continues nothing). Such files are rare, so they may be slow: astropy,
the reference, reads them and the readers see the same interface.

rawfits checks the file's structure (sizes, offsets, column widths) and
inflates gzip under its size cap before astropy sees the file, so the fallback
inherits those bounds. Anything astropy cannot read becomes FitsFormatError.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import Any

import numpy as np

from inspector.readers import rawfits


class AstropyHDU(rawfits.HeaderValues):
    """One astropy HDU behind rawfits.HDU's methods (get, shape, column, image, ...)."""

    def __init__(self, index: int, hdu: Any) -> None:
        self.index = index
        self._hdu = hdu
        self.header = hdu.header

    def get(self, key: str, default: Any = None) -> Any:
        try:  # astropy parses a card on first access: an unparsable one raises here
            value = self.header.get(key.upper())
        except Exception as err:  # noqa: BLE001 - any astropy error means the card is unreadable
            raise rawfits.FitsFormatError(f"HDU {self.index}: header card {key.upper()}: {err}") from None
        return default if value is None or _undefined(value) else value

    def __contains__(self, key: str) -> bool:
        return key.upper() in self.header

    @property
    def is_table(self) -> bool:
        from astropy.io import fits

        return isinstance(self._hdu, (fits.BinTableHDU, fits.TableHDU))

    @property
    def is_image(self) -> bool:
        from astropy.io import fits

        return isinstance(self._hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and self.shape != ()

    @property
    def shape(self) -> tuple[int, ...]:
        from astropy.io import fits

        if isinstance(self._hdu, fits.CompImageHDU):
            return tuple(self._hdu.shape)
        naxis = self.number("NAXIS", 0, integer=True)
        dims = tuple(self.number(f"NAXIS{k}", 0, integer=True) for k in range(naxis, 0, -1))
        return () if naxis == 0 or 0 in dims else dims

    @property
    def nrows(self) -> int:
        return len(self._data()) if self.is_table else 0

    @property
    def column_names(self) -> list[str]:
        if not self.is_table:
            return []
        try:
            names = list(self._hdu.columns.names)
        except Exception as err:  # noqa: BLE001
            raise rawfits.FitsFormatError(f"HDU {self.index}: astropy cannot decode the columns ({err})") from None
        return [n or f"COL{k}" for k, n in enumerate(names, 1)]  # unnamed columns named as rawfits does

    def _data(self) -> Any:
        """The HDU's data, loaded on first use (an unused broken HDU must not fail the file)."""
        try:
            data = self._hdu.data
        except Exception as err:  # noqa: BLE001 - whatever astropy raises, the file is at fault
            raise rawfits.FitsFormatError(f"HDU {self.index}: astropy cannot read the data "
                                          f"({type(err).__name__}: {err})") from None
        if data is None:
            raise rawfits.FitsFormatError(f"HDU {self.index} has no data")
        return data

    def has_column(self, name: str) -> bool:
        return name.upper() in (c.upper() for c in self.column_names)

    def _field(self, name: str) -> np.ndarray:
        for k, c in enumerate(self.column_names):
            if c.upper() == name.upper():
                data = self._data()
                try:  # FITS_rec converts a column on first access: a fault in it shows here
                    return np.asarray(data.field(k))
                except Exception as err:  # noqa: BLE001 - whatever astropy raises, the file is at fault
                    raise rawfits.FitsFormatError(f"HDU {self.index}: column {c!r}: astropy cannot decode it "
                                                  f"({type(err).__name__}: {err})") from None
        raise KeyError(name)

    def column(self, name: str, rows: slice | None = None) -> np.ndarray:
        data = self._field(name)[rows or slice(None)]
        if data.dtype.kind == "O":
            raise rawfits.FitsFormatError(f"HDU {self.index}: column {name!r} holds variable-length arrays")
        return np.array(data, dtype=data.dtype.newbyteorder("=")) if data.dtype.kind in "biufc" else data.copy()

    def strings(self, name: str, rows: slice | None = None) -> np.ndarray:
        raw = self.column(name, rows)
        if raw.dtype.kind == "S":
            raw = np.char.decode(np.char.rstrip(raw, b"\x00"), "ascii", "replace")
        return np.char.rstrip(raw.astype(str))

    def values(self, name: str, rows: slice | None = None) -> np.ndarray:
        data = self._field(name)
        return self.strings(name, rows) if data.dtype.kind in "SU" else self.column(name, rows)

    def image(self) -> np.ndarray:
        if not self.is_image:
            raise rawfits.FitsFormatError(f"HDU {self.index} holds no image data")
        data = np.asarray(self._data())
        if data.dtype.kind not in "biufc":
            raise rawfits.FitsFormatError(f"HDU {self.index}: image of {data.dtype} is not numeric")
        return np.array(data, dtype=data.dtype.newbyteorder("="))


def _undefined(value: Any) -> bool:
    return type(value).__name__ == "Undefined"


def open_hdus(path: str | os.PathLike[str]) -> list[AstropyHDU]:
    """All HDUs of a file through astropy; data is decoded on first use (an unused broken HDU must not
    fail the file), and a fault then surfaces as FitsFormatError.

    rawfits checks the structure first (sizes within the file, offsets moving on, TFIELDS and column
    widths), so astropy never meets a header that would make it loop or allocate without bound (it
    does both on NAXIS2 = -50 or TFIELDS = 2**31). A gzip file is inflated by rawfits, under its size
    cap; a plain one astropy reads from disk HDU by HDU, as used (not mapped: astropy cannot map
    BLANK/BSCALE images), so a big catalog is not copied whole."""
    buf = rawfits.load(path)
    gzipped = bytes(buf[:2]) == b"\x1f\x8b"
    if gzipped:
        buf = rawfits.gunzip(buf)
    _check_structure(buf)
    return _astropy_open(io.BytesIO(bytes(buf)) if gzipped else path)


def _astropy_open(source: Any) -> list[AstropyHDU]:
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdul = fits.open(source, memmap=False, lazy_load_hdus=False)
            return [AstropyHDU(index, hdu) for index, hdu in enumerate(hdul)]
    except Exception as err:  # noqa: BLE001 - astropy's many error types all mean "not readable FITS" here
        raise rawfits.FitsFormatError(f"astropy cannot read it either ({type(err).__name__}: {err})") from None


def _check_structure(buf: Any) -> None:
    """rawfits' structural checks, carrying on past what only astropy decodes."""
    for h in rawfits.parse(buf, unsupported_ok=True):
        if h.is_table:
            try:
                _ = h.column_names  # TFIELDS within 0..999, TFORMs parse, widths add up to NAXIS1
            except rawfits.FitsUnsupported:
                pass
