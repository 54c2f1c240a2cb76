"""The catalog's files: FITS, CSV and Parquet written from the normalised table (`db.catalog_columns`)
and the provenance dict `db.export.export_catalog` builds, each written atomically.

The Parquet file carries the provenance as JSON in its schema metadata (key
`META_KEY`); the CSV carries none (the JSON sidecar does).

FITS specifics: units in TUNITn (z columns dimensionless, written as '';
ra/dec deg; dv km/s); quality is float32 with NaN = not inspected; string
columns hold UTF-8 bytes (FITS strings are ASCII; astropy decodes them back
to the same text). Header keywords: MODELVER, DATE (UTC ISO, when written),
NROWS (rows written), NTOTAL (rows before the filters), NINSPECT,
NPERSON / NCONSENS / NCONFLIC / NMODEL (per source), NQSO / NNOTQSO / NQSOUNK
(is_qso_final 1 / -1 / 0), PQSOMIN, ONLYINSP, ONLYQSO, MINQUAL, and one
`HIERARCH THRESH <RULE>` per triage threshold (the string 'off' for a
disabled rule), PROVJSON (the sidecar's file name).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from db.catalog_columns import INT_OPTIONAL, STR_COLUMNS, UNITS, Z_SOURCES, describe

META_KEY = b"fnet_inspector.export"


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)`, then rename it onto `path`: a reader never sees half a catalog, and a failed write
    leaves the previous file as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _fits_key(rule: str) -> str:
    return "HIERARCH THRESH " + "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in rule.upper())


def _utf8_bytes(s: pd.Series) -> np.ndarray:
    """A string column as fixed-width UTF-8 bytes (FITS 'A' columns are bytes)."""
    u = s.astype(str).to_numpy(dtype=str)
    if u.size == 0:
        return np.zeros(0, dtype="S1")
    b = np.strings.encode(u, "utf-8")
    return b if b.dtype.itemsize > 0 else b.astype("S1")


def write_fits(table: pd.DataFrame, path: Path, prov: dict[str, Any]) -> None:
    """One CATALOG table HDU whose header carries the provenance (module docstring), so the FITS file
    alone says what it holds, from which model, and how it was filtered."""
    import astropy.units as u
    from astropy.table import Table

    t = Table()
    for c in table.columns:
        s = table[c]
        if c == "quality":
            t[c] = s.to_numpy(np.float32)
        elif c in STR_COLUMNS:
            t[c] = _utf8_bytes(s)
        elif c in INT_OPTIONAL:
            t[c] = s.to_numpy(np.int64)
        elif c == "n_decisions":
            t[c] = s.to_numpy(np.int32)
        elif c == "is_qso_final":
            t[c] = s.to_numpy(np.int16)
        else:
            t[c] = s.to_numpy(np.float64)
        if c in UNITS:
            t[c].unit = u.Unit(UNITS[c]) if UNITS[c] else u.dimensionless_unscaled
    n = prov["counts"]
    hdr = {
        "EXTNAME": "CATALOG",
        "MODELVER": prov["model_version"],
        "DATE": prov["created"],
        "NROWS": n["n_rows"],
        "NTOTAL": prov["counts_before_filters"]["n_rows"],
        "NINSPECT": n["n_inspected"],
        "NPERSON": n["n_person"],
        "NCONSENS": n["n_consensus"],
        "NCONFLIC": n["n_conflict"],
        "NMODEL": n["n_model"],
        "NQSO": n["n_qso"],
        "NNOTQSO": n["n_not_qso"],
        "NQSOUNK": n["n_qso_unknown"],
        "PQSOMIN": float(prov["p_qso_min"]),
        "ONLYINSP": bool(prov["only_inspected"]),
        "ONLYQSO": bool(prov["only_qso"]),
        "MINQUAL": -1 if prov["min_quality"] is None else int(prov["min_quality"]),
        "ZSOURCES": ",".join(Z_SOURCES),
        "PROVJSON": prov["sidecar"],
    }
    for rule, v in (prov.get("thresholds") or {}).items():
        hdr[_fits_key(str(rule))] = "off" if v is None else (float(v) if isinstance(v, (int, float)) else str(v))
    t.meta.update(hdr)
    t.meta["comments"] = [
        "FNet Inspector vetted catalog. z_source: person | consensus | conflict (unresolved:",
        "z_final is the model's) | model (auto-accepted). quality NaN: not inspected.",
        "is_qso_final: 1 quasar, -1 not, 0 not known (a person's verdict, else p_qso vs PQSOMIN).",
        "MINQUAL -1: no minimum quality.",
    ]
    from astropy.io import fits

    hdu = fits.table_to_hdu(t)
    for i, c in enumerate(table.columns, start=1):
        if describe(c):  # TCOMMn: the HEASARC convention for a column's description
            hdu.header[f"TCOMM{i}"] = describe(c)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)


def write_csv(table: pd.DataFrame, path: Path, prov: dict[str, Any]) -> None:
    """CSV through Arrow (~10x pandas' writer): floats at full precision, NaN / NA as an empty cell.
    `prov` is not written (a CSV has no header for it; the sidecar has it)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.Table.from_pandas(table, preserve_index=False), path)


def write_parquet(table: pd.DataFrame, path: Path, prov: dict[str, Any]) -> None:
    """The provenance as JSON in the schema metadata (`META_KEY`), so the file alone says where it came from."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    at = pa.Table.from_pandas(table, preserve_index=False)
    at = at.replace_schema_metadata({**(at.schema.metadata or {}), META_KEY: json.dumps(prov).encode()})
    pq.write_table(at, path)


# format -> writer(table, path, provenance); the order is the default order of the files written
WRITERS: dict[str, Callable[[pd.DataFrame, Path, dict[str, Any]], None]] = {
    "fits": write_fits,
    "csv": write_csv,
    "parquet": write_parquet,
}
FORMATS = tuple(WRITERS)
