"""Engines, sessions, write transactions and migrations.

SQLite is the default: one file, WAL journal (readers never block the writer),
foreign keys on, `busy_timeout` so a writer waits for the lock instead of
failing, `synchronous=NORMAL` (durable at each WAL checkpoint, never corrupt).
The driver's own transaction handling is switched off and this module emits
`BEGIN` itself: write transactions start with `BEGIN IMMEDIATE`, so they take
the write lock before reading and cannot fail half-way when another writer
commits in between (the classic lost write of deferred SQLite transactions).

PostgreSQL works unchanged: pass its URL (``postgresql+psycopg://user@host/db``)
to `make_engine` / `upgrade`. Write transactions are ordinary READ COMMITTED
ones; the queue takes rows with ``FOR UPDATE SKIP LOCKED`` and decisions lock
their spectrum row. Everything goes through the ORM or bound parameters.

    from db.engine import make_engine, session_scope, upgrade
    upgrade("sqlite:////data/inspections.sqlite")  # create / migrate to head
    engine = make_engine("sqlite:////data/inspections.sqlite")
    with session_scope(engine) as s:
        ...

The default URL is ``$FNET_DB_URL``, else ``sqlite:///fnet_inspector.sqlite``
in the working directory.
"""
from __future__ import annotations

import os
import random
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

DB_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = DB_DIR / "migrations"
ALEMBIC_INI = DB_DIR / "alembic.ini"
DEFAULT_FILE = "fnet_inspector.sqlite"
BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "fnet_write"  # execution option read by the SQLite `begin` hook

T = TypeVar("T")


def default_url() -> str:
    """``$FNET_DB_URL`` if set, else a SQLite file in the working directory."""
    return os.environ.get("FNET_DB_URL") or f"sqlite:///{Path(DEFAULT_FILE).resolve()}"


def is_sqlite(bind: Engine | Session | str | URL) -> bool:
    if isinstance(bind, Session):
        bind = bind.get_bind()
    if isinstance(bind, Engine):
        return bind.dialect.name == "sqlite"
    return make_url(bind).get_backend_name() == "sqlite"


def _sqlite_hooks(engine: Engine) -> None:
    """WAL, foreign keys, synchronous=NORMAL on each connection (busy_timeout: the driver's `timeout`)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: str | URL | None = None, *, echo: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
                **kwargs: Any) -> Engine:
    """An Engine for `url` (default `default_url()`); SQLite connections get WAL, foreign keys, busy_timeout.

    A file-backed SQLite URL creates the file's directory if needed. Other URLs
    (PostgreSQL) are passed to `create_engine` unchanged, with `pool_pre_ping`.
    """
    url = make_url(url or default_url())
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # sqlite3's `timeout` is SQLite's busy_timeout: a writer waits this long for the lock
        connect_args = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
        connect_args.update(kwargs.pop("connect_args", {}))
        engine = create_engine(url, echo=echo, connect_args=connect_args, **kwargs)
        _sqlite_hooks(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, echo=echo, **kwargs)


_ENGINES: dict[str, Engine] = {}


def get_engine(url: str | URL | None = None) -> Engine:
    """A process-wide cached engine per URL (after a fork, call `make_engine` in the child instead)."""
    key = str(url or default_url())
    if key not in _ENGINES:
        _ENGINES[key] = make_engine(key)
    return _ENGINES[key]


_FACTORIES: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = weakref.WeakKeyDictionary()


def session_factory(bind: Engine | str | URL | None = None) -> sessionmaker[Session]:
    """Sessions that keep their objects' values after commit (`expire_on_commit=False`); one factory per
    engine, kept while the engine lives: each `sessionmaker` makes a Session subclass of its own, whose
    event dispatch SQLAlchemy builds on first use, so a factory made afresh for every `session_scope`
    paid that each time (the app opens several per decision)."""
    engine = bind if isinstance(bind, Engine) else get_engine(bind)
    factory = _FACTORIES.get(engine)
    if factory is None:
        factory = _FACTORIES[engine] = sessionmaker(engine, expire_on_commit=False)
    return factory


@contextmanager
def session_scope(bind: Engine | str | URL | None = None) -> Iterator[Session]:
    """``with session_scope(engine) as s:`` commits on success, rolls back on error, always closes."""
    session = session_factory(bind)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --------------------------------------------------------------------------- write transactions
def _transient(exc: BaseException) -> bool:
    """A lock timeout, serialization failure or deadlock: the transaction can simply be run again."""
    if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in ("40001", "40P01", "55P03"):  # serialization_failure, deadlock_detected, lock_not_available
        return True
    msg = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and ("database is locked" in msg or "database is busy" in msg)


def begin_write(session: Session) -> None:
    """Start the session's transaction as a write one (SQLite: BEGIN IMMEDIATE).

    A transaction the session already has open is committed first: on SQLite a
    read transaction cannot safely become a write one.
    """
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={_WRITE_OPTION: True})


def run_write(session: Session, work: Callable[[], T], *, attempts: int = 8) -> T:
    """Run `work()` in one write transaction of its own and commit; retry it on a transient lock error.

    `work` must do all its database work through `session` and have no other
    side effects (it may run more than once). Any other error rolls back and
    propagates.
    """
    for attempt in range(attempts):
        begin_write(session)
        try:
            result = work()
            session.commit()
            return result
        except BaseException as exc:
            session.rollback()
            if attempt + 1 < attempts and _transient(exc):
                time.sleep(min(0.5, 0.01 * 2**attempt) * (0.5 + random.random()))
                continue
            raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- after a bulk load
# the tables a survey's load fills, each with its statement written out (no SQL is built from strings)
SETTLE_STATEMENTS = ("VACUUM (ANALYZE) spectra", "VACUUM (ANALYZE) predictions", "VACUUM (ANALYZE) triage_flags")


def settle_after_load(engine: Engine) -> bool:
    """PostgreSQL: VACUUM (ANALYZE) the tables a bulk load filled; True if it ran (SQLite: nothing to do).

    After a load of a survey (1.44 M rows in each of three tables) PostgreSQL's autovacuum starts on its
    own, minutes later, while inspectors are taking the queue: on the 2-core benchmark machine their
    `next_item` p95 rose from 12 to 40-50 ms while it ran. Done here, at the end of the load, it costs
    the load that time instead; the planner's statistics and the visibility map (for index-only reads of
    the queue indexes) are fresh before the first inspector arrives. VACUUM runs outside a transaction.
    """
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for statement in SETTLE_STATEMENTS:
            conn.exec_driver_sql(statement)
    return True


# --------------------------------------------------------------------------- statements of the hot path
_BUILT: dict[tuple[Any, ...], Any] = {}


def prebuilt(key: tuple[Any, ...], build: Callable[[], T]) -> T:
    """The statement `build()` makes, built once per `key` and kept: its values go in as bound parameters.

    For the statements run on every decision and every next spectrum: building a SQLAlchemy statement
    and its cache key costs more Python than the database takes to run it (bench/db_statements.py), and
    on a 2-core server that Python is what 8 inspectors queue for.
    """
    stmt = _BUILT.get(key)
    if stmt is None:
        stmt = _BUILT[key] = build()
    return stmt


def run(session: Session, stmt: Any, params: dict[str, Any] | None = None) -> Any:
    """Execute a Core statement on the session's connection (its transaction), not through the ORM layer."""
    return session.connection().execute(stmt, params or {})


# --------------------------------------------------------------------------- migrations
def alembic_config(url: str | URL | None = None, *, script_location: str | os.PathLike[str] | None = None) -> Any:
    """An Alembic Config for `url` that finds `db/migrations` by path (no working directory needed)."""
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    cfg.set_main_option("script_location", str(script_location or MIGRATIONS_DIR))
    cfg.attributes["url"] = str(make_url(url or default_url()).render_as_string(hide_password=False))
    return cfg


def upgrade(url: str | URL | None = None, revision: str = "head", **kw: Any) -> None:
    """Create or migrate the database at `url` to `revision` (default: the newest)."""
    from alembic import command

    command.upgrade(alembic_config(url, **kw), revision)


def downgrade(url: str | URL | None, revision: str, **kw: Any) -> None:
    """Migrate the database at `url` down to `revision` ("base" drops everything: the data with it)."""
    from alembic import command

    command.downgrade(alembic_config(url, **kw), revision)


def current_revision(url: str | URL | None = None) -> str | None:
    """The revision the database is at (None: not created by the migrations)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


__all__ = [
    "alembic_config", "begin_write", "current_revision", "default_url", "downgrade", "get_engine", "is_sqlite",
    "make_engine", "prebuilt", "run", "run_write", "session_factory", "session_scope", "settle_after_load",
    "upgrade",
]  # fmt: skip
