"""Ingest chunks read by Dask workers (`ingest(..., scheduler=...)`), the cluster twin of `inspector.ingest.pool`.

A Dask task runs the same `process_chunk` as a local worker, on files it opens by path (the
sources on a shared filesystem, at the same path on every machine), and sends back the same
`ChunkResult`; the parent commits them in order, so the store is the one a local ingest writes.
What the local pool guards per file, Dask guards per worker: a file that kills its worker
(out of memory: the nanny's memory limit) makes the chunk's task fail with KilledWorker after
the scheduler's retries; the chunk is then read again one file per task, and the file whose
task dies again is rejected with that reason, as the local pool does. The per-file time limit
(--file-timeout) and the RLIMIT_DATA cap are not applied on a cluster (a Dask worker runs
several tasks in one process: neither can be imposed on one file there).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from inspector.cluster import map_ordered
from inspector.ingest.summary import classify
from inspector.ingest.worker import ChunkResult, WorkerLimits, file_stat, process_chunk
from inspector.spectrum import Spectrum
from model.grid import FNET_NPIX

if TYPE_CHECKING:
    from distributed import Client

Reader = Callable[[str], list[Spectrum]]
TASK_NAME = "ingest-read"


def lost_reason(exc: BaseException) -> str:
    """The rejection reason of a file whose Dask worker died reading it, every time it was tried."""
    return f"the Dask worker reading it died (out of memory? the nanny restarts a worker past its memory limit): {exc}"


def _merge(parts: list[ChunkResult]) -> ChunkResult:
    """One chunk's result from its files' results, in file order (what `process_chunk` gives in one go)."""
    return ChunkResult(
        flux=np.concatenate([p.flux for p in parts]), ivar=np.concatenate([p.ivar for p in parts]),
        rows=[r for p in parts for r in p.rows], rejected=[r for p in parts for r in p.rejected],
        n_files=sum(p.n_files for p in parts), seconds=sum(p.seconds for p in parts),
    )


def _dead_file(path: str, exc: BaseException) -> ChunkResult:
    size, mtime = file_stat(path)
    reason = lost_reason(exc)
    empty = np.zeros((0, FNET_NPIX), np.float32)
    return ChunkResult(flux=empty, ivar=empty, rows=[], n_files=1, seconds=0.0, rejected=[{
        "file": path, "reason": reason, "category": classify(reason), "hdu_or_fiber": None, "object_id": None,
        "size": size, "mtime_ns": mtime}])


def cluster_chunks(client: Client, chunks: Iterable[list[str]], reader: Reader | None,
                   limits: WorkerLimits) -> Iterator[ChunkResult]:
    """Each chunk's `ChunkResult`, in chunk order, read by the cluster's workers."""

    def one_by_one(args: tuple, exc: BaseException) -> ChunkResult:
        files = list(args[0])
        singles = map_ordered(client, process_chunk, [([f], reader, None, None, limits) for f in files],
                              TASK_NAME + "-alone", on_lost=lambda a, e: _dead_file(a[0][0], e))
        return _merge(list(singles))

    yield from map_ordered(client, process_chunk, ((c, reader, None, None, limits) for c in chunks), TASK_NAME,
                           on_lost=one_by_one)
