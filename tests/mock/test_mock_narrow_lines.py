"""The mock quasars' narrow-line region and host galaxy: what a low-z real quasar shows and a model must learn."""
from __future__ import annotations

import numpy as np
import pytest
from mock_draws import WAVE, drawn_and_measured

from inspector.mock import calibration, host, narrow_lines, quasar
from inspector.mock.narrow_lines import NARROW_LINES, oiii_ew


@pytest.fixture(scope="module")
def calib() -> dict:
    return calibration.load()


def _line_flux(wave: np.ndarray, flux: np.ndarray, centre: float, half: float, side: float) -> float:
    """Flux above a straight line through the medians just outside +-half A of centre."""
    blue = (wave > centre - half - side) & (wave < centre - half)
    red = (wave > centre + half) & (wave < centre + half + side)
    inside = (wave >= centre - half) & (wave <= centre + half)
    xb, xr = np.median(wave[blue]), np.median(wave[red])
    yb, yr = np.median(flux[blue]), np.median(flux[red])
    cont = yb + (yr - yb) * (wave[inside] - xb) / (xr - xb)
    return float(np.sum((flux[inside] - cont) * np.gradient(wave)[inside]))


def _strong_oiii_quasar(calib: dict, z: float, min_ew: float = 30.0) -> tuple[np.ndarray, quasar.QuasarTruth]:
    for seed in range(200):
        flux, truth = quasar.observed_flux(np.random.default_rng(seed), calib, z, WAVE)
        if truth.oiii_ew > min_ew:
            return flux, truth
    raise AssertionError(f"no quasar with EW([O III]) > {min_ew} A in 200 draws")


def test_oiii_doublet_at_the_right_wavelengths_with_the_atomic_ratio(calib):
    z = 0.3
    flux, _ = _strong_oiii_quasar(calib, z)
    rng = np.random.default_rng(1)
    noisy = flux + rng.normal(0, np.median(flux) / 30, flux.size)  # S/N 30, as the real misses had
    for rest in (4960.30, 5008.24):
        near = np.abs(WAVE - rest * (1 + z)) < 30
        peak = WAVE[near][np.argmax(noisy[near])]
        assert abs(peak / (rest * (1 + z)) - 1) * 299792.458 < 250, f"[O III] {rest} peaks at {peak:.1f} A"
    f4959 = _line_flux(WAVE, noisy, 4960.30 * (1 + z), 18, 10)
    f5007 = _line_flux(WAVE, noisy, 5008.24 * (1 + z), 18, 10)
    assert f5007 / f4959 == pytest.approx(2.98, rel=0.15)
    # and it is a narrow line: nearly all its flux within +-600 km/s
    assert _line_flux(WAVE, flux, 5008.24 * (1 + z), 10, 8) > 0.8 * _line_flux(WAVE, flux, 5008.24 * (1 + z), 18, 10)


def test_measured_ew_is_the_drawn_one(calib):
    """oiii_ew measured on the noiseless mock spectrum returns the truth the catalog records."""
    drawn, measured = drawn_and_measured(calib, 5, 60, (0.05, 0.8), "oiii_ew", oiii_ew)
    assert np.median(np.abs(measured - drawn)) < 1.0


def test_ew_distribution_follows_the_real_quasars(calib):
    real = calib["OIII_ew"][calib["OIII_sn"] >= narrow_lines.MIN_CALIB_SN]
    rng = np.random.default_rng(0)
    draws = np.array([narrow_lines.draw_oiii_ew(rng, calib) for _ in range(4000)])
    for q in (16, 50, 84):
        assert np.percentile(draws, q) == pytest.approx(np.percentile(real, q), rel=0.25), f"percentile {q}"
    assert (draws > 50).mean() > 0.05, "the strong-[O III] tail of low-z quasars"


def test_calibration_measures_oiii_where_it_is_in_the_window(calib):
    assert len(calib["OIII_ew"]) >= 30
    assert calib["OIII_z"].max() < 1.1, "5007 A leaves the BOSS window at z ~ 1.06"
    assert (calib["OIII_ew"] > 50).sum() >= 3


def test_oiii_ew_of_a_known_line():
    rest = 10 ** (3.55 + 1e-4 * np.arange(4700)) / 1.3
    flux = 2.0 + 0.01 * (rest - 5000) / 100 + 3.0 * np.exp(-0.5 * ((rest - 5008.24) / 3.0) ** 2)
    expected = 3.0 * 3.0 * np.sqrt(2 * np.pi) / np.interp(5100, rest, flux)
    assert oiii_ew(rest, flux) == pytest.approx(expected, rel=0.03)
    assert np.isnan(oiii_ew(rest[rest < 4900], flux[rest < 4900])), "not covered: NaN, not 0"


def test_every_narrow_line_is_added_in_proportion():
    rest = 10 ** (3.40 + 1e-4 * np.arange(4500))  # 2512-7080 A
    flat = np.ones_like(rest)
    out = narrow_lines.add_narrow_lines(np.random.default_rng(3), rest, flat, 40.0, 1.0)
    total = np.sum((out - flat) * np.gradient(rest))
    assert total == pytest.approx(40.0 * sum(ln.strength for ln in NARROW_LINES), rel=0.6)  # ratios scatter 0.2 dex
    f5007 = np.sum(((out - flat) * np.gradient(rest))[np.abs(rest - 5008.24) < 15])
    assert f5007 == pytest.approx(40.0, rel=0.02)
    for ln in NARROW_LINES:
        near = np.abs(rest - ln.wave) < 2
        assert (out[near] > 1).any(), f"{ln.name} missing"


def test_same_draws_same_spectrum(calib):
    a, ta = quasar.observed_flux(np.random.default_rng(9), calib, 0.25, WAVE)
    b, tb = quasar.observed_flux(np.random.default_rng(9), calib, 0.25, WAVE)
    c, _ = quasar.observed_flux(np.random.default_rng(10), calib, 0.25, WAVE)
    np.testing.assert_array_equal(a, b)
    assert ta.oiii_ew == tb.oiii_ew and ta.host_fraction == tb.host_fraction
    assert not np.array_equal(a, c)


def test_host_galaxy_below_z_08_shows_its_absorption_lines(calib):
    fractions = []
    for seed in range(300):
        flux, truth = quasar.observed_flux(np.random.default_rng(seed), calib, 0.1, WAVE)
        fractions.append(truth.host_fraction)
        if truth.host_fraction > 0.6:
            break
    assert max(fractions) > 0.6, "at z 0.1 the host can dominate"
    rest = WAVE / 1.1
    ca_k = np.abs(rest - 3934.8) < 3
    around = ((rest > 3905) & (rest < 3925)) | ((rest > 3945) & (rest < 3955))
    assert flux[ca_k].min() < 0.97 * np.median(flux[around]), "Ca II K absorption from the host"
    assert quasar.observed_flux(np.random.default_rng(0), calib, 0.85, WAVE)[1].host_fraction == 0, "none from z 0.8"


def test_host_archetypes_are_galaxies_normalised_at_5100():
    wave = np.linspace(3700, 6000, 3000)
    g = host.draw_host(np.random.default_rng(0), wave)
    assert np.median(g[(wave > 5080) & (wave < 5120)]) == pytest.approx(1.0, rel=0.05)
    d4000 = np.median(g[(wave > 4050) & (wave < 4250)]) / np.median(g[(wave > 3750) & (wave < 3950)])
    assert d4000 > 1.05, "a 4000 A break"


def test_compare_statistics_report_oiii_below_z_08(calib):
    from inspector.mock.compare import spectrum_stats

    flux, truth = _strong_oiii_quasar(calib, 0.4)
    ivar = np.ones_like(flux)
    assert spectrum_stats(WAVE, flux, ivar, 0.4)["EW_OIII5007"] == pytest.approx(truth.oiii_ew, abs=1.0)
    assert np.isnan(spectrum_stats(WAVE, flux, ivar, 0.9)["EW_OIII5007"]), "compared at z < 0.8 only"
