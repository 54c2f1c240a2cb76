"""Ingest: survey files -> validated, resampled rows of a spectrum store.

Why it is built this way:

* Workers only compute (read a chunk of files, validate, resample onto the
  FNet grid) and send back small arrays (chunk x 4618 float32); the parent is
  the only writer and commits chunks strictly in input order. That makes the
  store's row order deterministic, so an interrupted ingest that is rerun ends
  up byte-for-byte with the same rows as an uninterrupted one, and duplicate
  objects are decided the same way every time (the first in input order wins).
* At most `2 x workers` chunks are in flight, so memory does not grow with N
  (parent and workers hold a few chunks, never the survey).
* The commit protocol itself (arrays first, then an index part by atomic
  rename) lives in `inspector.store`; here we decide what a row is.
* A bad file never stops an ingest: every reason it is rejected is recorded in
  the store's rejected.parquet and summarised at the end.
"""
from __future__ import annotations

import collections
from concurrent.futures import BrokenExecutor
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from inspector.spectrum import Spectrum
from inspector.store import BASE_SCHEMA, DERIVED_SCHEMA, REJECTED_SCHEMA, StoreWriter
from model.grid import FNET_NPIX, resample_one

# File names that are spectra for sure (no header peek needed while walking a tree).
_SPECTRUM_PREFIXES = ("spec-", "spplate-", "coadd-", "spectra-", "spcframe-", "spframe-")
_FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts")
_QSO_CLASS_PERSON = (3, 30)


# --------------------------------------------------------------------------- sources


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


# --------------------------------------------------------------------------- validation


def classify(reason: str) -> str:
    """A short category for a rejection reason, for the summary's counts (order matters)."""
    r = reason.lower()
    has = lambda *keys: any(k in r for k in keys)  # noqa: E731
    if has("duplicate"):
        return "duplicate"
    if has("not found", "no such file"):
        return "not-found"
    if has("truncat"):
        return "truncated"
    if has("not a fits", "non-fits", "not fits"):
        return "not-fits"
    if re.search(r"\(hdus 0:[^,)]*\)", r) or has("missing hdu", "has only 1 hdu"):
        return "missing-hdu"  # a FITS file with a primary HDU and nothing else
    if has("unrecognised", "unrecognized"):
        return "unrecognised-layout"
    if has("empty", "0 pixels", "no pixels"):
        return "empty"
    if has("monoton", "increasing"):
        return "non-monotonic"
    if has("ivar") and has("zero", "no usable", "no pixel"):
        return "zero-ivar"
    if has("flux") and has("nan", "inf", "finite"):
        return "non-finite-flux"
    if has("nan", "inf", "finite"):
        return "non-finite"
    if has("column"):
        return "missing-column"
    if has("hdu", "extension"):
        return "missing-hdu"
    if has("fnet grid"):
        return "off-grid"
    return "unreadable"


def validate(s: Spectrum) -> str | None:
    """Why this spectrum cannot be stored, or None. Independent of the reader's own checks.

    NaN/inf flux is tolerated only where ivar is 0 (the pipeline says "no
    information" there and the resampler skips it); anywhere else it means a
    corrupt file, and the spectrum is rejected.
    """
    wave, flux, ivar = (np.asarray(a) for a in (s.wave, s.flux, s.ivar))
    if wave.size == 0 or flux.size == 0:
        return "empty arrays (0 pixels)"
    if not (wave.shape == flux.shape == ivar.shape) or wave.ndim != 1:
        return f"array shapes differ: wavelength {wave.shape}, flux {flux.shape}, ivar {ivar.shape}"
    if not np.all(np.isfinite(wave)) or np.any(wave <= 0):
        return "wavelength has NaN/inf or non-positive values"
    d = np.diff(wave)
    if np.any(d <= 0):
        return f"wavelength not strictly increasing (non-monotonic at pixel {int(np.argmax(d <= 0)) + 1})"
    if not np.all(np.isfinite(ivar)):
        return f"ivar has {int((~np.isfinite(ivar)).sum())} NaN/inf values"
    if not np.any(ivar > 0):
        return "all-zero ivar (no pixel has information)"
    bad = ~np.isfinite(flux) & (ivar > 0)
    if bad.any():
        return f"flux has {int(bad.sum())} NaN/inf values at pixels with ivar > 0"
    return None


# --------------------------------------------------------------------------- worker side


@dataclass
class ChunkResult:
    """What a worker sends back for one chunk: small arrays and row metadata, nothing else."""

    flux: np.ndarray  # k x 4618 float32
    ivar: np.ndarray
    rows: list[dict[str, Any]]  # base index columns (no `row`), one per stored spectrum
    rejected: list[dict[str, Any]]  # REJECTED_SCHEMA columns (no `when`)
    n_files: int
    seconds: float


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
        return int(st.st_size), int(st.st_mtime_ns)
    except OSError:
        return -1, -1


def _hdu_or_fiber(s: Spectrum, k: int, n: int) -> str:
    if "#" in s.source:
        return s.source.rsplit("#", 1)[1]
    return str(k) if n > 1 else "1"


def _opt_int(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _opt_float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _warning_reason(message: str, path: str) -> str:
    return message[len(path) + 2 :] if message.startswith(path + ": ") else message


def _read(path: str) -> list[Spectrum]:
    from inspector.readers import read_any

    return read_any(path)


def process_chunk(paths: Sequence[str], reader: Callable[[str], list[Spectrum]] | None = None) -> ChunkResult:
    """Read, validate and resample a chunk of files; every failure becomes a rejection row."""
    t0 = time.perf_counter()
    read = reader or _read
    fluxes: list[np.ndarray] = []
    ivars: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for path in paths:
        size, mtime = _stat(path)

        def reject(reason: str, hdu: str | None = None, oid: str | None = None) -> None:
            rejected.append({"file": path, "reason": reason, "category": classify(reason),
                             "hdu_or_fiber": hdu, "object_id": oid, "size": size, "mtime_ns": mtime})

        if size < 0:
            reject("file not found")
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                spectra = read(path)
            for w in caught:  # a many-spectrum file skipped an unusable fiber/row: record it too
                if issubclass(w.category, UserWarning) and type(w.message).__name__ == "SpectrumFileWarning":
                    reason = _warning_reason(str(w.message), path)
                    m = re.match(r"(?:row|fiber|fibre)\s+(\d+)", reason)
                    reject(reason, m.group(1) if m else None)
        except Exception as exc:  # SpectrumFileError and anything a broken file provokes
            problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
            reject(str(problem) if type(exc).__name__ == "SpectrumFileError" else f"{type(exc).__name__}: {problem}")
            continue
        if not spectra:
            reject("empty: the file holds no spectrum")
            continue
        for k, s in enumerate(spectra):
            hdu = _hdu_or_fiber(s, k, len(spectra))
            try:
                oid = s.object_id
                problem = validate(s)
                if problem is None:
                    f, iv = resample_one(np.log10(np.asarray(s.wave, dtype=np.float64)), s.flux, s.ivar, s.and_mask)
                    n_good = int(np.count_nonzero(iv > 0))
                    if n_good == 0:
                        problem = "no usable pixel on the FNet grid (3567-10325 A)"
            except Exception as exc:
                problem, oid = f"{type(exc).__name__}: {exc}", None
            if problem is not None:
                reject(problem, hdu, oid)
                continue
            fluxes.append(f)
            ivars.append(iv)
            wave = np.asarray(s.wave)
            rows.append({
                "object_id": oid, "file": path, "hdu_or_fiber": hdu, "file_index": k,
                "survey": s.survey, "plate": _opt_int(s.plate), "mjd": _opt_int(s.mjd),
                "fiberid": _opt_int(s.fiberid), "targetid": _opt_int(s.targetid),
                "ra": _opt_float(s.ra), "dec": _opt_float(s.dec),
                "spec_class": None if s.spec_class is None else str(s.spec_class).strip(),
                "z_file": _opt_float(s.z), "zwarning": _opt_int(s.zwarning),
                "sn_median_all": _opt_float(s.sn_median_all), "n_pix_native": int(wave.size),
                "lam_min": float(wave[0]), "lam_max": float(wave[-1]), "n_pix_grid_good": n_good,
            })
    shape = (len(rows), FNET_NPIX)
    return ChunkResult(
        flux=np.stack(fluxes) if fluxes else np.zeros(shape, np.float32),
        ivar=np.stack(ivars) if ivars else np.zeros(shape, np.float32),
        rows=rows, rejected=rejected, n_files=len(paths), seconds=time.perf_counter() - t0,
    )


def _worker_init(parent_pid: int) -> None:
    """Workers ignore Ctrl-C (the parent handles it) and die with the parent, even on SIGKILL."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # Linux: the kernel kills us when the parent dies
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass

    def watch() -> None:  # elsewhere (and as a backstop): poll
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


# --------------------------------------------------------------------------- parent side: catalog join


class CatalogJoin:
    """Joins store rows to catalog rows on PLATE/MJD/FIBERID (or TARGETID), vectorised.

    Keys are packed into one int64 so a 750k-row catalog costs a pandas Index,
    not a dict of tuples.
    """

    def __init__(self, catalog: pd.DataFrame) -> None:
        cat = catalog.reset_index(drop=True)
        reserved = {f.name for f in BASE_SCHEMA} | {f.name for f in DERIVED_SCHEMA}
        cat = cat.rename(columns={c: f"cat_{c}" for c in cat.columns if c in reserved})
        self.table = pa.Table.from_pandas(cat, preserve_index=False)
        self.columns = list(cat.columns)
        self._by_pmf = None
        if {"PLATE", "MJD", "FIBERID"} <= set(cat.columns):
            keys = self._pack(cat["PLATE"], cat["MJD"], cat["FIBERID"])
            self._by_pmf = pd.Index(keys)[~pd.Index(keys).duplicated()]
            self._pmf_pos = pd.Series(np.arange(len(keys)))[~pd.Index(keys).duplicated()].to_numpy()
        self._by_tid = None
        if "TARGETID" in cat.columns:
            tid = pd.to_numeric(cat["TARGETID"], errors="coerce").fillna(-1).astype(np.int64).to_numpy()
            dup = pd.Index(tid).duplicated() | (tid < 0)
            self._by_tid = pd.Index(tid[~dup])
            self._tid_pos = np.arange(len(tid))[~dup]

    @staticmethod
    def _pack(plate: Any, mjd: Any, fiber: Any) -> np.ndarray:
        p = pd.to_numeric(pd.Series(plate), errors="coerce").fillna(-1).astype(np.int64).to_numpy()
        m = pd.to_numeric(pd.Series(mjd), errors="coerce").fillna(-1).astype(np.int64).to_numpy()
        f = pd.to_numeric(pd.Series(fiber), errors="coerce").fillna(-1).astype(np.int64).to_numpy()
        key = (p * 100_000 + m) * 10_000 + f
        return np.where((p < 0) | (m < 0) | (f < 0), -1, key)

    def positions(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Catalog row of each store row, -1 where there is none."""
        pos = np.full(len(rows), -1, dtype=np.int64)
        if not rows:
            return pos
        if self._by_pmf is not None:
            keys = self._pack([r["plate"] for r in rows], [r["mjd"] for r in rows], [r["fiberid"] for r in rows])
            hit = self._by_pmf.get_indexer(keys)
            ok = (hit >= 0) & (keys >= 0)
            pos[ok] = self._pmf_pos[hit[ok]]
        if self._by_tid is not None:
            tid = np.array([r["targetid"] if r["targetid"] is not None else -1 for r in rows], dtype=np.int64)
            hit = self._by_tid.get_indexer(tid)
            ok = (pos < 0) & (hit >= 0) & (tid >= 0)
            pos[ok] = self._tid_pos[hit[ok]]
        return pos

    def take(self, pos: np.ndarray) -> pa.Table:
        idx = pa.array(pos, mask=pos < 0, type=pa.int64())
        return self.table.take(idx)


def _col(table: pa.Table | None, name: str, n: int) -> np.ndarray | None:
    if table is None or name not in table.column_names:
        return None
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64) if n else np.zeros(0)


def derive_labels(rows: list[dict[str, Any]], cat: pa.Table | None, matched: np.ndarray) -> pa.Table:
    """The training columns `z` and `is_qso` (and where each came from).

    z: Z_VI where inspected (> -0.5), else the catalog's Z, else the file's own z.
    is_qso: CLASS_PERSON in {3 QSO, 30 BAL QSO} where a person classified it
    (CLASS_PERSON > 0), else the file's CLASS == "QSO". Where neither is
    known (e.g. a DESI coadd without a REDSHIFTS HDU) is_qso is False and
    class_source null, so training can leave those rows out.
    """
    n = len(rows)
    z = np.array([np.nan if r["z_file"] is None else r["z_file"] for r in rows], dtype=np.float64)
    z_src = np.array([None if np.isnan(v) else "z_file" for v in z], dtype=object)
    for name in ("Z", "Z_VI"):  # later wins
        v = _col(cat, name, n)
        if v is not None:
            ok = matched & np.isfinite(v) & (v > -0.5)
            z = np.where(ok, v, z)
            z_src[ok] = name
    spec_class = [r["spec_class"] for r in rows]
    is_qso = np.array([c is not None and c.upper() == "QSO" for c in spec_class], dtype=bool)
    c_src = np.array([None if c is None or c == "" else "spec_class" for c in spec_class], dtype=object)
    cp = _col(cat, "CLASS_PERSON", n)
    if cp is not None:
        known = matched & np.isfinite(cp) & (cp > 0)
        is_qso = np.where(known, np.isin(cp, _QSO_CLASS_PERSON), is_qso)
        c_src[known] = "CLASS_PERSON"
    z_out = pa.array(z, mask=np.isnan(z), type=pa.float64())
    return pa.Table.from_arrays(
        [pa.array(matched, pa.bool_()), z_out, pa.array(list(z_src), pa.string()),
         pa.array(is_qso, pa.bool_()), pa.array(list(c_src), pa.string())],
        schema=DERIVED_SCHEMA,
    )


def build_index(rows: list[dict[str, Any]], join: CatalogJoin | None) -> pa.Table:
    """Index rows (without `row`, which the store assigns) with catalog and derived columns."""
    base_schema = pa.schema([f for f in BASE_SCHEMA if f.name != "row"])
    base = pa.Table.from_pylist(rows, schema=base_schema) if rows else base_schema.empty_table()
    cat = None
    matched = np.zeros(len(rows), dtype=bool)
    if join is not None:
        pos = join.positions(rows)
        matched = pos >= 0
        cat = join.take(pos)
    derived = derive_labels(rows, cat, matched)
    cols, names = list(base.columns), list(base.column_names)
    if cat is not None:
        cols += list(cat.columns)
        names += list(cat.column_names)
    cols += list(derived.columns)
    names += list(derived.column_names)
    return pa.Table.from_arrays(cols, names=names)


# --------------------------------------------------------------------------- the ingest


@dataclass
class IngestReport:
    """What one ingest run did; `format_summary` turns it into the end-of-run text."""

    store: Path
    n_files: int = 0  # files named by the sources
    n_skipped: int = 0  # already stored (or rejected and unchanged) by an earlier run
    n_read: int = 0  # files read this run
    n_stored: int = 0  # spectra stored this run
    n_rejected: int = 0  # rejections this run
    n_total: int = 0  # rows in the store afterwards
    by_category: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), first few
    seconds: float = 0.0
    interrupted: bool = False
    catalog: str | None = None
    ignored: list[str] = field(default_factory=list)

    @property
    def spectra_per_s(self) -> float:
        return self.n_stored / self.seconds if self.seconds > 0 else 0.0


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _chunks(items: Sequence[str], k: int) -> Iterable[list[str]]:
    for i in range(0, len(items), k):
        yield list(items[i : i + k])


def _pending(files: list[str], writer: StoreWriter) -> list[str]:
    """Files still to read: not stored yet, and not rejected before unless changed since."""
    stored = writer.state.stored(files)
    out = []
    for f, done in zip(files, stored):
        if done:
            continue
        prev = writer.state.rejected_files.get(f)
        if prev is None or _stat(f) != (prev[0], prev[1]):  # rejected before: retry only if the file changed
            out.append(f)
    return out


def _dedupe(res: ChunkResult, writer: StoreWriter) -> None:
    """Turn rows whose object is already stored (or earlier in this chunk) into rejections."""
    keep: list[int] = []
    seen: dict[str, str] = {}
    for i, r in enumerate(res.rows):
        oid = r["object_id"]
        first = seen.get(oid)
        if first is None and oid in writer.state.object_ids:
            first = writer.file_of_row(writer.state.object_ids[oid])
        if first is None:
            seen[oid] = r["file"]
            keep.append(i)
            continue
        size, mtime = _stat(r["file"])
        res.rejected.append({
            "file": r["file"], "reason": f"duplicate of object {oid}, already stored from {first}",
            "category": "duplicate", "hdu_or_fiber": r["hdu_or_fiber"], "object_id": oid,
            "size": size, "mtime_ns": mtime,
        })
    if len(keep) != len(res.rows):
        res.rows = [res.rows[i] for i in keep]
        res.flux = res.flux[keep]
        res.ivar = res.ivar[keep]


def _rejected_table(items: list[dict[str, Any]]) -> pa.Table:
    now = pd.Timestamp.now(tz="UTC").floor("us")
    for it in items:
        it.setdefault("when", now)
    return pa.Table.from_pylist(items, schema=REJECTED_SCHEMA)


def ingest(
    sources: Sequence[str | os.PathLike[str]],
    store: str | os.PathLike[str],
    catalog: str | os.PathLike[str] | None = None,
    spectra_root: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    chunk_size: int = 64,
    progress: bool = True,
    fsync: bool = True,
    reader: Callable[[str], list[Spectrum]] | None = None,
) -> IngestReport:
    """Ingest SOURCES into the store at `store`, resuming or appending if it exists.

    Returns a report; a KeyboardInterrupt leaves a consistent store (the same
    call resumes it) and a report with `interrupted=True`.
    """
    import inspector

    t_start = time.perf_counter()
    workers = default_workers() if workers is None else max(1, int(workers))
    chunk_size = max(1, int(chunk_size))
    report = IngestReport(store=Path(store))
    plan = plan_sources(sources, catalog, spectra_root)
    report.catalog = str(plan.catalog) if plan.catalog else None
    report.ignored = plan.ignored
    join = None
    if plan.catalog is not None:
        from inspector.readers import read_catalog

        join = CatalogJoin(read_catalog(plan.catalog))

    with StoreWriter(store, fsync=fsync) as writer:
        all_files = plan.files + plan.not_found
        report.n_files = len(all_files)
        missing = set(plan.not_found)
        pending = _pending(all_files, writer)
        report.n_skipped = report.n_files - len(pending)
        writer.open_arrays(writer.state.n_rows + sum(1 for f in pending if f not in missing))
        writer.meta.setdefault("sources", [])
        for s in sources:
            if str(Path(s).resolve()) not in writer.meta["sources"]:
                writer.meta["sources"].append(str(Path(s).resolve()))
        if plan.catalog is not None:
            writer.meta["catalog"] = str(plan.catalog)
        writer.meta.update({"state": "ingesting", "software": _versions(inspector.__version__)})
        writer.write_meta()

        bar = _progress(len(pending), progress)
        pool = None
        if workers > 1 and len(pending) > chunk_size:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # fork: workers start in milliseconds and inherit the imports; a dead worker
            # (OOM-killed, segfault) raises BrokenProcessPool instead of hanging the ingest
            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),))

        def results() -> Iterable[ChunkResult]:
            chunks = _chunks(pending, chunk_size)
            if pool is None:
                for c in chunks:
                    yield process_chunk(c, reader)
                return
            window: collections.deque[Any] = collections.deque()  # bounded: memory flat in N
            for c in chunks:
                window.append(pool.submit(process_chunk, c, reader))
                if len(window) >= 2 * workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()

        t_work = time.perf_counter()
        try:
            for res in results():
                _dedupe(res, writer)
                index = build_index(res.rows, join)
                rej = _rejected_table(res.rejected)
                writer.commit(res.flux, res.ivar, index, rej)
                report.n_read += res.n_files
                report.n_stored += len(res.rows)
                report.n_rejected += len(res.rejected)
                for r in res.rejected:
                    report.by_category[r["category"]] = report.by_category.get(r["category"], 0) + 1
                    if len(report.examples) < 10:
                        report.examples.append((r["file"], r["reason"]))
                if bar is not None:
                    bar.update(res.n_files)
                    el = time.perf_counter() - t_work
                    bar.set_postfix_str(f"{report.n_stored / el:.0f} spectra/s, {report.n_rejected} rejected")
        except KeyboardInterrupt:
            report.interrupted = True
        except BrokenExecutor as exc:
            raise RuntimeError(
                f"a worker process died ({exc}); {writer.state.n_rows} spectra are safely stored: "
                "rerun the same command to resume (with fewer --workers if memory ran out)"
            ) from None
        finally:
            if pool is not None:
                _stop(pool)
            if bar is not None:
                bar.close()
        report.seconds = time.perf_counter() - t_work
        if not report.interrupted:
            runs = writer.meta.setdefault("runs", [])
            runs.append({
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files_read": report.n_read, "stored": report.n_stored, "rejected": report.n_rejected,
                "seconds": round(report.seconds, 3), "spectra_per_s": round(report.spectra_per_s, 1),
                "workers": workers, "chunk_size": chunk_size,
            })
            writer.finalize({})
        report.n_total = writer.state.n_rows
    report.seconds = report.seconds or (time.perf_counter() - t_start)
    return report


def _stop(pool: Any) -> None:
    """Stop workers now (Ctrl-C, error) or after the last chunk: nothing they hold is needed."""
    for proc in list(getattr(pool, "_processes", {}).values()):  # private, but the only way to not wait
        if proc.is_alive():
            proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _versions(version: str) -> dict[str, str]:
    import astropy

    return {"fnet-inspector": version, "numpy": np.__version__, "pyarrow": pa.__version__,
            "astropy": astropy.__version__, "python": sys.version.split()[0]}


def _progress(total: int, enabled: bool) -> Any:
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="ingest", dynamic_ncols=True, file=sys.stderr)


def format_summary(report: IngestReport, max_examples: int = 5) -> str:
    """The end-of-run text: what was stored, what was rejected and why."""
    lines = []
    state = "INTERRUPTED (rerun the same command to resume)" if report.interrupted else "done"
    lines.append(
        f"ingest {state}: {report.n_stored} spectra stored, {report.n_rejected} rejected, "
        f"{report.n_skipped} of {report.n_files} files already done; store {report.store} now holds "
        f"{report.n_total} spectra"
    )
    if report.n_stored:
        lines.append(f"  {report.spectra_per_s:.0f} spectra/s ({report.seconds:.1f} s)")
    if report.catalog:
        lines.append(f"  catalog joined: {report.catalog}")
    for c in report.ignored:
        lines.append(f"  catalog-like file not used (give it with --catalog to join it): {c}")
    if report.by_category:
        lines.append("  rejected by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(report.by_category.items())))
        for f, r in report.examples[:max_examples]:
            lines.append(f"    {f}: {r}")
        if report.n_rejected > max_examples:
            lines.append(f"    ... all {report.n_rejected} with reasons in {report.store / 'rejected.parquet'}")
    return "\n".join(lines)
