"""The line-masking test's masking (model.line_mask): windows at the right place, the rest untouched, no line flux left."""
from __future__ import annotations

import numpy as np
import pytest

from model.grid import FNET_NPIX, FNET_WAVE
from model.line_mask import (
    DEFAULT_HALF_WIDTH_KMS,
    PAPER_MASKED_LINES,
    line_windows,
    mask_lines,
    window_mask,
)
from model.metrics import C_KMS

HE_II = 1640.42  # a broad line the paper does not mask: it must survive
FWHM_KMS = 5000.0  # a typical broad UV line


def quasar_like(z: float, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flux, continuum, line flux) on the FNet grid: a blue power law plus Gaussian broad lines at z."""
    cont = 2.0 * (FNET_WAVE / 5000.0) ** -1.5
    sigma = FWHM_KMS / 2.3548 / C_KMS
    lines = np.zeros(FNET_NPIX)
    for rest, amp in [(lam, 3.0) for _, lam in PAPER_MASKED_LINES] + [(HE_II, 1.0)]:
        centre = rest * (1 + z)
        lines += amp * np.interp(centre, FNET_WAVE, cont) * np.exp(-0.5 * ((FNET_WAVE / centre - 1) / sigma) ** 2)
    flux = cont + lines + noise * np.random.default_rng(seed).standard_normal(FNET_NPIX)
    return flux[None].astype(np.float32), cont, lines


def _masked_lines_only(lines_total: np.ndarray, z: float) -> np.ndarray:
    """The part of the synthetic line flux that belongs to the masked lines (He II removed)."""
    cont = 2.0 * (FNET_WAVE / 5000.0) ** -1.5
    centre = HE_II * (1 + z)
    sigma = FWHM_KMS / 2.3548 / C_KMS
    he = np.interp(centre, FNET_WAVE, cont) * np.exp(-0.5 * ((FNET_WAVE / centre - 1) / sigma) ** 2)
    return lines_total - he


@pytest.mark.parametrize("z", [2.8, 2.9, 3.0])
def test_windows_sit_on_the_lines_at_that_redshift(z):
    mask = window_mask(np.array([z]))[0]
    beta = DEFAULT_HALF_WIDTH_KMS / C_KMS
    pix_kms = 1e-4 * np.log(10) * C_KMS  # one grid pixel
    for name, rest in PAPER_MASKED_LINES:
        centre = rest * (1 + z)
        k = int(np.argmin(np.abs(FNET_WAVE - centre)))
        assert mask[k], f"{name} at {centre:.0f} A not masked at z={z}"
        # every pixel within the half-width of the line is masked
        near = np.abs(FNET_WAVE / centre - 1) * C_KMS < DEFAULT_HALF_WIDTH_KMS - pix_kms
        assert mask[near].all(), name
    # outside all windows (by a pixel's margin) nothing is masked
    offsets = np.min([np.abs(FNET_WAVE / (rest * (1 + z)) - 1) for _, rest in PAPER_MASKED_LINES], axis=0)
    assert not mask[offsets > beta + pix_kms / C_KMS].any()
    # Lya+N V and C II+Si IV overlap at +-7500 km/s, so 5 windows remain, in wavelength order
    w = line_windows(z)
    assert w.shape == (5, 2) and np.all(np.diff(w.ravel()) > 0)
    assert w[1, 0] < 1215.67 * (1 + z) < 1240.81 * (1 + z) < w[1, 1]


def test_windows_move_with_z():
    lo, hi = line_windows(2.8), line_windows(3.0)
    np.testing.assert_allclose(hi / lo, 4.0 / 3.8)
    assert not np.array_equal(window_mask(np.array([2.8])), window_mask(np.array([3.0])))


def test_masked_windows_carry_no_line_flux_and_the_rest_is_untouched():
    z = 2.9
    flux, cont, lines = quasar_like(z)
    ivar = np.full_like(flux, 4.0)
    out, out_ivar, mask = mask_lines(flux, np.array([z]), ivar)
    m = mask[0]
    masked_lines = _masked_lines_only(lines, z)
    before = np.sum(masked_lines[m])
    left = np.sum(out[0][m] - cont[m])  # what remains above the continuum in the windows
    assert before > 0 and abs(left) < 0.01 * before
    assert np.max(np.abs(out[0][m] - cont[m]) / cont[m]) < 0.02
    # outside the windows the flux is bit for bit the input, He II included
    np.testing.assert_array_equal(out[0][~m], flux[0][~m])
    k_he = int(np.argmin(np.abs(FNET_WAVE - HE_II * (1 + z))))
    assert not m[k_he] and out[0, k_he] > 1.5 * cont[k_he]
    # the masked pixels are "not data"; the others keep their weight; the inputs are not changed
    assert np.all(out_ivar[0][m] == 0) and np.all(out_ivar[0][~m] == 4.0)
    assert np.all(ivar == 4.0) and not np.array_equal(out, flux)


def test_noise_fill_keeps_the_neighbouring_noise_but_no_line():
    z, noise = 2.9, 0.05
    flux, cont, _ = quasar_like(z, noise=noise, seed=3)
    line_out, _, mask = mask_lines(flux, np.array([z]), fill="line")
    noisy_out, _, _ = mask_lines(flux, np.array([z]), fill="noise", seed=1)
    m = mask[0]
    resid_line = line_out[0][m] - cont[m]
    resid_noisy = noisy_out[0][m] - cont[m]
    assert np.std(np.diff(resid_line)) < 0.1 * noise  # the straight-line fill: a noise-free segment
    assert 0.7 * noise < np.std(np.diff(resid_noisy)) / np.sqrt(2) < 1.3 * noise
    assert abs(np.mean(resid_noisy)) < 0.02 * np.mean(cont[m])  # still no line flux on average


def test_a_window_running_off_the_grid_takes_its_inside_edge():
    z = 4.45  # C III] at 10405 A, beyond the grid's 10325 A end: its window reaches past the last pixel
    flux, _, _ = quasar_like(z)
    out, _, mask = mask_lines(flux, np.array([z]))
    assert mask[0, -1]
    start = int(np.flatnonzero(~mask[0])[-1]) + 1
    tail = out[0, start:]
    assert np.all(np.isfinite(tail)) and np.ptp(tail) == 0
    np.testing.assert_allclose(tail[0], flux[0, start - 5 : start].mean(), rtol=1e-6)


def test_bad_input_is_refused_with_the_problem_named():
    flux, _, _ = quasar_like(2.9)
    with pytest.raises(ValueError, match="1 spectra but 2 redshifts"):
        mask_lines(flux, np.array([2.9, 2.95]))
    with pytest.raises(ValueError, match="fill must be one of"):
        mask_lines(flux, np.array([2.9]), fill="zero")
    with pytest.raises(ValueError, match="pixels, the grid"):
        mask_lines(flux[:, :100], np.array([2.9]))
    with pytest.raises(ValueError, match="redshift must be finite"):
        mask_lines(flux, np.array([np.nan]))
    with pytest.raises(ValueError, match="ivar has shape"):
        mask_lines(flux, np.array([2.9]), ivar=np.ones((1, 10)))
