"""Which rows of a spectrum store a model trains on, with which labels, and which it holds out.

One definition for `inspector train`, the baseline, retraining and `inspector evaluate` (which
rebuilds a model's held-out split and checks it against the training-data hash the model recorded):
if any of them chose rows or labels differently, "held out" would silently stop meaning it.

Class labels, most trusted first: the mock's own truth (MOCK_KIND), a person's (DR16Q
CLASS_PERSON > 0), the file's pipeline CLASS. A spectrum with no usable signal ("BAD") has no
redshift label; stars and galaxies keep theirs, so the redshift head learns them too.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from model.classes import CLASSES, UNKNOWN, class_index, class_indices, from_class_person, is_qso_class
from model.data import split_rows

BAD = class_index("BAD")


def object_groups(index: pd.DataFrame) -> np.ndarray:
    """One key per spectrum naming its astronomical object, so repeat epochs stay on one side of a split.

    SDSS_NAME (the catalog's object name) where present, else the DESI
    TARGETID, else the spectrum's own object_id (a group of one).
    """
    keys = "spec:" + index["object_id"].astype(str)
    for col, tag in (("targetid", "tid:"), ("SDSS_NAME", "name:")):  # later columns win
        if col in index.columns:
            v = index[col]
            ok = v.notna().to_numpy().copy()
            if v.dtype == object or pd.api.types.is_string_dtype(v):
                ok &= (v.astype(str).str.strip() != "").to_numpy()
            keys = keys.where(~ok, tag + v.astype(str))
    return keys.to_numpy()


def store_classes(index: pd.DataFrame) -> np.ndarray:
    """Class index per store row (see the module docstring for the order of trust); UNKNOWN where none."""
    n = len(index)
    out = np.full(n, UNKNOWN, dtype=np.int64)
    if "spec_class" in index:
        out = class_indices(index["spec_class"])
    if "CLASS_PERSON" in index:
        cp = from_class_person(pd.to_numeric(index["CLASS_PERSON"], errors="coerce").to_numpy(np.float64))
        out = np.where(cp != UNKNOWN, cp, out)
    if "MOCK_KIND" in index:
        mk = class_indices(index["MOCK_KIND"])
        out = np.where(mk != UNKNOWN, mk, out)
    return out


def store_redshifts(index: pd.DataFrame, classes: np.ndarray | None = None) -> np.ndarray:
    """The redshift label per row (the store's `z`), NaN for a BAD spectrum, which has none."""
    z = pd.to_numeric(index["z"], errors="coerce").to_numpy(np.float64, na_value=np.nan) if "z" in index else np.full(len(index), np.nan)
    if classes is not None:
        z = np.where(classes == BAD, np.nan, z)
    return z


def training_rows(index: pd.DataFrame, with_classes: bool = False) -> np.ndarray:
    """Store rows to train on: the quasars (is_qso) with a finite z, or, for a model with a class
    head, every row with a class label and either a finite z or the class BAD."""
    if not with_classes:
        is_qso = index["is_qso"].fillna(False).astype(bool).to_numpy() if "is_qso" in index else np.zeros(len(index), bool)
        return np.flatnonzero(is_qso & np.isfinite(store_redshifts(index)))
    cls = store_classes(index)
    z = store_redshifts(index, cls)
    return np.flatnonzero((cls != UNKNOWN) & (np.isfinite(z) | (cls == BAD)))


def split(index: pd.DataFrame, val_fraction: float, seed: int, with_classes: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of `training_rows`, whole objects on one side."""
    rows = training_rows(index, with_classes)
    return split_rows(rows, val_fraction, seed=seed, groups=object_groups(index.iloc[rows]))


def labels(index: pd.DataFrame, with_classes: bool, z_quasars_only: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(z per store row, class per store row or None) as training uses them; `z_quasars_only`
    leaves the redshift of every non-quasar out (NaN), so only the class head learns from them."""
    cls = store_classes(index) if with_classes else None
    z = store_redshifts(index, cls)
    if z_quasars_only and cls is not None:
        z = np.where(is_qso_class(cls), z, np.nan)
    return z, cls


def held_out_rows(index: pd.DataFrame, provenance: dict[str, Any], val_fraction: float | None) -> np.ndarray | None:
    """The validation rows of the training run that `provenance` describes, or None when the rebuilt split
    does not hash to the model's recorded training data (then it is not the split that was used)."""
    from model.checkpoint import data_hash

    seed = (provenance.get("train_args") or {}).get("seed", provenance.get("seed"))
    if seed is None or not provenance.get("data_hash"):
        return None
    ids = index["object_id"].astype(str).to_numpy()
    with_classes = bool(provenance.get("class_head", False))
    z, cls = labels(index, with_classes, provenance.get("z_labels") == "quasars")
    train, val = split(index, 0.1 if val_fraction is None else float(val_fraction), int(seed), with_classes)
    if data_hash(ids[train], z[train], None if cls is None else cls[train]) == provenance["data_hash"]:
        return val
    return None


def quasar_rows(index: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The rows among `rows` whose class is a quasar (what redshift accuracy is scored on)."""
    return rows[is_qso_class(store_classes(index)[rows])]


__all__ = [
    "CLASSES", "object_groups", "store_classes", "store_redshifts", "training_rows", "split", "labels",
    "held_out_rows", "quasar_rows",
]
