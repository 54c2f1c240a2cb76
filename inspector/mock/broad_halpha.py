"""A low-z quasar's broad Halpha at the strength real quasars show.

Four eigenspectra fitted to real quasars average the Balmer decrement away:
the mock's rest EW(Halpha) came out at a median of 220 A against 336 A on
the real SDSS quasars (`python -m inspector.mock.compare`), and the strong
tail was missing altogether. A model trained on such a mock reads a real
z ~ 0.3 quasar's dominant broad line at 8300-8600 A as Mg II (z ~ 2) or
Lya (z ~ 6), the commonest FNet miss on real low-z spectra
(`python bench/fnet_failures.py`). Here each mock quasar's broad Halpha is
scaled to a rest EW drawn from those `calibration.py` measured on the real
quasars, as `narrow_lines` does for [O III].

EW is the flux above a straight continuum between two side windows over that
continuum, in rest A, the same measurement on real and mock spectra. The
line window takes in the narrow Halpha and [N II] (they cannot be cut out of
a real broad line), but not [S II].
"""
from __future__ import annotations

import numpy as np

LINE = (6400.0, 6700.0)
SIDES = ((6150.0, 6250.0), (6850.0, 6950.0))
# the broad-line component is scaled over this rest span, tapered to nothing over TAPER_A either side,
# so the continuum the EW is measured against is left as it was
SCALE_SPAN = (6280.0, 6820.0)
TAPER_A = 25.0
EW_JITTER_DEX = 0.08  # smoothed bootstrap of the measured EWs
MIN_CALIB_SN = 3.0
SCALE_STEPS = 3
MIN_MODEL_EW = 5.0  # a model with (almost) no Halpha of its own has no line shape to scale


def halpha_ew(rest_wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None = None) -> float:
    """Rest EW(Halpha + [N II]), A; NaN where a window has too few good pixels or the continuum is not positive."""
    good = np.isfinite(flux) if ivar is None else (ivar > 0) & np.isfinite(flux)
    sel = [good & (rest_wave >= a) & (rest_wave <= b) for a, b in (*SIDES, LINE)]
    if min(s.sum() for s in sel) < 5:
        return np.nan
    xb, xr = (np.median(rest_wave[s]) for s in sel[:2])
    yb, yr = (np.median(flux[s]) for s in sel[:2])
    line = sel[2]
    cont = yb + (yr - yb) * (rest_wave[line] - xb) / (xr - xb)
    if np.median(cont) <= 0:
        return np.nan
    return float(np.sum((flux[line] / cont - 1) * np.gradient(rest_wave)[line]))


def draw_halpha_ew(rng: np.random.Generator, calib: dict) -> float:
    """A rest EW(Halpha) from the real quasars' measured ones (smoothed bootstrap); NaN without a calibration."""
    if "HALPHA_ew" not in calib:
        return np.nan
    ew = calib["HALPHA_ew"].astype(float)
    ok = (calib["HALPHA_sn"] >= MIN_CALIB_SN) & np.isfinite(ew) & (ew > 0)
    if not ok.any():
        return np.nan
    return float(rng.choice(ew[ok]) * 10 ** rng.normal(0, EW_JITTER_DEX))


def _taper(rest_wave: np.ndarray) -> np.ndarray:
    lo, hi = SCALE_SPAN
    up = np.clip((rest_wave - (lo - TAPER_A)) / TAPER_A, 0, 1)
    down = np.clip(((hi + TAPER_A) - rest_wave) / TAPER_A, 0, 1)
    return np.minimum(up, down)


def with_halpha_ew(rest_wave: np.ndarray, flux: np.ndarray, lines: np.ndarray, target_ew: float) -> np.ndarray:
    """`flux` with its broad-line component `lines` rescaled around Halpha so that EW(Halpha) is `target_ew`.

    Left as it is where the target is not finite, Halpha is not covered, or
    the model has too little Halpha to scale. The line window's flux is not
    all broad line (host features, a curved continuum), so the scale is
    refined over SCALE_STEPS measurements.
    """
    shape = lines * _taper(rest_wave)
    out = flux
    for _ in range(SCALE_STEPS):
        now = halpha_ew(rest_wave, out)
        if not (np.isfinite(target_ew) and np.isfinite(now) and now >= MIN_MODEL_EW):
            return out
        scale = target_ew / now
        out = out + (scale - 1.0) * shape
        shape = shape * scale
    return out
