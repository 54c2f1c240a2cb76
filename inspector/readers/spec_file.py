"""SDSS/BOSS/eBOSS `spec-PLATE-MJD-FIBER.fits` (spec-lite): read and write.

Three HDU layouts occur in the wild and all are read the same way, HDUs by
index and columns without regard to case:
  PRIMARY|COADD|SPECOBJ|SPZLINE   SDSS-I/II (DR8+), lower-case HDU1 columns
  PRIMARY|COADD|SPALL|SPZLINE     BOSS/eBOSS DR14+
  PRIMARY|(none)|(none)|(none)    DR16 files as picca ships them: no EXTNAMEs, UPPER-case columns

The writer produces the same layouts (layout="sdss", "boss", "picca") so that
the mock survey exercises exactly the code path real files take.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from inspector.readers import rawfits
from inspector.readers.common import (
    SURVEYS,
    PathLike,
    as_float,
    as_int,
    check_pixel_count,
    guess_survey,
    header_number,
    names_the_file,
    open_hdus,
    require_columns,
    require_float,
    require_hdu,
)
from inspector.readers.errors import SpectrumFileError
from inspector.readers.fitswrite import card, primary_hdu, table_hdu
from inspector.readers.validate import validate_spectrum
from inspector.spectrum import Spectrum

COADD_REQUIRED = ("flux", "loglam", "ivar")
META_REQUIRED = ("CLASS", "Z", "ZWARNING")
# HDU2 columns copied into Spectrum.extra under their (upper-case) FITS names.
META_EXTRA = ("RUN2D", "SUBCLASS", "THING_ID")
# Keys readers derive themselves: never written back as HDU2 columns.
READER_KEYS = frozenset({"n_nonfinite", "n_absurd", "hdu_layout", "ivar_missing", "radec_from_name", "row"})
XTRA_KEYWORD = "XTRACOLS"  # HDU2 keyword: the last N columns hold Spectrum.extra scalars
LAYOUTS = {"boss": ("COADD", "SPALL", False), "sdss": ("COADD", "SPECOBJ", False), "picca": (None, None, True)}


def read_spec_file(path: PathLike) -> Spectrum:
    """One spectrum with the file's own CLASS/Z/ZWARNING; raises SpectrumFileError."""
    return from_hdus(path, open_hdus(path))


@names_the_file
def from_hdus(path: PathLike, hdus: list[rawfits.HDU]) -> Spectrum:
    primary = hdus[0]
    coadd = require_hdu(path, hdus, 1, "COADD spectrum table")
    require_columns(path, coadd, COADD_REQUIRED, "COADD spectrum table")
    meta = require_hdu(path, hdus, 2, "SPALL/SPECOBJ metadata table")
    require_columns(path, meta, META_REQUIRED, "SPALL/SPECOBJ metadata table")
    if meta.nrows < 1:
        raise SpectrumFileError(path, "HDU 2 (SPALL/SPECOBJ metadata table) has no rows")

    check_pixel_count(path, coadd.nrows, "HDU 1 (COADD) rows")
    loglam = require_float(path, coadd.column("loglam"), "HDU 1 column loglam").astype(np.float64)
    with np.errstate(over="ignore"):  # an absurd loglam gives inf, which validation names
        wave = np.power(10.0, loglam)
    spec = Spectrum(
        wave=wave,
        flux=require_float(path, coadd.column("flux"), "HDU 1 column flux"),
        ivar=require_float(path, coadd.column("ivar"), "HDU 1 column ivar"),
        source=str(path),
        and_mask=coadd.column("and_mask") if coadd.has_column("and_mask") else None,
        sky=coadd.column("sky") if coadd.has_column("sky") else None,
    )
    def value(name: str, fallback_key: str | None = None) -> Any:
        if meta.has_column(name):
            return meta.cell(name)
        return primary.get(fallback_key) if fallback_key else None

    def integer(name: str, fallback_key: str | None = None) -> int | None:
        return as_int(path, value(name, fallback_key), lambda: _where(meta, name, fallback_key))

    def real(name: str, fallback_key: str | None = None) -> float | None:
        return as_float(path, value(name, fallback_key), lambda: _where(meta, name, fallback_key))

    spec.plate = integer("PLATE", "PLATEID")
    spec.mjd = integer("MJD", "MJD")
    spec.fiberid = integer("FIBERID", "FIBERID")
    ra, dec = real("PLUG_RA", "PLUG_RA"), real("PLUG_DEC", "PLUG_DEC")
    if ra is None and meta.has_column("RA"):  # not the PRIMARY RA/DEC: those are the telescope boresight
        ra, dec = real("RA"), real("DEC")
    spec.ra, spec.dec = ra, dec
    spec.spec_class = str(value("CLASS")).strip()
    spec.z = real("Z")
    spec.z_err = real("Z_ERR")
    spec.zwarning = integer("ZWARNING")
    spec.sn_median_all = real("SN_MEDIAN_ALL")
    for key in META_EXTRA:
        v = value(key, key)
        if v is not None:
            spec.extra[key] = v.strip() if isinstance(v, str) else v
    n_extra = header_number(path, meta, XTRA_KEYWORD, integer=True) or 0
    if not 0 <= n_extra <= len(meta.column_names):
        raise SpectrumFileError(path, f"HDU 2: {XTRA_KEYWORD} = {n_extra} but the table has "
                                      f"{len(meta.column_names)} columns")
    if n_extra:
        for name in meta.column_names[-n_extra:]:
            spec.extra[name.upper()] = value(name)
    names = [h.name or "(none)" for h in hdus]
    names[0] = "PRIMARY"
    spec.extra["hdu_layout"] = "|".join(names)
    declared = str(primary.get("SURVEY", "")).strip()
    spec.survey = declared if declared in SURVEYS else guess_survey(spec.extra.get("RUN2D"), spec.mjd, meta.name)
    return validate_spectrum(spec, path)


def _where(meta: rawfits.HDU, name: str, fallback_key: str | None) -> str:
    return f"HDU 2 column {name}" if meta.has_column(name) or not fallback_key else f"HDU 0 {fallback_key}"


# --------------------------------------------------------------------------- writing

def write_spec_file(path: PathLike, spectrum: Spectrum, layout: str = "boss") -> None:
    """Write a spec-lite file as the SDSS pipeline lays it out; `read_spec_file` reads it back.

    layout: "boss" (HDU2 SPALL), "sdss" (HDU2 SPECOBJ, SDSS-I/II) or "picca"
    (DR16 as picca ships it: no EXTNAMEs, upper-case columns). Scalars in
    `spectrum.extra` become extra HDU2 columns named key.upper() and come back
    under that name (RUN2D, SUBCLASS, THING_ID fill the standard columns;
    reader-derived keys such as n_nonfinite are not written; None is skipped).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    coadd_name, meta_name, upper = LAYOUTS[layout]
    s = spectrum
    wave = np.asarray(s.wave, dtype=np.float64)
    n = wave.size
    if np.asarray(s.flux).size != n or np.asarray(s.ivar).size != n:
        raise ValueError(f"wave, flux, ivar lengths differ: {n}, {np.size(s.flux)}, {np.size(s.ivar)}")
    zeros_f = np.zeros(n, np.float32)
    zeros_i = np.zeros(n, np.int32)
    and_mask = zeros_i if s.and_mask is None else s.and_mask
    sky = zeros_f if s.sky is None else s.sky
    loglam = np.log10(wave)
    coadd_cols = [("flux", "E", s.flux), ("loglam", "E", loglam), ("ivar", "E", s.ivar),
                  ("and_mask", "J", and_mask), ("or_mask", "J", and_mask), ("wdisp", "E", zeros_f),
                  ("sky", "E", sky), ("model", "E", zeros_f)]

    extra = {k.upper(): v for k, v in s.extra.items() if k not in READER_KEYS}
    plate, mjd, fiber = _or(s.plate, -1), _or(s.mjd, -1), _or(s.fiberid, -1)
    run2d = str(extra.pop("RUN2D", None) or ("26" if layout == "sdss" else "v5_13_0"))
    subclass = str(extra.pop("SUBCLASS", "") or "")
    thing_id = int(_or(extra.pop("THING_ID", -1), -1))
    ra, dec = _or(s.ra, np.nan), _or(s.dec, np.nan)
    meta_cols: list[tuple[str, str, Any]] = [
        ("PLATE", "J", plate), ("MJD", "J", mjd), ("FIBERID", "J", fiber),
        ("CLASS", "6A", s.spec_class or ""), ("SUBCLASS", f"{max(len(subclass), 21)}A", subclass),
        ("Z", "E", _or(s.z, np.nan)), ("Z_ERR", "E", _or(s.z_err, np.nan)), ("ZWARNING", "J", _or(s.zwarning, 0)),
        ("SN_MEDIAN_ALL", "E", _or(s.sn_median_all, np.nan)), ("PLUG_RA", "D", ra), ("PLUG_DEC", "D", dec),
        ("THING_ID", "J" if abs(thing_id) < 2**31 else "K", thing_id), ("RUN2D", f"{max(len(run2d), 7)}A", run2d)]
    taken = {c[0] for c in meta_cols}
    extra_cols = [_extra_column(k, v) for k, v in s.extra.items()
                  if v is not None and k not in READER_KEYS and k.upper() not in taken]
    extra_cols = [c for c in extra_cols if c is not None]
    meta_rows = [(name, tform, np.array([v])) for name, tform, v in meta_cols + extra_cols]

    if upper:
        coadd_cols = [(name.upper(), tform, v) for name, tform, v in coadd_cols]
    head = [card("TELESCOP", "SDSS 2.5-M", "Sloan Digital Sky Survey"), card("PLATEID", plate),
            card("MJD", mjd), card("FIBERID", fiber), card("RUN2D", run2d),
            card("COEFF0", float(np.round(loglam[0], 6)) if n else 0.0, "log10 wavelength of first pixel"),
            card("COEFF1", float(np.round(np.median(np.diff(loglam)), 8)) if n > 1 else 1e-4),
            card("VACUUM", True, "wavelengths are in vacuum"), card("BUNIT", "1E-17 erg/cm^2/s/Ang")]
    if np.isfinite(ra) and np.isfinite(dec):
        # Real files put the telescope boresight in RA/DEC; a mock has none, so both pairs hold the object.
        head += [card("RA", float(ra)), card("DEC", float(dec)), card("PLUG_RA", float(ra)), card("PLUG_DEC", float(dec))]
    if s.survey in SURVEYS:
        head.append(card("SURVEY", s.survey, "FNet Inspector: survey of this spectrum"))
    head.append(card("ORIGIN", "FNet Inspector write_spec_file"))
    zline_cols = [("PLATE", "J", np.zeros(0)), ("MJD", "J", np.zeros(0)), ("FIBERID", "J", np.zeros(0)),
                  ("LINENAME", "13A", np.zeros(0, "S13")), ("LINEWAVE", "D", np.zeros(0)), ("LINEZ", "E", np.zeros(0)),
                  ("LINEAREA", "E", np.zeros(0)), ("LINEEW", "E", np.zeros(0))]
    blob = b"".join([
        primary_hdu(head),
        table_hdu(coadd_cols, coadd_name, nrows=n),
        table_hdu(meta_rows, meta_name, [card(XTRA_KEYWORD, len(extra_cols), "last N columns: Spectrum.extra")], nrows=1),
        table_hdu(zline_cols, "SPZLINE" if coadd_name else None, nrows=0),
    ])
    Path(path).write_bytes(blob)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,67}$")


def _extra_column(original: str, value: Any) -> tuple[str, str, Any] | None:
    key = original.upper()
    if not _NAME.match(key):
        raise ValueError(f"extra key {original!r} cannot be a FITS column name (letters, digits, underscore)")
    if isinstance(value, (bool, np.bool_)):
        return key, "L", bool(value)
    if isinstance(value, (int, np.integer)):
        return key, "K", int(value)
    if isinstance(value, (float, np.floating)):
        return key, "D", float(value)
    if isinstance(value, (str, bytes, np.str_)):
        text = value.decode() if isinstance(value, bytes) else str(value)
        return key, f"{max(len(text.encode()), 1)}A", text.encode("ascii", "replace")
    return None  # arrays, dicts, ...: not a column
