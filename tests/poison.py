"""Poison inputs for ingest: files that hang a reader, exhaust its memory, or break planning.

Shared by tests/store/test_ingest_poison.py and bench/soak_ingest.py. Every maker is cheap on disk:
the huge files are sparse (a hole costs nothing) or gzip members of zeros (1 KB per MiB unpacked).
"""
from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

BLOCK = 2880


def make_fifo(path: Path) -> Path:
    """A named pipe called *.fits: open() blocks until a writer comes, which never happens."""
    os.mkfifo(path)
    return path


def make_dev_zero_link(path: Path) -> Path:
    """A symbolic link to /dev/zero: reading it never ends and fills memory."""
    os.symlink("/dev/zero", path)
    return path


def make_symlink_loop(path: Path) -> Path:
    """`path` -> `path`.loop -> `path`: resolving it goes round for ever (ELOOP)."""
    other = path.with_name(path.name + ".loop")
    os.symlink(other.name, path)
    os.symlink(path.name, other)
    return path


def _hdu_spans(data: bytes) -> list[tuple[int, int, int]]:
    """(header start, data start, end incl. padding) of each HDU of a plain FITS file."""
    spans = []
    pos = 0
    while pos < len(data) and (pos == 0 or data[pos : pos + 8] == b"XTENSION"):
        start = pos
        cards: dict[str, str] = {}
        while True:
            block = data[pos : pos + BLOCK]
            pos += BLOCK
            done = False
            for i in range(0, BLOCK, 80):
                card = block[i : i + 80].decode("ascii")
                if card.startswith("END     ") or card.rstrip() == "END":
                    done = True
                    break
                if card[8:10] == "= ":
                    cards[card[:8].strip()] = card[10:].split("/")[0].strip()
            if done:
                break
        size = 0
        naxis = int(cards.get("NAXIS", "0"))
        if naxis:
            size = abs(int(cards["BITPIX"])) // 8
            for k in range(1, naxis + 1):
                size *= int(cards[f"NAXIS{k}"])
            size += int(cards.get("PCOUNT", "0"))
        end = pos + (size + BLOCK - 1) // BLOCK * BLOCK
        spans.append((start, pos, end))
        pos = end
    return spans


def _set_card(header: bytes, key: str, value: int) -> bytes:
    """`header` with the integer card `key` set to `value` (fixed format, right-justified in columns 11-30)."""
    pattern = re.compile(rb"(?m)" + re.escape(key.ljust(8).encode()) + rb"= +(-?\d+)")
    for i in range(0, len(header), 80):
        card = header[i : i + 80]
        if pattern.match(card):
            new = key.ljust(8).encode() + b"= " + str(value).rjust(20).encode() + card[30:]
            return header[:i] + new + header[i + 80 :]
    raise KeyError(key)


def make_sparse_coadd(path: Path, spec_file: Path, rows: int = 50_000_000) -> Path:
    """A copy of a spec-lite file whose COADD declares `rows` rows: the real rows, then a hole of zeros.

    The file is as long as its header says (so it is not "truncated"): ~1.6 GB at 5e7 rows of a
    BOSS COADD, of which a few KB are on disk. A reader that takes the header at its word allocates
    every column at that length.
    """
    data = spec_file.read_bytes()
    spans = _hdu_spans(data)
    h0, (s1, d1, e1) = spans[0], spans[1]
    header1 = _set_card(data[s1:d1], "NAXIS2", rows)
    row_bytes = int(re.search(rb"NAXIS1  = +(\d+)", data[s1:d1]).group(1))
    big = (row_bytes * rows + BLOCK - 1) // BLOCK * BLOCK
    with open(path, "wb") as fh:
        fh.write(data[h0[0] : h0[2]])
        fh.write(header1)
        fh.write(data[d1:e1])  # the real rows; the rest is a hole
        fh.seek(d1 - s1 + h0[2] + big)
        fh.write(data[e1:])  # SPALL, SPZLINE after the declared data
    return path


def make_gzip_bomb(path: Path, spec_file: Path, unpacked_bytes: int = 3 * 2**30) -> Path:
    """A .fits.gz that unpacks to `unpacked_bytes`: a spec file's headers, then zeros, as gzip members.

    1 MiB of zeros compresses to ~1 KB and gzip readers concatenate members, so the file is
    ~3 MB for 3 GiB; its COADD declares enough rows for the zeros to be "data", so nothing
    before the end of the stream says it is wrong.
    """
    data = spec_file.read_bytes()
    spans = _hdu_spans(data)
    h0, (s1, d1, _e1) = spans[0], spans[1]
    row_bytes = int(re.search(rb"NAXIS1  = +(\d+)", data[s1:d1]).group(1))
    rows = max(1, (unpacked_bytes - h0[2] - (d1 - s1)) // row_bytes)
    head = data[h0[0] : h0[2]] + _set_card(data[s1:d1], "NAXIS2", rows)
    zeros = gzip.compress(bytes(2**20), compresslevel=9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(head))
        fh.writelines(zeros for _ in range(-(-rows * row_bytes // 2**20)))  # the declared data: not "truncated"
    return path


def make_spec_without_coadd(path: Path, spec_file: Path) -> Path:
    """A spec-lite file that lost its COADD HDU: HDU 1 is now SPALL, one row with PLATE/MJD/FIBERID/Z."""
    data = spec_file.read_bytes()
    spans = _hdu_spans(data)
    path.write_bytes(data[spans[0][0] : spans[0][2]] + data[spans[2][0] :])
    return path
