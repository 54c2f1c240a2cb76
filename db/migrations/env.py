"""Alembic environment for the inspection database (see db/engine.py: upgrade / downgrade).

The URL comes from `config.attributes["url"]` (set by `db.engine.alembic_config`),
else `sqlalchemy.url` in the ini file, else $FNET_DB_URL / the default SQLite file.

SQLite: migrations run in one `BEGIN IMMEDIATE` transaction (transactional DDL:
a failed migration leaves the old schema), in batch mode (ALTER through table
rebuilds), with foreign keys off while tables are rebuilt; `PRAGMA
foreign_key_check` must come back empty before the transaction commits.
"""
from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.pool import NullPool

from db.engine import default_url, make_engine
from db.schema import Base

config = context.config
target_metadata = Base.metadata

if config.attributes.get("url") is None and config.config_file_name:
    fileConfig(config.config_file_name, disable_existing_loggers=False)  # the alembic command line


def _url() -> str:
    return config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or default_url()


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True,
        render_as_batch=url.startswith("sqlite"), dialect_opts={"paramstyle": "named"},
    )  # fmt: skip
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url(), poolclass=NullPool)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as connection:
            if sqlite:
                # PRAGMA foreign_keys is a no-op inside a transaction: set it before BEGIN
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
                connection = connection.execution_options(fnet_write=True)  # BEGIN IMMEDIATE
            context.configure(
                connection=connection, target_metadata=target_metadata,
                render_as_batch=sqlite, transactional_ddl=True, compare_type=True,
            )  # fmt: skip
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    bad = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if bad:
                        raise RuntimeError(f"migration left rows violating foreign keys: {bad[:5]}")
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
