"""The writing side of a store: `StoreWriter` (lock, commit, finalize) and the `StoreState` it rebuilds from disk."""
from __future__ import annotations

import bisect
import fcntl
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from inspector.store.layout import (
    FLUX_FILE,
    INDEX_FILE,
    IVAR_FILE,
    META_FILE,
    PARTS_DIR,
    REJECTED_FILE,
    STORE_FORMAT,
)
from inspector.store.npy import create_npy, read_npy_header, set_npy_rows
from inspector.store.parts import (
    atomic_write_table,
    fold_parts,
    iter_batches,
    part_path,
    read_small,
    recover_parts,
)
from model.grid import FNET_DLOGLAM, FNET_LOGLAM_MIN, FNET_NPIX


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
        if not len(files):
            return np.zeros(0, dtype=bool)
        return pc.is_in(pa.array(files, pa.string()), value_set=self.stored_files).to_numpy(zero_copy_only=False)


class StoreWriter:
    """Appends chunks to a store with the commit protocol in `inspector.store`'s docstring.

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
        return part_path(self.path, seq, kind)

    def _load_state(self) -> None:
        """Rebuild what is stored from index.parquet, rejected.parquet and committed parts."""
        st = self.state
        self._new_parts, st.next_seq = recover_parts(self.path)

        def index_tables() -> Iterable[pa.Table]:
            yield from iter_batches(self.path / INDEX_FILE)
            for s in self._new_parts:
                t = read_small(self._part(s, "index"))
                self._part_rows.append((st.n_rows, s))
                yield t

        files: list[pa.Array] = []
        for t in index_tables():
            for i, oid in enumerate(t.column("object_id").to_pylist()):
                st.object_ids.setdefault(oid, st.n_rows + i)
            files.append(pc.unique(t.column("file")).cast(pa.string()))
            st.n_rows += t.num_rows
        if files:
            st.stored_files = pc.unique(pa.concat_arrays(files))

        def rejected_tables() -> Iterable[pa.Table]:
            yield from iter_batches(self.path / REJECTED_FILE)
            for s in self._new_parts:
                if self._part(s, "rejected").exists():
                    yield read_small(self._part(s, "rejected"))

        for t in rejected_tables():
            cols = t.select(["file", "size", "mtime_ns", "category"]).to_pydict()
            for f, size, mt, cat in zip(cols["file"], cols["size"], cols["mtime_ns"], cols["category"]):
                st.rejected_files[f] = (size if size is not None else -1, mt if mt is not None else -1, cat)

    def file_of_row(self, row: int) -> str:
        """The file a stored row came from (for messages such as "duplicate of ..."); reads from disk."""
        n_folded = self._part_rows[0][0] if self._part_rows else self.state.n_rows
        if row < n_folded:
            key, path = "index", self.path / INDEX_FILE
            offset = 0
        else:
            i = bisect.bisect_right([r for r, _ in self._part_rows], row) - 1
            offset, seq = self._part_rows[i]
            key, path = f"part{seq}", self._part(seq, "index")
        if self._files_cache is None or self._files_cache[0] != key:
            self._files_cache = (key, read_small(path, columns=["file"]).column("file").combine_chunks())
        return str(self._files_cache[1][row - offset])

    # ----- arrays
    def open_arrays(self, min_capacity: int) -> None:
        """Open (creating or growing) flux.npy / ivar.npy with room for `min_capacity` rows."""
        for name in (FLUX_FILE, IVAR_FILE):
            p = self.path / name
            if not p.exists():
                create_npy(p, max(min_capacity, self.state.n_rows))
            shape, hlen, _ = read_npy_header(p)
            if shape[1:] != (FNET_NPIX,):
                raise ValueError(f"{p}: shape {shape}, expected (N, {FNET_NPIX})")
            if shape[0] < self.state.n_rows:
                raise ValueError(f"{p} holds {shape[0]} rows but the index has {self.state.n_rows}: store damaged")
            if shape[0] < min_capacity:
                set_npy_rows(p, min_capacity)
            self._fds[name] = os.open(p, os.O_RDWR)
            self._hlen = hlen
        self.capacity = max(min_capacity, read_npy_header(self.path / FLUX_FILE)[0][0])

    def _ensure_capacity(self, n: int) -> None:
        if n <= self.capacity:
            return
        new = max(n, self.capacity + self.capacity // 4 + 64)  # grow by chunks, amortised
        for name in (FLUX_FILE, IVAR_FILE):
            set_npy_rows(self.path / name, new)
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
            atomic_write_table(rejected, self._part(seq, "rejected"))
        atomic_write_table(index, self._part(seq, "index"))  # the commit point
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
        n_idx, n_rej = fold_parts(self.path, list(self._new_parts), self.state.n_rows)
        self._new_parts = []
        self._part_rows = []
        self._files_cache = None
        for name in (FLUX_FILE, IVAR_FILE):
            if name in self._fds:
                os.close(self._fds.pop(name))
            p = self.path / name
            if not p.exists():
                create_npy(p, n_idx)
            elif read_npy_header(p)[0][0] != n_idx:
                set_npy_rows(p, n_idx)
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
