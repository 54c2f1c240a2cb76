"""Planning an ingest: which files to read, in which order, and which catalog to join."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# File names that are spectra for sure (no header peek needed while walking a tree).
_SPECTRUM_PREFIXES = ("spec-", "spplate-", "coadd-", "spectra-", "spcframe-", "spframe-")
_FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts")


@dataclass
class IngestPlan:
    """What an ingest will read, decided before any worker starts."""

    files: list[str]  # absolute paths of spectrum files, in store order
    catalog: Path | None = None  # joined on PLATE/MJD/FIBERID or TARGETID
    catalog_auto: bool = False  # found inside a source directory (mock survey) rather than given
    not_found: list[str] = field(default_factory=list)  # catalog rows whose spec file is missing
    ignored: list[str] = field(default_factory=list)  # catalog-like files met in a walk and not used


def _is_fits_name(name: str) -> bool:
    return name.lower().endswith(_FITS_SUFFIXES)


def looks_like_catalog(path: str | os.PathLike[str]) -> bool:
    """True for a DR16Q-like catalog: HDU1 a table with Z and object keys and no flux column.

    Only the header of HDU1 is read (cheap), and any failure means "not a
    catalog", so a broken spectrum file is left to the reader to reject.
    """
    try:
        from astropy.io import fits

        hdr = fits.getheader(path, ext=1)  # reads two headers, no data
        if str(hdr.get("XTENSION", "")).strip().upper() != "BINTABLE":
            return False
        names = {str(hdr[k]).strip().upper() for k in hdr if k.startswith("TTYPE")}
    except Exception:
        return False
    keyed = {"PLATE", "MJD", "FIBERID"} <= names or "TARGETID" in names
    has_z = bool({"Z", "Z_VI", "Z_PIPE"} & names)
    spectral = bool({"FLUX", "LOGLAM", "WAVE", "WAVELENGTH", "IVAR"} & names)
    return keyed and has_z and not spectral


def _walk(directory: Path) -> tuple[list[str], list[str]]:
    """(spectrum files, catalog-like files) under `directory`, sorted by relative path."""
    spectra: list[str] = []
    catalogs: list[str] = []
    found: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in names:
            if _is_fits_name(name) and not name.startswith("."):
                found.append(Path(root) / name)
    for p in sorted(found, key=lambda q: q.relative_to(directory).as_posix()):
        if not p.name.lower().startswith(_SPECTRUM_PREFIXES) and looks_like_catalog(p):
            catalogs.append(str(p.resolve()))
        else:
            spectra.append(str(p.resolve()))
    return spectra, catalogs


def sas_spec_path(root: Path, plate: int, mjd: int, fiberid: int) -> Path:
    """Where SDSS's SAS keeps a spec-lite file: ROOT/PPPP/spec-PPPP-MMMMM-FFFF.fits."""
    return root / f"{plate:04d}" / f"spec-{plate:04d}-{mjd:05d}-{fiberid:04d}.fits"


def _catalog_files(catalog: Path, spectra_root: Path | None) -> tuple[list[str], list[str]]:
    """(found spec files, expected-but-missing paths) for every row of a catalog, in catalog order."""
    from inspector.readers import read_catalog

    root = spectra_root
    if root is None:
        root = catalog.parent / "spectra" if (catalog.parent / "spectra").is_dir() else catalog.parent
    cat = read_catalog(catalog)
    found: list[str] = []
    missing: list[str] = []
    for plate, mjd, fib in zip(cat["PLATE"].to_numpy(), cat["MJD"].to_numpy(), cat["FIBERID"].to_numpy()):
        try:
            p = sas_spec_path(root, int(plate), int(mjd), int(fib))
        except (TypeError, ValueError):
            continue  # a row with no plate (e.g. DESI-only): nothing to locate
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
    """
    files: list[str] = []
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
        elif p.is_file() and not p.name.lower().startswith(_SPECTRUM_PREFIXES) and looks_like_catalog(p):
            source_catalogs.append(str(p.resolve()))
            fs, miss = _catalog_files(p.resolve(), root)
            files.extend(fs)
            not_found.extend(miss)
        else:
            files.append(str(p.resolve()))  # a missing or broken file is rejected by the reader, with its reason
    seen: set[str] = set()
    ordered = [f for f in files if not (f in seen or seen.add(f))]  # type: ignore[func-returns-value]
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
