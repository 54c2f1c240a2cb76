"""The spectrum store: every ingested spectrum on the FNet grid, in one directory.

Why a directory of plain files rather than a database or HDF5: the model team
trains straight from `flux.npy` + `index.parquet`, a notebook can `np.load` the
arrays with `mmap_mode="r"` and never read more than the rows it touches, and
nothing here needs a server or a library beyond numpy and pyarrow.

Layout of a store directory::

    flux.npy          float32 N x 4618, FNet grid, NOT normalised (model.grid.resample_one)
    ivar.npy          float32 N x 4618, inverse variance on the same grid (0 = no data)
    index.parquet     one row per stored spectrum, in store-row order (see INDEX_COLUMNS)
    rejected.parquet  every input that was not stored, with a reason
    store.json        grid definition, sources, counts, software version, state
    parts/            only while an ingest is running or was interrupted

Crash safety (why the writer is shaped the way it is). An ingest commits one
chunk at a time: it writes the chunk's rows into the two .npy files past the
last committed row, then its rejected part, then its index part
`parts/part-SEQ.index.parquet` by atomic rename. The index part is the commit
point: a chunk whose index part exists is stored, anything past it is
garbage that the next run overwrites. `finalize` folds the parts into
`index.parquet` / `rejected.parquet` (each records the last part sequence it
holds, in its Parquet metadata, so parts are never counted twice) and trims
the arrays to N rows by rewriting the .npy header in place. A SIGKILL at any
instant therefore leaves a store that the same command resumes, re-doing at
most the chunks that were in flight.

Capacity: the arrays are preallocated for the number of input files and grow
in place (header rewrite + file extension, never a copy) when multi-spectrum
files (spPlate, DESI coadds) yield more rows than files: a grow-by-chunk
layout, so N need not be known up front.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
from numpy.lib import format as npy_format

from model.grid import FNET_DLOGLAM, FNET_LOGLAM_MIN, FNET_NPIX

FLUX_FILE = "flux.npy"
IVAR_FILE = "ivar.npy"
INDEX_FILE = "index.parquet"
REJECTED_FILE = "rejected.parquet"
META_FILE = "store.json"
PARTS_DIR = "parts"
STORE_FORMAT = 1
_SEQ_KEY = b"inspector.last_seq"
_ROW_GROUP = 4096  # rows per parquet row group in the folded index (bounds finalize's buffer)

# Columns every index has, in order; catalog columns (upper-case, as in DR16Q)
# come between these and DERIVED_SCHEMA.
BASE_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("object_id", pa.string()),
        ("file", pa.string()),
        ("hdu_or_fiber", pa.string()),
        ("file_index", pa.int32()),  # position in readers.read_any(file): re-read the native spectrum
        ("survey", pa.string()),
        ("plate", pa.int64()),
        ("mjd", pa.int64()),
        ("fiberid", pa.int64()),
        ("targetid", pa.int64()),
        ("ra", pa.float64()),
        ("dec", pa.float64()),
        ("spec_class", pa.string()),
        ("z_file", pa.float64()),
        ("zwarning", pa.int64()),
        ("sn_median_all", pa.float64()),
        ("n_pix_native", pa.int32()),
        ("lam_min", pa.float64()),
        ("lam_max", pa.float64()),
        ("n_pix_grid_good", pa.int32()),  # grid pixels with ivar > 0
    ]
)
DERIVED_SCHEMA = pa.schema(
    [
        ("catalog_match", pa.bool_()),
        ("z", pa.float64()),  # training label: Z_VI > -0.5, else catalog Z, else z_file
        ("z_source", pa.string()),  # "Z_VI" | "Z" | "z_file" | null
        ("is_qso", pa.bool_()),  # CLASS_PERSON in {3, 30} where inspected, else spec_class == "QSO"
        ("class_source", pa.string()),  # "CLASS_PERSON" | "spec_class" | null (then is_qso is a guess: False)
    ]
)
REJECTED_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("reason", pa.string()),
        ("when", pa.timestamp("us", tz="UTC")),
        ("category", pa.string()),
        ("hdu_or_fiber", pa.string()),
        ("object_id", pa.string()),
        ("size", pa.int64()),  # file size and mtime when rejected: a changed file is retried
        ("mtime_ns", pa.int64()),
    ]
)


# --------------------------------------------------------------------------- .npy helpers


def _read_npy_header(path: Path) -> tuple[tuple[int, ...], int, tuple[int, int]]:
    """(shape, header length in bytes, format version) of a .npy file."""
    with open(path, "rb") as fh:
        version = npy_format.read_magic(fh)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _fortran, dtype = read(fh, max_header_size=1 << 20)
        if dtype != np.float32:
            raise ValueError(f"{path}: dtype {dtype}, expected float32")
        return tuple(shape), fh.tell(), version


def _create_npy(path: Path, n_rows: int) -> None:
    """A float32 n_rows x 4618 .npy file (sparse on disk until written)."""
    arr = npy_format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, FNET_NPIX))
    del arr


def _set_npy_rows(path: Path, n_rows: int) -> None:
    """Grow or trim a .npy file to n_rows in place: header rewrite plus truncate/extend.

    numpy pads every header so that the length of the first axis can change
    without moving the data (GROWTH_AXIS_MAX_DIGITS), which is what makes this
    safe and cheap. Growing extends the file first, trimming rewrites the header
    first, so a crash in between leaves a file numpy can still load.
    """
    shape, hlen, version = _read_npy_header(path)
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


# --------------------------------------------------------------------------- parquet helpers


def _last_seq(path: Path) -> int:
    """The last part sequence number folded into a consolidated parquet file (-1 if none)."""
    if not path.exists():
        return -1
    meta = pq.read_schema(path).metadata or {}
    return int(meta.get(_SEQ_KEY, b"-1"))


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns: missing ones null, types cast."""
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _unify(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema holding every column of `schemas`, base columns first, derived last."""
    base = [f.name for f in BASE_SCHEMA]
    derived = [f.name for f in DERIVED_SCHEMA]
    fields: dict[str, pa.Field] = {}
    for s in schemas:
        for f in s:
            f = f.remove_metadata()
            if f.name not in fields or pa.types.is_null(fields[f.name].type):
                fields[f.name] = f
    middle = [n for n in fields if n not in base and n not in derived]
    order = [n for n in base if n in fields] + middle + [n for n in derived if n in fields]
    return pa.schema([fields[n] for n in order])


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _stream_tables(out: Path, sources: Iterable[pa.Table], schema: pa.Schema, last_seq: int) -> int:
    """Write tables one after another into `out` (atomically); returns the row count.

    Streaming keeps memory at one part/row group, whatever N is.
    """
    schema = schema.with_metadata({_SEQ_KEY: str(last_seq).encode()})
    tmp = out.with_name(out.name + ".tmp")
    n = 0
    plain = schema.remove_metadata()
    pending: list[pa.Table] = []
    n_pending = 0
    with pq.ParquetWriter(tmp, schema) as writer:

        def flush() -> None:
            if pending:
                writer.write_table(pa.concat_tables(pending).replace_schema_metadata(schema.metadata))
                pending.clear()

        for t in sources:  # parts are small: gather them into row groups of ~4k rows
            if t.num_rows:
                pending.append(_conform(t, plain))
                n_pending += t.num_rows
                n += t.num_rows
                if n_pending >= _ROW_GROUP:
                    flush()
                    n_pending = 0
        flush()
    os.replace(tmp, out)
    return n


def _read(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One small parquet file, read without the dataset layer and its thread pools.

    (pq.read_table spins up arrow's thread pools, whose allocator caches made
    the parent's RSS grow by tens of MB while folding thousands of parts.)
    """
    with pq.ParquetFile(path) as pf:
        return pf.read(columns=columns, use_threads=False)


def _iter_batches(path: Path) -> Iterable[pa.Table]:
    if path.exists():
        with pq.ParquetFile(path) as pf:
            for i in range(pf.num_row_groups):
                yield pf.read_row_group(i, use_threads=False)


# --------------------------------------------------------------------------- reading


_NULLABLE_INTS = {
    pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(),
}


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas keeping integers exact: a DESI TARGETID (~4e16) must not pass through float64.

    Integer columns become pandas' nullable integers (missing = <NA>, e.g.
    plate for a DESI row); everything else converts as usual.
    """
    return table.to_pandas(types_mapper=_NULLABLE_INTS.get)


class SpectrumStore:
    """A store opened read-only: arrays as memmaps, the index as a DataFrame.

    `store.flux[rows]` reads only those rows from disk, so a store far larger
    than memory is fine. Rows beyond the committed index (an ingest that was
    interrupted) are never shown.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not (self.path / META_FILE).exists():
            raise FileNotFoundError(f"{self.path} is not a spectrum store (no {META_FILE})")
        self.meta: dict[str, Any] = json.loads((self.path / META_FILE).read_text())
        self.index: pd.DataFrame = _to_pandas(
            pq.read_table(self.path / INDEX_FILE)
            if (self.path / INDEX_FILE).exists()
            else pa.schema([*BASE_SCHEMA, *DERIVED_SCHEMA]).empty_table()
        )
        n = len(self.index)
        self.flux: np.ndarray = self._open(FLUX_FILE, n)
        self.ivar: np.ndarray = self._open(IVAR_FILE, n)
        self._rows_by_id: pd.Index | None = None

    def _open(self, name: str, n: int) -> np.ndarray:
        p = self.path / name
        if not p.exists():
            return np.zeros((0, FNET_NPIX), dtype=np.float32)
        arr = np.load(p, mmap_mode="r")
        if arr.shape[0] < n or arr.shape[1] != FNET_NPIX or arr.dtype != np.float32:
            raise ValueError(f"{p}: shape {arr.shape} {arr.dtype} does not hold the {n} indexed rows")
        return arr[:n]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def rejected(self) -> pd.DataFrame:
        p = self.path / REJECTED_FILE
        return _to_pandas(pq.read_table(p) if p.exists() else REJECTED_SCHEMA.empty_table())

    @property
    def complete(self) -> bool:
        """False while an ingest is running or after one was interrupted (rerun it to finish)."""
        return self.meta.get("state") == "complete"

    def row_of(self, object_id: str) -> int:
        """Store row of a survey object id (PLATE-MJD-FIBER or TARGETID); KeyError if absent."""
        if self._rows_by_id is None:
            self._rows_by_id = pd.Index(self.index["object_id"].astype(str))
        loc = self._rows_by_id.get_loc(str(object_id))
        if not isinstance(loc, (int, np.integer)):  # never: ingest rejects duplicates
            raise KeyError(f"{object_id} is stored more than once")
        return int(loc)

    def __repr__(self) -> str:
        return f"SpectrumStore({str(self.path)!r}, n={len(self)}, rejected={self.meta.get('counts', {}).get('rejected')})"


# --------------------------------------------------------------------------- writing


@dataclass
class StoreState:
    """What a writer found on disk: committed rows and what is already done."""

    n_rows: int = 0
    next_seq: int = 0
    # files stored before this writer opened, as one compact arrow array (not a Python set:
    # at DR16Q size the paths alone would cost ~100 MB of Python objects)
    stored_files: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    rejected_files: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # file -> (size, mtime_ns, category)
    object_ids: dict[str, int] = field(default_factory=dict)  # object_id -> first row holding it

    def stored(self, files: Sequence[str]) -> np.ndarray:
        """For each path, whether it was stored before this writer opened (vectorised)."""
        import pyarrow.compute as pc

        if not len(files):
            return np.zeros(0, dtype=bool)
        return pc.is_in(pa.array(files, pa.string()), value_set=self.stored_files).to_numpy(zero_copy_only=False)


class StoreWriter:
    """Appends chunks to a store with the commit protocol in the module docstring.

    One writer per store at a time (a lock file refuses a second concurrent
    ingest); the parent process owns it, workers only compute.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / PARTS_DIR).mkdir(exist_ok=True)
        self.fsync = fsync
        self._lock = self._acquire_lock()
        self.meta = self._read_meta()
        grid = self.meta.get("grid")
        if grid and (grid.get("npix") != FNET_NPIX or abs(grid.get("loglam_min", 0) - FNET_LOGLAM_MIN) > 1e-9
                     or abs(grid.get("dloglam", 0) - FNET_DLOGLAM) > 1e-12):
            self.close()
            raise RuntimeError(f"{self.path} was built on another grid ({grid}); ingest into a new store")
        self.state = StoreState()
        self._new_parts: list[int] = []
        self._part_rows: list[tuple[int, int]] = []  # (first row, seq) of each part not yet folded
        self._files_cache: tuple[str, pa.Array] | None = None
        self._load_state()
        self._fds: dict[str, int] = {}
        self._hlen = 0
        self.capacity = 0

    # ----- lock
    def _acquire_lock(self) -> Any:
        import fcntl

        fh = open(self.path / ".lock", "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise RuntimeError(f"another ingest is writing to {self.path}") from None
        return fh

    def close(self) -> None:
        for fd in getattr(self, "_fds", {}).values():
            os.close(fd)
        self._fds = {}
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- state
    def _read_meta(self) -> dict[str, Any]:
        p = self.path / META_FILE
        return json.loads(p.read_text()) if p.exists() else {}

    def _part(self, seq: int, kind: str) -> Path:
        return self.path / PARTS_DIR / f"part-{seq:08d}.{kind}.parquet"

    def _committed_parts(self) -> list[int]:
        seqs = []
        for p in (self.path / PARTS_DIR).glob("part-*.index.parquet"):
            seqs.append(int(p.name.split(".")[0].split("-")[1]))
        return sorted(seqs)

    def _load_state(self) -> None:
        """Rebuild what is stored from index.parquet, rejected.parquet and committed parts."""
        st = self.state
        idx_seq = _last_seq(self.path / INDEX_FILE)
        rej_seq = _last_seq(self.path / REJECTED_FILE)
        # drop leftovers: temp files, consolidated parts, rejected parts with no commit
        for p in (self.path / PARTS_DIR).glob("*.tmp"):
            p.unlink()
        committed = self._committed_parts()
        for p in (self.path / PARTS_DIR).glob("part-*.rejected.parquet"):
            seq = int(p.name.split(".")[0].split("-")[1])
            if seq not in committed or seq <= rej_seq:
                p.unlink()
        for seq in committed:
            if seq <= idx_seq:
                self._part(seq, "index").unlink()
        self._new_parts = [s for s in committed if s > idx_seq]
        st.next_seq = max([idx_seq, rej_seq, *committed], default=-1) + 1

        def index_tables() -> Iterable[pa.Table]:
            yield from _iter_batches(self.path / INDEX_FILE)
            for s in self._new_parts:
                t = _read(self._part(s, "index"))
                self._part_rows.append((st.n_rows, s))
                yield t

        files: list[pa.Array] = []
        for t in index_tables():
            for i, oid in enumerate(t.column("object_id").to_pylist()):
                st.object_ids.setdefault(oid, st.n_rows + i)
            files.append(pa.compute.unique(t.column("file")).cast(pa.string()))
            st.n_rows += t.num_rows
        if files:
            st.stored_files = pa.compute.unique(pa.concat_arrays(files))

        def rejected_tables() -> Iterable[pa.Table]:
            yield from _iter_batches(self.path / REJECTED_FILE)
            for s in self._new_parts:
                if self._part(s, "rejected").exists():
                    yield _read(self._part(s, "rejected"))

        for t in rejected_tables():
            cols = t.select(["file", "size", "mtime_ns", "category"]).to_pydict()
            for f, size, mt, cat in zip(cols["file"], cols["size"], cols["mtime_ns"], cols["category"]):
                st.rejected_files[f] = (size if size is not None else -1, mt if mt is not None else -1, cat)

    def file_of_row(self, row: int) -> str:
        """The file a stored row came from (for messages such as "duplicate of ..."); reads from disk."""
        import bisect

        n_folded = self._part_rows[0][0] if self._part_rows else self.state.n_rows
        if row < n_folded:
            key, path = "index", self.path / INDEX_FILE
            offset = 0
        else:
            i = bisect.bisect_right([r for r, _ in self._part_rows], row) - 1
            offset, seq = self._part_rows[i]
            key, path = f"part{seq}", self._part(seq, "index")
        if self._files_cache is None or self._files_cache[0] != key:
            self._files_cache = (key, _read(path, columns=["file"]).column("file").combine_chunks())
        return str(self._files_cache[1][row - offset])

    # ----- arrays
    def open_arrays(self, min_capacity: int) -> None:
        """Open (creating or growing) flux.npy / ivar.npy with room for `min_capacity` rows."""
        for name in (FLUX_FILE, IVAR_FILE):
            p = self.path / name
            if not p.exists():
                _create_npy(p, max(min_capacity, self.state.n_rows))
            shape, hlen, _ = _read_npy_header(p)
            if shape[1:] != (FNET_NPIX,):
                raise ValueError(f"{p}: shape {shape}, expected (N, {FNET_NPIX})")
            if shape[0] < self.state.n_rows:
                raise ValueError(f"{p} holds {shape[0]} rows but the index has {self.state.n_rows}: store damaged")
            if shape[0] < min_capacity:
                _set_npy_rows(p, min_capacity)
            self._fds[name] = os.open(p, os.O_RDWR)
            self._hlen = hlen
        self.capacity = max(min_capacity, _read_npy_header(self.path / FLUX_FILE)[0][0])

    def _ensure_capacity(self, n: int) -> None:
        if n <= self.capacity:
            return
        new = max(n, self.capacity + self.capacity // 4 + 64)  # grow by chunks, amortised
        for name in (FLUX_FILE, IVAR_FILE):
            _set_npy_rows(self.path / name, new)
        self.capacity = new

    def _write_rows(self, name: str, row0: int, arr: np.ndarray) -> None:
        data = np.ascontiguousarray(arr, dtype=np.float32)
        off = self._hlen + row0 * FNET_NPIX * 4
        buf = memoryview(data).cast("B")
        fd = self._fds[name]
        while buf:
            n = os.pwrite(fd, buf, off)
            buf, off = buf[n:], off + n

    # ----- commit
    def commit(self, flux: np.ndarray, ivar: np.ndarray, index: pa.Table, rejected: pa.Table | None) -> int:
        """Store one chunk atomically; returns its first row. `index` must not carry `row` yet."""
        k = index.num_rows
        if flux.shape != (k, FNET_NPIX) or ivar.shape != (k, FNET_NPIX):
            raise ValueError(f"chunk arrays {flux.shape}/{ivar.shape} do not match {k} index rows")
        row0 = self.state.n_rows
        seq = self.state.next_seq
        if k:
            self._ensure_capacity(row0 + k)
            self._write_rows(FLUX_FILE, row0, flux)
            self._write_rows(IVAR_FILE, row0, ivar)
            if self.fsync:
                os.fdatasync(self._fds[FLUX_FILE])
                os.fdatasync(self._fds[IVAR_FILE])
        rows = pa.array(np.arange(row0, row0 + k, dtype=np.int64))
        if "row" in index.column_names:
            index = index.set_column(index.column_names.index("row"), "row", rows)
        else:
            index = index.add_column(0, "row", rows)
        if rejected is not None and rejected.num_rows:
            _atomic_write_table(rejected, self._part(seq, "rejected"))
        _atomic_write_table(index, self._part(seq, "index"))  # the commit point
        # in-memory bookkeeping only after the commit is on disk
        st = self.state
        for i, oid in enumerate(index.column("object_id").to_pylist()):
            st.object_ids.setdefault(oid, row0 + i)
        self._part_rows.append((row0, seq))
        if rejected is not None and rejected.num_rows:
            rc = rejected.select(["file", "size", "mtime_ns", "category"]).to_pydict()
            for f, size, mt, cat in zip(rc["file"], rc["size"], rc["mtime_ns"], rc["category"]):
                st.rejected_files[f] = (size, mt, cat)
        st.n_rows += k
        st.next_seq += 1
        self._new_parts.append(seq)
        return row0

    # ----- finalize
    def finalize(self, meta_update: dict[str, Any]) -> dict[str, Any]:
        """Fold the parts into index.parquet / rejected.parquet, trim the arrays, write store.json."""
        parts = list(self._new_parts)
        last = max(parts) if parts else max(_last_seq(self.path / INDEX_FILE), -1)
        rej_seq = _last_seq(self.path / REJECTED_FILE)
        rej_parts = [self._part(s, "rejected") for s in parts if self._part(s, "rejected").exists()]
        idx_parts = [self._part(s, "index") for s in parts]
        # files attempted by parts not yet in rejected.parquet: their older rejections are superseded
        # (a rejected file that changed and was read again)
        tried = [_read(p, columns=["file"]).column("file").combine_chunks().cast(pa.string())
                 for s, p in [(s, self._part(s, k)) for s in parts for k in ("index", "rejected")]
                 if s > rej_seq and p.exists()]
        attempted = pa.compute.unique(pa.concat_arrays(tried)) if tried else pa.array([], pa.string())

        if rej_seq < last:
            def old_rejected() -> Iterable[pa.Table]:
                for t in _iter_batches(self.path / REJECTED_FILE):
                    yield t.filter(pa.compute.invert(pa.compute.is_in(t.column("file"), value_set=attempted)))

            def all_rejected() -> Iterable[pa.Table]:
                yield from old_rejected()
                for p in rej_parts:
                    yield _read(p)

            n_rej = _stream_tables(self.path / REJECTED_FILE, all_rejected(), REJECTED_SCHEMA, last)
        else:
            n_rej = pq.ParquetFile(self.path / REJECTED_FILE).metadata.num_rows if (self.path / REJECTED_FILE).exists() else 0

        if _last_seq(self.path / INDEX_FILE) < last or not (self.path / INDEX_FILE).exists():
            schemas = [pq.read_schema(p) for p in idx_parts]
            if (self.path / INDEX_FILE).exists():
                schemas.insert(0, pq.read_schema(self.path / INDEX_FILE))
            schema = _unify(schemas) if schemas else pa.schema([*BASE_SCHEMA, *DERIVED_SCHEMA])

            def all_index() -> Iterable[pa.Table]:
                yield from _iter_batches(self.path / INDEX_FILE)
                for p in idx_parts:
                    yield _read(p)

            n_idx = _stream_tables(self.path / INDEX_FILE, all_index(), schema, last)
        else:
            n_idx = pq.ParquetFile(self.path / INDEX_FILE).metadata.num_rows
        if n_idx != self.state.n_rows:
            raise RuntimeError(f"index has {n_idx} rows, expected {self.state.n_rows}")
        for p in [*idx_parts, *rej_parts]:
            p.unlink(missing_ok=True)
        self._new_parts = []
        self._part_rows = []
        self._files_cache = None
        for name in (FLUX_FILE, IVAR_FILE):
            if name in self._fds:
                os.close(self._fds.pop(name))
            p = self.path / name
            if not p.exists():
                _create_npy(p, n_idx)
            elif _read_npy_header(p)[0][0] != n_idx:
                _set_npy_rows(p, n_idx)
        self.capacity = n_idx
        self.meta.update(meta_update)
        self.meta.update(
            {
                "format": STORE_FORMAT,
                "state": "complete",
                "updated": _now_iso(),
                "counts": {"stored": n_idx, "rejected": n_rej},
            }
        )
        self.write_meta()
        return self.meta

    def write_meta(self) -> None:
        self.meta.setdefault("format", STORE_FORMAT)
        self.meta.setdefault("created", _now_iso())
        self.meta.setdefault(
            "grid",
            {
                "kind": "log10(lambda/A), linear",
                "loglam_min": FNET_LOGLAM_MIN,
                "dloglam": FNET_DLOGLAM,
                "npix": FNET_NPIX,
                "dtype": "float32",
                "normalised": False,
                "resampler": "model.grid.resample_one",
            },
        )
        tmp = self.path / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
        os.replace(tmp, self.path / META_FILE)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def open_store(path: str | os.PathLike[str]) -> SpectrumStore:
    """Open a store read-only (the name the rest of the app imports)."""
    return SpectrumStore(path)
