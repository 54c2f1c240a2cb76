"""The ingest itself: the parent process that plans, farms chunks out to workers and commits them in order.

Why it is built this way:

* Workers only compute (`inspector.ingest.worker`) and send back small
  arrays; the parent is the only writer and commits chunks strictly in input
  order. That makes the store's row order deterministic, so an interrupted
  ingest that is rerun ends up byte-for-byte with the same rows as an
  uninterrupted one, and duplicate objects are decided the same way every
  time: the first in plan order wins, and the plan puts spec-lite files
  before spPlate / image / DESI files (`inspector.ingest.plan`), so of one
  object's records the spec-lite one is kept. A store is append-only: a
  better record arriving in a later run is rejected as a duplicate of the
  one already stored, naming it.
* At most `2 x workers` chunks are in flight, so memory does not grow with N
  (parent and workers hold a few chunks, never the survey).
* The commit protocol itself (arrays first, then an index part by atomic
  rename) lives in `inspector.store`; `inspector.ingest.catalog_join` decides
  what a row is.
* A bad file never stops an ingest: every reason it is rejected is recorded in
  the store's rejected.parquet and summarised at the end.
"""
from __future__ import annotations

import collections
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import BrokenExecutor
from pathlib import Path
from typing import Any

import astropy
import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

import inspector
from inspector.ingest.catalog_join import CatalogJoin, build_index
from inspector.ingest.plan import plan_sources
from inspector.ingest.summary import IngestReport
from inspector.ingest.worker import ChunkResult, file_stat, process_chunk, worker_init
from inspector.spectrum import Spectrum
from inspector.store import REJECTED_SCHEMA, StoreWriter


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
        if prev is None or file_stat(f) != (prev[0], prev[1]):  # rejected before: retry only if the file changed
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
        size, mtime = file_stat(r["file"])
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

        join = CatalogJoin(read_catalog(plan.catalog, extra_columns="*"))  # every scalar column reaches the index

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
            pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=worker_init, initargs=(os.getpid(),))

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
    return {"fnet-inspector": version, "numpy": np.__version__, "pyarrow": pa.__version__,
            "astropy": astropy.__version__, "python": sys.version.split()[0]}


def _progress(total: int, enabled: bool) -> Any:
    if not enabled or total == 0:
        return None

    return tqdm(total=total, unit="file", desc="ingest", dynamic_ncols=True, file=sys.stderr)
