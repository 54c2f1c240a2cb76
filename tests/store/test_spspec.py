"""SDSS-I/II spSpec files (DR1-DR7): the two real fixtures, ingest, and damaged copies.

The physics checks are what make the reading right, not just self-consistent: the
redshift the header claims must put the lines where the flux shows them, in vacuum.
"""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import FIXTURES_REAL

from inspector.readers import SpectrumFileError, detect_format, read_any, read_spplate, read_spspec
from inspector.readers.common import open_hdus
from inspector.readers.spspec import SPEC_CLN

QSO_FILE = FIXTURES_REAL / "other_formats" / "spSpec-52017-0516-139.fit"  # QSO z=3.233, SPEC_CLN 4 (HIZ_QSO)
GAL_FILE = FIXTURES_REAL / "other_formats" / "spSpec-52999-1307-323.fit"  # GALAXY z=0.041
PLATE_FILE = FIXTURES_REAL / "other_formats" / "spPlate-4055-55359-0020.fits"
AIR_TO_VAC = 1.000277  # n(air) near 6500 A: vacuum wavelengths are ~1.8 A longer there


def _peak(spec, centre: float, half: float = 15.0) -> float:
    """Wavelength of the highest flux pixel within `half` A of `centre`."""
    near = np.abs(spec.wave - centre) < half
    return float(spec.wave[near][np.argmax(spec.flux[near])])


def _altered(tmp_path: Path, change, name: str = "spSpec-52017-0516-139.fit") -> Path:
    """A copy of the QSO file after `change(hdul)`; astropy writes it, so only the content is odd."""
    out = tmp_path / name
    with fits.open(QSO_FILE) as h:
        h = fits.HDUList([hdu.copy() for hdu in h])
        change(h)
        h.writeto(out, overwrite=True)
    return out


# ---------------------------------------------------------------- the real files

def test_qso_header_values_and_wavelengths():
    [s] = read_any(QSO_FILE)
    hdr = fits.getheader(QSO_FILE)
    assert (s.plate, s.mjd, s.fiberid) == (516, 52017, 139) and s.object_id == "0516-52017-0139"
    assert s.spec_class == "QSO" and s.extra["SPEC_CLN"] == 4 and s.extra["OBJTYPE"] == "QSO"
    assert s.z == pytest.approx(3.23299, abs=1e-5) and s.z_err == pytest.approx(6.62244e-4, rel=1e-5)
    assert s.zwarning == 512
    assert (s.ra, s.dec) == pytest.approx((180.43485, 1.269872))  # RAOBJ/DECOBJ, not the boresight RA/DEC
    assert s.survey == "SDSS" and s.source == str(QSO_FILE)
    assert 3795 < s.wave[0] < 3805 and 9215 < s.wave[-1] < 9225 and s.n_pix == 3852
    assert np.allclose(np.diff(np.log10(s.wave)), 1e-4, atol=1e-9)
    assert s.wave[0] == pytest.approx(10**3.5797)
    # the pipeline's own count of good pixels is exactly the pixels given weight
    assert int(np.count_nonzero(s.ivar)) == hdr["NGOOD"] == 3755


def test_qso_lyman_alpha_is_the_flux_peak():
    [s] = read_spspec(QSO_FILE)
    lya = 1215.67 * (1 + s.z)  # 5146 A
    assert abs(float(s.wave[np.argmax(s.flux)]) - lya) < 15  # the brightest pixel of the whole spectrum
    red = (s.wave > 5300) & (s.wave < 6300)  # continuum between Lyman-alpha and C IV
    assert s.flux[np.abs(s.wave - lya) < 15].max() > 2 * np.median(s.flux[red])


def test_galaxy_lines_sit_at_vacuum_wavelengths():
    [s] = read_any(GAL_FILE)
    assert (s.plate, s.mjd, s.fiberid) == (1307, 52999, 323) and s.n_pix == 3853
    assert s.spec_class == "GALAXY" and s.extra["SPEC_CLN"] == 2 and s.zwarning == 0
    assert s.z == pytest.approx(0.0410313, abs=1e-6)
    assert (s.ra, s.dec) == pytest.approx((149.46417, 10.976277))
    halpha = 6564.61 * (1 + s.z)  # vacuum rest wavelength: 6834.0 A
    found = _peak(s, halpha, half=5)
    assert abs(found - halpha) < 1.0  # a pixel is 1.57 A here
    assert abs(found - halpha / AIR_TO_VAC) > abs(found - halpha)  # air would put it 1.9 A bluer
    oiii = 5008.24 * (1 + s.z)
    assert abs(_peak(s, oiii, half=5) - oiii) < 1.5
    assert s.flux[np.abs(s.wave - halpha) < 2].max() > 5 * np.median(s.flux)


def test_rows_error_mask_and_sky_are_read_as_the_header_labels_them():
    [s] = read_spspec(QSO_FILE)
    with fits.open(QSO_FILE) as h:
        image = h[0].data.astype(np.float64)
        assert [h[0].header[f"ARRAY{k}"].strip() for k in (1, 2, 3, 4)] == [
            "SPECTRUM", "CONTINUUM-SUBTRACTED SPECTRUM", "ERROR", "MASK"]
    err = image[2]
    assert np.array_equal(s.flux, image[0].astype(np.float32))
    good = err > 0
    assert np.allclose(s.ivar[good], 1.0 / err[good] ** 2, rtol=1e-6) and (s.ivar[~good] == 0).all()
    assert np.array_equal(s.and_mask, image[3].astype(np.int64))
    assert s.sky is not None and np.array_equal(s.sky, image[4].astype(np.float32))
    # row 4 is the sky: [O I] 5577 peaks there, at its vacuum wavelength 5578.9 A (air 5577.3)
    near = np.abs(s.wave - 5578) < 6
    assert abs(float(s.wave[near][np.argmax(s.sky[near])]) - 5578.9) < 1.0
    # the error is a sigma: the flux's own pixel-to-pixel scatter in a smooth stretch agrees with it
    band = (s.wave > 7000) & (s.wave < 7300) & good
    scatter = 1.4826 * np.median(np.abs(np.diff(s.flux[band]))) / np.sqrt(2)
    assert 0.5 < scatter / np.median(err[band]) < 2.0


def test_detected_by_header_not_mistaken_for_spplate(tmp_path):
    for path in (QSO_FILE, GAL_FILE):
        assert detect_format(open_hdus(path)) == "spspec"
    odd = tmp_path / "renamed.dat"  # content decides, not the name
    shutil.copy(QSO_FILE, odd)
    [s] = read_any(odd)
    assert s.spec_class == "QSO" and s.source == str(odd)
    assert detect_format(open_hdus(PLATE_FILE)) == "spplate" and len(read_spplate(PLATE_FILE)) == 20


@pytest.mark.parametrize("code", sorted(SPEC_CLN))
def test_every_spec_cln_code_maps_to_the_spec_lite_class(tmp_path, code):
    path = _altered(tmp_path, lambda h: h[0].header.set("SPEC_CLN", code))
    [s] = read_any(path)
    expected = {0: None, 1: "STAR", 2: "GALAXY", 3: "QSO", 4: "QSO", 5: None, 6: "STAR", 7: "GALAXY"}[code]
    assert s.spec_class == expected and s.extra["SPEC_CLN"] == code


def test_four_row_file_of_the_early_releases(tmp_path):
    """DR1-DR5 spSpec images stop at the mask row: no sky, same reading otherwise."""
    def four_rows(h):
        h[0].data = h[0].data[:4].copy()
    [s] = read_any(_altered(tmp_path, four_rows))
    [full] = read_any(QSO_FILE)
    assert s.sky is None and s.extra["hdu_layout"] == "spSpec image (4 rows)"
    assert np.array_equal(s.flux, full.flux) and np.array_equal(s.ivar, full.ivar)


@pytest.mark.parametrize("path", [QSO_FILE, GAL_FILE], ids=lambda p: p.name)
def test_matches_the_curated_manifest(real_manifest, path):
    row = real_manifest.loc[f"other_formats/{path.name}"]
    [s] = read_any(path)
    assert s.spec_class == row["class"] and s.z == pytest.approx(float(row["z"]), abs=1e-6)
    assert (s.plate, s.mjd, s.fiberid) == (int(row["plate"]), int(row["mjd"]), int(row["fiber"]))
    assert s.n_pix == int(row["npix"]) and path.stat().st_size == int(row["size_bytes"])


# ---------------------------------------------------------------- ingest

def test_ingest_a_directory_of_spspec_files(tmp_path):
    from typer.testing import CliRunner

    from inspector.cli import app
    from inspector.store import SpectrumStore

    src = tmp_path / "src"
    src.mkdir()
    for f in (QSO_FILE, GAL_FILE):
        shutil.copy(f, src / f.name)
    res = CliRunner().invoke(app, ["ingest", str(src), "--store", str(tmp_path / "s"), "--workers", "1",
                                   "--no-progress", "--no-catalog"])
    assert res.exit_code == 0, res.output
    assert "2 spectra stored" in res.output, res.output
    idx = SpectrumStore(tmp_path / "s").index.set_index("object_id")
    assert set(idx.index) == {"0516-52017-0139", "1307-52999-0323"}
    qso, gal = idx.loc["0516-52017-0139"], idx.loc["1307-52999-0323"]
    assert qso["spec_class"] == "QSO" and qso["z_file"] == pytest.approx(3.23299, abs=1e-5)
    assert qso["zwarning"] == 512 and bool(qso["is_qso"])
    assert gal["spec_class"] == "GALAXY" and gal["z_file"] == pytest.approx(0.0410313, abs=1e-6)
    assert not bool(gal["is_qso"])
    assert qso["file"] == str((src / QSO_FILE.name).resolve())


# ---------------------------------------------------------------- damaged files

def _refused(path: Path, *words: str) -> SpectrumFileError:
    with pytest.raises(SpectrumFileError) as info:
        read_any(path)
    err = info.value
    assert err.path == str(path) and str(err).startswith(f"{path}: ")
    for w in words:
        assert w in err.problem, err.problem
    assert "plug map" not in err.problem  # never the spPlate reader's complaint
    again = pickle.loads(pickle.dumps(err))  # ingest workers send it to the parent
    assert (again.path, again.problem) == (err.path, err.problem)
    return err


@pytest.mark.parametrize("frac", [0.05, 0.5, 0.95])  # the last 1 % is padding only
def test_truncated_file(tmp_path, frac):
    data = QSO_FILE.read_bytes()
    path = tmp_path / QSO_FILE.name
    path.write_bytes(data[: int(len(data) * frac)])
    _refused(path, "truncated")


def test_missing_coeff0(tmp_path):
    _refused(_altered(tmp_path, lambda h: h[0].header.remove("COEFF0")), "COEFF0", "wavelength")


@pytest.mark.parametrize("rows", [1, 3, 6])
def test_wrong_number_of_rows(tmp_path, rows):
    def cut(h):
        data = h[0].data
        h[0].data = np.vstack([data] * 2)[:rows].copy() if rows > 1 else data[:1].copy()
    _refused(_altered(tmp_path, cut), f"{rows} rows", "4 (flux", "or 5")


def test_one_dimensional_image(tmp_path):
    def flat(h):
        h[0].data = h[0].data[0].copy()
    _refused(_altered(tmp_path, flat), "2-D spSpec image")


def test_spplate_named_file_without_spectro1d_cards_still_gets_an_spspec_error(tmp_path):
    """Stripped of SPEC_CLN/Z_WARNIN/ARRAY1 the layout alone looks like a 5-fiber spPlate; the name settles it."""
    def strip(h):
        for key in ("SPEC_CLN", "Z_WARNIN", "ARRAY1"):
            h[0].header.remove(key)
        h[0].header.remove("COEFF1")
    _refused(_altered(tmp_path, strip), "COEFF1")


def test_air_wavelengths_are_refused(tmp_path):
    _refused(_altered(tmp_path, lambda h: h[0].header.set("VACUUM", False)), "VACUUM", "air")


def test_unknown_spec_cln_code(tmp_path):
    _refused(_altered(tmp_path, lambda h: h[0].header.set("SPEC_CLN", 9)), "SPEC_CLN = 9")


def test_garbage_in_the_mask_row(tmp_path):
    def bad_mask(h):
        h[0].data[3, 17] = -3.5
    _refused(_altered(tmp_path, bad_mask), "mask", "pixel 17")


def test_all_errors_zero_means_no_usable_pixel(tmp_path):
    def no_err(h):
        h[0].data[2] = 0.0
    _refused(_altered(tmp_path, no_err), "no usable pixel")


def test_text_where_the_redshift_should_be(tmp_path):
    _refused(_altered(tmp_path, lambda h: h[0].header.set("Z", "abc")), "HDU 0 Z", "not a number")


# ---------------------------------------------------------------- fuzz (the issue-15 harness, on this format)

def _fuzz_cases() -> list:
    """The harness's structural damage families on the QSO file (own seed: the shared corpus is left as it
    is), plus spSpec garbage astropy reads happily: flux bits as integers, a mask row of NaN."""
    from fits_fuzz import Case, _structural, with_astropy

    data = QSO_FILE.read_bytes()
    cases = _structural("spspec", data, np.random.default_rng(16), rounds=1)

    def int_image(h):
        h[0].data = h[0].data.view(np.int32).copy()

    def nan_mask(h):
        h[0].data[3] = np.nan

    cases.append(Case("spspec/garbage/image-bits-as-int32", with_astropy(data, int_image), must_refuse=True))
    cases.append(Case("spspec/garbage/mask-row-nan", with_astropy(data, nan_mask), must_refuse=True))
    return cases


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    from fits_fuzz import warm_up

    path = tmp_path_factory.mktemp("fuzz_spspec")
    warm_up(path)
    return path


FUZZ = _fuzz_cases()


@pytest.mark.parametrize("case", FUZZ, ids=[c.name for c in FUZZ])
def test_fuzz_case(case, fuzz_dir):
    from fits_fuzz import run_case

    out = run_case(case, fuzz_dir, seconds=10.0, extra_memory=1 << 30)
    assert out.verdict in ("read", "refused"), f"{out.verdict}: {out.detail}"
    if case.must_refuse:
        assert out.verdict == "refused"
