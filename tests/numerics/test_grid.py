"""The FNet and QuasarNET input grids: lines land on the right pixel, masks and edges are explicit."""
from __future__ import annotations

import numpy as np

from model import grid


def _sdss_loglam(lam_min: float, lam_max: float) -> np.ndarray:
    start = np.round(np.log10(lam_min), 4)
    return start + 1e-4 * np.arange(int((np.log10(lam_max) - start) / 1e-4))


def test_fnet_grid_is_the_published_one():
    assert grid.FNET_NPIX == 4618
    assert np.isclose(grid.FNET_LOGLAM[0], 3.5522) and np.isclose(grid.FNET_LOGLAM[-1], 4.0139)
    assert abs(grid.FNET_WAVE[0] - 3566.15) < 0.05 and abs(grid.FNET_WAVE[-1] - 10325.24) < 0.05  # 10**3.5522, 10**4.0139


def test_a_known_line_lands_on_the_right_pixel():
    """MgII at z=1 is observed at 5597.5 A: the peak must be on the grid pixel nearest that wavelength."""
    z = 1.0
    lam_obs = 2798.75 * (1 + z)
    loglam = _sdss_loglam(3600, 10400) + 0.00003  # native pixels not aligned with the grid
    flux = 1 + 5 * np.exp(-0.5 * ((loglam - np.log10(lam_obs)) / 2e-4) ** 2)
    f, iv = grid.resample_one(loglam, flux, np.ones_like(flux))
    expected = int(np.argmin(np.abs(grid.FNET_LOGLAM - np.log10(lam_obs))))
    assert int(np.argmax(f)) == expected
    assert abs(grid.FNET_WAVE[expected] - lam_obs) < lam_obs * 1.2e-4  # within half a pixel (69 km/s)


def test_sdss1_range_is_clamped_and_marked_off_range():
    loglam = _sdss_loglam(3800, 9200)
    flux = np.linspace(1.0, 2.0, loglam.size)
    f, iv = grid.resample_one(loglam, flux, np.ones_like(flux))
    blue = grid.FNET_WAVE < 3795
    red = grid.FNET_WAVE > 9205
    assert np.allclose(f[blue], flux[0]) and np.allclose(f[red], flux[-1]), "published code clamps (np.interp)"
    assert (iv[blue] == 0).all() and (iv[red] == 0).all(), "off-range pixels carry no information"
    assert (iv[~blue & ~red & (grid.FNET_WAVE > 3810) & (grid.FNET_WAVE < 9190)] > 0).all()


def test_masked_pixels_are_bridged_not_used():
    loglam = _sdss_loglam(3600, 10400)
    flux = np.ones(loglam.size)
    ivar = np.ones(loglam.size)
    bad = slice(2000, 2050)
    flux[bad] = 1e6  # a cosmic ray the pipeline masked
    ivar[bad] = 0
    mask = np.zeros(loglam.size, np.int32)
    mask[3000:3010] = 1 << 24  # NODATA
    flux[3000:3010] = -1e6
    f, iv = grid.resample_one(loglam, flux, ivar, mask)
    assert np.allclose(f, 1.0), "masked pixels neither leak into the flux nor spike it"
    masked_wave = 10 ** loglam[bad]
    on_grid = (grid.FNET_WAVE > masked_wave[1]) & (grid.FNET_WAVE < masked_wave[-2])
    assert (iv[on_grid] == 0).all()


def test_nan_flux_and_empty_spectra():
    loglam = _sdss_loglam(3600, 10400)
    flux = np.ones(loglam.size)
    flux[100:200] = np.nan
    f, iv = grid.resample_one(loglam, flux, np.ones_like(flux))
    assert np.isfinite(f).all()
    f0, iv0 = grid.resample_one(loglam[:1], flux[:1], np.ones(1))
    assert (f0 == 0).all() and (iv0 == 0).all()


def test_batch_equals_one_by_one_and_normalise_is_published():
    rng = np.random.default_rng(1)
    lls = [_sdss_loglam(3600, 10400), _sdss_loglam(3800, 9200)]
    fls = [rng.normal(5, 1, lls[0].size), rng.normal(2, 1, lls[1].size)]
    fb, ib = grid.resample_batch(lls, fls, [np.ones_like(x) for x in fls])
    for k in range(2):
        f1, i1 = grid.resample_one(lls[k], fls[k], np.ones_like(fls[k]))
        np.testing.assert_array_equal(fb[k], f1)
    x = grid.normalise(fb)
    assert x.shape == (2, 4618)
    assert np.allclose(x.max(axis=1), 1.0) and (x.min(axis=1) > 0).all()
    # the published recipe written out for one spectrum
    z = (fb[0] - fb[0].mean()) / fb[0].std()
    z = z - z.min() + 0.001
    np.testing.assert_allclose(x[0], z / z.max(), rtol=1e-5)


def test_quasarnet_grid_is_ivar_weighted():
    assert grid.QN_NBINS == 443
    loglam = _sdss_loglam(3600, 10400)
    flux = np.where(np.arange(loglam.size) % 2 == 0, 1.0, 3.0)
    ivar = np.where(np.arange(loglam.size) % 2 == 0, 3.0, 1.0)
    fl, iv = grid.rebin_quasarnet(loglam, flux, ivar)
    inner = iv > 0
    assert inner.sum() > 430
    np.testing.assert_allclose(fl[inner][5:-5], 1.5, rtol=0.15)  # (3*1 + 1*3)/(3+1) = 1.5
    std = grid.standardise_quasarnet(fl, iv)
    assert abs(np.average(std, weights=iv)) < 1e-5


def test_real_spectra_keep_their_good_pixels():
    """Fibre-level warning bits (BADFLAT, MANYBADCOLUMNS) must not mask pixels the pipeline kept.

    They sit on whole halves of good real spectra; only ivar = 0 and the
    per-pixel no-data bits remove a pixel.
    """
    from pathlib import Path

    from inspector.readers import read_spec_file

    files = sorted((Path(__file__).resolve().parents[1] / "data" / "real" / "sdss").glob("spec-*.fits"))
    assert files
    warned = 0
    for f in files:
        s = read_spec_file(f)
        warned += int((((s.and_mask.astype(np.int64) >> 2) & 1) | ((s.and_mask.astype(np.int64) >> 4) & 1)).sum() > 0)
        _, iv = grid.resample_one(np.log10(s.wave), s.flux, s.ivar, s.and_mask)
        native_good = s.ivar > 0
        in_range = (s.wave > grid.FNET_WAVE[0]) & (s.wave < grid.FNET_WAVE[-1])
        assert (iv > 0).sum() >= 0.95 * (native_good & in_range).sum(), f.name
    assert warned > 0, "the fixtures include spectra with fibre-level warning bits"
