"""The spectrum store: every ingested spectrum on the FNet grid, in one directory.

Why a directory of plain files rather than a database or HDF5: the model team
trains straight from `flux.npy` + `index.parquet`, a notebook can `np.load` the
arrays with `mmap_mode="r"` and never read more than the rows it touches, and
nothing here needs a server or a library beyond numpy and pyarrow.

Layout of a store directory::

    flux.npy          float32 N x 4618, FNet grid, NOT normalised (model.grid.resample_one)
    ivar.npy          float32 N x 4618, inverse variance on the same grid (0 = no data)
    index.parquet     one row per stored spectrum, in store-row order (see layout.BASE_SCHEMA)
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

Modules: `layout` (file names, index/rejected schemas), `npy` (the arrays on
disk), `parts` (parquet parts and folding), `writer` (`StoreWriter`),
`reader` (the read-only `SpectrumStore`).
"""
from __future__ import annotations

from inspector.store.layout import (
    BASE_SCHEMA,
    DERIVED_SCHEMA,
    FLUX_FILE,
    INDEX_FILE,
    IVAR_FILE,
    META_FILE,
    PARTS_DIR,
    REJECTED_FILE,
    REJECTED_SCHEMA,
    STORE_FORMAT,
)
from inspector.store.reader import SpectrumStore, open_arrays, open_store
from inspector.store.writer import StoreState, StoreWriter

__all__ = [
    "BASE_SCHEMA", "DERIVED_SCHEMA", "FLUX_FILE", "INDEX_FILE", "IVAR_FILE", "META_FILE", "PARTS_DIR",
    "REJECTED_FILE", "REJECTED_SCHEMA", "STORE_FORMAT", "SpectrumStore", "StoreState", "StoreWriter", "open_arrays",
    "open_store",
]
