"""Intervening and intrinsic absorption: the Lyman-alpha forest, DLAs, Lyman-limit systems, BAL troughs.

All functions return a transmission (0..1) on the observed wavelengths they
are given, so `quasar.py` multiplies them into the emitted spectrum.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import expit, voigt_profile

from model.metrics import C_KMS

LYA, LYB, LYLIMIT = 1215.67, 1025.72, 911.75
FOREST_SIGMA_G = 1.4  # log-normal scatter of the forest optical depth; sets how "spiky" the forest is


def tau_eff_lya(z_abs: np.ndarray) -> np.ndarray:
    """Effective Lya optical depth, Faucher-Giguere et al. (2008): 0.0018 (1+z)^3.92."""
    return 0.0018 * (1.0 + np.asarray(z_abs)) ** 3.92


@lru_cache(maxsize=1)
def _lognormal_scale_table() -> tuple[np.ndarray, np.ndarray]:
    """For a log-normal tau field, the factor a that makes <exp(-tau)> = exp(-tau_eff).

    Without it the fluctuations would make the mean transmission too high (Jensen).
    """
    x, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    lognorm = np.exp(FOREST_SIGMA_G * x - 0.5 * FOREST_SIGMA_G**2)
    teff = np.geomspace(1e-3, 20, 200)
    scales = np.empty_like(teff)
    for i, t in enumerate(teff):
        lo, hi = 0.0, 50.0
        for _ in range(60):  # bisection on the monotonic mean transmission
            mid = 0.5 * (lo + hi)
            mean_f = np.sum(w * np.exp(-mid * t * lognorm))
            lo, hi = (mid, hi) if mean_f > np.exp(-t) else (lo, mid)
        scales[i] = 0.5 * (lo + hi)
    return teff, scales


def _forest_field(rng: np.random.Generator, n: int) -> np.ndarray:
    g = gaussian_filter1d(rng.standard_normal(n), 1.5)
    g /= g.std() or 1.0
    return np.exp(FOREST_SIGMA_G * g - 0.5 * FOREST_SIGMA_G**2)


def forest_transmission(rng: np.random.Generator, wave_obs: np.ndarray, z_qso: float) -> np.ndarray:
    """Lya + Lyb forest and the Lyman limit blueward of the quasar's Lya, on `wave_obs`."""
    rest = wave_obs / (1 + z_qso)
    trans = np.ones_like(wave_obs)
    teff_tab, scale_tab = _lognormal_scale_table()
    for line, strength in ((LYA, 1.0), (LYB, 0.16)):
        in_forest = rest < line * (1 - 1500 / C_KMS)  # proximity zone spared
        if not in_forest.any():
            continue
        z_abs = wave_obs[in_forest] / line - 1
        teff = tau_eff_lya(np.clip(z_abs, 0, None)) * strength
        a = np.interp(teff, teff_tab, scale_tab)
        tau = a * teff * _forest_field(rng, in_forest.sum())
        trans[in_forest] *= np.exp(-tau)
    # Lyman limit: the mean free path leaves little flux far below 912 A rest
    below = rest < LYLIMIT
    if below.any():
        z_ll = z_qso - rng.exponential(0.15 * (1 + z_qso) / 4)
        cut = wave_obs < LYLIMIT * (1 + z_ll)
        trans[below] *= np.where(cut[below], 0.02 * rng.random(), 0.6)
    return trans


@dataclass(frozen=True)
class Dla:
    z_abs: float
    log_nhi: float


def draw_dlas(rng: np.random.Generator, z_qso: float, wave_min: float) -> list[Dla]:
    """DLAs along the forest path, dN/dz ~ 0.25, log N_HI from 20.3 with a falling distribution."""
    z_lo = max(wave_min / LYA - 1, 1.6)
    z_hi = z_qso - 3000 / C_KMS * (1 + z_qso)
    if z_hi <= z_lo:
        return []
    n = rng.poisson(0.25 * (z_hi - z_lo))
    return [Dla(float(rng.uniform(z_lo, z_hi)), float(20.3 + rng.exponential(0.35))) for _ in range(n)]


def dla_transmission(wave_obs: np.ndarray, dlas: list[Dla], b_kms: float = 30.0) -> np.ndarray:
    """Voigt-profile Lya absorption of each DLA (damping wings included)."""
    trans = np.ones_like(wave_obs)
    f_osc, gamma = 0.4164, 6.265e8
    c_cms = C_KMS * 1e5
    for d in dlas:
        # in the absorber's rest frame, where Gamma and b are defined
        lam0 = LYA * 1e-8  # cm
        nu0 = c_cms / lam0
        nu = c_cms / (wave_obs / (1 + d.z_abs) * 1e-8)
        sigma_nu = (b_kms * 1e5 / lam0) / np.sqrt(2)
        phi = voigt_profile(nu - nu0, sigma_nu, gamma / (4 * np.pi))
        tau = 10**d.log_nhi * 0.026540 * f_osc * phi
        trans *= np.exp(-tau)
    return trans


# BAL troughs: (line, rest wavelength, relative depth); LoBALs add the low-ionisation lines.
BAL_LINES_HI = (("NV", 1240.81, 0.7), ("SiIV", 1396.76, 0.8), ("CIV", 1549.06, 1.0))
BAL_LINES_LO = (("AlIII", 1857.4, 0.6), ("MgII", 2798.75, 0.7))


@dataclass(frozen=True)
class Bal:
    v_min: float
    v_max: float
    depth: float
    lobal: bool


def draw_bal(rng: np.random.Generator) -> Bal:
    v_min = rng.uniform(0, 6000)
    width = rng.uniform(2000, 20000)
    return Bal(v_min, min(v_min + width, 25000.0), float(rng.uniform(0.3, 0.95)), bool(rng.random() < 0.1))


def bal_transmission(wave_obs: np.ndarray, z_qso: float, bal: Bal) -> np.ndarray:
    """Broad absorption troughs blueward of the high-ionisation (and for LoBALs low-ionisation) lines."""
    rest = wave_obs / (1 + z_qso)
    tau_total = np.zeros_like(wave_obs)
    lines = BAL_LINES_HI + (BAL_LINES_LO if bal.lobal else ())
    peak = -np.log(1 - bal.depth)
    for _, lam, rel in lines:
        v = C_KMS * (lam - rest) / lam  # outflow velocity that would absorb here
        edge = 800.0
        shape = expit((v - bal.v_min) / edge * 4) * expit(-(v - bal.v_max) / edge * 4)
        tau_total += rel * peak * shape
    return np.exp(-tau_total)
