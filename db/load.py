"""Bulk loading from DataFrames: spectra (a store's index), model versions, predictions, triage flags.

Plain values in, no `inspector`/`model` imports: the CLI reads the store and
the predictions Parquet and hands the frames over.

    n = load_spectra(s, store.index)                               # upsert by object_id
    mv = add_model_version(s, name="fnet-small", sha1=side["model"]["sha1"], config=..., make_current=True)
    load_predictions(s, predictions_df, mv.id)                     # row/object_id, z_fnet, ..., fnet_class, p_qso, risk
    load_triage_flags(s, flags_df)                                 # object_id, rule, value, priority[, model_version_id]

Each loader is one write transaction (commits), in chunks of executemany
inserts with bound parameters on SQLite and through COPY into a staging table
on PostgreSQL, the other backend (`db.copy_load`); re-loading updates rows in place.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.copy_load import copy_upsert
from db.decisions import refresh_triage_counters
from db.engine import is_sqlite, run_write
from db.schema import (
    Base,
    Decision,
    ModelVersion,
    Prediction,
    Spectrum,
    TriageFlag,
    utcnow,
)
from db.validate import CLASS_PROB_PREFIX, DecisionError, check_rule

CHUNK = 20_000
TPL_VALUES = ("z_tpl", "z_tpl_err", "tpl_dchi2", "tpl_candidates")
CLASS_VALUES = ("fnet_class", "p_qso", "class_probs")
RISK_VALUES = ("risk", "z_best", "z_best_source", "risk_drivers")
PREDICTION_VALUES = ("z", "z_err", "p", "alternatives", *TPL_VALUES, *CLASS_VALUES, *RISK_VALUES)
Z_BEST_SOURCE_MAX = 8  # predictions.z_best_source is String(8): "fnet", "tpl", "pipe"

# spectra column <- candidate frame columns, first present wins (store index names, then DR16Q names)
SPECTRUM_COLUMNS: dict[str, tuple[str, ...]] = {
    "object_id": ("object_id",),
    "survey": ("survey",),
    "plate": ("plate", "PLATE"),
    "mjd": ("mjd", "MJD"),
    "fiberid": ("fiberid", "FIBERID"),
    "targetid": ("targetid", "TARGETID"),
    "ra": ("ra", "RA"),
    "dec": ("dec", "DEC"),
    "file": ("file",),
    "store_row": ("row", "store_row"),
    "sn": ("sn_median_all", "SN_MEDIAN_ALL", "sn"),
    "spec_class": ("spec_class",),
    "z_file": ("z_file",),
    "zwarning": ("zwarning", "ZWARNING"),
    "z_catalog": ("Z", "z_catalog"),
    "z_pipe": ("Z_PIPE", "z_pipe"),
    "z_qn": ("Z_QN", "z_qn"),
    "z_pca": ("Z_PCA", "z_pca"),
    "z_vi": ("Z_VI", "z_vi"),
    "class_person": ("CLASS_PERSON", "class_person"),
}
INT_COLUMNS = {"plate", "mjd", "fiberid", "targetid", "store_row", "zwarning", "class_person"}
N_ALT = 3


def _insert(session: Session, table: Any) -> Any:
    return (sqlite.insert if is_sqlite(session) else postgresql.insert)(table)


def _plain(v: Any, integer: bool = False) -> Any:
    """numpy / pandas scalars -> Python; NaN / NA / None -> None."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return None
        return int(v) if integer else float(v)
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _check_whole_numbers(s: pd.Series, name: str) -> None:
    if pd.api.types.is_float_dtype(s.dtype):
        bad = s.notna() & (s % 1 != 0)
        if bad.any():
            raise DecisionError(name, s[bad].iloc[0], "must hold whole numbers")


def _column(df: pd.DataFrame, name: str, integer: bool) -> list[Any]:
    s = df[name]
    if integer:
        _check_whole_numbers(s, name)
    return [_plain(v, integer) for v in s.to_numpy(dtype=object)]


def _records(df: pd.DataFrame, mapping: Mapping[str, str], ints: Iterable[str] = ()) -> list[dict[str, Any]]:
    ints = set(ints)
    cols = {dst: _column(df, src, dst in ints) for dst, src in mapping.items()}
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)] if cols else []


def _spans(n_rows: int, n: int = CHUNK) -> Iterator[range]:
    """Row ranges of at most `n` rows: parameters are built one chunk at a time (memory stays flat)."""
    for i in range(0, n_rows, n):
        yield range(i, min(i + n, n_rows))


# --------------------------------------------------------------------------- spectra
def spectrum_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The spectra columns found in `df` (a store index and/or catalog columns), renamed to the table's names."""
    if "object_id" not in df.columns:
        raise DecisionError("object_id", list(df.columns)[:10], "column is required to load spectra")
    mapping = {}
    for dst, srcs in SPECTRUM_COLUMNS.items():
        src = next((c for c in srcs if c in df.columns), None)
        if src is not None:
            mapping[dst] = src
    out = pd.DataFrame({dst: df[src] for dst, src in mapping.items()})
    out["object_id"] = out["object_id"].astype(str)
    if out["object_id"].duplicated().any():
        raise DecisionError("object_id", out.loc[out["object_id"].duplicated(), "object_id"].iloc[0], "is duplicated")
    return out


def load_spectra(session: Session, df: pd.DataFrame, *, update_existing: bool = True, chunk: int = CHUNK) -> int:
    """Insert (or update, by object_id) one spectra row per frame row; commits; returns the rows written.

    `df`: a store index (object_id, plate, mjd, fiberid, targetid, ra, dec, file,
    row, sn_median_all, ...) with catalog columns (Z, Z_PIPE, Z_QN, Z_PCA, Z_VI,
    CLASS_PERSON) where present. Missing columns stay NULL.
    """
    frame = spectrum_frame(df)
    cols = [c for c in frame.columns if c != "object_id"]
    for c in sorted(INT_COLUMNS & set(frame.columns)):  # the whole frame is checked before anything is written
        _check_whole_numbers(frame[c], c)

    def chunks() -> Iterator[list[dict[str, Any]]]:
        for span in _spans(len(frame), chunk):
            yield _records(frame.iloc[span.start:span.stop], {c: c for c in frame.columns}, INT_COLUMNS)

    def work() -> int:
        if not is_sqlite(session):
            rows = (tuple(r.values()) for part in chunks() for r in part)
            return copy_upsert(session, Spectrum.__table__, list(frame.columns), rows, conflict=["object_id"],
                               update=cols if update_existing else [])  # fmt: skip
        n = 0
        for part in chunks():
            ins = _insert(session, Spectrum)
            if update_existing and cols:
                ins = ins.on_conflict_do_update(
                    index_elements=[Spectrum.object_id], set_={c: getattr(ins.excluded, c) for c in cols}
                )
            else:
                ins = ins.on_conflict_do_nothing(index_elements=[Spectrum.object_id])
            session.execute(ins, part)
            n += len(part)
        return n

    return run_write(session, work)


def spectrum_ids(session: Session, object_ids: Iterable[str] | None = None) -> pd.Series:
    """object_id -> spectra.id as a Series indexed by object id (all spectra if None)."""
    q = select(Spectrum.object_id, Spectrum.id)
    rows = session.execute(q).all()
    s = pd.Series({o: i for o, i in rows}, dtype="int64", name="spectrum_id")
    s.index.name = "object_id"
    if object_ids is None:
        return s
    return s.reindex(pd.Index([str(o) for o in object_ids], name="object_id"))


def _ids_for(session: Session, df: pd.DataFrame) -> np.ndarray:
    """spectra.id for each row of df (by `spectrum_id`, else `object_id`); DecisionError naming unknown ones."""
    if "spectrum_id" in df.columns:
        return df["spectrum_id"].to_numpy(np.int64)
    if "object_id" not in df.columns:
        raise DecisionError("object_id", list(df.columns)[:10], "or spectrum_id column is required")
    ids = spectrum_ids(session, df["object_id"].astype(str))
    missing = ids.isna()
    if missing.any():
        raise DecisionError("object_id", ids.index[missing.to_numpy()][0],
                            f"is not in the spectra table ({int(missing.sum())} unknown); load_spectra first")
    return ids.to_numpy(np.int64)


# --------------------------------------------------------------------------- model versions
def add_model_version(
    session: Session,
    name: str,
    sha1: str,
    *,
    parent_sha1: str | None = None,
    config: Mapping[str, Any] | None = None,
    data_hash: str | None = None,
    label_count: int | None = None,
    metrics: Mapping[str, Any] | None = None,
    path: str | None = None,
    created_at: datetime | None = None,
    make_current: bool = False,
) -> ModelVersion:
    """Register a model version (idempotent by sha1: an existing one is returned, its metadata filled in).

    `parent_sha1`: the version it was fine-tuned from (must be registered).
    `make_current`: also make it the current model (the one the queue and
    export refer to); at most one is current. Commits.
    """
    if not isinstance(sha1, str) or not sha1.strip() or len(sha1) > 64:
        raise DecisionError("sha1", sha1, "must be a hex digest of at most 64 characters")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise DecisionError("name", name, "must be a non-empty name of at most 128 characters")

    def work() -> ModelVersion:
        parent_id = None
        if parent_sha1 is not None:
            parent_id = session.scalar(select(ModelVersion.id).where(ModelVersion.sha1 == parent_sha1))
            if parent_id is None:
                raise DecisionError("parent_sha1", parent_sha1, "is not a registered model version")
        values = {
            "name": name, "parent_id": parent_id, "config": _json(config), "data_hash": data_hash,
            "label_count": None if label_count is None else int(label_count), "metrics": _json(metrics),
            "path": None if path is None else str(path),
        }  # fmt: skip
        mv = session.scalars(select(ModelVersion).where(ModelVersion.sha1 == sha1)).first()
        if mv is None:
            mv = ModelVersion(sha1=sha1, created_at=created_at or utcnow(), is_current=False, **values)
            session.add(mv)
        else:
            for k, v in values.items():
                if v is not None:
                    setattr(mv, k, v)
        session.flush()
        if make_current:
            mark_current(session, mv.id)
        return mv

    return run_write(session, work)


def _json(v: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A JSON-safe copy (numpy scalars -> Python, NaN -> None)."""
    if v is None:
        return None

    def conv(x: Any) -> Any:
        if isinstance(x, Mapping):
            return {str(k): conv(y) for k, y in x.items()}
        if isinstance(x, (list, tuple, np.ndarray)):
            return [conv(y) for y in x]
        x = _plain(x)
        return x if isinstance(x, (str, int, float, bool)) or x is None else str(x)

    return conv(v)


def mark_current(session: Session, model_version_id: int) -> None:
    """Inside the caller's write transaction: this version current, every other one not (no commit)."""
    session.execute(
        update(ModelVersion).where(ModelVersion.is_current, ModelVersion.id != model_version_id)
        .values(is_current=False).execution_options(synchronize_session=False)
    )  # fmt: skip
    session.flush()
    session.execute(
        update(ModelVersion).where(ModelVersion.id == model_version_id)
        .values(is_current=True).execution_options(synchronize_session="fetch")
    )  # fmt: skip


def set_current_model(session: Session, model_version_id: int) -> None:
    """Make this model version the current one (the previous current one stops being so). Commits."""

    def work() -> None:
        if session.get(ModelVersion, model_version_id) is None:
            raise DecisionError("model_version_id", model_version_id, "is not a known model version")
        mark_current(session, model_version_id)

    run_write(session, work)


def current_model(session: Session) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.is_current)).first()


def model_version(session: Session, sha1: str) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.sha1 == sha1)).first()


# --------------------------------------------------------------------------- predictions
def load_predictions(session: Session, df: pd.DataFrame, model_version_id: int, *, chunk: int = CHUNK) -> int:
    """Upsert one prediction per frame row for `model_version_id`; commits; returns the rows written.

    `df` as written by `inspector predict`: object_id (or spectrum_id), z_fnet
    (or z), z_fnet_err (or z_err), p_fnet, z_alt1..3 / p_alt1..3 (the
    alternatives, best first; missing ones skipped), and optionally the
    template fit: z_tpl, z_tpl_err, tpl_dchi2, z_tpl_alt1..2 / tpl_dchi2_alt1..2,
    and FNet's class: fnet_class, p_qso, p_cls_<class> (stored as class_probs
    {CLASS: p}), and the risk model's answer: risk, z_best, z_best_source,
    risk_drivers (a JSON string or list of [feature, value, risk added]; "" or
    None: not worked out). A frame without the template fit, the class or the
    risk columns writes only what it has (a re-load of FNet's z keeps the
    stored Z_TPL, class and risk).
    """

    def pick(*names: str) -> str | None:
        return next((n for n in names if n in df.columns), None)

    zc, ec, pc = pick("z_fnet", "z"), pick("z_fnet_err", "z_err"), pick("p_fnet", "p")
    if zc is None:
        raise DecisionError("z_fnet", list(df.columns)[:10], "column (or z) is required")
    z = df[zc].to_numpy(np.float64)
    err = df[ec].to_numpy(np.float64) if ec else np.full(len(df), np.nan)
    p = df[pc].to_numpy(np.float64) if pc else np.full(len(df), np.nan)
    alt_z = [df[f"z_alt{k}"].to_numpy(np.float64) for k in range(1, N_ALT + 1) if f"z_alt{k}" in df.columns]
    alt_p = [df[f"p_alt{k}"].to_numpy(np.float64) if f"p_alt{k}" in df.columns else np.full(len(df), np.nan)
             for k in range(1, len(alt_z) + 1)]  # fmt: skip

    def alternatives(i: int) -> list[dict[str, float | None]] | None:
        out = [{"z": float(az[i]), "p": _plain(ap[i])} for az, ap in zip(alt_z, alt_p, strict=True)
               if not math.isnan(az[i])]  # fmt: skip
        return out or None

    def floats(name: str) -> np.ndarray:
        return df[name].to_numpy(np.float64, na_value=np.nan) if name in df.columns else np.full(len(df), np.nan)

    # a frame without the template fit writes only FNet's columns (and keeps stored Z_TPL on a re-load)
    has_tpl = any(c in df.columns for c in ("z_tpl", "z_tpl_err", "tpl_dchi2", "z_tpl_alt1"))
    z_tpl, z_tpl_err, tpl_dchi2 = floats("z_tpl"), floats("z_tpl_err"), floats("tpl_dchi2")
    tpl_alt = [(floats(f"z_tpl_alt{k}"), floats(f"tpl_dchi2_alt{k}")) for k in (1, 2)]

    def tpl_candidates(i: int) -> list[dict[str, float | None]] | None:
        out = [{"z": float(az[i]), "dchi2": _plain(ad[i])} for az, ad in tpl_alt if not math.isnan(az[i])]
        return out or None

    classes, risks = _class_values(df), _risk_values(df)
    written = [c for c in PREDICTION_VALUES
               if (has_tpl or c not in TPL_VALUES) and (classes is not None or c not in CLASS_VALUES)
               and (risks is not None or c not in RISK_VALUES)]  # fmt: skip

    def chunks(sids: np.ndarray) -> Iterator[list[dict[str, Any]]]:
        for span in _spans(len(df), chunk):
            part = [
                {"spectrum_id": int(sids[i]), "model_version_id": int(model_version_id), "z": _plain(z[i]),
                 "z_err": _plain(err[i]), "p": _plain(p[i]), "alternatives": alternatives(i)}
                for i in span
            ]  # fmt: skip
            if has_tpl:
                for row, i in zip(part, span, strict=True):
                    row.update(z_tpl=_plain(z_tpl[i]), z_tpl_err=_plain(z_tpl_err[i]),
                               tpl_dchi2=_plain(tpl_dchi2[i]), tpl_candidates=tpl_candidates(i))
            if classes is not None:
                for row, i in zip(part, span, strict=True):
                    row.update(classes(i))
            if risks is not None:
                for row, i in zip(part, span, strict=True):
                    row.update(risks(i))
            yield part

    def work() -> int:
        if session.get(ModelVersion, model_version_id) is None:
            raise DecisionError("model_version_id", model_version_id, "is not a known model version")
        sids = _ids_for(session, df)
        conflict = ["spectrum_id", "model_version_id"]
        if not is_sqlite(session):
            columns = [*conflict, *written]
            rows = (tuple(r[c] for c in columns) for part in chunks(sids) for r in part)
            copy_upsert(session, Prediction.__table__, columns, rows, conflict=conflict, update=written)
            return len(df)
        for part in chunks(sids):
            ins = _insert(session, Prediction)
            ins = ins.on_conflict_do_update(
                index_elements=[Prediction.spectrum_id, Prediction.model_version_id],
                set_={c: getattr(ins.excluded, c) for c in written},
            )
            session.execute(ins, part)
        return len(df)

    return run_write(session, work)


def _class_values(df: pd.DataFrame) -> Callable[[int], dict[str, Any]] | None:
    """Row i -> {fnet_class, p_qso, class_probs} from the frame's class columns; None if it has none."""
    prob_cols = [c for c in df.columns if str(c).startswith(CLASS_PROB_PREFIX)]
    if "fnet_class" not in df.columns and "p_qso" not in df.columns and not prob_cols:
        return None
    n = len(df)
    names = [str(c)[len(CLASS_PROB_PREFIX):].upper() for c in prob_cols]
    probs = [df[c].to_numpy(np.float64, na_value=np.nan) for c in prob_cols]
    p_qso = df["p_qso"].to_numpy(np.float64, na_value=np.nan) if "p_qso" in df.columns else np.full(n, np.nan)
    cls = df["fnet_class"].to_numpy(object) if "fnet_class" in df.columns else np.full(n, None, dtype=object)

    def values(i: int) -> dict[str, Any]:
        c = _plain(cls[i])
        by_name = {k: float(v[i]) for k, v in zip(names, probs, strict=True) if not math.isnan(v[i])}
        return {"fnet_class": None if c is None else str(c), "p_qso": _plain(p_qso[i]),
                "class_probs": by_name or None}  # fmt: skip

    return values


def _risk_values(df: pd.DataFrame) -> Callable[[int], dict[str, Any]] | None:
    """Row i -> {risk, z_best, z_best_source, risk_drivers} from the frame's risk columns; None if it has none
    (so a re-load without them leaves the stored risk alone). The whole frame is checked here, before any
    write: a risk outside [0, 1] or an unreadable driver list is a bad scores file, not a row to skip."""
    if not any(c in df.columns for c in RISK_VALUES):
        return None
    n = len(df)

    def floats(name: str) -> np.ndarray:
        return df[name].to_numpy(np.float64, na_value=np.nan) if name in df.columns else np.full(n, np.nan)

    risk, z_best = floats("risk"), floats("z_best")
    bad = ~np.isnan(risk) & ((risk < 0) | (risk > 1))
    if bad.any():
        raise DecisionError("risk", float(risk[bad][0]), "must be a probability in [0, 1]")
    src = [_plain(v) for v in (df["z_best_source"].to_numpy(object) if "z_best_source" in df.columns
                               else np.full(n, None, dtype=object))]  # fmt: skip
    for v in src:
        if v is not None and (not isinstance(v, str) or len(v) > Z_BEST_SOURCE_MAX):
            raise DecisionError("z_best_source", v, f"must be a source name of at most {Z_BEST_SOURCE_MAX} characters")
    raw = df["risk_drivers"].to_numpy(object) if "risk_drivers" in df.columns else np.full(n, None, dtype=object)
    drivers = [_drivers(v) for v in raw]

    def values(i: int) -> dict[str, Any]:
        return {"risk": _plain(risk[i]), "z_best": _plain(z_best[i]), "z_best_source": src[i],
                "risk_drivers": drivers[i]}  # fmt: skip

    return values


def _drivers(v: Any) -> list[Any] | None:
    """A risk-driver list as stored: JSON-safe [[feature, value, risk added], ...] (NaN -> null, which
    PostgreSQL's JSONB requires); "" / None / NaN -> None (not worked out), [] stays [] (worked out, none
    stands out)."""
    if isinstance(v, str):
        if not v.strip():
            return None
        try:
            v = json.loads(v)
        except ValueError:
            raise DecisionError("risk_drivers", v[:80], "is not JSON") from None
    elif not isinstance(v, (list, tuple, np.ndarray)) and _plain(v) is None:
        return None
    if not isinstance(v, (list, tuple, np.ndarray)) or any(
        not isinstance(d, (list, tuple, np.ndarray)) or len(d) != 3 for d in v
    ):
        raise DecisionError("risk_drivers", str(v)[:80], "must be a list of [feature, value, risk it adds]")
    return [[str(name), _plain(value), _plain(added)] for name, value, added in v]


PREDICTION_FRAME_COLUMNS = ("spectrum_id", "object_id", "z", "z_err", "p", "alternatives", "z_tpl", "z_tpl_err",
                            "tpl_dchi2", "tpl_candidates", "fnet_class", "p_qso", "class_probs", "risk", "z_best",
                            "z_best_source", "risk_drivers")  # fmt: skip


def predictions_frame(session: Session, model_version_id: int) -> pd.DataFrame:
    """A model version's predictions with object ids: the columns `PREDICTION_FRAME_COLUMNS`."""
    cols = [Spectrum.object_id if c == "object_id" else getattr(Prediction, c) for c in PREDICTION_FRAME_COLUMNS]
    q = (
        select(*cols)
        .join(Spectrum, Spectrum.id == Prediction.spectrum_id)
        .where(Prediction.model_version_id == model_version_id)
        .order_by(Prediction.spectrum_id)
    )  # fmt: skip
    return pd.DataFrame(session.execute(q).all(), columns=list(PREDICTION_FRAME_COLUMNS))


# --------------------------------------------------------------------------- triage flags
# A flag row's copies of its spectrum's S/N and FNet z (its model version's, else the current model's), for the
# queue's orders: looked up by the database as each row goes in (one index lookup each; reading them into Python
# first took longer)
_CURRENT_MODEL = select(ModelVersion.id).where(ModelVersion.is_current).scalar_subquery()
QUEUE_KEYS = {
    "sn": select(Spectrum.sn).where(Spectrum.id == bindparam("key_sid")).scalar_subquery(),
    "z_fnet": select(Prediction.z).where(
        Prediction.spectrum_id == bindparam("key_sid"),
        Prediction.model_version_id == func.coalesce(bindparam("key_mv"), _CURRENT_MODEL),
    ).scalar_subquery(),
}


def _queue_keys_joined(staged: Any) -> tuple[dict[str, Any], Any]:
    """`QUEUE_KEYS` for a whole staged load at once (`db.copy_load`): the same values, by joins."""
    source = staged.outerjoin(Spectrum, Spectrum.id == staged.c.spectrum_id).outerjoin(
        Prediction, and_(Prediction.spectrum_id == staged.c.spectrum_id,
                         Prediction.model_version_id == func.coalesce(staged.c.model_version_id, _CURRENT_MODEL)))  # fmt: skip
    return {"sn": Spectrum.sn, "z_fnet": Prediction.z}, source


FLAG_COLUMNS = ("spectrum_id", "rule", "value", "priority", "model_version_id", "n_inspectors")
FLAG_UPDATED = ("value", "priority", "model_version_id", "sn", "z_fnet")


def load_triage_flags(session: Session, df: pd.DataFrame, *, replace: bool = True, chunk: int = CHUNK) -> int:
    """Write the triage flags (`triage_flags_writer`) in one write transaction of their own. Commits."""
    return run_write(session, triage_flags_writer(session, df, replace=replace, chunk=chunk))


def triage_flags_writer(session: Session, df: pd.DataFrame, *, replace: bool = True,
                        chunk: int = CHUNK) -> Callable[[], int]:
    """The frame checked now, and a function that writes the triage flags in the caller's write
    transaction (no commit), so a model switch can replace the flags and the current model together
    (`db.promotion.switch_model`). It returns the rows written: one per spectrum and rule that fired.

    `df`: object_id (or spectrum_id), rule, and optionally value, priority
    (higher = sooner in the queue; default 0), model_version_id (the model whose
    predictions the rule read). `replace` (default): these flags are the whole
    current triage, earlier flags are removed; else rows are added / updated by
    (spectrum, rule). The queue's inspector counters are recomputed from the
    decisions, so spectra already decided stay decided. Each row also gets the
    spectrum's S/N and the z of its model version (else the current model's)
    from the spectra and predictions already loaded (`QUEUE_KEYS`), for the
    queue's other orders (`db.queue.ORDERS`): load those first.

    On SQLite a replacing load drops the table's queue indexes and builds them
    again at the end, in the same transaction: building an index from all its
    rows is faster than growing five indexes a row at a time (at 200,000
    spectra the flags took 3.1 s instead of 6.6 s), and the load holds
    SQLite's one write lock throughout anyway, while readers see the old rows
    and indexes until it commits. PostgreSQL keeps them: dropping one would
    make every reader of the queue wait for the whole load.
    """
    if "rule" not in df.columns:
        raise DecisionError("rule", list(df.columns)[:10], "column is required")
    for r in df["rule"].astype(str).unique():
        check_rule(r)
    value = df["value"].to_numpy(np.float64) if "value" in df.columns else np.full(len(df), np.nan)
    prio = df["priority"].to_numpy(np.float64) if "priority" in df.columns else np.zeros(len(df))
    if np.isnan(prio).any():
        raise DecisionError("priority", float("nan"), "must be a number for every flag")
    mvs = (df["model_version_id"].to_numpy(object) if "model_version_id" in df.columns
           else np.full(len(df), None, dtype=object))  # fmt: skip
    rule = df["rule"].astype(str).to_numpy(object)
    sqlite = is_sqlite(session)

    def work() -> int:
        sids = _ids_for(session, df)
        rebuild = sorted(TriageFlag.__table__.indexes, key=lambda ix: str(ix.name)) if replace and sqlite else []
        for ix in rebuild:
            ix.drop(session.connection())
        if replace:
            session.execute(delete(TriageFlag).execution_options(synchronize_session=False))
        if sqlite:
            for span in _spans(len(df), chunk):
                part = [
                    {"spectrum_id": int(sids[i]), "rule": rule[i], "value": _plain(value[i]),
                     "priority": float(prio[i]), "model_version_id": (mv := _plain(mvs[i], True)),
                     "n_inspectors": 0, "key_sid": int(sids[i]), "key_mv": mv}
                    for i in span
                ]  # fmt: skip
                ins = _insert(session, TriageFlag).values(**QUEUE_KEYS)
                ins = ins.on_conflict_do_update(index_elements=[TriageFlag.spectrum_id, TriageFlag.rule],
                                                set_={c: getattr(ins.excluded, c) for c in FLAG_UPDATED})
                session.execute(ins, part)
        else:
            rows = ((int(sids[i]), rule[i], _plain(value[i]), float(prio[i]), _plain(mvs[i], True), 0)
                    for i in range(len(df)))  # fmt: skip
            copy_upsert(session, TriageFlag.__table__, FLAG_COLUMNS, rows, conflict=["spectrum_id", "rule"],
                        update=FLAG_UPDATED, computed=_queue_keys_joined)
        _refresh_decided(session)
        for ix in rebuild:
            ix.create(session.connection())
        return len(df)

    return work


def _refresh_decided(session: Session) -> None:
    """Recompute the queue counters for flagged spectra that have any decision (fast when few are decided)."""
    decided = select(Decision.spectrum_id).distinct()
    flagged_decided = session.scalars(
        select(TriageFlag.spectrum_id).distinct().where(TriageFlag.spectrum_id.in_(decided))
    ).all()
    for part in range(0, len(flagged_decided), CHUNK):
        refresh_triage_counters(session, flagged_decided[part:part + CHUNK])


def table_counts(session: Session) -> dict[str, int]:
    """Row counts of every table (for checks and the CLI)."""
    out = {}
    for name, t in Base.metadata.tables.items():
        assert isinstance(t, Table)
        out[name] = session.scalar(select(func.count()).select_from(t)) or 0
    return out


__all__ = [
    "add_model_version", "current_model", "load_predictions", "load_spectra", "load_triage_flags", "mark_current", "model_version",
    "predictions_frame", "set_current_model", "spectrum_frame", "spectrum_ids", "table_counts", "triage_flags_writer",
]  # fmt: skip
