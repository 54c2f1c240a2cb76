"""Worker processes that a poison file cannot take down with it.

Why not a ProcessPoolExecutor: a chunk's future says only that a worker died, not on which
file, and the pool is broken for good afterwards; one bad file (a COADD that exhausts memory, a
read that never returns) then stopped the ingest, and since chunks commit in order a rerun
stopped on the same file again. Here each worker writes, in shared memory, which file of its
chunk it is on and since when. The parent watches: a worker that dies, or passes the per-file
time limit (then it is killed), has its file rejected with what happened; the chunk is given to
a fresh worker with that file marked, and the rest of the ingest goes on. Results come back in
chunk order, so the store is the same whichever worker read what.
"""
from __future__ import annotations

import collections
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from inspector.ingest.worker import (
    ChunkResult,
    WorkerLimits,
    process_chunk,
    worker_init,
)
from inspector.spectrum import Spectrum

Reader = Callable[[str], list[Spectrum]]
_MAX_DEATHS_OUTSIDE_A_FILE = 3  # a chunk whose worker keeps dying between files: the machine, not a file
_JOIN_S = 5.0  # a worker killed inside an uninterruptible read (a hung NFS mount) exits only when the read does


class WorkerPoolError(RuntimeError):
    """Workers die where no file can be blamed (fork failing, the parent short of memory)."""


@dataclass
class _Task:
    seq: int
    paths: list[str]
    skip: dict[int, str] = field(default_factory=dict)
    deaths: int = 0


@dataclass
class _Slot:
    index: int
    proc: Any
    conn: Any
    task: _Task | None = None


def _serve(conn: Any, slot: int, status: Any, parent_pid: int, reader: Reader | None, limits: WorkerLimits) -> None:
    """A worker's life: take a chunk, report each file as it starts it, send the result back."""
    worker_init(parent_pid, limits.memory_bytes)

    def on_file(i: int) -> None:
        status[2 * slot + 1] = time.monotonic()  # the start first: a reader never sees a new file with an old time
        status[2 * slot] = i

    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        seq, paths, skip = task
        res = process_chunk(paths, reader, skip=skip, on_file=on_file, limits=limits)
        status[2 * slot] = -1
        conn.send((seq, res))


def death_reason(exitcode: int | None) -> str:
    """Why a worker that died on a file is gone, as the file's rejection reason."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return ("the worker process reading it was killed (SIGKILL): out of memory? "
                    "the kernel's OOM killer sends SIGKILL")
        return f"the worker process reading it was killed by {name}"
    return f"the worker process reading it exited with code {exitcode}"


def timeout_reason(seconds: float) -> str:
    return (f"reading it took longer than {seconds:g} s, the per-file time limit (--file-timeout): "
            "the worker was stopped")


class WorkerPool:
    """`n` isolated worker processes; `map_ordered` yields each chunk's result in chunk order."""

    def __init__(self, n: int, reader: Reader | None = None, limits: WorkerLimits | None = None,
                 poll_s: float = 0.5) -> None:
        # fork: workers start in milliseconds and inherit the imports (and a test's reader)
        self._ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        self._reader = reader
        self.limits = limits or WorkerLimits()
        self._poll_s = poll_s
        self._status = self._ctx.RawArray("d", 2 * max(1, n))  # per worker: file index in its chunk (-1 idle), start
        self._slots = [self._spawn(i) for i in range(max(1, n))]
        self.restarts = 0

    def _spawn(self, i: int) -> _Slot:
        self._status[2 * i] = -1
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_serve, name=f"ingest-worker-{i}", daemon=True,
                                 args=(child, i, self._status, os.getpid(), self._reader, self.limits))
        proc.start()
        child.close()
        return _Slot(i, proc, parent)

    def _replace(self, slot: _Slot) -> None:
        slot.conn.close()
        self._slots[slot.index] = self._spawn(slot.index)
        self.restarts += 1

    def _lost(self, slot: _Slot, reason: str, todo: collections.deque[_Task]) -> None:
        """A worker is gone mid-chunk: blame the file it was on, give the chunk to a fresh worker."""
        task = slot.task
        assert task is not None
        i = int(self._status[2 * slot.index])
        self._replace(slot)
        if i >= 0 and i not in task.skip:
            task.skip[i] = reason
        else:
            task.deaths += 1
            if task.deaths >= _MAX_DEATHS_OUTSIDE_A_FILE:
                raise WorkerPoolError(f"worker processes keep dying between files ({reason}), on the chunk starting "
                                      f"at {task.paths[0]}")
        todo.appendleft(task)  # first in line: later chunks wait for it anyway

    def _receive(self, slot: _Slot, done: dict[int, ChunkResult]) -> bool:
        try:
            seq, res = slot.conn.recv()
        except (EOFError, OSError):
            return False
        done[seq] = res
        slot.task = None
        return True

    def _watch(self, todo: collections.deque[_Task], done: dict[int, ChunkResult]) -> None:
        """Wait for a result, a death or a deadline, and deal with it."""
        busy = [s for s in self._slots if s.task is not None]
        now = time.monotonic()
        wait = self._poll_s
        for s in busy:
            if self._status[2 * s.index] >= 0:
                wait = min(wait, self._status[2 * s.index + 1] + self.limits.seconds - now)
        ready = mp.connection.wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], max(0.01, wait))
        now = time.monotonic()
        for s in busy:
            if (s.conn in ready or s.proc.sentinel in ready) and s.conn.poll() and self._receive(s, done):
                continue
            if not s.proc.is_alive():
                s.proc.join()
                self._lost(s, death_reason(s.proc.exitcode), todo)
            elif self._status[2 * s.index] >= 0 and now - self._status[2 * s.index + 1] > self.limits.seconds:
                s.proc.kill()
                s.proc.join(_JOIN_S)  # not for ever: see _JOIN_S; its slot gets a fresh worker either way
                self._lost(s, timeout_reason(self.limits.seconds), todo)

    def map_ordered(self, chunks: Iterable[list[str]], window: int | None = None) -> Iterator[ChunkResult]:
        """Each chunk's `ChunkResult`, in chunk order; at most `window` chunks (2 x workers) in flight,
        so memory stays flat whatever the number of files."""
        window = window or 2 * len(self._slots)
        source = enumerate(chunks)
        todo: collections.deque[_Task] = collections.deque()
        done: dict[int, ChunkResult] = {}
        next_out = 0
        exhausted = False
        while True:
            busy = sum(s.task is not None for s in self._slots)
            while not exhausted and len(todo) + busy + len(done) < window:
                item = next(source, None)
                if item is None:
                    exhausted = True
                else:
                    todo.append(_Task(item[0], list(item[1])))
            for s in self._slots:
                if s.task is None and todo:
                    s.task = todo.popleft()
                    try:
                        s.conn.send((s.task.seq, s.task.paths, dict(s.task.skip)))
                    except OSError:  # it died idle: `_watch` sees it dead and hands the chunk on
                        pass
            if next_out in done:
                yield done.pop(next_out)
                next_out += 1
                continue
            if exhausted and not todo and not any(s.task for s in self._slots):
                return
            self._watch(todo, done)

    def close(self) -> None:
        """Stop every worker now: after the last chunk, on Ctrl-C or on an error nothing they hold is needed."""
        for s in self._slots:
            if s.proc.is_alive():
                s.proc.kill()
        for s in self._slots:
            s.proc.join(_JOIN_S)
            s.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
