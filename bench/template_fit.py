"""Template-fit redshift (model.template_fit): speed at 1 and 2 processes, accuracy on the real quasars.

    python bench/template_fit.py [--repeat 3] [--z-max 6.0] [--high-z 300] [--no-igm]

Uses the 144 labelled real SDSS quasars in ../shared/data/real when present,
else 200 template-built mock spectra. Accuracy table: fraction within
|dv| < 1000 / 3000 / 6000 km/s of z_ref (curated ref_z), by z bin, plus
delta_chi2 on pure-noise spectra. `--high-z N`: also N mock quasars (inspector.mock, forest,
Lyman limit, DLAs, BALs, DR16Q-like S/N) drawn uniformly in 3.5 < z < 6, scored by z bin.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.template_fit import C_KMS, Z_MAX, fit_batch, load_templates


def real_set():
    from inspector.readers import read_spec_file
    from inspector.realset import REAL_ROOT, available, labelled_quasars

    if not available(REAL_ROOT):
        return None
    tab = labelled_quasars(REAL_ROOT)
    specs = [read_spec_file(REAL_ROOT / f) for f in tab["file"]]
    return ([np.log10(s.wave) for s in specs], [s.flux for s in specs], [s.ivar for s in specs],
            tab["z_ref"].to_numpy(float))


def mock_set(n=200, seed=0):
    rng = np.random.default_rng(seed)
    ll = np.arange(3.55, 4.017, 1e-4)
    zs = rng.uniform(0.1, 4.0, n)
    flux = []
    for z in zs:
        tl, vec = load_templates()["LOZ" if z < 1.5 else "HIZ"]
        m = np.interp(ll - np.log10(1 + z), tl, np.r_[1.0, rng.normal(0, 0.2, 3)] @ vec, left=0, right=0)
        flux.append(m * 10 / np.abs(m).max() + rng.normal(0, 1, ll.size))
    return [ll] * n, flux, [np.ones(ll.size)] * n, zs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--z-max", type=float, default=Z_MAX)
    ap.add_argument("--high-z", type=int, default=0, help="also score this many 3.5 < z < 6 mock quasars")
    ap.add_argument("--no-igm", action="store_true", help="scan without the mean Lya-forest transmission")
    a = ap.parse_args()
    igm = not a.no_igm
    data = real_set()
    name = "real labelled quasars"
    if data is None:
        data, name = mock_set(), "mock (no ../shared/data/real)"
    ll, flux, ivar, zref = data
    print(f"{name}: {len(flux)} spectra, z_max={a.z_max}, forest {'on' if igm else 'off'}")
    fits = None
    for procs in (1, 2):
        best = np.inf
        for _ in range(a.repeat):
            t = time.perf_counter()
            fits = fit_batch(ll, flux, ivar, z_max=a.z_max, processes=procs, igm=igm)
            best = min(best, time.perf_counter() - t)
        print(f"processes={procs}: {len(flux) / best:7.1f} spectra/s ({best / len(flux) * 1e3:.1f} ms/spectrum wall)")
    z = np.array([f.z for f in fits])
    dv = np.abs(z - zref) / (1 + zref) * C_KMS
    print("\naccuracy (fraction within |dv|)")
    print(f"{'z bin':>12} {'n':>4} {'<1000':>7} {'<3000':>7} {'<6000':>7}")
    for lo, hi in [(0, 1), (1, 2), (2, 3), (3, 9), (0, 9)]:
        m = (zref >= lo) & (zref < hi)
        if m.any():
            lab = "all" if (lo, hi) == (0, 9) else f"{lo}-{hi}"
            print(f"{lab:>12} {m.sum():4d} " + " ".join(f"{np.mean(dv[m] < t) * 100:6.1f}%" for t in (1000, 3000, 6000)))
    bad = np.flatnonzero(dv >= 6000)
    for i in bad:
        print(f"  miss: z_ref={zref[i]:.4f} z_tpl={z[i]:.4f} delta_chi2={fits[i].delta_chi2:.1f}")
    dch = np.array([f.delta_chi2 for f in fits])
    print(f"delta_chi2 median {np.median(dch):.0f}; misses {dch[bad].round(1).tolist()}")
    rng = np.random.default_rng(1)
    grid = np.arange(3.55, 4.017, 1e-4)
    noise = fit_batch(grid, rng.normal(0, 1, (50, grid.size)), np.ones((50, grid.size)), z_max=a.z_max)
    nd = np.array([f.delta_chi2 for f in noise])
    print(f"pure noise (50): delta_chi2 median {np.median(nd):.1f}, max {nd.max():.1f}")
    if a.high_z:
        high_z(a.high_z, a.z_max, igm)


def high_z(n, z_max, igm):
    import inspector.mock.survey as sv

    sv.Z_DISTRIBUTIONS["bench-high-z"] = (np.array([3.5, 6.0]), np.array([1.0]))
    specs, cat = sv.make_arrays(n, seed=5, z_distribution="bench-high-z")
    q = cat["MOCK_KIND"].isin(["QSO", "BAL"]).to_numpy()
    zt = cat["Z_VI"].to_numpy(float)
    fits = fit_batch([np.log10(s.wave) for s in specs], [s.flux for s in specs], [s.ivar for s in specs],
                     z_max=z_max, processes=2, igm=igm)
    z = np.array([f.z for f in fits])
    sdv = (z - zt) / (1 + zt) * C_KMS
    print(f"\nhigh-z mock quasars ({q.sum()} of {n}; seed 5)")
    print(f"{'z bin':>10} {'n':>4} {'<3000':>7} {'<6000':>7} {'median dv':>10}")
    for lo in (3.5, 4.0, 4.5, 5.0, 5.5):
        m = q & (zt >= lo) & (zt < lo + 0.5)
        if m.any():
            print(f"{lo:.1f}-{lo + 0.5:.1f} {m.sum():4d} {np.mean(np.abs(sdv[m]) < 3000) * 100:6.1f}% "
                  f"{np.mean(np.abs(sdv[m]) < 6000) * 100:6.1f}% {np.median(sdv[m]):9.0f}")


if __name__ == "__main__":
    main()
