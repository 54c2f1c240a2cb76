"""A baseline run: the QuasarNET-style line finder's Z_QN for every spectrum of a store.

    write_baseline_predictions(store, model)        # STORE/predictions/quasarnet.parquet

Columns: row, object_id, z_qn (-1 = failure, as DR16Q), z_qn_conf, z_qn_line, is_qso_qn, qn_failed,
bal_prob, per line (lya civ ciii mgii hb ha) qn_z_<line> and qn_conf_<line>, and, when the model
was trained on this store, split (train, val, or test = never seen in training). Where a store has
no survey catalog, this run plays Z_QN's part in triage and in the risk model (`inspector.estimates`).

On a Dask cluster (`scheduler=`) row ranges aligned on the batch size are predicted by the workers
(`qn_rows`, opening the store by path); the batches, hence the numbers, are the local run's.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from inspector.cluster import CHUNK_ROWS, Scheduler, cached, client_for, map_ordered, row_chunks, torch_threads
from inspector.store import open_arrays, open_store
from inspector.store.files import atomic_path, baseline_path


def fingerprint(object_ids) -> str:
    """sha256 of the store's object ids in row order: ties a checkpoint's split to the store it was made on."""
    h = hashlib.sha256()
    for oid in object_ids:
        h.update(str(oid).encode())
        h.update(b"\n")
    return h.hexdigest()


def split_labels(extra: dict, st) -> np.ndarray | None:
    """train/val/test per store row when the checkpoint was trained on this store (its first rows unchanged)."""
    n0 = extra.get("store_rows")
    if n0 is None or "train_rows" not in extra or n0 > len(st):
        return None
    if extra.get("store_fingerprint") != fingerprint(st.index["object_id"].iloc[:n0]):
        return None
    lab = np.full(len(st), "test", dtype=object)  # rows appended after training are unseen too
    lab[np.asarray(extra["train_rows"], dtype=np.int64)] = "train"
    lab[np.asarray(extra["val_rows"], dtype=np.int64)] = "val"
    return lab


def _load(model_path: str) -> Any:
    from model.quasarnet_train import load_quasarnet

    return cached(model_path, lambda: load_quasarnet(model_path)[0], "quasarnet")


def qn_rows(store_path: str, model_path: str, a: int, b: int, batch_size: int,
            threads: int | None = None) -> list[tuple[np.ndarray, Any]]:
    """(rows, predictions) per batch of store rows a..b-1: a Dask task's work (top level, the store and
    the model opened by path; the model once per worker process)."""
    from model.quasarnet_train import iter_predict

    torch_threads(threads)
    flux, ivar = open_arrays(store_path)
    return list(iter_predict(_load(model_path), flux, ivar, rows=np.arange(a, b), batch_size=batch_size))


def write_baseline_predictions(
    store: Path, model_path: Path, out: Path | None = None, batch_size: int = 256, progress: bool = False,
    scheduler: Scheduler | None = None, chunk_rows: int = CHUNK_ROWS, threads: int | None = None,
) -> dict[str, Any]:
    """Predict Z_QN for every stored spectrum, streamed in batches to a parquet file (written whole or not
    at all). Returns {"path", "n", "n_failed", "seconds", "split"} (split: whether a split column was written).
    `scheduler` (a Dask address, Client or cluster): the batches are predicted on its workers, torch on
    `threads` threads there (default: the worker's own, 1 under a Dask nanny)."""
    from model.quasarnet_train import iter_predict, load_quasarnet, predict_quasarnet

    model, ckpt = load_quasarnet(model_path)
    st = open_store(store)
    out = Path(out) if out is not None else baseline_path(st.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ids = st.index["object_id"].astype(str).to_numpy() if "object_id" in st.index else None
    split = split_labels(ckpt.get("extra", {}), st)
    writer = None
    n_failed = n_done = 0
    t0 = time.perf_counter()
    bar = tqdm(total=len(st), disable=not progress, unit="spec", dynamic_ncols=True)
    with client_for(scheduler) as client, atomic_path(out) as tmp:  # a killed run leaves the previous file whole
        if client is None:
            batches = iter_predict(model, st.flux, st.ivar, batch_size=batch_size)
        else:
            where, mp = str(st.path.absolute()), str(Path(model_path).absolute())
            tasks = [(where, mp, a, b, batch_size, threads) for a, b in row_chunks(0, len(st), chunk_rows, batch_size)]
            batches = (rb for chunk in map_ordered(client, qn_rows, tasks, "quasarnet-baseline") for rb in chunk)
        try:
            for rows, df in batches:
                df.insert(0, "row", rows.astype(np.int64))
                df.insert(1, "object_id", ids[rows] if ids is not None else rows.astype(str))
                df["z_qn_line"] = df["z_qn_line"].astype(str)
                if split is not None:
                    df["split"] = split[rows]
                table = pa.Table.from_pandas(df, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                n_failed += int(df["qn_failed"].sum())
                n_done += len(df)
                bar.update(len(df))
            if writer is None:  # empty store: write the empty table with the right columns
                df = predict_quasarnet(model, np.zeros((0, st.flux.shape[1]), np.float32),
                                       np.zeros((0, st.flux.shape[1]), np.float32))  # fmt: skip
                df.insert(0, "row", np.zeros(0, np.int64))
                df.insert(1, "object_id", np.zeros(0, dtype=object))
                df["z_qn_line"] = df["z_qn_line"].astype(str)
                pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
    return {"path": out, "n": n_done, "n_failed": n_failed, "seconds": time.perf_counter() - t0,
            "split": split is not None}  # fmt: skip
