"""Mock versus real: a plot grid at matched z and S/N, and the statistics that tell them apart.

`python -m inspector.mock.compare` (needs `../shared/data/real/`) writes
`assets/mock_vs_real.png` and `assets/mock_vs_real_stats.png` and prints a
table of noise, line-strength (EW_OIII5007 at z < 0.8 only, EW_Halpha where covered) and
continuum-slope statistics for both.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from astropy.io import fits
from scipy.ndimage import gaussian_filter1d

from inspector.mock.broad_halpha import halpha_ew
from inspector.mock.narrow_lines import oiii_ew
from inspector.mock.survey import make_arrays
from inspector.mock.templates import ASSETS
from inspector.realset import REAL_ROOT, labelled_quasars
from model.quasarnet import QN_LINES

# rest-frame (line window, blue continuum window, red continuum window), A
EW_WINDOWS = {
    "CIV": ((1500, 1600), (1440, 1470), (1690, 1710)),
    "MgII": ((2700, 2900), (2640, 2680), (2950, 3000)),
    "Hbeta": ((4760, 4940), (4600, 4700), (5080, 5120)),
}
SLOPE_WINDOWS = ((4000, 4500), (7000, 7500))  # observed frame, inside SDSS-I and BOSS ranges
MAJOR_LINES = tuple(QN_LINES.values())
OIII_Z_MAX = 0.8  # [O III] 5007 compared where both SDSS-I/II and BOSS cover it


def rest_ew(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, z: float, line: str) -> float:
    """Rest-frame equivalent width (A) over a linear continuum between two side windows; NaN if not covered."""
    (l0, l1), (b0, b1), (r0, r1) = EW_WINDOWS[line]
    rest = wave / (1 + z)
    good = ivar > 0
    sel = [good & (rest >= a) & (rest <= b) for a, b in ((b0, b1), (r0, r1), (l0, l1))]
    if min(s.sum() for s in sel) < 5:
        return np.nan
    xb, xr = np.median(rest[sel[0]]), np.median(rest[sel[1]])
    yb, yr = np.median(flux[sel[0]]), np.median(flux[sel[1]])
    cont = yb + (yr - yb) * (rest[sel[2]] - xb) / (xr - xb)
    if np.median(cont) <= 0:
        return np.nan
    dl = np.gradient(rest)[sel[2]]
    return float(np.sum((flux[sel[2]] / np.where(cont > 0, cont, np.nan) - 1) * dl))


def spectrum_stats(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, z: float) -> dict[str, float]:
    """Numbers a person compares by eye: noise shape, negative pixels, colour, line strengths."""
    good = ivar > 0
    sigma = np.where(good, 1 / np.sqrt(np.where(good, ivar, 1)), np.nan)
    blue = good & (wave > 3700) & (wave < 4100)
    red = good & (wave > 6000) & (wave < 6500)
    out = {
        "noise_blue_over_red": float(np.nanmedian(sigma[blue]) / np.nanmedian(sigma[red])) if blue.any() and red.any() else np.nan,
        "frac_negative": float(np.mean(flux[good] < 0)) if good.any() else np.nan,
    }
    (a0, a1), (b0, b1) = SLOPE_WINDOWS
    fa = np.median(flux[good & (wave > a0) & (wave < a1)]) if (good & (wave > a0) & (wave < a1)).any() else np.nan
    fb = np.median(flux[good & (wave > b0) & (wave < b1)]) if (good & (wave > b0) & (wave < b1)).any() else np.nan
    out["slope_alpha_lambda"] = float(np.log(fb / fa) / np.log(np.mean(SLOPE_WINDOWS[1]) / np.mean(SLOPE_WINDOWS[0]))) if fa > 0 and fb > 0 else np.nan
    for line in EW_WINDOWS:
        out[f"EW_{line}"] = rest_ew(wave, flux, ivar, z, line)
    out["EW_OIII5007"] = oiii_ew(wave / (1 + z), flux, ivar) if z < OIII_Z_MAX else np.nan
    out["EW_Halpha"] = halpha_ew(wave / (1 + z), flux, ivar)
    return out


def _read_real(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with fits.open(path, memmap=False) as h:
        d = h[1].data
        c = {n.lower(): n for n in d.columns.names}
        return 10 ** np.asarray(d[c["loglam"]], float), np.asarray(d[c["flux"]], float), np.asarray(d[c["ivar"]], float)


def collect(n_mock: int, seed: int, real_root: Path) -> tuple[pd.DataFrame, list, pd.DataFrame]:
    real = labelled_quasars(real_root)
    rows = []
    spectra_real = []
    for _, r in real.iterrows():
        w, f, iv = _read_real(real_root / r["file"])
        spectra_real.append((w, f, iv))
        rows.append({"set": "real", "z": r["z_ref"], "sn": r["sn_median_all"], **spectrum_stats(w, f, iv, r["z_ref"])})
    specs, cat = make_arrays(n_mock, seed)
    for s, (_, c) in zip(specs, cat.iterrows()):
        if c["MOCK_KIND"] not in ("QSO", "BAL"):
            continue
        rows.append({"set": "mock", "z": c["Z_VI"], "sn": c["SN_MEDIAN_ALL"], **spectrum_stats(s.wave, s.flux, s.ivar, c["Z_VI"])})
    return pd.DataFrame(rows), (real, spectra_real), cat.assign(spec=specs)


def stats_table(df: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in df.columns if c not in ("set",)]
    out = []
    for col in cols:
        for name, g in df.groupby("set"):
            v = g[col].dropna()
            q = np.percentile(v, [16, 50, 84]) if len(v) else [np.nan] * 3
            out.append({"statistic": col, "set": name, "n": len(v), "p16": q[0], "median": q[1], "p84": q[2]})
    return pd.DataFrame(out).pivot(index="statistic", columns="set", values=["median", "p16", "p84", "n"])


def plot_grid(real_pack, mock: pd.DataFrame, out: Path, picks=((0.1, 10), (0.3, 8), (0.6, 3), (1.2, 5), (1.8, 2), (2.3, 6), (2.6, 1.5), (3.1, 4))) -> None:
    real, spectra_real = real_pack
    mq = mock[mock["MOCK_KIND"].isin(["QSO", "BAL"])]
    fig, axes = plt.subplots(len(picks), 2, figsize=(15, 2.1 * len(picks)), sharex=True)
    for i, (z, sn) in enumerate(picks):
        k_real = int(np.argmin(np.abs(real["z_ref"] - z) / 0.3 + np.abs(np.log(real["sn_median_all"] / sn))))
        k_mock = (np.abs(mq["Z_VI"] - z) / 0.3 + np.abs(np.log(mq["SN_MEDIAN_ALL"] / sn))).idxmin()
        s = mock.loc[k_mock, "spec"]
        panels = (
            ("k", spectra_real[k_real][0], spectra_real[k_real][1], real["z_ref"].iloc[k_real], f"real {Path(real['file'].iloc[k_real]).name}  z={real['z_ref'].iloc[k_real]:.3f}  S/N={real['sn_median_all'].iloc[k_real]:.1f}"),
            ("tab:blue", s.wave, s.flux, mock.loc[k_mock, "Z_VI"], f"mock #{k_mock} ({mock.loc[k_mock, 'MOCK_KIND']}, {s.survey})  z={mock.loc[k_mock, 'Z_VI']:.3f}  S/N={mock.loc[k_mock, 'SN_MEDIAN_ALL']:.1f}"),
        )
        for ax, (color, w, f, zz, title) in zip(axes[i], panels):
            sm = gaussian_filter1d(f, 2)
            lo, hi = np.percentile(sm, [1, 99.5])
            ax.plot(w, sm, lw=0.5, c=color)
            ax.set_ylim(lo - 0.1 * abs(hi), hi * 1.15)
            for lam in MAJOR_LINES:
                if 3500 < lam * (1 + zz) < 10500:
                    ax.axvline(lam * (1 + zz), c="r", lw=0.5, alpha=0.4)
            ax.set_xlim(3500, 10500)
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("observed wavelength [A]")
    axes[-1, 1].set_xlabel("observed wavelength [A]")
    fig.suptitle("Real SDSS/BOSS quasars (left) and mock quasars at similar z and S/N (right); red: Lya, CIV, CIII], MgII, Hb, Ha", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def plot_stats(df: pd.DataFrame, out: Path) -> None:
    cols = ["noise_blue_over_red", "frac_negative", "slope_alpha_lambda", "EW_CIV", "EW_MgII", "EW_Hbeta", "EW_OIII5007", "sn", "z"]
    fig, axes = plt.subplots(3, 3, figsize=(13, 9))
    for ax, col in zip(axes.flat, cols):
        v_all = df[col].dropna()
        lo, hi = np.percentile(v_all, [1, 99]) if len(v_all) else (0, 1)
        bins = np.linspace(lo, hi, 30)
        for name, color in (("mock", "tab:blue"), ("real", "k")):
            v = df.loc[df["set"] == name, col].dropna()
            ax.hist(v, bins=bins, density=True, histtype="step", color=color, label=f"{name} (n={len(v)})")
        ax.set_title(col, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description="Compare the mock survey with the real SDSS quasars.")
    ap.add_argument("--n-mock", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real-root", type=Path, default=REAL_ROOT)
    ap.add_argument("--out-dir", type=Path, default=ASSETS)
    args = ap.parse_args()
    df, real_pack, mock = collect(args.n_mock, args.seed, args.real_root)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(stats_table(df))
    plot_grid(real_pack, mock, args.out_dir / "mock_vs_real.png")
    plot_stats(df, args.out_dir / "mock_vs_real_stats.png")
    print(f"wrote {args.out_dir / 'mock_vs_real.png'} and {args.out_dir / 'mock_vs_real_stats.png'}")


if __name__ == "__main__":
    main()
