"""model.smoothing: ivar-weighted Gaussian smoothing and the noise curve drawn under it."""
from __future__ import annotations

import numpy as np
import pytest

from inspector.readers import read_spec_file
from model.smoothing import smooth

SKY_5577 = 5578.5  # the brightest night-sky line, vacuum A


@pytest.fixture(scope="module")
def sdss_qso(real_dir):
    """An SDSS-I/II quasar whose 5577 A sky line left a residual: a few pixels 30 units above the
    continuum, with ivar a twentieth of their neighbours'."""
    return read_spec_file(real_dir / "sdss" / "spec-1836-54567-0270.fits")


@pytest.fixture(scope="module")
def boss_qso(real_dir):
    return read_spec_file(real_dir / "sdss" / "spec-7340-58289-0736.fits")


@pytest.mark.parametrize("sigma", [2.0, 3.0, 5.0])
def test_real_sky_residual_is_no_line_after_smoothing(sdss_qso, sigma):
    s = sdss_qso
    i = int(np.argmin(np.abs(s.wave - SKY_5577)))
    cont = np.median(s.flux[np.r_[i - 40:i - 10, i + 10:i + 40]])
    near = slice(i - 3, i + 4)
    fs, ns = smooth(s.flux, s.ivar, sigma)
    assert np.all(np.abs(fs[near] - cont) < 2.5 * ns[near])
    # the check can fail: weighting only by "has data" (ivar > 0) turns the residual into a line
    fu, _ = smooth(s.flux, (s.ivar > 0).astype(float), sigma)
    assert np.max(fu[near] - cont) > 5 * np.max(ns[near])


def test_injected_bright_sky_pixels_barely_count(boss_qso):
    s = boss_qso
    i = int(np.argmin(np.abs(s.wave - 6200.0)))  # line-free continuum at z 0.456
    flux, ivar = s.flux.astype(float).copy(), s.ivar.astype(float).copy()
    flux[i:i + 6] += 2000.0  # a bright sky line's residual, the pipeline's ivar nearly zero there
    ivar[i:i + 6] *= 1e-6
    for sigma in (1.0, 3.0, 8.0):
        clean, noise = smooth(s.flux, s.ivar, sigma)
        sky, _ = smooth(flux, ivar, sigma)
        near = slice(i - 10, i + 16)
        assert np.all(np.abs(sky[near] - clean[near]) < 3 * noise[near]), sigma


def test_pixels_without_data_do_not_count_at_all(boss_qso):
    s = boss_qso
    ivar = s.ivar.astype(float).copy()
    ivar[2000:2010] = 0.0
    a = s.flux.astype(float).copy()
    b = a.copy()
    b[2000:2010] = 1e6
    b[2003] = np.nan
    fa, na = smooth(a, ivar, 3.0)
    fb, nb = smooth(b, ivar, 3.0)
    np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(na, nb)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 4.0, 8.0])
def test_noise_shrinks_as_one_over_sqrt_effective_pixels(sigma):
    n = 4600
    ivar = np.full(n, 4.0)  # 0.5 per pixel
    _, noise = smooth(np.zeros(n), ivar, sigma)
    # a Gaussian's weights sum to 2 sqrt(pi) sigma effective pixels
    expected = 0.5 / np.sqrt(2.0 * np.sqrt(np.pi) * sigma)
    assert noise[n // 2] == pytest.approx(expected, rel=0.01)
    assert noise[0] > noise[n // 2] * 1.2  # the edge sees half a kernel of data


def test_noise_curve_matches_the_scatter_of_smoothed_noise(boss_qso):
    """Realisations drawn from the real spectrum's own ivar scatter, once smoothed, as the curve says."""
    rng = np.random.default_rng(5)
    ivar = boss_qso.ivar.astype(float)
    good = ivar > 0
    draws = rng.standard_normal((300, ivar.size)) / np.sqrt(np.where(good, ivar, 1.0))
    sm = np.array([smooth(d, ivar, 3.0)[0] for d in draws])
    _, noise = smooth(draws[0], ivar, 3.0)
    ok = np.isfinite(noise)
    ratio = sm[:, ok].std(axis=0) / noise[ok]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)
    assert np.percentile(ratio, 5) > 0.85 and np.percentile(ratio, 95) < 1.15


def test_sigma_zero_is_the_data(boss_qso):
    s = boss_qso
    ivar = s.ivar.astype(float).copy()
    ivar[100:110] = 0.0
    fs, ns = smooth(s.flux, ivar, 0.0)
    np.testing.assert_array_equal(fs, s.flux.astype(float))
    good = ivar > 0
    np.testing.assert_allclose(ns[good], 1.0 / np.sqrt(ivar[good]))
    assert np.all(np.isnan(ns[~good]))


def test_nan_where_no_data_within_reach():
    n = 1000
    flux = np.ones(n)
    ivar = np.ones(n)
    ivar[400:600] = 0.0
    fs, ns = smooth(flux, ivar, 3.0)
    assert np.all(np.isnan(fs[420:580])) and np.all(np.isnan(ns[420:580]))
    assert np.all(np.isfinite(fs[:401])) and np.all(np.isfinite(fs[599:]))
    np.testing.assert_allclose(fs[:401], 1.0)  # the gap's edge is the mean of the data beside it
    empty_f, empty_n = smooth(flux, np.zeros(n), 2.0)
    assert np.all(np.isnan(empty_f)) and np.all(np.isnan(empty_n))
