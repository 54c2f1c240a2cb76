"""The vetted catalog's column contract: which columns, their types, units and descriptions, and the
checks every row passes before any file is written (`catalog_table`), plus the export filters.

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
                         the automatic one, not vetted); where nobody
                         decided, the automatic z: "model" (FNet's z, no
                         risk model) or, with a queue policy, the estimate
                         the risk model found least risky: "fnet" (FNet),
                         "tpl" (the template fit) or "pipe" (the survey
                         pipeline's Z_PIPE)
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
decision, comment, decided_at, triage_rules, priority, and from a queue
policy's triage risk (float, P(the automatic answer is wrong)) and
auto_accepted (1 the policy accepted it without a look, 0 it did not, -1 /
NA not known). Any other column is an error (so a typo never silently drops
or leaks a column).

Rules checked at the boundary (ValueError naming the column): required
columns present, object_id unique and non-empty, z_source in
`Z_SOURCES`, quality in 0-4 or NA, n_decisions >= 0 and >= 1 where the source
is a person, the consensus or a conflict.

Columns the export adds: dv_fnet_kms = c (z_fnet - z_final) / (1 + z_final)
(how far the model was from the final z; 0 where the source is "model" or "fnet")
and dv_pipe_kms = c (z_pipe - z_final) / (1 + z_final) (NaN where Z_PIPE is
missing or -1), in km/s; and is_qso_final (1 a quasar, -1 not a quasar, 0 not
known: the rule is `db.catalog_decisions.is_qso_final`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from db.catalog_decisions import (
    AUTO_ESTIMATES,
    AUTO_SOURCES,
    MODEL_P_QSO_MIN,
    is_qso_final,
)
from db.validate import CLASS_PROB_PREFIX, FLAG_BY_NAME, TYPE_BY_NAME

C_KMS = 299792.458  # as model.metrics (db/ never imports model/)
INSPECTED_SOURCES = ("person", "consensus", "conflict")
Z_SOURCES = (*INSPECTED_SOURCES, *AUTO_SOURCES)  # AUTO_SOURCES: "model", "fnet", "tpl", "pipe" (nobody decided)

REQUIRED_COLUMNS = (
    "object_id", "ra", "dec", "z_final", "z_source", "quality", "inspectors", "n_decisions",
    "z_fnet", "z_fnet_err", "z_pipe", "z_qn", "z_pca", "model_version",
)  # fmt: skip
INT_OPTIONAL = ("plate", "mjd", "fiberid", "targetid")
FLOAT_OPTIONAL = ("z_vi", "sn_median_all", "priority", "z_tpl", "z_tpl_err", "tpl_dchi2", "p_qso", "risk")
FLAG_OPTIONAL = ("auto_accepted",)  # 1 yes, 0 no, -1 not known (int16)
STR_OPTIONAL = ("fnet_class", "spectral_type", "issue_flags", "decision", "comment", "decided_at", "triage_rules")
OPTIONAL_COLUMNS = (*INT_OPTIONAL, *FLOAT_OPTIONAL, *FLAG_OPTIONAL, *STR_OPTIONAL)  # and any p_cls_<class> (float)
DERIVED_COLUMNS = ("dv_fnet_kms", "dv_pipe_kms", "is_qso_final")
STR_COLUMNS = ("object_id", "z_source", "inspectors", "model_version", *STR_OPTIONAL)
Z_COLUMNS = ("z_final", "z_fnet", "z_fnet_err", "z_pipe", "z_qn", "z_pca", "z_vi", "z_tpl", "z_tpl_err")
UNITS = {
    **{c: "" for c in Z_COLUMNS},  # dimensionless
    "p_qso": "", "risk": "",
    "ra": "deg", "dec": "deg", "dv_fnet_kms": "km / s", "dv_pipe_kms": "km / s",
}  # fmt: skip
DESCRIPTIONS = {
    "object_id": "store object id (PLATE-MJD-FIBER or DESI TARGETID-...)",
    "ra": "right ascension (J2000)", "dec": "declination (J2000)",
    "z_final": "vetted redshift; where nobody decided, the automatic one",
    "z_source": "person | consensus | conflict (automatic z) | nobody decided: model (FNet) or fnet | tpl | pipe "
                "(the least risky estimate)",
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
    "spectral_type": f"the inspectors' spectral type ({', '.join(TYPE_BY_NAME)})",
    "issue_flags": f"the inspectors' issue flags, all of them, comma-separated ({', '.join(FLAG_BY_NAME)})",
    "comment": "the inspectors' comments; with several, 'name: comment; name: comment'",
    "risk": "risk model: P(the automatic z or class is wrong) (catastrophic: |dv| > 6000 km/s)",
    "auto_accepted": "1 the queue policy accepted the automatic answer unseen, 0 it did not, -1 not known",
}  # fmt: skip


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


def describe(column: str) -> str | None:
    """A column's description (`DESCRIPTIONS`, or FNet's probability of the class a p_cls_<class> names)."""
    if column in DESCRIPTIONS:
        return DESCRIPTIONS[column]
    if column.startswith(CLASS_PROB_PREFIX):
        return f"FNet's probability of class {column[len(CLASS_PROB_PREFIX):].upper()}; NaN: no class head"
    return None


def catalog_table(rows: pd.DataFrame, p_qso_min: float = MODEL_P_QSO_MIN) -> pd.DataFrame:
    """Validate `rows` against the contract and return the normalised table that gets written.

    Column order: the required columns, the derived columns (dv_fnet_kms,
    dv_pipe_kms, is_qso_final with `p_qso_min`), then the optional columns
    present. Types: floats float64, quality float32 (NaN = not inspected),
    n_decisions int32, is_qso_final and auto_accepted int16 (auto_accepted -1 =
    not known), ids Int64 (-1 = none), strings str.
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
    for c in FLAG_OPTIONAL:
        if c in rows.columns:
            f = _float(rows[c].astype(object).where(rows[c].notna(), np.nan))  # bools, ints, NA alike
            bad_f = np.isfinite(f) & ~np.isin(f, (-1.0, 0.0, 1.0))
            if bad_f.any():
                raise ValueError(f"{c} must be 1, 0, -1 or NA, got {f[bad_f][0]}")
            out[c] = np.where(np.isfinite(f), f, -1).astype(np.int16)
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
    """n rows, n inspected (n_decisions >= 1), n per source (n_model: nobody decided, whichever estimate gave
    the z), n per is_qso_final value; where the risk model chose the z (a source "fnet" / "tpl" / "pipe", or
    an auto_accepted column), n_z_<estimate> (undecided rows whose z is that estimate's) and n_auto_accepted
    (rows the policy accepted that nobody decided since)."""
    src = table["z_source"].astype(str)
    per = src.value_counts()
    qso = table["is_qso_final"].to_numpy()
    auto = src.isin(AUTO_SOURCES).to_numpy()
    out = {
        "n_rows": len(table),
        "n_inspected": int((table["n_decisions"] >= 1).sum()),
        **{f"n_{s}": int(per.get(s, 0)) for s in INSPECTED_SOURCES},
        "n_model": int(auto.sum()),
        **{k: int((qso == v).sum()) for k, v in QSO_FINAL_COUNTS.items()},
    }
    if "auto_accepted" in table.columns or src.isin(AUTO_ESTIMATES).any():
        out.update({f"n_z_{e}": int(per.get(e, 0)) for e in AUTO_ESTIMATES})
    if "auto_accepted" in table.columns:
        out["n_auto_accepted"] = int((auto & (table["auto_accepted"].to_numpy() == 1)).sum())
    return out
