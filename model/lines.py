"""The spectral line table (`assets/lines/`), in vacuum Angstrom, and line positions at a redshift.

    table = line_table()                     # emission + absorption, vacuum wavelengths
    obs = observed(table, z=2.31)            # lambda_vac * (1 + z), exact (no rounding)

The asset files list some wavelengths in air (vacuum=False, SDSS spZline
convention: air above 2000 A); they are converted here with the SDSS pipeline's
formula (idlutils `airtovac`: Ciddor 1996, which superseded Morton 1991 there;
the two agree to < 0.01 A over 2000-11000 A), so every marker is
drawn on the same (vacuum) wavelength scale as the spectra.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from model.assets import LINE_DIR

FILES = {"emission": "emission_lines.txt", "absorption": "absorption_lines.txt"}


def air_to_vacuum(air: np.ndarray | float) -> np.ndarray:
    """Vacuum wavelength (A) of an air wavelength (A), as SDSS idlutils `airtovac` computes it.

    Below 2000 A wavelengths are vacuum by convention and are returned unchanged.
    """
    a = np.asarray(air, dtype=float)
    sigma2 = (1e4 / a) ** 2  # wavenumber squared, micron^-2
    fact = 1.0 + 5.792105e-2 / (238.0185 - sigma2) + 1.67917e-3 / (57.362 - sigma2)
    return np.where(a >= 2000.0, a * fact, a)


def _read(path: Path, kind: str) -> pd.DataFrame:
    rows = []
    with path.open(encoding="utf-8") as f:
        body = [ln for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    for rec in csv.reader(body):
        if len(rec) < 5:
            continue
        name, longname, lam, vac, major = (x.strip() for x in rec[:5])
        rows.append({"name": name, "longname": longname, "lambda_file": float(lam),
                     "vacuum": vac.lower() == "true", "major": major.lower() == "true", "kind": kind})
    return pd.DataFrame(rows)


@lru_cache(maxsize=4)
def line_table(directory: str | None = None) -> pd.DataFrame:
    """Emission and absorption lines: name, longname, lambda_file, vacuum, major, kind, lambda (vacuum A)."""
    d = Path(directory) if directory else LINE_DIR
    df = pd.concat([_read(d / f, kind) for kind, f in FILES.items()], ignore_index=True)
    lam = df["lambda_file"].to_numpy(float)
    df["lambda"] = np.where(df["vacuum"].to_numpy(bool), lam, air_to_vacuum(lam))
    return df


def observed(table: pd.DataFrame, z: float, *, rest: bool = False) -> np.ndarray:
    """Where each line is drawn: lambda_vac * (1 + z) (observed frame) or lambda_vac (rest frame)."""
    lam = table["lambda"].to_numpy(float)
    return lam.copy() if rest else lam * (1.0 + float(z))


def select(table: pd.DataFrame, *, major_only: bool = True, absorption: bool = True) -> pd.DataFrame:
    """The lines to draw: the major ones (or all), with or without the absorption lines."""
    m = np.ones(len(table), bool)
    if major_only:
        m &= table["major"].to_numpy(bool)
    if not absorption:
        m &= (table["kind"] == "emission").to_numpy()
    return table[m].reset_index(drop=True)
