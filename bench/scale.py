"""Ingest + predict (FNet and the template fit) locally and on a Dask LocalCluster: same results? what does Dask cost?

    python bench/scale.py                 # 20,000-spectrum mock survey (long on 2 cores)
    python bench/scale.py --n 2000        # a quick check
    python bench/scale.py --n 2000 --workers 2 --threads-per-worker 1 --chunk-rows 512

The same mock survey goes through `inspector.ingest.ingest` and `inspector.pipeline.predict.write_predictions`
twice: locally (2 ingest processes, the template fit on 2 processes, torch on 1 thread) and on a
LocalCluster of --workers processes x --threads-per-worker threads (`scheduler=client`). It prints
whether the stores and the prediction files are identical, the wall time of each stage both ways,
Dask's overhead as a share of the local wall time (target <= 15 %), throughput, and the time
projected for 1.44 M spectra (DR16Q-sized) on 8, 64 and 256 workers.

It also measures the store's reads, the question behind keeping the .npy store on a shared
filesystem rather than converting it to Zarr: a random single spectrum (what the app does, flux +
ivar of one row through the memmap) and a chunk of contiguous rows (what a Dask task does, opened
by path with `inspector.store.open_arrays`). The page cache is not dropped (the machine is shared):
the figures are warm-cache, i.e. the floor a network filesystem adds its latency to.

Torch runs on 1 thread in the local predict too: a network's last bits depend on the thread count,
and a Dask worker runs torch on 1 thread, so that is the local run the cluster must equal.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

DR16Q = 1_440_000


def _identical_stores(a: Path, b: Path) -> bool:
    from inspector.store import open_store

    sa, sb = open_store(a), open_store(b)
    return (np.array_equal(sa.flux, sb.flux) and np.array_equal(sa.ivar, sb.ivar) and sa.index.equals(sb.index)
            and sa.rejected.drop(columns="when").equals(sb.rejected.drop(columns="when")))


def _identical_tables(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    return pq.read_table(a).equals(pq.read_table(b))


def _reads(store: Path, n_random: int, chunk: int, seed: int) -> dict[str, float]:
    """ms per random single-spectrum read (flux + ivar), ms and MB/s per contiguous chunk read."""
    from inspector.store import open_arrays, open_store

    st = open_store(store)
    n = len(st)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, n_random)
    t0 = time.perf_counter()
    for r in rows:
        np.array(st.flux[r]), np.array(st.ivar[r])
    single = (time.perf_counter() - t0) / n_random * 1e3
    starts = list(range(0, n - chunk + 1, chunk)) or [0]
    t0 = time.perf_counter()
    nbytes = 0
    for a in starts:
        flux, ivar = open_arrays(store)  # as a task does: opened by path, each time
        f, iv = np.array(flux[a : a + chunk]), np.array(ivar[a : a + chunk])
        nbytes += f.nbytes + iv.nbytes
    dt = time.perf_counter() - t0
    return {"single_ms": single, "chunk_ms": dt / len(starts) * 1e3, "chunk_mb_s": nbytes / dt / 1e6,
            "chunk_rows": min(chunk, n)}


def _stage_rows(name: str, local: float, remote: float, n: int, workers: int) -> str:
    over = 100 * (remote - local) / local if local > 0 else float("nan")
    per_worker = n / remote / workers if remote > 0 else float("nan")
    proj = "  ".join(f"{w:>3}: {DR16Q / (per_worker * w) / 60:7.1f} min" for w in (8, 64, 256))
    return (f"{name:<14} {local:8.1f} {remote:8.1f} {over:+7.1f} % {n / local:9.0f} {n / remote:9.0f} "
            f"{per_worker:8.1f}   {proj}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="mock spectra (default 20,000)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes (and local ingest processes)")
    ap.add_argument("--threads-per-worker", type=int, default=1)
    ap.add_argument("--chunk-rows", type=int, default=1024, help="spectra per predict task on the cluster")
    ap.add_argument("--chunk-size", type=int, default=64, help="files per ingest chunk (both ways)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the survey and stores here (default: a temp dir)")
    args = ap.parse_args()

    import torch
    from distributed import Client, LocalCluster

    from inspector.ingest import ingest
    from inspector.mock import make_survey
    from inspector.pipeline.predict import write_predictions
    from inspector.store.files import template_cache_path
    from model.assets import DEMO_MODEL

    warnings.simplefilter("ignore")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="scale-"))
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    n, w = args.n, args.workers
    print(f"{n} mock spectra; local: {w} ingest processes, template fit on {w} processes, torch 1 thread; "
          f"cluster: LocalCluster {w} workers x {args.threads_per_worker} thread; work dir {work}", flush=True)
    t0 = time.perf_counter()
    done = work / f"survey-{n}-{args.seed}.done"  # a survey made whole before, not one a killed run left
    if not done.exists():
        shutil.rmtree(work / "survey", ignore_errors=True)
        make_survey(work / "survey", n, seed=args.seed, workers=w, progress=False)
        done.touch()
    print(f"mock survey: {time.perf_counter() - t0:.1f} s", flush=True)
    for d in ("local", "remote"):
        shutil.rmtree(work / d, ignore_errors=True)

    times: dict[str, dict[str, float]] = {"local": {}, "remote": {}}
    sides = {}
    ikw = {"chunk_size": args.chunk_size, "progress": False, "fsync": False}
    pkw = {"batch_size": args.batch_size, "device": "cpu", "baseline": False, "progress": False}

    t0 = time.perf_counter()
    rep = ingest([str(work / "survey")], work / "local", workers=w, **ikw)
    times["local"]["ingest"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sides["local"] = write_predictions(work / "local", DEMO_MODEL, work / "local" / "p.parquet",
                                       template_processes=w, **pkw)
    times["local"]["predict"] = time.perf_counter() - t0
    print(f"local: ingest {times['local']['ingest']:.1f} s ({rep.n_stored} stored), "
          f"predict {times['local']['predict']:.1f} s", flush=True)

    t0 = time.perf_counter()
    with LocalCluster(n_workers=w, threads_per_worker=args.threads_per_worker, processes=True,
                      dashboard_address=None) as lc, Client(lc) as client:
        t_start = time.perf_counter() - t0
        t0 = time.perf_counter()
        ingest([str(work / "survey")], work / "remote", scheduler=client, **ikw)
        times["remote"]["ingest"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sides["remote"] = write_predictions(work / "remote", DEMO_MODEL, work / "remote" / "p.parquet",
                                            scheduler=client, chunk_rows=args.chunk_rows, **pkw)
        times["remote"]["predict"] = time.perf_counter() - t0
    print(f"cluster: start {t_start:.1f} s, ingest {times['remote']['ingest']:.1f} s, "
          f"predict {times['remote']['predict']:.1f} s", flush=True)
    for k in ("local", "remote"):
        tpl = sides[k]["template_fit"]["seconds"]
        times[k]["template fit"] = tpl
        times[k]["FNet"] = sides[k]["predict_seconds"]

    same_store = _identical_stores(work / "local", work / "remote")
    same_pred = _identical_tables(work / "local" / "p.parquet", work / "remote" / "p.parquet")
    same_tpl = _identical_tables(template_cache_path(work / "local"), template_cache_path(work / "remote"))
    print(f"\nidentical: store arrays, index and rejections {same_store}; predictions (FNet z, class, Z_TPL) "
          f"{same_pred}; template-fit cache {same_tpl}")

    print(f"\n{'stage':<14} {'local s':>8} {'dask s':>8} {'overhead':>9} {'local/s':>9} {'dask/s':>9} "
          f"{'/s/worker':>8}   projected for {DR16Q:,} spectra on N workers (linear)")
    for stage in ("ingest", "template fit", "FNet", "predict"):
        print(_stage_rows(stage, times["local"][stage], times["remote"][stage], n, w))
    tl = times["local"]["ingest"] + times["local"]["predict"]
    tr = times["remote"]["ingest"] + times["remote"]["predict"]
    print(_stage_rows("ingest+predict", tl, tr, n, w))
    print(f"overhead of Dask over the local run, ingest + predict: {100 * (tr - tl) / tl:+.1f} % "
          f"(target <= 15 %); with the cluster's start-up ({t_start:.1f} s): {100 * (tr + t_start - tl) / tl:+.1f} %")
    print("projection: spectra/s per worker (1 core) as measured on the cluster here, times N workers; it assumes "
          "the shared filesystem and the client (which gathers every chunk and is the only writer) keep up, "
          "and the same per-core speed as this machine")

    r = _reads(work / "local", 2000, args.chunk_rows, args.seed)
    print(f"\nstore reads ({n} rows, warm page cache): random single spectrum (flux + ivar) {r['single_ms']:.3f} ms; "
          f"chunk of {r['chunk_rows']} contiguous rows opened by path {r['chunk_ms']:.1f} ms "
          f"({r['chunk_mb_s']:.0f} MB/s)")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
