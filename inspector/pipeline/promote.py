"""Promote (or roll back to) a model version: re-predict, re-triage, then switch in one transaction.

    counts = promote_version(store, db_url, version_id)            # takes the model job lock itself
    counts = promote_version(store, db_url, vid, lock=lock)        # inside a job that holds it (retrain)
    promote_version(..., on_step=print)                            # "locked", "predicted", ..., "switched"

Why in this order: everything slow happens while the old version stays current, and leaves nothing a
person can see half-done. The predictions go to STORE/predictions/<model>.parquet through a `.tmp`
sibling and a rename; the triage to STORE/triage/; the database gets the version's predictions under
its own id (inert: the app shows the current version's). Only then does one transaction make it current
and swap in its flags (`db.promotion.switch_model`). So a process killed at any point leaves one current
model with all its predictions and its own flags: the old one before the switch's commit, the new one
after. A rerun reuses a whole prediction file of the same weights (or writes it again), removes the
`.tmp` files its own outputs left, and reloads the version's rows in place.

Two jobs never interleave: the whole promotion runs under the database's model job lock (`db.jobs`);
another retrain or promotion, from the CLI or the app, is refused while this one is alive.

`FNET_PROMOTE_HOOK=<step>[:pause]` (tests, `bench/soak.py`): at that step the process kills itself with
SIGKILL, or prints "paused at <step>" and waits to be killed from outside: the crash tests need a real
kill -9 at each named step, not an exception that cleanup code could catch.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from db.engine import make_engine, session_scope, upgrade
from db.jobs import JobLockLost, Lock, hold_job_lock
from db.schema import ModelVersion
from inspector.pipeline.predict import write_predictions
from inspector.pipeline.triage import (
    choose_policy,
    run_triage,
    stage_into_db,
    switch_into_db,
)
from inspector.store import open_store
from inspector.store.files import (
    predictions_path,
    read_sidecar,
    remove_stale_tmp,
    scores_path,
    sidecar_path,
    triage_path,
)

STEPS = ("locked", "predicted", "triaged", "loaded", "switched")
HOOK_ENV = "FNET_PROMOTE_HOOK"


def reach(step: str, on_step: Callable[[str], None] | None = None) -> None:
    """Report `step` and obey the crash hook (`HOOK_ENV`, see the module docstring) if it names it."""
    if on_step is not None:
        on_step(step)
    name, _, action = os.environ.get(HOOK_ENV, "").partition(":")
    if name != step:
        return
    if action == "pause":
        print(f"paused at {step}", flush=True)
        while True:
            time.sleep(60)
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def own_outputs(store: Path, model_path: Path) -> list[Path]:
    """The files under STORE/ a promotion of this model writes (its prediction run and triage)."""
    pred = predictions_path(store, model_path)
    tri = triage_path(store, pred)
    return [pred, sidecar_path(pred), tri, sidecar_path(tri), scores_path(tri)]


def reusable_predictions(store: Path, model_path: Path, sha1: str) -> Path | None:
    """The model's prediction run if it is whole and current: written by these weights (sidecar and
    every row), one row per stored spectrum in store order. None: predict again."""
    out = predictions_path(store, model_path)
    side = read_sidecar(out) or {}
    if not out.exists() or (side.get("model") or {}).get("sha1") != sha1:
        return None
    try:
        df = pd.read_parquet(out, columns=["row", "object_id", "model_sha1"])
    except Exception:  # noqa: BLE001 - an unreadable file is simply predicted again
        return None
    ids = open_store(store).index["object_id"].astype(str).to_numpy()
    whole = (
        len(df) == len(ids) and np.array_equal(df["row"].to_numpy(), np.arange(len(ids)))
        and np.array_equal(df["object_id"].astype(str).to_numpy(), ids) and set(df["model_sha1"]) <= {sha1}
    )  # fmt: skip
    return out if whole else None


def _version(db_url: str, version_id: int) -> tuple[Path, str]:
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            mv = s.get(ModelVersion, int(version_id))
            if mv is None:
                raise ValueError(f"no model version {version_id}")
            path, sha = mv.path, mv.sha1
    finally:
        engine.dispose()
    if not path or not Path(path).exists():
        raise FileNotFoundError(f"model version {version_id}: weights {path} are missing")
    return Path(path), sha


def promote_version(store: Path, db_url: str, version_id: int, *, progress: bool = False,
                    on_step: Callable[[str], None] | None = None, lock: Lock | None = None) -> dict[str, int]:
    """Make a model version current: re-predict the store with it, re-triage, switch (decisions kept).

    Takes the model job lock (`db.jobs.JobLockHeld` if another job holds it) unless `lock`, one the
    caller holds, is given. `on_step(name)` is called at each of `STEPS`. The re-triage queues by the
    default leak target where the version has a risk model (the shipped one does; a freshly retrained
    one has none until `inspector risk fit` describes it), else by the rules. Returns counts: spectra,
    predictions, flags, model_version_id."""
    upgrade(db_url)  # the lock table comes with revision 0008
    path, sha = _version(db_url, version_id)
    if lock is None:
        with hold_job_lock(db_url, f"promote model version {int(version_id)}") as held:
            return _promote(store, db_url, int(version_id), path, sha, held, progress, on_step)
    return _promote(store, db_url, int(version_id), path, sha, lock, progress, on_step)


def _promote(store: Path, db_url: str, version_id: int, path: Path, sha: str, lock: Lock, progress: bool,
             on_step: Callable[[str], None] | None) -> dict[str, int]:
    reach("locked", on_step)
    remove_stale_tmp(own_outputs(store, path))  # a run killed mid-write left them; no one else writes these
    pred = reusable_predictions(store, path, sha)
    if pred is None:
        side = write_predictions(store, path, progress=progress)
        if side["model"]["sha1"] != sha:
            raise ValueError(f"model version {version_id}: {path} is not the registered file (sha1 differs)")
        pred = Path(side["predictions"])
    reach("predicted", on_step)
    policy, _ = choose_policy(None, None, False, store, pred)
    flags, out, meta = run_triage(store, pred, policy=policy)
    reach("triaged", on_step)
    staged = stage_into_db(db_url, store, pred, flags, meta, scores=scores_path(out))
    if staged.model_version_id != version_id:
        raise RuntimeError(f"the predictions of {pred} belong to version {staged.model_version_id}, not {version_id}")
    reach("loaded", on_step)
    if lock.lost.is_set():
        raise JobLockLost(f"the model lock of {lock.job!r} was taken over: nothing was switched")
    counts = switch_into_db(staged, lock)
    reach("switched", on_step)
    return counts


rollback = promote_version  # any earlier version can be made current again the same way

__all__ = ["HOOK_ENV", "STEPS", "own_outputs", "promote_version", "reach", "reusable_predictions", "rollback"]
