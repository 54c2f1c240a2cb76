"""The mock survey on disk: real-format files the readers and ingest take like survey files."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from inspector.cli import app
from inspector.mock import make_arrays
from inspector.readers import read_any, read_catalog
from inspector.store import SpectrumStore


@pytest.fixture(scope="module")
def mock_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mock")
    result = CliRunner().invoke(app, ["mock", str(out), "--n", "120", "--seed", "5", "--workers", "2"])
    assert result.exit_code == 0, result.output
    return out


def test_mock_writes_sas_layout_and_dr16q_catalog(mock_dir):
    files = sorted((mock_dir / "spectra").glob("*/spec-*.fits"))
    assert len(files) == 120
    cat = read_catalog(mock_dir / "DR16Q_mock.fits")
    assert len(cat) == 120 and not cat.attrs.get("missing_columns")
    for f in files[:30]:
        (spec,) = read_any(f)
        row = cat[(cat.PLATE == spec.plate) & (cat.MJD == spec.mjd) & (cat.FIBERID == spec.fiberid)]
        assert len(row) == 1
        assert f.parent.name == f"{spec.plate:04d}" and f.name == f"spec-{spec.object_id}.fits"
        assert spec.z == pytest.approx(row.Z_PIPE.iloc[0], abs=1e-6), "the file's own Z is the pipeline's"
        assert spec.sn_median_all == pytest.approx(row.SN_MEDIAN_ALL.iloc[0], rel=1e-4)


def test_files_hold_the_same_spectra_as_in_memory(mock_dir):
    specs, cat = make_arrays(10, seed=5)
    for s, (_, row) in zip(specs, cat.iterrows()):
        path = mock_dir / "spectra" / f"{row.PLATE:04d}" / f"spec-{row.PLATE:04d}-{row.MJD:05d}-{row.FIBERID:04d}.fits"
        (back,) = read_any(path)
        np.testing.assert_allclose(back.wave, s.wave, rtol=2e-6)  # loglam is float32 on disk, as in SDSS files
        np.testing.assert_array_equal(back.flux, s.flux)
        np.testing.assert_array_equal(back.ivar, s.ivar)


def test_mock_ingests_with_its_truth(mock_dir, tmp_path):
    store_dir = tmp_path / "store"
    result = CliRunner().invoke(app, ["ingest", str(mock_dir), "--store", str(store_dir), "--workers", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    store = SpectrumStore(store_dir)
    assert len(store) == 120 and len(store.rejected) == 0
    idx = store.index
    np.testing.assert_allclose(idx["z"], idx["Z_VI"])
    assert idx["is_qso"].sum() == (idx["CLASS_PERSON"].isin([3, 30])).sum()
    assert store.flux.shape == (120, 4618) and store.flux.dtype == np.float32


def test_z_pca_measured_by_the_template_fit(tmp_path):
    """`inspector mock --z-pca template`: the same spectra as with the simulated Z_PCA (same seed), and
    Z_PCA measured on each of them, right for the quasars (within 6000 km/s of the truth)."""
    from astropy.table import Table

    for mode in ("simulated", "template"):
        res = CliRunner().invoke(app, ["mock", str(tmp_path / mode), "--n", "40", "--seed", "4", "--workers", "1",
                                       "--z-pca", mode])  # fmt: skip
        assert res.exit_code == 0, res.output
    sim = Table.read(tmp_path / "simulated" / "DR16Q_mock.fits").to_pandas()
    tpl = Table.read(tmp_path / "template" / "DR16Q_mock.fits").to_pandas()
    for c in ("Z", "Z_PIPE", "Z_QN", "SN_MEDIAN_ALL", "PLATE", "FIBERID"):
        np.testing.assert_array_equal(sim[c], tpl[c])
    some = sorted((tmp_path / "simulated").rglob("spec-*.fits"))[:5]
    for f in some:
        assert f.read_bytes() == (tmp_path / "template" / f.relative_to(tmp_path / "simulated")).read_bytes()
    q = tpl["CLASS_PERSON"].isin([3, 30]).to_numpy() & (tpl["Z"] < 6.0).to_numpy()
    dv = np.abs(tpl["Z_PCA"] - tpl["Z"]) / (1 + tpl["Z"]) * 299792.458
    assert np.mean(dv[q] < 6000) >= 0.9, tpl.loc[q, ["Z", "Z_PCA", "SN_MEDIAN_ALL"]]
    assert not np.array_equal(sim["Z_PCA"], tpl["Z_PCA"])
    res = CliRunner().invoke(app, ["mock", str(tmp_path / "x"), "--n", "2", "--z-pca", "pca"])
    assert res.exit_code != 0 and "--z-pca" in res.output
