"""`inspector ingest`: what a user relies on when filling a spectrum store.

Inputs are real-format spec-lite files written with `write_spec_file` from
quasar-like spectra on the BOSS pixel grid (3600-10400 A, 1e-4 dex), the
mock survey when it is there, and the real fixtures in tests/data/real when
they are there (skipped otherwise).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table

from inspector.ingest import classify, format_summary, ingest, plan_sources
from inspector.readers import write_spec_file
from inspector.spectrum import Spectrum
from inspector.store import PARTS_DIR, SpectrumStore
from model.grid import FNET_NPIX, resample_one

REPO = Path(__file__).resolve().parents[2]
REAL = Path(__file__).resolve().parents[1] / "data" / "real"
LINES = (1215.67, 1549.06, 1908.73, 2798.75, 4862.68, 6564.61)  # Lya, CIV, CIII], MgII, Hb, Ha


def make_spectrum(i: int, plate: int = 4000, mjd: int = 55300, z: float | None = None,
                  spec_class: str = "QSO", n_pix: int = 4620) -> Spectrum:
    """A BOSS-like quasar: power law + broad lines at z, noise with the matching ivar."""
    rng = np.random.default_rng(1000 + i)
    z = float(rng.uniform(0.3, 3.5)) if z is None else z
    loglam = np.log10(3600.0) + 1e-4 * np.arange(n_pix)
    wave = 10**loglam
    model = 4.0 * (wave / 5000.0) ** -1.5
    for line in LINES:
        centre = line * (1 + z)
        sigma = centre * 2500.0 / 299792.458
        model += 6.0 * np.exp(-0.5 * ((wave - centre) / sigma) ** 2)
    sigma_pix = 0.6 + 0.1 * np.sqrt(np.abs(model)) + 1.5 * (wave < 4000)  # noisy blue end
    flux = model + rng.normal(0, 1, n_pix) * sigma_pix
    ivar = 1.0 / sigma_pix**2
    and_mask = np.zeros(n_pix, np.int32)
    and_mask[rng.integers(0, n_pix, 5)] = 1 << 24  # a few NODATA pixels
    ivar[and_mask > 0] = 0
    return Spectrum(wave=wave, flux=flux.astype(np.float32), ivar=ivar.astype(np.float32), source="",
                    survey="BOSS", and_mask=and_mask, plate=plate, mjd=mjd, fiberid=i + 1,
                    ra=150.0 + i * 1e-3, dec=2.2, spec_class=spec_class, z=z, zwarning=0,
                    sn_median_all=float(np.median(model / sigma_pix)))


def sas_path(root: Path, plate: int, mjd: int, fiber: int) -> Path:
    return root / f"{plate:04d}" / f"spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits"


def write_files(root: Path, n: int, plate: int = 4000, start: int = 0) -> list[Path]:
    paths = []
    for i in range(start, start + n):
        s = make_spectrum(i, plate=plate)
        p = sas_path(root, plate, 55300, i + 1)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_spec_file(p, s, layout="boss")
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    """60 good spec files on two plates."""
    root = tmp_path_factory.mktemp("survey")
    write_files(root, 30, plate=4000)
    write_files(root, 30, plate=4001)
    return root


def store_equal(a: Path, b: Path) -> None:
    """Two stores hold the same rows in the same order (arrays bit for bit, index, rejections)."""
    sa, sb = SpectrumStore(a), SpectrumStore(b)
    assert sa.complete and sb.complete
    np.testing.assert_array_equal(np.asarray(sa.flux), np.asarray(sb.flux))
    np.testing.assert_array_equal(np.asarray(sa.ivar), np.asarray(sb.ivar))
    pd.testing.assert_frame_equal(sa.index, sb.index)
    cols = ["file", "reason", "category", "hdu_or_fiber", "object_id"]
    pd.testing.assert_frame_equal(sa.rejected[cols], sb.rejected[cols])
    assert np.load(a / "flux.npy").shape == sa.flux.shape  # trimmed to N, no garbage rows


# --------------------------------------------------------------------------- basics


def test_directory_ingest_stores_every_file_on_the_fnet_grid(survey, tmp_path):
    rep = ingest([survey], tmp_path / "s", workers=2, chunk_size=8, progress=False)
    assert (rep.n_stored, rep.n_rejected, rep.interrupted) == (60, 0, False)
    store = SpectrumStore(tmp_path / "s")
    assert store.flux.shape == store.ivar.shape == (60, FNET_NPIX) and store.flux.dtype == np.float32
    assert isinstance(store.flux, np.memmap)
    idx = store.index
    assert idx["object_id"].tolist()[:2] == ["4000-55300-0001", "4000-55300-0002"]
    assert idx["object_id"].is_unique and idx["row"].tolist() == list(range(60))
    assert idx["file"].tolist() == sorted(idx["file"])  # walk order: sorted, the same on every run
    # flux on the grid is exactly model.grid.resample_one of the file's spectrum...
    from inspector.readers import read_any

    for row in (0, 37):
        s = read_any(idx.loc[row, "file"])[0]
        f, iv = resample_one(np.log10(s.wave), s.flux, s.ivar, s.and_mask)
        np.testing.assert_array_equal(store.flux[row], f)
        np.testing.assert_array_equal(store.ivar[row], iv)
        # ...and the spectrum we wrote (the file keeps loglam as float32, hence the tolerance)
        made = make_spectrum(row % 30, plate=4000 + row // 30)
        f0, iv0 = resample_one(np.log10(made.wave), made.flux, made.ivar, made.and_mask)
        np.testing.assert_allclose(store.flux[row], f0, atol=0.05 * np.abs(f0).max())
        assert ((store.ivar[row] > 0) == (iv0 > 0)).mean() > 0.99
    # no catalog: labels come from the file itself
    assert (idx["z_source"] == "z_file").all() and (idx["class_source"] == "spec_class").all()
    np.testing.assert_allclose(idx["z"], idx["z_file"])
    assert idx["is_qso"].all()
    assert idx.loc[0, "lam_min"] == pytest.approx(3600.0, abs=0.01) and idx.loc[0, "n_pix_native"] == 4620


def test_cli_ingest_prints_summary_with_rejections(survey, tmp_path):
    from typer.testing import CliRunner

    from inspector.cli import app

    src = tmp_path / "src"
    shutil.copytree(survey / "4000", src)
    (src / "spec-4000-55300-9999.fits").write_text("not a FITS file at all\n")
    res = CliRunner().invoke(app, ["ingest", str(src), "--store", str(tmp_path / "s"), "--workers", "1",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "30 spectra stored, 1 rejected" in res.output
    assert "not-fits 1" in res.output and "spec-4000-55300-9999.fits" in res.output
    assert len(SpectrumStore(tmp_path / "s")) == 30


# --------------------------------------------------------------------------- catalog join, labels


def _catalog(path: Path, rows: list[dict]) -> Path:
    cols = ["SDSS_NAME", "RA", "DEC", "PLATE", "MJD", "FIBERID", "Z", "SOURCE_Z", "Z_PIPE", "ZWARNING", "Z_VI",
            "Z_CONF", "CLASS_PERSON", "Z_QN", "IS_QSO_QN", "Z_PCA", "Z_DR12Q", "Z_10K", "BAL_PROB",
            "SN_MEDIAN_ALL", "IS_QSO_FINAL"]
    full = []
    for r in rows:
        d = {c: -1.0 for c in cols}
        d.update({"SDSS_NAME": f"J{r['FIBERID']:06d}", "SOURCE_Z": "VI", "IS_QSO_FINAL": 1, "CLASS_PERSON": 0})
        d.update(r)
        full.append(d)
    t = Table.from_pandas(pd.DataFrame(full)[cols])
    for c in ("PLATE", "MJD", "FIBERID", "ZWARNING", "CLASS_PERSON", "Z_CONF", "IS_QSO_QN", "IS_QSO_FINAL"):
        t[c] = t[c].astype(np.int32)
    t.write(path, overwrite=True)
    return path


def test_catalog_join_and_derived_training_labels(survey, tmp_path):
    p, m = 4000, 55300
    cat = _catalog(tmp_path / "DR16Q_like.fits", [
        {"PLATE": p, "MJD": m, "FIBERID": 1, "Z": 2.10, "Z_VI": 2.15, "CLASS_PERSON": 3},  # VI quasar
        {"PLATE": p, "MJD": m, "FIBERID": 2, "Z": 1.40, "Z_VI": 1.42, "CLASS_PERSON": 30},  # VI BAL quasar
        {"PLATE": p, "MJD": m, "FIBERID": 3, "Z": 0.00, "Z_VI": 0.0, "CLASS_PERSON": 1},  # VI star
        {"PLATE": p, "MJD": m, "FIBERID": 4, "Z": 0.91, "Z_VI": -1.0, "CLASS_PERSON": 0},  # not inspected
        {"PLATE": p, "MJD": m, "FIBERID": 5, "Z": 0.55, "Z_VI": -1.0, "CLASS_PERSON": 4},  # VI galaxy, no VI z
        {"PLATE": 9999, "MJD": m, "FIBERID": 6, "Z": 3.0},  # no such spectrum
    ])
    files = sorted((survey / "4000").glob("*.fits"))[:7]
    ingest(files, tmp_path / "s", catalog=cat, workers=1, progress=False)
    idx = SpectrumStore(tmp_path / "s").index.set_index("fiberid")
    assert idx.loc[1:5, "catalog_match"].all() and not idx.loc[6:7, "catalog_match"].any()
    assert idx.loc[1, "SDSS_NAME"] == "J000001" and idx.loc[4, "Z_PIPE"] == -1.0  # catalog columns carried along
    assert idx.loc[[1, 2, 3], "z"].tolist() == pytest.approx([2.15, 1.42, 0.0])
    assert idx.loc[[1, 2, 3, 4, 5, 6], "z_source"].tolist() == ["Z_VI", "Z_VI", "Z_VI", "Z", "Z", "z_file"]
    assert idx.loc[4, "z"] == pytest.approx(0.91) and idx.loc[5, "z"] == pytest.approx(0.55)
    assert idx.loc[6, "z"] == pytest.approx(idx.loc[6, "z_file"])
    assert idx.loc[[1, 2, 3, 4, 5, 6], "is_qso"].tolist() == [True, True, False, True, False, True]
    assert idx.loc[[1, 3, 4], "class_source"].tolist() == ["CLASS_PERSON", "CLASS_PERSON", "spec_class"]


def test_catalog_as_source_locates_spec_files_by_sas_name_and_retries_missing_ones(survey, tmp_path):
    root = tmp_path / "spectra"
    shutil.copytree(survey / "4001", root / "4001")
    rows = [{"PLATE": 4001, "MJD": 55300, "FIBERID": f, "Z": 1.0 + f / 10, "Z_VI": 1.0 + f / 10, "CLASS_PERSON": 3}
            for f in (3, 1, 2)]
    rows.append({"PLATE": 4001, "MJD": 55300, "FIBERID": 500, "Z": 2.0, "Z_VI": 2.0, "CLASS_PERSON": 3})
    cat = _catalog(tmp_path / "cat.fits", rows)
    rep = ingest([cat], tmp_path / "s", spectra_root=root, workers=1, progress=False)
    store = SpectrumStore(tmp_path / "s")
    assert store.index["fiberid"].tolist() == [3, 1, 2]  # catalog order
    assert store.index["z"].tolist() == pytest.approx([1.3, 1.1, 1.2])
    missing = str(sas_path(root, 4001, 55300, 500))
    assert store.rejected["file"].tolist() == [missing] and store.rejected["category"].tolist() == ["not-found"]
    assert rep.by_category == {"not-found": 1}
    # the spectrum arrives later: the same command picks it up, and the old rejection goes away
    write_spec_file(missing, make_spectrum(499, plate=4001), layout="boss")
    rep2 = ingest([cat], tmp_path / "s", spectra_root=root, workers=1, progress=False)
    store = SpectrumStore(tmp_path / "s")
    assert (rep2.n_stored, rep2.n_skipped) == (1, 3)
    assert store.index["fiberid"].tolist() == [3, 1, 2, 500] and len(store.rejected) == 0


def test_mock_survey_directory_joins_its_catalog_automatically(tmp_path):
    mock = pytest.importorskip("inspector.mock")
    mock.make_survey(tmp_path / "mock", 24, seed=3, workers=1, progress=False)
    rep = ingest([tmp_path / "mock"], tmp_path / "s", workers=1, progress=False)
    assert rep.catalog and rep.catalog.endswith(".fits") and rep.n_rejected == 0
    store = SpectrumStore(tmp_path / "s")
    idx = store.index
    assert len(store) == 24 and idx["catalog_match"].all()
    truth = idx["Z_VI"] > -0.5
    np.testing.assert_allclose(idx.loc[truth, "z"], idx.loc[truth, "Z_VI"])
    known = idx["CLASS_PERSON"] > 0
    assert (idx.loc[known, "is_qso"] == idx.loc[known, "CLASS_PERSON"].isin([3, 30])).all()


def test_every_catalog_column_reaches_the_index(tmp_path):
    mock = pytest.importorskip("inspector.mock")
    from inspector.readers import read_catalog

    mock.make_survey(tmp_path / "mock", 40, seed=2, workers=1, progress=False)
    ingest([tmp_path / "mock"], tmp_path / "s", workers=1, progress=False)
    idx = SpectrumStore(tmp_path / "s").index
    cat = read_catalog(tmp_path / "mock" / "DR16Q_mock.fits", extra_columns="*")
    assert {"MOCK_KIND", "MOCK_INSTRUMENT", "MOCK_TEMPLATE", "MOCK_N_DLA"} <= set(cat.columns)
    assert set(cat.columns) <= set(idx.columns), set(cat.columns) - set(idx.columns)
    assert len(idx) == 40 and idx["catalog_match"].all()
    joined = idx.merge(cat, left_on=["plate", "mjd", "fiberid"], right_on=["PLATE", "MJD", "FIBERID"],
                       suffixes=("", "_cat"))
    assert len(joined) == 40
    for col in ("MOCK_KIND", "MOCK_INSTRUMENT", "MOCK_TEMPLATE", "MOCK_N_DLA", "MOCK_SN_TARGET"):
        assert joined[col].astype(str).tolist() == joined[f"{col}_cat"].astype(str).tolist(), col


def test_real_files_land_on_the_grid_like_resample_one(tmp_path):
    from inspector.readers import read_any

    files = sorted(REAL.rglob("spec-*.fits"))[:12] if REAL.exists() else []
    if not files:
        pytest.skip("no real fixtures in tests/data/real")
    ingest(files, tmp_path / "s", workers=1, progress=False)
    store = SpectrumStore(tmp_path / "s")
    assert len(store) + len(store.rejected) == len(files)
    for row in range(0, len(store), 5):
        s = read_any(store.index.loc[row, "file"])[0]
        f, iv = resample_one(np.log10(s.wave), s.flux, s.ivar, s.and_mask)
        np.testing.assert_array_equal(store.flux[row], f)
        np.testing.assert_array_equal(store.ivar[row], iv)
        assert store.index.loc[row, "z_file"] == pytest.approx(s.z)


# --------------------------------------------------------------------------- resume, append


_RUNNER = textwrap.dedent("""
    import signal, sys, time
    from inspector.ingest import ingest
    from inspector.readers import read_any

    # A job started in the background by a non-interactive shell (as CI may be) inherits SIGINT
    # ignored; a person's Ctrl-C arrives with Python's default handler, which is what is tested.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def slow_read(path):  # the real reader, slowed so the kill lands mid-way
        time.sleep(0.04)
        return read_any(path)

    rep = ingest([sys.argv[1]], sys.argv[2], workers=2, chunk_size=4, progress=False,
                 reader=slow_read if sys.argv[3] == "slow" else None)
    sys.exit(130 if rep.interrupted else 0)
""")


@pytest.fixture(scope="module")
def messy(survey, tmp_path_factory) -> Path:
    """The 60 good files plus a duplicate and a broken file: rejections must survive a resume too."""
    root = tmp_path_factory.mktemp("messy")
    shutil.copytree(survey, root, dirs_exist_ok=True)
    shutil.copy(root / "4000" / "spec-4000-55300-0005.fits", root / "4001" / "zz-copy-of-0005.fits")
    data = (root / "4000" / "spec-4000-55300-0010.fits").read_bytes()
    (root / "4000" / "spec-4000-55300-0099.fits").write_bytes(data[: len(data) // 3])
    return root


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_ingest_resumes_to_the_same_store(messy, tmp_path, sig):
    reference = tmp_path / "reference"
    ingest([messy], reference, workers=1, chunk_size=64, progress=False)  # uninterrupted, other chunking
    store = tmp_path / "s"
    cmd = [sys.executable, "-c", _RUNNER, str(messy), str(store)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd + ["slow"], env=env)
    deadline = time.monotonic() + 30
    while len(list((store / PARTS_DIR).glob("*.index.parquet"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, sig)
    assert proc.wait(timeout=30) in (-signal.SIGKILL, 130)
    assert not SpectrumStore(store).complete  # really stopped mid-way
    committed = len(list((store / PARTS_DIR).glob("*.index.parquet")))
    assert 4 <= committed < 16
    rerun = subprocess.run(cmd + ["fast"], env=env, timeout=120)
    assert rerun.returncode == 0
    store_equal(store, reference)
    st = SpectrumStore(store)
    assert len(st) == 60 and st.index["object_id"].is_unique
    assert sorted(st.rejected["category"]) == ["duplicate", "truncated"]


def test_rerun_with_more_files_appends_only_the_new_ones(survey, tmp_path):
    first = sorted((survey / "4000").glob("*.fits"))[:20]
    ingest(first, tmp_path / "s", workers=1, progress=False)
    before = SpectrumStore(tmp_path / "s")
    flux0, idx0 = np.array(before.flux), before.index.copy()
    rep = ingest([survey], tmp_path / "s", workers=2, chunk_size=8, progress=False)
    assert (rep.n_skipped, rep.n_stored, rep.n_rejected) == (20, 40, 0)
    after = SpectrumStore(tmp_path / "s")
    assert len(after) == 60 and after.index["object_id"].is_unique
    np.testing.assert_array_equal(after.flux[:20], flux0)  # nothing stored is moved or lost
    pd.testing.assert_frame_equal(after.index.iloc[:20], idx0)
    rep3 = ingest([survey], tmp_path / "s", workers=1, progress=False)
    assert (rep3.n_stored, rep3.n_skipped) == (0, 60) and len(SpectrumStore(tmp_path / "s")) == 60
    store_equal(tmp_path / "s", tmp_path / "s")


def _three_per_file(path: str) -> list[Spectrum]:
    """A multi-spectrum file stand-in (spPlate/DESI): three fibers from each file."""
    from inspector.readers import read_any

    base = read_any(path)[0]
    out = []
    for k in range(3):
        s = Spectrum(**{**base.__dict__, "fiberid": base.fiberid * 10 + k, "source": f"{path}#{k}"})
        out.append(s)
    return out


def test_multi_spectrum_files_grow_the_arrays_beyond_the_file_count(survey, tmp_path):
    files = sorted((survey / "4001").glob("*.fits"))
    rep = ingest(files, tmp_path / "s", workers=2, chunk_size=4, progress=False, reader=_three_per_file)
    store = SpectrumStore(tmp_path / "s")
    assert rep.n_stored == len(store) == 3 * len(files) and store.flux.shape == (90, FNET_NPIX)
    assert store.index["hdu_or_fiber"].tolist()[:4] == ["0", "1", "2", "0"]
    assert store.index["file_index"].tolist()[:4] == [0, 1, 2, 0]
    np.testing.assert_array_equal(store.flux[0], store.flux[2])  # same source spectrum, row order kept
    assert not np.array_equal(store.flux[0], store.flux[3])


def _dies_on_fiber_13(path: str) -> list[Spectrum]:
    """A worker that is OOM-killed (or segfaults) on one file."""
    from inspector.readers import read_any

    if path.endswith("-0013.fits"):
        os._exit(9)
    return read_any(path)


def test_a_dying_worker_costs_its_file_only_and_a_retry_reads_it(survey, tmp_path):
    rep = ingest([survey], tmp_path / "s", workers=2, chunk_size=4, progress=False, reader=_dies_on_fiber_13)
    assert rep.n_stored == 58 and rep.by_category == {"worker-died": 2}  # fiber 13 of both plates
    assert "exited with code 9" in SpectrumStore(tmp_path / "s").rejected.loc[0, "reason"]
    rep = ingest([survey], tmp_path / "s", workers=2, chunk_size=4, progress=False)
    assert (rep.n_stored, rep.n_skipped_rejected) == (0, 2)  # rejected, unchanged: skipped
    rep = ingest([survey], tmp_path / "s", workers=2, chunk_size=4, progress=False, retry_rejected=True)
    assert rep.n_stored == 2
    store = SpectrumStore(tmp_path / "s")
    assert len(store) == 60 and store.index["object_id"].is_unique and len(store.rejected) == 0


def test_real_multi_spectrum_files_record_skipped_rows(tmp_path):
    desi = sorted(REAL.rglob("*coadd*.fits")) if REAL.exists() else []
    if not desi:
        pytest.skip("no DESI coadd in tests/data/real")
    rep = ingest(desi, tmp_path / "s", workers=1, progress=False)
    store = SpectrumStore(tmp_path / "s")
    assert len(store) == rep.n_stored > len(desi)  # many spectra per file: the arrays grew past the file count
    assert store.index["object_id"].is_unique
    tid = store.index["targetid"].dropna()
    if len(tid):  # DESI TARGETIDs (~4e16) stay exact integers, never float64
        assert str(tid.dtype) == "Int64"
        assert store.index.loc[tid.index[0], "object_id"].split("-")[0] == str(int(tid.iloc[0]))
    rej = store.rejected
    if "quasarnp_test_coadd" in " ".join(map(str, desi)):  # its row 11 is all zeros
        assert ((rej["hdu_or_fiber"] == "11") & (rej["category"] == "zero-ivar")).sum() == 1


def test_one_desi_target_in_two_coadds_is_two_spectra_and_a_copied_coadd_a_duplicate(tmp_path):
    real = REAL / "desi" / "coadd-main-dark-9144.fits"
    if not real.exists():
        pytest.skip("coadd-main-dark-9144.fits not in tests/data/real")
    first, copy = tmp_path / "a" / real.name, tmp_path / "c" / real.name
    other = tmp_path / "b" / "coadd-main-dark-9145.fits"
    for p in (first, other, copy):
        p.parent.mkdir()
        shutil.copy(real, p)
    for key in ("HPXPIXEL", "SPGRPVAL"):  # the same targets in the neighbouring healpix coadd
        fits.setval(other, key, value=9145)
    rep = ingest([tmp_path], tmp_path / "s", workers=1, progress=False)
    store = SpectrumStore(tmp_path / "s")
    idx = store.index
    assert idx["object_id"].tolist() == ["39632936152072660-sv3-dark-9144", "39632936152073654-sv3-dark-9144",
                                         "39632936152072660-sv3-dark-9145", "39632936152073654-sv3-dark-9145"]
    assert idx["targetid"].tolist() == [39632936152072660, 39632936152073654] * 2
    assert idx["file"].tolist() == [str(first)] * 2 + [str(other)] * 2
    rej = store.rejected
    assert rep.by_category == {"duplicate": 2} and rej["file"].tolist() == [str(copy)] * 2
    assert all(str(first) in r for r in rej["reason"])


# --------------------------------------------------------------------------- bad input


def _good(tmp: Path, fiber: int = 900) -> Spectrum:
    return make_spectrum(fiber - 1, plate=4002)


def _bad_truncated(p: Path) -> None:
    write_spec_file(p, _good(p.parent))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _bad_not_fits(p: Path) -> None:
    p.write_text("<html>404 Not Found</html>\n")


def _bad_zero_bytes(p: Path) -> None:
    p.write_bytes(b"")


def _bad_missing_hdu(p: Path) -> None:
    fits.PrimaryHDU().writeto(p)


def _bad_missing_column(p: Path) -> None:
    write_spec_file(p, _good(p.parent))
    with fits.open(p) as h:
        cols = [c for c in h[1].columns if c.name.lower() != "ivar"]
        fits.HDUList([h[0].copy(), fits.BinTableHDU.from_columns(cols, name="COADD"), h[2].copy()]).writeto(
            p, overwrite=True)


def _spec_with(p: Path, **changes) -> None:
    s = _good(p.parent)
    write_spec_file(p, Spectrum(**{**s.__dict__, **changes}))


BAD_CASES = {
    "truncated": (_bad_truncated, "truncated", "truncat"),
    "not-fits": (_bad_not_fits, "not-fits", "fits"),
    "zero-bytes": (_bad_zero_bytes, "empty", "empty"),
    "missing-hdu": (_bad_missing_hdu, "missing-hdu", "hdu"),
    "missing-column": (_bad_missing_column, "missing-column", "ivar"),
    "nan-flux": (lambda p: _spec_with(p, flux=np.full(4620, np.nan, np.float32)), "non-finite-flux", "nan"),
    "inf-flux": (lambda p: _spec_with(p, flux=np.full(4620, np.inf, np.float32)), "non-finite-flux", "inf"),
    "zero-ivar": (lambda p: _spec_with(p, ivar=np.zeros(4620, np.float32)), "zero-ivar", "ivar"),
    "non-monotonic": (
        lambda p: _spec_with(p, wave=_good(p.parent).wave[np.r_[0:200, 201, 200, 202:4620]]),
        "non-monotonic", "increasing"),
    "empty-arrays": (
        lambda p: _spec_with(p, wave=np.zeros(0), flux=np.zeros(0, np.float32), ivar=np.zeros(0, np.float32),
                             and_mask=np.zeros(0, np.int32)), "empty", "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_is_rejected_with_its_reason_and_ingest_goes_on(survey, tmp_path, case):
    make, category, word = BAD_CASES[case]
    src = tmp_path / "src"
    shutil.copytree(survey / "4000", src)
    bad = src / "spec-4002-55300-0900.fits"  # sorts before the good files: ingest must go on after it
    make(bad)
    rep = ingest([src], tmp_path / "s", workers=1, chunk_size=8, progress=False)
    store = SpectrumStore(tmp_path / "s")
    assert len(store) == 30 and rep.n_stored == 30, "every good file is stored"
    rej = store.rejected
    assert rej["file"].tolist() == [str(bad.resolve())]
    assert rej.loc[0, "category"] == category, rej.loc[0, "reason"]
    assert word in rej.loc[0, "reason"].lower() and len(rej.loc[0, "reason"]) > 10
    assert rep.by_category == {category: 1}
    assert bad.name in format_summary(rep) and f"{category} 1" in format_summary(rep)


def test_isolated_nan_pixels_are_masked_not_rejected(survey, tmp_path):
    """A few NaN pixels are repaired by the reader (ivar = 0 there); the rest of the spectrum is kept."""
    s = _good(tmp_path)
    flux = s.flux.copy()
    flux[1000:1010] = np.nan
    p = tmp_path / "spec-4002-55300-0900.fits"
    write_spec_file(p, Spectrum(**{**s.__dict__, "flux": flux}))
    ingest([p], tmp_path / "s", workers=1, progress=False)
    store = SpectrumStore(tmp_path / "s")
    assert len(store) == 1 and np.isfinite(store.flux[0]).all()
    assert (store.ivar[0] > 0).sum() < (resample_one(np.log10(s.wave), s.flux, s.ivar, s.and_mask)[1] > 0).sum()


def test_duplicate_object_keeps_the_first_and_names_it(survey, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(survey / "4000", src)
    kept = src / "spec-4000-55300-0007.fits"
    copy = src / "zz-renamed-copy.fits"
    shutil.copy(kept, copy)
    rep = ingest([src], tmp_path / "s", workers=1, progress=False)
    store = SpectrumStore(tmp_path / "s")
    assert len(store) == 30 and store.index["object_id"].is_unique
    rej = store.rejected
    assert rej["file"].tolist() == [str(copy.resolve())] and rej.loc[0, "category"] == "duplicate"
    assert "4000-55300-0007" in rej.loc[0, "reason"] and str(kept.resolve()) in rej.loc[0, "reason"]
    assert rep.by_category == {"duplicate": 1}
    # a later run bringing the same object again is refused the same way, nothing is duplicated
    other = tmp_path / "later" / "spec-4000-55300-0007.fits"
    other.parent.mkdir()
    shutil.copy(kept, other)
    rep2 = ingest([other], tmp_path / "s", workers=1, progress=False)
    assert rep2.by_category == {"duplicate": 1} and len(SpectrumStore(tmp_path / "s")) == 30


@pytest.mark.parametrize("order", ["walk", "spplate-named-first"])
def test_a_spec_lite_file_wins_over_an_spplate_record_of_the_same_object(tmp_path, order):
    """spPlate-4055-55359-0020 (flux image only: no ivar, mask or plug map) holds fibre 10 = spec-4055-55359-0010:
    the spec-lite file is stored, whichever comes first, and the spPlate fibre is rejected naming it."""
    plate_src = REAL / "other_formats" / "spPlate-4055-55359-0020.fits"
    spec_src = REAL / "sdss" / "spec-4055-55359-0010.fits"
    if not (plate_src.exists() and spec_src.exists()):
        pytest.skip("spPlate-4055-55359-0020 / spec-4055-55359-0010 not in tests/data/real")
    src = tmp_path / "src"  # as in data/real: a walk meets other_formats/ before sdss/
    plate, spec = src / "other_formats" / plate_src.name, src / "sdss" / spec_src.name
    for a, b in ((plate_src, plate), (spec_src, spec)):
        b.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(a, b)
    sources = [src] if order == "walk" else [plate, spec]
    rep = ingest(sources, tmp_path / "s", workers=1, progress=False)
    store = SpectrumStore(tmp_path / "s")
    idx = store.index.set_index("object_id")
    kept = idx.loc["4055-55359-0010"]
    assert kept["file"] == str(spec.resolve()) and kept["spec_class"] == "QSO"
    assert kept["z_file"] == pytest.approx(2.953, abs=1e-3)
    assert (idx["file"] == str(plate.resolve())).sum() == len(store) - 1  # every other spPlate fibre is kept
    rej = store.rejected
    assert rep.by_category == {"duplicate": 1} and len(rej) == 1
    assert rej.loc[0, "file"] == str(plate.resolve()) and rej.loc[0, "hdu_or_fiber"] == "10"
    assert rej.loc[0, "object_id"] == "4055-55359-0010" and str(spec.resolve()) in rej.loc[0, "reason"]


def test_missing_source_file_is_rejected_not_fatal(survey, tmp_path):
    ghost = tmp_path / "spec-4000-55300-0777.fits"
    rep = ingest([survey / "4000" / "spec-4000-55300-0001.fits", ghost], tmp_path / "s", workers=1, progress=False)
    assert rep.n_stored == 1 and rep.by_category == {"not-found": 1}


def test_plan_walks_sorted_and_finds_the_catalog(survey, tmp_path):
    shutil.copytree(survey / "4000", tmp_path / "spectra" / "4000")
    _catalog(tmp_path / "DR16Q_mock.fits", [{"PLATE": 4000, "MJD": 55300, "FIBERID": 1, "Z": 1.0}])
    plan = plan_sources([tmp_path])
    assert plan.catalog == (tmp_path / "DR16Q_mock.fits").resolve() and plan.catalog_auto
    assert len(plan.files) == 30 and plan.files == sorted(plan.files)


def test_reason_categories():
    assert classify("HDU 1 (COADD) lacks required column(s) ivar") == "missing-column"
    assert classify("ivar is zero or non-finite in every pixel: no usable pixel") == "zero-ivar"
    assert classify("flux is non-finite (NaN/inf) in every pixel") == "non-finite-flux"
    assert classify("truncated: HDU 1 needs 147200 data bytes") == "truncated"
    assert classify("unrecognised FITS layout (HDUs 0:empty): not a spec ... file") == "missing-hdu"
    assert classify("unrecognised FITS layout (HDUs 0:empty, 1:table): not a spec ...") == "unrecognised-layout"


def test_catalog_rows_without_a_plate_are_not_reported_missing(tmp_path):
    """A DESI-only row (no PLATE; read_catalog fills -1) has no SAS path to look for."""
    from astropy.table import Table

    from inspector.ingest import plan_sources

    cat = tmp_path / "cat.fits"
    Table({"TARGETID": [39632936152072660, 39632936152073654], "PLATE": [-1, 4055], "MJD": [-1, 55359], "FIBERID": [-1, 10], "Z": [1.9, 2.95]}).write(cat)
    plan = plan_sources([cat], spectra_root=tmp_path)
    assert plan.files == []
    assert len(plan.not_found) == 1 and plan.not_found[0].endswith("4055/spec-4055-55359-0010.fits")
