"""Sim-to-real: train a CPU-sized FNet on mock spectra, score it on the REAL labelled SDSS quasars.

    python bench/sim2real.py --mock 8000 --epochs 3        # flat-z mock straight onto the grid (no files), then train
    python bench/sim2real.py --store demo/store --epochs 3 # the quasars of a spectrum store (e.g. an ingested mock)
    python bench/sim2real.py --model model.pt              # no training: score an existing checkpoint

Training data: `--mock N` draws N objects with `inspector.mock.survey.make_grid_arrays`
(flat in z, the same objects `make_survey` would write) and keeps its quasars
(CLASS_PERSON 3 or 30), truth Z_VI; `--store DIR` uses a store's `is_qso` rows
with a finite `z`. Either way a --val-fraction of the objects is held out
(grouped by object) and scored with the paper's tables.

Real set: `inspector.realset` (the one definition: the sdss/ quasars of
../shared/data/real, truth z_ref = curated ref_z where given, else the file's
Z), scored by `inspector evaluate --real`'s code, per spectrum and per object,
by z and survey, with the worst 10. The gap between the mock validation
figures and the real ones is what the mock still gets wrong.

The model is `FNetConfig.small()` (what `inspector train --config small`
trains) unless --config paper. Figures and Fig. 4 plots go to --out-dir.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from inspector.pipeline.evaluate_real import evaluate_real
from model.data import split_rows
from model.evaluate import evaluation_tables, format_tables, tables_to_records
from model.fnet import FNet, FNetConfig, count_parameters
from model.plots import fig4
from model.train import load_checkpoint, predict, save_checkpoint, train


def mock_training_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(flux N x 4618, z, candidate rows (quasars), object keys) from a flat-z mock on the grid."""
    from inspector.mock.survey import make_grid_arrays

    flux, cat = make_grid_arrays(n, seed, "flat")
    z = cat["Z_VI"].to_numpy(np.float64)
    qso = cat["CLASS_PERSON"].isin([3, 30]).to_numpy() & np.isfinite(z)
    return flux, z, np.flatnonzero(qso), np.arange(n)  # every mock object is observed once


def store_training_set(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(flux memmap, z, quasar rows, object keys) of a spectrum store."""
    import pandas as pd

    from inspector.store import open_store

    st = open_store(path)
    idx = st.index
    z = pd.to_numeric(idx["z"], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    qso = idx["is_qso"].astype("boolean").fillna(False).to_numpy(bool) & np.isfinite(z)
    keys = idx["SDSS_NAME"].astype(str).to_numpy() if "SDSS_NAME" in idx else idx["object_id"].astype(str).to_numpy()
    return st.flux, z, np.flatnonzero(qso), keys


def run(args: argparse.Namespace) -> dict:
    t_start = time.perf_counter()
    out_dir = Path(args.out_dir)
    result: dict = {}
    if args.model:
        model_path = Path(args.model)
        model, _ = load_checkpoint(model_path)
        print(f"model: {model_path} ({count_parameters(model):,} parameters)")
    else:
        t0 = time.perf_counter()
        if args.store:
            flux, z, rows, keys = store_training_set(Path(args.store))
            source = f"store {args.store}"
        else:
            flux, z, rows, keys = mock_training_set(args.mock, args.seed)
            source = f"flat-z mock, {args.mock} objects"
        print(f"training data: {source}: {rows.size} quasars ({time.perf_counter() - t0:.0f} s to load/make)")
        train_rows, val_rows = split_rows(rows, args.val_fraction, seed=args.seed, groups=keys[rows])
        if args.max_train and train_rows.size > args.max_train:
            train_rows = np.sort(np.random.default_rng(args.seed).choice(train_rows, args.max_train, replace=False))
        cfg = FNetConfig.paper() if args.config == "paper" else FNetConfig.small()
        print(
            f"model: FNetConfig.{args.config}() {count_parameters(FNet(cfg)):,} parameters; "
            f"{train_rows.size} train / {val_rows.size} validation quasars; {torch.get_num_threads()} thread(s)"
        )
        lr = args.lr or (2.4e-4 if args.config == "paper" else 1e-3)  # as `inspector train`
        model, history = train(
            cfg, flux, z, flux, z, train_rows=train_rows, val_rows=val_rows,
            epochs=args.epochs, batch_size=args.batch_size, lr=lr, seed=args.seed, progress=not args.no_progress,
        )  # fmt: skip
        for h in history:
            print(
                f"  epoch {h['epoch']:2d}  loss {h['train_loss']:.4g}  val acc@6000 {h.get('val_acc@6000', float('nan')):.1f}%"
                f"  median|dv| {h.get('val_median_abs_dv', float('nan')):.0f} km/s  {h['seconds']:.0f} s"
            )
        zv = z[val_rows]
        zp = predict(model, flux[val_rows])
        val_tables = evaluation_tables({"FNet": zp}, zv)
        print("\n== MOCK validation split ==")
        print(format_tables(val_tables))
        fig4({"FNet": zp}, zv, out_dir / "fig4_mock_val.png", title=f"mock validation: {zv.size} quasars")
        model_path = Path(args.save) if args.save else Path(tempfile.mkdtemp(prefix="sim2real-")) / "sim2real.pt"
        save_checkpoint(model_path, model, history=history, extra={"source": source})
        print(f"checkpoint: {model_path}")
        result.update({"source": source, "history": history, "mock_val": tables_to_records(val_tables)})

    ev = evaluate_real(model_path, out_dir=out_dir, real_root=Path(args.real_root) if args.real_root else None)
    print("\n" + ev.text)
    for f in ev.files:
        print(f"wrote {f}")
    result.update({"real": tables_to_records(ev.tables), "worst_real": ev.meta["worst"]})
    result["seconds"] = time.perf_counter() - t_start
    print(f"total {result['seconds']:.0f} s")
    (out_dir / "sim2real.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mock", type=int, metavar="N", help="train on a fresh flat-z mock of N objects")
    src.add_argument("--store", help="train on a spectrum store's quasars")
    src.add_argument("--model", help="score this FNet checkpoint; no training")
    p.add_argument("--config", choices=("small", "paper"), default="small")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.0, help="learning rate (default 1e-3 small, 2.4e-4 paper)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--max-train", type=int, default=0, help="cap on training spectra (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch threads (default 1: on a shared 2-core machine 2 threads stall in OpenMP barriers)",
    )  # fmt: skip
    p.add_argument("--real-root", help="real data directory (default ../shared/data/real)")
    p.add_argument("--save", help="keep the trained checkpoint here")
    p.add_argument("--out-dir", default="sim2real-out", help="tables (JSON) and Fig. 4 plots go here")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
