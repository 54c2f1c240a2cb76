"""A prediction run over a store: FNet's z, uncertainty, alternatives and class for every spectrum, the
template fit beside them, written as one Parquet file with a JSON sidecar of provenance.

    side = write_predictions(store, model_path)      # -> STORE/predictions/<model-stem>.parquet (+ .json)

`inspector predict` is a thin command over this; retraining (`inspector.pipeline.retrain.promote_version`), the demo
and the app's test helpers call it directly.

The class columns (`CLASS_COLUMNS`: fnet_class, p_qso and one probability per class of `model.classes`) are
written for every model and are null where the model has no class head (the published network and models
trained before it had one), so every predictions file has the same columns and a reader never has to ask
which kind of model made it.

On a Dask cluster (`scheduler=`) FNet, the template fit and the baseline run on the cluster's workers in
chunks of rows aligned on the batch size (`fnet_rows` opens the store and the model by path); this
process gathers the chunks in order and writes, so the file holds the numbers a local run writes.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from inspector.cluster import (
    CHUNK_ROWS,
    Scheduler,
    cached,
    client_for,
    describe,
    map_ordered,
    row_chunks,
    torch_threads,
)
from inspector.estimates import read_baseline
from inspector.pipeline.baseline import write_baseline_predictions
from inspector.store import open_arrays, open_store
from inspector.store.files import (
    atomic_path,
    baseline_path,
    predictions_path,
    sidecar_path,
    template_cache_path,
    write_json,
)
from model.assets import BASELINE_MODEL
from model.classes import CLASSES, PROB_COLUMNS, QSO_CLASSES, p_qso
from model.template_fit import TPL_COLUMNS, settings_key

N_ALT = 3
CLASS_COLUMNS: tuple[str, ...] = ("fnet_class", "p_qso", *PROB_COLUMNS)


def prediction_schema():
    """The Arrow schema of a predictions file (one row per stored spectrum)."""
    fields = [
        ("row", pa.int64()),
        ("object_id", pa.string()),
        ("z_fnet", pa.float64()),
        ("z_fnet_err", pa.float64()),
        ("p_fnet", pa.float64()),  # posterior mass within +-3 bins of z_fnet (bins head), else null
    ]
    for k in range(1, N_ALT + 1):
        fields += [(f"z_alt{k}", pa.float64()), (f"p_alt{k}", pa.float64())]
    fields += [(c, pa.string() if c == "fnet_class" else pa.float64()) for c in CLASS_COLUMNS]
    fields.append(("model_sha1", pa.string()))
    kinds = {"tpl_npix": pa.int64(), "tpl_template": pa.string()}
    fields += [(c, kinds.get(c, pa.float64())) for c in TPL_COLUMNS]  # null where no template fit was run
    return pa.schema(fields)


def class_columns(class_prob: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
    """The `CLASS_COLUMNS` of one batch from the class head's (n, len(CLASSES)) probabilities; nulls
    (None / NaN) for a model without a class head (`class_prob` None)."""
    if class_prob is None:
        out = {c: np.full(n, np.nan) for c in CLASS_COLUMNS}
        out["fnet_class"] = np.full(n, None, dtype=object)
        return out
    prob = np.asarray(class_prob, dtype=np.float64)
    if prob.shape != (n, len(CLASSES)):
        raise ValueError(f"class probabilities of shape {prob.shape}, expected ({n}, {len(CLASSES)})")
    out: dict[str, np.ndarray] = {"fnet_class": np.asarray(CLASSES, dtype=object)[np.argmax(prob, axis=1)],
                                  "p_qso": p_qso(prob)}  # fmt: skip
    for i, c in enumerate(PROB_COLUMNS):
        out[c] = prob[:, i]
    return out


def column_notes(method: str, mc_samples: int) -> dict[str, str]:
    """What each column of a predictions file means (the sidecar's "columns")."""
    return {
        "z_fnet_err": {
            "posterior": "half the 68% interval of the posterior over log(1+z), grown around its peak",
            "mc_dropout": f"standard deviation over {mc_samples} dropout passes",
            "none": "null: a regression model without dropout gives no uncertainty",
        }[method],
        "p_fnet": "posterior mass within +-3 bins of z_fnet (bins head only)",
        "z_altK/p_altK": "next best local maxima of the posterior, >= 6000 km/s apart, with their mass",
        "fnet_class": f"FNet's most probable class, one of {', '.join(CLASSES)}; null: the model has no class head",
        "p_qso": f"probability that the spectrum is a quasar of any kind ({' + '.join(QSO_CLASSES)}); "
                 "null without a class head",
        "p_cls_<class>": "FNet's probability of each class (they sum to 1); null without a class head",
        "z_tpl": "template-fit redshift (redrock QSO eigenspectra + Legendre terms, chi2 scan); null if not run",
        "z_tpl_err": "its 1-sigma error from the chi2 curvature",
        "tpl_dchi2": "chi2 of the next minimum >= 3000 km/s away minus the best (like redrock's DELTACHI2)",
        "tpl_chi2/tpl_npix": "best chi2 and the number of pixels fitted",
        "tpl_template": "LOZ or HIZ eigenspectra",
        "z_tpl_altK/tpl_dchi2_altK": "next two chi2 minima (>= 3000 km/s apart) and their chi2 above the best",
    }


def _fnet_columns(b: Any) -> dict[str, np.ndarray]:
    """The model's own columns of one `PredictionBatch` (not row, object_id, model_sha1, the template fit)."""
    cols: dict[str, Any] = {"z_fnet": b.z, "z_fnet_err": b.z_err, "p_fnet": b.alternatives.p_z}
    for k in range(N_ALT):
        cols[f"z_alt{k + 1}"] = b.alternatives.z[:, k]
        cols[f"p_alt{k + 1}"] = b.alternatives.p[:, k]
    cols.update(class_columns(b.class_prob, b.rows.size))
    return cols


def _load_fnet(model_path: str, device: str) -> Any:
    from model.predict import resolve_device
    from model.train import load_checkpoint

    return cached(model_path, lambda: load_checkpoint(model_path, map_location=resolve_device(device))[0], "fnet",
                  device)


def fnet_rows(store_path: str, model_path: str, device: str, a: int, b: int, batch_size: int,
              mc_samples: int, threads: int | None = None) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(rows, `_fnet_columns`) per batch of store rows a..b-1: a Dask task's work (top level, the store and
    the model opened by path, the model once per worker process). `a` must be a multiple of the batch size,
    so the batches, hence the numbers, are those of a local run on as many torch threads (`threads`), the
    dropout passes' masks included (seeded by the batch's place in the store)."""
    from model.predict import predict_store

    torch_threads(threads)
    flux, _ = open_arrays(store_path)
    model = _load_fnet(model_path, device)
    return [(pb.rows, _fnet_columns(pb)) for pb in predict_store(model, flux, rows=np.arange(a, b),
                                                                 batch_size=batch_size, mc_samples=mc_samples,
                                                                 n_alt=N_ALT, seed_offset=a)]


def write_predictions(
    store_path: Path,
    model_path: Path,
    out: Path | None = None,
    batch_size: int = 128,
    mc_samples: int | None = None,
    device: str = "auto",
    progress: bool = False,
    template: bool = True,
    template_processes: int | None = None,
    baseline: bool = True,
    scheduler: Scheduler | None = None,
    chunk_rows: int = CHUNK_ROWS,
    threads: int | None = None,
) -> dict[str, Any]:
    """Predict every stored spectrum; write the Parquet file and its JSON sidecar; return the sidecar dict.

    `baseline`: where the store has no catalog Z_QN, also run the project's QuasarNET-style baseline
    (STORE/predictions/quasarnet.parquet, kept while it covers the store) so that its Z_QN plays DR16Q's
    Z_QN in triage and in the risk model.
    `template`: also store the template-fit redshift (Z_TPL, its error, delta chi2, two more candidates)
    of every spectrum, from `inspector.pipeline.template` (fitted once per store and reused).
    `scheduler` (a Dask address, Client or cluster): FNet, the template fit and the baseline run on its
    workers, `chunk_rows` rows per task, torch on `threads` threads there (default: the worker's, 1 under a
    Dask nanny); the store and the model must be at the same paths there."""
    from model.checkpoint import file_sha1, git_revision
    from model.predict import predict_store, resolve_device, uncertainty_method
    from model.train import load_checkpoint

    st = open_store(store_path)
    dev = resolve_device(device)
    model, meta = load_checkpoint(model_path, map_location=dev)
    sha = file_sha1(model_path)
    if mc_samples is None:
        mc_samples = 20 if model.cfg.dropout > 0 else 0
    method = uncertainty_method(model, mc_samples)
    out = Path(out) if out is not None else predictions_path(st.path, model_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    schema = prediction_schema()
    oid = st.index["object_id"].astype(str).to_numpy()
    n = len(st)
    with client_for(scheduler) as client:
        tpl = None
        t_tpl = 0.0
        if template:
            from inspector.pipeline.template import template_fits

            t0 = time.perf_counter()
            tpl = template_fits(st.path, processes=template_processes, progress=progress, scheduler=client,
                                chunk_rows=chunk_rows)
            t_tpl = time.perf_counter() - t0
        tpl_cols = None if tpl is None else {c: tpl[c].to_numpy() for c in TPL_COLUMNS}
        t0 = time.perf_counter()
        if client is None:
            batches: Any = ((pb.rows, _fnet_columns(pb)) for pb in predict_store(
                model, st.flux, batch_size=batch_size, mc_samples=mc_samples, n_alt=N_ALT))
        else:
            where, mp = str(st.path.absolute()), str(Path(model_path).absolute())
            tasks = [(where, mp, device, a, b, batch_size, mc_samples, threads)
                     for a, b in row_chunks(0, n, chunk_rows, batch_size)]
            batches = (rc for chunk in map_ordered(client, fnet_rows, tasks, "fnet-predict") for rc in chunk)
        bar = tqdm(total=n, disable=not progress, unit="spectrum", dynamic_ncols=True)
        with atomic_path(out) as tmp:  # a killed run leaves the previous run whole
            try:
                with pq.ParquetWriter(tmp, schema) as w:
                    for rows, cols in batches:
                        cols.update({"row": rows, "object_id": oid[rows], "model_sha1": np.full(rows.size, sha)})
                        for c in TPL_COLUMNS:
                            cols[c] = tpl_cols[c][rows] if tpl_cols is not None else np.full(rows.size, None)
                        arrays = [
                            pa.array(cols[f.name], type=f.type, from_pandas=True) for f in schema
                        ]  # NaN -> null for the float columns
                        w.write_table(pa.Table.from_arrays(arrays, schema=schema))
                        bar.update(rows.size)
                    if n == 0:
                        w.write_table(schema.empty_table())
            finally:
                bar.close()
        seconds = time.perf_counter() - t0
        base = ensure_baseline(st, client, chunk_rows, threads) if baseline else None
        ran_on = describe(client) if client is not None else None
    side = {
        "predictions": str(out),
        "store": str(st.path.resolve()),
        "n_spectra": n,
        "model": {
            "path": str(Path(model_path).resolve()),
            "sha1": sha,
            "config": model.cfg.to_dict(),
            "label_scaling": meta.get("label_scaling"),
            "provenance": meta.get("provenance", {}),
            "metrics": meta.get("metrics", {}),
            "history": meta.get("history", []),
        },
        "uncertainty": {"method": method, "mc_samples": mc_samples if method == "mc_dropout" else 0},
        "classes": list(CLASSES) if model.cfg.n_classes else None,  # None: no class head (class columns null)
        "columns": column_notes(method, mc_samples),
        "template_fit": None if tpl is None else {"cache": str(template_cache_path(st.path)), "seconds": t_tpl,
                                                  "settings": settings_key()},
        "baseline": base,
        "predicted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "predict_seconds": seconds,
        "device": str(dev),
        "dask": ran_on,
        "code_git": git_revision(),
    }
    write_json(sidecar_path(out), side)
    return side


def ensure_baseline(st, scheduler: Scheduler | None = None, chunk_rows: int = CHUNK_ROWS,
                    threads: int | None = None) -> dict[str, Any] | None:
    """The baseline run for a store without a catalog Z_QN (run now unless one already covers every row, on
    `scheduler`'s workers if given); None where the catalog has Z_QN."""
    if "Z_QN" in st.index.columns:
        return None
    have = read_baseline(st.path)
    if have is not None and len(have) == len(st) and (have["object_id"].astype(str).to_numpy()
                                                       == st.index["object_id"].astype(str).to_numpy()).all():
        return {"path": str(baseline_path(st.path)), "model": None, "reused": True}
    r = write_baseline_predictions(st.path, BASELINE_MODEL, scheduler=scheduler, chunk_rows=chunk_rows,
                                   threads=threads)
    return {"path": str(r["path"]), "model": str(BASELINE_MODEL), "n_failed": r["n_failed"], "seconds": r["seconds"]}


__all__ = ["CLASS_COLUMNS", "N_ALT", "class_columns", "fnet_rows", "prediction_schema", "write_predictions"]
