"""Retrain FNet on the inspectors' decisions, register the new model version, evaluate, promote, roll back.

    result = retrain(store, db_url, promote="auto")   # -> RetrainResult (version id, metrics, promoted?)
    promote_version(store, db_url, version_id)        # re-predict, re-triage, switch (`inspector.pipeline.promote`)
    rollback(store, db_url, version_id)               # the same, to an earlier version

Training labels: the store's own (replay of the original training labels,
`inspector.training_set`) with the decided ones taking precedence on their
spectra (`training_labels`): a decided quasar's z, and for a model with a
class head the class people gave, so a "not a quasar" decision typed STAR or
GALAXY teaches the class head that class. The fixed
held-out split (`db.labels.is_held_out`, by object id) is never trained on:
its decided spectra ("held-out decided") and its store quasars ("mock test
split") are where old and new models are compared, with the same tables as
`inspector evaluate` (`model.evaluate.evaluation_tables`).

A retrain holds the database's model job lock (`db.jobs`) from start to end, its promotion included:
a second retrain or a promotion (CLI or app) is refused while it runs, so two never interleave.

Nothing reaches the database until training and evaluation have finished:
a failing (or cancelled) training leaves the current model, its weights and
the database as they were. The weights go beside the database
(`<db dir>/models/retrain-<time>.pt`).

Promotion rule (`promote="auto"`): the new model's acc@6000 on the held-out
decided spectra (on the mock test split if none are decided yet) is not
lower than the current model's by more than `AUTO_MAX_DROP` points.

Under torchrun (`model.distributed`) every rank reads the store and the decisions and trains its share
of each batch; rank 0 alone takes the job lock (the others start once it holds it), and writes the
weights, the model version and any promotion: the other ranks return None when training ends.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import distinct, func, select
from sqlalchemy.engine import make_url

from db.engine import make_engine, session_scope, upgrade
from db.jobs import Lock, hold_job_lock
from db.labels import decided_classes, decided_labels, held_out_rule, is_held_out
from db.load import add_model_version, current_model
from db.schema import ModelVersion, TriageFlag
from inspector.pipeline.promote import promote_version, rollback  # noqa: F401 (rollback: re-exported)
from inspector.store import open_store
from inspector.training_set import store_classes, store_redshifts, training_rows
from model import distributed
from model.classes import CLASSES, UNKNOWN, from_class_person, is_qso_class
from model.evaluate import evaluation_tables, tables_to_records

AUTO_MAX_DROP = 0.5  # points of acc@6000
RULE_METRIC = "acc@6000"
PROMOTE_MODES = ("auto", "never", "always")


@dataclass
class RetrainResult:
    version_id: int
    parent_id: int | None
    path: Path
    label_count: int
    n_decided_labels: int
    metrics: dict[str, Any]
    promoted: bool
    reason: str
    history: list[dict[str, float]] = field(default_factory=list)


def models_dir(db_url: str, fallback: Path) -> Path:
    """Where model weights go: `models/` beside a SQLite database file, else `fallback`."""
    u = make_url(db_url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(u.database).resolve().parent / "models"
    return Path(fallback)


def _predict(model, flux, rows: np.ndarray) -> np.ndarray:
    from model.predict import predict_store

    if rows.size == 0:
        return np.zeros(0)
    return np.concatenate([b.z for b in predict_store(model, flux, rows, batch_size=256, n_alt=0)])


def _evaluate(model, flux, rows: np.ndarray, z_true: np.ndarray) -> dict[str, Any]:
    """The `inspector evaluate` tables (overall and by z) on these rows, as JSON-ready records."""
    if rows.size == 0:
        return {"n": 0}
    tables = evaluation_tables(_predict(model, flux, rows), z_true)
    overall = tables["overall"].iloc[0]
    out = {"n": int(rows.size), **{k: float(overall[k]) for k in overall.index if str(k).startswith("acc@")}}
    out["median_abs_dv"] = float(overall.get("median_abs_dv", np.nan))
    out["tables"] = tables_to_records(tables)
    return out


def training_labels(index: pd.DataFrame, labels: pd.DataFrame, classes: pd.DataFrame, *, replay: bool = True,
                    with_classes: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z per store row, class index per store row, rows of the decided quasar labels).

    Replay first (the store's own training rows and labels, `inspector.training_set`), then the people's
    verdicts over them: a decided quasar's z (`db.labels.decided_labels`) and, for a class head, the class
    of every verdict that names one (`db.labels.decided_classes`, CLASS_PERSON codes through
    `model.classes.from_class_person`). A spectrum people called not a quasar takes the z they gave;
    without one it keeps the replay's z only where the replay too had it as a non-quasar (a quasar z they
    contradicted goes), and when they named no type it loses its replay class: nothing it is taught
    contradicts them. A model without a class head learns quasar z's only. NaN z / `UNKNOWN` class where
    a row has no label.
    """
    n = len(index)
    z_all = np.full(n, np.nan)
    cls_all = np.full(n, UNKNOWN, dtype=np.int64)
    if replay:
        rr = training_rows(index, with_classes=with_classes)
        replay_cls = store_classes(index)
        z_all[rr] = store_redshifts(index, replay_cls if with_classes else None)[rr]
        if with_classes:
            cls_all[rr] = replay_cls[rr]
    row_of = pd.Series(np.arange(n), index=index["object_id"].astype(str).to_numpy())
    labels = labels[labels.index.isin(row_of.index)]
    dec_rows = row_of.loc[labels.index].to_numpy(np.int64)
    z_all[dec_rows] = labels["z"].to_numpy(np.float64)
    classes = classes[classes.index.isin(row_of.index)]
    said = from_class_person(classes["class_person"].to_numpy())
    rows = row_of.loc[classes.index].to_numpy(np.int64)
    not_qso = ~is_qso_class(said)
    their_z = classes["z"].to_numpy(np.float64)
    store_agrees = (cls_all[rows] != UNKNOWN) & ~is_qso_class(cls_all[rows])  # the replay has it as a non-quasar
    z_not_qso = np.where(np.isfinite(their_z), their_z, np.where(store_agrees, z_all[rows], np.nan))
    # a model without a class head learns quasar redshifts only (as `training_set.training_rows`)
    z_all[rows[not_qso]] = z_not_qso[not_qso] if with_classes else np.nan
    if with_classes:
        cls_all[rows] = said
    return z_all, cls_all, dec_rows


def class_counts(cls: np.ndarray) -> dict[str, int]:
    """Training rows per class name (and "unknown": rows taught only a redshift)."""
    return {**{name: int((cls == i).sum()) for i, name in enumerate(CLASSES)}, "unknown": int((cls == UNKNOWN).sum())}


def decide_promotion(metrics: dict[str, Any], mode: str) -> tuple[bool, str]:
    if mode not in PROMOTE_MODES:
        raise ValueError(f"promote must be one of {PROMOTE_MODES}, not {mode!r}")
    if mode == "never":
        return False, "promotion not asked for (--promote never)"
    if mode == "always":
        return True, "promotion asked for (--promote always)"
    where = "held_out_decided" if metrics["before"]["held_out_decided"].get("n", 0) else "mock_test"
    old = metrics["before"][where].get(RULE_METRIC)
    new = metrics["after"][where].get(RULE_METRIC)
    if old is None or new is None:
        return False, f"no {where} spectra to compare on: not promoted"
    ok = new >= old - AUTO_MAX_DROP
    return ok, (
        f"{RULE_METRIC} on {where}: {old:.1f} -> {new:.1f} ({'not worse' if ok else 'worse'} by the rule: "
        f"drop <= {AUTO_MAX_DROP} points)"
    )


def retrain(
    store: Path,
    db_url: str,
    *,
    from_scratch: bool = False,
    epochs: int = 3,
    min_quality: float = 3,
    promote: str = "auto",
    replay: bool = True,
    config: Any = None,
    batch_size: int = 64,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    callback: Callable[[int, dict[str, float], Any], Any] | None = None,
    progress: bool = False,
    out_dir: Path | None = None,
) -> RetrainResult | None:
    """Train a new model version on the decisions (see the module docstring); register it; maybe promote it.

    config: an `FNetConfig` for `from_scratch` (default `FNetConfig.small()`, with a class head if the current
    model has one).
    callback(epoch, record, model): as `model.train.train` (return True to stop; an exception aborts and
    leaves everything as it was). Raises `db.jobs.JobLockHeld` (before any work) while another model job
    runs. Returns None on a torchrun rank other than 0 (see the module docstring).
    """
    from model.predict import resolve_device

    if promote not in PROMOTE_MODES:
        raise ValueError(f"promote must be one of {PROMOTE_MODES}, not {promote!r}")
    ddp = distributed.setup(resolve_device(device))[0] if distributed.launched() else None
    with ExitStack() as stack:

        def take_lock() -> Lock:
            upgrade(db_url)  # the lock table comes with revision 0008
            return stack.enter_context(hold_job_lock(db_url, "retrain"))

        lock = distributed.from_main(take_lock, ddp, share=False)  # ranks > 0: None, and they write nothing
        return _retrain(
            store, db_url, lock, from_scratch=from_scratch, epochs=epochs, min_quality=min_quality, promote=promote,
            replay=replay, config=config, batch_size=batch_size, lr=lr, seed=seed, device=device,
            callback=callback, progress=progress, out_dir=out_dir,
        )  # fmt: skip


def _retrain(store: Path, db_url: str, lock: Lock | None, *, from_scratch: bool, epochs: int, min_quality: float,
             promote: str, replay: bool, config: Any, batch_size: int, lr: float | None, seed: int, device: str,
             callback: Callable[[int, dict[str, float], Any], Any] | None, progress: bool,
             out_dir: Path | None) -> RetrainResult | None:
    """`retrain`'s work, under the model job lock `lock` (its promotion included; None on a torchrun rank > 0)."""
    from model.checkpoint import file_sha1, load_checkpoint, save_checkpoint
    from model.fnet import FNetConfig
    from model.train import train

    st = open_store(store)
    index = st.index
    ids = index["object_id"].astype(str).to_numpy()
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            cur = current_model(s)
            if cur is None:
                raise ValueError("no current model in the database: run `inspector triage --db` or `demo` first")
            cur_id, cur_sha, cur_path, cur_name = cur.id, cur.sha1, cur.path, cur.name
            labels = decided_labels(s, min_quality=min_quality)
            classes = decided_classes(s, min_quality=min_quality)
    finally:
        engine.dispose()
    if not cur_path or not Path(cur_path).exists():
        raise FileNotFoundError(f"the current model's weights ({cur_path}) are missing")

    old_model, _ = load_checkpoint(cur_path)
    if from_scratch:
        cfg = config if config is not None else FNetConfig.small(n_classes=old_model.cfg.n_classes, class_net=old_model.cfg.class_net)
        start = None
    else:
        cfg = old_model.cfg
        start, _ = load_checkpoint(cur_path)
    with_classes = cfg.n_classes > 0
    z_all, cls_all, dec_rows = training_labels(index, labels, classes, replay=replay, with_classes=with_classes)
    held = is_held_out(ids)
    dec_mask = np.zeros(len(index), bool)
    dec_mask[dec_rows] = True
    labelled = np.isfinite(z_all) | (cls_all != UNKNOWN) if with_classes else np.isfinite(z_all)
    train_rows = np.flatnonzero(labelled & ~held)
    held_dec_rows = np.flatnonzero(dec_mask & held)
    store_z = pd.to_numeric(index["z"], errors="coerce").to_numpy(np.float64)
    is_qso = index["is_qso"].astype("boolean").fillna(False).to_numpy(bool) if "is_qso" in index else np.zeros(len(index), bool)
    mock_test_rows = np.flatnonzero(held & is_qso & np.isfinite(store_z) & (store_z >= 0))
    if train_rows.size < 2:
        raise ValueError(f"{train_rows.size} labelled spectra outside the held-out split; need at least 2")

    lr = lr if lr is not None else (1e-3 if from_scratch else 2e-4)
    val_rows = held_dec_rows if held_dec_rows.size else (mock_test_rows if mock_test_rows.size else None)
    val_z = z_all.copy()
    val_z[mock_test_rows] = np.where(np.isfinite(val_z[mock_test_rows]), val_z[mock_test_rows], store_z[mock_test_rows])
    model, history = train(
        cfg, st.flux, z_all, st.flux if val_rows is not None else None, val_z if val_rows is not None else None,
        train_rows=train_rows, val_rows=val_rows, train_ids=ids, epochs=epochs, batch_size=batch_size, lr=lr,
        seed=seed, device=device, progress=progress, model=start, callback=callback,
        train_classes=cls_all if with_classes else None,
        val_classes=cls_all if with_classes and val_rows is not None else None,
        provenance={"store": str(Path(store).resolve()), "retrain": True, "parent_sha1": cur_sha},
    )  # fmt: skip
    if not distributed.is_main():
        return None
    model.cpu().eval()
    old_model.cpu().eval()

    metrics: dict[str, Any] = {"before": {}, "after": {}}
    for key, m in (("before", old_model), ("after", model)):
        metrics[key]["held_out_decided"] = _evaluate(m, st.flux, held_dec_rows, z_all[held_dec_rows])
        metrics[key]["mock_test"] = _evaluate(m, st.flux, mock_test_rows, store_z[mock_test_rows])
    metrics["held_out_rule"] = held_out_rule()
    metrics["labels"] = {
        "n_decided": int(labels.shape[0]), "n_decided_train": int(np.sum(dec_mask & ~held)),
        "n_held_out_decided": int(held_dec_rows.size), "n_mock_test": int(mock_test_rows.size),
        "n_train": int(train_rows.size), "min_quality": float(min_quality), "replay": bool(replay),
        "from_scratch": bool(from_scratch), "parent": cur_name, "n_decided_classes": len(classes),
        "classes": class_counts(cls_all[train_rows]) if with_classes else None,
    }  # fmt: skip
    promoted, reason = decide_promotion(metrics, promote)
    metrics["promotion"] = {"mode": promote, "rule": f"{RULE_METRIC} drop <= {AUTO_MAX_DROP}", "reason": reason}

    mdir = Path(out_dir) if out_dir is not None else models_dir(db_url, Path(store) / "models")
    mdir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = (mdir / f"retrain-{stamp}.pt").resolve()
    save_checkpoint(path, model, metrics=metrics, history=history)
    sha = file_sha1(path)
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            mv = add_model_version(
                s, name=path.stem, sha1=sha, parent_sha1=cur_sha, config=cfg.to_dict(),
                data_hash=model.provenance.get("data_hash"), label_count=int(train_rows.size), metrics=metrics,
                path=str(path),
            )  # fmt: skip
            vid = mv.id
    finally:
        engine.dispose()
    if promoted:
        promote_version(store, db_url, vid, lock=lock)
    return RetrainResult(vid, cur_id, path, int(train_rows.size), int(labels.shape[0]), metrics, promoted, reason,
                         history)  # fmt: skip


def versions_frame(db_url: str) -> pd.DataFrame:
    """Every model version: id, name, parent_id, current, created, label_count, acc@6000 before/after, path."""
    def acc(m: dict | None, when: str, where: str) -> float | None:
        try:
            return (m or {})[when][where].get(RULE_METRIC)
        except (KeyError, AttributeError, TypeError):
            return None

    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            rows = [
                {
                    "id": mv.id, "name": mv.name, "parent_id": mv.parent_id, "current": bool(mv.is_current),
                    "created_at": mv.created_at, "label_count": mv.label_count,
                    "before_held_out": acc(mv.metrics, "before", "held_out_decided"),
                    "after_held_out": acc(mv.metrics, "after", "held_out_decided"),
                    "before_mock_test": acc(mv.metrics, "before", "mock_test"),
                    "after_mock_test": acc(mv.metrics, "after", "mock_test"), "path": mv.path,
                }
                for mv in s.scalars(select(ModelVersion).order_by(ModelVersion.id))
            ]  # fmt: skip
    finally:
        engine.dispose()
    return pd.DataFrame(rows)


def queue_size(db_url: str) -> int:
    """Undecided flagged spectra (the queue)."""
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            return int(s.scalar(select(func.count(distinct(TriageFlag.spectrum_id))).where(TriageFlag.n_inspectors == 0)))
    finally:
        engine.dispose()
