"""model.template_model: the template fit at one z, drawn over the data."""
from __future__ import annotations

import numpy as np
import pytest

from inspector.readers import read_spec_file
from model.template_fit import fit_redshift, load_templates
from model.template_model import fit_template_model, template_model


def _spec(real_dir, manifest, name):
    s = read_spec_file(real_dir / "sdss" / f"{name}.fits")
    return s, float(manifest.loc[f"sdss/{name}.fits", "z"])


# an eBOSS quasar fitted by LOZ, a BOSS one at z 2.95 by HIZ with the Lya forest
@pytest.mark.parametrize("name", ["spec-7340-58289-0736", "spec-4055-55359-0010"])
def test_qso_model_tells_the_right_z_and_matches_the_scan(real_dir, real_manifest, name):
    s, z = _spec(real_dir, real_manifest, name)
    right = fit_template_model(s.wave, s.flux, s.ivar, z)
    wrong = fit_template_model(s.wave, s.flux, s.ivar, z + 0.3)
    assert right is not None and wrong is not None
    assert right.chi2_dof < 0.5 * wrong.chi2_dof
    scan = fit_redshift(np.log10(s.wave), s.flux, s.ivar)
    assert abs(scan.z - z) < 0.01
    # the same model as the scan's: at the scan's z, the same chi2 over the same pixels
    at_scan = fit_template_model(s.wave, s.flux, s.ivar, scan.z)
    assert at_scan.npix == scan.npix and at_scan.basis == scan.template
    assert at_scan.chi2 == pytest.approx(scan.chi2_min, rel=0.005)
    assert right.chi2_dof == pytest.approx(scan.chi2_min / (scan.npix - 7), rel=0.05)
    model = template_model(s.wave, s.flux, s.ivar, z)
    np.testing.assert_array_equal(model, right.flux)
    assert model.shape == s.wave.shape and np.all(np.isfinite(model))


def test_galaxy_model_traces_a_real_galaxy(real_dir, real_manifest):
    s, z = _spec(real_dir, real_manifest, "spec-0266-51602-0013")  # SDSS-I/II galaxy, z 0.121
    gal = fit_template_model(s.wave, s.flux, s.ivar, z, kind="GALAXY")
    assert gal is not None and gal.basis == "GALAXY"
    assert gal.chi2_dof < 1.5
    assert gal.chi2_dof < 0.8 * fit_template_model(s.wave, s.flux, s.ivar, z, kind="QSO").chi2_dof
    assert gal.chi2_dof < 0.7 * fit_template_model(s.wave, s.flux, s.ivar, z + 0.3, kind="GALAXY").chi2_dof
    good = s.ivar > 0
    resid = (s.flux - gal.flux)[good]
    assert abs(np.median(resid)) < 0.02 * np.median(s.flux[good])  # on the continuum, not beside it


def test_star_model_picks_the_stars_type(real_dir, real_manifest):
    s, z = _spec(real_dir, real_manifest, "spec-4055-55359-0001")  # BOSS F3/F5V star
    star = fit_template_model(s.wave, s.flux, s.ivar, z, kind="STAR")
    assert star is not None and star.basis == "STAR-F"
    assert star.chi2_dof < 0.8 * fit_template_model(s.wave, s.flux, s.ivar, z, kind="QSO").chi2_dof


def test_nan_where_the_templates_do_not_reach(real_dir, real_manifest):
    s, _ = _spec(real_dir, real_manifest, "spec-7340-58289-0736")
    loglam, _vec = load_templates()["LOZ"]
    model = template_model(s.wave, s.flux, s.ivar, 0.0)  # LOZ ends at 9634 A rest
    beyond = np.log10(s.wave) > loglam[-1]
    assert beyond.any() and np.all(np.isnan(model[beyond])) and np.all(np.isfinite(model[~beyond]))


@pytest.mark.parametrize("kind", ["QSO", "GALAXY", "STAR"])
@pytest.mark.parametrize("z", [-1.0, -3.0, 50.0, float("nan"), float("inf")])
def test_off_every_template_is_none_not_an_error(real_dir, real_manifest, kind, z):
    s, _ = _spec(real_dir, real_manifest, "spec-7340-58289-0736")
    assert template_model(s.wave, s.flux, s.ivar, z, kind=kind) is None


def test_no_data_is_none(real_dir, real_manifest):
    s, z = _spec(real_dir, real_manifest, "spec-7340-58289-0736")
    assert template_model(s.wave, s.flux, np.zeros_like(s.ivar), z) is None
