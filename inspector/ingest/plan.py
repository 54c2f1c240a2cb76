"""Planning an ingest: which files to read, in which order, which are refused, and which catalog to join.

Every path is stat-ed first (`inspector.ingest.paths`): FIFOs, devices, symlink loops and
oversized files are refused here, before any worker opens them, and recorded as rejections.
A file is the join catalog only when it looks like one (`inspector.ingest.catalog_file`) and
the user did not say otherwise (`catalog=` names it, `no_catalog=True` joins none).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inspector.ingest.catalog_file import FitsPeek, is_spec_lite, peek
from inspector.ingest.catalog_file import looks_like_catalog as _catalog_peek
from inspector.ingest.paths import MAX_FILE_BYTES, Checked, check_file
from inspector.readers import SpectrumFileError, read_catalog

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
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, why): never given to a worker


def _is_fits_name(name: str) -> bool:
    return name.lower().endswith(_FITS_SUFFIXES)


def looks_like_catalog(path: str | os.PathLike[str]) -> bool:
    """True for a DR16Q-like catalog (`inspector.ingest.catalog_file.looks_like_catalog`): a regular
    file whose HDU 1 is a table of objects with a redshift, and not a piece of a spectrum file."""
    return check_file(path).problem is None and _catalog_peek(peek(path))


def _rank(name: str, p: FitsPeek | None) -> int:
    """SPEC_LITE or OTHER: from the file name where it says, else from HDU1's columns (as readers.detect_format)."""
    lower = name.lower()
    if lower.startswith("spec-"):
        return SPEC_LITE
    if lower.startswith(_SPECTRUM_PREFIXES):
        return OTHER  # spPlate, DESI coadd/spectra, spCFrame...
    return SPEC_LITE if is_spec_lite(p) else OTHER


def _classify_file(path: str) -> tuple[bool, int]:
    """(is a catalog, rank if a spectrum file) of a checked regular file; headers are peeked only for
    names that do not say."""
    name = os.path.basename(path)
    if name.lower().startswith(_SPECTRUM_PREFIXES):
        return False, _rank(name, None)
    p = peek(path) if os.path.isfile(path) else None
    return _catalog_peek(p), _rank(name, p)


class _Collector:
    """Spectrum files, catalogs and refusals, in the order met."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.spectra: list[tuple[str, int]] = []
        self.catalogs: list[str] = []
        self.refused: list[tuple[str, str]] = []

    def check(self, path: str | os.PathLike[str]) -> Checked:
        c = check_file(path, self.max_bytes)
        if c.problem is not None:
            self.refused.append((c.path, c.problem))
        return c

    def add(self, path: str | os.PathLike[str], catalogs_allowed: bool = True) -> bool:
        """Plan one file; True when it is a catalog (then not a spectrum file)."""
        c = self.check(path)
        if c.problem is not None:
            return False
        is_catalog, rank = _classify_file(c.path)
        if is_catalog and catalogs_allowed:
            self.catalogs.append(c.path)
            return True
        self.spectra.append((c.path, rank))
        return False


def _walk(directory: Path, out: _Collector) -> None:
    """Every FITS-named entry under `directory`, sorted by relative path, into `out`."""
    found: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in names:
            if _is_fits_name(name) and not name.startswith("."):
                found.append(Path(root) / name)
    for p in sorted(found, key=lambda q: q.relative_to(directory).as_posix()):
        out.add(p)


def sas_spec_path(root: Path, plate: int, mjd: int, fiberid: int) -> Path:
    """Where SDSS's SAS keeps a spec-lite file: ROOT/PPPP/spec-PPPP-MMMMM-FFFF.fits."""
    return root / f"{plate:04d}" / f"spec-{plate:04d}-{mjd:05d}-{fiberid:04d}.fits"


def _catalog_files(catalog: Path, spectra_root: Path | None, out: _Collector) -> tuple[list[str], list[str]]:
    """(found spec files, expected-but-missing paths) for every row of a catalog, in catalog order;
    a path there that is not a plain file goes to `out.refused`."""
    root = spectra_root
    if root is None:
        root = catalog.parent / "spectra" if (catalog.parent / "spectra").is_dir() else catalog.parent
    try:
        cat = read_catalog(catalog)
    except SpectrumFileError as err:  # looked like a catalog, is not one inside: the user must hear it
        raise ValueError(f"catalog {err}") from None
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
        for q in (p, p.with_name(p.name + ".gz")):
            if os.path.lexists(q):
                c = out.check(q)
                if c.problem is None:
                    found.append(c.path)
                break
        else:
            missing.append(str(p.resolve()))
    return found, missing


def plan_sources(
    sources: Sequence[str | os.PathLike[str]],
    catalog: str | os.PathLike[str] | None = None,
    spectra_root: str | os.PathLike[str] | None = None,
    *,
    no_catalog: bool = False,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> IngestPlan:
    """Expand SOURCE arguments into an ordered, de-duplicated list of files to read.

    A directory is walked (sorted, so the order is the same on every run); a
    catalog-like FITS found in it becomes the join catalog when none is given
    (that is how a mock survey directory, `spectra/` + `DR16Q_mock.fits`, is
    ingested with its truth joined). A catalog given as a SOURCE is expanded
    into the SAS paths of its rows under `spectra_root`. `catalog` names the
    join catalog (and is then never read as a spectrum file); `no_catalog`
    joins none. Paths that are not regular files are in `refused`.

    Spec-lite files are planned before every other format (spPlate, image
    spectra, DESI files), each group in input order: the ingest keeps the
    first record of an object, and the spec-lite file is the better one
    (ivar, mask and the pipeline's labels; an spPlate subset may have none).
    """
    if catalog is not None and no_catalog:
        raise ValueError("--catalog and --no-catalog contradict each other: give one")
    chosen = None
    if catalog is not None:
        c = check_file(catalog, max_bytes=2**62)  # the user named it: no size limit, but it must be a file
        if c.problem is not None or not os.path.isfile(c.path):
            raise ValueError(f"catalog {c.path}: {c.problem or 'file not found'}")
        chosen = c.path
    out = _Collector(max_file_bytes)
    not_found: list[str] = []
    source_catalogs: list[str] = []
    root = Path(spectra_root) if spectra_root is not None else None
    for src in sources:
        p = Path(src)
        if p.is_dir():
            _walk(p, out)
            continue
        n_before = len(out.catalogs)
        if out.add(p):
            source_catalogs.append(out.catalogs.pop(n_before))
            fs, miss = _catalog_files(Path(source_catalogs[-1]), root, out)
            out.spectra.extend((f, SPEC_LITE) for f in fs)
            not_found.extend(miss)
    spectra = [(f, r) for f, r in out.spectra if f != chosen]  # the named catalog is not a spectrum file
    rank_of = dict(spectra)  # a path has the same rank wherever it was met
    ordered = sorted(dict.fromkeys(f for f, _ in spectra), key=rank_of.__getitem__)  # stable: input order per rank
    refused = list(dict(out.refused).items())
    plan = IngestPlan(files=ordered, not_found=list(dict.fromkeys(not_found)), refused=refused)
    found = list(dict.fromkeys(out.catalogs))
    if chosen is not None:
        plan.catalog = Path(chosen)
        plan.ignored = [c for c in found if c != chosen]
    elif no_catalog:
        plan.ignored = found
    elif source_catalogs:
        plan.catalog = Path(source_catalogs[0])
        plan.ignored = [c for c in dict.fromkeys(source_catalogs[1:] + found) if c != source_catalogs[0]]
    elif len(found) == 1:
        plan.catalog, plan.catalog_auto = Path(found[0]), True
    elif found:
        raise ValueError(
            "several catalogs found in the sources: " + ", ".join(found)
            + "; name the one to join with --catalog PATH, or join none with --no-catalog"
        )
    return plan
