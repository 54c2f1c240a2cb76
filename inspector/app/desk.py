"""The small judgements the Inspect desk makes for a person: the estimators' consensus, a clicked feature's
centre, the lines it may be, and a refused value said in the inspector's words.

    estimators_consensus(item)          # z where most estimators agree, or None
    refine_click(item, 5034.2)          # (fitted centre, its error) or (the click, None)
    feature_lines()                     # {"Mg II 2797": 2797.18, ...} the lines a feature may be called
    person_words(err, "accept", "")     # "Set a quality first: press 0-4 ..."
"""
from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from db.validate import QUALITY_MAX, QUALITY_MIN, DecisionError, z_range
from inspector.estimates import NO_Z
from model import lines as L
from model.feature_fit import fit_feature
from model.metrics import C_KMS

AGREE_KMS = 3000.0  # estimators this close count as the same answer (half the 6000 km/s catastrophe line)


def _estimates(item: Any) -> list[float]:
    """FNet, the template fit and the catalog's estimates of this spectrum that give a z."""
    zs = [item.z_fnet, item.z_tpl, *(item.info.get(k) for k in ("z_pipe", "z_qn", "z_pca"))]
    return [float(z) for z in zs if z is not None and np.isfinite(z) and z > NO_Z]


def estimators_consensus(item: Any) -> float | None:
    """The median z of the largest group of estimators within AGREE_KMS of each other (two at least);
    None where no two agree. A tie goes to the group holding the lower-chi2 template z, then FNet's."""
    zs = _estimates(item)
    best: list[float] = []
    for z0 in zs:
        group = [z for z in zs if abs(C_KMS * (z - z0) / (1 + z0)) < AGREE_KMS]
        if len(group) > len(best) or (len(group) == len(best) and item.z_tpl is not None
                                      and item.z_tpl in group and item.z_tpl not in best):  # fmt: skip
            best = group
    return float(np.median(best)) if len(best) >= 2 else None


def refine_click(item: Any, observed_wave: float) -> tuple[float, float | None]:
    """The clicked feature's fitted centre and 1-sigma error (`model.feature_fit`); the click itself, with
    no error, where there is no significant feature to fit."""
    if item is None or item.wave.size == 0:
        return float(observed_wave), None
    fit = fit_feature(item.wave, item.flux, item.ivar, float(observed_wave))
    if fit is None:
        return float(observed_wave), None
    return float(fit.center), float(fit.center_err)


@cache
def feature_lines() -> dict[str, float]:
    """The lines a clicked feature may be called, major ones first (by wavelength), then the rest."""
    t = L.line_table()
    t = t.assign(order=~t["major"]).sort_values(["order", "lambda"], kind="stable")
    return {f"{r['name']} {r['lambda']:.0f}": float(r["lambda"]) for _, r in t.iterrows()}


def person_words(err: DecisionError, action: str, spectral_type: str) -> str:
    """A refused value as the inspector would want to hear it: what is missing and which key fixes it."""
    if err.field == "quality":
        return f"Set a quality first: press {QUALITY_MIN}-{QUALITY_MAX} (4 = two secure features), then save again."
    if err.field in ("z_final", "z"):
        lo, hi = z_range(spectral_type or None)
        kind = f"a {spectral_type}" if spectral_type else "a quasar"
        if err.value is None:
            return "This needs a redshift: adopt a candidate (a), type one, or click a feature."
        return (f"{err.value!r} is not a usable z for {kind}: give a number between {lo:g} and {hi:g}"
                + ("" if spectral_type else " (a negative z only with type STAR or GALAXY: Shift+s / Shift+g)")
                + ".")
    if err.field == "spectral_type":
        return (f"Type {spectral_type or '–'} does not go with {action.replace('_', ' ')}: a quasar type is "
                "saved with Enter / c, a STAR, GALAXY or UNKNOWN with x.")
    if err.field == "comment":
        return f"The comment cannot be saved as it is ({err}); edit it and save again."
    return f"Not saved: {err}"


__all__ = ["AGREE_KMS", "estimators_consensus", "feature_lines", "person_words", "refine_click"]
