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
