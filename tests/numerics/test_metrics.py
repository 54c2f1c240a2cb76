"""model.metrics against numbers worked out by hand."""
import math

import numpy as np
import pytest

from model.metrics import (
    C_KMS,
    accuracy_row,
    accuracy_table,
    dv_kms,
    format_table,
    z_bin_groups,
)


def test_c_and_dv():
    assert C_KMS == 299792.458
    # c * 0.1 / 2
    assert dv_kms(1.1, 1.0) == pytest.approx(14989.6229, abs=1e-4)
    # c * (-0.02) / 1.5
    assert dv_kms(0.48, 0.5) == pytest.approx(-3997.23277, abs=1e-4)
    np.testing.assert_allclose(dv_kms([2.0, 3.0], [2.0, 2.0]), [0.0, C_KMS / 3])


def test_accuracy_table_by_hand():
    z_true = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    # |dv| = 0, 4496.887, 10492.736, 44968.869, c*0.019 = 5696.057, nan -> failure
    z_pred = np.array([1.0, 1.03, 1.07, 1.3, 0.019, np.nan])
    groups = {"z=1": z_true == 1.0, "z=0": z_true == 0.0, "none": np.zeros(6, bool)}
    t = accuracy_table(z_pred, z_true, groups=groups)
    assert list(t.index) == ["all", "z=1", "z=0", "none"]
    assert list(t.columns) == ["n", "acc@6000", "acc@12000", "acc@30000", "median_abs_dv"]
    a = t.loc["all"]
    assert a["n"] == 6
    assert a["acc@6000"] == pytest.approx(100 * 3 / 6)  # 0, 4497, 5696
    assert a["acc@12000"] == pytest.approx(100 * 4 / 6)
    assert a["acc@30000"] == pytest.approx(100 * 4 / 6)
    # sorted |dv|: 0, 4496.887, 5696.057, 10492.736, 44968.869, inf -> (5696.057 + 10492.736) / 2
    assert a["median_abs_dv"] == pytest.approx((C_KMS * 0.019 + C_KMS * 0.035) / 2, rel=1e-12)
    g1 = t.loc["z=1"]
    assert (g1["n"], g1["acc@6000"], g1["acc@12000"], g1["acc@30000"]) == (4, 50.0, 75.0, 75.0)
    assert g1["median_abs_dv"] == pytest.approx(C_KMS * (0.015 + 0.035) / 2)
    g0 = t.loc["z=0"]
    assert (g0["n"], g0["acc@6000"]) == (2, 50.0)
    assert g0["median_abs_dv"] == math.inf
    assert t.loc["none", "n"] == 0 and math.isnan(t.loc["none", "acc@6000"])
    assert "inf" in format_table(t)


def test_custom_thresholds_and_row():
    r = accuracy_row([0.01, 0.02], [0.0, 0.0], thresholds=(3000, 6000))
    # |dv| = 2997.9, 5995.8
    assert r == {"n": 2, "acc@3000": 50.0, "acc@6000": 100.0, "median_abs_dv": pytest.approx(C_KMS * 0.015)}


def test_z_bins():
    z = np.array([0.0, 0.49, 0.5, 2.49, 3.4, 3.5, -0.1])
    g = z_bin_groups(z, (0, 0.5, 1, 1.5, 2, 2.5, 3.5))
    assert list(g) == ["z[0,0.5)", "z[0.5,1)", "z[1,1.5)", "z[1.5,2)", "z[2,2.5)", "z[2.5,3.5)"]
    assert g["z[0,0.5)"].tolist() == [True, True, False, False, False, False, False]
    assert g["z[0.5,1)"].sum() == 1 and g["z[2,2.5)"].sum() == 1 and g["z[2.5,3.5)"].sum() == 1
    assert sum(m.sum() for m in g.values()) == 5  # 3.5 and -0.1 fall outside


def test_shape_mismatch():
    with pytest.raises(ValueError):
        accuracy_table([1.0, 2.0], [1.0])


# --------------------------------------------------------------------------- class scores (model.class_metrics)
def test_confusion_and_quasar_scores_by_hand():
    from model.class_metrics import class_indices, confusion_table, quasar_table
    from model.classes import UNKNOWN

    truth = class_indices(["QSO", "QSO", "BAL", "QSO", "STAR", "STAR", "GALAXY", "BAD", None, "QSO"])
    assert truth[8] == UNKNOWN  # no label: left out of every score
    pred = class_indices(["QSO", "BAL", "QSO", "STAR", "QSO", "STAR", "GALAXY", "BAD", "QSO", None])
    cm = confusion_table(truth, pred)
    assert list(cm.index) == ["QSO", "BAL", "STAR", "GALAXY", "BAD"]
    assert list(cm.columns) == ["QSO", "BAL", "STAR", "GALAXY", "BAD", "none"]  # "none": no class predicted
    assert cm.values.sum() == 9
    assert cm.loc["QSO"].tolist() == [1, 1, 1, 0, 0, 1]
    assert cm.loc["STAR", "QSO"] == 1 and cm.loc["BAL", "QSO"] == 1
    # quasars (QSO or BAL): rows 0,1,2,3,9 -> 5; called a quasar (of the known): rows 0,1,2,4 -> 4; both: 0,1,2
    groups = {"first half": np.arange(10) < 5, "second half": np.arange(10) >= 5}
    q = quasar_table(truth, pred, groups)
    assert q.loc["all", ["n", "n_quasars", "n_called"]].tolist() == [9, 5, 4]
    assert q.loc["all", "completeness"] == pytest.approx(60.0)
    assert q.loc["all", "purity"] == pytest.approx(75.0)
    assert q.loc["second half", ["n", "n_quasars", "n_called"]].tolist() == [4, 1, 0]
    assert math.isnan(q.loc["second half", "purity"]) and q.loc["second half", "completeness"] == 0.0
    assert "none" not in confusion_table(truth[:9], pred[:9]).columns


def test_purity_at_completeness_by_hand():
    from model.class_metrics import class_indices, purity_at_completeness

    truth = class_indices(["QSO"] * 4 + ["STAR"] * 3)
    p = np.array([0.95, 0.9, 0.8, 0.3, 0.85, 0.2, 0.1])
    # 75 % of 4 quasars: the top 3 -> cut at 0.8, which lets the 0.85 star in: purity 3/4
    r = purity_at_completeness(truth, p, 75.0)
    assert (r["threshold"], r["completeness"], r["purity"]) == (0.8, 75.0, 75.0)
    # 98 %: every quasar -> cut at 0.3, two stars above: purity 4/5
    r = purity_at_completeness(truth, p, 98.0)
    assert (r["threshold"], r["completeness"], r["purity"]) == (0.3, 100.0, 80.0)
    assert math.isnan(purity_at_completeness(class_indices(["STAR"]), [0.5])["purity"])
