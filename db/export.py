"""The vetted catalog: one row per spectrum with its final redshift and where it came from.

`export_catalog(rows, out_base, meta)` writes FITS (astropy Table with units
and a provenance header), CSV and Parquet with the same columns, plus a JSON
sidecar `<out_base>.json` with the provenance (also in the Parquet file's
metadata, key `fnet_inspector.export`). Pure pandas / numpy / astropy /
pyarrow: it does not know where the rows came from.

Input contract (`rows`, a pandas DataFrame, one row per spectrum):

==============  =======  ===================================================
column          type     meaning
==============  =======  ===================================================
object_id       str      the store's object id (PLATE-MJD-FIBER, or DESI's)
ra, dec         float    degrees
z_final         float    the catalog redshift (NaN: a person said no z, e.g.
                         bad spectrum)
z_source        str      "person" (one inspector's latest decision),
                         "consensus" (inspectors agree, or a resolution
                         settled their conflict), "conflict" (inspectors
                         disagree and nobody resolved it yet: z_final is
                         the model's, not vetted), or "model" (the model's
                         z, auto-accepted: nobody decided)
quality         float    0-4 as in DESI VI (the mean where inspectors
                         agree, so 3.5 happens); NaN where nobody decided
inspectors      str or   who decided, comma-separated ("" for none); a list
                list     is joined with ","
n_decisions     int      decisions recorded for the spectrum (0: none)
z_fnet          float    the model's z (NaN: no prediction)
z_fnet_err      float    its uncertainty (NaN: none)
z_pipe, z_qn,   float    the survey catalog's redshifts, copied as given
z_pca                    (DR16Q writes -1 for "none"; NaN: no catalog)
model_version   str      the model that gave z_fnet (e.g. its sha1)
==============  =======  ===================================================

Optional columns, written when present: plate, mjd, fiberid, targetid
(integers, -1 for none), z_vi, sn_median_all, z_tpl, z_tpl_err, tpl_dchi2
(the template fit), fnet_class, p_qso and p_cls_<class> (FNet's class head;
"" / NaN for a model without one), spectral_type, issue_flags,
decision, comment, decided_at, triage_rules, priority. Any other column is
an error (so a typo never silently drops or leaks a column).

Rules checked at the boundary (ValueError naming the column): required
columns present, object_id unique and non-empty, z_source in
`Z_SOURCES`, quality in 0-4 or NA, n_decisions >= 0 and >= 1 where the source
is a person, the consensus or a conflict.

Columns the export adds: dv_fnet_kms = c (z_fnet - z_final) / (1 + z_final)
(how far the model was from the final z; 0 where the source is the model)
and dv_pipe_kms = c (z_pipe - z_final) / (1 + z_final) (NaN where Z_PIPE is
missing or -1), in km/s; and is_qso_final, what a survey scientist keeps to
make a quasar catalog of a quasar-target superset (`is_qso_final`): 1 a
quasar, -1 not a quasar, 0 not known. A person's verdict decides where there
is one (a "not a quasar" decision overrides FNet's class); elsewhere FNet's
p_qso does, against `p_qso_min` (`inspector export` passes the triage's
fnet_qso_unsure threshold, so a spectrum the queue holds for a person stays 0
until someone decides it).

Options: `only_inspected` keeps rows with n_decisions >= 1; `min_quality=Q`
keeps rows whose quality is >= Q (rows without a quality are dropped);
`only_qso` keeps rows with is_qso_final = 1.

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
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from db.validate import ACTION_BY_NAME, CLASS_PROB_PREFIX, QSO_TYPES, SPECTRAL_TYPES

C_KMS = 299792.458  # as model.metrics (db/ never imports model/)
Z_SOURCES = ("person", "consensus", "conflict", "model")
INSPECTED_SOURCES = ("person", "consensus", "conflict")
FORMATS = ("fits", "csv", "parquet")
META_KEY = b"fnet_inspector.export"

REQUIRED_COLUMNS = (
    "object_id", "ra", "dec", "z_final", "z_source", "quality", "inspectors", "n_decisions",
    "z_fnet", "z_fnet_err", "z_pipe", "z_qn", "z_pca", "model_version",
)  # fmt: skip
INT_OPTIONAL = ("plate", "mjd", "fiberid", "targetid")
FLOAT_OPTIONAL = ("z_vi", "sn_median_all", "priority", "z_tpl", "z_tpl_err", "tpl_dchi2", "p_qso")
STR_OPTIONAL = ("fnet_class", "spectral_type", "issue_flags", "decision", "comment", "decided_at", "triage_rules")
OPTIONAL_COLUMNS = (*INT_OPTIONAL, *FLOAT_OPTIONAL, *STR_OPTIONAL)  # and any p_cls_<class> (float)
DERIVED_COLUMNS = ("dv_fnet_kms", "dv_pipe_kms", "is_qso_final")
STR_COLUMNS = ("object_id", "z_source", "inspectors", "model_version", *STR_OPTIONAL)
Z_COLUMNS = ("z_final", "z_fnet", "z_fnet_err", "z_pipe", "z_qn", "z_pca", "z_vi", "z_tpl", "z_tpl_err")
UNITS = {
    **{c: "" for c in Z_COLUMNS},  # dimensionless
    "p_qso": "",
    "ra": "deg", "dec": "deg", "dv_fnet_kms": "km / s", "dv_pipe_kms": "km / s",
}  # fmt: skip
# is_qso_final: a person's verdict first, else FNet's p_qso against p_qso_min
MODEL_P_QSO_MIN = 0.5  # default: FNet's own call (its quasar classes together more probable than not)
NOT_QSO_ACTION = ACTION_BY_NAME["not_qso"].name
NOT_QSO_TYPES = frozenset(t.name for t in SPECTRAL_TYPES if not t.is_qso and t.class_person)  # STAR, GALAXY
DESCRIPTIONS = {
    "object_id": "store object id (PLATE-MJD-FIBER or DESI TARGETID-...)",
    "ra": "right ascension (J2000)", "dec": "declination (J2000)",
    "z_final": "vetted redshift", "z_source": "person | consensus | conflict (model z) | model (auto-accepted)",
    "quality": "visual-inspection quality 0-4 (DESI VI; mean of agreeing inspectors); NaN: not inspected",
    "inspectors": "comma-separated inspectors", "n_decisions": "decisions recorded",
    "z_fnet": "model redshift", "z_fnet_err": "model redshift uncertainty",
    "z_pipe": "survey pipeline z (catalog Z_PIPE)", "z_qn": "QuasarNET z (catalog Z_QN; -1: none)",
    "z_pca": "PCA z (catalog Z_PCA; -1: none)", "model_version": "model that gave z_fnet",
    "dv_fnet_kms": "c (z_fnet - z_final) / (1 + z_final)", "dv_pipe_kms": "c (z_pipe - z_final) / (1 + z_final)",
    "z_tpl": "template-fit z (redrock QSO eigenspectra chi2 scan)", "z_tpl_err": "its error (chi2 curvature)",
    "tpl_dchi2": "template fit: chi2 of the next minimum minus the best",
    "fnet_class": "FNet's most probable class; empty: the model has no class head",
    "p_qso": "FNet's probability that it is a quasar (any quasar class); NaN: no class head",
    "is_qso_final": "1 quasar, -1 not a quasar, 0 not known: a person's verdict, else FNet's p_qso vs PQSOMIN",
    "spectral_type": "the inspectors' spectral type (QSO, BAL QSO, STAR, GALAXY, UNKNOWN)",
}  # fmt: skip


# --------------------------------------------------------------------------- the table
def _str_col(s: pd.Series) -> pd.Series:
    """Strings, "" for missing; a list (e.g. of inspectors) is joined with ","."""
    kind = pd.api.types.infer_dtype(s, skipna=True)
    if kind in ("string", "empty"):  # the common case, vectorised
        return s.astype(object).where(s.notna(), "").astype(str)

    def one(v: Any) -> str:
        if isinstance(v, (list, tuple, set, np.ndarray)):
            return ",".join(str(x) for x in v)
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return ""
        return str(v)

    return pd.Series([one(v) for v in s], index=s.index, dtype=object).astype(str)


def _float(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="raise").to_numpy(np.float64, na_value=np.nan)


def _class_prob_columns(rows: pd.DataFrame) -> list[str]:
    return [c for c in rows.columns if str(c).startswith(CLASS_PROB_PREFIX) and len(str(c)) > len(CLASS_PROB_PREFIX)]


def is_qso_final(
    z_source: np.ndarray, spectral_type: np.ndarray, decision: np.ndarray, p_qso: np.ndarray,
    p_qso_min: float = MODEL_P_QSO_MIN,
) -> np.ndarray:
    """1 (a quasar), -1 (not a quasar) or 0 (not known) per row, as int16.

    Where a person or a consensus decided: a quasar spectral type -> 1; a
    "not a quasar" decision or a STAR / GALAXY type -> -1; anything else (a bad
    spectrum, no type) -> 0. An unresolved conflict -> 0. Where nobody decided
    (source "model"): p_qso >= p_qso_min -> 1, p_qso <= 1 - p_qso_min -> -1,
    else (FNet not sure, or no class head: p_qso NaN) -> 0.
    """
    if not 0.5 <= float(p_qso_min) <= 1.0:
        raise ValueError(f"p_qso_min must be in [0.5, 1], got {p_qso_min}")
    src = np.asarray(z_source, dtype=str)
    stype = np.asarray(spectral_type, dtype=str)
    said_not = np.isin(stype, list(NOT_QSO_TYPES)) | np.array(
        [NOT_QSO_ACTION in str(d).split(",") for d in decision], dtype=bool
    )
    person = np.where(np.isin(stype, list(QSO_TYPES)), 1, np.where(said_not, -1, 0))
    p = np.asarray(p_qso, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        model = np.where(p >= p_qso_min, 1, np.where(p <= 1.0 - p_qso_min, -1, 0))
    out = np.where(src == "model", model, np.where(src == "conflict", 0, person))
    return out.astype(np.int16)


def catalog_table(rows: pd.DataFrame, p_qso_min: float = MODEL_P_QSO_MIN) -> pd.DataFrame:
    """Validate `rows` against the contract and return the normalised table that gets written.

    Column order: the required columns, the derived columns (dv_fnet_kms,
    dv_pipe_kms, is_qso_final with `p_qso_min`), then the optional columns
    present. Types: floats float64, quality float32 (NaN = not inspected),
    n_decisions int32, is_qso_final int16, ids Int64 (-1 = none), strings str.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"catalog rows lack column(s) {missing}; the contract is {list(REQUIRED_COLUMNS)}")
    probs = _class_prob_columns(rows)
    extra = [c for c in rows.columns if c not in REQUIRED_COLUMNS and c not in OPTIONAL_COLUMNS and c not in probs]
    if extra:
        raise ValueError(f"catalog rows have unknown column(s) {extra}; optional ones are {list(OPTIONAL_COLUMNS)}")
    rows = rows.reset_index(drop=True)
    out: dict[str, Any] = {}
    oid = _str_col(rows["object_id"])
    if (oid == "").any():
        raise ValueError(f"object_id is empty at row {int(np.flatnonzero(oid == '')[0])}")
    dup = oid[oid.duplicated()]
    if len(dup):
        raise ValueError(f"object_id {dup.iloc[0]!r} appears more than once ({len(dup)} duplicates)")
    out["object_id"] = oid
    for c in ("ra", "dec", "z_final"):
        out[c] = _float(rows[c])
    src = _str_col(rows["z_source"])
    bad = ~src.isin(Z_SOURCES)
    if bad.any():
        raise ValueError(f"z_source {src[bad].iloc[0]!r} is not one of {Z_SOURCES}")
    out["z_source"] = src
    q = _float(rows["quality"])
    bad_q = ~np.isnan(q) & ((q < 0) | (q > 4))
    if bad_q.any():
        raise ValueError(f"quality must be 0-4 or NaN, got {q[bad_q][0]}")
    out["quality"] = q.astype(np.float32)
    out["inspectors"] = _str_col(rows["inspectors"])
    nd = pd.to_numeric(rows["n_decisions"], errors="raise").fillna(0)
    if (nd < 0).any():
        raise ValueError("n_decisions must be >= 0")
    nd = nd.astype(np.int32).to_numpy()
    no_dec = src.isin(INSPECTED_SOURCES).to_numpy() & (nd < 1)
    if no_dec.any():
        i = int(np.flatnonzero(no_dec)[0])
        raise ValueError(f"{oid[i]}: z_source {src[i]!r} but n_decisions = 0")
    out["n_decisions"] = nd
    for c in ("z_fnet", "z_fnet_err", "z_pipe", "z_qn", "z_pca"):
        out[c] = _float(rows[c])
    out["model_version"] = _str_col(rows["model_version"])
    zf = out["z_final"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["dv_fnet_kms"] = C_KMS * (out["z_fnet"] - zf) / (1.0 + zf)
        zp = np.where(out["z_pipe"] <= -0.99, np.nan, out["z_pipe"])
        out["dv_pipe_kms"] = C_KMS * (zp - zf) / (1.0 + zf)

    def given(c: str, as_float: bool) -> np.ndarray:
        if c not in rows.columns:
            return np.full(len(rows), np.nan if as_float else "")
        return _float(rows[c]) if as_float else _str_col(rows[c]).to_numpy(str)

    out["is_qso_final"] = is_qso_final(src.to_numpy(str), given("spectral_type", False), given("decision", False),
                                       given("p_qso", True), p_qso_min)  # fmt: skip
    for c in INT_OPTIONAL:
        if c in rows.columns:
            out[c] = pd.to_numeric(rows[c], errors="raise").astype("Int64").fillna(-1)
    for c in (*FLOAT_OPTIONAL, *probs):
        if c in rows.columns:
            out[c] = _float(rows[c])
    for c in STR_OPTIONAL:
        if c in rows.columns:
            out[c] = _str_col(rows[c])
    df = pd.DataFrame(out)
    for c in STR_COLUMNS:
        if c in df.columns:
            df[c] = df[c].astype(str)
    return df


def select_rows(table: pd.DataFrame, only_inspected: bool = False, min_quality: int | None = None,
                only_qso: bool = False) -> pd.DataFrame:
    """The export filters: n_decisions >= 1; quality >= min_quality (NaN quality fails it); is_qso_final = 1
    (the quasar catalog of a quasar-target superset)."""
    keep = np.ones(len(table), bool)
    if only_inspected:
        keep &= table["n_decisions"].to_numpy() >= 1
    if only_qso:
        keep &= table["is_qso_final"].to_numpy() == 1
    if min_quality is not None:
        if not 0 <= int(min_quality) <= 4:
            raise ValueError(f"min_quality must be 0-4, got {min_quality}")
        keep &= table["quality"].to_numpy() >= float(min_quality)  # NaN compares False
    return table.loc[keep].reset_index(drop=True)


QSO_FINAL_COUNTS = {"n_qso": 1, "n_not_qso": -1, "n_qso_unknown": 0}  # counts key -> is_qso_final value


def counts(table: pd.DataFrame) -> dict[str, int]:
    """n rows, n inspected (n_decisions >= 1), n per source, n per is_qso_final value."""
    src = table["z_source"].value_counts()
    qso = table["is_qso_final"].to_numpy()
    return {
        "n_rows": len(table),
        "n_inspected": int((table["n_decisions"] >= 1).sum()),
        **{f"n_{s}": int(src.get(s, 0)) for s in Z_SOURCES},
        **{k: int((qso == v).sum()) for k, v in QSO_FINAL_COUNTS.items()},
    }


def overlay_decisions(base: pd.DataFrame, decided: pd.DataFrame) -> pd.DataFrame:
    """`base` catalog rows (every spectrum, source "model") with the decided spectra replaced.

    `decided` holds one row per decided spectrum: object_id and any of z_final,
    z_source, quality, inspectors, n_decisions, spectral_type, issue_flags,
    decision, comment, decided_at. Its values win over `base`'s, except that
    a "conflict" row keeps `base`'s z_final (the model's: nothing is vetted
    yet). Object ids not in `base` are an error (a decision on a spectrum the
    catalog lacks).
    """
    if "object_id" not in decided.columns:
        raise ValueError("decided rows need an object_id column")
    if decided["object_id"].astype(str).duplicated().any():
        raise ValueError("decided rows must have one row per object_id (the latest / resolved decision)")
    base = base.reset_index(drop=True).copy()
    pos = pd.Index(base["object_id"].astype(str)).get_indexer(decided["object_id"].astype(str))
    if (pos < 0).any():
        first = decided["object_id"].iloc[int(np.flatnonzero(pos < 0)[0])]
        raise ValueError(f"decision for {first!r}, not in the catalog")
    for c in decided.columns:
        if c == "object_id":
            continue
        if c not in base.columns:
            base[c] = pd.Series([None] * len(base), dtype=object)
        if base[c].dtype != decided[c].dtype:
            base[c] = base[c].astype(object)
        vals = decided[c].to_numpy()
        if c == "z_final" and "z_source" in decided.columns:  # a conflict keeps the base (model) z
            keep = decided["z_source"].astype(str).to_numpy() == "conflict"
            vals = np.where(keep, base[c].to_numpy()[pos], vals)
        base.loc[pos, c] = vals
    for c in ("quality", "z_final"):
        if c in base.columns:
            base[c] = pd.to_numeric(base[c], errors="coerce")
    return base


def final_decisions(session: Any) -> pd.DataFrame:
    """One row per spectrum someone judged, from the database (`db.consensus.consensus`):

    object_id, z_final, z_source, quality, inspectors, n_decisions,
    spectral_type, decision, decided_at -- ready for `overlay_decisions`.
    Verdict -> source: 'single' -> person; 'agree' (mean z and quality) or
    'resolved' (the resolution's values) -> consensus; 'conflict' -> conflict
    (z_final NaN here; `overlay_decisions` keeps the model's). n_decisions
    counts every deciding decision in the spectrum's history (corrections
    included, skips not). Skips alone do not make a row.
    """
    from sqlalchemy import func, select

    from db.consensus import consensus
    from db.schema import Decision
    from db.validate import DECIDING_ACTIONS

    verdicts = consensus(session, min_inspectors=1)
    n_dec = dict(
        session.execute(
            select(Decision.spectrum_id, func.count())
            .where(Decision.action.in_(list(DECIDING_ACTIONS)))
            .group_by(Decision.spectrum_id)
        ).all()
    )
    source = {"single": "person", "agree": "consensus", "resolved": "consensus", "conflict": "conflict"}
    rows = []
    for v in verdicts:
        ds = list(v.decisions) + ([v.resolution] if v.resolution is not None else [])
        names = list(dict.fromkeys(d.inspector.name for d in ds))
        last = max(d.decided_at for d in ds)
        rows.append({
            "object_id": v.object_id,
            "z_final": np.nan if v.status == "conflict" or v.z is None else float(v.z),
            "z_source": source[v.status],
            "quality": np.nan if v.status == "conflict" or v.quality is None else float(v.quality),
            "inspectors": ",".join(names),
            "n_decisions": int(n_dec.get(v.spectrum_id, len(ds))),
            "spectral_type": "" if v.status == "conflict" else (v.spectral_type or ""),
            "decision": v.resolution.action if v.status == "resolved" and v.resolution is not None
            else ",".join(dict.fromkeys(d.action for d in v.decisions)),
            "decided_at": (last if last.tzinfo else last.replace(tzinfo=UTC)).isoformat(timespec="seconds"),
        })  # fmt: skip
    cols = ["object_id", "z_final", "z_source", "quality", "inspectors", "n_decisions", "spectral_type",
            "decision", "decided_at"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- writers
def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def _base_path(out_base: str | os.PathLike[str]) -> Path:
    p = Path(out_base)
    if p.suffix.lower() in {".fits", ".csv", ".parquet", ".json", ".fit"}:
        p = p.with_suffix("")
    return p


def _atomic(path: Path, write) -> Path:
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


def _write_fits(table: pd.DataFrame, path: Path, prov: dict[str, Any]) -> None:
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


def describe(column: str) -> str | None:
    """A column's description (`DESCRIPTIONS`, or FNet's probability of the class a p_cls_<class> names)."""
    if column in DESCRIPTIONS:
        return DESCRIPTIONS[column]
    if column.startswith(CLASS_PROB_PREFIX):
        return f"FNet's probability of class {column[len(CLASS_PROB_PREFIX):].upper()}; NaN: no class head"
    return None


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    """CSV through Arrow (~10x pandas' writer): floats at full precision, NaN / NA as an empty cell."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.Table.from_pandas(table, preserve_index=False), path)


def _write_parquet(table: pd.DataFrame, path: Path, prov: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    at = pa.Table.from_pandas(table, preserve_index=False)
    at = at.replace_schema_metadata({**(at.schema.metadata or {}), META_KEY: json.dumps(prov).encode()})
    pq.write_table(at, path)


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

    `rows` follows the contract in the module docstring. `meta` is the
    provenance: "model_version" (else taken from the rows), "thresholds"
    ({rule: value or None}) used for the triage queue, anything else
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
        "columns": {c: {"unit": UNITS.get(c), "description": describe(c)} for c in table.columns},
        "sidecar": sidecar.name,
    })  # fmt: skip
    written: list[Path] = []
    for f in formats:
        path = base.with_name(f"{base.name}.{f}")
        if f == "fits":
            _atomic(path, lambda p: _write_fits(table, p, prov))
        elif f == "csv":
            _atomic(path, lambda p: _write_csv(table, p))
        else:
            _atomic(path, lambda p: _write_parquet(table, p, prov))
        written.append(path)
    prov["files"] = [p.name for p in written]
    _atomic(sidecar, lambda p: p.write_text(json.dumps(prov, indent=1)))
    written.append(sidecar)
    return written
