"""db.export and `inspector export`: the vetted catalog read back with astropy and pandas."""
from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table
from typer.testing import CliRunner

from db.export import (
    C_KMS,
    DERIVED_COLUMNS,
    REQUIRED_COLUMNS,
    catalog_table,
    export_catalog,
    overlay_decisions,
)
from inspector.pipeline.predict import class_columns

THRESHOLDS = {"dv_pipe": 3000.0, "dv_qn": 3000.0, "low_sn": 2.0, "dv_pca": None}


def _rows() -> pd.DataFrame:
    """Six spectra: two left to the model, one person (unicode name), one consensus, one "bad spectrum" (no z),
    one unresolved conflict (the model's z)."""
    return pd.DataFrame({
        "object_id": ["0300-51600-0001", "0300-51600-0003", "0300-51600-0004", "0300-51600-0006", "0300-51600-0013",
                      "0300-51600-0020"],
        "ra": [359.37887, 0.893906, 0.747022, 359.777713, 358.693759, 1.0],
        "dec": [-4.982112, -5.52016, -4.255844, -5.536588, -6.141274, -5.0],
        "z_final": [2.0, 0.8, 1.05, 2.1381, np.nan, 1.5],
        "z_source": ["model", "model", "person", "consensus", "person", "conflict"],
        "quality": [np.nan, np.nan, 4, 3.5, 0, np.nan],
        "inspectors": ["", "", ["Zoë Ångström"], ["alice", "bob"], "carol", "alice,carol"],
        "n_decisions": [0, 0, 1, 3, 1, 2],
        "z_fnet": [2.0, 0.8, 2.70, 2.1381, 1.2, 1.5],
        "z_fnet_err": [0.01, 0.02, 0.05, 0.01, np.nan, 0.02],
        "z_pipe": [2.02, 0.8, 2.70, -1.0, 1.2, 1.5],
        "z_qn": [2.017, -1.0, 1.045, 2.135, 1.19, 1.5],
        "z_pca": [2.016, 0.794, 1.057, 2.138, -1.0, 1.5],
        "model_version": ["abc123"] * 6,
        "plate": pd.array([300, 300, 300, 300, None, 300], dtype="Int64"),
        "spectral_type": ["", "", "QSO", "QSO", "", ""],
    })  # fmt: skip


def test_fits_read_back_units_header_values(tmp_path):
    meta = {"model_version": "fnet-small@abc123", "thresholds": THRESHOLDS, "store": "/data/store"}
    paths = export_catalog(_rows(), tmp_path / "cat", meta)
    assert [p.name for p in paths] == ["cat.fits", "cat.csv", "cat.parquet", "cat.json"]

    t = Table.read(tmp_path / "cat.fits", mask_invalid=False)  # NaN stays NaN
    assert len(t) == 6
    assert t["ra"].unit == u.deg and t["dec"].unit == u.deg
    assert t["dv_fnet_kms"].unit == u.km / u.s and t["dv_pipe_kms"].unit == u.km / u.s
    hdr = fits.getheader(tmp_path / "cat.fits", 1)
    names = [hdr[f"TTYPE{i}"] for i in range(1, hdr["TFIELDS"] + 1)]
    for zc in ("z_final", "z_fnet", "z_pipe", "z_qn", "z_pca"):
        assert hdr[f"TUNIT{names.index(zc) + 1}"] == ""  # dimensionless
    assert hdr["MODELVER"] == "fnet-small@abc123"
    assert hdr["NROWS"] == 6 and hdr["NTOTAL"] == 6 and hdr["NINSPECT"] == 4
    assert (hdr["NPERSON"], hdr["NCONSENS"], hdr["NCONFLIC"], hdr["NMODEL"]) == (2, 1, 1, 2)
    assert hdr["THRESH DV_PIPE"] == 3000.0 and hdr["THRESH LOW_SN"] == 2.0 and hdr["THRESH DV_PCA"] == "off"
    assert hdr["ONLYINSP"] is False and hdr["MINQUAL"] == -1
    assert hdr["DATE"].endswith("+00:00") and hdr["PROVJSON"] == "cat.json"

    assert [str(x) for x in t["object_id"]] == list(_rows()["object_id"])
    assert [str(x) for x in t["z_source"]] == ["model", "model", "person", "consensus", "person", "conflict"]
    assert str(t["inspectors"][2]) == "Zoë Ångström" and str(t["inspectors"][3]) == "alice,bob"
    np.testing.assert_array_equal(np.asarray(t["quality"]), [np.nan, np.nan, 4, 3.5, 0, np.nan])
    np.testing.assert_allclose(t["z_final"][:4], [2.0, 0.8, 1.05, 2.1381])
    assert np.isnan(t["z_final"][4])
    assert list(t["plate"]) == [300, 300, 300, 300, -1, 300]
    # derived dv: the model vs the final z; pipeline vs the final z (-1 = none -> NaN)
    assert t["dv_fnet_kms"][0] == 0.0
    assert t["dv_fnet_kms"][2] == pytest.approx(C_KMS * (2.70 - 1.05) / 2.05)
    assert t["dv_pipe_kms"][0] == pytest.approx(C_KMS * 0.02 / 3.0)
    assert np.isnan(t["dv_pipe_kms"][3])


def test_csv_parquet_same_columns_and_provenance(tmp_path):
    export_catalog(_rows(), tmp_path / "cat.fits", {"thresholds": THRESHOLDS}, formats=("csv", "parquet"))
    assert not (tmp_path / "cat.fits").exists()  # only the formats asked for; a suffix on the base is dropped
    csv = pd.read_csv(tmp_path / "cat.csv", keep_default_na=False, na_values=[""])
    pq_ = pd.read_parquet(tmp_path / "cat.parquet")
    cols = list(REQUIRED_COLUMNS) + list(DERIVED_COLUMNS) + ["plate", "spectral_type"]
    assert list(csv.columns) == cols and list(pq_.columns) == cols
    insp = ["", "", "Zoë Ångström", "alice,bob", "carol", "alice,carol"]
    assert csv["inspectors"].fillna("").tolist() == insp and pq_["inspectors"].tolist() == insp
    np.testing.assert_array_equal(pq_["quality"], [np.nan, np.nan, 4, 3.5, 0, np.nan])
    np.testing.assert_array_equal(csv["quality"], pq_["quality"])
    np.testing.assert_allclose(csv["z_final"], pq_["z_final"], equal_nan=True)
    np.testing.assert_allclose(csv["dv_fnet_kms"], pq_["dv_fnet_kms"], equal_nan=True)
    side = json.loads((tmp_path / "cat.json").read_text())
    assert side["model_version"] == "abc123"  # from the rows when meta does not say
    assert side["counts"] == {"n_rows": 6, "n_inspected": 4, "n_person": 2, "n_consensus": 1, "n_conflict": 1,
                              "n_model": 2, "n_qso": 2, "n_not_qso": 0, "n_qso_unknown": 4}  # fmt: skip
    assert side["thresholds"]["dv_pca"] is None and side["files"] == ["cat.csv", "cat.parquet"]
    assert side["columns"]["dv_fnet_kms"]["unit"] == "km / s"
    import pyarrow.parquet as pq

    pmeta = json.loads(pq.read_schema(tmp_path / "cat.parquet").metadata[b"fnet_inspector.export"])
    assert pmeta["counts"] == side["counts"] and pmeta["created"] == side["created"]


def test_only_inspected_and_min_quality(tmp_path):
    export_catalog(_rows(), tmp_path / "a", {}, formats=("fits", "parquet"), only_inspected=True)
    a = pd.read_parquet(tmp_path / "a.parquet")
    assert a["object_id"].str[-4:].tolist() == ["0004", "0006", "0013", "0020"]
    h = fits.getheader(tmp_path / "a.fits", 1)
    assert h["NROWS"] == 4 and h["NTOTAL"] == 6 and h["NMODEL"] == 0 and h["ONLYINSP"] is True

    export_catalog(_rows(), tmp_path / "b", {}, formats=("fits", "csv"), min_quality=3)
    t = Table.read(tmp_path / "b.fits")
    assert [str(x)[-4:] for x in t["object_id"]] == ["0004", "0006"]  # no quality (model, conflict) fails the cut
    assert fits.getheader(tmp_path / "b.fits", 1)["MINQUAL"] == 3
    assert len(pd.read_csv(tmp_path / "b.csv")) == 2

    export_catalog(_rows(), tmp_path / "c", {}, formats=("parquet",), min_quality=4, only_inspected=True)
    assert pd.read_parquet(tmp_path / "c.parquet")["object_id"].tolist() == ["0300-51600-0004"]
    # an empty selection still writes valid (empty) files
    export_catalog(_rows().iloc[:2], tmp_path / "d", {}, only_inspected=True)
    assert len(Table.read(tmp_path / "d.fits")) == 0 and len(pd.read_parquet(tmp_path / "d.parquet")) == 0
    with pytest.raises(ValueError, match="min_quality"):
        export_catalog(_rows(), tmp_path / "e", {}, min_quality=5)


def test_contract_is_checked(tmp_path):
    r = _rows()
    with pytest.raises(ValueError, match="lack column"):
        catalog_table(r.drop(columns=["z_qn"]))
    with pytest.raises(ValueError, match="unknown column"):
        catalog_table(r.assign(zfinal=1.0))
    with pytest.raises(ValueError, match="z_source"):
        catalog_table(r.assign(z_source=["model", "robot", "person", "consensus", "person", "model"]))
    with pytest.raises(ValueError, match="quality"):
        catalog_table(r.assign(quality=[None, None, 5, 3, 0, None]))
    with pytest.raises(ValueError, match="n_decisions = 0"):
        catalog_table(r.assign(n_decisions=[0, 0, 0, 3, 1, 2]))
    with pytest.raises(ValueError, match="more than once"):
        catalog_table(r.assign(object_id=["a", "a", "b", "c", "d", "e"]))
    with pytest.raises(ValueError, match="formats"):
        export_catalog(r, tmp_path / "x", {}, formats=("votable",))


def test_overlay_decisions():
    base = _rows().iloc[:3].assign(z_source="model", quality=np.nan, inspectors="", n_decisions=0,
                                   z_final=[2.0, 0.8, 2.7])  # fmt: skip
    dec = pd.DataFrame({"object_id": ["0300-51600-0003", "0300-51600-0004"], "z_final": [0.85, np.nan],
                        "z_source": ["person", "conflict"], "quality": [4.0, np.nan],
                        "inspectors": ["alice", "alice,bob"], "n_decisions": [2, 2]})  # fmt: skip
    out = catalog_table(overlay_decisions(base, dec))
    assert out["z_source"].tolist() == ["model", "person", "conflict"]
    assert out["z_final"].tolist() == [2.0, 0.85, 2.7]  # a conflict keeps the model's z
    assert out["quality"].isna().tolist() == [True, False, True]
    assert out["dv_fnet_kms"][1] == pytest.approx(C_KMS * (0.8 - 0.85) / 1.85)
    with pytest.raises(ValueError, match="not in the catalog"):
        overlay_decisions(base, dec.assign(object_id=["nope", "0300-51600-0004"]))


# (case, z_source, spectral_type, decision, FNet's class, p_qso, is_qso_final at p_qso_min 0.9, at the default 0.5)
QSO_CASES = [
    ("FNet sure of a quasar", "model", "", "", "QSO", 0.98, 1, 1),
    ("FNet sure of a star", "model", "", "", "STAR", 0.03, -1, -1),
    ("FNet leans quasar, queued", "model", "", "", "QSO", 0.70, 0, 1),
    ("FNet leans galaxy, queued", "model", "", "", "GALAXY", 0.35, 0, -1),
    ("no class head", "model", "", "", "", np.nan, 0, 0),
    ("a person: a star, FNet said quasar", "person", "STAR", "not_qso", "QSO", 0.99, -1, -1),
    ("a person: not a quasar, no type", "person", "UNKNOWN", "not_qso", "QSO", 0.95, -1, -1),
    ("a person: a quasar, FNet said galaxy", "person", "QSO", "correct", "GALAXY", 0.10, 1, 1),
    ("a person: bad spectrum", "person", "UNKNOWN", "bad_spectrum", "QSO", 0.99, 0, 0),
    ("two agree: a BAL quasar", "consensus", "BAL QSO", "accept,correct", "BAL", 0.97, 1, 1),
    ("two agree: a galaxy", "consensus", "GALAXY", "not_qso", "QSO", 0.60, -1, -1),
    ("unresolved conflict", "conflict", "", "correct,not_qso", "QSO", 0.99, 0, 0),
]


def _class_rows() -> pd.DataFrame:
    n = len(QSO_CASES)
    inspected = np.array([c[1] != "model" for c in QSO_CASES])
    p = np.array([c[5] for c in QSO_CASES])
    return pd.DataFrame({
        "object_id": [f"0300-51600-{i:04d}" for i in range(n)], "ra": 1.0, "dec": -5.0, "z_final": 1.5,
        "z_source": [c[1] for c in QSO_CASES], "quality": np.where(inspected, 3.0, np.nan),
        "inspectors": np.where(inspected, "alice", ""), "n_decisions": inspected.astype(int), "z_fnet": 1.5,
        "z_fnet_err": 0.01, "z_pipe": 1.5, "z_qn": 1.5, "z_pca": 1.5, "model_version": "abc",
        "spectral_type": [c[2] for c in QSO_CASES], "decision": [c[3] for c in QSO_CASES],
        "fnet_class": [c[4] for c in QSO_CASES], "p_qso": p, "p_cls_qso": p, "p_cls_star": 1.0 - p,
    })  # fmt: skip


def test_is_qso_final_a_persons_verdict_first_then_fnets_class(tmp_path):
    """is_qso_final: 1 quasar, -1 not, 0 not known. A person's 'not a quasar' overrides FNet; where nobody
    decided, FNet's p_qso against p_qso_min (0.9: what the queue holds for a person stays 0)."""
    rows = _class_rows()
    for i, (case, *_, want_09, want_05) in enumerate(QSO_CASES):
        assert catalog_table(rows, p_qso_min=0.9)["is_qso_final"][i] == want_09, case
        assert catalog_table(rows)["is_qso_final"][i] == want_05, case
    export_catalog(rows, tmp_path / "cat", {}, p_qso_min=0.9)
    t = Table.read(tmp_path / "cat.fits", mask_invalid=False)
    assert t["is_qso_final"].dtype.kind == "i" and t["is_qso_final"].dtype.itemsize == 2 and list(t["is_qso_final"]) == [c[6] for c in QSO_CASES]
    assert [str(x) for x in t["fnet_class"]] == [c[4] for c in QSO_CASES]
    np.testing.assert_allclose(np.asarray(t["p_cls_star"]), 1.0 - rows["p_qso"], equal_nan=True)
    hdr = fits.getheader(tmp_path / "cat.fits", 1)
    names = [hdr[f"TTYPE{i}"] for i in range(1, hdr["TFIELDS"] + 1)]
    assert "person" in hdr[f"TCOMM{names.index('is_qso_final') + 1}"]
    assert "STAR" in hdr[f"TCOMM{names.index('p_cls_star') + 1}"] and hdr[f"TUNIT{names.index('p_qso') + 1}"] == ""
    assert (hdr["NQSO"], hdr["NNOTQSO"], hdr["NQSOUNK"], hdr["PQSOMIN"]) == (3, 4, 5, 0.9)
    pq_ = pd.read_parquet(tmp_path / "cat.parquet")
    assert pq_["is_qso_final"].tolist() == [c[6] for c in QSO_CASES] and pq_["fnet_class"].iloc[4] == ""
    side = json.loads((tmp_path / "cat.json").read_text())
    assert side["p_qso_min"] == 0.9 and side["counts"]["n_not_qso"] == 4
    with pytest.raises(ValueError, match="p_qso_min"):
        catalog_table(rows, p_qso_min=0.3)
    with pytest.raises(ValueError, match="unknown column"):
        catalog_table(rows.assign(p_cls_=0.5))


# --------------------------------------------------------------------------- CLI on a mock store
def test_cli_export_model_only(mock_store, tmp_path):
    from inspector.cli import app
    from inspector.store import open_store

    ix = open_store(mock_store).index
    n = len(ix)
    zf = pd.to_numeric(ix["Z_PIPE"]).to_numpy(float) + 0.001
    zf[5] = np.nan
    pred = pd.DataFrame({"row": np.arange(n), "object_id": ix["object_id"].astype(str), "z_fnet": zf,
                         "z_fnet_err": np.full(n, 0.01), "p_fnet": np.full(n, 0.9), "model_sha1": "e" * 40})  # fmt: skip
    pp = mock_store / "predictions" / "fnet_x.parquet"
    pp.parent.mkdir(exist_ok=True)
    pred.to_parquet(pp, index=False)
    pp.with_suffix(".json").write_text(json.dumps({"model": {"sha1": "e" * 40, "path": "/models/fnet_x.pt"}}))
    # a triage run before the export: its thresholds go into the header
    runner = CliRunner()
    res = runner.invoke(app, ["triage", "--store", str(mock_store), "--predictions", str(pp), "--threshold", "dv_pipe=5000"])
    assert res.exit_code == 0, res.output

    res = runner.invoke(app, ["export", "--store", str(mock_store), "--predictions", str(pp), "--out", str(tmp_path / "cat")])
    assert res.exit_code == 0, res.output
    t = Table.read(tmp_path / "cat.fits", mask_invalid=False)
    assert len(t) == n and {str(s) for s in t["z_source"]} == {"model"}
    np.testing.assert_allclose(np.asarray(t["z_final"]), zf, equal_nan=True)
    np.testing.assert_allclose(np.asarray(t["z_pipe"]), pd.to_numeric(ix["Z_PIPE"]).to_numpy(float))
    np.testing.assert_allclose(np.asarray(t["z_qn"]), pd.to_numeric(ix["Z_QN"]).to_numpy(float))
    np.testing.assert_allclose(np.asarray(t["ra"]), ix["ra"].to_numpy(float))
    assert np.isnan(np.asarray(t["quality"])).all() and (np.asarray(t["n_decisions"]) == 0).all()
    hdr = fits.getheader(tmp_path / "cat.fits", 1)
    assert hdr["MODELVER"].startswith("fnet_x") and "e" * 12 in hdr["MODELVER"]
    assert hdr["THRESH DV_PIPE"] == 5000.0 and hdr["NMODEL"] == n and hdr["NINSPECT"] == 0
    side = json.loads((tmp_path / "cat.json").read_text())
    assert side["store"] == str(mock_store.resolve()) and side["triage"].endswith("fnet_x.parquet")
    assert "catalog" in res.output and str(n) in res.output

    res = runner.invoke(app, ["export", "--store", str(mock_store), "--predictions", "fnet_x", "--out",
                              str(tmp_path / "insp"), "--only-inspected", "--formats", "parquet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(pd.read_parquet(tmp_path / "insp.parquet")) == 0 and not (tmp_path / "insp.fits").exists()
    res = runner.invoke(app, ["export", "--store", str(mock_store), "--predictions", "fnet_x", "--out",
                              str(tmp_path / "q"), "--min-quality", "9"])  # fmt: skip
    assert res.exit_code != 0


def test_cli_export_carries_the_template_fit(mock_store, tmp_path):
    """A prediction run that stored Z_TPL exports it (z_tpl, z_tpl_err, tpl_dchi2, dimensionless in FITS);
    one without it exports no such columns."""
    from inspector.cli import app
    from inspector.store import open_store

    ix = open_store(mock_store).index
    n = len(ix)
    z = pd.to_numeric(ix["Z_PIPE"]).to_numpy(float)
    z_tpl = z + 0.002
    z_tpl[7] = np.nan  # no fit for this one
    pred = pd.DataFrame({"row": np.arange(n), "object_id": ix["object_id"].astype(str), "z_fnet": z,
                         "z_fnet_err": 0.01, "p_fnet": 0.9, "model_sha1": "f" * 40, "z_tpl": z_tpl,
                         "z_tpl_err": 2e-4, "tpl_dchi2": np.linspace(1, 500, n)})  # fmt: skip
    pp = mock_store / "predictions" / "fnet_tpl.parquet"
    pp.parent.mkdir(exist_ok=True)
    pred.to_parquet(pp, index=False)
    runner = CliRunner()
    res = runner.invoke(app, ["export", "--store", str(mock_store), "--predictions", str(pp), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    t = Table.read(tmp_path / "c.fits", mask_invalid=False)
    np.testing.assert_allclose(np.asarray(t["z_tpl"]), z_tpl, equal_nan=True)
    np.testing.assert_allclose(np.asarray(t["tpl_dchi2"]), np.linspace(1, 500, n))
    assert str(t["z_tpl_err"].unit or "") == "" and "template" in fits.getheader(tmp_path / "c.fits", 1).tostring()
    csv = pd.read_csv(tmp_path / "c.csv")
    assert csv["z_tpl"].isna().sum() == 1 and csv["z_tpl_err"].iloc[0] == pytest.approx(2e-4)
    plain = pp.with_name("fnet_plain.parquet")
    pred.drop(columns=["z_tpl", "z_tpl_err", "tpl_dchi2"]).to_parquet(plain, index=False)
    res = runner.invoke(app, ["export", "--store", str(mock_store), "--predictions", str(plain),
                              "--out", str(tmp_path / "old"), "--formats", "parquet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "z_tpl" not in pd.read_parquet(tmp_path / "old.parquet").columns


def test_cli_export_with_decisions_from_the_database(mock_store, tmp_path):
    """triage --db, then people decide, then export --db: person / consensus / conflict / resolved / model."""
    from db_helpers import fresh_database

    from db.consensus import resolve
    from db.decisions import record_decision
    from db.engine import make_engine, session_scope
    from inspector.cli import app
    from inspector.store import open_store

    ix = open_store(mock_store).index
    n = len(ix)
    oid = ix["object_id"].astype(str).tolist()
    zf = np.round(pd.to_numeric(ix["Z_PIPE"]).to_numpy(float).clip(0.01, None), 4)
    pred = pd.DataFrame({"row": np.arange(n), "object_id": oid, "z_fnet": zf, "z_fnet_err": np.full(n, 0.01),
                         "p_fnet": np.full(n, 0.9), "model_sha1": "d" * 40})  # fmt: skip
    prob = np.tile([0.97, 0.01, 0.01, 0.005, 0.005], (n, 1))  # FNet: every spectrum a quasar, surely ...
    prob[8] = [0.02, 0.0, 0.95, 0.02, 0.01]  # ... but row 8, a star, and row 9, which it is unsure of
    prob[9] = [0.60, 0.0, 0.05, 0.30, 0.05]
    pred = pred.assign(**class_columns(prob, n))
    pp = mock_store / "predictions" / "fnet_db.parquet"
    pp.parent.mkdir(exist_ok=True)
    pred.to_parquet(pp, index=False)
    url = fresh_database(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["triage", "--store", str(mock_store), "--predictions", str(pp), "--db", url])
    assert res.exit_code == 0, res.output

    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            record_decision(s, oid[0], "alice", "accept", z_model=float(zf[0]), quality=4)  # person, the model's z
            record_decision(s, oid[1], "alice", "correct", z_final=1.5, quality=2)  # corrected later ...
            record_decision(s, oid[1], "alice", "correct", z_final=1.6, quality=3)  # ... the latest one counts
            record_decision(s, oid[2], "alice", "correct", z_final=2.0, quality=4)  # two agree -> consensus
            record_decision(s, oid[2], "bob", "correct", z_final=2.001, quality=3)
            record_decision(s, oid[3], "alice", "correct", z_final=1.0, quality=4)  # conflict, unresolved
            record_decision(s, oid[3], "bob", "correct", z_final=2.0, quality=4)
            record_decision(s, oid[4], "alice", "correct", z_final=1.0, quality=4)  # conflict, resolved by carol
            record_decision(s, oid[4], "bob", "correct", z_final=2.0, quality=4)
            resolve(s, oid[4], "carol", z=2.0, quality=4)
            record_decision(s, oid[5], "zoë", "bad_spectrum")  # a person, no z
            record_decision(s, oid[6], "alice", "skip")  # a skip is not a decision
            record_decision(s, oid[7], "alice", "not_qso", quality=4, spectral_type="GALAXY")  # FNet said QSO
    finally:
        engine.dispose()

    res = runner.invoke(app, ["export", "--store", str(mock_store), "--predictions", str(pp), "--out",
                              str(tmp_path / "cat"), "--db", url])  # fmt: skip
    assert res.exit_code == 0, res.output
    c = pd.read_parquet(tmp_path / "cat.parquet").set_index("object_id")
    assert len(c) == n
    r = c.loc[oid[:7]]
    assert r["z_source"].tolist() == ["person", "person", "consensus", "conflict", "consensus", "person", "model"]
    np.testing.assert_allclose(r["z_final"].to_numpy()[:5], [zf[0], 1.6, 2.0005, zf[3], 2.0])
    assert np.isnan(r["z_final"].iloc[5]) and r["z_final"].iloc[6] == zf[6]
    np.testing.assert_array_equal(r["quality"].to_numpy(), [4, 3, 3.5, np.nan, 4, 0, np.nan])
    assert r["n_decisions"].tolist() == [1, 2, 2, 2, 3, 1, 0]
    assert r["inspectors"].tolist() == ["alice", "alice", "alice,bob", "alice,bob", "alice,bob,carol", "zoë", ""]
    assert r.loc[oid[4], "decision"] == "resolve" and r.loc[oid[5], "decision"] == "bad_spectrum"
    rest = c.drop(index=oid[:8])
    assert (rest["z_source"] == "model").all() and (rest["n_decisions"] == 0).all()
    # the class: a person's "not a quasar" overrides FNet's quasar; where nobody decided, FNet's p_qso against
    # the triage's fnet_qso_unsure threshold (0.9): the star is out, the unsure one not known until decided
    assert c.loc[oid[7], "fnet_class"] == "QSO" and c.loc[oid[7], "spectral_type"] == "GALAXY"
    q = c["is_qso_final"]
    assert q[oid[7]] == -1 and q[oid[8]] == -1 and q[oid[9]] == 0 and q[oid[5]] == 0 and q[oid[0]] == 1
    assert (q.drop(index=oid[:10]) == 1).all() and c.loc[oid[8], "fnet_class"] == "STAR"
    np.testing.assert_allclose(c.loc[oid, "p_qso"], pred["p_qso"])
    hdr = fits.getheader(tmp_path / "cat.fits", 1)
    assert (hdr["NPERSON"], hdr["NCONSENS"], hdr["NCONFLIC"], hdr["NMODEL"], hdr["NINSPECT"]) == (4, 2, 1, n - 7, 7)
    assert hdr["PQSOMIN"] == 0.9 and hdr["NNOTQSO"] == 2 and "2 not" in res.output
    assert json.loads((tmp_path / "cat.json").read_text())["database"].startswith(url.split(":")[0])  # where they came from

    res = runner.invoke(app, ["export", "--store", str(mock_store), "--predictions", str(pp), "--out",
                              str(tmp_path / "vetted"), "--db", url, "--only-inspected", "--min-quality", "3"])  # fmt: skip
    assert res.exit_code == 0, res.output
    v = pd.read_parquet(tmp_path / "vetted.parquet")
    assert sorted(v["object_id"]) == sorted([oid[0], oid[1], oid[2], oid[4], oid[7]])
    # the quasar catalog: the galaxy a person found goes, and so do FNet's star and the spectra still in doubt
    res = runner.invoke(app, ["export", "--store", str(mock_store), "--predictions", str(pp), "--out",
                              str(tmp_path / "qso"), "--db", url, "--only-qso"])  # fmt: skip
    assert res.exit_code == 0, res.output
    kept = set(pd.read_parquet(tmp_path / "qso.parquet")["object_id"])
    assert kept == set(oid) - {oid[3], oid[5], oid[7], oid[8], oid[9]}
    assert fits.getheader(tmp_path / "qso.fits", 1)["ONLYQSO"] is True
