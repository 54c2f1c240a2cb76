"""Broken or odd input: every case is built from a real fixture and must give a SpectrumFileError
whose message names the file and the problem (or, for repairable pixels, a repaired spectrum)."""
from __future__ import annotations

import gzip
import re
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


# ---------------------------------------------------------------- issue 15: hostile headers, garbage content

def _with_card(real_dir: Path, name: str, tmp_path: Path, hdu: int, key: str, value: str) -> Path:
    from fits_fuzz import set_card

    path = tmp_path / f"{Path(name).stem}-{key}.fits"
    changed = set_card((real_dir / name).read_bytes(), hdu, key, value)
    assert changed is not None
    path.write_bytes(changed)
    return path


@pytest.mark.parametrize("name", [SPEC, PICCA, "sdss/spec-0266-51602-0013.fits"])
@pytest.mark.parametrize("key", ["NAXIS2", "PCOUNT"])
def test_a_negative_size_in_hdu2_is_refused_not_an_endless_loop(real_dir, tmp_path, name, key):
    """Defect 1: NAXIS2 = -50 (or a PCOUNT pointing back at HDU2's own header) sent the next-header
    offset backwards and the parse round for ever, adding HDUs at ~300 MB/s."""
    from fits_fuzz import hdu_spans, limits

    data = (real_dir / name).read_bytes()
    start, data_at, _ = hdu_spans(data)[2]
    naxis1, naxis2 = (int(re.search(rb"%s *= *(\d+)" % k, data[start:data_at]).group(1)) for k in (b"NAXIS1", b"NAXIS2"))
    value = -50 if key == "NAXIS2" else start - data_at - naxis1 * naxis2  # the next header = this header
    path = _with_card(real_dir, name, tmp_path, 2, key, str(value))
    with limits(10, 1 << 30):
        expect_error(read_any, path, f"HDU 2: {key} = {value} is negative")


@pytest.mark.parametrize("name, hdu, key, value, words", [
    (SPEC, 1, "TFORM1", "'Z'", ["TFORM1"]),  # decoded by detect_format, outside every reader
    (SPEC, 1, "TTYPE2", "'loglam' x", ["column 2", "malformed"]),
    (SPEC, 1, "TSCAL1", "'abc'", ["TSCAL1", "not a number"]),
    (SPEC, 2, "XTRACOLS", "'abc'", ["XTRACOLS", "not an integer"]),
    (SPEC, 2, "XTRACOLS", "100000", ["XTRACOLS = 100000"]),
    (PLATE, 0, "PLATEID", "'abc'", ["PLATEID", "not an integer"]),
    (PLATE, 0, "COEFF0", "'abc'", ["COEFF0", "not a number"]),
    (IMAGE, 0, "MJD", "'abc'", ["MJD", "not an integer"]),
    (DESI, 5, "BZERO", "'abc'", ["BZERO", "not a number"]),
])
def test_a_bad_header_value_is_a_spectrum_file_error_naming_the_file(real_dir, tmp_path, name, hdu, key, value, words):
    """Defect 2: FitsFormatError (detect_format ran outside names_the_file) or ValueError (float()/int()
    on header text) reached the caller without the file name."""
    expect_error(read_any, _with_card(real_dir, name, tmp_path, hdu, key, value), *words)


def test_a_reversed_desi_wavelength_is_refused(real_dir, tmp_path):
    """Defect 3: a reversed B_WAVELENGTH gave negative merge indices and the B flux was stored at the red end."""
    def reverse(h: fits.HDUList) -> None:
        h["B_WAVELENGTH"].data = h["B_WAVELENGTH"].data[::-1].copy()
    expect_error(read_desi_coadd, rewrite(real_dir, DESI, tmp_path / "d.fits", reverse),
                 "arm B", "B_WAVELENGTH is not strictly increasing")


def test_flux_read_as_integers_is_refused(real_dir, tmp_path):
    """Defect 3: TFORM E -> J reads the float bits as integers ~1e9; astropy reads the same, so only the
    reader can tell: flux, ivar and loglam are floating point in every survey format."""
    from fits_fuzz import column_index

    k = column_index((real_dir / SPEC).read_bytes(), 1, "flux")
    expect_error(read_any, _with_card(real_dir, SPEC, tmp_path, 1, f"TFORM{k}", "'J'"),
                 "HDU 1 column flux holds int32 values, not floating point")


def test_flux_scaled_by_1e37_is_refused(real_dir, tmp_path):
    def scale(d: dict) -> None:
        d["flux"] = (d["flux"] * np.float32(1e30)).astype(np.float32) + np.float32(1e37)
    expect_error(read_spec_file, rewrite(real_dir, SPEC, tmp_path / "f.fits", coadd_column(scale)),
                 "flux is non-finite or absurd", "every pixel")


def test_a_few_absurd_flux_pixels_are_masked_and_counted(real_dir, tmp_path):
    def spoil(d: dict) -> None:
        d["flux"][500:510] = 3e30
    spec = read_spec_file(rewrite(real_dir, SPEC, tmp_path / "a.fits", coadd_column(spoil)))
    assert spec.extra["n_absurd"] == 10 and (spec.ivar[500:510] == 0).all() and (spec.flux[500:510] == 0).all()


# ---------------------------------------------------------------- issue 15: every size bounded before reading

def test_gzip_is_inflated_in_chunks_and_stopped_at_the_cap(real_dir, tmp_path, monkeypatch):
    from fits_fuzz import gzip_bomb, hdu_spans

    from inspector.readers import rawfits

    assert rawfits.MAX_GUNZIP_BYTES < 1 << 30  # one file can never take a GiB
    monkeypatch.setattr(rawfits, "MAX_GUNZIP_BYTES", 4 << 20)
    data = (real_dir / SPEC).read_bytes()
    bomb = tmp_path / "bomb.fits.gz"
    bomb.write_bytes(gzip_bomb(64 << 20, data[: hdu_spans(data)[1][1]]))
    expect_error(read_any, bomb, "gzip stream inflates to more than 4194304 bytes")
    two = tmp_path / "two.fits.gz"  # gzip members are concatenated, as gzip does
    two.write_bytes(gzip.compress(data[:100_000]) + gzip.compress(data[100_000:]))
    assert np.array_equal(read_any(two)[0].flux, read_any(real_dir / SPEC)[0].flux)


def test_a_header_without_end_stops_at_the_block_limit(tmp_path, monkeypatch):
    from inspector.readers import fitsheader

    monkeypatch.setattr(fitsheader, "MAX_HEADER_BLOCKS", 20)
    path = tmp_path / "noend.fits"
    path.write_bytes(b"SIMPLE  =                    T".ljust(80) + b" " * (2880 * 40 - 80))
    expect_error(read_any, path, "no END card in 20 header blocks")


def test_a_header_claiming_millions_of_pixels_is_refused_before_reading(real_dir, tmp_path):
    """A COADD declaring 5e6 rows over a sparse hole: the file is as long as the header says, so only
    a bound on pixels per spectrum stops the reader from allocating every column at that length."""
    from fits_fuzz import hdu_spans, set_card

    data = (real_dir / SPEC).read_bytes()
    _, (s1, d1, e1) = hdu_spans(data)[:2]
    naxis1 = int(re.search(rb"NAXIS1 *= *(\d+)", data[s1:d1]).group(1))
    rows = 5_000_000
    header = set_card(data, 1, "NAXIS2", str(rows))[s1:d1]
    path = tmp_path / "sparse.fits"
    with open(path, "wb") as fh:
        fh.write(data[:s1] + header + data[d1:e1])
        fh.seek(d1 + -(-naxis1 * rows // 2880) * 2880)  # the rest of the declared rows: a hole of zeros
        fh.write(data[e1:])
    assert path.stat().st_size > naxis1 * rows
    expect_error(read_any, path, "HDU 1 (COADD) rows: 5000000 pixels per spectrum")


def test_bytes_after_the_last_hdu_are_refused_unless_padding(real_dir, tmp_path):
    data = (real_dir / SPEC).read_bytes()
    (tmp_path / "pad.fits").write_bytes(data + bytes(2880))
    read_any(tmp_path / "pad.fits")
    (tmp_path / "junk.fits").write_bytes(data + b"junk" * 720)
    expect_error(read_any, tmp_path / "junk.fits", "2880 bytes after HDU 3 are neither a FITS header nor padding")


def test_a_malformed_end_card_is_refused(real_dir, tmp_path):
    data = bytearray((real_dir / SPEC).read_bytes())
    end = data.index(b"END     ")
    data[end + 50] = ord("$")  # astropy reads on past such a card, into the next HDU
    (tmp_path / "end.fits").write_bytes(bytes(data))
    expect_error(read_any, tmp_path / "end.fits", "HDU 0: malformed END card")


# ---------------------------------------------------------------- issue 15: what rawfits does not decode goes to astropy

def _count_fallbacks(monkeypatch) -> list:
    from inspector.readers import astropy_hdus

    calls: list = []
    real = astropy_hdus.open_hdus
    monkeypatch.setattr(astropy_hdus, "open_hdus", lambda path: calls.append(path) or real(path))
    return calls


def test_tnull_and_variable_length_columns_are_read_by_astropy(real_dir, tmp_path, monkeypatch):
    calls = _count_fallbacks(monkeypatch)
    plain = read_spec_file(real_dir / SPEC)
    k = _column_number(real_dir / SPEC, "and_mask")
    spec = read_spec_file(_with_card(real_dir, SPEC, tmp_path, 1, f"TNULL{k}", "-1"))
    assert len(calls) == 1 and np.array_equal(spec.flux, plain.flux) and np.array_equal(spec.and_mask, plain.and_mask)

    path = tmp_path / "vla.fits"
    cols = [fits.Column("Z", "D", array=np.array([1.0, 2.0])), fits.Column("RA", "D", array=np.array([3.0, 4.0])),
            fits.Column("PLATE", "J", array=np.array([1, 2])),
            fits.Column("EXTRA", "PD()", array=np.array([np.arange(3.0), np.arange(5.0)], dtype=object))]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    cat = read_catalog(path)
    assert len(calls) == 2 and cat["Z"].tolist() == [1.0, 2.0] and cat["PLATE"].tolist() == [1, 2]


def _column_number(path: Path, name: str) -> int:
    from fits_fuzz import column_index

    k = column_index(path.read_bytes(), 1, name)
    assert k is not None
    return k


def test_blank_in_a_scaled_integer_image_is_read_by_astropy_as_missing(real_dir, tmp_path, monkeypatch):
    """rawfits would scale the BLANK value like data; astropy (the reference) makes it NaN, which the
    readers then mask (ivar 0) like any non-finite pixel."""
    calls = _count_fallbacks(monkeypatch)

    def to_int16(h: fits.HDUList) -> None:
        flux = h[0].data
        scaled = np.round(flux / 0.01).clip(-32000, 32000).astype(np.int16)
        scaled[100:110] = -32768
        h[0] = fits.PrimaryHDU(scaled, header=h[0].header)
        h[0].header["BSCALE"], h[0].header["BZERO"], h[0].header["BLANK"] = 0.01, 0.0, -32768
        h[0].header["EXTEND"] = True
    [spec] = read_any(rewrite(real_dir, IMAGE, tmp_path / "blank.fits", to_int16))
    assert len(calls) == 1
    assert (spec.ivar[100:110] == 0).all() and spec.extra["n_nonfinite"] >= 10


def test_long_string_values_are_joined_like_astropy(real_dir):
    """DESI primary headers continue long strings (DEPVERnn) with CONTINUE cards: joined natively."""
    from inspector.readers import rawfits

    hdus = rawfits.read(real_dir / DESI)
    with fits.open(real_dir / DESI) as ref:
        for key in ("DEPVER21", "DEPNAM21"):
            assert hdus[0].get(key) == ref[0].header[key]
