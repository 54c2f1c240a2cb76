"""The read-only `SpectrumStore`: the arrays as memmaps, the index and rejections as DataFrames."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from inspector.store.layout import (
    BASE_SCHEMA,
    DERIVED_SCHEMA,
    FLUX_FILE,
    INDEX_FILE,
    IVAR_FILE,
    META_FILE,
    REJECTED_FILE,
    REJECTED_SCHEMA,
)
from model.grid import FNET_NPIX

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
        """Store row of a `Spectrum.object_id` (PLATE-MJD-FIBER, or TARGETID-SURVEY-PROGRAM-... for a DESI
        coadd); KeyError if absent."""
        if self._rows_by_id is None:
            self._rows_by_id = pd.Index(self.index["object_id"].astype(str))
        loc = self._rows_by_id.get_loc(str(object_id))
        if not isinstance(loc, (int, np.integer)):  # never: ingest rejects duplicates
            raise KeyError(f"{object_id} is stored more than once")
        return int(loc)

    def __repr__(self) -> str:
        return f"SpectrumStore({str(self.path)!r}, n={len(self)}, rejected={self.meta.get('counts', {}).get('rejected')})"


def open_arrays(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """(flux, ivar) as read-only memmaps, without the index.

    What a Dask task opens, by path, on whichever machine it runs (the store on a shared
    filesystem): it is given its row range, so the index (hundreds of MB at survey size) is not
    worth reading once per task. A row read costs the same as through `SpectrumStore`.
    """
    p = Path(path)
    return np.load(p / FLUX_FILE, mmap_mode="r"), np.load(p / IVAR_FILE, mmap_mode="r")


def open_store(path: str | os.PathLike[str]) -> SpectrumStore:
    """Open a store read-only (the name the rest of the app imports)."""
    return SpectrumStore(path)
