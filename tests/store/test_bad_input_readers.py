"""Broken or odd input: every case is built from a real fixture and must give a SpectrumFileError
whose message names the file and the problem (or, for repairable pixels, a repaired spectrum)."""
from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from inspector.readers import (
    SpectrumFileError,
    SpectrumFileWarning,
    read_any,
    read_catalog,
    read_desi_coadd,
    read_spec_file,
    read_spplate,
)
from inspector.readers.validate import validate_spectrum
from inspector.spectrum import Spectrum

SPEC = "sdss/spec-4055-55359-0010.fits"          # BOSS, EXTNAMEs, lower-case columns
PICCA = "sdss/spec-3655-55240-0110.fits"         # no EXTNAMEs, upper-case columns
PLATE = "other_formats/spPlate-4055-55359-0020.fits"
DESI = "desi/coadd-main-dark-9144.fits"
IMAGE = "other_formats/SDSSJ220248.31+123656.3.fits"


def expect_error(read: Callable, path: Path, *words: str) -> SpectrumFileError:
    with pytest.raises(SpectrumFileError) as info:
        read(path)
    err = info.value
    assert err.path == str(path) and str(err) == f"{path}: {err.problem}"
    for word in words:
        assert word in err.problem, f"{word!r} not in {err.problem!r}"
    return err


def rewrite(real_dir: Path, name: str, dst: Path, change: Callable[[fits.HDUList], object]) -> Path:
    with fits.open(real_dir / name) as h:
        h = fits.HDUList([x.copy() for x in h])
    out = change(h)
    (out if isinstance(out, fits.HDUList) else h).writeto(dst)
    return dst


def coadd_column(change: Callable[[dict], None], column: str = "flux") -> Callable[[fits.HDUList], None]:
    def apply(h: fits.HDUList) -> None:
        data = {name: np.array(h[1].data[name]) for name in h[1].columns.names}
        change(data)
        cols = [fits.Column(n, f, array=data[n]) for n, f in zip(h[1].columns.names, h[1].columns.formats) if n in data]
        h[1] = fits.BinTableHDU.from_columns(cols, header=h[1].header)
    return apply


# ---------------------------------------------------------------- not FITS / truncated / missing

def test_missing_file_and_directory(tmp_path):
    expect_error(read_any, tmp_path / "nope.fits", "file not found")
    expect_error(read_spec_file, tmp_path, "directory")


def test_not_a_fits_file(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("plate,mjd,fiber\n4055,55359,10\n" * 100)
    expect_error(read_any, path, "not a FITS file")
    expect_error(read_catalog, path, "not a FITS file")


def test_empty_file(tmp_path):
    (tmp_path / "empty.fits").write_bytes(b"")
    expect_error(read_spec_file, tmp_path / "empty.fits", "empty file")


@pytest.mark.parametrize("name, reader", [(SPEC, read_spec_file), (PICCA, read_any), (PLATE, read_spplate),
                                          (DESI, read_desi_coadd), (IMAGE, read_any)])
def test_truncated_to_half(real_dir, tmp_path, name, reader):
    raw = (real_dir / name).read_bytes()
    path = tmp_path / Path(name).name
    path.write_bytes(raw[: len(raw) // 2])
    expect_error(reader, path, "truncated")


def test_truncated_inside_a_header(real_dir, tmp_path):
    path = tmp_path / "cut.fits"
    path.write_bytes((real_dir / SPEC).read_bytes()[:1000])
    expect_error(read_any, path, "truncated", "END")


def test_truncated_catalog(real_dir, tmp_path):
    path = tmp_path / "cat.fits"
    fits.BinTableHDU.from_columns([fits.Column("Z", "D", array=np.arange(5000.0)),
                                   fits.Column("RA", "D", array=np.arange(5000.0))]).writeto(path)
    path.write_bytes(path.read_bytes()[:20000])
    expect_error(read_catalog, path, "truncated")


def test_corrupt_gzip(real_dir, tmp_path):
    path = tmp_path / "s.fits.gz"
    path.write_bytes(gzip.compress((real_dir / SPEC).read_bytes())[:5000])
    expect_error(read_any, path, "gzip")


def test_missing_hdus(real_dir, tmp_path):
    only_primary = rewrite(real_dir, SPEC, tmp_path / "p.fits", lambda h: fits.HDUList([h[0]]))
    expect_error(read_spec_file, only_primary, "missing HDU 1", "COADD")
    expect_error(read_any, only_primary, "unrecognised FITS layout")
    no_meta = rewrite(real_dir, PICCA, tmp_path / "m.fits", lambda h: fits.HDUList([h[0], h[1]]))
    expect_error(read_spec_file, no_meta, "missing HDU 2", "SPALL/SPECOBJ")
    no_ivar_hdu = rewrite(real_dir, DESI, tmp_path / "d.fits", lambda h: h.pop("B_IVAR"))
    expect_error(read_desi_coadd, no_ivar_hdu, "missing HDU B_IVAR")


def test_missing_required_columns(real_dir, tmp_path):
    def drop(h: fits.HDUList, index: int, column: str) -> None:
        cols = [c for c in h[index].columns if c.name.upper() != column.upper()]
        h[index] = fits.BinTableHDU.from_columns(cols, header=h[index].header)

    no_ivar = rewrite(real_dir, SPEC, tmp_path / "a.fits", lambda h: drop(h, 1, "ivar"))
    expect_error(read_spec_file, no_ivar, "HDU 1", "lacks required column(s) ivar")
    no_loglam = rewrite(real_dir, PICCA, tmp_path / "b.fits", lambda h: drop(h, 1, "LOGLAM"))
    expect_error(read_spec_file, no_loglam, "loglam")
    no_z = rewrite(real_dir, SPEC, tmp_path / "c.fits", lambda h: drop(h, 2, "Z"))
    expect_error(read_spec_file, no_z, "HDU 2", "column(s) Z ")


def test_spplate_without_wavelength_solution(real_dir, tmp_path):
    def strip(h: fits.HDUList) -> None:
        del h[0].header["COEFF0"]
    expect_error(read_spplate, rewrite(real_dir, PLATE, tmp_path / "p.fits", strip), "COEFF0")


# ---------------------------------------------------------------- bad arrays

def test_empty_arrays(real_dir, tmp_path):
    def empty(d: dict) -> None:
        for name in d:
            d[name] = d[name][:0]
    expect_error(read_spec_file, rewrite(real_dir, SPEC, tmp_path / "e.fits", coadd_column(empty)), "empty spectrum")


def test_non_monotonic_wavelength(real_dir, tmp_path):
    def swap(d: dict) -> None:
        d["loglam"][[1000, 1001]] = d["loglam"][[1001, 1000]]
    err = expect_error(read_spec_file, rewrite(real_dir, SPEC, tmp_path / "w.fits", coadd_column(swap)),
                       "not strictly increasing", "pixel 1000")
    assert "A" in err.problem


@pytest.mark.parametrize("value", [0.0, np.nan])
def test_ivar_zero_or_nonfinite_everywhere(real_dir, tmp_path, value):
    def kill(d: dict) -> None:
        d["ivar"][:] = value
    expect_error(read_spec_file, rewrite(real_dir, SPEC, tmp_path / "i.fits", coadd_column(kill)),
                 "ivar is zero or non-finite in every pixel")


def test_flux_nonfinite_everywhere(real_dir, tmp_path):
    def kill(d: dict) -> None:
        d["flux"][:] = np.inf
    expect_error(read_spec_file, rewrite(real_dir, SPEC, tmp_path / "f.fits", coadd_column(kill)),
                 "flux is non-finite", "every pixel")


def test_partly_nonfinite_pixels_are_repaired_and_counted(real_dir, tmp_path):
    good = read_spec_file(real_dir / SPEC)
    nan_flux, inf_ivar, negative = np.arange(100, 300), np.arange(2000, 2050), np.arange(3000, 3010)

    def spoil(d: dict) -> None:
        d["flux"][nan_flux] = np.nan
        d["ivar"][inf_ivar] = np.inf
        d["ivar"][negative] = -1.0
    spec = read_spec_file(rewrite(real_dir, SPEC, tmp_path / "p.fits", coadd_column(spoil)))
    assert spec.extra["n_nonfinite"] == nan_flux.size + inf_ivar.size
    assert (spec.ivar[nan_flux] == 0).all() and (spec.flux[nan_flux] == 0).all()
    assert (spec.ivar[inf_ivar] == 0).all() and (spec.ivar[negative] == 0).all()
    assert np.isfinite(spec.flux).all() and np.isfinite(spec.ivar).all()
    untouched = np.setdiff1d(np.arange(spec.n_pix), np.r_[nan_flux, inf_ivar, negative])
    assert np.array_equal(spec.ivar[untouched], good.ivar[untouched])


def test_mostly_nonfinite_is_refused(real_dir, tmp_path):
    def spoil(d: dict) -> None:
        d["flux"][: int(0.95 * d["flux"].size)] = np.nan
    expect_error(read_spec_file, rewrite(real_dir, SPEC, tmp_path / "m.fits", coadd_column(spoil)),
                 "pixels are usable", "fewer than 10%")


def test_length_mismatch_in_image_and_desi_files(real_dir, tmp_path):
    def shorten(h: fits.HDUList) -> None:
        h[1].data = h[1].data[:-10]
    expect_error(read_any, rewrite(real_dir, IMAGE, tmp_path / "i.fits", shorten), "length mismatch", "HDU 1")

    def shorten_desi(h: fits.HDUList) -> None:
        h["B_IVAR"].data = h["B_IVAR"].data[:, :-5]
    expect_error(read_any, rewrite(real_dir, DESI, tmp_path / "d.fits", shorten_desi), "length mismatch", "B_IVAR")


def test_validate_spectrum_directly_names_the_mismatch():
    spec = Spectrum(wave=np.arange(1.0, 11.0), flux=np.ones(10), ivar=np.ones(9), source="x")
    with pytest.raises(SpectrumFileError, match="length mismatch: wavelength has 10 pixels, flux 10, ivar 9"):
        validate_spectrum(spec, "mem://x")


def test_spplate_and_desi_fail_only_when_nothing_is_usable(real_dir, tmp_path):
    def zero_plate(h: fits.HDUList) -> None:
        h[0].data = np.zeros_like(h[0].data)
    with pytest.warns(SpectrumFileWarning) as skipped:
        expect_error(read_spplate, rewrite(real_dir, PLATE, tmp_path / "p.fits", zero_plate),
                     "none of the 20 fibers is usable")
    assert len(skipped) == 20 and "fiber 20" in str(skipped[-1].message)

    def zero_desi(h: fits.HDUList) -> None:
        for arm in "BRZ":
            h[f"{arm}_IVAR"].data = np.zeros_like(h[f"{arm}_IVAR"].data)
    with pytest.warns(SpectrumFileWarning) as skipped:
        expect_error(read_desi_coadd, rewrite(real_dir, DESI, tmp_path / "d.fits", zero_desi), "none of the 2 rows")
    assert len(skipped) == 2 and "TARGETID 39632936152073654" in str(skipped[-1].message)
