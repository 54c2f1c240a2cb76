"""model.evaluate and `inspector evaluate` against answers worked out by hand."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from model.evaluate import (
    accuracy_curve,
    evaluation_tables,
    format_tables,
    object_accuracy_table,
    paper_reference,
    sn_bin_groups,
    worst,
)
from model.metrics import C_KMS
from model.plots import fig4

# dz / (1 + z) = dv / c; these offsets land clearly inside / between / outside the thresholds
IN_6K = 3000 / C_KMS  # |dv| = 3000 km/s: right at every threshold
IN_12K = 9000 / C_KMS  # right at 12000 and 30000 only
IN_30K = 20000 / C_KMS  # right at 30000 only
OUT = 100000 / C_KMS  # wrong everywhere


def _pred(z_true, frac):
    return np.asarray(z_true) + np.asarray(frac) * (1 + np.asarray(z_true))


@pytest.fixture()
def hand_set():
    """10 spectra with known |dv| class, S/N, BAL flag and baseline failure."""
    z_true = np.array([0.2, 0.3, 0.7, 1.2, 1.7, 2.2, 2.3, 2.7, 3.5, 5.0])
    frac = np.array([IN_6K, IN_12K, IN_6K, OUT, IN_6K, IN_30K, IN_6K, np.nan, IN_6K, -IN_6K])
    z_pred = _pred(z_true, frac)  # NaN stays NaN: a failed prediction
    sn = np.array([1.0, 1.5, 2.5, 4.0, 6.0, 8.0, 12.0, 20.0, np.nan, 3.0])
    is_bal = np.array([0, 0, 0, 0, 1, 1, 0, 1, 0, 0], bool)
    qn_failed = np.array([0, 0, 0, 1, 1, 0, 0, 1, 0, 0], bool)
    return z_pred, z_true, sn, is_bal, qn_failed


SURVEYS = np.array(["SDSS-I/II", "SDSS-I/II", "BOSS", "BOSS", "eBOSS", "eBOSS", "eBOSS", "BOSS", "MOCK", None], object)


def test_tables_by_hand(hand_set):
    z_pred, z_true, sn, is_bal, qn_failed = hand_set
    t = evaluation_tables(z_pred, z_true, sn=sn, is_bal=is_bal, baseline_failed=qn_failed, survey=SURVEYS)
    assert list(t) == ["overall", "by_z", "by_survey", "by_sn", "bal", "baseline_failed"]

    o = t["overall"].loc["all"]
    # right at 6000: rows 0, 2, 4, 6, 8, 9 -> 6/10; +row 1 at 12000; +row 5 at 30000
    assert (o["n"], o["acc@6000"], o["acc@12000"], o["acc@30000"]) == (10, 60.0, 70.0, 80.0)

    bz = t["by_z"]
    assert list(bz.index) == [
        "all", "z[0,0.5)", "z[0.5,1)", "z[1,1.5)", "z[1.5,2)", "z[2,2.5)", "z[2.5,3)", "z[3,4)", "z[4,4.5)",
        "z[4.5,7)",
    ]  # fmt: skip
    assert bz["n"].tolist() == [10, 2, 1, 1, 1, 2, 1, 1, 0, 1]
    assert bz.loc["z[0,0.5)", ["acc@6000", "acc@12000", "acc@30000"]].tolist() == [50.0, 100.0, 100.0]
    assert bz.loc["z[1,1.5)", "acc@30000"] == 0.0
    assert bz.loc["z[2,2.5)", ["acc@6000", "acc@12000", "acc@30000"]].tolist() == [50.0, 50.0, 100.0]
    assert bz.loc["z[2.5,3)", "acc@30000"] == 0.0 and bz.loc["z[2.5,3)", "median_abs_dv"] == math.inf
    assert bz.loc["z[4.5,7)", "acc@6000"] == 100.0  # the paper's high-z regime gets a row of its own
    assert bz.loc["z[0.5,1)", "median_abs_dv"] == pytest.approx(3000.0)

    bs = t["by_sn"]
    assert list(bs.index) == ["all", "S/N[0,2)", "S/N[2,3)", "S/N[3,5)", "S/N[5,10)", "S/N[10,inf)", "S/N unknown"]
    assert bs["n"].tolist() == [10, 2, 1, 2, 2, 2, 1]
    assert bs.loc["S/N[3,5)", "acc@6000"] == 50.0  # z 1.2 wrong, z 5.0 right
    assert bs.loc["S/N[5,10)", ["acc@6000", "acc@30000"]].tolist() == [50.0, 100.0]
    assert bs.loc["S/N[10,inf)", "acc@6000"] == 50.0  # 12 right, 20 failed

    sv = t["by_survey"]  # every survey of SURVEY_ORDER, even with no spectra (DESI), then the others found
    assert list(sv.index) == ["all", "survey=SDSS-I/II", "survey=BOSS", "survey=eBOSS", "survey=DESI",
                              "survey=MOCK", "survey=unknown"]  # fmt: skip
    assert sv["n"].tolist() == [10, 2, 3, 3, 0, 1, 1]
    assert sv.loc["survey=SDSS-I/II", ["acc@6000", "acc@12000"]].tolist() == [50.0, 100.0]
    assert sv.loc["survey=BOSS", "acc@6000"] == pytest.approx(100 / 3)  # z 0.7 right, 1.2 wrong, 2.7 failed
    assert sv.loc["survey=eBOSS", ["acc@6000", "acc@30000"]].tolist() == [pytest.approx(200 / 3), 100.0]
    assert "survey=DESI" not in format_tables(t)  # empty rows stay in the table, not in the text

    b = t["bal"]
    assert b.loc["BAL", "n"] == 3 and b.loc["not BAL", "n"] == 7
    assert b.loc["BAL", "acc@6000"] == pytest.approx(100 / 3)
    assert b.loc["BAL", "acc@30000"] == pytest.approx(200 / 3)
    assert b.loc["not BAL", "acc@6000"] == pytest.approx(500 / 7)

    f = t["baseline_failed"]
    assert f.loc["baseline failed", "n"] == 3  # rows 3 (wrong), 4 (right), 7 (failed)
    assert f.loc["baseline failed", "acc@6000"] == pytest.approx(100 / 3)
    assert f.loc["baseline ok", "acc@6000"] == pytest.approx(500 / 7)


def test_optional_tables_left_out_and_shape_checked(hand_set):
    z_pred, z_true, *_ = hand_set
    assert list(evaluation_tables(z_pred, z_true)) == ["overall", "by_z"]
    with pytest.raises(ValueError, match="survey has 2 values"):
        evaluation_tables(z_pred, z_true, survey=["BOSS", "eBOSS"])
    with pytest.raises(ValueError, match="sn has 3 values"):
        evaluation_tables(z_pred, z_true, sn=[1, 2, 3])
    with pytest.raises(ValueError, match="estimator"):
        evaluation_tables({"a": z_pred[:5]}, z_true)


def test_several_estimators_side_by_side(hand_set):
    z_pred, z_true, _, _, qn_failed = hand_set
    z_qn = np.where(qn_failed, -1.0, z_true)  # perfect where it did not fail; -1 is a failure
    t = evaluation_tables({"FNet": z_pred, "QN": z_qn}, z_true, baseline_failed=qn_failed)
    f = t["baseline_failed"]
    assert f.index.names == ["group", "estimator"]
    assert list(f.index) == [
        ("all", "FNet"), ("all", "QN"), ("baseline failed", "FNet"), ("baseline failed", "QN"),
        ("baseline ok", "FNet"), ("baseline ok", "QN"),
    ]  # fmt: skip
    assert f.loc[("all", "QN"), "acc@6000"] == 70.0
    assert f.loc[("baseline failed", "QN"), "acc@30000"] == 0.0
    assert f.loc[("baseline ok", "QN"), "acc@6000"] == 100.0
    assert f.loc[("baseline failed", "FNet"), "acc@6000"] == pytest.approx(100 / 3)
    text = format_tables(t)
    assert "paper: FNet" in text and "97.0" in text and "87.4" in text and "baseline failed" in text


def test_paper_reference():
    p = paper_reference()
    assert p.loc["paper: FNet"].tolist() == [97.0, 98.0, 98.9]
    assert p.loc["paper: QuasarNET"].tolist() == [97.8, 97.9, 98.0]
    assert p.iloc[2].tolist() == [87.4, 91.6, 95.1]


def test_sn_groups_and_curve():
    g = sn_bin_groups([0.5, 2.0, 100.0, np.nan], (0, 2, np.inf))
    assert {k: v.tolist() for k, v in g.items()} == {
        "S/N[0,2)": [True, False, False, False],
        "S/N[2,inf)": [False, True, True, False],
        "S/N unknown": [False, False, False, True],
    }
    zt = np.zeros(4)
    zp = np.array([1000, 5000, 20000, np.nan]) / C_KMS
    np.testing.assert_allclose(accuracy_curve(zp, zt, [999, 1001, 6000, 1e9]), [0, 25, 50, 75])


def test_object_accuracy_is_mean_of_hits_per_object():
    # object a: 2 epochs, one right -> 0.5; b: 1 epoch right -> 1; c: 1 epoch wrong -> 0
    z_true = np.ones(4)
    z_pred = _pred(z_true, [IN_6K, OUT, IN_6K, OUT])
    obj = np.array(["a", "a", "b", "c"])
    survey = np.array(["BOSS", "SDSS", "BOSS", "SDSS"])
    t = object_accuracy_table(z_pred, z_true, obj, groups={"BOSS": survey == "BOSS", "SDSS": survey == "SDSS"})
    assert t.loc["all", "n_objects"] == 3 and t.loc["all", "n_spectra"] == 4
    assert t.loc["all", "acc@6000"] == pytest.approx(100 * (0.5 + 1 + 0) / 3)
    assert t.loc["BOSS", "acc@6000"] == 100.0 and t.loc["BOSS", "n_objects"] == 2
    assert t.loc["SDSS", "acc@6000"] == 0.0 and t.loc["SDSS", "n_objects"] == 2
    both = object_accuracy_table({"x": z_pred, "truth": z_true}, z_true, obj)
    assert both.loc[("all", "truth"), "acc@6000"] == 100.0


def test_worst_puts_failures_first():
    z_true = np.array([1.0, 1.0, 1.0])
    z_pred = np.array([1.01, np.nan, 2.0])
    w = worst(z_pred, z_true, k=2, columns={"name": ["a", "b", "c"]})
    assert w["name"].tolist() == ["b", "c"]


def test_fig4_writes_png(tmp_path, hand_set):
    z_pred, z_true, *_ = hand_set
    p = fig4({"FNet": z_pred, "truth": z_true}, z_true, tmp_path / "f" / "fig4.png", title="hand set")
    assert p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rng = np.random.default_rng(0)  # the density-shaded branch
    zt = rng.uniform(0, 4, 4000)
    p2 = fig4(zt + rng.normal(0, 0.01, zt.size), zt, tmp_path / "big.png")
    assert p2.stat().st_size > 10_000


# --------------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """A 40-spectrum mock survey ingested into a store (about a second)."""
    from inspector.ingest import ingest
    from inspector.mock import make_survey

    root = tmp_path_factory.mktemp("evalstore")
    make_survey(root / "survey", 40, seed=3, workers=1, progress=False)
    ingest([str(root / "survey")], root / "store", workers=1, progress=False)
    return root / "store"


def _write_predictions(store, path, split=True):
    """FNet right on every quasar but the first 3 (off by 0.5 in z); the split column marks every other row test."""
    from inspector.store import open_store

    idx = open_store(store).index
    z = idx["z"].to_numpy(float)
    zf = z.copy()
    zf[:3] += 0.5
    df = pd.DataFrame({"row": idx["row"].astype("int64"), "object_id": idx["object_id"].astype(str), "z_fnet": zf})
    if split:
        df["split"] = np.where(np.arange(len(df)) % 2 == 0, "test", "train")
    df.to_parquet(path)
    return idx, zf


def test_cli_store_mode(small_store, tmp_path):
    from typer.testing import CliRunner

    from inspector.cli import app

    idx, _ = _write_predictions(small_store, tmp_path / "fnet.parquet")
    failed = np.zeros(len(idx), bool)
    failed[[0, 4, 6]] = True
    pd.DataFrame(
        {"row": idx["row"].astype("int64"), "object_id": idx["object_id"].astype(str),
         "z_qn": np.where(failed, -1.0, idx["z"].to_numpy(float)), "qn_failed": failed}
    ).to_parquet(tmp_path / "qn.parquet")  # fmt: skip
    out = tmp_path / "ev"
    res = CliRunner().invoke(
        app,
        ["evaluate", "--store", str(small_store), "--predictions", str(tmp_path / "fnet.parquet"),
         "--baseline", str(tmp_path / "qn.parquet"), "--split", "test", "--out-dir", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    # expected: the test rows (even) that are quasars with a z
    test_rows = np.arange(len(idx)) % 2 == 0
    qso = _quasar_rows(idx) & test_rows
    n = int(qso.sum())
    n_wrong = int(qso[:3].sum())  # rows 0 and 2 (if quasars) are off by 0.5
    assert f"scored: {n} quasars" in res.output
    rec = json.loads((out / "evaluation.json").read_text())
    overall = {r["estimator"]: r for r in rec["tables"]["overall"]}
    assert overall["FNet"]["n"] == n
    assert overall["FNet"]["acc@6000"] == pytest.approx(100 * (n - n_wrong) / n)
    n_qn_failed = int(qso[[0, 4, 6]].sum())
    assert overall["QuasarNET-style (ours)"]["acc@6000"] == pytest.approx(100 * (n - n_qn_failed) / n)
    assert {"catalog Z_PIPE", "catalog Z_PCA", "catalog Z_QN", "Template fit (Z_TPL)"} <= set(overall)
    assert rec["meta"]["template_from"].startswith("inspector.pipeline.template")
    assert all("Template fit (Z_TPL)" in {r["estimator"] for r in t} for t in rec["tables"].values())
    bf = {(r["group"], r["estimator"]): r for r in rec["tables"]["baseline_failed"]}
    assert bf[("baseline failed", "FNet")]["n"] == n_qn_failed
    assert bf[("baseline failed", "QuasarNET-style (ours)")]["acc@30000"] == 0.0
    assert set(rec["tables"]) == {"overall", "by_z", "by_survey", "by_sn", "bal", "baseline_failed"}
    sv = {(r["group"], r["estimator"]): r for r in rec["tables"]["by_survey"]}
    surveys = np.where(idx["survey"].to_numpy() == "SDSS", "SDSS-I/II", idx["survey"].to_numpy())
    for name in ("SDSS-I/II", "BOSS", "eBOSS", "DESI"):  # the mock writes SDSS (-I/II), BOSS and eBOSS
        assert sv[(f"survey={name}", "FNet")]["n"] == int((qso & (surveys == name)).sum())
    assert "== by survey ==" in res.output and "== by S/N (SN_MEDIAN_ALL) ==" in res.output
    # predictions without class columns come from a model without a class head: said, not scored
    assert "no class head" in res.output and rec["meta"]["class"]["class_head"] is False
    assert (out / "fig4.png").read_bytes()[:4] == b"\x89PNG"
    assert "paper: FNet" in res.output


def test_cli_store_mode_errors_and_no_split(small_store, tmp_path):
    from typer.testing import CliRunner

    from inspector.cli import app

    idx, _ = _write_predictions(small_store, tmp_path / "p.parquet", split=False)
    run = lambda *a: CliRunner().invoke(app, ["evaluate", "--store", str(small_store), *a])
    res = run("--predictions", str(tmp_path / "p.parquet"), "--out-dir", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    assert "--split test cannot be honoured (no sidecar p.json" in res.output  # said, not silently ignored
    assert f"scored: {int(_quasar_rows(idx).sum())} quasars" in res.output

    # a sidecar naming another training store: every row is held out
    side = {"model": {"provenance": {"store": str(tmp_path / "elsewhere"), "train_args": {"seed": 0}}}}
    (tmp_path / "p.json").write_text(json.dumps(side))
    res = run("--predictions", str(tmp_path / "p.parquet"), "--out-dir", str(tmp_path / "o"))
    assert res.exit_code == 0 and "held out: the model was trained on another store" in res.output
    # trained on this very store, with no record of the split: say so, score all
    side["model"]["provenance"]["store"] = str(small_store)
    (tmp_path / "p.json").write_text(json.dumps(side))
    res = run("--predictions", str(tmp_path / "p.parquet"), "--out-dir", str(tmp_path / "o"))
    assert res.exit_code == 0 and "does not say which rows were held out" in res.output

    bad = pd.read_parquet(tmp_path / "p.parquet")
    bad["object_id"] = bad["object_id"].iloc[::-1].to_numpy()
    bad.to_parquet(tmp_path / "bad.parquet")
    res = run("--predictions", str(tmp_path / "bad.parquet"))
    assert res.exit_code == 2 and "made on another store" in res.output
    res = run("--predictions", str(tmp_path / "missing.parquet"))
    assert res.exit_code == 2 and "does not exist" in res.output


def test_store_mode_scores_the_class_on_every_spectrum(small_store, tmp_path):
    """FNet's class against the store's truth: one quasar called a galaxy and one non-quasar called a quasar."""
    from inspector.pipeline.evaluate_store import evaluate_store
    from inspector.training_set import store_classes
    from model.classes import CLASSES, QSO_CLASSES

    idx, _ = _write_predictions(small_store, tmp_path / "p.parquet", split=False)
    truth = np.asarray(CLASSES, dtype=object)[store_classes(idx)]
    is_q = np.isin(truth, QSO_CLASSES)
    assert is_q.sum() >= 2 and (~is_q).sum() >= 1, "the 40-spectrum mock should hold a star or galaxy"
    called = truth.copy()
    q0, s0 = np.flatnonzero(is_q)[0], np.flatnonzero(~is_q)[0]
    called[q0], called[s0] = "GALAXY", "QSO"
    p_qso = np.where(is_q, 0.9, 0.1)
    p_qso[q0], p_qso[s0] = 0.4, 0.6
    df = pd.read_parquet(tmp_path / "p.parquet")
    df["fnet_class"], df["p_qso"] = called, p_qso
    df.to_parquet(tmp_path / "p.parquet")

    ev = evaluate_store(small_store, tmp_path / "p.parquet", split="all", out_dir=tmp_path / "ev", plot=False,
                        template=False)  # fmt: skip
    cm = ev.tables["class_confusion"]
    assert cm.values.sum() == len(idx)  # stars and galaxies are classified too, not only the quasars
    assert cm.loc[truth[q0], "GALAXY"] == 1 and cm.loc[truth[s0], "QSO"] == 1
    assert np.trace(cm.values) == len(idx) - 2
    nq = int(is_q.sum())
    a = ev.tables["class_quasar"].loc["all"]
    assert (a["n"], a["n_quasars"], a["n_called"]) == (len(idx), nq, nq)
    assert a["completeness"] == pytest.approx(100 * (nq - 1) / nq)
    assert a["purity"] == pytest.approx(100 * (nq - 1) / nq)
    survey = np.where(idx["survey"] == "SDSS", "SDSS-I/II", idx["survey"])[q0]
    assert ev.tables["class_quasar"].loc[f"survey={survey}", "completeness"] < 100
    # the cut keeping 98 % of the quasars must go down to the quasar at p_qso 0.4, letting the 0.6 one in
    at = ev.meta["class"]["purity_at_completeness_98"]
    assert at["threshold"] == pytest.approx(0.4)
    assert at["purity"] == pytest.approx(100 * nq / (nq + 1))
    assert ev.meta["class"]["non_quasars_called_quasar"] == [str(idx["object_id"].iloc[s0])]
    assert ev.meta["class"]["quasars_called_other"] == [str(idx["object_id"].iloc[q0])]
    assert str(idx["object_id"].iloc[s0]) in ev.text and "purity" in ev.text
    rec = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert {"class_confusion", "class_quasar"} <= set(rec["tables"])


@pytest.mark.real
def test_real_truth_classes_follow_the_curated_notes(shared_real_dir):
    """../shared/data/README.md's flagged spectra overrule the pipeline class; the z set is unchanged."""
    from inspector import realset

    t = realset.labelled_spectra(shared_real_dir).set_index("file")
    cls = t["true_class"]
    assert cls["sdss/spec-9367-57758-0500.fits"] == "QSO"  # pipeline STAR (CV), the same object as a z 2.7 quasar
    assert cls["sdss/spec-3655-55240-0110.fits"] == "BAL"
    for f in ("spec-0790-52441-0145", "spec-8398-57870-0908"):  # its epochs disagree: no class truth
        assert cls[f"sdss/{f}.fits"] == realset.DISPUTED
    assert (cls == "GALAXY").sum() == 9 and (cls == "STAR").sum() == 3
    q = realset.labelled_quasars(shared_real_dir)
    assert len(q) == 144 and not q["true_class"].isin(["STAR", "GALAXY"]).any()
    assert "sdss/spec-0790-52441-0145.fits" in set(q["file"]) and "sdss/spec-8398-57870-0908.fits" not in set(q["file"])


def _tiny_fnet(path, n_classes: int = 0):
    """An untrained small FNet (a class head when n_classes): enough to run the evaluation end to end."""
    import dataclasses

    import torch

    from model.fnet import FNet, FNetConfig
    from model.train import save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = FNet(dataclasses.replace(FNetConfig.small(), n_classes=n_classes))
    m.set_label_scaling(0.0, 4.0)
    save_checkpoint(path, m.eval())
    return path


def test_real_mode_classifies_the_stars_and_galaxies_too(tmp_path, real_dir):
    """A class-head model on the committed fixtures (5 quasars, a galaxy, two stars): every file is classified,
    every non-quasar called a quasar is named, and only the quasars' z is scored."""
    from inspector.pipeline.evaluate_real import evaluate_real

    ev = evaluate_real(_tiny_fnet(tmp_path / "cls.pt", n_classes=5), out_dir=tmp_path / "real", real_root=real_dir,
                       plot=False, template=False)  # fmt: skip
    assert ev.tables["overall"].loc[("all", "FNet"), "n"] == 5
    cm = ev.tables["class_confusion"]
    assert cm.values.sum() == 8
    assert cm.sum(axis=1).to_dict() == {"QSO": 4, "BAL": 1, "STAR": 2, "GALAXY": 1, "BAD": 0}
    called = ev.meta["class"]["non_quasars_called_quasar"]
    others = {r["file"]: r for r in ev.meta["class"]["not_z_scored"]}
    assert set(others) == {"spec-0266-51602-0013.fits", "spec-10000-57346-0005.fits", "spec-4055-55359-0001.fits"}
    assert set(called) == {f for f, r in others.items() if r["fnet_class"] in ("QSO", "BAL")}
    assert all(f in ev.text for f in others)
    assert ev.tables["class_quasar"].loc["all", "n_called"] == int(cm[["QSO", "BAL"]].values.sum())


def test_real_mode_on_fixtures(tmp_path, real_dir):
    """--real on the committed real fixtures with an untrained small FNet: it runs and reports per object,
    by survey and by S/N, and says the model has no class head."""
    from inspector.pipeline.evaluate_real import evaluate_real

    ev = evaluate_real(_tiny_fnet(tmp_path / "tiny.pt"), out_dir=tmp_path / "real", real_root=real_dir, n_worst=3)
    assert ev.meta["n_spectra"] == 5 and ev.meta["n_files"] == 8
    obj = ev.tables["objects_by_survey"]
    assert obj.loc[("all", "FNet"), "n_objects"] == 5
    # the files' own pipeline z equals z_ref wherever no curated ref_z overrides it
    assert obj.loc[("survey=BOSS", "pipeline Z (file)"), "n_spectra"] == 2
    assert obj.loc[("all", "Template fit (Z_TPL)"), "n_spectra"] == 5
    assert ev.meta["estimators"] == ["FNet", "Template fit (Z_TPL)", "pipeline Z (file)"]
    # the 5 quasars: 2 SDSS-I/II, 2 BOSS, 1 eBOSS; S/N from the manifest
    sv = ev.tables["by_survey"]
    assert [sv.loc[(f"survey={s}", "FNet"), "n"] for s in ("SDSS-I/II", "BOSS", "eBOSS", "DESI")] == [2, 2, 1, 0]
    assert ev.tables["by_sn"].loc[("S/N[10,inf)", "FNet"), "n"] == 4
    assert ev.tables["objects_by_sn"].loc[("all", "FNet"), "n_objects"] == 5
    assert "PER OBJECT" in ev.text and "worst 3" in ev.text and "== by S/N ==" in ev.text
    assert "no class head" in ev.text and ev.meta["class"]["class_head"] is False
    assert "class_confusion" not in ev.tables
    assert (tmp_path / "real" / "fig4_real.png").exists()
    assert (tmp_path / "real" / "evaluation_real.json").exists()


def test_cli_train_predict_evaluate_rebuilds_the_held_out_split(small_store, tmp_path):
    """inspector train -> predict -> evaluate --split test scores exactly the validation split training held out."""
    import torch
    from typer.testing import CliRunner

    from inspector import training_set
    from inspector.cli import app
    from inspector.pipeline.evaluate_store import evaluate_store
    from inspector.store import open_store

    torch.set_num_threads(1)
    runner = CliRunner()
    model = tmp_path / "m.pt"
    res = runner.invoke(app, ["train", "--store", str(small_store), "--out", str(model), "--epochs", "1",
                              "--threads", "1", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    pred = tmp_path / "m.parquet"
    res = runner.invoke(app, ["predict", "--store", str(small_store), "--model", str(model), "--out", str(pred)])
    assert res.exit_code == 0, res.output
    prov = torch.load(model, weights_only=True)["provenance"]
    index = open_store(small_store).index
    _, val = training_set.split(index, 0.1, prov["train_args"]["seed"], with_classes=True)
    assert prov["n_val"] == val.size > 0
    n_val = training_set.quasar_rows(index, val).size  # the redshift is scored on the held-out quasars
    ev = evaluate_store(small_store, pred, split="test", out_dir=tmp_path / "ev", plot=False)
    assert "verified against the model's training-data hash" in ev.meta["split"]
    assert ev.meta["n_scored"] == n_val
    ev_all = evaluate_store(small_store, pred, split="all", out_dir=tmp_path / "ev", plot=False)
    assert ev_all.meta["n_scored"] > n_val
    # a sidecar whose hash no longer matches (e.g. the store's labels changed): refused, not guessed
    side = json.loads(pred.with_suffix(".json").read_text())
    side["model"]["provenance"]["data_hash"] = "0" * 40
    pred.with_suffix(".json").write_text(json.dumps(side))
    ev = evaluate_store(small_store, pred, split="test", out_dir=tmp_path / "ev", plot=False)
    assert "could not be rebuilt" in ev.meta["split"] and ev.meta["n_scored"] == ev_all.meta["n_scored"]


# --------------------------------------------------------------------------- the template fit (Z_TPL)
TPL = "Template fit (Z_TPL)"


def _quasar_rows(idx):
    from inspector.training_set import quasar_rows

    z = pd.to_numeric(idx["z"], errors="coerce").to_numpy(float)
    return np.isin(np.arange(len(idx)), quasar_rows(idx, np.arange(len(idx)))) & np.isfinite(z) & (z >= 0)


def test_store_mode_template_from_the_predictions(small_store, tmp_path, monkeypatch):
    """z_tpl in the predictions is scored as it is (NaN = wrong) and nothing is fitted."""
    import inspector.pipeline.template
    from inspector.pipeline.evaluate_store import evaluate_store

    monkeypatch.setattr(inspector.pipeline.template, "template_fits", lambda *a, **k: pytest.fail("refitted"))
    idx, _ = _write_predictions(small_store, tmp_path / "p.parquet", split=False)
    qso = _quasar_rows(idx)
    q = np.flatnonzero(qso)
    z = idx["z"].to_numpy(float)
    z_tpl = z * (1 + IN_6K) + IN_6K  # |dv| = 3000 km/s: right
    z_tpl[q[0]] = np.nan  # no fit: wrong
    z_tpl[q[1]] += 0.5 * (1 + z[q[1]])  # wrong everywhere
    z_tpl[q[2]] = z[q[2]] + IN_12K * (1 + z[q[2]])  # right at 12000 and 30000 only
    z_tpl[q[3]] = z[q[3]] + IN_30K * (1 + z[q[3]])  # right at 30000 only
    df = pd.read_parquet(tmp_path / "p.parquet")
    df["z_tpl"] = z_tpl
    df.to_parquet(tmp_path / "p.parquet")
    from model.template_fit import settings_key

    side = tmp_path / "p.json"  # what `inspector predict` records: the settings the z_tpl column was made with
    side.write_text(json.dumps({"template_fit": {"settings": settings_key()}}))

    ev = evaluate_store(small_store, tmp_path / "p.parquet", split="all", out_dir=tmp_path / "ev", plot=False)
    n = int(qso.sum())
    o = ev.tables["overall"].loc[("all", TPL)]
    assert o["n"] == n
    assert o["acc@6000"] == pytest.approx(100 * (n - 4) / n)
    assert o["acc@12000"] == pytest.approx(100 * (n - 3) / n)
    assert o["acc@30000"] == pytest.approx(100 * (n - 2) / n)
    assert o["median_abs_dv"] == pytest.approx(3000, abs=1)
    # by z: the bin of the NaN quasar loses exactly that one
    from model.evaluate import Z_EDGES
    from model.metrics import z_bin_groups

    bz = ev.tables["by_z"]

    groups = z_bin_groups(z[qso], Z_EDGES)
    wrong = np.isin(q, q[:4])
    for name, m in groups.items():
        if m.any():
            assert bz.loc[(name, TPL), "acc@6000"] == pytest.approx(100 * (1 - wrong[m].mean())), name
    # beside FNet in every table, and in the text and JSON
    assert all(("all", TPL) in t.index for t in ev.tables.values())
    assert "baseline_failed" in ev.tables and ("baseline failed", TPL) in ev.tables["baseline_failed"].index
    assert ev.meta["template_from"] == "the predictions' z_tpl column"
    assert "Template fit (Z_TPL): from the predictions' z_tpl column; no fit for 1 spectra (wrong)" in ev.text
    rec = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    r = next(r for r in rec["tables"]["overall"] if r["estimator"] == TPL)
    assert r["acc@6000"] == pytest.approx(100 * (n - 4) / n)

    # a column made with other template settings is not scored as today's estimator: the store is fitted
    side.write_text(json.dumps({"template_fit": {"settings": {**settings_key(), "z_max": 5.0}}}))
    fitted = pd.DataFrame({"row": np.arange(len(idx)), "z_tpl": z})
    monkeypatch.setattr(inspector.pipeline.template, "template_fits", lambda *a, **k: fitted)
    ev = evaluate_store(small_store, tmp_path / "p.parquet", split="all", out_dir=tmp_path / "ev2", plot=False)
    assert ev.tables["overall"].loc[("all", TPL), "acc@6000"] == pytest.approx(100.0)
    assert "made with other settings" in ev.meta["template_from"]


@pytest.mark.parametrize("column", ["absent", "all null"])
def test_store_mode_template_fitted_when_not_stored(small_store, tmp_path, column):
    """No z_tpl (or one from a --no-template run, all null): fitted on the store by template_run, and cached."""
    from typer.testing import CliRunner

    from inspector.cli import app
    from inspector.pipeline.evaluate_store import evaluate_store
    from inspector.pipeline.template import template_fits
    from inspector.store.files import template_cache_path as cache_path
    from model.metrics import dv_kms

    idx, _ = _write_predictions(small_store, tmp_path / "p.parquet", split=False)
    if column == "all null":
        df = pd.read_parquet(tmp_path / "p.parquet")
        df["z_tpl"] = pd.Series([None] * len(df), dtype="float64")
        df.to_parquet(tmp_path / "p.parquet")
    ev = evaluate_store(small_store, tmp_path / "p.parquet", split="all", out_dir=tmp_path / "ev", plot=False)
    assert ev.meta["template_from"] == f"inspector.pipeline.template on the store (cached in {cache_path(small_store)})"
    assert cache_path(small_store).exists()

    qso = _quasar_rows(idx)
    fits = template_fits(small_store).set_index("row")  # from the cache now
    z_tpl = fits.loc[idx["row"].to_numpy()[qso], "z_tpl"].to_numpy(float)
    z = idx["z"].to_numpy(float)[qso]
    adv = np.nan_to_num(np.abs(dv_kms(z_tpl, z)), nan=np.inf)
    o = ev.tables["overall"].loc[("all", TPL)]
    assert o["n"] == qso.sum()
    for t in (6000, 12000, 30000):
        assert o[f"acc@{t}"] == pytest.approx(100 * np.mean(adv < t))
    assert o["acc@6000"] >= 80  # clean mock quasars on the FNet grid: the fit is mostly right

    # --no-template leaves it out
    res = CliRunner().invoke(app, ["evaluate", "--store", str(small_store), "--predictions", str(tmp_path / "p.parquet"),
                                   "--split", "all", "--out-dir", str(tmp_path / "ev2"), "--no-template"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "ev2" / "evaluation.json").read_text())
    assert TPL not in rec["meta"]["estimators"] and rec["meta"]["template_from"] is None
    assert TPL not in res.output


def test_real_mode_template_fit_on_the_shared_set(tmp_path, shared_real_dir):
    """The 144 labelled real quasars: the template fit on native pixels is >= 98 % right at 6000 km/s."""
    import torch

    from inspector.pipeline.evaluate_real import evaluate_real
    from model.fnet import FNet, FNetConfig
    from model.train import save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = FNet(FNetConfig.small())
    m.set_label_scaling(0.0, 4.0)
    save_checkpoint(tmp_path / "tiny.pt", m.eval())
    ev = evaluate_real(tmp_path / "tiny.pt", out_dir=tmp_path / "real", real_root=shared_real_dir, plot=False,
                       template_processes=2)  # fmt: skip
    o = ev.tables["overall"].loc[("all", TPL)]
    assert o["n"] >= 140
    assert o["acc@6000"] >= 98.0
    assert ev.tables["objects_by_z"].loc[("all", TPL), "acc@6000"] >= 98.0
    assert ev.meta["template_fit"]["n_no_fit"] == 0
    assert len(ev.meta["template_fit"]["misses_6000"]) == round(o["n"] * (1 - o["acc@6000"] / 100))
    assert "Template fit (Z_TPL): spectra off by 6000 km/s or more" in ev.text
    rec = json.loads((tmp_path / "real" / "evaluation_real.json").read_text())
    assert TPL in {r["estimator"] for r in rec["tables"]["by_survey"]}


def test_survey_names_as_the_tables_name_them():
    from inspector.pipeline.evaluate_common import survey_names

    got = survey_names(["SDSS", "SDSS-I/II", "BOSS", "eBOSS", "DESI", "DESI (SV1, everest reduction)", None, "MOCK"])
    assert got.tolist() == ["SDSS-I/II", "SDSS-I/II", "BOSS", "eBOSS", "DESI", "DESI", "unknown", "MOCK"]
