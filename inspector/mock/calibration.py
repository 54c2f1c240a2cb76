"""Measure, on the real SDSS spectra, what the mock survey draws from; store it in `assets/`.

Two things a mock cannot invent and a network trained on it will notice:

* the variety of real quasar spectra: we fit the redrock QSO eigenspectra
  (plus a 3-term Legendre polynomial, as redrock does) to every labelled real
  quasar at its reference z and keep the coefficients, so the mock draws
  line shapes and continuum distortions that real quasars have;
* the narrow-line region: the rest EW([O III] 5007) of every labelled real
  quasar whose [O III] is in its window (z < ~0.8), measured as
  `narrow_lines.oiii_ew` defines it, because the eigenspectra carry only an
  average blurred [O III] and the strong-[O III] tail is what a model
  trained on them confuses with Mg II or Lya;
* broad Halpha: the rest EW of every labelled real quasar whose Halpha is
  in its window (z < ~0.55), measured as `broad_halpha.halpha_ew` defines
  it, because four eigenspectra average the strong Balmer lines away;
* the noise and the instrument: each real file's 1/sqrt(ivar) (sky lines,
  the noisy blue end, the dichroic, masked columns, the SDSS-I or BOSS
  wavelength range) and its sky spectrum, on the observed-frame grid,
  normalised to a median of 1.

`python -m inspector.mock.calibration` rebuilds `assets/mock_calibration.npz`
from `../shared/data/real/`; a fresh clone uses the shipped file. With
`--holdout-half` only half of the object groups are used, so the other half
stays an untouched sim-to-real test.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from inspector.mock.broad_halpha import halpha_ew
from inspector.mock.narrow_lines import oiii_ew
from inspector.mock.templates import ASSETS, qso_basis
from inspector.readers import read_spec_file
from inspector.realset import REAL_ROOT, labelled_quasars

CALIBRATION_FILE = ASSETS / "mock_calibration.npz"

# Observed-frame grid of the noise library: covers BOSS 3550-10400 A at 1e-4 dex.
NOISE_LOGLAM0 = 3.5500
NOISE_NPIX = 4700
NOISE_LOGLAM = NOISE_LOGLAM0 + 1e-4 * np.arange(NOISE_NPIX)
N_POLY = 3
TEMPLATE_Z_RANGE = {"LOZ": (0.0, 1.7), "HIZ": (1.3, 7.0)}


def _read_coadd(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    s = read_spec_file(path)
    return np.log10(s.wave), s.flux.astype(float), s.ivar.astype(float), None if s.sky is None else s.sky.astype(float)


def fit_eigen(loglam: np.ndarray, flux: np.ndarray, ivar: np.ndarray, z: float, which: str) -> dict | None:
    """ivar-weighted least squares of the 4 eigenvectors + Legendre terms at redshift z."""
    basis = qso_basis(which).at(10**loglam / (1 + z))
    ok = np.all(np.isfinite(basis), axis=0) & (ivar > 0) & np.isfinite(flux)
    if ok.sum() < 300:
        return None
    x = np.linspace(-1, 1, loglam.size)[ok]
    design = np.vstack([basis[:, ok], np.polynomial.legendre.legvander(x, N_POLY - 1).T])
    w = np.sqrt(ivar[ok])
    coef, *_ = np.linalg.lstsq((design * w).T, flux[ok] * w, rcond=None)
    if coef[0] <= 0:
        return None
    chi2 = float(np.sum(((design.T @ coef - flux[ok]) * w) ** 2) / ok.sum())
    return {"coef": coef / coef[0], "amp": coef[0], "chi2": chi2, "npix": int(ok.sum())}


def _half(group: str) -> int:
    return int(hashlib.sha1(group.encode()).hexdigest(), 16) % 2


def build(real_root: Path = REAL_ROOT, holdout_half: bool = False) -> dict[str, np.ndarray]:
    """Fit every labelled real quasar and read every real file's noise; return the arrays to store."""
    quasars = labelled_quasars(real_root)
    if holdout_half:
        quasars = quasars[quasars["object_group"].astype(str).map(_half) == 0]
    out: dict[str, list] = {f"{w}_{k}": [] for w in TEMPLATE_Z_RANGE for k in ("coef", "sn", "z")}
    out |= {f"{line}_{k}": [] for line in ("OIII", "HALPHA") for k in ("ew", "sn", "z")}
    for _, row in quasars.iterrows():
        loglam, flux, ivar, _ = _read_coadd(real_root / row["file"])
        for line, measure in (("OIII", oiii_ew), ("HALPHA", halpha_ew)):
            ew = measure(10**loglam / (1 + row["z_ref"]), flux, ivar)
            if np.isfinite(ew):
                out[f"{line}_ew"].append(ew)
                out[f"{line}_sn"].append(row["sn_median_all"])
                out[f"{line}_z"].append(row["z_ref"])
        for which, (zlo, zhi) in TEMPLATE_Z_RANGE.items():
            if not zlo <= row["z_ref"] <= zhi:
                continue
            fit = fit_eigen(loglam, flux, ivar, row["z_ref"], which)
            if fit is None or fit["chi2"] > 10:
                continue
            out[f"{which}_coef"].append(fit["coef"])
            out[f"{which}_sn"].append(row["sn_median_all"])
            out[f"{which}_z"].append(row["z_ref"])

    man = pd.read_csv(real_root / "manifest.csv")
    man = man[man["file"].str.startswith("sdss/")]
    if holdout_half:
        man = man[man["object_group"].astype(str).map(_half) == 0]
    sigma_rel, sky_rel, sdss1 = [], [], []
    for _, row in man.iterrows():
        loglam, flux, ivar, sky = _read_coadd(real_root / row["file"])
        idx = np.rint((loglam - NOISE_LOGLAM0) / 1e-4).astype(int)
        inside = (idx >= 0) & (idx < NOISE_NPIX)
        rel = np.zeros(NOISE_NPIX, np.float32)  # relative sqrt(ivar); 0 = no data / masked
        good = inside & (ivar > 0)
        sq = np.sqrt(ivar[good])
        rel[idx[good]] = sq / np.median(sq)
        s = np.zeros(NOISE_NPIX, np.float32)
        if sky is not None:
            med = np.median(np.abs(sky[inside])) or 1.0
            s[idx[inside]] = sky[inside] / med
        sigma_rel.append(rel)
        sky_rel.append(s)
        sdss1.append(row["survey"] == "SDSS-I/II")
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
    arrays["noise_sqrt_ivar_rel"] = np.asarray(sigma_rel, np.float16)
    arrays["noise_sky_rel"] = np.asarray(sky_rel, np.float16)
    arrays["noise_is_sdss1"] = np.asarray(sdss1, bool)
    arrays["noise_loglam0"] = np.float64(NOISE_LOGLAM0)
    arrays["holdout_half"] = np.bool_(holdout_half)
    return arrays


def load(path: Path = CALIBRATION_FILE) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real-root", type=Path, default=REAL_ROOT)
    ap.add_argument("--out", type=Path, default=CALIBRATION_FILE)
    ap.add_argument("--holdout-half", action="store_true", help="calibrate on half of the object groups only")
    args = ap.parse_args()
    arrays = build(args.real_root, args.holdout_half)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
