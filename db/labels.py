"""Training labels from the inspectors' decisions, and the fixed held-out split of decided spectra.

    labels = decided_labels(s, min_quality=3)   # DataFrame object_id -> z, quality, n_inspectors
    classes = decided_classes(s, min_quality=3) # DataFrame object_id -> class_person, z, quality
    held = is_held_out(labels.index)            # bool array, fixed forever for each object_id

A label is the consensus z (`db.consensus.consensus`, one inspector is
enough) of a spectrum whose verdict is a quasar at a redshift: every current
judgement is an accept or a correct (or a resolution settles it as a QSO
type), the verdict is 'single', 'agree' or 'resolved', and the (mean)
quality is >= `min_quality`. Spectra called not-a-quasar or a bad spectrum by
any current judgement (unless a resolution settled them as a quasar), and
unresolved conflicts, give no label.

A class (`decided_classes`, for a model with a class head) comes from the
same verdicts plus the not-a-quasar ones: the DR16Q CLASS_PERSON code of the
spectral type the inspectors gave, which `model.classes.from_class_person`
turns into a class index (a not_qso of no stated type into "unknown").

The held-out split is a pure function of the object id (SHA-1 of a fixed
salt and the id, first 8 bytes, below `HELD_OUT_FRACTION` of the range), so
it never changes as decisions grow: a spectrum held out once is held out for
every later model. `held_out_rule()` is recorded with each trained model.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from db.consensus import consensus
from db.validate import ACTION_BY_NAME, QSO_TYPES, TYPE_BY_NAME

HELD_OUT_SALT = "fnet-inspector-held-out-v1"
HELD_OUT_FRACTION = 0.2
LABEL_ACTIONS = frozenset({"accept", "correct"})
LABEL_COLUMNS = ("z", "quality", "n_inspectors")
NOT_QSO_ACTION = ACTION_BY_NAME["not_qso"].name
CLASS_COLUMNS = ("class_person", "z", "quality")


def held_out_rule() -> dict[str, Any]:
    """What defines the held-out split (recorded with every retrained model)."""
    return {"hash": "sha1", "salt": HELD_OUT_SALT, "fraction": HELD_OUT_FRACTION}


def held_out_score(object_id: str, salt: str = HELD_OUT_SALT) -> float:
    """A fixed number in [0, 1) for an object id."""
    h = hashlib.sha1(f"{salt}:{object_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def is_held_out(object_ids: Iterable[Any], fraction: float = HELD_OUT_FRACTION, salt: str = HELD_OUT_SALT) -> np.ndarray:
    """True for the object ids in the fixed held-out split."""
    return np.array([held_out_score(str(o), salt) < fraction for o in object_ids], dtype=bool)


def decided_labels(session: Session, min_quality: float = 3) -> pd.DataFrame:
    """Consensus z of the spectra inspectors called a quasar at a redshift (see the module docstring).

    Index object_id; columns z (float), quality (float), n_inspectors (int); sorted by object_id.
    """
    rows = []
    for v in consensus(session, min_inspectors=1):
        if v.status not in ("single", "agree", "resolved") or v.z is None or v.quality is None:
            continue
        if v.status == "resolved":
            if v.spectral_type not in QSO_TYPES:
                continue
        elif any(d.action not in LABEL_ACTIONS for d in v.decisions):
            continue
        if float(v.quality) < float(min_quality) or not np.isfinite(v.z):
            continue
        rows.append((v.object_id, float(v.z), float(v.quality), len(v.decisions)))
    df = pd.DataFrame(rows, columns=["object_id", *LABEL_COLUMNS])
    df["n_inspectors"] = df["n_inspectors"].astype(int)
    return df.set_index("object_id").sort_index()


def decided_classes(session: Session, min_quality: float = 3) -> pd.DataFrame:
    """What inspectors said each spectrum is, for training a class head: one row per spectrum whose verdict
    names a class.

    Index object_id; columns class_person (the DR16Q CLASS_PERSON code of the verdict's spectral type: 3
    QSO, 30 BAL QSO, 1 STAR, 4 GALAXY, 0 a not-a-quasar of no stated type), z (the verdict's z, NaN where
    none was given), quality; sorted by object_id. From 'single', 'agree' and 'resolved' verdicts with
    (mean) quality >= `min_quality` whose every current judgement is an accept / correct (a quasar) or a
    not_qso, or a resolution. A bad spectrum, a mix of the two, or an unresolved conflict names no class.
    """
    rows = []
    for v in consensus(session, min_inspectors=1):
        if v.status not in ("single", "agree", "resolved") or v.quality is None or v.spectral_type is None:
            continue
        actions = {d.action for d in v.decisions}
        if v.status != "resolved" and not (actions <= LABEL_ACTIONS or actions == {NOT_QSO_ACTION}):
            continue
        if float(v.quality) < float(min_quality):
            continue
        z = float(v.z) if v.z is not None and np.isfinite(v.z) else np.nan
        rows.append((v.object_id, TYPE_BY_NAME[v.spectral_type].class_person, z, float(v.quality)))
    df = pd.DataFrame(rows, columns=["object_id", *CLASS_COLUMNS])
    df["class_person"] = df["class_person"].astype(int)
    return df.set_index("object_id").sort_index()


def decided_object_ids(session: Session) -> list[str]:
    """Object ids with at least one deciding judgement (labelled or not)."""
    return sorted(v.object_id for v in consensus(session, min_inspectors=1))


__all__ = [
    "HELD_OUT_FRACTION", "HELD_OUT_SALT", "decided_classes", "decided_labels", "decided_object_ids", "held_out_rule",
    "held_out_score", "is_held_out",
]  # fmt: skip
