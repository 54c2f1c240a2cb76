"""model.feature_fit: a click near a line refined to the line's fitted centre, or None."""
from __future__ import annotations

import numpy as np
import pytest

from inspector.readers import read_spec_file
from model.feature_fit import FeatureFit, fit_feature, z_from_feature
from model.metrics import C_KMS

OIII = 5008.24
CA_K = 3934.78
H_BETA = 4862.68


def _spec(real_dir, manifest, name):
    s = read_spec_file(real_dir / "sdss" / f"{name}.fits")
    return s, float(manifest.loc[f"sdss/{name}.fits", "z"])


@pytest.mark.parametrize("name", ["spec-7340-58289-0736", "spec-1836-54567-0270"])  # eBOSS and SDSS-I/II quasars
@pytest.mark.parametrize("offset", [-15.0, -10.0, 10.0, 15.0])
def test_click_off_oiii_lands_on_the_line(real_dir, real_manifest, name, offset):
    s, z = _spec(real_dir, real_manifest, name)
    line = OIII * (1 + z)
    fit = fit_feature(s.wave, s.flux, s.ivar, line + offset)
    assert isinstance(fit, FeatureFit)
    assert fit.kind == "emission"
    assert abs(fit.center - line) < 3.0  # the catalog z is the broad lines'; narrow [O III] sits ~1 A off
    assert 0 < fit.center_err < 0.5
    z_line, z_err = z_from_feature(fit.center, fit.center_err, OIII)
    assert abs(z_line - z) / (1 + z) * C_KMS < 150
    assert 0 < z_err < 1e-4


def test_clicks_either_side_agree(real_dir, real_manifest):
    s, z = _spec(real_dir, real_manifest, "spec-7340-58289-0736")
    line = OIII * (1 + z)
    centres = [fit_feature(s.wave, s.flux, s.ivar, line + o).center for o in np.arange(-15, 16, 3.0)]
    assert np.ptp(centres) < 0.3


@pytest.mark.parametrize("rest", [CA_K, H_BETA])
@pytest.mark.parametrize("offset", [-10.0, 10.0])
def test_absorption_in_a_real_f_star(real_dir, real_manifest, rest, offset):
    s, z = _spec(real_dir, real_manifest, "spec-4055-55359-0001")  # BOSS F3/F5V star
    line = rest * (1 + z)
    fit = fit_feature(s.wave, s.flux, s.ivar, line + offset)
    assert fit is not None and fit.kind == "absorption"
    assert fit.amplitude < 0
    assert abs(fit.center - line) < 2.0
    assert 0 < fit.center_err < 0.5


def test_click_on_noise_is_none():
    rng = np.random.default_rng(11)
    wave = 10 ** np.arange(3.556, 4.017, 1e-4)  # a BOSS grid
    ivar = np.full(wave.size, 0.25)
    hits = []
    for _ in range(60):
        flux = 5.0 + rng.normal(0.0, 2.0, wave.size)
        hits.append(fit_feature(wave, flux, ivar, rng.uniform(4000, 9500)))
    assert all(h is None for h in hits)


def test_no_data_or_bad_input_is_none_not_an_error(real_dir, real_manifest):
    s, z = _spec(real_dir, real_manifest, "spec-7340-58289-0736")
    line = OIII * (1 + z)
    masked = np.where(np.abs(s.wave - line) < 40, 0.0, s.ivar)
    assert fit_feature(s.wave, s.flux, masked, line) is None
    assert fit_feature(s.wave, s.flux, s.ivar, 2000.0) is None  # off the spectrum
    assert fit_feature(s.wave, s.flux, s.ivar, float("nan")) is None
    assert fit_feature(s.wave, np.full(s.wave.size, np.nan), s.ivar, line) is None
    assert fit_feature(s.wave, np.zeros(s.wave.size), s.ivar, line) is None  # flat: nothing to fit


def test_z_from_feature():
    z, err = z_from_feature(2.0 * OIII, 0.5, OIII)
    assert z == pytest.approx(1.0) and err == pytest.approx(0.5 / OIII)
