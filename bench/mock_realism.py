"""Is the mock realistic enough? Train on it, score on the real SDSS quasars.

    python bench/mock_realism.py                      # 30,000 flat-z mock quasars, 3 epochs (~10 min on 2 cores)
    python bench/mock_realism.py --n 8000 --epochs 2  # quicker look
    # honest variant: calibrate the mock on half of the real objects, score on the other half
    python -m inspector.mock.calibration --holdout-half --out /tmp/cal_half.npz
    python bench/mock_realism.py --calibration /tmp/cal_half.npz --eval-half 1

The model is deliberately not FNet: a small strided CNN that classifies z into
400 bins of log(1+z) trains in minutes on a CPU, so this measures the mock,
not how long FNet's regression takes to converge. Inputs are exactly FNet's
(the 4618-pixel grid, the published normalisation). Needs ../shared/data/real.
"""
from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from inspector import realset
from inspector.mock import calibration
from inspector.mock.survey import make_grid_arrays
from model.grid import normalise
from model.metrics import accuracy_table, dv_kms

N_BINS = 400
LOG_EDGES = np.linspace(0, np.log1p(6.5), N_BINS + 1)
Z_CENTERS = np.expm1(0.5 * (LOG_EDGES[1:] + LOG_EDGES[:-1]))
Z_BINS = [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.5]


def classifier() -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv1d(cin, cout, 9, padding=4), nn.BatchNorm1d(cout), nn.ReLU(), nn.MaxPool1d(2)]

    return nn.Sequential(
        nn.AvgPool1d(2), *block(1, 16), *block(16, 32), *block(32, 48), *block(48, 64), *block(64, 64),
        nn.Flatten(), nn.Linear(64 * 72, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, N_BINS),
    )


def predict(net: nn.Module, x: np.ndarray) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        out = [net(torch.from_numpy(x[i : i + 512, None, :])).argmax(1).numpy() for i in range(0, len(x), 512)]
    net.train()
    return Z_CENTERS[np.concatenate(out)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--calibration", type=Path, default=calibration.CALIBRATION_FILE)
    ap.add_argument("--eval-half", type=int, choices=(0, 1), default=None, help="score only this half of the object groups")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(args.seed)

    t0 = time.time()
    flux, cat = make_grid_arrays(args.n, args.seed, "flat", calibration_file=args.calibration)
    qso = cat["CLASS_PERSON"].isin([3, 30]).to_numpy()
    x, z = normalise(flux[qso]), cat["Z_VI"].to_numpy()[qso]
    del flux
    print(f"mock: {qso.sum()} quasars in {time.time() - t0:.0f} s")
    real_flux, _, real = realset.load_on_grid()
    if args.eval_half is not None:
        half = real["object_group"].astype(str).map(lambda g: int(hashlib.sha1(g.encode()).hexdigest(), 16) % 2)
        keep = (half == args.eval_half).to_numpy()
        real_flux, real = real_flux[keep], real[keep].reset_index(drop=True)
    real_x, real_z = normalise(real_flux), real["z_ref"].to_numpy()

    perm = rng.permutation(len(z))
    n_val = min(1500, len(z) // 10)
    val, tr = perm[:n_val], perm[n_val:]
    labels = np.clip(np.digitize(np.log1p(z), LOG_EDGES) - 1, 0, N_BINS - 1)
    net = classifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5)
    steps = args.epochs * (len(tr) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)  # a constant rate left the last epoch noisy
    for epoch in range(args.epochs):
        order = rng.permutation(tr)
        for i in range(0, len(order) - 63, 64):
            b = order[i : i + 64]
            loss = F.cross_entropy(net(torch.from_numpy(x[b, None, :])), torch.from_numpy(labels[b]), label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        zv, zr = predict(net, x[val]), predict(net, real_x)
        acc = lambda zp, zt: 100 * np.mean(np.abs(dv_kms(zp, zt)) < 6000)  # noqa: E731
        print(f"epoch {epoch + 1}: {time.time() - t0:.0f} s, mock validation {acc(zv, z[val]):.1f}%, real {acc(zr, real_z):.1f}% within 6000 km/s")

    with pd.option_context("display.width", 140, "display.float_format", "{:.1f}".format):
        print("\nmock validation split (flat z):")
        print(accuracy_table(zv, z[val]).to_string())
        print(f"\nreal SDSS quasars ({len(real_z)} spectra of {real['object_group'].nunique()} objects):")
        groups = {f"z {a}-{b}": (real_z >= a) & (real_z < b) for a, b in zip(Z_BINS[:-1], Z_BINS[1:])}
        print(accuracy_table(zr, real_z, groups=groups).to_string())
        dv = dv_kms(zr, real_z)
        worst = np.argsort(-np.abs(dv))[:10]
        print("\nworst real spectra:")
        worst_table = pd.DataFrame({"file": real["file"].iloc[worst].values, "z_ref": real_z[worst], "z_pred": zr[worst], "S/N": real["sn_median_all"].iloc[worst].values, "dv_kms": dv[worst]})
        print(worst_table.to_string(index=False, formatters={"z_ref": "{:.3f}".format, "z_pred": "{:.3f}".format}))


if __name__ == "__main__":
    main()
