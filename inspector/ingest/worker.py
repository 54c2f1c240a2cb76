"""The worker side of an ingest: read a chunk of files, validate, resample onto the FNet grid.

Workers only compute and send back small arrays (chunk x 4618 float32) and
row metadata; every failure becomes a rejection row, so a bad file never
stops an ingest. The parent (`inspector.ingest.run`) is the only writer.
What a file may cost a worker is bounded (`WorkerLimits`): memory by an
rlimit set here, time by the parent (`inspector.ingest.pool`), which sees
through `on_file` which file a worker is on when it has to stop it.
"""
from __future__ import annotations

import os
import re
import resource
import signal
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspector.ingest.summary import classify
from inspector.readers import read_any
from inspector.spectrum import Spectrum
from model.grid import FNET_NPIX, resample_one


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


@dataclass(frozen=True)
class WorkerLimits:
    """What one file may cost a worker before it is rejected instead of read.

    Real files take milliseconds and tens of MB (README, "The spectrum store"); the limits are
    there for the poison ones: a COADD declaring 5e7 rows, a gzip that unpacks to gigabytes.
    """
    seconds: float = 60.0  # read + validate + resample, per file
    memory_bytes: int = 2 * 2**30  # what a worker may allocate on top of what it starts with

    def memory_text(self) -> str:
        return f"{self.memory_bytes / 2**20:.0f} MB"


@dataclass
class ChunkResult:
    """What a worker sends back for one chunk: small arrays and row metadata, nothing else."""
    flux: np.ndarray  # k x 4618 float32
    ivar: np.ndarray
    rows: list[dict[str, Any]]  # base index columns (no `row`), one per stored spectrum
    rejected: list[dict[str, Any]]  # REJECTED_SCHEMA columns (no `when`)
    n_files: int
    seconds: float


def file_stat(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of a file, (-1, -1) if it cannot be stat-ed: a changed rejected file is retried."""
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
    return read_any(path)


def _exc_reason(exc: BaseException, limits: WorkerLimits | None) -> str:
    """A rejection reason for an exception raised while reading or resampling a file."""
    if isinstance(exc, MemoryError):
        limit = f"the worker's limit of {limits.memory_text()} (--worker-memory)" if limits else "the memory available"
        return f"out of memory: reading it needed more than {limit}"
    problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
    return str(problem) if type(exc).__name__ == "SpectrumFileError" else f"{type(exc).__name__}: {problem}"


def process_chunk(
    paths: Sequence[str],
    reader: Callable[[str], list[Spectrum]] | None = None,
    skip: dict[int, str] | None = None,
    on_file: Callable[[int], None] | None = None,
    limits: WorkerLimits | None = None,
) -> ChunkResult:
    """Read, validate and resample a chunk of files; every failure becomes a rejection row.

    `skip` maps positions in `paths` to a reason they are rejected without being read (a file
    that killed or stalled an earlier worker on this chunk); `on_file(i)` is called before file
    `i` is opened, so the parent knows which file a worker that dies or stalls was on.
    """
    t0 = time.perf_counter()
    read = reader or _read
    skip = skip or {}
    fluxes: list[np.ndarray] = []
    ivars: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for i_file, path in enumerate(paths):
        size, mtime = file_stat(path)

        def reject(reason: str, hdu: str | None = None, oid: str | None = None) -> None:
            rejected.append({"file": path, "reason": reason, "category": classify(reason),
                             "hdu_or_fiber": hdu, "object_id": oid, "size": size, "mtime_ns": mtime})

        if i_file in skip:
            reject(skip[i_file])
            continue
        if size < 0:
            reject("file not found")
            continue
        if on_file is not None:
            on_file(i_file)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                spectra = read(path)
            for w in caught:  # a many-spectrum file skipped an unusable fiber/row: record it too
                if issubclass(w.category, UserWarning) and type(w.message).__name__ == "SpectrumFileWarning":
                    reason = _warning_reason(str(w.message), path)
                    m = re.match(r"(?:row|fiber|fibre)\s+(\d+)", reason)
                    reject(reason, m.group(1) if m else None)
        except Exception as exc:  # SpectrumFileError, MemoryError and anything a broken file provokes
            reject(_exc_reason(exc, limits))
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
                problem, oid = _exc_reason(exc, limits), None
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


def _vm_data() -> int | None:
    """This process's data segment as the kernel counts it for RLIMIT_DATA (bytes), None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def limit_memory(extra_bytes: int) -> bool:
    """Cap this process's private memory at what it holds now plus `extra_bytes`; True if set.

    RLIMIT_DATA rather than RLIMIT_AS: since Linux 4.7 it counts every private writable mapping
    (the heap, numpy's buffers, a gzip's output) but not a read-only file mapping, so a large
    file that the reader maps is not refused for its size alone. Past the cap an allocation fails
    and Python raises MemoryError, which becomes the file's rejection.
    """
    base = _vm_data()
    if base is None:
        return False
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    want = base + int(extra_bytes)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (want, hard))
    except (ValueError, OSError):
        return False
    return True


def worker_init(parent_pid: int, memory_bytes: int | None = None) -> None:
    """Workers ignore Ctrl-C (the parent handles it), die with the parent, even on SIGKILL, and
    allocate at most `memory_bytes` more than they start with."""
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
    if memory_bytes is not None:
        limit_memory(memory_bytes)  # after the thread: its stack is part of the baseline
