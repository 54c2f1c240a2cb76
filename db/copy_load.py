"""PostgreSQL's COPY for the bulk loads of `db.load`: the rows stream into a temporary table through COPY, then
one INSERT ... SELECT ... ON CONFLICT puts them in place, in the caller's transaction.

Why: row by row through psycopg's executemany, PostgreSQL spent ~220 µs a spectrum on 2 cores: at 1.44 M
spectra the load took 579 s (spectra 322 s, predictions 116 s, flags 141 s) where SQLite took 106 s
(README, 'The inspection database'). COPY parses rows in bulk, and the upsert then runs once.

The result is the executemany path's: the same conflict columns and updated columns, rows computed from
other tables by the same expressions (`computed`), and of two rows with one conflict key the later wins
(PostgreSQL refuses one INSERT that touches a row twice, so earlier duplicates are left out first).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, Table, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import JSON

ROW = "fnet_row"  # the staging table's row number: of duplicate keys, the last row is loaded


def _staging(table: Table, columns: Sequence[str]) -> Table:
    """A temporary table with `columns` of `table` (their types): `copy_upsert` drops it when done, and a
    failure rolls its creation back with the transaction."""
    return Table(f"fnet_stage_{table.name}", MetaData(), Column(ROW, BigInteger, nullable=False),
                 *(Column(c, table.c[c].type) for c in columns), prefixes=["TEMPORARY"])  # fmt: skip


def _copy(session: Session, stage: Table, rows: Iterable[Sequence[Any]], json_cols: set[int]) -> int:
    """COPY the rows (row number first) into `stage`; JSON values go as their JSON text."""
    from psycopg import sql

    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in stage.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(stage.name), names)
    dbapi = session.connection().connection.driver_connection
    n = 0
    with dbapi.cursor() as cur, cur.copy(statement) as copy:
        for n, row in enumerate(rows, 1):
            copy.write_row((n, *(json.dumps(v) if i in json_cols and v is not None else v
                                 for i, v in enumerate(row))))
    return n


def copy_upsert(session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                conflict: Sequence[str], update: Sequence[str],
                computed: Callable[[Any], tuple[Mapping[str, ColumnElement[Any]], Any]] | None = None) -> int:
    """Upsert `rows` (tuples in the order of `columns`) into `table` on PostgreSQL; `update` the given columns
    of rows already there (none: keep them); `computed(staged)` gives the columns worked out in the database
    for each staged row, as ({column: expression}, the FROM clause they need: `staged` joined to the tables
    they read; one join of the whole load is far faster than a subquery for each row). No commit. Returns
    the rows staged."""
    conn = session.connection()
    stage = _staging(table, columns)
    stage.create(conn)
    json_cols = {i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)}
    n = _copy(session, stage, rows, json_cols)
    last = select(func.max(stage.c[ROW])).group_by(*(stage.c[c] for c in conflict))
    latest = select(stage).where(stage.c[ROW].in_(last)).subquery()
    extra, source = computed(latest) if computed else ({}, latest)
    picked = select(*(latest.c[c] for c in columns), *(expr.label(k) for k, expr in extra.items()))
    picked = picked.select_from(source)
    ins = postgresql.insert(table).from_select([*columns, *extra], picked)
    if update:
        ins = ins.on_conflict_do_update(index_elements=list(conflict), set_={c: ins.excluded[c] for c in update})
    else:
        ins = ins.on_conflict_do_nothing(index_elements=list(conflict))
    conn.execute(ins)
    stage.drop(conn)
    return n


__all__ = ["copy_upsert"]
