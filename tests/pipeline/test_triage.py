"""inspector.triage and `inspector triage`: every rule on hand-made rows with known dv, overrides, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from inspector.estimates import estimates_frame as triage_frame
from inspector.triage import (
    RULE_NAMES,
    RULES,
    apply_rules,
    configured_rules,
    format_summary,
    parse_assignments,
    summary,
    training_z_range,
)
from model.metrics import C_KMS


def _z_at(z_ref, dv):
    """The z whose dv against z_ref is `dv` km/s."""
    return z_ref + dv / C_KMS * (1 + z_ref)


# (case, z_ref, dv of FNet vs Z_PIPE, Z_QN ("fnet" = same as FNet's z), sigma_v km/s, p_fnet, S/N, expected rules)
CASES = [
    ("agree", 2.0, 100.0, "fnet", 1000.0, 0.9, 8.0, []),
    ("dv_pipe 5000", 2.0, 5000.0, "fnet", 1000.0, 0.9, 8.0, ["dv_pipe"]),
    ("dv_pipe 2000", 1.0, -2000.0, "fnet", 1000.0, 0.9, 8.0, []),
    ("qn -1", 2.5, 0.0, -1.0, 1000.0, 0.9, 8.0, ["qn_failed"]),
    ("dv_qn -4000", 1.5, 0.0, "qn-4000", 1000.0, 0.9, 8.0, ["dv_qn"]),
    ("uncertain", 3.0, 0.0, "fnet", 9000.0, 0.9, 8.0, ["fnet_uncertain"]),
    ("low p", 3.0, 0.0, "fnet", 1000.0, 0.2, 8.0, ["fnet_low_p"]),
    ("low S/N", 0.8, 0.0, "fnet", 1000.0, 0.9, 1.0, ["low_sn"]),
    ("beyond training", 6.0, 0.0, "fnet", 1000.0, 0.9, 8.0, ["z_outside_training"]),
    ("no FNet z", 2.0, np.nan, "fnet", np.nan, np.nan, 8.0, ["fnet_missing"]),
    ("no S/N, no p", 2.0, 0.0, "fnet", 1000.0, np.nan, np.nan, []),
    ("dv 10000 + qn -1 + low S/N", 2.0, 10000.0, -1.0, 1000.0, 0.9, 1.5, ["dv_pipe", "qn_failed", "low_sn"]),
]
Z_RANGE = (0.5, 5.0)


def _hand_frames():
    rows = []
    for i, (_, z, dv, qn, sig, p, sn, _) in enumerate(CASES):
        zf = _z_at(z, dv)
        if qn == "fnet":
            zqn = zf
        elif qn == "qn-4000":  # FNet agrees with Z_PIPE and sits 4000 km/s below Z_QN
            a = 4000.0 / C_KMS
            zqn = (zf + a) / (1 - a)
        else:
            zqn = qn
        z_pipe = z
        rows.append({"row": i, "object_id": f"0300-51600-{i:04d}", "Z_PIPE": z_pipe, "Z_QN": zqn, "Z_PCA": -1.0,
                     "SN_MEDIAN_ALL": sn, "z_fnet": zf, "z_fnet_err": sig / C_KMS * (1 + zf), "p_fnet": p})  # fmt: skip
    df = pd.DataFrame(rows)
    index = df[["row", "object_id", "Z_PIPE", "Z_QN", "Z_PCA", "SN_MEDIAN_ALL"]]
    pred = df[["row", "object_id", "z_fnet", "z_fnet_err", "p_fnet"]]
    return index, pred


# (case, dv of FNet vs Z_TPL in km/s (NaN: no template fit), delta chi2, expected rules)
TPL_CASES = [
    ("fit agrees", 800.0, 400.0, []),
    ("fit 4000 km/s away", 4000.0, 400.0, ["dv_tpl"]),
    ("fit -20000 km/s away, not decisive", -20000.0, 9.0, ["dv_tpl", "tpl_low_dchi2"]),
    ("fit agrees, not decisive", 0.0, 24.9, ["tpl_low_dchi2"]),
    ("no fit", np.nan, np.nan, []),
]


def test_template_fit_rules():
    """dv_tpl fires on |dv(FNet, Z_TPL)| > 3000 km/s, tpl_low_dchi2 on delta chi2 < 25; a spectrum without
    a template fit (NaN, or predictions made without it) fires neither."""
    rows = []
    for i, (_, dv, dchi2, _) in enumerate(TPL_CASES):
        z_tpl = 2.2
        rows.append({"row": i, "object_id": f"0300-51600-{i:04d}", "Z_PIPE": z_tpl, "Z_QN": z_tpl, "Z_PCA": -1.0,
                     "SN_MEDIAN_ALL": 8.0, "z_fnet": _z_at(z_tpl, dv) if np.isfinite(dv) else z_tpl,
                     "z_fnet_err": 1e-3, "p_fnet": 0.9, "z_tpl": z_tpl if np.isfinite(dv) else np.nan,
                     "tpl_dchi2": dchi2})  # fmt: skip
    df = pd.DataFrame(rows)
    index = df[["row", "object_id", "Z_PIPE", "Z_QN", "Z_PCA", "SN_MEDIAN_ALL"]]
    pred = df[["row", "object_id", "z_fnet", "z_fnet_err", "p_fnet", "z_tpl", "tpl_dchi2"]]
    off = {"dv_pipe": "off", "dv_qn": "off"}  # FNet moves away from Z_PIPE too; look at the template rules only
    flags = apply_rules(index, pred, off, z_range=Z_RANGE)
    got = {int(r): list(rs) for r, rs in zip(flags["row"], flags["rules"])}
    for i, case in enumerate(TPL_CASES):
        assert got.get(i, []) == case[-1], case[0]
    f = flags.set_index("row")
    assert f.loc[1, "dv_tpl_kms"] == pytest.approx(4000.0, rel=1e-9)
    assert f.loc[2, "dv_tpl_kms"] == pytest.approx(-20000.0, rel=1e-9) and f.loc[2, "tpl_dchi2"] == 9.0
    w = {r.name: r.weight for r in RULES}
    assert f.loc[2, "priority"] == pytest.approx(w["dv_tpl"] + w["tpl_low_dchi2"])
    without = apply_rules(index, pred.drop(columns=["z_tpl", "tpl_dchi2"]), off, z_range=Z_RANGE)
    assert len(without) == 0 and without.attrs["triage"]["rules"]["dv_tpl"]["n_fired"] == 0
    assert len(apply_rules(index, pred, {**off, "dv_tpl": 30000, "tpl_low_dchi2": "off"}, z_range=Z_RANGE)) == 0


# (case, FNet's class probabilities in model.classes order QSO, BAL, STAR, GALAXY, BAD (None: no class head),
#  expected rules)
CLASS_CASES = [
    ("confident quasar", [0.97, 0.02, 0.005, 0.003, 0.002], []),
    ("confident BAL quasar", [0.10, 0.88, 0.01, 0.005, 0.005], []),
    ("A star", [0.01, 0.0, 0.97, 0.01, 0.01], ["fnet_not_qso"]),
    ("emission-line galaxy, some quasar", [0.30, 0.02, 0.03, 0.60, 0.05], ["fnet_not_qso"]),
    ("sky, nothing in it", [0.05, 0.0, 0.05, 0.05, 0.85], ["fnet_not_qso"]),
    ("quasar or galaxy", [0.62, 0.03, 0.02, 0.30, 0.03], ["fnet_qso_unsure"]),
    ("just short of sure", [0.80, 0.0999, 0.05, 0.05, 0.0001], ["fnet_qso_unsure"]),
    ("model without a class head", None, []),
]


def _class_frames():
    """Rows where every estimate agrees on z, so only FNet's class can send one to people."""
    from inspector.pipeline.predict import class_columns

    n = len(CLASS_CASES)
    index = pd.DataFrame({"row": range(n), "object_id": [f"0300-51600-{i:04d}" for i in range(n)], "Z_PIPE": 1.5,
                          "Z_QN": 1.5, "Z_PCA": -1.0, "SN_MEDIAN_ALL": 8.0})  # fmt: skip
    per_row = [class_columns(None if p is None else np.array([p]), 1) for _, p, _ in CLASS_CASES]
    cls = pd.DataFrame({c: [r[c][0] for r in per_row] for c in per_row[0]})
    pred = pd.concat([index[["row", "object_id"]], cls], axis=1).assign(z_fnet=1.5, z_fnet_err=1e-3, p_fnet=0.9,
                                                                        z_tpl=1.5, tpl_dchi2=400.0)  # fmt: skip
    return index, pred


def test_class_rules_queue_what_fnet_does_not_call_a_quasar():
    """fnet_not_qso fires where p_qso = P(QSO) + P(BAL) < 0.5 (a star, a galaxy, an empty spectrum: a person
    confirms it before it leaves the quasar catalog), fnet_qso_unsure where 0.5 <= p_qso < 0.9; never both;
    a model without a class head fires neither."""
    index, pred = _class_frames()
    flags = apply_rules(index, pred, z_range=Z_RANGE)
    got = {int(r): list(rs) for r, rs in zip(flags["row"], flags["rules"])}
    for i, case in enumerate(CLASS_CASES):
        assert got.get(i, []) == case[-1], case[0]
    f = flags.set_index("row")
    assert f.loc[2, "p_qso"] == pytest.approx(0.01) and f.loc[3, "p_qso"] == pytest.approx(0.32)
    assert f.loc[5, "p_qso"] == pytest.approx(0.65)
    w = {r.name: r.weight for r in RULES}
    assert f.loc[2, "priority"] == w["fnet_not_qso"] > w["fnet_qso_unsure"] == f.loc[5, "priority"]
    # the not-a-quasar rule off: the unsure rule then takes every p_qso below its threshold, stars included
    off = apply_rules(index, pred, {"fnet_not_qso": "off"}, z_range=Z_RANGE)
    assert sorted(off["row"]) == [2, 3, 4, 5, 6] and set(off["rules"].map(tuple)) == {("fnet_qso_unsure",)}
    # thresholds: p_qso 0.65 is sure enough at 0.6, and not a quasar below 0.7
    th = {int(r): list(rs) for r, rs in zip(*apply_rules(index, pred, {"fnet_qso_unsure": 0.6, "fnet_not_qso": 0.7},
                                                       z_range=Z_RANGE)[["row", "rules"]].T.values)}  # fmt: skip
    assert th[5] == ["fnet_not_qso"] and 6 not in th and th[2] == ["fnet_not_qso"]
    assert len(apply_rules(index, pred.drop(columns=["p_qso"]), z_range=Z_RANGE)) == 0  # predictions before the head


def test_rule_table_is_one_table():
    assert len(set(RULE_NAMES)) == len(RULES)
    for r in RULES:
        assert r.name and r.description and r.weight >= 0 and r.value_column
    from dataclasses import FrozenInstanceError

    with pytest.raises(FrozenInstanceError):
        RULES[0].threshold = 1.0  # type: ignore[misc]


def test_each_rule_on_hand_made_rows():
    index, pred = _hand_frames()
    flags = apply_rules(index, pred, z_range=Z_RANGE)
    got = {int(r): list(rs) for r, rs in zip(flags["row"], flags["rules"])}
    for i, case in enumerate(CASES):
        assert got.get(i, []) == case[-1], case[0]
    f = flags.set_index("row")
    assert f.loc[1, "dv_pipe_kms"] == pytest.approx(5000.0, rel=1e-9)
    assert f.loc[4, "dv_qn_kms"] == pytest.approx(-4000.0, rel=1e-9)
    assert abs(f.loc[4, "dv_pipe_kms"]) < 1e-6
    assert np.isnan(f.loc[3, "dv_qn_kms"])  # Z_QN = -1 is not a redshift: no dv, so dv_qn cannot also fire
    assert f.loc[3, "z_qn"] == -1.0
    assert f.loc[5, "sigma_v_kms"] == pytest.approx(9000.0, rel=1e-9)
    assert f.loc[6, "p_fnet"] == pytest.approx(0.2)
    assert f.loc[7, "sn_median_all"] == 1.0
    assert f.loc[8, "dz_outside_training"] == pytest.approx(1.0)
    assert f.loc[9, "fnet_missing"] == 1.0
    # priority = weighted sum, and the queue is ordered by it
    w = {r.name: r.weight for r in RULES}
    for row, rules, prio, n in zip(flags["row"], flags["rules"], flags["priority"], flags["n_rules"]):
        assert prio == pytest.approx(sum(w[x] for x in rules)) and n == len(rules), row
    assert flags["priority"].is_monotonic_decreasing
    assert flags["row"].iloc[0] == 9  # fnet_missing weighs most (3.0) ...
    assert flags["row"].iloc[1] == 11  # ... then three rules together (1 + 1.5 + 0.5)
    meta = flags.attrs["triage"]
    assert meta["n_spectra"] == len(CASES) and meta["n_flagged"] == len(flags) and meta["n_multi"] == 1
    assert meta["rules"]["qn_failed"]["n_fired"] == 2 and meta["rules"]["dv_qn"]["n_fired"] == 1
    assert meta["disabled"] == ["dv_pca"]


def test_dv_rule_threshold_is_strict_and_symmetric():
    index = pd.DataFrame({"row": [0, 1, 2], "object_id": ["a", "b", "c"], "Z_PIPE": [2.0, 2.0, 2.0]})
    pred = pd.DataFrame({"row": [0, 1, 2], "z_fnet": [_z_at(2.0, 2999.0), _z_at(2.0, -3001.0), _z_at(2.0, 3001.0)]})
    flags = apply_rules(index, pred)
    assert sorted(flags["row"]) == [1, 2]


def test_thresholds_and_weights_override():
    index, pred = _hand_frames()
    base = set(apply_rules(index, pred, z_range=Z_RANGE)["row"])
    f = apply_rules(index, pred, {"dv_pipe": 6000, "low_sn": "off", "fnet_low_p": "0.1"}, z_range=Z_RANGE)
    rows = set(f["row"])
    assert 1 not in rows and 7 not in rows and 6 not in rows  # 5000 < 6000; low_sn off; 0.2 > 0.1
    assert base - rows == {1, 6, 7}
    assert list(f.set_index("row").loc[11, "rules"]) == ["dv_pipe", "qn_failed"]
    assert "low_sn" in f.attrs["triage"]["disabled"] and "sn_median_all" not in f.columns
    # dv_pca is off by default; a threshold turns it on (Z_PCA = -1 is "no redshift": never fires)
    index2 = index.assign(Z_PCA=index["Z_PIPE"] + 0.5)
    assert "dv_pca" not in {x for rs in apply_rules(index2, pred)["rules"] for x in rs}
    on = apply_rules(index2, pred, {"dv_pca": 3000})
    assert on.attrs["triage"]["rules"]["dv_pca"]["n_fired"] == len(CASES) - 1  # all but the NaN prediction
    assert "dv_pca" not in {x for rs in apply_rules(index, pred, {"dv_pca": 3000})["rules"] for x in rs}
    # weights reorder the queue
    wf = apply_rules(index, pred, weights={"low_sn": 10.0}, z_range=Z_RANGE)
    assert wf["row"].iloc[0] == 11 and wf["priority"].iloc[0] == pytest.approx(1 + 1.5 + 10)
    assert wf["row"].iloc[1] == 7
    # bad overrides are errors, not silently ignored
    with pytest.raises(ValueError, match="unknown rule"):
        apply_rules(index, pred, {"dv_pipes": 1})
    with pytest.raises(ValueError, match="neither a number"):
        configured_rules({"dv_pipe": "fast"})
    with pytest.raises(ValueError, match="weight"):
        configured_rules(weights={"dv_pipe": -1})
    assert parse_assignments(["dv_pipe=5000", " low_sn = off "]) == {"dv_pipe": "5000", "low_sn": "off"}
    with pytest.raises(ValueError):
        parse_assignments(["dv_pipe"])


def test_missing_catalog_columns_and_training_range():
    index, pred = _hand_frames()
    bare = index[["row", "object_id"]]  # a store ingested without a catalog
    f = apply_rules(bare, pred)  # no z range either
    assert {x for rs in f["rules"] for x in rs} <= {"fnet_missing", "fnet_uncertain", "fnet_low_p"}
    assert f.attrs["triage"]["sources"]["z_qn"] == {}
    assert "cannot fire" in format_summary(f)
    # the spectrum file's own S/N stands in for the catalog's
    f2 = apply_rules(bare.assign(sn_median_all=index["SN_MEDIAN_ALL"]), pred)
    assert f2.attrs["triage"]["rules"]["low_sn"]["n_fired"] == 2

    assert training_z_range(None) is None
    assert training_z_range({"model": {"label_scaling": {"z_min": 0.6, "z_max": 4.9}}}) == (0.6, 4.9)
    assert training_z_range({"model": {"provenance": {"z_range": [0.1, 3]}, "label_scaling": {"z_min": 0, "z_max": 1}}}) == (
        0.1, 3.0)  # fmt: skip
    assert training_z_range({"model": {"config": {"output": "bins", "z_max_bins": 6.5}}}) == (0.0, 6.5)
    assert training_z_range({"model": {"config": {"output": "regression"}}}) is None


def test_frame_checks_the_store():
    index, pred = _hand_frames()
    with pytest.raises(ValueError, match="another store"):
        triage_frame(index, pred.assign(object_id=pred["object_id"].str.replace("0300", "0301")))
    with pytest.raises(ValueError, match="more than once"):
        triage_frame(index, pd.concat([pred, pred.iloc[:1]]))
    with pytest.raises(ValueError, match="store has"):
        triage_frame(index, pred.assign(row=pred["row"] + 100))
    # a spectrum without a prediction row is flagged, not dropped
    f = apply_rules(index, pred.iloc[1:])
    assert list(f.set_index("row").loc[0, "rules"]) == ["fnet_missing"]


def test_summary_counts():
    index, pred = _hand_frames()
    f = apply_rules(index, pred, z_range=Z_RANGE)
    s = summary(f)
    assert s.loc["dv_pipe", "n"] == 2 and s.loc["dv_pipe", "only_this_rule"] == 1
    assert s.loc["queue (any rule)", "n"] == len(f) == 9
    assert s.loc["queue (any rule)", "percent"] == pytest.approx(100 * 9 / len(CASES))
    assert s.loc["flagged by >= 2 rules", "n"] == 1


# --------------------------------------------------------------------------- CLI on a mock store
def _write_predictions(store: Path, name: str = "fnet_test", classes: bool = False) -> tuple[Path, pd.DataFrame]:
    """A predictions parquet + sidecar as `inspector predict` writes them: FNet = the catalog's Z_PIPE except
    rows 0-2 (+10000 km/s) and row 3 (no prediction). `classes`: with a class head that gives each spectrum
    its true class (CLASS_PERSON) with p 0.95, except row 5, a quasar it is unsure of (p_qso 0.7)."""
    from inspector.pipeline.predict import class_columns
    from inspector.store import open_store
    from model.classes import N_CLASSES, from_class_person

    st = open_store(store)
    ix = st.index
    n = len(ix)
    z = pd.to_numeric(ix["Z_PIPE"]).to_numpy(float)
    zf = z.copy()
    zf[:3] = _z_at(z[:3], 10000.0)
    zf[3] = np.nan
    pred = pd.DataFrame({
        "row": np.arange(n), "object_id": ix["object_id"].astype(str), "z_fnet": zf,
        "z_fnet_err": 0.001 * (1 + np.nan_to_num(zf)), "p_fnet": np.full(n, 0.9), "z_alt1": np.full(n, np.nan),
        "model_sha1": "f" * 40,
    })  # fmt: skip
    if classes:
        truth = from_class_person(pd.to_numeric(ix["CLASS_PERSON"]).to_numpy(float))
        prob = np.full((n, N_CLASSES), 0.05 / (N_CLASSES - 1))
        prob[np.arange(n), truth] = 0.95
        prob[5] = [0.65, 0.05, 0.1, 0.15, 0.05]
        pred = pred.assign(**class_columns(prob, n))
    out = store / "predictions" / f"{name}.parquet"
    out.parent.mkdir(exist_ok=True)
    pred.to_parquet(out, index=False)
    side = {"model": {"sha1": "f" * 40, "label_scaling": {"z_min": 0.0, "z_max": 3.0}, "config": {"output": "bins"}}}
    out.with_suffix(".json").write_text(json.dumps(side))
    return out, pred


def test_cli_triage_on_mock_store(mock_store):
    from inspector.cli import app
    from inspector.pipeline.triage import read_triage
    from inspector.store import open_store

    pred_path, pred = _write_predictions(mock_store)
    ix = open_store(mock_store).index
    runner = CliRunner()
    res = runner.invoke(app, ["triage", "--store", str(mock_store), "--predictions", str(pred_path)])
    assert res.exit_code == 0, res.output
    out = mock_store / "triage" / "fnet_test.parquet"
    assert out.exists() and out.with_suffix(".json").exists()
    flags, meta = read_triage(out)
    assert "queue (any rule)" in res.output and "flagged by >= 2 rules" in res.output and "%" in res.output
    # every count printed and stored agrees with the flags themselves
    for name, r in meta["rules"].items():
        assert r["n_fired"] == sum(name in rs for rs in flags["rules"]), name
    assert meta["n_spectra"] == len(ix) and meta["n_flagged"] == len(flags)
    assert meta["z_range"] == [0.0, 3.0] and meta["model_sha1"] == "f" * 40
    f = flags.set_index("row")
    assert {0, 1, 2} <= set(f.index[f["rules"].map(lambda rs: "dv_pipe" in rs)])
    assert list(f.loc[3, "rules"]) == ["fnet_missing"] and flags["row"].iloc[0] == 3
    # what the rules should have found, worked out independently from the index
    zq = pd.to_numeric(ix["Z_QN"]).to_numpy(float)
    assert meta["rules"]["qn_failed"]["n_fired"] == int((zq == -1).sum())
    sn = pd.to_numeric(ix["SN_MEDIAN_ALL"]).to_numpy(float)
    assert meta["rules"]["low_sn"]["n_fired"] == int((sn < 2).sum())
    zf = pred["z_fnet"].to_numpy()
    zf = zf[np.isfinite(zf)]
    assert meta["rules"]["z_outside_training"]["n_fired"] == int(((zf < 0.0) | (zf > 3.0)).sum())
    line = next(ln for ln in res.output.splitlines() if ln.startswith("queue (any rule)"))
    assert f"{len(flags)}" in line and f"{100 * len(flags) / len(ix):.2f}%" in line

    # by name under STORE/predictions, thresholds from the command line, custom output
    out2 = mock_store / "triage" / "strict.parquet"
    res = runner.invoke(app, ["triage", "--store", str(mock_store), "--predictions", "fnet_test",
                              "--threshold", "low_sn=off", "--threshold", "qn_failed=off", "--threshold", "dv_qn=off", "--threshold",
                              "z_outside_training=off", "--weight", "dv_pipe=2", "--out", str(out2)])  # fmt: skip
    assert res.exit_code == 0, res.output
    flags2, meta2 = read_triage(out2)
    assert sorted(flags2["row"]) == [0, 1, 2, 3]  # only the rows made to disagree, and the missing one
    assert meta2["rules"]["dv_pipe"]["weight"] == 2.0 and "low_sn" in meta2["disabled"]

    bad = runner.invoke(app, ["triage", "--store", str(mock_store), "--predictions", "fnet_test", "--threshold", "nope=1"])
    assert bad.exit_code == 2 and "unknown rule" in bad.output
    missing = runner.invoke(app, ["triage", "--store", str(mock_store), "--predictions", "absent"])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_cli_triage_loads_the_database(mock_store, tmp_path):
    from db_helpers import fresh_database

    from db.engine import make_engine, session_scope
    from db.load import current_model, table_counts
    from db.queue import next_item
    from inspector.cli import app
    from inspector.pipeline.triage import read_triage

    pred_path, _ = _write_predictions(mock_store, "fnet_db")
    url = fresh_database(tmp_path)
    res = CliRunner().invoke(app, ["triage", "--store", str(mock_store), "--predictions", str(pred_path), "--db", url])
    assert res.exit_code == 0, res.output
    flags, _ = read_triage(mock_store / "triage" / "fnet_db.parquet")
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            n = table_counts(s)
            assert n["spectra"] == 60 and n["predictions"] == 60
            assert n["triage_flags"] == int(flags["n_rules"].sum())  # one row per spectrum and rule
            assert current_model(s).sha1 == "f" * 40
            first = next_item(s, "alice")
            top = flags.loc[flags["priority"] == flags["priority"].max(), "object_id"].tolist()
            assert first.object_id in top  # the database queue orders as apply_rules does
    finally:
        engine.dispose()
    assert f"{int(flags['n_rules'].sum())} flags" in res.output
    # running it again replaces the triage, it does not pile up
    res = CliRunner().invoke(app, ["triage", "--store", str(mock_store), "--predictions", str(pred_path), "--db", url,
                                   "--threshold", "low_sn=off"])  # fmt: skip
    assert res.exit_code == 0, res.output
    flags2, _ = read_triage(mock_store / "triage" / "fnet_db.parquet")
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            assert table_counts(s)["triage_flags"] == int(flags2["n_rules"].sum()) < int(flags["n_rules"].sum())
    finally:
        engine.dispose()


def test_every_star_and_galaxy_is_queued_and_the_database_has_fnets_class(mock_store, tmp_path):
    """On a mock survey with its stars and galaxies, a class head that calls them what they are sends every
    one of them to people (fnet_not_qso), and `triage --db` stores FNet's class with each prediction."""
    from db_helpers import fresh_database

    from db.engine import make_engine, session_scope
    from db.load import current_model, predictions_frame
    from inspector.cli import app
    from inspector.pipeline.triage import read_triage
    from inspector.store import open_store

    pred_path, pred = _write_predictions(mock_store, "fnet_cls", classes=True)
    url = fresh_database(tmp_path)
    res = CliRunner().invoke(app, ["triage", "--store", str(mock_store), "--predictions", str(pred_path), "--db", url])
    assert res.exit_code == 0, res.output
    assert "fnet_not_qso" in res.output and "fnet_qso_unsure" in res.output
    flags, meta = read_triage(mock_store / "triage" / "fnet_cls.parquet")
    ix = open_store(mock_store).index
    not_qso = set(ix.loc[pd.to_numeric(ix["CLASS_PERSON"]).isin([1, 4]), "object_id"].astype(str))
    assert len(not_qso) >= 2  # the mock has stars and galaxies to find
    fired = dict(zip(flags["object_id"], flags["rules"].map(list)))
    assert all("fnet_not_qso" in fired.get(o, []) for o in not_qso)
    assert meta["rules"]["fnet_not_qso"]["n_fired"] == len(not_qso)
    assert "fnet_qso_unsure" in fired[pred["object_id"][5]] and meta["rules"]["fnet_qso_unsure"]["n_fired"] == 1
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            stored = predictions_frame(s, current_model(s).id).set_index("object_id")
    finally:
        engine.dispose()
    assert stored.loc[sorted(not_qso), "fnet_class"].isin(["STAR", "GALAXY"]).all()
    np.testing.assert_allclose(stored.loc[pred["object_id"], "p_qso"], pred["p_qso"])


def test_fnet_doubt_counts_only_where_the_template_fit_does_not_back_fnet():
    """fnet_uncertain / fnet_low_p fire where there is no Z_TPL or it is > 3000 km/s from FNet, not where
    the two independent estimates agree."""
    z = 2.0
    sig_err = 9000.0 / C_KMS * (1 + z)  # sigma_v 9000 km/s, p 0.2: FNet doubts itself in every row
    rows = [("agrees", z + 0.001), ("disagrees", _z_at(z, 8000.0)), ("no fit", np.nan)]
    df = pd.DataFrame({
        "row": range(3), "object_id": [f"0300-51600-{i:04d}" for i in range(3)], "Z_PIPE": z, "Z_QN": z,
        "Z_PCA": -1.0, "SN_MEDIAN_ALL": 8.0, "z_fnet": z, "z_fnet_err": sig_err, "p_fnet": 0.2,
        "z_tpl": [r[1] for r in rows], "tpl_dchi2": 500.0})  # fmt: skip
    index = df[["row", "object_id", "Z_PIPE", "Z_QN", "Z_PCA", "SN_MEDIAN_ALL"]]
    pred = df[["row", "object_id", "z_fnet", "z_fnet_err", "p_fnet", "z_tpl", "tpl_dchi2"]]
    got = {int(r): list(rs) for r, rs in zip(*apply_rules(index, pred, z_range=Z_RANGE)[["row", "rules"]].T.values)}
    assert 0 not in got
    assert got[1] == ["dv_tpl", "fnet_uncertain", "fnet_low_p"]
    assert got[2] == ["fnet_uncertain", "fnet_low_p"]
