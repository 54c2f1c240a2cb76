"""Fresh, migrated databases for tests: a temp SQLite file, or PostgreSQL when $FNET_TEST_DB_URL is set.

    @pytest.fixture
    def db_url(tmp_path):
        return fresh_database(tmp_path)

SQLite: the migrations run once per process into a template file, each test
gets a copy (milliseconds). PostgreSQL (``FNET_TEST_DB_URL=postgresql+psycopg://
user@host/fnet_test pytest tests/persistence/``): each test starts from an
emptied schema of its own per pytest-xdist worker (``fnet_test_gw0``...),
migrated to head, so parallel workers never meet. (Not `downgrade base`: a
downgrade that re-adds an old constraint fails on rows the newer schema
allows, such as a star's negative z.) Everything in those schemas is
dropped: point the URL at a database kept for tests.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateSchema, DropSchema

from db.engine import make_engine, upgrade

TEST_URL_ENV = "FNET_TEST_DB_URL"
_TEMPLATE: Path | None = None


def head_revision() -> str:
    """The newest revision in db/migrations (read from the scripts; fails if the history has two heads)."""
    from alembic.script import ScriptDirectory

    from db.engine import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


HEAD = head_revision()  # where `fresh_database` leaves a database; tests of one revision name it themselves


def backend() -> str:
    """'postgresql' when $FNET_TEST_DB_URL is set, else 'sqlite'."""
    url = os.environ.get(TEST_URL_ENV)
    return make_url(url).get_backend_name() if url else "sqlite"


def _sqlite_template() -> Path:
    global _TEMPLATE
    if _TEMPLATE is None or not _TEMPLATE.exists():
        d = Path(tempfile.mkdtemp(prefix="fnet-db-template-"))
        atexit.register(shutil.rmtree, d, True)
        path = d / "template.sqlite"
        upgrade(f"sqlite:///{path}")
        _TEMPLATE = path
    return _TEMPLATE


def worker_url(url: str, name: str = "", empty: bool = False) -> str:
    """`url` with a search_path of its own for this pytest-xdist worker and database `name` (schema created if
    missing; with `empty`, dropped with all it holds first)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if not re.fullmatch(r"[A-Za-z0-9_]*", worker + name):
        raise ValueError(f"unexpected xdist worker or database name {worker!r}, {name!r}")
    schema = f"fnet_test_{worker}" + (f"_{name}" if name else "")
    base = make_url(url)
    engine = make_engine(base, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if empty:
                conn.execute(DropSchema(schema, cascade=True, if_exists=True))
            conn.execute(CreateSchema(schema, if_not_exists=True))
    finally:
        engine.dispose()
    return base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def fresh_database(tmp_path: Path, name: str = "") -> str:
    """The URL of an empty database migrated to head (see the module docstring); a test that needs two
    databases at once names the second (on PostgreSQL both would otherwise be the worker's one schema)."""
    url = os.environ.get(TEST_URL_ENV)
    if url:
        wurl = worker_url(url, name, empty=True)
        upgrade(wurl)
        return wurl
    path = Path(tmp_path) / "inspections.sqlite"
    shutil.copyfile(_sqlite_template(), path)
    return f"sqlite:///{path}"
