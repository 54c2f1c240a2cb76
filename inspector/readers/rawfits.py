"""A minimal FITS reader working on raw bytes, for speed (writing: fitswrite.py).

Why not astropy: a BOSS spec-lite file carries a 236-column, 500-card HDU2,
and astropy builds full column definitions and a FITS_rec for it even when
its data is never touched; that alone is an order of magnitude over what a
survey-sized ingest can spend per file (README, 'Reading survey files';
`python bench/ingest.py`). The files we read are plain FITS:
80-character cards in 2880-byte blocks, fixed-width binary tables and images,
so we parse only what we need straight from the bytes. The tests compare
every HDU and column of the real fixtures against astropy, which stays the
reference.

Scope: images with BITPIX 8/16/32/64/-32/-64 and BZERO/BSCALE; binary tables
with fixed-width columns L X B I J K A E D C M (TSCAL/TZERO, TDIM); long-string
CONTINUE values; gzip-compressed files. Valid FITS beyond that (BLANK in integer
images, TNULL, variable-length P/Q columns, ASCII tables, random groups,
tile-compressed images, a CONTINUE card that continues nothing) raises
`FitsUnsupported`, and the readers hand the same bytes to astropy
(`astropy_hdus.py`) instead of misreading them. Bytes that are not valid FITS
raise `FitsFormatError`.

Every size is bounded before anything is read, because a corrupt or hostile
header must cost an error message, not a hang or the machine's memory: headers
are bounded and checked in `fitsheader.py`; here each HDU's data must fit inside
the file (so the next header always lies further on), rows of no bytes cannot
outnumber the file's bytes, table columns must add up to NAXIS1, an image's
NAXISn must fit its data, and gzip is inflated in chunks and stopped at
MAX_GUNZIP_BYTES. Bytes after the last HDU must be padding.
"""
from __future__ import annotations

import math
import mmap
import os
import re
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from inspector.readers.fitsheader import (
    BITPIX_DTYPES,
    BLOCK,
    CARD,
    MAX_TFIELDS,
    FitsFormatError,
    FitsUnsupported,
    parse_header,
    parse_value,
    quoted,
    structure,
)

__all__ = ["BLOCK", "CARD", "HDU", "FitsFormatError", "FitsUnsupported", "gunzip", "load", "parse", "read"]

_MMAP_ABOVE = 64 * 1024 * 1024  # big catalogs are mapped, not read
# A gzip file is inflated in memory; past this it is refused (a real DESI coadd inflates to ~250 MB,
# a gzip bomb to anything). Kept under 1 GiB so one file can never take the machine's memory.
MAX_GUNZIP_BYTES = 512 * 1024 * 1024
_GUNZIP_CHUNK = 1 << 20
_TFORM = re.compile(r"^\s*(\d*)\s*([LXBIJKAEDCMPQ])")
_TABLE_CODES = {
    "L": "S1", "X": "u1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8",
    "A": "S", "E": ">f4", "D": ">f8", "C": ">c8", "M": ">c16",
}
_ITEMSIZE = {code: np.dtype(dt).itemsize for code, dt in _TABLE_CODES.items() if code not in "AX"}
_WIDTH = {**_ITEMSIZE, "A": 1}  # bytes per repeat (X columns: bits, rounded up to bytes)
# (BITPIX or TFORM code, zero point) pairs that mean "unsigned / signed byte".
_UNSIGNED = {(16, 1 << 15): "u2", (32, 1 << 31): "u4", (64, 1 << 63): "u8", (8, -128): "i1",
             ("I", 1 << 15): "u2", ("J", 1 << 31): "u4", ("K", 1 << 63): "u8", ("B", -128): "i1"}


@dataclass
class _Column:
    name: str
    code: str
    repeat: int
    offset: int
    dtype: str
    shape: tuple[int, ...]
    width: int = 0
    scale: float = 1.0
    zero: float = 0.0


class HeaderValues:
    """What the readers ask of any HDU, given its `get`, `values` and `index`: shared by the raw HDU here and
    astropy's behind `astropy_hdus.AstropyHDU`, so both give and refuse the same values the same way."""

    index: int

    def get(self, key: str, default: Any = None) -> Any:  # pragma: no cover - each HDU kind has its own
        raise NotImplementedError

    def number(self, key: str, default: float | None = None, integer: bool = False) -> Any:
        """A numeric header value; a missing one is `default` (FitsFormatError if None), text is FitsFormatError."""
        value = self.get(key)
        if value is None:
            if default is None:
                raise FitsFormatError(f"HDU {self.index}: header has no {key.upper()}")
            return default
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise FitsFormatError(f"HDU {self.index}: {key.upper()} = {value!r} is not "
                                  f"{'an integer' if integer else 'a number'}")
        return value

    @property
    def name(self) -> str:
        return str(self.get("EXTNAME", "")).strip().upper()

    def values(self, name: str, rows: slice | None = None) -> np.ndarray:  # pragma: no cover - per HDU kind
        raise NotImplementedError

    def cell(self, name: str, row: int = 0) -> Any:
        """One table cell as a plain Python value (arrays stay numpy)."""
        value = self.values(name, slice(row, row + 1))[0]
        if isinstance(value, np.ndarray):
            return value
        return value.item() if hasattr(value, "item") else value


@dataclass
class HDU(HeaderValues):
    """One HDU: its header cards (parsed on demand) and where its data lies."""

    index: int
    cards: dict[str, bytes]
    data_offset: int
    data_nbytes: int
    buf: Any = field(repr=False)
    _cols: dict[str, tuple[int, str, str, int, int, int]] | None = field(default=None, repr=False)
    _built: dict[str, _Column] = field(default_factory=dict, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.cards.get(key.upper())
        if raw is None:
            return default
        try:
            value = parse_value(raw)
        except FitsFormatError as err:
            raise FitsFormatError(f"HDU {self.index}: {key.upper()}: {err}") from None
        return default if value is None else value

    def __contains__(self, key: str) -> bool:
        return key.upper() in self.cards

    @cached_property
    def xtension(self) -> str:
        """'' for the primary HDU, else the XTENSION value ('IMAGE', 'BINTABLE', ...)."""
        return str(self.get("XTENSION", "")).strip().upper() if self.index else ""

    @cached_property
    def is_table(self) -> bool:
        return self.xtension == "BINTABLE"

    @property
    def is_image(self) -> bool:
        return self.xtension in ("", "IMAGE") and self.shape != ()

    @cached_property
    def shape(self) -> tuple[int, ...]:
        """numpy order: (NAXISn, ..., NAXIS1); () when there is no data."""
        naxis = self.number("NAXIS", 0, integer=True)
        dims = tuple(self.number(f"NAXIS{k}", 0, integer=True) for k in range(naxis, 0, -1))
        return () if naxis == 0 or 0 in dims else dims

    @cached_property
    def nrows(self) -> int:
        return self.number("NAXIS2", 0, integer=True) if self.is_table else 0

    @cached_property
    def _rowbytes(self) -> int:
        return self.number("NAXIS1", integer=True)

    # ---- tables -------------------------------------------------------
    def _columns(self) -> dict[str, tuple[int, str, str, int, int, int]]:
        """UPPER name -> (k, name, code, repeat, offset, width) for every column, checked; no dtypes yet.

        Hot path: a BOSS HDU2 has 236 columns and a reader uses a dozen, so only names, formats and
        byte offsets are worked out here (cards read raw, not via get()); `_column` does the rest
        (dtype, TDIM, TSCAL/TZERO, TNULL) for the columns actually read."""
        if self._cols is not None:
            return self._cols
        cards = self.cards
        cols: dict[str, tuple[int, str, str, int, int, int]] = {}
        offset = 0
        tfields = self.number("TFIELDS", 0, integer=True)
        if not 0 <= tfields <= MAX_TFIELDS:
            raise FitsFormatError(f"HDU {self.index}: TFIELDS = {tfields} is outside 0..{MAX_TFIELDS}")
        for k in range(1, tfields + 1):
            try:
                tform = quoted(cards.get(f"TFORM{k}"))
                name = quoted(cards.get(f"TTYPE{k}")) or f"COL{k}"
            except FitsFormatError as err:
                raise FitsFormatError(f"HDU {self.index}: column {k}: {err}") from None
            m = _TFORM.match(tform)
            if m is None:
                raise FitsFormatError(f"HDU {self.index}: cannot parse TFORM{k} = {tform!r}")
            code = m.group(2)
            repeat = int(m.group(1)) if m.group(1) else 1
            if code in "PQ":
                raise FitsUnsupported(f"HDU {self.index}: variable-length column {name!r} (TFORM{k} = {tform!r})")
            width = (repeat + 7) // 8 if code == "X" else repeat * _WIDTH[code]
            key = name.upper()
            if key not in cols:
                cols[key] = (k, name, code, repeat, offset, width)
            offset += width
        if offset != self._rowbytes:  # also for 0 rows: a TFORM repeat of 10**20 must not reach numpy
            raise FitsFormatError(f"HDU {self.index}: columns add up to {offset} bytes, NAXIS1 says {self.get('NAXIS1')}")
        self._cols = cols
        return cols

    def _column(self, name: str) -> _Column:
        """The full definition of one column, built on first use."""
        key = name.upper()
        col = self._built.get(key)
        if col is not None:
            return col
        spec = self._columns().get(key)
        if spec is None:
            raise KeyError(name)
        k, name, code, repeat, offset, width = spec
        cards = self.cards
        if f"TNULL{k}" in cards and code in "BIJK":
            raise FitsUnsupported(f"HDU {self.index}: column {name!r} has null values (TNULL{k})")
        shape: tuple[int, ...]
        if code == "A":
            dtype, shape = f"S{max(repeat, 1)}", ()
            if f"TDIM{k}" in cards and len(self._tdim(k)) > 1:
                raise FitsUnsupported(f"HDU {self.index}: string column {name!r} is multi-dimensional (TDIM{k})")
        elif code == "X":
            dtype, shape = "u1", (width,)
        else:
            dtype = _TABLE_CODES[code]
            shape = (repeat,) if repeat != 1 else ()
            if repeat > 1 and f"TDIM{k}" in cards:
                dims = self._tdim(k)
                if dims and math.prod(dims) == repeat:
                    shape = dims
        col = _Column(name, code, repeat, offset, dtype, shape, width)
        if code not in "LAX" and (f"TSCAL{k}" in cards or f"TZERO{k}" in cards):
            col.scale = float(self.number(f"TSCAL{k}", 1.0))
            col.zero = float(self.number(f"TZERO{k}", 0.0))
        self._built[key] = col
        return col

    def _tdim(self, k: int) -> tuple[int, ...]:
        return tuple(int(d) for d in re.findall(r"\d+", str(self.get(f"TDIM{k}"))))[::-1]

    @property
    def column_names(self) -> list[str]:
        """Column names as written in the file (original case)."""
        return [c[1] for c in self._columns().values()]

    def has_column(self, name: str) -> bool:
        return name.upper() in self._columns()

    def column(self, name: str, rows: slice | None = None) -> np.ndarray:
        """One column, native byte order, copied; names match without regard to case."""
        col = self._column(name)
        start, stop, _ = (rows or slice(None)).indices(self.nrows)
        n = max(stop - start, 0)
        if col.width == 0:  # a zero-repeat column: no bytes, empty cells (as astropy)
            return np.zeros((n, 0), dtype="S1" if col.code == "A" else np.dtype(col.dtype).newbyteorder("="))
        rowbytes = self._rowbytes
        dt = np.dtype(col.dtype)
        strides = (rowbytes,) + tuple(math.prod(col.shape[i + 1:]) * dt.itemsize for i in range(len(col.shape)))
        raw = np.ndarray((n,) + col.shape, dtype=dt, buffer=self.buf,
                         offset=self.data_offset + start * rowbytes + col.offset, strides=strides)
        if col.code == "L":
            return raw == b"T"
        if col.code == "X":  # bits, most significant first, as astropy gives them
            return np.unpackbits(raw, axis=-1)[:, : col.repeat].astype(bool)
        if col.code == "A":
            return raw.copy()
        unsigned = _UNSIGNED.get((col.code, int(col.zero))) if col.scale == 1.0 and _whole(col.zero) else None
        if unsigned:
            return (raw.astype(dt.newbyteorder("=")).view(unsigned.replace("i1", "u1")) ^ _sign_bit(unsigned)).view(unsigned)
        if col.scale != 1.0 or col.zero != 0.0:  # astropy scales table columns in float64
            return raw.astype(np.float64) * col.scale + col.zero
        return raw.astype(dt.newbyteorder("="))

    def strings(self, name: str, rows: slice | None = None) -> np.ndarray:
        """A character column as str (ASCII, trailing blanks and NULs removed)."""
        raw = self.column(name, rows)
        return np.char.rstrip(np.char.decode(np.char.rstrip(raw, b"\x00"), "ascii", "replace"))

    def values(self, name: str, rows: slice | None = None) -> np.ndarray:
        """A column as `column` gives it, except character columns come back as str."""
        return self.strings(name, rows) if self._column(name).code == "A" else self.column(name, rows)

    # ---- images -------------------------------------------------------
    def image(self) -> np.ndarray:
        shape = self.shape
        if shape == () or not self.is_image:
            raise FitsFormatError(f"HDU {self.index} holds no image data")
        bitpix = self.number("BITPIX", integer=True)
        if bitpix not in BITPIX_DTYPES:
            raise FitsFormatError(f"HDU {self.index}: unsupported BITPIX {bitpix}")
        dt = np.dtype(BITPIX_DTYPES[bitpix])
        if math.prod(shape) * dt.itemsize > self.data_nbytes:
            raise FitsFormatError(f"HDU {self.index}: NAXISn call for {math.prod(shape) * dt.itemsize} bytes, "
                                  f"the data holds {self.data_nbytes}")
        raw = np.ndarray(shape, dtype=dt, buffer=self.buf, offset=self.data_offset)
        scale, zero = float(self.number("BSCALE", 1.0)), float(self.number("BZERO", 0.0))
        unsigned = _UNSIGNED.get((bitpix, int(zero))) if scale == 1.0 and _whole(zero) else None
        if unsigned:
            native = raw.astype(dt.newbyteorder("="))
            return (native.view(unsigned.replace("i1", "u1")) ^ _sign_bit(unsigned)).view(unsigned)
        if scale != 1.0 or zero != 0.0:  # astropy scales BITPIX 8/16/-32 in float32, the rest in float64
            out = raw.astype(np.float32 if bitpix in (8, 16, -32) else np.float64)
            return out * out.dtype.type(scale) + out.dtype.type(zero)
        return raw.astype(dt.newbyteorder("="))


def _whole(x: float) -> bool:
    return math.isfinite(x) and x == int(x)


def _sign_bit(dtype: str) -> Any:
    dt = np.dtype(dtype)
    if dt.kind == "i":  # BITPIX 8 with BZERO -128: flip the top bit of the unsigned byte
        return np.uint8(0x80)
    return dt.type(1 << (8 * dt.itemsize - 1))


def parse(buf: Any, unsupported_ok: bool = False) -> list[HDU]:
    """All HDUs in a FITS byte buffer. Trailing bytes are allowed only as padding (zeros or blanks):
    astropy skips anything there with a warning, but it is how a damaged XTENSION or NAXISn card shows
    (the HDUs after it silently lost), so here it is an error.

    Raises FitsFormatError for bytes that are not valid FITS, and FitsUnsupported
    (after checking the whole file's structure) for FITS that astropy must read,
    unless `unsupported_ok` (the astropy fallback's own structure check).
    """
    if len(buf) == 0:
        raise FitsFormatError("empty file (0 bytes)")
    if bytes(buf[:2]) == b"\x1f\x8b":
        buf = gunzip(buf)
    head = bytes(buf[:30])
    if not (head.startswith(b"SIMPLE  =") and head[29:30] == b"T"):
        raise FitsFormatError("not a FITS file (it does not start with 'SIMPLE  =  T')")
    hdus: list[HDU] = []
    unsupported: list[str] = []
    pos, n = 0, len(buf)
    while pos < n:
        if hdus and bytes(buf[pos : pos + 9]) != b"XTENSION=":
            break
        index = len(hdus)
        cards, data_at, why_header = parse_header(buf, pos, index)
        nbytes, why, xtension, dims = structure(cards, index)
        if data_at + nbytes > n:
            raise FitsFormatError(f"truncated: HDU {index} needs {nbytes} data bytes from offset {data_at}, "
                                  f"but the file ends at {n} (a truncated file or a wrong NAXISn/PCOUNT)")
        if xtension == "BINTABLE" and dims[0] == 0 and dims[1] > n:  # rows of no bytes: not bounded by the file
            raise FitsFormatError(f"HDU {index}: NAXIS2 = {dims[1]} rows of 0 bytes in a {n}-byte file")
        hdu = HDU(index, cards, data_at, nbytes, buf)
        hdu.__dict__["xtension"] = xtension  # the cached_property, already parsed
        hdus.append(hdu)
        if why_header or why:
            unsupported += [f"HDU {index}: {w}" for w in (why_header, why) if w]
        next_pos = data_at + (nbytes + BLOCK - 1) // BLOCK * BLOCK
        if next_pos <= pos:  # cannot happen with the checks above; a loop here would never end
            raise FitsFormatError(f"HDU {index}: the next header would not lie after this one")
        pos = next_pos
    if pos < n and bytes(buf[pos:]).strip(b"\x00 "):
        raise FitsFormatError(f"{n - pos} bytes after HDU {len(hdus) - 1} are neither a FITS header nor padding "
                              "(a damaged XTENSION or NAXISn card, or a damaged file)")
    if unsupported and not unsupported_ok:
        raise FitsUnsupported("; ".join(unsupported))
    return hdus


def gunzip(data: Any, limit: int | None = None) -> bytearray:
    """Inflate a (multi-member) gzip stream in chunks, refusing more than `limit` (MAX_GUNZIP_BYTES) bytes."""
    limit = MAX_GUNZIP_BYTES if limit is None else limit
    out = bytearray()
    pos, n = 0, len(data)
    while pos < n and bytes(data[pos : pos + 2]) == b"\x1f\x8b":
        inflate = zlib.decompressobj(wbits=31)
        tail = b""
        while not inflate.eof:
            if not tail:
                if pos >= n:
                    raise FitsFormatError("corrupt gzip stream (it ends before its end marker)")
                tail, pos = bytes(data[pos : pos + _GUNZIP_CHUNK]), pos + _GUNZIP_CHUNK
            try:
                out += inflate.decompress(tail, min(_GUNZIP_CHUNK * 8, limit + 1 - len(out)))  # small pieces: no 2nd copy
            except zlib.error as err:
                raise FitsFormatError(f"corrupt gzip stream ({err})") from None
            if len(out) > limit:
                raise FitsFormatError(f"gzip stream inflates to more than {limit} bytes: refused (a decompression "
                                      "bomb, or a file too big to inflate in memory: gunzip it, plain files are mapped)")
            tail = inflate.unconsumed_tail
        pos = min(pos, n) - len(inflate.unused_data)
    return out


def load(path: str | os.PathLike[str]) -> Any:
    """A file's bytes: small files read whole (faster than mapping), big ones mapped; nothing inflated yet."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size > _MMAP_ABOVE:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return fh.read()


def read(path: str | os.PathLike[str]) -> list[HDU]:
    """Parse a FITS file (gzip-compressed or not); see `parse` for what it raises."""
    return parse(load(path))
