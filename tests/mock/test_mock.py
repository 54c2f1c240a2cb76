"""The mock survey: its population statistics, its physics, and that it is reproducible."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inspector.mock import estimates, make_arrays
from inspector.mock.absorption import Bal, Dla, bal_transmission, dla_transmission, forest_transmission, tau_eff_lya
from inspector.mock.compare import rest_ew, spectrum_stats

N = 1500


@pytest.fixture(scope="module")
def survey() -> tuple[list, pd.DataFrame]:
    return make_arrays(N, seed=11)


def test_population_fractions(survey):
    _, cat = survey
    kinds = cat["MOCK_KIND"].value_counts(normalize=True)
    contaminants = kinds.get("STAR", 0) + kinds.get("GALAXY", 0)
    assert 0.03 < contaminants < 0.07, "about 5% stars and galaxies"
    qso = cat[cat["MOCK_KIND"].isin(["QSO", "BAL"])]
    high = qso[qso["Z_VI"] > 1.6]
    bal_frac = (high["MOCK_KIND"] == "BAL").mean()
    assert 0.07 < bal_frac < 0.17, f"~12% BALs among z>1.6 quasars, got {bal_frac:.3f}"
    assert (qso.loc[qso["MOCK_KIND"] == "BAL", "CLASS_PERSON"] == 30).all()
    assert (qso["Z_VI"] <= 1.6).sum() > 0 and (qso.loc[qso["Z_VI"] <= 1.6, "MOCK_KIND"] == "QSO").all()


def test_redshift_distribution_like_dr16q(survey):
    _, cat = survey
    z = cat.loc[cat["MOCK_KIND"].isin(["QSO", "BAL"]), "Z_VI"]
    assert z.min() >= 0 and z.max() < 6.0
    assert 1.4 < z.median() < 2.2, "DR16Q median z ~ 1.7-1.9"
    hist, edges = np.histogram(z, bins=np.arange(0, 4.01, 0.5))
    assert edges[np.argmax(hist)] in (2.0,), "the Lya-selected peak sits at 2.0-2.5"
    assert (z > 3.5).mean() > 0.01 and (z < 0.5).mean() > 0.02


def test_signal_to_noise_like_dr16q(survey):
    _, cat = survey
    sn = cat["SN_MEDIAN_ALL"]
    assert 0.3 < (sn < 3).mean() < 0.6, "many DR16Q spectra have S/N < 3"
    assert (sn > 10).mean() > 0.03
    # the S/N written to the catalog is measured on the noisy spectrum and follows the one asked for
    assert np.corrcoef(np.log(sn), np.log(cat["MOCK_SN_TARGET"]))[0, 1] > 0.9


def test_qn_failures_where_lines_or_signal_are_missing(survey):
    _, cat = survey
    qso = cat[cat["MOCK_KIND"].isin(["QSO", "BAL"])]
    failed = qso["Z_QN"] == -1
    assert 0.03 < failed.mean() < 0.3
    wmin = np.where(qso["MOCK_INSTRUMENT"] == "SDSS", 3800.0, 3600.0)
    for (_, row), lo in zip(qso[failed].iterrows(), wmin[failed.to_numpy()]):
        n_lines = len(estimates.lines_in_window(row["Z_VI"], lo, 9200 if row["MOCK_INSTRUMENT"] == "SDSS" else 10300))
        assert n_lines < 3 or row["SN_MEDIAN_ALL"] < 1.6
    assert (qso.loc[failed, "IS_QSO_QN"] == 0).all()


def test_pipeline_failures_are_line_confusions(survey):
    _, cat = survey
    qso = cat[cat["MOCK_KIND"].isin(["QSO", "BAL"])]
    dv = 299792.458 * (qso["Z_PIPE"] - qso["Z_VI"]) / (1 + qso["Z_VI"])
    catastrophic = dv.abs() > 6000
    assert 0.01 < catastrophic.mean() < 0.08
    # a confusion maps one line onto another: (1+z_pipe)/(1+z) is a ratio of two line wavelengths
    ratios = {a / b for a in estimates.QN_LINES.values() for b in estimates.QN_LINES.values() if a != b}
    for _, row in qso[catastrophic].iterrows():
        r = (1 + row["Z_PIPE"]) / (1 + row["Z_VI"])
        assert min(abs(r - x) for x in ratios) < 0.01
    assert (dv[~catastrophic].abs().median()) < 300


def test_same_seed_same_survey_other_seed_differs():
    a_specs, a_cat = make_arrays(5, seed=3)
    b_specs, b_cat = make_arrays(5, seed=3)
    c_specs, _ = make_arrays(5, seed=4)
    pd.testing.assert_frame_equal(a_cat, b_cat)
    for a, b, c in zip(a_specs, b_specs, c_specs):
        np.testing.assert_array_equal(a.flux, b.flux)
        assert not np.array_equal(a.flux, c.flux) or a.flux.size != c.flux.size


def test_spectra_look_like_sdss(survey):
    specs, cat = survey
    for s, (_, row) in zip(specs[:200], cat.head(200).iterrows()):
        step = np.diff(np.log10(s.wave))
        assert np.allclose(step, 1e-4, atol=1e-9), "SDSS pixels: 1e-4 dex"
        if row["MOCK_INSTRUMENT"] == "SDSS":
            assert 3780 < s.wave[0] < 3850 and 9100 < s.wave[-1] < 9250
        else:
            assert 3550 < s.wave[0] < 3650 and 10200 < s.wave[-1] < 10450
        assert s.flux.dtype == np.float32 and np.isfinite(s.flux).all()
        assert (s.ivar >= 0).all() and (s.ivar > 0).mean() > 0.8
        if (s.ivar == 0).any():
            assert ((s.and_mask & (1 << 24)) != 0)[s.ivar == 0].all(), "no-data pixels carry NODATA"


def test_emission_lines_sit_at_the_true_redshift(survey):
    """A line measured at the truth z is strong; the same window at a wrong z is not."""
    specs, cat = survey
    good = cat[(cat["MOCK_KIND"] == "QSO") & (cat["SN_MEDIAN_ALL"] > 5) & cat["Z_VI"].between(0.5, 1.9)]
    assert len(good) > 20
    ew_true = [rest_ew(specs[i].wave, specs[i].flux, specs[i].ivar, row["Z_VI"], "MgII") for i, row in good.iterrows()]
    ew_wrong = [rest_ew(specs[i].wave, specs[i].flux, specs[i].ivar, row["Z_VI"] + 0.15, "MgII") for i, row in good.iterrows()]
    ok = np.isfinite(ew_true) & np.isfinite(ew_wrong)
    assert np.nanmedian(ew_true) > 20
    assert np.mean(np.asarray(ew_true)[ok] > np.asarray(ew_wrong)[ok]) > 0.9


def test_forest_mean_transmission_follows_faucher_giguere():
    rng = np.random.default_rng(0)
    wave = 10 ** (3.55 + 1e-4 * np.arange(4700))
    z_qso = 3.5
    trans = np.mean([forest_transmission(rng, wave, z_qso) for _ in range(40)], axis=0)
    sel = (wave / (1 + z_qso) > 1080) & (wave / (1 + z_qso) < 1180)
    z_abs = wave[sel] / 1215.67 - 1
    expected = np.exp(-tau_eff_lya(z_abs)).mean()
    assert abs(trans[sel].mean() - expected) < 0.05
    assert (trans[wave / (1 + z_qso) > 1230] == 1).all(), "nothing absorbed redward of Lya"


def test_dla_is_black_at_its_core_with_damping_wings():
    wave = np.linspace(4000, 4400, 4000)
    t = dla_transmission(wave, [Dla(2.5, 20.8)])
    core = 1215.67 * 3.5
    assert t[np.argmin(abs(wave - core))] < 1e-3
    # square-root regime: W_rest ~ 7.3 A (N_HI / 1e20)^0.5, observed (1+z) times wider
    w_obs = np.sum(1 - t) * (wave[1] - wave[0])
    expected = 7.3 * np.sqrt(10**0.8) * 3.5
    assert abs(w_obs / expected - 1) < 0.2
    assert 0.05 < t[np.argmin(abs(wave - (core + 0.8 * expected)))] < 0.99, "damping wing beyond the core"


def test_bal_trough_is_blueward_of_civ():
    wave = np.linspace(4000, 6000, 5000)
    z = 2.0
    t = bal_transmission(wave, z, Bal(2000, 12000, 0.8, False))
    v = 299792.458 * (1549.06 - wave / (1 + z)) / 1549.06
    assert t[(v > 4000) & (v < 10000)].max() < 0.4
    assert (t[wave / (1 + z) > 1560] > 0.99).all()


def test_mock_statistics_function_on_a_known_line():
    wave = 10 ** (3.55 + 1e-4 * np.arange(4700))
    z = 1.0
    rest = wave / (1 + z)
    flux = 1 + 2.0 * np.exp(-0.5 * ((rest - 2798.75) / 20) ** 2)  # EW = 2 * 20 * sqrt(2 pi) = 100 A
    ew = rest_ew(wave, flux, np.ones_like(wave), z, "MgII")
    assert abs(ew - 100.3) < 3
    st = spectrum_stats(wave, flux, np.ones_like(wave), z)
    assert st["frac_negative"] == 0


def test_uniform_window_puts_every_quasar_in_it_and_bad_windows_are_refused():
    _, cat = make_arrays(40, seed=5, z_distribution="uniform:2.8-3.0")
    qso = cat["CLASS_PERSON"].isin([3, 30])
    assert qso.sum() > 30
    assert cat.loc[qso, "Z_VI"].between(2.8, 3.0).all()
    for bad in ("uniform:3.0-2.8", "uniform:x-y", "gaussian:2-3"):
        with pytest.raises(ValueError, match="uniform:LO-HI"):
            make_arrays(1, seed=5, z_distribution=bad)


def test_flat_sn_training_mock_covers_bright_quasars():
    """A training mock must show the network bright quasars, which DR16Q's n(S/N) almost never draws."""
    _, survey_cat = make_arrays(60, seed=8)
    _, flat_cat = make_arrays(60, seed=8, sn_distribution="flat")
    qso = flat_cat["CLASS_PERSON"].isin([3, 30])
    bright = lambda cat: (cat.loc[cat["CLASS_PERSON"].isin([3, 30]), "SN_MEDIAN_ALL"] > 15).mean()
    assert bright(flat_cat) > 0.2 > bright(survey_cat)
    assert flat_cat.loc[qso, "SN_MEDIAN_ALL"].between(0.5, 80).all()
    with pytest.raises(ValueError, match="sn_distribution"):
        make_arrays(1, seed=8, sn_distribution="bright")
