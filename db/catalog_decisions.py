"""What people decided, laid over the model's catalog rows, and the quasar verdict each row ends with.

`final_decisions(session)` turns the decision history (`db.consensus`) into
one row per judged spectrum; `overlay_decisions(base, decided)` lays those
rows over the automatic rows (every spectrum, an `AUTO_SOURCES` source: "model"
for FNet's z, or "fnet" / "tpl" / "pipe" for the least risky estimate the risk
model chose), which is what `db.export.export_catalog` then writes.

is_qso_final is what a survey scientist keeps to make a quasar catalog of a
quasar-target superset: 1 a quasar, -1 not a quasar, 0 not known. A person's
verdict decides where there is one (a "not a quasar" decision overrides
FNet's class); elsewhere FNet's p_qso does, against `p_qso_min` (`inspector
export` passes the triage's fnet_qso_unsure threshold, so a spectrum the
queue holds for a person stays 0 until someone decides it; with a queue policy,
FNet's own call, 0.5, as the risk already counts FNet's class doubt).
"""
from __future__ import annotations

import functools
import operator
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd

from db.validate import ACTION_BY_NAME, NOT_QSO_TYPES, QSO_TYPES, flag_names

# z_source where nobody decided: "model" is FNet's z (no risk model: a rules-only triage); "fnet", "tpl" and
# "pipe" say which estimate the risk model found least risky (FNet, the template fit, the survey pipeline)
AUTO_ESTIMATES = ("fnet", "tpl", "pipe")
AUTO_SOURCES = ("model", *AUTO_ESTIMATES)

# is_qso_final: a person's verdict first, else FNet's p_qso against p_qso_min
MODEL_P_QSO_MIN = 0.5  # default: FNet's own call (its quasar classes together more probable than not)
NOT_QSO_ACTION = ACTION_BY_NAME["not_qso"].name


def is_qso_final(
    z_source: np.ndarray, spectral_type: np.ndarray, decision: np.ndarray, p_qso: np.ndarray,
    p_qso_min: float = MODEL_P_QSO_MIN,
) -> np.ndarray:
    """1 (a quasar), -1 (not a quasar) or 0 (not known) per row, as int16.

    Where a person or a consensus decided: a quasar spectral type -> 1; a
    "not a quasar" decision or a STAR / GALAXY type -> -1; anything else (a bad
    spectrum, no type) -> 0. An unresolved conflict -> 0. Where nobody decided
    (an `AUTO_SOURCES` source, whichever estimate gave the z): p_qso >=
    p_qso_min -> 1, p_qso <= 1 - p_qso_min -> -1, else (FNet not sure, or no
    class head: p_qso NaN) -> 0.
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
    out = np.where(np.isin(src, AUTO_SOURCES), model, np.where(src == "conflict", 0, person))
    return out.astype(np.int16)


def overlay_decisions(base: pd.DataFrame, decided: pd.DataFrame) -> pd.DataFrame:
    """`base` catalog rows (every spectrum, an automatic source) with the decided spectra replaced.

    `decided` holds one row per decided spectrum: object_id and any of z_final,
    z_source, quality, inspectors, n_decisions, spectral_type, issue_flags,
    decision, comment, decided_at. Its values win over `base`'s, except that
    a "conflict" row keeps `base`'s z_final (the automatic one: nothing is
    vetted yet). Columns `decided` lacks (risk, auto_accepted...) stay
    `base`'s. Object ids not in `base` are an error (a decision on a spectrum
    the catalog lacks).
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


def comment_of(decisions: list[Any]) -> str:
    """The comments of the decisions that make a verdict, as the catalog carries them.

    One decision: its comment as written. Several (inspectors, a resolution):
    each comment behind its author's name, "alice: CIV clear; bob: BAL?", so a
    reader of the catalog knows whose words they are.
    """
    said = [(d.inspector.name, d.comment.strip()) for d in decisions if d.comment and d.comment.strip()]
    if len(decisions) == 1:
        return said[0][1] if said else ""
    return "; ".join(f"{name}: {text}" for name, text in said)


def final_decisions(session: Any) -> pd.DataFrame:
    """One row per spectrum someone judged, from the database (`db.consensus.consensus`):

    object_id, z_final, z_source, quality, inspectors, n_decisions,
    spectral_type, decision, decided_at, comment, issue_flags -- ready for
    `overlay_decisions`. Verdict -> source: 'single' -> person; 'agree' (mean
    z and quality) or 'resolved' (the resolution's values) -> consensus;
    'conflict' -> conflict (z_final NaN here; `overlay_decisions` keeps the
    model's). n_decisions counts every deciding decision in the spectrum's
    history (corrections included, skips not). Skips alone do not make a row.
    comment (`comment_of`) and issue_flags (the union of the flags, names
    comma-separated) come from each inspector's latest judgement and the
    resolution, a conflict's included: what people noticed stays worth
    reading while they disagree on the z.
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
            "comment": comment_of(ds),
            "issue_flags": ",".join(flag_names(functools.reduce(operator.or_, (d.flags for d in ds), 0))),
        })  # fmt: skip
    cols = ["object_id", "z_final", "z_source", "quality", "inspectors", "n_decisions", "spectral_type",
            "decision", "decided_at", "comment", "issue_flags"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)
