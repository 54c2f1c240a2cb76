"""The FNet paper's line-masking test (arXiv 2201.03393, Figs. 6-7) on the mock: z with the broad UV lines masked.

    python bench/line_masking.py                     # default sizes: ~10-15 min on 2 shared CPU cores
    python bench/line_masking.py --n-train 40000 --n-test 5000 --epochs 20 --config paper   # on a GPU

The paper takes DR16Q quasars at 2.8 <= z <= 3.0, masks O VI, Lya, N V,
Si IV+O IV, C IV, C III] and C II in the training AND the test spectra, and
still finds 98.5 % within 6000 km/s: FNet reads z off the continuum and the
Lya forest too, not only off the lines. Here:

* training and test quasars are independent mock draws (`make_grid_arrays`,
  seeds --seed and --test-seed) with z uniform in [--z-min, --z-max]; their
  stars and galaxies are dropped;
* the lines are masked with `model.line_mask.mask_lines` at the true z
  (+-7500 km/s windows, flux bridged by a straight line: see that module);
  --fills line noise trains one model per fill; "noise" adds the neighbouring
  pixel scatter to the bridge, so the mask's own noise-free segments, whose
  positions are lambda_rest (1 + z), cannot tell the network z;
* each model is scored on its masked test set and on the unmasked one; a
  control model trained without masking (skip with --no-control) is scored on
  both too; the labelled real SDSS quasars of ../shared/data/real in the z
  window (three) are scored masked and unmasked, one line each;
* a decoy test masks the test spectra at a wrong z and counts whether each
  model follows the spectrum (true z) or the mask (decoy z).

Read the accuracies beside two references: the paper's 98.5 %, and a
constant guess (the training median z), which in a window this narrow is
already within 6000 km/s for most quasars. The model is `FNetConfig.small()`
(CPU-trainable, bins head: one bin ~1500 km/s) unless --config paper.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from model.classes import from_class_person, is_qso_class
from model.fnet import FNet, FNetConfig, count_parameters
from model.line_mask import (
    DEFAULT_HALF_WIDTH_KMS,
    FILLS,
    PAPER_MASKED_LINES,
    line_windows,
    mask_lines,
)
from model.metrics import THRESHOLDS_KMS, accuracy_row, dv_kms, format_table
from model.train import predict, train

PAPER_MASKED_ACC_6000 = 98.5  # the paper's line-masked FNet, 2.8 <= z <= 3.0, percent within 6000 km/s


def window_mock(n: int, seed: int, z_min: float, z_max: float, workers: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """(flux N x 4618, true z) of the quasars among n mock draws with z uniform in [z_min, z_max]."""
    from inspector.mock import survey

    flux, cat = survey.make_grid_arrays(n, seed, f"uniform:{z_min}-{z_max}", workers=workers, progress=progress)
    qso = is_qso_class(from_class_person(cat["CLASS_PERSON"].to_numpy()))
    return flux[qso], cat["Z_VI"].to_numpy(np.float64)[qso]


def real_window(z_min: float, z_max: float, root: str | None) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """(flux, z_ref, file names) of the labelled real quasars in the window; None without ../shared."""
    from inspector import realset

    path = Path(root) if root else realset.REAL_ROOT
    if not realset.available(path):
        return None
    flux, _, table = realset.load_on_grid(path)
    z = table["z_ref"].to_numpy(np.float64)
    sel = (z >= z_min) & (z <= z_max)
    return flux[sel], z[sel], table["file"][sel].tolist()


def train_one(name: str, flux: np.ndarray, z: np.ndarray, args: argparse.Namespace) -> FNet:
    """One FNet on these spectra (a 10 % validation split printed per epoch, not used to pick anything)."""
    cfg = FNetConfig.paper() if args.config == "paper" else FNetConfig.small()
    rows = np.random.default_rng(args.seed).permutation(z.size)
    n_val = max(1, z.size // 10)
    val_rows, train_rows = np.sort(rows[:n_val]), np.sort(rows[n_val:])
    lr = args.lr or (2.4e-4 if args.config == "paper" else 1e-3)  # as `inspector train`
    t0 = time.perf_counter()
    model, history = train(
        cfg, flux, z, flux, z, train_rows=train_rows, val_rows=val_rows, epochs=args.epochs,
        batch_size=args.batch_size, lr=lr, seed=args.seed, progress=not args.no_progress,
    )  # fmt: skip
    print(f"\n-- {name}: FNetConfig.{args.config}() {count_parameters(model):,} parameters, "
          f"{train_rows.size} train / {val_rows.size} validation quasars, {time.perf_counter() - t0:.0f} s")  # fmt: skip
    for h in history:
        print(f"   epoch {h['epoch']:2d}  loss {h['train_loss']:.4g}  val acc@6000 {h.get('val_acc@6000', np.nan):5.1f}%"
              f"  median|dv| {h.get('val_median_abs_dv', np.nan):5.0f} km/s  {h['seconds']:.0f} s")  # fmt: skip
    return model


def run(args: argparse.Namespace) -> dict:
    t_start = time.perf_counter()
    zc = 0.5 * (args.z_min + args.z_max)
    print(f"masked lines: {', '.join(f'{n} {lam:g}' for n, lam in PAPER_MASKED_LINES)}; +-{args.half_width:g} km/s")
    print(f"windows at z = {zc:g} (observed A): "
          + ", ".join(f"{lo:.0f}-{hi:.0f}" for lo, hi in line_windows(zc, half_width_kms=args.half_width)))  # fmt: skip

    t0 = time.perf_counter()
    tr_flux, tr_z = window_mock(args.n_train, args.seed, args.z_min, args.z_max, args.workers, not args.no_progress)
    te_flux, te_z = window_mock(args.n_test, args.test_seed, args.z_min, args.z_max, args.workers, not args.no_progress)
    real = None if args.no_real else real_window(args.z_min, args.z_max, args.real_root)
    print(f"mock: {tr_z.size} training and {te_z.size} test quasars at {args.z_min:g} <= z <= {args.z_max:g} "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip

    def masked(flux: np.ndarray, z: np.ndarray, fill: str, seed: int) -> np.ndarray:
        return mask_lines(flux, z, fill=fill, half_width_kms=args.half_width, seed=seed)[0]

    test_sets = {"unmasked": te_flux}
    test_sets.update({f"masked ({fill})": masked(te_flux, te_z, fill, args.test_seed) for fill in args.fills})
    models: dict[str, tuple[FNet, list[str]]] = {}
    for fill in args.fills:
        name = f"masked ({fill})"
        models[name] = (train_one(name, masked(tr_flux, tr_z, fill, args.seed), tr_z, args), [name, "unmasked"])
    if not args.no_control:
        models["unmasked"] = (train_one("unmasked (control)", tr_flux, tr_z, args), list(test_sets))

    rows: dict[str, dict] = {}
    for trained_on, (model, tested_on) in models.items():
        for test_name in tested_on:
            rows[f"trained {trained_on} | tested {test_name}"] = accuracy_row(predict(model, test_sets[test_name]), te_z)
    guess = float(np.median(tr_z))
    rows[f"constant z = {guess:.3f} (training median) | any"] = accuracy_row(np.full_like(te_z, guess), te_z)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "mock test quasars"
    print(f"\n== mock test set: {te_z.size} quasars; paper (DR16Q, lines masked in training and test): "
          f"{PAPER_MASKED_ACC_6000:.1f} % within 6000 km/s ==")  # fmt: skip
    print(format_table(table))
    result = {"args": vars(args), "mock": table.reset_index().to_dict(orient="records"),
              "paper_masked_acc@6000": PAPER_MASKED_ACC_6000}  # fmt: skip

    result["decoy"] = decoy_test(models, te_flux, te_z, args)

    if real is None:
        print("\nreal quasars skipped" + (" (--no-real)" if args.no_real else ": no ../shared/data/real here"))
    elif real[1].size:
        result["real"] = score_real(models, real, args)
    else:
        print("\nno labelled real quasar in the window")
    result["seconds"] = time.perf_counter() - t_start
    print(f"\ntotal {result['seconds']:.0f} s")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "line_masking.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out / 'line_masking.json'}")
    return result


def decoy_test(models: dict, flux: np.ndarray, z: np.ndarray, args: argparse.Namespace) -> list[dict]:
    """Mask the test spectra at a wrong ("decoy") z and ask whom the models follow: the spectrum or the mask.

    The decoy is half the window away (0.1 for 2.8-3.0: ~7800 km/s), towards
    the window's middle so it stays in the trained range. A model that reads z
    off the spectrum lands nearer the true z; one that reads it off where the
    bridged segments sit lands nearer the decoy (a constant guess: either).
    """
    half = 0.5 * (args.z_max - args.z_min)
    decoy = np.where(z < 0.5 * (args.z_min + args.z_max), z + half, z - half)
    thr = THRESHOLDS_KMS[0]
    out = []
    for trained_on, (model, _) in models.items():
        for fill in args.fills:
            zp = predict(model, mask_lines(flux, decoy, fill=fill, half_width_kms=args.half_width, seed=args.test_seed)[0])
            out.append({"model": f"trained {trained_on} | tested masked ({fill}) at the decoy z",
                        f"% within {thr} of true z": 100 * np.mean(np.abs(dv_kms(zp, z)) < thr),
                        "% nearer the decoy z": 100 * np.mean(np.abs(zp - decoy) < np.abs(zp - z))})  # fmt: skip
    print(f"\n== decoy test: {z.size} mock test quasars masked at z +- {half:g} (the wrong z) ==")
    print(pd.DataFrame(out).set_index("model").round(1).to_string())
    return out


def score_real(models: dict, real: tuple[np.ndarray, np.ndarray, list[str]], args: argparse.Namespace) -> list[dict]:
    """dv (km/s) of every model on each real quasar in the window, masked at its reference z and unmasked."""
    flux, z, files = real
    sets = {"unmasked": flux}
    sets.update({f"masked ({fill})": mask_lines(flux, z, fill=fill, half_width_kms=args.half_width)[0] for fill in args.fills})
    out = []
    for trained_on, (model, tested_on) in models.items():
        for test_name in tested_on:
            zp = predict(model, sets[test_name])
            out.append({"model": f"trained {trained_on} | tested {test_name}",
                        **{Path(f).stem: round(float(v)) for f, v in zip(files, dv_kms(zp, z))}})  # fmt: skip
    df = pd.DataFrame(out).set_index("model")
    print(f"\n== real labelled quasars at {args.z_min:g} <= z <= {args.z_max:g}: dv in km/s "
          f"(z_ref {', '.join(f'{v:.3f}' for v in z)}) ==")  # fmt: skip
    df[f"within {THRESHOLDS_KMS[0]}"] = [f"{k}/{z.size}" for k in (df.abs() < THRESHOLDS_KMS[0]).sum(axis=1)]
    print(df.to_string())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=6000, help="mock draws for training (~95 %% are quasars)")
    p.add_argument("--n-test", type=int, default=1500, help="mock draws for the test set")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--config", choices=("small", "paper"), default="small")
    p.add_argument("--lr", type=float, default=0.0, help="learning rate (default 1e-3 small, 2.4e-4 paper)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--fills", nargs="+", choices=FILLS, default=list(FILLS), help="one masked model per fill")
    p.add_argument("--no-control", action="store_true", help="skip the model trained without masking")
    p.add_argument("--half-width", type=float, default=DEFAULT_HALF_WIDTH_KMS, help="window half-width, km/s")
    p.add_argument("--z-min", type=float, default=2.8)
    p.add_argument("--z-max", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=11, help="training mock, weights and noise-fill seed")
    p.add_argument("--test-seed", type=int, default=12)
    p.add_argument("--workers", type=int, default=2, help="processes making the mock")
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch threads (default 1: on a shared 2-core machine 2 threads stall in OpenMP barriers)",
    )  # fmt: skip
    p.add_argument("--real-root", help="real data directory (default ../shared/data/real)")
    p.add_argument("--no-real", action="store_true")
    p.add_argument("--out-dir", default="out/line_masking", help="the figures as JSON go here")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if not args.z_min < args.z_max:
        p.error("--z-min must be below --z-max")
    torch.set_num_threads(args.threads)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
