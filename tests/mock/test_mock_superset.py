"""The superset mock (`--population superset`): quasars among stars, galaxies and no-signal spectra, as a
quasar-target superset holds them, with the truth a class-aware model is trained and judged on."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from inspector.cli import app
from inspector.mock import calibration, contaminants, make_arrays
from inspector.mock.survey import make_object
from inspector.store import SpectrumStore
from model.classes import CLASSES, from_class_person

N = 300


@pytest.fixture(scope="module")
def superset():
    return make_arrays(N, seed=21, population="superset")


def _band(spec, lo: float, hi: float) -> float:
    m = (spec.wave > lo) & (spec.wave < hi) & (spec.ivar > 0)
    return float(np.median(spec.flux[m])) if m.sum() > 10 else np.nan


def test_class_proportions_follow_the_superset_table(superset):
    _, cat = superset
    kinds = cat.MOCK_KIND.replace({"BAL": "QSO"})
    expected = pd.Series({t: f for t, f, _, _ in contaminants.SUPERSET}).groupby(contaminants.kind_of).sum()
    for kind, frac in expected.items():
        got = (kinds == kind).mean()
        assert abs(got - frac) < 4 * np.sqrt(frac * (1 - frac) / N), (kind, got, frac)
    stars = cat.MOCK_TEMPLATE[cat.MOCK_KIND == "STAR"]
    assert stars.nunique() >= 5, "stars of several types"
    assert cat.MOCK_KIND.eq("BAL").any(), "BAL quasars among the quasars"


def test_truth_columns_are_consistent(superset):
    _, cat = superset
    contam = ~cat.MOCK_KIND.isin(["QSO", "BAL"])
    assert (cat.MOCK_TEMPLATE[contam].map(contaminants.kind_of) == cat.MOCK_KIND[contam]).all()
    known = cat.MOCK_KIND != "BAD"
    idx = from_class_person(cat.CLASS_PERSON.to_numpy())
    assert [CLASSES[i] for i in idx[known]] == list(cat.MOCK_KIND[known])
    assert (cat.CLASS_PERSON[~known] == 0).all() and (cat.Z_VI[~known] == -1).all()
    stars = cat[cat.MOCK_KIND == "STAR"]
    assert (stars.Z_VI.abs() < 0.003).all(), "a star's z is its radial velocity, a few hundred km/s at most"
    gal = cat[cat.MOCK_KIND == "GALAXY"]
    assert gal.Z_VI.between(0, 1.2).all() and (gal.Z_VI < 0.7).mean() > 0.6
    assert (cat.IS_QSO_FINAL == (~contam).astype(int)).all()
    # the pipeline: stars at z ~ 0, galaxies at their z, mostly called what they are
    assert (stars.Z_PIPE.abs() < 0.01).mean() > 0.95 and (gal.Z_PIPE - gal.Z_VI).abs().median() < 1e-3
    assert (cat.MOCK_KIND[contam] == pd.Series([s.spec_class for s in superset[0]])[contam]).mean() > 0.85


def test_stars_look_like_their_types(superset):
    specs, cat = superset
    bright = cat.SN_MEDIAN_ALL > 5

    def ratio(t, a, b):
        rows = np.flatnonzero((cat.MOCK_TEMPLATE == t) & bright)
        return np.array([_band(specs[i], *a) / _band(specs[i], *b) for i in rows])

    tio_m, tio_g = ratio("STAR-M", (7060, 7150), (6980, 7040)), ratio("STAR-G", (7060, 7150), (6980, 7040))
    # TiO band head at 7054 A: deep in mid and late M dwarfs (weak at M0-M1), absent in G stars
    assert len(tio_m) >= 5 and np.percentile(tio_m, 25) < 0.8 and tio_g.min() > 0.85
    red_m, red_a = ratio("STAR-M", (8000, 8500), (4500, 5000)), ratio("STAR-A", (8000, 8500), (4500, 5000))
    assert red_m.min() > 1.5 and red_a.max() < 0.6, "M stars red, A stars blue"
    balmer = ratio("STAR-A", (4095, 4108), (4060, 4080))  # Hdelta absorption
    assert np.median(balmer) < 0.9


def _rest_stack(specs, rows, z, grid):
    """Median over objects of each one's flux at the rest wavelengths `grid`, normalised per object."""
    out = []
    for i in rows:
        s = specs[i]
        rest = s.wave / (1 + z[i])
        f = np.interp(grid, rest, s.flux, left=np.nan, right=np.nan)
        f[np.interp(grid, rest, (s.ivar > 0).astype(float), left=0, right=0) < 1] = np.nan
        out.append(f / np.nanmedian(s.flux[s.ivar > 0]))
    return np.nanmedian(np.array(out), axis=0)


def test_galaxies_show_break_or_lines_at_their_redshift(superset):
    specs, cat = superset
    z = cat.Z_VI.to_numpy()
    passive = np.flatnonzero((cat.MOCK_TEMPLATE == "GALAXY-passive") & (cat.SN_MEDIAN_ALL > 2))
    covered = [i for i in passive if 3750 * (1 + z[i]) > specs[i].wave[0] and 4250 * (1 + z[i]) < specs[i].wave[-1]]
    breaks = [_band(specs[i], 4050 * (1 + z[i]), 4250 * (1 + z[i])) / _band(specs[i], 3750 * (1 + z[i]), 3950 * (1 + z[i])) for i in covered]
    assert len(breaks) >= 5 and min(breaks) > 1.3, "passive galaxies: the 4000 A break at their z"
    emission = np.flatnonzero(cat.MOCK_TEMPLATE == "GALAXY-emission")
    grid = np.arange(3600.0, 6700.0, 1.0)
    stack = _rest_stack(specs, emission, z, grid)
    for line in (3728.5, 5008.2, 6564.6):
        near = np.abs(grid - line) < 4
        side = (np.abs(grid - line) > 20) & (np.abs(grid - line) < 60)
        assert np.nanmax(stack[near]) > 1.3 * np.nanmedian(stack[side]), f"emission line at {line} A rest"


def test_bad_spectra_have_no_signal(superset):
    specs, cat = superset
    bad = np.flatnonzero(cat.MOCK_KIND == "BAD")
    assert set(cat.MOCK_TEMPLATE[bad]) >= {"BAD-sky", "BAD-empty"}
    for i in bad:
        s, t = specs[i], cat.MOCK_TEMPLATE[i]
        good = s.ivar > 0
        assert abs(cat.SN_MEDIAN_ALL[i]) < 3
        if t == "BAD-sky":  # all there is, is sky: the largest residuals sit on the brightest sky lines
            top = np.argsort(np.abs(s.flux[good]))[-50:]
            assert np.mean(s.sky[good][top] > np.percentile(s.sky[good], 90)) > 0.6
        else:  # noise only: no 200-pixel stretch with a mean above half a sigma
            chi = (s.flux * np.sqrt(s.ivar))[good]
            m = chi.size // 200 * 200
            assert np.abs(chi[:m].reshape(-1, 200).mean(axis=1)).max() < 0.5
        if t == "BAD-broken":
            assert 0.3 < good.mean() < 0.7, "one arm lost"


def test_superset_quasars_are_the_qso_populations_quasars():
    """Where both populations draw a quasar (the same roll) it is the same quasar, to the pixel: the superset
    adds contaminants without disturbing the quasars a model learned on the qso population."""
    calib = calibration.load(calibration.CALIBRATION_FILE)
    same = 0
    for i in range(40):
        a, ra = make_object(i, 4, calib, population="qso")
        b, rb = make_object(i, 4, calib, population="superset")
        if ra["MOCK_KIND"] in ("QSO", "BAL") and rb["MOCK_KIND"] in ("QSO", "BAL"):
            np.testing.assert_array_equal(a.flux, b.flux)
            assert ra["Z_VI"] == rb["Z_VI"] and ra["Z_PIPE"] == rb["Z_PIPE"]
            same += 1
    assert same >= 10


def test_bad_population_is_a_clear_error():
    with pytest.raises(ValueError, match="population"):
        make_arrays(2, population="everything")
    result = CliRunner().invoke(app, ["mock", "/nonexistent/x", "--population", "stars"])
    assert result.exit_code != 0 and "population" in result.output


def test_superset_mock_ingests_with_contaminants_not_quasars(tmp_path):
    out = tmp_path / "mock"
    result = CliRunner().invoke(app, ["mock", str(out), "--n", "40", "--seed", "8", "--population", "superset",
                                      "--z-dist", "flat", "--workers", "1"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["ingest", str(out), "--store", str(tmp_path / "store"), "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    idx = SpectrumStore(tmp_path / "store").index
    assert len(idx) == 40
    quasar = idx["CLASS_PERSON"].isin([3, 30]).to_numpy()
    assert 0 < quasar.sum() < 40
    np.testing.assert_array_equal(idx["is_qso"].to_numpy(bool), quasar)
