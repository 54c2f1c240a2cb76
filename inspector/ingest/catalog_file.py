"""Is a FITS file a DR16Q-like catalog, a spectrum file, or neither? Decided from its first two headers.

Why not trust "HDU 1 is a table with PLATE/MJD/FIBERID and Z": a spec-lite file that lost its
COADD HDU has exactly that as HDU 1 (its one-row SPALL/SPECOBJ), and it used to be taken for the
survey's catalog, silently. A catalog, as DR16Q and the mock's catalog are written, has an empty
primary HDU that names no object, and an HDU 1 that is not one of a spectrum file's own HDUs.

The headers are read here, not by the readers: planning runs in the parent process, before any
worker limit applies, so the read is capped (a header without END, a gzip of zeros) and never
touches data.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from typing import BinaryIO

BLOCK = 2880
MAX_HEADER_BYTES = 400 * BLOCK  # ~1.1 MB: DR16Q's 400-column HDU 1 header is ~60 blocks

# HDU names that only spectrum files carry (SDSS spec-lite, spPlate, DESI coadd / redrock).
SPECTRUM_HDU_NAMES = frozenset({
    "COADD", "SPALL", "SPECOBJ", "SPZLINE", "SPZALL", "PLUGMAP", "FIBERMAP", "EXP_FIBERMAP", "REDSHIFTS",
    "ZBEST", "SCORES", "TSNR2",
})
# Primary-header keys that name one object (spec-lite files): a catalog has many objects, in rows.
OBJECT_KEYS = ("FIBERID", "PLATEID", "TARGETID", "SPEC_ID")
SPECTRAL_COLUMNS = frozenset({"FLUX", "LOGLAM", "WAVE", "WAVELENGTH", "IVAR"})
Z_COLUMNS = frozenset({"Z", "Z_VI", "Z_PIPE"})


@dataclass
class FitsPeek:
    """The first two headers of a FITS file, as far as planning needs them."""
    primary: dict[str, str]
    hdu1: dict[str, str] | None = None
    columns: set[str] = field(default_factory=set)  # upper-case TTYPEs of HDU 1 when it is a binary table

    @property
    def hdu1_is_table(self) -> bool:
        return self.hdu1 is not None and self.hdu1.get("XTENSION", "").upper() == "BINTABLE"


def _value(card: str) -> str:
    raw = card[10:]
    if raw.lstrip().startswith("'"):
        s = raw.lstrip()[1:]
        out, i = [], 0
        while i < len(s):
            if s[i] == "'":
                if s[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(s[i])
            i += 1
        return "".join(out).strip()
    return raw.split("/", 1)[0].strip()


def _read_header(fh: BinaryIO) -> dict[str, str] | None:
    """One header's `KEY = value` cards, or None when it does not end (END) within MAX_HEADER_BYTES."""
    cards: dict[str, str] = {}
    for _ in range(MAX_HEADER_BYTES // BLOCK):
        block = fh.read(BLOCK)
        if len(block) < BLOCK:
            return None
        text = block.decode("ascii", errors="replace")
        for i in range(0, BLOCK, 80):
            card = text[i : i + 80]
            key = card[:8].strip()
            if key == "END":
                return cards
            if card[8:10] == "= " and key not in cards:
                cards[key] = _value(card)
    return None


def _data_bytes(h: dict[str, str]) -> int:
    naxis = int(h.get("NAXIS", "0"))
    if naxis == 0:
        return 0
    size = abs(int(h.get("BITPIX", "8"))) // 8
    for k in range(1, naxis + 1):
        size *= int(h.get(f"NAXIS{k}", "0"))
    return size + int(h.get("PCOUNT", "0"))


def peek(path: str | os.PathLike[str]) -> FitsPeek | None:
    """The primary header and, when the primary holds no data, HDU 1's; None for anything not FITS.

    HDU 1 is read only after an empty primary (catalogs and spec-lite files have one), so no
    data is ever skipped over, plain or gzip.
    """
    try:
        with open(path, "rb") as raw:
            fh: BinaryIO = gzip.GzipFile(fileobj=raw) if raw.read(2) == b"\x1f\x8b" else raw
            raw.seek(0)
            primary = _read_header(fh)
            if primary is None or primary.get("SIMPLE") != "T":
                return None
            out = FitsPeek(primary)
            if _data_bytes(primary) == 0:
                out.hdu1 = _read_header(fh)
                if out.hdu1_is_table:
                    n = int(out.hdu1.get("TFIELDS", "0"))
                    out.columns = {out.hdu1.get(f"TTYPE{k}", "").strip().upper() for k in range(1, n + 1)} - {""}
            return out
    except (OSError, ValueError, EOFError):
        return None


def looks_like_catalog(p: FitsPeek | None) -> bool:
    """True for a DR16Q-like catalog table (see the module docstring for why each test is there).

    HDU 1 a binary table with object keys (PLATE/MJD/FIBERID or TARGETID), a redshift and no
    flux column; the primary HDU empty and naming no object; HDU 1 not a spectrum file's HDU.
    """
    if p is None or not p.hdu1_is_table or p.hdu1 is None:
        return False
    if _data_bytes(p.primary) or any(k in p.primary for k in OBJECT_KEYS):
        return False
    if p.hdu1.get("EXTNAME", "").strip().upper() in SPECTRUM_HDU_NAMES:
        return False
    names = p.columns
    keyed = {"PLATE", "MJD", "FIBERID"} <= names or "TARGETID" in names
    return keyed and bool(Z_COLUMNS & names) and not (SPECTRAL_COLUMNS & names)


def is_spec_lite(p: FitsPeek | None) -> bool:
    """HDU 1 holds FLUX and LOGLAM columns: a spec-lite COADD (as readers.detect_format says)."""
    return p is not None and {"FLUX", "LOGLAM"} <= p.columns
