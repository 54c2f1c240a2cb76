"""The spectral classes FNet's class head predicts: one table, used by training, prediction and evaluation.

Why these five: a quasar-target superset (DR16Q's 1.44 M observations) is
about half quasars, the rest stars, galaxies and spectra with no usable signal.
BAL quasars are kept apart from other quasars because their absorption troughs
change what the redshift rests on, and DR16Q's visual inspection labels them
separately (CLASS_PERSON 30). "BAD" is a spectrum with nothing to classify
(sky-dominated, empty, broken): a person should see it, not a catalog.
"""
from __future__ import annotations

import numpy as np

# name, DR16Q CLASS_PERSON codes that mean it, a quasar?
CLASS_TABLE: tuple[tuple[str, tuple[int, ...], bool], ...] = (
    ("QSO", (3, 50), True),  # 50: blazar, a quasar for a quasar catalog
    ("BAL", (30,), True),
    ("STAR", (1,), False),
    ("GALAXY", (4,), False),
    ("BAD", (), False),  # no DR16Q code: the mock's empty and sky-dominated spectra (MOCK_KIND "BAD")
)
CLASSES: tuple[str, ...] = tuple(name for name, _, _ in CLASS_TABLE)
N_CLASSES = len(CLASSES)
QSO_CLASSES: tuple[str, ...] = tuple(name for name, _, q in CLASS_TABLE if q)
QSO_INDICES: tuple[int, ...] = tuple(CLASSES.index(name) for name in QSO_CLASSES)
UNKNOWN = -1  # class index of a spectrum with no class label (ignored by the class loss)
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_cls_{name.lower()}" for name in CLASSES)


def class_index(name: str) -> int:
    """Index of a class name (case-insensitive); UNKNOWN for anything else."""
    up = str(name).strip().upper()
    return CLASSES.index(up) if up in CLASSES else UNKNOWN


def class_indices(names: object) -> np.ndarray:
    """Class indices of a sequence of class names (None, NaN or an unknown name -> UNKNOWN)."""
    return np.array([class_index(v) if isinstance(v, str) else UNKNOWN for v in names], dtype=np.int64)


def from_class_person(codes: np.ndarray) -> np.ndarray:
    """Class indices from DR16Q CLASS_PERSON codes; UNKNOWN for 0 (not inspected), -1 and anything else."""
    c = np.asarray(codes, dtype=np.float64)
    out = np.full(c.shape, UNKNOWN, dtype=np.int64)
    for i, (_, person_codes, _) in enumerate(CLASS_TABLE):
        for code in person_codes:
            out[c == code] = i
    return out


def p_qso(prob: np.ndarray) -> np.ndarray:
    """Probability that a spectrum is a quasar of any kind: the sum over the quasar classes (N x N_CLASSES in)."""
    p = np.asarray(prob, dtype=np.float64)
    return p[:, list(QSO_INDICES)].sum(axis=1)


def is_qso_class(idx: np.ndarray) -> np.ndarray:
    """Whether each class index is a quasar class."""
    return np.isin(np.asarray(idx), QSO_INDICES)


__all__ = [
    "CLASS_TABLE", "CLASSES", "N_CLASSES", "QSO_CLASSES", "QSO_INDICES", "UNKNOWN", "PROB_COLUMNS", "class_index",
    "class_indices", "from_class_person", "p_qso", "is_qso_class",
]
