"""inspector.failure_causes on hand-made misses whose cause is known, and on the pipeline's own real failures."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inspector.failure_causes import (
    cause_table,
    causes_of,
    diagnose,
    key_line_waves,
    line_pairs,
    miss_facts,
)
from model.grid import FNET_WAVE
from model.metrics import C_KMS

SDSS = (3800.0, 9200.0)  # SDSS-I/II's range
BOSS = (3600.0, 10400.0)  # wider than the FNet grid: nothing clamped


def read_as(z_true: float, true_line: str, as_line: str) -> float:
    """The z at which line `as_line` sits where the truth has `true_line`."""
    w = key_line_waves()
    return (1 + z_true) * w[true_line] / w[as_line] - 1


def test_oiii_read_as_mgii_at_low_z_is_narrow_line_confusion():
    zp = read_as(0.4, "[O III] 5007", "Mg II 2796")  # ~1.51
    pairs = line_pairs(0.4, zp, *BOSS)
    assert (pairs[0].true_line, pairs[0].read_as) == ("[O III] 5007", "Mg II 2796")
    assert pairs[0].observed_A == pytest.approx(1.4 * key_line_waves()["[O III] 5007"])
    assert abs(pairs[0].offset_kms) < 1
    assert causes_of(miss_facts(0.4, zp, sn=20, lam_min=BOSS[0], lam_max=BOSS[1]))[0] == "narrow-line confusion"


def test_the_pair_tolerates_a_few_thousand_km_s_and_no_more():
    z0 = read_as(0.58, "Balmer β", "Balmer α")  # Hbeta read as Halpha, as FNet does on two real epochs
    for off_kms, found in ((2000, True), (-2500, True), (4000, False)):
        zp = (1 + z0) * (1 + off_kms / C_KMS) - 1
        names = [(p.true_line, p.read_as) for p in line_pairs(0.58, zp, *BOSS)]
        assert (("Balmer β", "Balmer α") in names) is found, off_kms


def test_a_pair_needs_the_true_line_where_the_spectrum_has_data():
    zp = read_as(0.45, "Balmer α", "Mg II 2796")  # Halpha at 9518 A: beyond SDSS-I/II's red end
    assert any(p.true_line == "Balmer α" for p in line_pairs(0.45, zp, *BOSS))
    assert not any(p.true_line == "Balmer α" for p in line_pairs(0.45, zp, *SDSS))


def test_broad_line_confusion_at_high_z_is_not_narrow():
    zp = read_as(2.4, "C IV 1549", "Lyman α")
    f = miss_facts(2.4, zp, sn=10, lam_min=BOSS[0], lam_max=BOSS[1])
    assert f.pairs[0].true_line == "C IV 1549"
    assert causes_of(f) == ["line confusion"]


def test_clamped_end_depends_on_the_instrument_range():
    # z 0.45 read at 1.2: no line pair explains it; Halpha (9518 A) is beyond SDSS-I/II's 9200 A, not BOSS's
    f_sdss = miss_facts(0.45, 1.2, sn=20, lam_min=SDSS[0], lam_max=SDSS[1])
    f_boss = miss_facts(0.45, 1.2, sn=20, lam_min=BOSS[0], lam_max=BOSS[1])
    assert f_sdss.pairs == () and f_boss.pairs == ()
    assert f_sdss.clamped == ("Balmer α",) and causes_of(f_sdss) == ["clamped grid end"]
    assert f_boss.clamped == () and causes_of(f_boss) == ["other"]
    # a broad line whose peak sits just inside the edge is cut by it too (the real spec-1836-54567-0270)
    edge = key_line_waves()["Balmer α"] * 1.389 * (1 + 900 / C_KMS)
    assert miss_facts(0.389, 0.727, lam_min=3819.0, lam_max=edge).clamped == ("Balmer α",)


def test_masked_gap_on_a_key_line():
    z = 0.3
    oiii = (1 + z) * key_line_waves()["[O III] 5007"]
    ivar = np.ones(FNET_WAVE.size, np.float32)
    ivar[np.abs(FNET_WAVE - oiii) < 40] = 0  # a masked column on [O III]
    f = miss_facts(z, 1.2, sn=20, lam_min=BOSS[0], lam_max=BOSS[1], grid_ivar=ivar)
    assert f.masked == ("[O III] 5007",) and causes_of(f) == ["masked gap"]
    ivar[:] = 1
    ivar[np.abs(FNET_WAVE - oiii - 300) < 40] = 0  # a gap 300 A away hides no line
    assert miss_facts(z, 1.2, lam_min=BOSS[0], lam_max=BOSS[1], grid_ivar=ivar).masked == ()


def test_order_of_blame_and_what_else_holds():
    # a z 0.44 SDSS-I/II spectrum whose [O III] is read as Mg II: the confusion is blamed, the clamped Halpha kept
    zp = read_as(0.44, "[O III] 5007", "Mg II 2796")
    assert causes_of(miss_facts(0.44, zp, sn=20, lam_min=SDSS[0], lam_max=SDSS[1])) == [
        "narrow-line confusion", "clamped grid end",
    ]  # fmt: skip
    assert causes_of(miss_facts(4.8, 3.0, sn=1.5, is_bal=True, lam_min=BOSS[0], lam_max=BOSS[1])) == [
        "BAL", "high z", "low S/N",
    ]  # fmt: skip
    assert causes_of(miss_facts(2.0, np.nan, sn=1.0))[0] == "no redshift"
    assert causes_of(miss_facts(2.0, 2.0 + 3 * 15000 / C_KMS, sn=8, lam_min=BOSS[0], lam_max=BOSS[1])) == ["near miss"]


def test_diagnose_lists_misses_and_counts_causes_against_hits():
    z_true = np.array([0.4, 0.45, 0.45, 2.0, 2.0])
    z_pred = np.array([read_as(0.4, "[O III] 5007", "Mg II 2796"), 1.2, 0.4501, 2.001, np.nan])
    lo = np.array([BOSS[0], SDSS[0], SDSS[0], BOSS[0], BOSS[0]])
    hi = np.array([BOSS[1], SDSS[1], SDSS[1], BOSS[1], BOSS[1]])
    d = diagnose(z_true, z_pred, sn=[20, 20, 20, 20, 2], lam_min=lo, lam_max=hi)
    assert d["position"].tolist() == [0, 1, 4]
    assert d["cause"].tolist() == ["narrow-line confusion", "clamped grid end", "no redshift"]
    assert d.loc[2, "also"] == "low S/N"
    assert "[O III] 5007 read as Mg II 2796" in d.loc[0, "line_pair"]
    t = cause_table(diagnose(z_true, z_pred, sn=[20, 20, 20, 20, 2], lam_min=lo, lam_max=hi, misses_only=False))
    assert t.loc["clamped grid end", ["n", "n_holds", "hits_holds"]].tolist() == [1, 1, 1]  # spectrum 2 is a hit
    assert t.loc["low S/N", ["n", "n_holds", "hits_holds"]].tolist() == [0, 1, 0]
    assert t["n"].sum() == 3
    assert pd.isna(t.loc["narrow-line confusion", "hits_holds"])  # an error rule: nothing to count on hits


@pytest.mark.real
def test_the_pipelines_own_real_failures(shared_real_dir):
    """The data README's flagged pipeline failures: broad Halpha taken for Lya, and a BAL quasar."""
    from inspector.realset import labelled_quasars

    t = labelled_quasars(shared_real_dir)
    d = diagnose(t["z_ref"], t["z"], sn=t["sn_median_all"], is_bal=(t["true_class"] == "BAL").to_numpy(),
                 lam_min=t["lam_min"], lam_max=t["lam_max"])  # fmt: skip
    by_file = dict(zip(t["file"].to_numpy()[d["position"]], zip(d["cause"], d["line_pair"], strict=True), strict=True))
    for f in ("spec-9581-57783-0437", "spec-10742-58198-0490", "spec-7090-56659-0248"):
        cause, pair = by_file[f"sdss/{f}.fits"]
        assert cause == "narrow-line confusion" and pair.startswith("Balmer α read as Lyman α"), f
    assert by_file["sdss/spec-3655-55240-0110.fits"][0] == "BAL"
    assert by_file["sdss/spec-9367-57758-0500.fits"][0] == "low S/N"


def test_bench_skips_without_the_real_set(tmp_path):
    bench = Path(__file__).resolve().parents[2] / "bench" / "fnet_failures.py"
    env = {**os.environ, "FNET_REAL_DATA": str(tmp_path / "absent")}
    res = subprocess.run([sys.executable, str(bench)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("skipped: the real SDSS set is not at") and "absent" in res.stdout
