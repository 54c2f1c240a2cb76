"""The vetted catalog: one row per spectrum with its final redshift and where it came from.

`export_catalog(rows, out_base, meta)` writes FITS (astropy Table with units
and a provenance header), CSV and Parquet with the same columns, plus a JSON
sidecar `<out_base>.json` with the provenance (also in the Parquet file's
metadata, key `fnet_inspector.export`). Pure pandas / numpy / astropy /
pyarrow: it does not know where the rows came from.

This module is the one callers import from; the parts live by responsibility:
`db.catalog_columns` (the column contract, units, descriptions, the checks and
the filters), `db.catalog_decisions` (people's decisions laid over the model's
rows, and the is_qso_final rule) and `db.catalog_files` (the FITS / CSV /
Parquet writers and the FITS header).

How clean the part nobody looked at is: where the rows come from a queue
policy's triage, meta["policy"] (`inspector.risk.policy.policy_summary`:
the policy, how many it auto-accepted, their expected leak rate and expected
number wrong, the leak curve) goes to the sidecar and the Parquet metadata
as given and, as POLICY / NACCEPT / EXPLEAK / EXPWRONG / ..., to the FITS
header (`db.catalog_files`); "policy" is null in the sidecar otherwise.

Options: `only_inspected` keeps rows with n_decisions >= 1; `min_quality=Q`
keeps rows whose quality is >= Q (rows without a quality are dropped);
`only_qso` keeps rows with is_qso_final = 1.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from db.catalog_columns import (
    AUTO_SOURCES,
    C_KMS,
    DERIVED_COLUMNS,
    DESCRIPTIONS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    UNITS,
    Z_SOURCES,
    catalog_table,
    counts,
    describe,
    select_rows,
)
from db.catalog_decisions import (
    MODEL_P_QSO_MIN,
    final_decisions,
    is_qso_final,
    overlay_decisions,
)
from db.catalog_files import FORMATS, META_KEY, WRITERS, write_atomic

__all__ = [
    "AUTO_SOURCES", "C_KMS", "DERIVED_COLUMNS", "DESCRIPTIONS", "FORMATS", "META_KEY", "MODEL_P_QSO_MIN",
    "OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "UNITS", "Z_SOURCES", "catalog_table", "counts", "describe", "export_catalog",
    "final_decisions", "is_qso_final", "overlay_decisions", "select_rows",
]  # fmt: skip


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def _base_path(out_base: str | os.PathLike[str]) -> Path:
    p = Path(out_base)
    if p.suffix.lower() in {".fits", ".csv", ".parquet", ".json", ".fit"}:
        p = p.with_suffix("")
    return p


def export_catalog(
    rows: pd.DataFrame,
    out_base: str | os.PathLike[str],
    meta: Mapping[str, Any] | None = None,
    formats: Sequence[str] | Iterable[str] = FORMATS,
    only_inspected: bool = False,
    min_quality: int | None = None,
    p_qso_min: float = MODEL_P_QSO_MIN,
    only_qso: bool = False,
) -> list[Path]:
    """Write the catalog as `<out_base>.fits/.csv/.parquet` and `<out_base>.json`; return the paths written.

    `rows` follows the contract in `db.catalog_columns`. `meta` is the
    provenance: "model_version" (else taken from the rows), "thresholds"
    ({rule: value or None}) used for the triage queue, "policy" (the queue
    policy's summary, or None for a rules-only triage), anything else
    JSON-able (store, predictions, database, code revision...) goes to the
    sidecar and the Parquet metadata as given. The date written is now (UTC),
    unless meta["created"] is given. Each file is written atomically. The
    sidecar is last in the returned list. `p_qso_min`: FNet's p_qso from which
    an undecided spectrum counts as a quasar in is_qso_final (see `is_qso_final`);
    `only_qso` keeps the rows with is_qso_final = 1.
    """
    formats = [f.lower() for f in formats]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be some of {FORMATS}, got {formats}")
    meta = dict(meta or {})
    table = catalog_table(rows, p_qso_min)
    before = counts(table)
    table = select_rows(table, only_inspected, min_quality, only_qso)
    base = _base_path(out_base)
    base.parent.mkdir(parents=True, exist_ok=True)
    versions = sorted(set(table["model_version"]) - {""}) if len(table) else []
    model_version = str(meta.get("model_version") or ",".join(versions) or "unknown")
    created = str(meta.get("created") or datetime.now(UTC).isoformat(timespec="seconds"))
    sidecar = base.with_name(base.name + ".json")
    prov: dict[str, Any] = _jsonable({
        **meta,
        "model_version": model_version,
        "created": created,
        "counts": counts(table),
        "counts_before_filters": before,
        "only_inspected": bool(only_inspected),
        "min_quality": None if min_quality is None else int(min_quality),
        "only_qso": bool(only_qso),
        "thresholds": dict(meta.get("thresholds") or {}),
        "p_qso_min": float(p_qso_min),
        "policy": meta.get("policy"),
        "columns": {c: {"unit": UNITS.get(c), "description": describe(c)} for c in table.columns},
        "sidecar": sidecar.name,
    })  # fmt: skip
    written: list[Path] = []
    for f in formats:
        path = base.with_name(f"{base.name}.{f}")
        write_atomic(path, lambda p, w=WRITERS[f]: w(table, p, prov))
        written.append(path)
    prov["files"] = [p.name for p in written]
    write_atomic(sidecar, lambda p: p.write_text(json.dumps(prov, indent=1)))
    written.append(sidecar)
    return written
