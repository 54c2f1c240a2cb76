"""Benchmark `inspector ingest`: spectra per second and peak memory, at two survey sizes.

    python bench/ingest.py                       # make (or reuse) a 5,000-spectrum mock survey, ingest 1000 and 5000
    python bench/ingest.py --survey DIR          # an existing mock survey or any directory of spec files
    python bench/ingest.py --breakdown 300       # also: where the time goes per spectrum (one process)
    python bench/ingest.py --multiply 4          # also: 20,000 rows (each file read as 4 spectra)

Each size is ingested by a fresh child process into a fresh store, so the peak
RSS it reports is that size's alone: the parent (the process that owns the
store) from RUSAGE_SELF and the largest worker from RUSAGE_CHILDREN. Equal
peaks at 1000 and 5000 spectra show memory flat in N. No extra dependencies.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _spec_files(survey: Path) -> list[str]:
    from inspector.ingest import plan_sources

    return plan_sources([survey]).files


def _catalog(survey: Path) -> str | None:
    from inspector.ingest import plan_sources

    cat = plan_sources([survey]).catalog
    return str(cat) if cat else None


def make_or_reuse(survey: Path | None, n: int, seed: int) -> Path:
    """The survey to ingest: the given one, or a cached mock of n spectra under the temp dir."""
    if survey is not None:
        return survey
    out = Path(tempfile.gettempdir()) / f"fnet-bench-mock-{n}-s{seed}"
    done = out / ".complete"
    if not done.exists():
        from inspector.mock import make_survey

        if out.exists():
            shutil.rmtree(out)
        t0 = time.perf_counter()
        make_survey(out, n, seed)
        done.write_text("ok\n")
        print(f"made mock survey of {n} spectra in {time.perf_counter() - t0:.1f} s: {out}", file=sys.stderr)
    return out


_MULTIPLY = 1


def _multiplied(path: str) -> list:
    """Each file read as _MULTIPLY distinct spectra (fiber ids shifted): more rows than files on disk,
    to show memory flat beyond the mock's size. Every row is still a real read + resample."""
    from inspector.readers import read_any
    from inspector.spectrum import Spectrum

    out = []
    for s in read_any(path):
        for k in range(_MULTIPLY):
            fib = None if s.fiberid is None else s.fiberid + 10000 * k
            out.append(Spectrum(**{**s.__dict__, "fiberid": fib, "source": f"{path}#{k}"}))
    return out


def run_one(files: list[str], catalog: str | None, workers: int | None, chunk_size: int, multiply: int = 1) -> dict:
    """Ingest `files` into a fresh temporary store, in this process; report rate and peak memory."""
    global _MULTIPLY
    from inspector.ingest import ingest

    _MULTIPLY = multiply
    with tempfile.TemporaryDirectory(prefix="fnet-bench-store-") as tmp:
        t0 = time.perf_counter()
        rep = ingest(files, Path(tmp) / "store", catalog=catalog, workers=workers,
                     chunk_size=max(1, chunk_size // multiply), progress=False,
                     reader=_multiplied if multiply > 1 else None)
        wall = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (Path(tmp) / "store").iterdir() if p.is_file())
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    self_kb, child_kb = me.ru_maxrss, kids.ru_maxrss
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime  # whole process incl. start-up
    return {
        "n_files": len(files), "stored": rep.n_stored, "rejected": rep.n_rejected,
        "seconds_ingest_loop": round(rep.seconds, 2), "seconds_wall": round(wall, 2),
        "spectra_per_s": round(rep.n_stored / rep.seconds, 1) if rep.seconds else None,
        "spectra_per_s_wall": round(rep.n_stored / wall, 1),
        "peak_rss_parent_mb": round(self_kb / 1024, 1), "peak_rss_worker_mb": round(child_kb / 1024, 1),
        "store_mb": round(size / 2**20, 1),
        "cpu_ms_per_spectrum": round(cpu / max(rep.n_stored, 1) * 1e3, 3),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def breakdown(files: list[str], catalog: str | None, n: int) -> dict[str, float]:
    """Milliseconds per spectrum for each step, single process: read, validate, resample, index+commit."""
    import numpy as np

    from inspector.ingest import CatalogJoin, build_index, validate
    from inspector.readers import read_any
    from inspector.store import StoreWriter
    from model.grid import resample_one

    t = {"read_any (FITS open + columns)": 0.0, "validate": 0.0, "resample_one": 0.0}
    rows, fl = [], []
    for path in files[:n]:
        t0 = time.perf_counter()
        specs = read_any(path)
        t["read_any (FITS open + columns)"] += time.perf_counter() - t0
        for s in specs:
            t1 = time.perf_counter()
            validate(s)
            t2 = time.perf_counter()
            f, iv = resample_one(np.log10(s.wave), s.flux, s.ivar, s.and_mask)
            t["validate"] += t2 - t1
            t["resample_one"] += time.perf_counter() - t2
            fl.append((f, iv))
            rows.append({"object_id": s.object_id, "file": path, "hdu_or_fiber": "1", "file_index": 0,
                         "survey": s.survey, "plate": s.plate, "mjd": s.mjd, "fiberid": s.fiberid,
                         "targetid": s.targetid, "ra": s.ra, "dec": s.dec, "spec_class": s.spec_class,
                         "z_file": s.z, "zwarning": s.zwarning, "sn_median_all": s.sn_median_all,
                         "n_pix_native": s.n_pix, "lam_min": float(s.wave[0]), "lam_max": float(s.wave[-1]),
                         "n_pix_grid_good": int((iv > 0).sum())})
    join = None
    if catalog:
        from inspector.readers import read_catalog

        join = CatalogJoin(read_catalog(catalog))
    with tempfile.TemporaryDirectory() as tmp:
        w = StoreWriter(Path(tmp) / "s")
        w.open_arrays(len(rows))
        t0 = time.perf_counter()
        for i in range(0, len(rows), 64):
            part = rows[i : i + 64]
            f = np.stack([a for a, _ in fl[i : i + 64]])
            iv = np.stack([b for _, b in fl[i : i + 64]])
            w.commit(f, iv, build_index(part, join), None)
        t["catalog join + parquet part + array write (+fsync)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        w.finalize({})
        t["finalize (fold parts)"] = time.perf_counter() - t0
        w.close()
    k = max(len(rows), 1)
    return {name: round(v / k * 1e3, 3) for name, v in t.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--survey", type=Path, help="mock survey or directory of spec files (default: make a mock)")
    ap.add_argument("--n", type=int, default=5000, help="mock survey size to make (default 5000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--workers", type=int, default=None, help="default: all cores")
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--multiply", type=int, default=1, metavar="K",
                    help="also ingest the whole survey with each file read as K spectra (K x more rows)")
    ap.add_argument("--breakdown", type=int, default=0, metavar="N", help="time each step over N spectra")
    ap.add_argument("--_one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_k", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    survey = make_or_reuse(args.survey, args.n, args.seed)
    files = _spec_files(survey)
    catalog = _catalog(survey)
    if args._one is not None:  # child: one size, one fresh process
        print(json.dumps(run_one(files[: args._one], catalog, args.workers, args.chunk_size, args._k)))
        return 0

    print(f"survey {survey}: {len(files)} spec files, catalog {catalog or 'none'}, "
          f"{os.cpu_count()} cores, workers {args.workers or 'all'}, chunk {args.chunk_size}")
    runs = [(n, 1) for n in args.sizes if n <= len(files)]
    if args.multiply > 1:
        runs.append((len(files), args.multiply))
    for n in args.sizes:
        if n > len(files):
            print(f"skip {n}: the survey has only {len(files)} files")
    for n, k in runs:
        cmd = [sys.executable, __file__, "--_one", str(n), "--_k", str(k), "--survey", str(survey),
               "--chunk-size", str(args.chunk_size)]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        label = f"{r['stored']:>6} spectra" + (f" ({n} files x {k}: each file read once, rate not comparable)"
                                              if k > 1 else "")
        print(f"{label}: {r['spectra_per_s']:>7.0f} spectra/s (ingest loop), "
              f"{r['spectra_per_s_wall']:>6.0f}/s wall incl. start-up; peak RSS parent {r['peak_rss_parent_mb']} MB, "
              f"largest worker {r['peak_rss_worker_mb']} MB; store {r['store_mb']} MB; rejected {r['rejected']}; "
              f"CPU {r['cpu_ms_per_spectrum']} ms/spectrum (all processes, incl. start-up); "
              f"load average {r['load_avg_1min']}")
    if args.breakdown:
        print(f"time per spectrum, one process, {min(args.breakdown, len(files))} spectra (ms):")
        for k, v in breakdown(files, catalog, args.breakdown).items():
            print(f"  {k:<55} {v:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
