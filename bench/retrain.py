"""The retrain loop on a mock survey: predict, triage, an inspector corrects the flagged spectra with the true z,
retrain (fine-tune the shipped demo model), promote, re-triage. Prints acc@6000/12000/30000 of the old and new
model on the held-out decided spectra and on the mock test split, and the queue before and after.

    python bench/retrain.py [--n 1000] [--epochs 5] [--dir /tmp/bench-retrain]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repo, not bench/ (bench/db.py would shadow db/)

import numpy as np
from sqlalchemy import select


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bench-retrain"))
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()

    from db.decisions import record_decision
    from db.engine import make_engine, session_scope
    from db.load import current_model
    from db.schema import Spectrum, TriageFlag
    from inspector.ingest import ingest
    from inspector.mock import make_survey
    from inspector.pipeline.predict import write_predictions
    from inspector.pipeline.retrain import queue_size, retrain
    from inspector.pipeline.triage import load_into_db, run_triage
    from inspector.store import open_store
    from model.assets import DEMO_MODEL

    w = a.dir
    shutil.rmtree(w, ignore_errors=True)
    w.mkdir(parents=True)
    t0 = time.perf_counter()
    make_survey(w / "survey", a.n, seed=a.seed)
    ingest([str(w / "survey")], w / "store")
    side = write_predictions(w / "store", DEMO_MODEL)
    flags, _, meta = run_triage(w / "store", Path(side["predictions"]))
    url = f"sqlite:///{(w / 'fnet_inspector.sqlite').resolve()}"
    load_into_db(url, w / "store", Path(side["predictions"]), flags, meta)
    q0 = queue_size(url)
    index = open_store(w / "store").index.set_index("object_id")
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            cur = current_model(s)
            ids = s.scalars(select(TriageFlag.spectrum_id).distinct()).all()
            flagged = sorted(s.scalars(select(Spectrum.object_id).where(Spectrum.id.in_(ids))).all())
            for oid in flagged:
                r = index.loc[oid]
                if bool(r["is_qso"]) and np.isfinite(r["z"]):
                    record_decision(s, oid, "bench", "correct", z_final=float(r["z"]), quality=4, model_version_id=cur.id)
                else:
                    record_decision(s, oid, "bench", "not_qso", quality=3, model_version_id=cur.id)
    finally:
        engine.dispose()
    q1 = queue_size(url)
    t1 = time.perf_counter()
    res = retrain(w / "store", url, epochs=a.epochs, promote="always", device=a.device)
    t2 = time.perf_counter()
    q2 = queue_size(url)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            n_flag2 = len(s.scalars(select(TriageFlag.spectrum_id).distinct()).all())
    finally:
        engine.dispose()
    print(f"mock survey: {a.n} spectra, {len(flagged)} flagged and decided (true z), setup {t1 - t0:.0f} s")
    print(f"retrain: {res.label_count} training spectra ({res.n_decided_labels} decided labels), "
          f"{a.epochs} epochs fine-tuning, {t2 - t1:.0f} s")
    for where in ("held_out_decided", "mock_test"):
        b, af = res.metrics["before"][where], res.metrics["after"][where]
        accs = "  ".join(f"{k} {b[k]:.1f} -> {af[k]:.1f}" for k in b if k.startswith("acc@"))
        print(f"{where} ({b['n']} spectra): {accs}")
    # the queue re-ranked by the new model: spectra it now flags that nobody has decided yet
    print(f"flagged spectra: {len(flagged)} by the old model, {n_flag2} by the new one")
    print(f"queue (undecided flagged): {q0} after triage, {q1} after the decisions, {q2} after re-triage "
          f"with the new model")


if __name__ == "__main__":
    main()
