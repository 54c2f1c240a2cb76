"""Write FITS HDUs straight from numpy, for the mock survey's thousands of files.

astropy's BinTableHDU machinery dominates the time to write a small file, which
the mock pays thousands of times; building the cards and a big-endian record
array ourselves does not. Output is checked against astropy
(`fits.open(...).verify('exception')`) in the tests.
"""
from __future__ import annotations

import numpy as np

BLOCK = 2880

_FORMS = {"E": ">f4", "D": ">f8", "J": ">i4", "K": ">i8", "I": ">i2", "B": "u1"}


def _value_text(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return f"{'T' if value else 'F':>20}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):>20d}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            raise ValueError(f"FITS header values cannot be {v}")
        text = repr(v).upper()
        if "." not in text and "E" not in text:
            text += ".0"
        return f"{text:>20}"
    s = str(value).replace("'", "''")
    return f"'{s:<8}'"


def card(key: str, value: object, comment: str = "") -> str:
    """One 80-character `KEY     = value / comment` card."""
    text = f"{key.upper():<8}= {_value_text(value)}"
    if len(text) > 80:
        raise ValueError(f"header value for {key} is too long: {value!r}")
    if comment:
        text = f"{text} / {comment}"[:80]
    return f"{text:<80}"


def header_block(cards: list[str]) -> bytes:
    text = "".join(cards) + f"{'END':<80}"
    text += " " * (-len(text) % BLOCK)
    return text.encode("ascii")


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def primary_hdu(cards: list[str]) -> bytes:
    """A data-less PRIMARY HDU (NAXIS = 0), as spec-lite files have."""
    head = [card("SIMPLE", True, "conforms to FITS standard"), card("BITPIX", 8), card("NAXIS", 0),
            card("EXTEND", True)]
    return header_block(head + cards)


def _column_data(tform: str, values: np.ndarray, nrows: int) -> tuple[str, np.ndarray]:
    code = tform[-1]
    if code == "A":
        width = int(tform[:-1] or 1)
        return f"S{width}", np.asarray(values, dtype=f"S{width}")
    if code == "L":
        return "S1", np.where(np.asarray(values, dtype=bool), b"T", b"F")
    dt = _FORMS[code]
    return dt, np.asarray(values).astype(dt, copy=False)


def table_hdu(columns: list[tuple[str, str, np.ndarray]], extname: str | None = None,
              cards: list[str] | None = None, nrows: int | None = None) -> bytes:
    """A BINTABLE HDU from (name, TFORM, values) triples; scalar columns only."""
    if nrows is None:
        nrows = len(columns[0][2]) if columns else 0
    fields, arrays = [], []
    for name, tform, values in columns:
        dt, arr = _column_data(tform, values, nrows)
        if arr.shape != (nrows,):
            raise ValueError(f"column {name}: shape {arr.shape}, expected ({nrows},)")
        fields.append((name, dt))
        arrays.append(arr)
    rec = np.empty(nrows, dtype=np.dtype(fields))
    for (name, _), arr in zip(fields, arrays):
        rec[name] = arr
    head = [card("XTENSION", "BINTABLE", "binary table extension"), card("BITPIX", 8), card("NAXIS", 2),
            card("NAXIS1", rec.dtype.itemsize), card("NAXIS2", nrows), card("PCOUNT", 0), card("GCOUNT", 1),
            card("TFIELDS", len(columns))]
    for k, (name, tform, _) in enumerate(columns, start=1):
        head += [card(f"TTYPE{k}", name), card(f"TFORM{k}", tform)]
    if extname:
        head.append(card("EXTNAME", extname, "extension name"))
    return header_block(head + (cards or [])) + _pad(rec.tobytes())
