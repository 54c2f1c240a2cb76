"""Template-fit redshifts (Z_TPL) for every spectrum of a store, computed once and kept beside it.

The fit does not depend on the FNet model, so it is not redone for every
prediction run (a retrain's promote re-predicts the whole store): it is kept
in `STORE/predictions/template_fit.parquet` (row, object_id and
`model.template_fit.TPL_COLUMNS`) with a JSON sidecar of the settings it was
made with. A later call fits only the rows ingested since; a change of
templates or settings, or a store whose object ids no longer match, refits
everything. Writes are atomic (temp file + rename), so a killed run leaves
the previous file.

On a Dask cluster (`scheduler=`) the chunks of rows are fitted by the cluster's workers with the
same chunk function (`fit_rows`, which opens the store by path) and come back in order: the cache
written is the one a local run writes.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from inspector.cluster import Scheduler, client_for, map_ordered, row_chunks
from inspector.store import open_arrays, open_store
from inspector.store.files import atomic_path, sidecar_path, template_cache_path, write_json
from model.grid import FNET_LOGLAM
from model.template_fit import (
    TPL_COLUMNS,
    Z_MAX,
    fit_batch,
    fits_to_columns,
    settings_key,
)

CHUNK = 1024


def default_processes() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _read_cache(path: Path, key: dict[str, Any], oid: np.ndarray) -> pd.DataFrame | None:
    """The stored fits if they were made with `key` on the same first rows of this store, else None."""
    side = sidecar_path(path)
    if not (path.exists() and side.exists()):
        return None
    try:
        meta = json.loads(side.read_text())
        df = pd.read_parquet(path)
    except (OSError, ValueError):
        return None
    if meta.get("settings") != key or len(df) > oid.size:
        return None
    if not np.array_equal(df["row"].to_numpy(np.int64), np.arange(len(df))):
        return None
    if not np.array_equal(df["object_id"].astype(str).to_numpy(), oid[: len(df)]):
        return None
    return df


def _write(path: Path, df: pd.DataFrame, meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
    write_json(sidecar_path(path), meta)


def fit_rows(store_path: str, a: int, b: int, z_max: float, processes: int = 1) -> dict[str, np.ndarray]:
    """`TPL_COLUMNS` of store rows a..b-1: the one chunk function of the local loop and of a Dask task
    (top level and opening the store by path, so a worker on another machine can run it)."""
    flux, ivar = open_arrays(store_path)
    fl, iv = np.asarray(flux[a:b], np.float64), np.asarray(ivar[a:b], np.float64)
    return fits_to_columns(fit_batch(FNET_LOGLAM, fl, iv, z_max=z_max, processes=processes))


def template_fits(store_path: str | os.PathLike[str], processes: int | None = None, z_max: float | None = None,
                  progress: bool = False, scheduler: Scheduler | None = None,
                  chunk_rows: int = CHUNK) -> pd.DataFrame:
    """One row per stored spectrum (row, object_id, z_tpl, z_tpl_err, tpl_dchi2, ...), from the cache where
    it is valid; missing rows are fitted (on the FNet grid rows of the store) and the cache rewritten.

    `scheduler` (a Dask address, Client or cluster): fit `chunk_rows` rows per task on its workers
    (one process per task: the cluster's threads are the parallelism) instead of `processes` here."""
    z_max = Z_MAX if z_max is None else z_max
    st = open_store(store_path)
    oid = st.index["object_id"].astype(str).to_numpy()
    key = settings_key(z_max=z_max)
    path = template_cache_path(st.path)
    done = _read_cache(path, key, oid)
    start = 0 if done is None else len(done)
    if start == oid.size and done is not None:
        return done
    procs = processes or default_processes()
    parts = [] if done is None else [done]
    t0 = time.perf_counter()
    bar = tqdm(total=oid.size - start, disable=not progress, unit="spectrum", desc="template fit", dynamic_ncols=True)
    ranges = row_chunks(start, oid.size, chunk_rows if scheduler is not None else CHUNK)
    where = str(st.path.absolute())
    try:
        with client_for(scheduler) as client:
            if client is None:
                fitted = (fit_rows(where, a, b, z_max, procs) for a, b in ranges)
            else:
                fitted = map_ordered(client, fit_rows, [(where, a, b, z_max, 1) for a, b in ranges], "template-fit")
            for (a, b), cols in zip(ranges, fitted):
                parts.append(pd.DataFrame({"row": np.arange(a, b, dtype=np.int64), "object_id": oid[a:b],
                                           **{c: cols[c] for c in TPL_COLUMNS}}))  # fmt: skip
                bar.update(b - a)
    finally:
        bar.close()
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["row", "object_id", *TPL_COLUMNS])
    meta = {"settings": key, "n_spectra": len(df), "store": str(st.path.resolve()),
            "fitted_now": int(oid.size - start), "seconds": round(time.perf_counter() - t0, 2),
            "grid": "FNet grid rows of the store (log10 lambda 3.5522 + 1e-4 k)",
            "method": "model.template_fit: redrock QSO eigenspectra + 3 Legendre terms, chi2 scan in 1e-4 log10(1+z)"}
    _write(path, df, meta)
    return df


__all__ = ["template_fits"]
