"""The arrays on disk: float32 N x 4618 .npy files that grow and shrink in place.

The writer preallocates flux.npy / ivar.npy for the number of input files and
grows them (header rewrite + file extension, never a copy) when
multi-spectrum files (spPlate, DESI coadds) yield more rows than files, then
trims them to the committed row count when it finalizes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from model.grid import FNET_NPIX


def read_npy_header(path: Path) -> tuple[tuple[int, ...], int, tuple[int, int]]:
    """(shape, header length in bytes, format version) of a .npy file."""
    with open(path, "rb") as fh:
        version = npy_format.read_magic(fh)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _fortran, dtype = read(fh, max_header_size=1 << 20)
        if dtype != np.float32:
            raise ValueError(f"{path}: dtype {dtype}, expected float32")
        return tuple(shape), fh.tell(), version


def create_npy(path: Path, n_rows: int) -> None:
    """A float32 n_rows x 4618 .npy file (sparse on disk until written)."""
    arr = npy_format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, FNET_NPIX))
    del arr


def set_npy_rows(path: Path, n_rows: int) -> None:
    """Grow or trim a .npy file to n_rows in place: header rewrite plus truncate/extend.

    numpy pads every header so that the length of the first axis can change
    without moving the data (GROWTH_AXIS_MAX_DIGITS), which is what makes this
    safe and cheap. Growing extends the file first, trimming rewrites the header
    first, so a crash in between leaves a file numpy can still load.
    """
    shape, hlen, version = read_npy_header(path)
    header = {"descr": npy_format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (int(n_rows), FNET_NPIX)}
    size = hlen + int(n_rows) * FNET_NPIX * 4
    with open(path, "r+b") as fh:
        if n_rows > shape[0]:
            fh.truncate(size)
        fh.seek(0)
        if version == (1, 0):
            npy_format.write_array_header_1_0(fh, header)
        else:
            npy_format.write_array_header_2_0(fh, header)
        if fh.tell() != hlen:  # never happens with numpy's padded headers; refuse to corrupt
            raise RuntimeError(f"{path}: .npy header length changed on resize")
        if n_rows < shape[0]:
            fh.truncate(size)
