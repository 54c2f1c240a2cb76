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
  the store's rejected.parquet and summarised at the end. That includes the
  poison ones: planning refuses what is not a regular file, and workers run
  in `inspector.ingest.pool`, where a file that kills or stalls its worker is
  rejected and the rest go on. A rerun skips what was rejected while the file
  is unchanged (`retry_rejected=True` reads it again), and says so.
* On a Dask cluster (`scheduler=`) the chunks are read by the cluster's workers instead of the
  local pool (`inspector.ingest.remote`); everything else, the commit order included, is the same
  code, so the store is the same.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import astropy
import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

import inspector
from inspector.cluster import Scheduler, client_for, describe
from inspector.ingest.catalog_join import CatalogJoin, build_index
from inspector.ingest.paths import MAX_FILE_BYTES
from inspector.ingest.plan import IngestPlan, plan_sources
from inspector.ingest.pool import WorkerPool
from inspector.ingest.remote import cluster_chunks
from inspector.ingest.summary import IngestReport, classify
from inspector.ingest.worker import ChunkResult, WorkerLimits, file_stat
from inspector.readers import SpectrumFileError
from inspector.spectrum import Spectrum
from inspector.store import REJECTED_SCHEMA, StoreWriter
from model.grid import FNET_NPIX


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _chunks(items: Sequence[str], k: int) -> Iterable[list[str]]:
    for i in range(0, len(items), k):
        yield list(items[i : i + k])


def _rejected_before(f: str, writer: StoreWriter) -> bool:
    """Rejected by an earlier run and unchanged since (same size and mtime): not worth reading again."""
    prev = writer.state.rejected_files.get(f)
    return prev is not None and file_stat(f) == (prev[0], prev[1])


def _pending(files: list[str], writer: StoreWriter, retry_rejected: bool = False) -> tuple[list[str], int]:
    """(files still to read, how many were skipped as rejected before): not stored yet, and not
    rejected before unless changed since or `retry_rejected`."""
    stored = writer.state.stored(files)
    out = []
    n_rejected_before = 0
    for f, done in zip(files, stored):
        if done:
            continue
        if not retry_rejected and _rejected_before(f, writer):
            n_rejected_before += 1
        else:
            out.append(f)
    return out, n_rejected_before


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


def _refusals(plan: IngestPlan, writer: StoreWriter, retry_rejected: bool) -> tuple[ChunkResult, int]:
    """Planning's refusals as one chunk of rejections (those not recorded, unchanged, before), and
    how many were recorded before."""
    rejected = []
    for f, reason in plan.refused:
        if not retry_rejected and _rejected_before(f, writer):
            continue
        size, mtime = file_stat(f)
        rejected.append({"file": f, "reason": reason, "category": classify(reason), "hdu_or_fiber": None,
                         "object_id": None, "size": size, "mtime_ns": mtime})
    empty = np.zeros((0, FNET_NPIX), np.float32)
    res = ChunkResult(flux=empty, ivar=empty, rows=[], rejected=rejected, n_files=0, seconds=0.0)
    return res, len(plan.refused) - len(rejected)


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
    *,
    no_catalog: bool = False,
    retry_rejected: bool = False,
    limits: WorkerLimits | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
    scheduler: Scheduler | None = None,
) -> IngestReport:
    """Ingest SOURCES into the store at `store`, resuming or appending if it exists.

    `catalog` names the catalog to join, `no_catalog` joins none (else a catalog-like file among
    the sources is joined); `limits` bounds what one file may cost a worker (time, memory);
    `retry_rejected` reads again files an earlier run rejected (else skipped while unchanged).
    `scheduler` (a Dask scheduler address, Client or cluster) has the cluster's workers read the
    files instead of `workers` local processes; the files must be at the same paths there.
    Returns a report; a KeyboardInterrupt leaves a consistent store (the same
    call resumes it) and a report with `interrupted=True`.
    """
    t_start = time.perf_counter()
    workers = default_workers() if workers is None else max(1, int(workers))
    chunk_size = max(1, int(chunk_size))
    limits = limits or WorkerLimits()
    report = IngestReport(store=Path(store))
    plan = plan_sources(sources, catalog, spectra_root, no_catalog=no_catalog, max_file_bytes=max_file_bytes)
    report.catalog = str(plan.catalog) if plan.catalog else None
    report.catalog_auto = plan.catalog_auto
    report.ignored = plan.ignored
    join = None
    if plan.catalog is not None:
        from inspector.readers import read_catalog

        try:
            join = CatalogJoin(read_catalog(plan.catalog, extra_columns="*"))  # every scalar column reaches the index
        except SpectrumFileError as err:
            raise ValueError(f"catalog {err}") from None

    with client_for(scheduler) as client, StoreWriter(store, fsync=fsync) as writer:
        all_files = plan.files + plan.not_found
        report.n_files = len(all_files) + len(plan.refused)
        missing = set(plan.not_found)
        pending, n_rejected_before = _pending(all_files, writer, retry_rejected)
        refusals, n_refused_before = _refusals(plan, writer, retry_rejected)
        report.n_skipped_rejected = n_rejected_before + n_refused_before
        report.n_skipped = report.n_files - len(pending) - len(refusals.rejected)
        writer.open_arrays(writer.state.n_rows + sum(1 for f in pending if f not in missing))
        writer.meta.setdefault("sources", [])
        for s in sources:
            if os.path.realpath(s) not in writer.meta["sources"]:  # not Path.resolve: it raises on a symlink loop
                writer.meta["sources"].append(os.path.realpath(s))
        if plan.catalog is not None:
            writer.meta["catalog"] = str(plan.catalog)
        writer.meta.update({"state": "ingesting", "software": _versions(inspector.__version__)})
        writer.write_meta()

        bar = _progress(len(pending), progress)
        n_chunks = -(-len(pending) // chunk_size)
        pool = WorkerPool(min(workers, n_chunks), reader, limits) if n_chunks and client is None else None

        def results() -> Iterable[ChunkResult]:
            if refusals.rejected:
                yield refusals
            if pool is not None:
                yield from pool.map_ordered(_chunks(pending, chunk_size))
            elif client is not None and n_chunks:
                yield from cluster_chunks(client, _chunks(pending, chunk_size), reader, limits)

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
                if bar is not None and res is not refusals:
                    bar.update(res.n_files)
                    el = time.perf_counter() - t_work
                    bar.set_postfix_str(f"{report.n_stored / el:.0f} spectra/s, {report.n_rejected} rejected")
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            if pool is not None:
                pool.close()
                report.worker_restarts = pool.restarts
            if bar is not None:
                bar.close()
        report.seconds = time.perf_counter() - t_work
        if not report.interrupted:
            runs = writer.meta.setdefault("runs", [])
            runs.append({
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files_read": report.n_read, "stored": report.n_stored, "rejected": report.n_rejected,
                "skipped_rejected_before": report.n_skipped_rejected,
                "seconds": round(report.seconds, 3), "spectra_per_s": round(report.spectra_per_s, 1),
                "workers": workers, "chunk_size": chunk_size,
                **({"dask": describe(client)} if client is not None else {}),
                "limits": {"file_seconds": limits.seconds, "worker_memory_bytes": limits.memory_bytes},
            })
            writer.finalize({})
        report.n_total = writer.state.n_rows
    report.seconds = report.seconds or (time.perf_counter() - t_start)
    return report


def _versions(version: str) -> dict[str, str]:
    return {"fnet-inspector": version, "numpy": np.__version__, "pyarrow": pa.__version__,
            "astropy": astropy.__version__, "python": sys.version.split()[0]}


def _progress(total: int, enabled: bool) -> Any:
    if not enabled or total == 0:
        return None

    return tqdm(total=total, unit="file", desc="ingest", dynamic_ncols=True, file=sys.stderr)
