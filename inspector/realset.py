"""The labelled real SDSS spectra in `../shared/data/real/`: the sim-to-real test set.

One definition used by the mock's calibration, the evaluation and the
benchmarks. Every sdss/ file gets a true class (`true_class`, by
`CLASS_RULES`) and a reference redshift `z_ref` = the manifest's `ref_z`
where given (it corrects the known pipeline failures), else the file's own Z.

The redshift set (`labelled_quasars`, `z_scored`) is the files a quasar
redshift is scored on: the true quasars, plus an object the pipeline called a
quasar in one epoch and a galaxy in another (its redshift is not in doubt,
only its name). It is the set the mock's calibration was fitted on, so it
must not drift. Stars and galaxies are scored on their class only: the z of a
non-quasar is not a quasar redshift. Repeat epochs of one object share an
`object_group`, so splits can keep them together.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from inspector.readers import read_spec_file
from model.classes import QSO_CLASSES, UNKNOWN, class_index
from model.grid import resample_one

REAL_ROOT = Path(os.environ.get("FNET_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))

DISPUTED = ""  # true_class of a file whose class its own epochs disagree on: no class truth


def _notes_say(text: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda man: man["notes"].fillna("").str.contains(text, case=False, regex=False)


def _has_ref_z(man: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(man["ref_z"], errors="coerce").notna()


# The true class of a real file, first matching rule wins: (why, rule on the manifest, class).
# The curated notes and ref_z of ../shared/data/README.md ("Flagged spectra") overrule the pipeline's CLASS.
CLASS_RULES: tuple[tuple[str, Callable[[pd.DataFrame], pd.Series], str], ...] = (
    ("notes: BAL quasar", _notes_say("BAL quasar"), "BAL"),
    ("curated quasar ref_z", _has_ref_z, "QSO"),  # e.g. spec-9367-57758-0500, pipeline STAR, a z 2.7 quasar
    ("epochs disagree on the class", _notes_say("class disagreement between epochs"), DISPUTED),
    ("pipeline CLASS", lambda man: man["class"].isin(["QSO", "STAR", "GALAXY"]), "PIPELINE"),
)


def available(root: Path = REAL_ROOT) -> bool:
    return (root / "manifest.csv").exists()


def reference_z(manifest: pd.DataFrame) -> pd.Series:
    """The z we believe for each row: the curated ref_z where given, else the file's own Z."""
    ref = pd.to_numeric(manifest["ref_z"], errors="coerce")
    return ref.where(ref.notna(), pd.to_numeric(manifest["z"], errors="coerce"))


def true_classes(manifest: pd.DataFrame) -> pd.DataFrame:
    """`true_class` (a `model.classes` name, DISPUTED, or None where no rule applies) and `class_why` per row."""
    cls = pd.Series([None] * len(manifest), index=manifest.index, dtype=object)
    why = pd.Series([None] * len(manifest), index=manifest.index, dtype=object)
    for reason, rule, name in CLASS_RULES:
        hit = rule(manifest).to_numpy(bool) & cls.isna().to_numpy()
        cls[hit] = manifest.loc[hit, "class"] if name == "PIPELINE" else name
        why[hit] = reason
    return pd.DataFrame({"true_class": cls, "class_why": why})


def labelled_spectra(root: Path = REAL_ROOT) -> pd.DataFrame:
    """Manifest rows of every sdss/ file, with z_ref, true_class, class_why and z_scored (see the module docstring)."""
    man = pd.read_csv(root / "manifest.csv")
    man = man[man["file"].str.startswith("sdss/")].reset_index(drop=True)
    man["z_ref"] = reference_z(man)
    man = pd.concat([man, true_classes(man)], axis=1)
    quasar = man["true_class"].isin(QSO_CLASSES)
    disputed_quasar = (man["true_class"] == DISPUTED) & (man["class"] == "QSO")
    man["z_scored"] = (quasar | disputed_quasar) & man["z_ref"].notna()
    return man


def labelled_quasars(root: Path = REAL_ROOT) -> pd.DataFrame:
    """The rows of `labelled_spectra` whose redshift is scored: the real quasars."""
    man = labelled_spectra(root)
    return man[man["z_scored"]].reset_index(drop=True)


def load_on_grid(root: Path = REAL_ROOT, table: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(flux, ivar) N x 4618 on the FNet grid and the manifest rows, for `table` (default: the labelled quasars)."""
    table = labelled_quasars(root) if table is None else table.reset_index(drop=True)
    flux = np.zeros((len(table), 4618), np.float32)
    ivar = np.zeros_like(flux)
    for k, rel in enumerate(table["file"]):
        s = read_spec_file(root / rel)
        flux[k], ivar[k] = resample_one(np.log10(s.wave), s.flux, s.ivar, s.and_mask)
    return flux, ivar, table


def store_truth(index: pd.DataFrame, root: Path = REAL_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """(true class index, reference z) per row of a store ingested from the real sdss/ files (matched by file
    name); UNKNOWN / NaN for a file the manifest does not label or whose epochs disagree on the class."""
    man = labelled_spectra(root)
    by_name = {Path(f).name: i for i, f in enumerate(man["file"])}
    cls = np.full(len(index), UNKNOWN, np.int64)
    z = np.full(len(index), np.nan)
    for k, f in enumerate(index["file"].astype(str)):
        i = by_name.get(Path(f).name)
        if i is None or not isinstance(man["true_class"].iloc[i], str) or man["true_class"].iloc[i] == DISPUTED:
            continue
        cls[k] = class_index(man["true_class"].iloc[i])
        z[k] = man["z_ref"].iloc[i]
    return cls, z
