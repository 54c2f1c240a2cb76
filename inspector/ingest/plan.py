"""Planning an ingest: which files to read, in which order, and which catalog to join."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inspector.readers import read_catalog

# File names that are spectra for sure (no header peek needed while walking a tree).
_SPECTRUM_PREFIXES = ("spec-", "spplate-", "coadd-", "spectra-", "spcframe-", "spframe-")
_FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts")
# Read order between formats: where one object comes in several files, the first read is kept, so
# spec-lite files (ivar, mask, the pipeline's class and z) go before spPlate / image / DESI files.
SPEC_LITE, OTHER = 0, 1


@dataclass
class IngestPlan:
    """What an ingest will read, decided before any worker starts."""
    files: list[str]  # absolute paths of spectrum files, in store order (spec-lite first, then other formats)
    catalog: Path | None = None  # joined on PLATE/MJD/FIBERID or TARGETID
    catalog_auto: bool = False  # found inside a source directory (mock survey) rather than given
    not_found: list[str] = field(default_factory=list)  # catalog rows whose spec file is missing
    ignored: list[str] = field(default_factory=list)  # catalog-like files met in a walk and not used


def _is_fits_name(name: str) -> bool:
    return name.lower().endswith(_FITS_SUFFIXES)


def _hdu1_columns(path: str | os.PathLike[str]) -> set[str] | None:
    """Upper-case column names of HDU1 when it is a binary table, else None (also on any failure).

    Only the first two headers are read (cheap), and any failure means "no
    table", so a broken spectrum file is left to the reader to reject.
    """
    try:
        from astropy.io import fits

        hdr = fits.getheader(path, ext=1)  # reads two headers, no data
        if str(hdr.get("XTENSION", "")).strip().upper() != "BINTABLE":
            return None
        return {str(hdr[k]).strip().upper() for k in hdr if k.startswith("TTYPE")}
    except Exception:
        return None


def _is_catalog(names: set[str] | None) -> bool:
    if names is None:
        return False
    keyed = {"PLATE", "MJD", "FIBERID"} <= names or "TARGETID" in names
    has_z = bool({"Z", "Z_VI", "Z_PIPE"} & names)
    spectral = bool({"FLUX", "LOGLAM", "WAVE", "WAVELENGTH", "IVAR"} & names)
    return keyed and has_z and not spectral


def looks_like_catalog(path: str | os.PathLike[str]) -> bool:
    """True for a DR16Q-like catalog: HDU1 a table with Z and object keys and no flux column."""
    return _is_catalog(_hdu1_columns(path))


def _rank(name: str, names: set[str] | None) -> int:
    """SPEC_LITE or OTHER: from the file name where it says, else from HDU1's columns (as readers.detect_format)."""
    lower = name.lower()
    if lower.startswith("spec-"):
        return SPEC_LITE
    if lower.startswith(_SPECTRUM_PREFIXES):
        return OTHER  # spPlate, DESI coadd/spectra, spCFrame...
    return SPEC_LITE if names is not None and {"FLUX", "LOGLAM"} <= names else OTHER


def _classify_file(p: Path) -> tuple[bool, int]:
    """(is a catalog, rank if a spectrum file); headers are peeked only for names that do not say."""
    if p.name.lower().startswith(_SPECTRUM_PREFIXES):
        return False, _rank(p.name, None)
    names = _hdu1_columns(p) if p.is_file() else None
    return _is_catalog(names), _rank(p.name, names)


def _walk(directory: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """([(spectrum file, rank)], catalog-like files) under `directory`, sorted by relative path."""
    spectra: list[tuple[str, int]] = []
    catalogs: list[str] = []
    found: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in names:
            if _is_fits_name(name) and not name.startswith("."):
                found.append(Path(root) / name)
    for p in sorted(found, key=lambda q: q.relative_to(directory).as_posix()):
        is_catalog, rank = _classify_file(p)
        if is_catalog:
            catalogs.append(str(p.resolve()))
        else:
            spectra.append((str(p.resolve()), rank))
    return spectra, catalogs


def sas_spec_path(root: Path, plate: int, mjd: int, fiberid: int) -> Path:
    """Where SDSS's SAS keeps a spec-lite file: ROOT/PPPP/spec-PPPP-MMMMM-FFFF.fits."""
    return root / f"{plate:04d}" / f"spec-{plate:04d}-{mjd:05d}-{fiberid:04d}.fits"


def _catalog_files(catalog: Path, spectra_root: Path | None) -> tuple[list[str], list[str]]:
    """(found spec files, expected-but-missing paths) for every row of a catalog, in catalog order."""
    root = spectra_root
    if root is None:
        root = catalog.parent / "spectra" if (catalog.parent / "spectra").is_dir() else catalog.parent
    cat = read_catalog(catalog)
    found: list[str] = []
    missing: list[str] = []
    for plate, mjd, fib in zip(cat["PLATE"].to_numpy(), cat["MJD"].to_numpy(), cat["FIBERID"].to_numpy()):
        try:
            ids = int(plate), int(mjd), int(fib)
        except (TypeError, ValueError):
            continue
        if min(ids) < 0:
            continue  # a row with no plate (DESI-only; read_catalog fills -1): nothing to locate
        p = sas_spec_path(root, *ids)
        if p.exists():
            found.append(str(p.resolve()))
        elif p.with_name(p.name + ".gz").exists():
            found.append(str(p.with_name(p.name + ".gz").resolve()))
        else:
            missing.append(str(p.resolve()))
    return found, missing


def plan_sources(
    sources: Sequence[str | os.PathLike[str]],
    catalog: str | os.PathLike[str] | None = None,
    spectra_root: str | os.PathLike[str] | None = None,
) -> IngestPlan:
    """Expand SOURCE arguments into an ordered, de-duplicated list of files to read.

    A directory is walked (sorted, so the order is the same on every run); a
    catalog-like FITS found in it becomes the join catalog when none is given
    (that is how a mock survey directory, `spectra/` + `DR16Q_mock.fits`, is
    ingested with its truth joined). A catalog given as a SOURCE is expanded
    into the SAS paths of its rows under `spectra_root`.

    Spec-lite files are planned before every other format (spPlate, image
    spectra, DESI files), each group in input order: the ingest keeps the
    first record of an object, and the spec-lite file is the better one
    (ivar, mask and the pipeline's labels; an spPlate subset may have none).
    """
    files: list[tuple[str, int]] = []
    not_found: list[str] = []
    found_catalogs: list[str] = []
    source_catalogs: list[str] = []
    root = Path(spectra_root) if spectra_root is not None else None
    for src in sources:
        p = Path(src)
        if p.is_dir():
            spectra, cats = _walk(p)
            files.extend(spectra)
            found_catalogs.extend(cats)
            continue
        is_catalog, rank = _classify_file(p)
        if is_catalog:
            source_catalogs.append(str(p.resolve()))
            fs, miss = _catalog_files(p.resolve(), root)
            files.extend((f, SPEC_LITE) for f in fs)
            not_found.extend(miss)
        else:
            files.append((str(p.resolve()), rank))  # a missing or broken file: the reader rejects it, with its reason
    rank_of = dict(files)  # a path has the same rank wherever it was met
    ordered = sorted(dict.fromkeys(f for f, _ in files), key=rank_of.__getitem__)  # stable: input order per rank
    plan = IngestPlan(files=ordered, not_found=list(dict.fromkeys(not_found)))
    if catalog is not None:
        plan.catalog = Path(catalog).resolve()
        plan.ignored = [c for c in found_catalogs if c != str(plan.catalog)]
    elif source_catalogs:
        plan.catalog = Path(source_catalogs[0])
        plan.ignored = [c for c in source_catalogs[1:] + found_catalogs if c != source_catalogs[0]]
    elif len(found_catalogs) == 1:
        plan.catalog, plan.catalog_auto = Path(found_catalogs[0]), True
    elif found_catalogs:
        raise ValueError(
            "several catalogs found in the sources; say which to join with --catalog: " + ", ".join(found_catalogs)
        )
    return plan
