"""Put a noiseless spectrum through an SDSS-like spectrograph: range, resolution, noise, sky, masks.

The noise is not a formula: each mock spectrum borrows the relative
1/sqrt(ivar) of a real SDSS or BOSS spectrum (sky lines, the noisy blue end,
the dichroic, masked columns, the instrument's wavelength range) and is scaled
to the S/N drawn for it; sky-subtraction residuals follow that file's sky.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

LSF_SIGMA_PIX = 1.0  # BOSS line-spread sigma ~ 1 pixel (69 km/s)
NODATA_BIT = 1 << 24
BRIGHTSKY_BIT = 1 << 23
RED_OF_LYA = 1250.0  # rest A: a quasar's continuum just redward of Lya (and NV)
FOREST_DOMINATED = 0.3  # whole-spectrum median below this fraction of the red side's: the forest dominates


@dataclass
class Instrument:
    """One borrowed noise row: where the spectrograph has data and how noisy each pixel is."""

    loglam: np.ndarray  # observed grid of this spectrum (1e-4 dex)
    sqrt_ivar_rel: np.ndarray  # relative sqrt(ivar); 0 = masked
    sky_rel: np.ndarray  # relative sky spectrum
    is_sdss1: bool
    row: int

    @property
    def wave(self) -> np.ndarray:
        return 10.0**self.loglam


def draw_instrument(rng: np.random.Generator, calib: dict, sdss1_fraction: float = 0.25) -> Instrument:
    """Pick a real noise row (SDSS-I/II with probability `sdss1_fraction`, else BOSS/eBOSS)."""
    is1 = calib["noise_is_sdss1"]
    want_sdss1 = rng.random() < sdss1_fraction
    candidates = np.flatnonzero(is1 == want_sdss1)
    row = int(rng.choice(candidates))
    rel = calib["noise_sqrt_ivar_rel"][row].astype(np.float64)
    has = np.flatnonzero(rel > 0)
    lo, hi = has[0], has[-1] + 1
    loglam = float(calib["noise_loglam0"]) + 1e-4 * np.arange(lo, hi)
    return Instrument(loglam, rel[lo:hi], calib["noise_sky_rel"][row][lo:hi].astype(np.float64), bool(is1[row]), row)


SN_DISTRIBUTIONS = ("dr16q", "flat")
FLAT_SN_RANGE = (1.0, 60.0)  # the S/N a survey's quasar spectra span, SDSS-I/II to the brightest BOSS


def draw_sn(rng: np.random.Generator, distribution: str = "dr16q") -> float:
    """A quasar's SN_MEDIAN_ALL. "dr16q": like DR16Q's, log-normal, median ~3.5, many below 3, a tail
    to ~60. "flat": log-uniform over FLAT_SN_RANGE, for training sets: under DR16Q's n(S/N) only ~1 %
    of quasars are above S/N 20, while a hand-picked or bright real sample has half of them above 10,
    and a network never shown bright spectra misreads them (as it would an unseen z)."""
    if distribution == "flat":
        lo, hi = np.log(FLAT_SN_RANGE)
        return float(np.exp(rng.uniform(lo, hi)))
    if distribution != "dr16q":
        raise ValueError(f"sn_distribution must be one of {SN_DISTRIBUTIONS}, got {distribution!r}")
    return float(np.clip(np.exp(rng.normal(np.log(3.5), 0.75)), 0.5, 80.0))


def forest_safe_median(values: np.ndarray, red: np.ndarray | None) -> float:
    """Median of `values`, or of its `red` pixels when the whole median is below FOREST_DOMINATED of theirs.

    At z >~ 4.5 most pixels of a quasar spectrum lie in the nearly black Lya forest: a median over all
    of them is ~0, and a noise level or flux scale set from it gives the continuum redward of Lya an
    absurd S/N (1e5 was seen). Below that the whole median is used unchanged.
    """
    med = float(np.median(values)) if values.size else 0.0
    if red is not None and np.count_nonzero(red) >= 50:
        med_red = float(np.median(values[red]))
        if med < FOREST_DOMINATED * med_red:
            return med_red
    return med


def observe(
    rng: np.random.Generator, flux_true: np.ndarray, inst: Instrument, sn: float, flux_scale: float,
    sn_pixels: np.ndarray | None = None,
) -> dict[str, np.ndarray | float]:
    """Noisy flux, ivar, and_mask, sky, wdisp on `inst.loglam`, scaled to `flux_scale` x 1e-17 cgs.

    `sn_pixels` (a quasar's pixels redward of Lya): where the forest dominates the median, the noise
    is set so that these pixels have the median S/N `sn` (see `forest_safe_median`)."""
    signal = gaussian_filter1d(flux_true, LSF_SIGMA_PIX) * flux_scale
    good = inst.sqrt_ivar_rel > 0
    rel = np.abs(signal) * inst.sqrt_ivar_rel
    med_rel = forest_safe_median(rel[good], None if sn_pixels is None else sn_pixels[good])
    k = med_rel / sn if med_rel > 0 else flux_scale / sn  # sigma = k / sqrt_ivar_rel
    sigma = np.where(good, k / np.where(good, inst.sqrt_ivar_rel, 1.0), 0.0)
    noise = rng.standard_normal(signal.size) * sigma
    # sky-subtraction residuals scale with the sky itself: worst at 5577, 5890, 6300 A and the OH forest
    residual = rng.normal(0, 0.08) * k * inst.sky_rel * (1 + 0.5 * rng.standard_normal(signal.size))
    flux = np.where(good, signal + noise + residual, 0.0)
    ivar = np.where(good, 1.0 / np.where(good, sigma, 1.0) ** 2, 0.0)
    and_mask = np.where(good, 0, NODATA_BIT) | np.where(inst.sky_rel > 8, BRIGHTSKY_BIT, 0)
    # now and then a bad CCD column range with no data
    if rng.random() < 0.05:
        start = int(rng.integers(0, signal.size - 40))
        width = int(rng.integers(5, 40))
        ivar[start : start + width] = 0.0
        and_mask[start : start + width] |= NODATA_BIT
    sky = np.abs(inst.sky_rel) * k * 20
    measured_sn = float(np.median((flux * np.sqrt(ivar))[ivar > 0])) if (ivar > 0).any() else 0.0
    return {
        "flux": flux.astype(np.float32),
        "ivar": ivar.astype(np.float32),
        "and_mask": and_mask.astype(np.int32),
        "sky": sky.astype(np.float32),
        "wdisp": np.full(signal.size, LSF_SIGMA_PIX, np.float32),
        "sn_median_all": measured_sn,
    }
