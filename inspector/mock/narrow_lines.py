"""A quasar's narrow-line region: [O III] 4959/5007, [O II], [Ne III], [Ne V], narrow Balmer, [N II], [S II].

The redrock eigenspectra carry only an average, blurred [O III], so a mock
built from them lacks the strong narrow [O III] of many low-z quasars, and a
model trained on it reads that sharp, isolated line as Mg II or Lya. Here each
mock quasar gets a rest EW([O III] 5007) drawn from what `calibration.py`
measured on the real quasars, and the other narrow lines in proportion.

EW is line flux over the continuum at 5100 A (the median over 5080-5120 A),
the definition `oiii_ew` measures on real and mock spectra alike, so the
drawn value is what the same measurement finds on the mock.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

from model.metrics import C_KMS


class NarrowLine(NamedTuple):
    name: str
    wave: float  # vacuum rest wavelength, A
    strength: float  # line flux relative to [O III] 5007


# Typical type-1 AGN narrow-line ratios: [O III] 5007 / Hbeta_narrow ~ 10 and the other ratios to
# Hbeta of a Seyfert narrow-line region (Osterbrock & Ferland 2006, "Astrophysics of Gaseous Nebulae
# and Active Galactic Nuclei", ch. 13, its NLR spectra), with [O II], [Ne III], [Ne V] set near their
# ratio to [O III] in the SDSS quasar composite (Vanden Berk et al. 2001, AJ 122, 549, Table 2),
# where they are ~10 % of [O III] 5007. Approximate medians: each quasar scatters them by
# RATIO_SCATTER_DEX, except the fixed atomic ratios of the [O III] and [N II] doublets.
NARROW_LINES = (
    NarrowLine("[Ne V] 3427", 3426.85, 0.08),
    NarrowLine("[O II] 3726", 3727.09, 0.05),
    NarrowLine("[O II] 3729", 3729.88, 0.07),
    NarrowLine("[Ne III] 3869", 3870.16, 0.10),
    NarrowLine("Hgamma narrow", 4341.68, 0.047),
    NarrowLine("Hbeta narrow", 4862.68, 0.10),
    NarrowLine("[O III] 4959", 4960.30, 1 / 2.98),
    NarrowLine("[O III] 5007", 5008.24, 1.0),
    NarrowLine("[O I] 6300", 6302.05, 0.04),
    NarrowLine("[N II] 6548", 6549.86, 0.25 / 3),
    NarrowLine("Halpha narrow", 6564.61, 0.31),
    NarrowLine("[N II] 6583", 6585.27, 0.25),
    NarrowLine("[S II] 6716", 6718.29, 0.07),
    NarrowLine("[S II] 6731", 6732.67, 0.07),
)
REFERENCE = "[O III] 5007"  # the line whose EW is drawn; the others' strengths are relative to it
# Lines tied to another by atomic physics move with it, not independently.
FIXED_TO = {"[O III] 4959": "[O III] 5007", "[N II] 6548": "[N II] 6583"}
RATIO_SCATTER_DEX = 0.2
SIGMA_KMS_RANGE = (80.0, 250.0)  # log-uniform: FWHM ~ 190-590 km/s observed (SDSS resolution included)
VELOCITY_OFFSET_KMS = 60.0  # Gaussian sigma of the NLR's shift from the systemic (broad-line) z
EW_JITTER_DEX = 0.08  # smoothed bootstrap of the measured EWs
MIN_CALIB_SN = 3.0  # EWs measured on noisier real spectra are too noisy to draw from

# rest windows (A) of the measurement: the line, the pseudo-continuum on either side, and 5100 A
OIII_LINE = (4990.0, 5026.0)
OIII_SIDES = ((4976.0, 4988.0), (5030.0, 5050.0))
CONT_5100 = (5080.0, 5120.0)
# where the eigen model's own doublet is cut out: blue of 4959, between the two lines, red of 5007
OIII_ANCHORS = ((4925.0, 4937.0), OIII_SIDES[0], OIII_SIDES[1])


def oiii_ew(rest_wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None = None) -> float:
    """Rest EW([O III] 5007), A: flux above the local pseudo-continuum over the 5100 A continuum.

    The local pseudo-continuum (straight line between the side windows)
    removes the broad Hbeta wing and Fe II under the line; dividing by the
    5100 A continuum makes the number the one the mock draws. NaN where a
    window has no good pixels or the continuum is not positive.
    """
    good = np.isfinite(flux) if ivar is None else (ivar > 0) & np.isfinite(flux)
    sel = [good & (rest_wave >= a) & (rest_wave <= b) for a, b in (*OIII_SIDES, CONT_5100, OIII_LINE)]
    if min(s.sum() for s in sel) < 3:
        return np.nan
    xb, xr = (np.median(rest_wave[s]) for s in sel[:2])
    yb, yr = (np.median(flux[s]) for s in sel[:2])
    cont5100 = np.median(flux[sel[2]])
    if cont5100 <= 0:
        return np.nan
    line = sel[3]
    local = yb + (yr - yb) * (rest_wave[line] - xb) / (xr - xb)
    return float(np.sum((flux[line] - local) * np.gradient(rest_wave)[line]) / cont5100)


def draw_oiii_ew(rng: np.random.Generator, calib: dict) -> float:
    """A rest EW([O III] 5007) from the real quasars' measured ones (smoothed bootstrap).

    Every real spectrum with S/N >= MIN_CALIB_SN counts the same: over the
    ~30 pixels of the line the EW's noise is then a few A, far below the
    spread between quasars. A measured EW at or below zero is drawn as 0.
    """
    ew = calib["OIII_ew"].astype(float)
    ok = (calib["OIII_sn"] >= MIN_CALIB_SN) & np.isfinite(ew)
    pick = rng.choice(ew[ok])
    return float(max(pick, 0.0) * 10 ** rng.normal(0, EW_JITTER_DEX))


def without_oiii(rest_wave: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """`flux` with the [O III] doublet it carries replaced by its pseudo-continuum.

    The eigenspectra's [O III] is an average of the fitted quasars', blurred
    with the broad lines; removing it lets the drawn EW be the total one, and
    the doublet keep its 1:2.98 ratio, instead of stacking two [O III]s.
    Piecewise linear through the medians of OIII_ANCHORS (where covered).
    """
    xs, ys = [], []
    for a, b in OIII_ANCHORS:
        sel = (rest_wave >= a) & (rest_wave <= b)
        if sel.sum() < 3:
            return flux
        xs.append(np.median(rest_wave[sel]))
        ys.append(np.median(flux[sel]))
    span = (rest_wave > xs[0]) & (rest_wave < xs[-1])
    out = flux.copy()
    out[span] = np.interp(rest_wave[span], xs, ys)
    return out


def continuum_5100(rest_wave: np.ndarray, flux: np.ndarray) -> float:
    """The EW reference: median flux over 5080-5120 A, or over the reddest 200 px where 5100 A is not covered."""
    sel = (rest_wave >= CONT_5100[0]) & (rest_wave <= CONT_5100[1])
    return float(np.median(flux[sel] if sel.sum() >= 3 else flux[-200:]))


def add_narrow_lines(rng: np.random.Generator, rest_wave: np.ndarray, flux: np.ndarray, ew_5007: float, cont_5100: float) -> np.ndarray:
    """`flux` plus every narrow line, [O III] 5007 with rest EW `ew_5007` against the continuum `cont_5100`.

    All lines share one width and one velocity offset (they come from one
    region); Gaussians are integrated over each pixel so a line narrower than
    a few pixels keeps its flux.
    """
    if ew_5007 <= 0:
        return flux
    sigma_kms = float(np.exp(rng.uniform(*np.log(SIGMA_KMS_RANGE))))
    shift = 1 + rng.normal(0, VELOCITY_OFFSET_KMS) / C_KMS
    scatter = {ln.name: 10 ** rng.normal(0, RATIO_SCATTER_DEX) for ln in NARROW_LINES if ln.name not in FIXED_TO}
    scatter[REFERENCE] = 1.0
    flux_5007 = ew_5007 * cont_5100
    edges = np.concatenate([[1.5 * rest_wave[0] - 0.5 * rest_wave[1]], 0.5 * (rest_wave[1:] + rest_wave[:-1]), [1.5 * rest_wave[-1] - 0.5 * rest_wave[-2]]])
    out = flux.copy()
    for ln in NARROW_LINES:
        centre = ln.wave * shift
        if not rest_wave[0] < centre < rest_wave[-1]:
            continue
        sigma = centre * sigma_kms / C_KMS
        lo, hi = np.searchsorted(edges, [centre - 6 * sigma, centre + 6 * sigma])
        lo, hi = max(lo - 1, 0), min(hi, len(rest_wave))
        cdf = ndtr((edges[lo : hi + 1] - centre) / sigma)
        strength = ln.strength * scatter[FIXED_TO.get(ln.name, ln.name)]
        out[lo:hi] += strength * flux_5007 * np.diff(cdf) / np.diff(edges[lo : hi + 1])
    return out
