"""How well the triage queue catches FNet's misses, per rule: share of spectra flagged, misses caught, precision,
and the non-quasars (stars, galaxies, empty spectra) it sends to people.

    python bench/triage_recall.py --store STORE --predictions STORE/predictions/fnet-small-mock.parquet
    python bench/triage_recall.py --real [--model assets/models/fnet-small-mock.pt]

A "miss" is a quasar whose FNet z is more than 6000 km/s from the truth (the
store's z; on the real SDSS quasars, z_ref). Store mode scores the quasars of
a store with a prediction run (template fit included, `inspector predict`).
Real mode predicts the 144 labelled real quasars with the model, fits their
templates, and uses the files' own Z as Z_PIPE (no Z_QN there, so dv_qn and
qn_failed cannot fire). A model with a class head adds FNet's class
(fnet_not_qso, fnet_qso_unsure): in store mode every non-quasar should be
queued; on the real quasars every flag of those rules is a quasar sent to
people for nothing. Default thresholds unless --threshold rule=value.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector.store.files import read_sidecar
from inspector.triage import (
    apply_rules,
    parse_assignments,
    training_z_range,
)
from model.assets import DEMO_MODEL
from model.metrics import dv_kms

MISS_KMS = 6000.0


def store_frames(store: Path, predictions: Path):
    from inspector.store import open_store

    idx = open_store(store).index
    pred = pd.read_parquet(predictions)
    q = idx["is_qso"].to_numpy(bool)
    z = idx["z"].to_numpy(float)
    return idx, pred, q, z, training_z_range(read_sidecar(predictions)), f"store {store} ({q.sum()} quasars)"


def real_frames(model_path: Path):
    from inspector.pipeline.predict import class_columns
    from inspector.realset import load_on_grid
    from model.grid import FNET_LOGLAM
    from model.predict import predict_store
    from model.template_fit import fit_batch, fits_to_columns
    from model.train import load_checkpoint

    flux, ivar, tab = load_on_grid()
    cols = fits_to_columns(fit_batch(FNET_LOGLAM, flux, ivar, processes=2))
    model, _ = load_checkpoint(model_path, map_location="cpu")
    batches = list(predict_store(model, flux, batch_size=64))
    n = len(tab)
    oid = tab["file"].astype(str).to_numpy()
    idx = pd.DataFrame({"row": np.arange(n), "object_id": oid, "Z_PIPE": tab["z"].astype(float),
                        "SN_MEDIAN_ALL": pd.to_numeric(tab["sn_median_all"], errors="coerce")})  # fmt: skip
    pred = pd.DataFrame({"row": np.arange(n), "object_id": oid,
                         "z_fnet": np.concatenate([b.z for b in batches]),
                         "z_fnet_err": np.concatenate([b.z_err for b in batches]),
                         "p_fnet": np.concatenate([b.alternatives.p_z for b in batches]),
                         "z_tpl": cols["z_tpl"], "tpl_dchi2": cols["tpl_dchi2"]})  # fmt: skip
    cls = pd.concat([pd.DataFrame(class_columns(b.class_prob, b.rows.size)) for b in batches], ignore_index=True)
    pred = pd.concat([pred, cls], axis=1)
    return idx, pred, np.ones(n, bool), tab["z_ref"].to_numpy(float), None, f"real SDSS quasars ({n} spectra)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path)
    ap.add_argument("--predictions", type=Path)
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--model", type=Path, default=DEMO_MODEL)
    ap.add_argument("--threshold", action="append", default=[], help="rule=value or rule=off")
    a = ap.parse_args()
    if a.real:
        idx, pred, q, z, z_range, what = real_frames(a.model)
    else:
        if a.store is None or a.predictions is None:
            ap.error("give --store and --predictions, or --real")
        idx, pred, q, z, z_range, what = store_frames(a.store, a.predictions)
    n = len(idx)
    zf = np.full(n, np.nan)
    zf[pred["row"].to_numpy()] = pred["z_fnet"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        miss = q & ~(np.abs(dv_kms(zf, z)) <= MISS_KMS)
    flags = apply_rules(idx, pred, parse_assignments(a.threshold), z_range=z_range)
    print(f"{what}: {n} spectra, FNet misses (|dv| > {MISS_KMS:.0f} km/s): {miss.sum()}, non-quasars: {(~q).sum()}")
    print(f"{'rule':>20} {'flags':>7} {'misses caught':>14} {'precision':>10} {'non-quasars queued':>19}")

    def line(name: str, rows: np.ndarray) -> None:
        m = np.zeros(n, bool)
        m[rows] = True
        caught = int((m & miss).sum())
        share = f"{caught} ({100 * caught / max(miss.sum(), 1):.1f}%)"
        other = int((m & ~q).sum())
        others = f"{other} ({100 * other / (~q).sum():.1f}%)" if (~q).any() else "-"
        print(f"{name:>20} {100 * m.mean():6.1f}% {share:>14} {100 * caught / max(m.sum(), 1):9.1f}% {others:>19}")

    for rule in flags.attrs["triage"]["rules"]:
        line(rule, flags["row"][flags["rules"].apply(lambda rs, r=rule: r in rs)].to_numpy())
    line("queue (any rule)", flags["row"].to_numpy())


if __name__ == "__main__":
    main()
