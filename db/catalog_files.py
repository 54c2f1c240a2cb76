"""The catalog's files: FITS, CSV and Parquet written from the normalised table (`db.catalog_columns`)
and the provenance dict `db.export.export_catalog` builds, each written atomically.

The Parquet file carries the provenance as JSON in its schema metadata (key
`META_KEY`); the CSV carries none (the JSON sidecar does).

FITS specifics: units in TUNITn (z columns dimensionless, written as '';
ra/dec deg; dv km/s); quality is float32 with NaN = not inspected; string
columns hold UTF-8 bytes (FITS strings are ASCII; astropy decodes them back
to the same text). Header keywords: MODELVER, DATE (UTC ISO, when written),
NROWS (rows written), NTOTAL (rows before the filters), NINSPECT,
NPERSON / NCONSENS / NCONFLIC / NMODEL (per source; NMODEL: nobody decided),
NQSO / NNOTQSO / NQSOUNK (is_qso_final 1 / -1 / 0), PQSOMIN, ONLYINSP,
ONLYQSO, MINQUAL, and one `HIERARCH THRESH <RULE>` per triage threshold (the
string 'off' for a disabled rule), PROVJSON (the sidecar's file name).

Where the risk model chose the automatic z: NZFNET / NZTPL / NZPIPE (rows
nobody decided whose z is FNet's, the template fit's, the pipeline's) and
NAUTO (rows the policy auto-accepted that nobody decided since, in this
file). From a queue policy's triage (the provenance's "policy", see
`inspector.risk.policy.policy_summary`), with comments: POLICY (e.g. 'max
leak 0.005'), MAXLEAK or BUDGET, NSPECTRA (spectra the policy saw), NACCEPT
(auto-accepted), NQUEUED (sent to people), NNOSIG (no-signal bucket),
EXPLEAK (expected fraction wrong among the auto-accepted), EXPWRONG
(expected number wrong among them), EXPWALL (expected number wrong had
nobody looked). A rules-only triage writes none of these.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from db.catalog_columns import (
    FLAG_OPTIONAL,
    INT_OPTIONAL,
    STR_COLUMNS,
    UNITS,
    Z_SOURCES,
    describe,
)

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


# FITS keyword -> (the policy summary's key, comment: at most 47 characters, so a float's card keeps all of it)
POLICY_KEYS = {
    "POLICY": ("policy", "queue policy of the triage"),
    "MAXLEAK": ("max_leak", "policy: target leak rate among auto-accepted"),
    "BUDGET": ("budget", "policy: spectra people inspect"),
    "NSPECTRA": ("n_spectra", "spectra the policy judged"),
    "NACCEPT": ("n_accepted", "auto-accepted by the policy (no look)"),
    "NQUEUED": ("n_queued", "sent to people by the policy"),
    "NNOSIG": ("n_no_signal", "no usable signal: own bucket, not accepted"),
    "EXPLEAK": ("expected_leak", "expected leak: fraction wrong, auto-accepted"),
    "EXPWRONG": ("expected_wrong_accepted", "expected number wrong among auto-accepted"),
    "EXPWALL": ("expected_wrong_all", "expected number wrong had nobody looked"),
}


def policy_cards(policy: dict[str, Any] | None) -> list[tuple[str, Any, str]]:
    """(keyword, value, comment) for the FITS header from a queue policy's summary; [] without one."""
    if not policy:
        return []
    cards = []
    for key, (name, comment) in POLICY_KEYS.items():
        v = policy.get(name)
        if v is None:
            continue
        v = v if isinstance(v, str) else (int(v) if isinstance(v, (int, np.integer)) else float(v))
        cards.append((key, v, comment))
    return cards


ESTIMATE_NAMES = {"fnet": "FNet", "tpl": "the template fit", "pipe": "the pipeline"}


def count_cards(n: dict[str, int]) -> list[tuple[str, int, str]]:
    """NZFNET / NZTPL / NZPIPE and NAUTO, where the counts have them (the risk model chose the z)."""
    cards = [(f"NZ{e.upper()}", n[f"n_z_{e}"], f"nobody decided, z from {name}")
             for e, name in ESTIMATE_NAMES.items() if f"n_z_{e}" in n]  # fmt: skip
    if "n_auto_accepted" in n:
        cards.append(("NAUTO", n["n_auto_accepted"], "rows auto-accepted, nobody decided since"))
    return cards


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
        elif c == "is_qso_final" or c in FLAG_OPTIONAL:
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
    t.meta["comments"] = [  # FITS COMMENT cards hold 72 characters
        "FNet Inspector vetted catalog. z_source: person | consensus | conflict",
        "(unresolved: z_final is the automatic one) | nobody decided: model",
        "(FNet's z) or fnet | tpl | pipe (the least risky of FNet, the template",
        "fit, the pipeline). quality NaN: not inspected. is_qso_final: 1 quasar,",
        "-1 not, 0 not known (a person's verdict, else p_qso vs PQSOMIN).",
        "MINQUAL -1: no minimum quality.",
    ]
    if prov.get("policy"):
        t.meta["comments"] += [
            "Auto-accepted rows (auto_accepted 1, nobody decided) are the queue",
            "policy's: EXPLEAK of them are expected wrong (EXPWRONG in all).",
        ]
    from astropy.io import fits

    hdu = fits.table_to_hdu(t)
    for key, v, comment in [*count_cards(n), *policy_cards(prov.get("policy"))]:
        hdu.header[key] = (v, comment)
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
