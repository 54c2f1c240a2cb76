"""One model job at a time: a lock row in the database, with a heartbeat, that a dead holder loses.

    with hold_job_lock(url, "promote 3") as lock:     # JobLockHeld if another live job has it
        ...                                           # a thread keeps lock.heartbeat fresh
        switch(..., lock=lock)                        # the switch checks the token (`check_lock`)

Retrain, promote and rollback all change which model is current and re-load the triage, so two of them
at once (two CLI runs, the app and a CLI run, two app sessions) would interleave their loads. They share
the lock named `MODELS_LOCK` (`db.schema.JobLock`, one row while held). A table rather than an advisory
lock: it works the same on SQLite and PostgreSQL and can say who holds it (job, host, pid, since when).

A holder that died without releasing (SIGKILL, a lost machine) must not block every later job: its row is
stale, and taken over, when its pid no longer runs on this host or when its heartbeat is older than
`STALE_AFTER_S` (any host). A job whose lock was taken over learns it from `check_lock`, which the model
switch runs inside its own transaction, so it can never make a version current without holding the lock.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from db.decisions import insert_ignore
from db.engine import make_engine, run_write, session_scope
from db.schema import JobLock, utcnow

log = logging.getLogger(__name__)

MODELS_LOCK = "models"
STALE_AFTER_S = 120.0  # no heartbeat for this long: the holder is taken for dead (any host)
HEARTBEAT_S = 10.0


class JobLockHeld(RuntimeError):
    """Another live job holds the lock; the message names it (job, host, pid, since when)."""

    def __init__(self, holder: JobLock) -> None:
        self.job, self.host, self.pid = holder.job, holder.host, holder.pid
        self.since, self.heartbeat_at = holder.acquired_at, holder.heartbeat_at
        super().__init__(
            f"another job holds the model lock: {holder.job!r} (pid {holder.pid} on {holder.host}, since "
            f"{holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC); wait for it to finish"
        )


class JobLockLost(RuntimeError):
    """This job's lock was taken over (it was thought dead): it must not change anything more."""


@dataclass
class Lock:
    """A held lock: its name and token (what `check_lock` compares), and whether the heartbeat lost it."""

    name: str
    token: str
    job: str
    lost: threading.Event = field(default_factory=threading.Event, repr=False)


def _host() -> str:
    return socket.gethostname()[:255]


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs on this machine (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_stale(row: JobLock, *, now: datetime | None = None, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether the row's holder is gone: its pid on this host, or a heartbeat older than `stale_after_s`."""
    now = now or utcnow()
    if row.host == _host() and not pid_alive(row.pid):
        return True
    return now - row.heartbeat_at > timedelta(seconds=stale_after_s)


def acquire(session: Session, job: str, *, name: str = MODELS_LOCK, stale_after_s: float = STALE_AFTER_S,
            pid: int | None = None) -> Lock:
    """Take the lock for `job` (one write transaction; commits), taking a stale one over.

    Raises `JobLockHeld` naming the live holder. The row is locked for the check (SQLite: the write
    transaction; PostgreSQL: FOR UPDATE), so two jobs asking at once cannot both get it.
    """
    token = secrets.token_hex(16)
    me = {"token": token, "job": job[:128], "host": _host(), "pid": int(pid or os.getpid())}

    def work() -> Lock:
        now = utcnow()
        insert_ignore(session, JobLock, {"name": name, **me, "acquired_at": now, "heartbeat_at": now}, ["name"])
        row = session.scalars(select(JobLock).where(JobLock.name == name).with_for_update()
                              .execution_options(populate_existing=True)).one()  # fmt: skip
        if row.token != token:
            if not is_stale(row, now=now, stale_after_s=stale_after_s):
                raise JobLockHeld(row)
            log.warning("taking over the stale lock of %r (pid %s on %s)", row.job, row.pid, row.host)
            session.execute(update(JobLock).where(JobLock.name == name)
                            .values(**me, acquired_at=now, heartbeat_at=now))  # fmt: skip
        return Lock(name, token, job)

    return run_write(session, work)


def check_lock(session: Session, lock: Lock) -> None:
    """Inside a write transaction: raise `JobLockLost` unless `lock` is still held by its token.

    PostgreSQL: the row stays locked (FOR UPDATE) until that transaction ends, so no takeover can
    slip in between this check and the commit; SQLite's write transaction excludes it anyway."""
    token = session.scalar(select(JobLock.token).where(JobLock.name == lock.name).with_for_update())
    if token != lock.token:
        lock.lost.set()
        raise JobLockLost(f"the model lock of {lock.job!r} was taken over by another job: nothing was switched")


def beat(session: Session, lock: Lock) -> bool:
    """Refresh the heartbeat; False (and `lock.lost` set) if the lock is no longer ours. Commits."""
    n = run_write(session, lambda: session.execute(
        update(JobLock).where(JobLock.name == lock.name, JobLock.token == lock.token).values(heartbeat_at=utcnow())
    ).rowcount)  # fmt: skip
    if not n:
        lock.lost.set()
    return bool(n)


def release(session: Session, lock: Lock) -> None:
    """Give the lock back (only if still ours). Commits."""
    run_write(session, lambda: session.execute(
        delete(JobLock).where(JobLock.name == lock.name, JobLock.token == lock.token)))  # fmt: skip


def holder(session: Session, name: str = MODELS_LOCK) -> JobLock | None:
    """The row of whoever holds the lock now (stale or not); None when free."""
    return session.get(JobLock, name, populate_existing=True)


@contextmanager
def hold_job_lock(url: str | URL, job: str, *, name: str = MODELS_LOCK, heartbeat_s: float = HEARTBEAT_S,
                  stale_after_s: float = STALE_AFTER_S) -> Iterator[Lock]:
    """Hold the lock for the `with` block: acquire (or `JobLockHeld`), a heartbeat thread, release at the end.

    The heartbeat uses an engine of its own; a failed beat (the database busy with this job's own long
    load) is logged and tried again at the next one, well inside `stale_after_s`."""
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            lock = acquire(s, job, name=name, stale_after_s=stale_after_s)
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(heartbeat_s):
                try:
                    with session_scope(engine) as s:
                        if not beat(s, lock):
                            log.error("the model lock of %r was taken over", job)
                            return
                except Exception:
                    log.warning("job lock heartbeat failed; retrying", exc_info=True)

        t = threading.Thread(target=keep, name=f"job-lock-{name}", daemon=True)
        t.start()
        try:
            yield lock
        finally:
            stop.set()
            t.join(timeout=heartbeat_s + 35)
            with session_scope(engine) as s:
                release(s, lock)
    finally:
        engine.dispose()


__all__ = [
    "HEARTBEAT_S", "MODELS_LOCK", "STALE_AFTER_S", "JobLockHeld", "JobLockLost", "Lock", "acquire", "beat",
    "check_lock", "hold_job_lock", "holder", "is_stale", "pid_alive", "release",
]  # fmt: skip
