"""The worker side of an ingest: read a chunk of files, validate, resample onto the FNet grid.

Workers only compute and send back small arrays (chunk x 4618 float32) and
row metadata; every failure becomes a rejection row, so a bad file never
stops an ingest. The parent (`inspector.ingest.run`) is the only writer.
"""
from __future__ import annotations

import os
import re
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


def process_chunk(paths: Sequence[str], reader: Callable[[str], list[Spectrum]] | None = None) -> ChunkResult:
    """Read, validate and resample a chunk of files; every failure becomes a rejection row."""
    t0 = time.perf_counter()
    read = reader or _read
    fluxes: list[np.ndarray] = []
    ivars: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for path in paths:
        size, mtime = file_stat(path)

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


def worker_init(parent_pid: int) -> None:
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
