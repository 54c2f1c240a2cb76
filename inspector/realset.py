"""The labelled real SDSS quasars in `../shared/data/real/`: the sim-to-real test set.

One definition used by the mock's calibration, the evaluation and the
benchmarks: quasars by pipeline class or by a curated reference z, with
`z_ref` = the manifest's `ref_z` where given (it corrects the known pipeline
failures), else the file's own Z. Repeat epochs of one object share an
`object_group`, so splits can keep them together.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from inspector.readers import read_spec_file
from model.grid import resample_one

REAL_ROOT = Path(os.environ.get("FNET_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))


def available(root: Path = REAL_ROOT) -> bool:
    return (root / "manifest.csv").exists()


def reference_z(manifest: pd.DataFrame) -> pd.Series:
    """The z we believe for each row: the curated ref_z where given, else the file's own Z."""
    ref = pd.to_numeric(manifest["ref_z"], errors="coerce")
    return ref.where(ref.notna(), pd.to_numeric(manifest["z"], errors="coerce"))


def labelled_quasars(root: Path = REAL_ROOT) -> pd.DataFrame:
    """Manifest rows of sdss/ quasars with a reference z (pipeline class QSO, or a curated ref_z)."""
    man = pd.read_csv(root / "manifest.csv")
    man = man[man["file"].str.startswith("sdss/")].copy()
    man["z_ref"] = reference_z(man)
    has_ref = pd.to_numeric(man["ref_z"], errors="coerce").notna()
    keep = ((man["class"] == "QSO") | has_ref) & man["z_ref"].notna()
    return man[keep].reset_index(drop=True)


def load_on_grid(root: Path = REAL_ROOT) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(flux, ivar) N x 4618 on the FNet grid and the manifest rows, for every labelled real quasar."""
    table = labelled_quasars(root)
    flux = np.zeros((len(table), 4618), np.float32)
    ivar = np.zeros_like(flux)
    for k, rel in enumerate(table["file"]):
        s = read_spec_file(root / rel)
        flux[k], ivar[k] = resample_one(np.log10(s.wave), s.flux, s.ivar, s.and_mask)
    return flux, ivar, table
