"""Dask for the survey-sized stages: connect to a scheduler, farm chunks out, get results back in order.

Why it looks like this:

* Ingest and predict keep one code path for the numerics: a stage cuts the store (or its file list)
  into chunks and calls a plain top-level chunk function, either in this process (local) or as a
  Dask task (`map_ordered`). A chunk function opens the store by its path, so workers on other
  machines need the store on a shared filesystem (NFS, Lustre) at the same path, nothing else.
* Results come back to the caller in chunk order and the caller is the only writer, exactly as on
  the local path: the files written are the same whichever worker computed what.
* At most `window` chunks are in flight, so the client's memory stays flat whatever N is.
* Task keys start with the stage's name (`ingest-read-<token>-<i>`), which is how the Dask
  dashboard groups and names them.
* A scheduler that cannot be reached fails fast with its address in the message (`ClusterError`),
  rather than hanging on a typo'd host.

This module imports no other part of the app (ingest and the pipeline both use it).
"""
from __future__ import annotations

import collections
import ctypes
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

Scheduler = Any  # an address ("tcp://host:8786"), a dask.distributed Client, or a cluster object
CONNECT_TIMEOUT_S = 10.0


class ClusterError(RuntimeError):
    """The Dask scheduler could not be reached, or its address is not one."""


def connect(scheduler: Scheduler, timeout: float = CONNECT_TIMEOUT_S) -> Client:
    """A Client for an address, a cluster object (LocalCluster, dask-jobqueue's SLURMCluster) or a Client."""
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler
    where = getattr(scheduler, "scheduler_address", None) or str(scheduler)
    try:
        return Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: not an address ("tcp//host")
        raise ClusterError(f"cannot reach the Dask scheduler at {where} within {timeout:g} s "
                           f"(is it running, and is the address right?): {exc}") from None


@contextmanager
def client_for(scheduler: Scheduler | None, timeout: float = CONNECT_TIMEOUT_S) -> Iterator[Client | None]:
    """None for None (run locally); else a connected Client, closed at the end only if opened here."""
    if scheduler is None:
        yield None
        return
    from distributed import Client

    client = connect(scheduler, timeout)
    try:
        yield client
    finally:
        if not isinstance(scheduler, Client):
            client.close()


CHUNK_ROWS = 4096  # spectra per Dask task of a per-spectrum stage: ~15 s of one core for the small FNet

_CACHE: dict[Any, Any] = {}
_CACHE_LOCK = threading.Lock()


def cached(path: str, make: Callable[[], Any], *key: Any) -> Any:
    """`make()` once per process for the file at `path` as it is now (its size and mtime) and `key`: a worker
    loads a model once, not once per chunk (a task of a few seconds would otherwise spend a good part of it
    reading the checkpoint), and again if the file is replaced."""
    st = os.stat(path)
    full = (path, st.st_size, st.st_mtime_ns, *key)
    with _CACHE_LOCK:
        if full not in _CACHE:
            _CACHE[full] = make()
        return _CACHE[full]


def row_chunks(start: int, stop: int, chunk_rows: int, batch_size: int = 1) -> list[tuple[int, int]]:
    """(a, b) row ranges covering start..stop-1, `chunk_rows` rows each rounded up to whole batches, so that
    a task's batches (from `start`, a multiple of the batch size) are those of a local run."""
    step = -(-max(1, chunk_rows) // batch_size) * batch_size
    return [(a, min(a + step, stop)) for a in range(start, stop, step)]


_MALLOC_SET = False
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def undo_nanny_malloc() -> None:
    """Give a Dask worker glibc's usual memory reuse back, once per process.

    Dask's nanny starts each worker with MALLOC_TRIM_THRESHOLD_=65536, which also freezes glibc's mmap
    threshold at 128 KiB: every array of more than that is then mapped and unmapped afresh, and a
    chunk's many temporaries page-fault all the time (measured here: FNet 2x and the template fit
    2.5-3x slower per task). Raising both thresholds at run time restores the reuse without asking
    each cluster's administrator to change the Dask configuration. Nothing happens outside a nanny's
    worker or without glibc."""
    global _MALLOC_SET
    if _MALLOC_SET:
        return
    _MALLOC_SET = True
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)  # glibc's largest (64-bit): arrays up to 32 MiB reuse the heap
    libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)


def _task(fn: Callable[..., Any], *args: Any) -> Any:
    undo_nanny_malloc()
    return fn(*args)


def torch_threads(n: int | None) -> None:
    """Set a worker's torch threads for a task (None: leave them; a Dask worker runs torch on 1 thread).

    A network's output depends, in the last bits, on how many threads split its reductions; a cluster
    run equals a local one run with the same count (`inspector predict --threads`)."""
    if n is not None:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def total_threads(client: Client) -> int:
    """Worker threads the cluster has now (at least 1, so an empty cluster still queues work)."""
    return max(1, sum(client.nthreads().values()))


def describe(client: Client) -> dict[str, Any]:
    """Where a stage ran, for a run's provenance."""
    nthreads = client.nthreads()
    return {"scheduler": client.scheduler.address, "workers": len(nthreads), "threads": sum(nthreads.values())}


def map_ordered(
    client: Client,
    fn: Callable[..., Any],
    args: Iterable[tuple[Any, ...]],
    name: str,
    window: int | None = None,
    on_lost: Callable[[tuple[Any, ...], BaseException], Any] | None = None,
) -> Iterator[Any]:
    """`fn(*a)` for each `a` of `args` as Dask tasks named `name`, yielded in the order of `args`.

    `on_lost(a, exc)` gives the result of a chunk whose task could not finish because its worker
    died (dask's KilledWorker, after the scheduler's own retries): ingest uses it to find and
    reject the poison file instead of failing the run. Any other exception of a task is raised here.
    Leaving the loop early (an error, Ctrl-C) cancels the tasks still in flight.
    """
    from distributed import KilledWorker

    window = window or 2 * total_threads(client)
    token = uuid.uuid4().hex[:8]
    source = enumerate(args)
    pending: collections.deque[tuple[tuple[Any, ...], Any]] = collections.deque()

    def fill() -> None:
        while len(pending) < window:
            item = next(source, None)
            if item is None:
                return
            i, a = item
            pending.append((a, client.submit(_task, fn, *a, key=f"{name}-{token}-{i}", pure=False)))

    try:
        fill()
        while pending:
            a, fut = pending.popleft()
            try:
                res = fut.result()
            except KilledWorker as exc:
                if on_lost is None:
                    raise
                res = on_lost(a, exc)
            fut.release()
            fill()
            yield res
    finally:
        if pending:
            client.cancel([f for _, f in pending])


__all__ = ["CHUNK_ROWS", "CONNECT_TIMEOUT_S", "ClusterError", "Scheduler", "cached", "client_for", "connect",
           "describe", "map_ordered", "row_chunks", "torch_threads", "total_threads", "undo_nanny_malloc"]
