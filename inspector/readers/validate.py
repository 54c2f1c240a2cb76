"""Checks every reader runs on each spectrum before handing it out.

Downstream code (the FNet grid, the store, the plots) assumes finite flux,
finite non-negative ivar and a rising wavelength. Rather than each consumer
re-checking, readers either repair what is safely repairable (isolated bad
pixels: ivar = 0) or refuse the spectrum with a message a person can act on.
"""
from __future__ import annotations

import os

import numpy as np

from inspector.readers.errors import SpectrumFileError
from inspector.spectrum import Spectrum

MIN_USABLE_FRACTION = 0.10  # below this FNet sees mostly interpolated zeros: refuse
# |flux| at or above this (in 1e-17 erg/s/cm^2/A, 30x Vega's flux at 5500 A) is no astronomical
# spectrum a survey took but corrupt bytes (the brightest real fixture peaks at ~800): such pixels
# are treated like NaN, so a file of them is refused instead of stored.
FLUX_ABSURD = 1e10


def validate_spectrum(spec: Spectrum, path: str | os.PathLike[str], what: str = "") -> Spectrum:
    """Normalise dtypes, zero the weight of bad pixels, or raise SpectrumFileError.

    `what` names the spectrum inside a many-spectrum file ("fiber 12", "row 3")
    so the message points at it. Arrays are modified in place where they are
    already the target dtype: readers hand over fresh copies.
    """
    where = f"{what}: " if what else ""

    def fail(problem: str) -> SpectrumFileError:
        return SpectrumFileError(path, where + problem)

    wave = np.asarray(spec.wave, dtype=np.float64)
    flux = np.asarray(spec.flux, dtype=np.float32)
    ivar = np.asarray(spec.ivar, dtype=np.float32)
    if wave.ndim != 1 or flux.ndim != 1 or ivar.ndim != 1:
        raise fail(f"expected 1-D arrays, got wave {wave.shape}, flux {flux.shape}, ivar {ivar.shape}")
    n = wave.size
    sizes = {"flux": flux.size, "ivar": ivar.size}
    for name in ("and_mask", "sky"):
        arr = getattr(spec, name)
        if arr is not None:
            sizes[name] = np.asarray(arr).size
    if any(size != n for size in sizes.values()):
        detail = ", ".join(f"{k} {v}" for k, v in sizes.items())
        raise fail(f"array length mismatch: wavelength has {n} pixels, {detail}")
    if n == 0:
        raise fail("empty spectrum: the arrays have no pixels")
    if not np.isfinite(wave).all():
        bad = int(np.flatnonzero(~np.isfinite(wave))[0])
        raise fail(f"non-finite wavelength at pixel {bad}")
    step = np.diff(wave)
    if n > 1 and not (step > 0).all():
        i = int(np.flatnonzero(step <= 0)[0])
        raise fail(f"wavelength is not strictly increasing: pixel {i} is {wave[i]:.3f} A, pixel {i + 1} is {wave[i + 1]:.3f} A")

    finite = np.isfinite(flux)
    with np.errstate(invalid="ignore"):
        big = np.abs(flux) >= FLUX_ABSURD  # inf too: told apart from absurd finite values below
    n_absurd = 0
    flux_ok = finite
    if big.any():
        absurd = big & finite
        n_absurd = int(absurd.sum())
        flux_ok = finite & ~absurd
    if not flux_ok.any():
        raise fail("flux is non-finite (NaN/inf) in every pixel" if not n_absurd else
                   f"flux is non-finite or absurd (|flux| >= {FLUX_ABSURD:.0e} x 1e-17 erg/s/cm^2/A) in every pixel")
    ivar_ok = np.isfinite(ivar)
    bad = ~(flux_ok & ivar_ok)
    n_nonfinite = int(bad.sum()) - n_absurd
    if n_nonfinite or n_absurd:
        flux = flux if flux.flags.writeable else flux.copy()
        ivar = ivar if ivar.flags.writeable else ivar.copy()
        flux[~flux_ok] = 0.0  # keeps interpolation and plotting finite; ivar = 0 says "no information"
        ivar[bad] = 0.0
    negative = ivar < 0
    if negative.any():
        ivar = ivar if ivar.flags.writeable else ivar.copy()
        ivar[negative] = 0.0
    usable = int(np.count_nonzero(ivar))
    if usable == 0:
        raise fail("ivar is zero or non-finite in every pixel: no usable pixel")
    if usable < MIN_USABLE_FRACTION * n:
        raise fail(f"only {usable} of {n} pixels are usable (finite flux and ivar > 0): "
                   f"fewer than {MIN_USABLE_FRACTION:.0%}, refusing the spectrum")

    spec.wave, spec.flux, spec.ivar = wave, flux, ivar
    if spec.and_mask is not None:
        spec.and_mask = np.asarray(spec.and_mask)
    if spec.sky is not None:
        spec.sky = np.asarray(spec.sky, dtype=np.float32)
    spec.extra["n_nonfinite"] = n_nonfinite
    if n_absurd:
        spec.extra["n_absurd"] = n_absurd
    return spec
