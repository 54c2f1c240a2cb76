"""What an index row is: the worker's row, the catalog row it joins, and the training labels derived from both."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from inspector.estimates import NO_Z
from inspector.store import BASE_SCHEMA, DERIVED_SCHEMA

_QSO_CLASS_PERSON = (3, 30)


class CatalogJoin:
    """Joins store rows to catalog rows on PLATE/MJD/FIBERID (or TARGETID), vectorised.

    Keys are packed into one int64 so a 750k-row catalog costs a pandas Index,
    not a dict of tuples.
    """

    def __init__(self, catalog: pd.DataFrame) -> None:
        cat = catalog.reset_index(drop=True)
        reserved = {f.name for f in BASE_SCHEMA} | {f.name for f in DERIVED_SCHEMA}
        cat = cat.rename(columns={c: f"cat_{c}" for c in cat.columns if c in reserved})
        self.table = pa.Table.from_pandas(cat, preserve_index=False)
        self.columns = list(cat.columns)
        self._by_pmf = None
        if {"PLATE", "MJD", "FIBERID"} <= set(cat.columns):
            keys = self._pack(cat["PLATE"], cat["MJD"], cat["FIBERID"])
            self._by_pmf = pd.Index(keys)[~pd.Index(keys).duplicated()]
            self._pmf_pos = pd.Series(np.arange(len(keys)))[~pd.Index(keys).duplicated()].to_numpy()
        self._by_tid = None
        if "TARGETID" in cat.columns:
            tid = pd.to_numeric(cat["TARGETID"], errors="coerce").fillna(-1).astype(np.int64).to_numpy()
            dup = pd.Index(tid).duplicated() | (tid < 0)
            self._by_tid = pd.Index(tid[~dup])
            self._tid_pos = np.arange(len(tid))[~dup]

    @staticmethod
    def _pack(plate: Any, mjd: Any, fiber: Any) -> np.ndarray:
        p = pd.to_numeric(pd.Series(plate), errors="coerce").fillna(-1).astype(np.int64).to_numpy()
        m = pd.to_numeric(pd.Series(mjd), errors="coerce").fillna(-1).astype(np.int64).to_numpy()
        f = pd.to_numeric(pd.Series(fiber), errors="coerce").fillna(-1).astype(np.int64).to_numpy()
        key = (p * 100_000 + m) * 10_000 + f
        return np.where((p < 0) | (m < 0) | (f < 0), -1, key)

    def positions(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Catalog row of each store row, -1 where there is none."""
        pos = np.full(len(rows), -1, dtype=np.int64)
        if not rows:
            return pos
        if self._by_pmf is not None:
            keys = self._pack([r["plate"] for r in rows], [r["mjd"] for r in rows], [r["fiberid"] for r in rows])
            hit = self._by_pmf.get_indexer(keys)
            ok = (hit >= 0) & (keys >= 0)
            pos[ok] = self._pmf_pos[hit[ok]]
        if self._by_tid is not None:
            tid = np.array([r["targetid"] if r["targetid"] is not None else -1 for r in rows], dtype=np.int64)
            hit = self._by_tid.get_indexer(tid)
            ok = (pos < 0) & (hit >= 0) & (tid >= 0)
            pos[ok] = self._tid_pos[hit[ok]]
        return pos

    def take(self, pos: np.ndarray) -> pa.Table:
        idx = pa.array(pos, mask=pos < 0, type=pa.int64())
        return self.table.take(idx)


def _col(table: pa.Table | None, name: str, n: int) -> np.ndarray | None:
    if table is None or name not in table.column_names:
        return None
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64) if n else np.zeros(0)


def derive_labels(rows: list[dict[str, Any]], cat: pa.Table | None, matched: np.ndarray) -> pa.Table:
    """The training columns `z` and `is_qso` (and where each came from).

    z: Z_VI where inspected (above NO_Z, DR16Q's -1), else the catalog's Z, else the file's own z.
    is_qso: CLASS_PERSON in {3 QSO, 30 BAL QSO} where a person classified it
    (CLASS_PERSON > 0), else the file's CLASS == "QSO". Where neither is
    known (e.g. a DESI coadd without a REDSHIFTS HDU) is_qso is False and
    class_source null, so training can leave those rows out.
    """
    n = len(rows)
    z = np.array([np.nan if r["z_file"] is None else r["z_file"] for r in rows], dtype=np.float64)
    z_src = np.array([None if np.isnan(v) else "z_file" for v in z], dtype=object)
    for name in ("Z", "Z_VI"):  # later wins
        v = _col(cat, name, n)
        if v is not None:
            ok = matched & np.isfinite(v) & (v > NO_Z)  # DR16Q: Z_VI = -1 where nobody inspected
            z = np.where(ok, v, z)
            z_src[ok] = name
    spec_class = [r["spec_class"] for r in rows]
    is_qso = np.array([c is not None and c.upper() == "QSO" for c in spec_class], dtype=bool)
    c_src = np.array([None if c is None or c == "" else "spec_class" for c in spec_class], dtype=object)
    cp = _col(cat, "CLASS_PERSON", n)
    if cp is not None:
        known = matched & np.isfinite(cp) & (cp > 0)
        is_qso = np.where(known, np.isin(cp, _QSO_CLASS_PERSON), is_qso)
        c_src[known] = "CLASS_PERSON"
    z_out = pa.array(z, mask=np.isnan(z), type=pa.float64())
    return pa.Table.from_arrays(
        [pa.array(matched, pa.bool_()), z_out, pa.array(list(z_src), pa.string()),
         pa.array(is_qso, pa.bool_()), pa.array(list(c_src), pa.string())],
        schema=DERIVED_SCHEMA,
    )


def build_index(rows: list[dict[str, Any]], join: CatalogJoin | None) -> pa.Table:
    """Index rows (without `row`, which the store assigns) with catalog and derived columns."""
    base_schema = pa.schema([f for f in BASE_SCHEMA if f.name != "row"])
    base = pa.Table.from_pylist(rows, schema=base_schema) if rows else base_schema.empty_table()
    cat = None
    matched = np.zeros(len(rows), dtype=bool)
    if join is not None:
        pos = join.positions(rows)
        matched = pos >= 0
        cat = join.take(pos)
    derived = derive_labels(rows, cat, matched)
    cols, names = list(base.columns), list(base.column_names)
    if cat is not None:
        cols += list(cat.columns)
        names += list(cat.column_names)
    cols += list(derived.columns)
    names += list(derived.column_names)
    return pa.Table.from_arrays(cols, names=names)
