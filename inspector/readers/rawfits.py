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

Scope (anything else raises FitsFormatError rather than guessing):
images with BITPIX 8/16/32/64/-32/-64 and BZERO/BSCALE; binary tables with
fixed-width columns L X B I J K A E D C M (TSCAL/TZERO, TDIM); gzip-compressed
files. Variable-length (P/Q) columns are not supported.
"""
from __future__ import annotations

import gzip
import mmap
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 2880
CARD = 80
_MMAP_ABOVE = 64 * 1024 * 1024  # big catalogs are mapped, not read
_TFORM = re.compile(r"^\s*(\d*)\s*([LXBIJKAEDCMPQ])")
_TABLE_CODES = {
    "L": "S1", "X": "u1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8",
    "A": "S", "E": ">f4", "D": ">f8", "C": ">c8", "M": ">c16",
}
_ITEMSIZE = {code: np.dtype(dt).itemsize for code, dt in _TABLE_CODES.items() if code not in "AX"}
_BITPIX = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
# (BITPIX or TFORM code, zero point) pairs that mean "unsigned / signed byte".
_UNSIGNED = {(16, 1 << 15): "u2", (32, 1 << 31): "u4", (64, 1 << 63): "u8", (8, -128): "i1",
             ("I", 1 << 15): "u2", ("J", 1 << 31): "u4", ("K", 1 << 63): "u8", ("B", -128): "i1"}


class FitsFormatError(Exception):
    """The bytes are not (valid, complete, supported) FITS. Readers add the path."""


def _parse_value(raw: bytes) -> Any:
    text = raw.decode("ascii", "replace")
    s = text.lstrip()
    if s.startswith("'"):
        out, i = [], 1
        while i < len(s):
            c = s[i]
            if c == "'":
                if s[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(c)
            i += 1
        return "".join(out).rstrip()
    s = s.split("/", 1)[0].strip()
    if s in ("T", "F"):
        return s == "T"
    if not s:
        return None
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s.replace("D", "E"))
    except ValueError:
        return s


def _quoted(raw: bytes | None) -> str:
    """A quoted string card value, fast: TTYPE/TFORM never need the general parser."""
    if raw is None:
        return ""
    if b"''" in raw:
        return str(_parse_value(raw)).strip()
    parts = raw.split(b"'", 2)
    return parts[1].decode("ascii", "replace").strip() if len(parts) == 3 else ""


@dataclass
class _Column:
    name: str
    code: str
    repeat: int
    offset: int
    dtype: str
    shape: tuple[int, ...]
    scale: float = 1.0
    zero: float = 0.0


@dataclass
class HDU:
    """One HDU: its header cards (parsed on demand) and where its data lies."""

    index: int
    cards: dict[str, bytes]
    data_offset: int
    data_nbytes: int
    buf: Any = field(repr=False)
    _cols: dict[str, _Column] | None = field(default=None, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.cards.get(key.upper())
        if raw is None:
            return default
        value = _parse_value(raw)
        return default if value is None else value

    def __contains__(self, key: str) -> bool:
        return key.upper() in self.cards

    @property
    def name(self) -> str:
        return str(self.get("EXTNAME", "")).strip().upper()

    @cached_property
    def is_table(self) -> bool:
        return str(self.get("XTENSION", "")).strip().upper() == "BINTABLE"

    @property
    def is_image(self) -> bool:
        return not self.is_table and self.shape != ()

    @property
    def shape(self) -> tuple[int, ...]:
        """numpy order: (NAXISn, ..., NAXIS1)."""
        naxis = int(self.get("NAXIS", 0))
        dims = tuple(int(self.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))
        return () if naxis == 0 or 0 in dims else dims

    @cached_property
    def nrows(self) -> int:
        return int(self.get("NAXIS2", 0)) if self.is_table else 0

    # ---- tables -------------------------------------------------------
    def _columns(self) -> dict[str, _Column]:
        # Hot path: a BOSS HDU2 has 236 columns, so cards are read raw here, not via get().
        if self._cols is not None:
            return self._cols
        cards = self.cards
        cols: dict[str, _Column] = {}
        offset = 0
        for k in range(1, int(self.get("TFIELDS", 0)) + 1):
            tform = _quoted(cards.get(f"TFORM{k}"))
            m = _TFORM.match(tform)
            if m is None:
                raise FitsFormatError(f"HDU {self.index}: cannot parse TFORM{k} = {tform!r}")
            repeat = int(m.group(1) or 1)
            code = m.group(2)
            name = _quoted(cards.get(f"TTYPE{k}")) or f"COL{k}"
            if code in "PQ":
                cols.setdefault(name.upper(), _Column(name, code, repeat, offset, "", ()))
                offset += 8 if code == "P" else 16
                continue
            if code == "A":
                dtype, width, shape = f"S{repeat}", repeat, ()
            elif code == "X":
                width = (repeat + 7) // 8
                dtype, shape = "u1", ((width,) if width > 1 else ())
            else:
                dtype = _TABLE_CODES[code]
                width = repeat * _ITEMSIZE[code]
                shape = (repeat,) if repeat > 1 else ()
                if repeat > 1 and f"TDIM{k}" in cards:
                    dims = tuple(int(d) for d in re.findall(r"\d+", str(self.get(f"TDIM{k}"))))[::-1]
                    if int(np.prod(dims)) == repeat:
                        shape = dims
            col = _Column(name, code, repeat, offset, dtype, shape)
            if f"TSCAL{k}" in cards or f"TZERO{k}" in cards:
                col.scale = float(self.get(f"TSCAL{k}", 1.0))
                col.zero = float(self.get(f"TZERO{k}", 0.0))
            cols.setdefault(name.upper(), col)
            offset += width
        if self.nrows and offset != int(self.get("NAXIS1", 0)):
            raise FitsFormatError(f"HDU {self.index}: columns add up to {offset} bytes, NAXIS1 says {self.get('NAXIS1')}")
        self._cols = cols
        return cols

    @property
    def column_names(self) -> list[str]:
        """Column names as written in the file (original case)."""
        return [c.name for c in self._columns().values()]

    def has_column(self, name: str) -> bool:
        return name.upper() in self._columns()

    def column(self, name: str, rows: slice | None = None) -> np.ndarray:
        """One column, native byte order, copied; names match without regard to case."""
        col = self._columns().get(name.upper())
        if col is None:
            raise KeyError(name)
        if col.code in "PQ":
            raise FitsFormatError(f"HDU {self.index}: variable-length column {col.name!r} is not supported")
        start, stop, _ = (rows or slice(None)).indices(self.nrows)
        n = max(stop - start, 0)
        rowbytes = int(self.get("NAXIS1"))
        dt = np.dtype(col.dtype)
        strides = (rowbytes,) + tuple(int(np.prod(col.shape[i + 1:], dtype=int)) * dt.itemsize
                                      for i in range(len(col.shape)))
        raw = np.ndarray((n,) + col.shape, dtype=dt, buffer=self.buf,
                         offset=self.data_offset + start * rowbytes + col.offset, strides=strides)
        if col.code == "L":
            return raw == b"T"
        if col.code in "AX":
            return raw.copy()
        unsigned = _UNSIGNED.get((col.code, int(col.zero))) if col.scale == 1.0 else None
        if unsigned:
            return (raw.astype(dt.newbyteorder("=")).view(unsigned.replace("i1", "u1")) ^ _sign_bit(unsigned)).view(unsigned)
        out = raw.astype(dt.newbyteorder("="))
        if col.scale != 1.0 or col.zero != 0.0:
            out = out * col.scale + col.zero
        return out

    def strings(self, name: str, rows: slice | None = None) -> np.ndarray:
        """A character column as str (ASCII, trailing blanks and NULs removed)."""
        raw = self.column(name, rows)
        return np.char.rstrip(np.char.decode(np.char.rstrip(raw, b"\x00"), "ascii", "replace"))

    def values(self, name: str, rows: slice | None = None) -> np.ndarray:
        """A column as `column` gives it, except character columns come back as str."""
        col = self._columns().get(name.upper())
        if col is None:
            raise KeyError(name)
        return self.strings(name, rows) if col.code == "A" else self.column(name, rows)

    def cell(self, name: str, row: int = 0) -> Any:
        """One table cell as a plain Python value (arrays stay numpy)."""
        value = self.values(name, slice(row, row + 1))[0]
        if isinstance(value, np.ndarray):
            return value
        return value.item() if hasattr(value, "item") else value

    # ---- images -------------------------------------------------------
    def image(self) -> np.ndarray:
        bitpix = int(self.get("BITPIX"))
        shape = self.shape
        if bitpix not in _BITPIX:
            raise FitsFormatError(f"HDU {self.index}: unsupported BITPIX {bitpix}")
        dt = np.dtype(_BITPIX[bitpix])
        raw = np.ndarray(shape, dtype=dt, buffer=self.buf, offset=self.data_offset)
        scale, zero = float(self.get("BSCALE", 1.0)), float(self.get("BZERO", 0.0))
        unsigned = _UNSIGNED.get((bitpix, int(zero))) if scale == 1.0 and zero == int(zero) else None
        if unsigned:
            native = raw.astype(dt.newbyteorder("="))
            return (native.view(unsigned.replace("i1", "u1")) ^ _sign_bit(unsigned)).view(unsigned)
        out = raw.astype(dt.newbyteorder("="))
        if scale != 1.0 or zero != 0.0:
            out = out * scale + zero
        return out


def _sign_bit(dtype: str) -> Any:
    dt = np.dtype(dtype)
    if dt.kind == "i":  # BITPIX 8 with BZERO -128: flip the top bit of the unsigned byte
        return np.uint8(0x80)
    return dt.type(1 << (8 * dt.itemsize - 1))


def _parse_header(buf: Any, pos: int, index: int) -> tuple[dict[str, bytes], int]:
    cards: dict[str, bytes] = {}
    n = len(buf)
    while True:
        if pos + BLOCK > n:
            raise FitsFormatError(f"truncated: header of HDU {index} ends before its END card (file is {n} bytes)")
        block = bytes(buf[pos : pos + BLOCK])
        pos += BLOCK
        for i in range(0, BLOCK, CARD):
            key = block[i : i + 8]
            if key == b"END     ":
                return cards, pos
            if block[i + 8 : i + 10] == b"= ":
                k = key.rstrip().decode("ascii", "replace")
                if k not in cards:
                    cards[k] = block[i + 10 : i + CARD]


def _data_nbytes(cards: dict[str, bytes], index: int) -> int:
    def num(key: str, default: int | None = None) -> int:
        raw = cards.get(key)
        if raw is None:
            if default is None:
                raise FitsFormatError(f"HDU {index}: header has no {key}")
            return default
        value = _parse_value(raw)
        if not isinstance(value, int) or isinstance(value, bool):
            raise FitsFormatError(f"HDU {index}: {key} = {value!r} is not an integer")
        return value

    naxis = num("NAXIS")
    if naxis == 0:
        return 0
    size = 1
    for k in range(1, naxis + 1):
        size *= num(f"NAXIS{k}")
    return abs(num("BITPIX")) // 8 * num("GCOUNT", 1) * (num("PCOUNT", 0) + size)


def parse(buf: Any) -> list[HDU]:
    """All HDUs in a FITS byte buffer. Trailing non-FITS bytes are ignored, as astropy does."""
    if len(buf) == 0:
        raise FitsFormatError("empty file (0 bytes)")
    if bytes(buf[:2]) == b"\x1f\x8b":
        try:
            buf = gzip.decompress(bytes(buf))
        except (OSError, EOFError) as err:
            raise FitsFormatError(f"corrupt gzip stream ({err})") from None
    head = bytes(buf[:30])
    if not (head.startswith(b"SIMPLE  =") and head[29:30] == b"T"):
        raise FitsFormatError("not a FITS file (it does not start with 'SIMPLE  =  T')")
    hdus: list[HDU] = []
    pos, n = 0, len(buf)
    while pos < n:
        if hdus and not bytes(buf[pos : pos + 9]) == b"XTENSION=":
            break
        index = len(hdus)
        cards, pos = _parse_header(buf, pos, index)
        nbytes = _data_nbytes(cards, index)
        if pos + nbytes > n:
            raise FitsFormatError(
                f"truncated: HDU {index} needs {nbytes} data bytes from offset {pos}, but the file ends at {n}")
        hdus.append(HDU(index, cards, pos, nbytes, buf))
        pos += (nbytes + BLOCK - 1) // BLOCK * BLOCK
    return hdus


def read(path: str | Path) -> list[HDU]:
    """Parse a FITS file. Small files are read whole (faster than mapping); big ones are mapped."""
    path = Path(path)
    with open(path, "rb") as fh:
        size = path.stat().st_size
        if size > _MMAP_ABOVE:
            buf: Any = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        else:
            buf = fh.read()
    return parse(buf)
