"""Broad Halpha in the mock quasars: as strong as on the real low-z SDSS quasars, where FNet used to read it as Mg II."""
from __future__ import annotations

import numpy as np
import pytest
from mock_draws import WAVE, drawn_and_measured

from inspector.mock import broad_halpha, calibration, quasar
from inspector.mock.broad_halpha import halpha_ew


@pytest.fixture(scope="module")
def calib() -> dict:
    return calibration.load()


def test_calibration_measures_halpha_where_a_spectrograph_sees_it(calib):
    assert len(calib["HALPHA_ew"]) >= 20
    assert calib["HALPHA_z"].max() < quasar.HALPHA_Z_MAX, "6700 A rest leaves the BOSS window at z ~ 0.55"
    assert np.median(calib["HALPHA_ew"]) > 200, "real broad Halpha: rest EW of a few hundred A"


def test_halpha_ew_of_a_known_line():
    rest = np.linspace(6000, 7100, 5500)
    flux = np.ones_like(rest) + 2.0 * np.exp(-0.5 * ((rest - 6564.6) / 40.0) ** 2)  # Gaussian, EW 2*40*sqrt(2 pi)
    assert halpha_ew(rest, flux) == pytest.approx(2 * 40 * np.sqrt(2 * np.pi), rel=0.02)


def test_measured_ew_on_the_observed_spectrum_is_the_drawn_one(calib):
    """What the catalog records as MOCK_HALPHA_EW is what a person measures on the (noiseless) spectrum."""
    drawn, measured = drawn_and_measured(calib, 3, 40, (0.02, 0.5), "halpha_ew", halpha_ew)
    has = np.isfinite(drawn)
    assert has.sum() >= 30
    ratio = measured[has] / drawn[has]
    assert np.median(np.abs(ratio - 1)) < 0.05


def test_mock_halpha_strength_follows_the_real_quasars(calib):
    """The median and the strong tail: the commonest real FNet miss was a z ~ 0.3 quasar whose Halpha dominates."""
    real = calib["HALPHA_ew"][calib["HALPHA_sn"] >= broad_halpha.MIN_CALIB_SN]
    _, mock = drawn_and_measured(calib, 0, 150, (0.02, 0.5), "halpha_ew", halpha_ew)
    mock = mock[np.isfinite(mock)]
    assert np.median(mock) == pytest.approx(np.median(real), rel=0.25)
    assert (mock > 500).mean() > 0.1, "quasars whose Halpha towers over everything else"


def test_no_halpha_drawn_beyond_the_window(calib):
    _, truth = quasar.observed_flux(np.random.default_rng(1), calib, 1.2, WAVE)
    assert np.isnan(truth.halpha_ew)
