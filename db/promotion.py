"""The model switch: the current model and its triage flags change together, in one transaction.

    # before: the new version's predictions loaded under its own id (inert while another is current)
    switch_model(s, version_id, flags_df, expected_predictions=len(pred), lock=lock)   # commits
    model_state(s)   # {"current": [id], "predictions": n, "flags": n, "flag_versions": [id]}

Why one transaction: the app shows the current model's z and queues by the flags. Made current in one
commit and given its predictions and flags in later ones, a kill in between left a current model with no
predictions (every spectrum at z = 0) and the old model's flags. Here a kill before the commit leaves the
old model current with its own flags and predictions; after it, the new one with all of its own.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.engine import run_write
from db.jobs import Lock, check_lock
from db.load import mark_current, triage_flags_writer
from db.schema import ModelVersion, Prediction, TriageFlag
from db.validate import DecisionError


class IncompletePredictions(DecisionError):
    """The version has fewer predictions than the switch was told to expect: it is not made current."""


def switch_model(session: Session, model_version_id: int, flags: pd.DataFrame, *,
                 expected_predictions: int | None = None, lock: Lock | None = None) -> int:
    """Make `model_version_id` current and replace the triage flags with `flags`, in one write transaction.

    `flags` as `db.load.load_triage_flags` takes them (their model_version_id the new version's).
    `expected_predictions`: the version must have at least this many predictions already loaded
    (`IncompletePredictions` otherwise, and nothing changes). `lock`: the job lock the caller holds
    (`db.jobs`); checked in the same transaction (`JobLockLost` if it was taken over). Commits;
    returns the flag rows written. Decisions are untouched: spectra people decided stay decided.
    """
    write_flags = triage_flags_writer(session, flags, replace=True)
    vid = int(model_version_id)

    def work() -> int:
        if lock is not None:
            check_lock(session, lock)
        if session.get(ModelVersion, vid) is None:
            raise DecisionError("model_version_id", vid, "is not a known model version")
        have = session.scalar(select(func.count()).select_from(Prediction).where(Prediction.model_version_id == vid))
        if expected_predictions is not None and (have or 0) < int(expected_predictions):
            raise IncompletePredictions("model_version_id", vid,
                                        f"has {have} predictions loaded, {expected_predictions} expected: not switched")
        n = write_flags()
        mark_current(session, vid)
        return n

    return run_write(session, work)


def model_state(session: Session) -> dict[str, Any]:
    """What the app will show: the current version(s), its prediction count, the flags and their versions.

    A consistent database has one current version, its predictions for every spectrum, and flags that
    all name it (or no flags)."""
    current = sorted(session.scalars(select(ModelVersion.id).where(ModelVersion.is_current)))
    n_pred = session.scalar(select(func.count()).select_from(Prediction)
                            .where(Prediction.model_version_id.in_(current))) if current else 0  # fmt: skip
    flag_versions = sorted(session.scalars(select(TriageFlag.model_version_id).distinct()),
                           key=lambda v: (v is None, v or 0))
    return {"current": current, "predictions": int(n_pred or 0),
            "flags": int(session.scalar(select(func.count()).select_from(TriageFlag)) or 0),
            "flag_versions": flag_versions}  # fmt: skip


__all__ = ["IncompletePredictions", "model_state", "switch_model"]
