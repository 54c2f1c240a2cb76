"""Parquet parts and folding: how each chunk's rows reach index.parquet / rejected.parquet.

A committed chunk leaves `parts/part-SEQ.index.parquet` (written last, by
atomic rename: the commit point) and, when it rejected anything,
`parts/part-SEQ.rejected.parquet`. `fold_parts` streams the parts into the
consolidated files; each records the last part sequence it holds in its
Parquet metadata, so a part is never counted twice, and a crash between
folding rejected.parquet and index.parquet is harmless.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from inspector.store.layout import (
    BASE_SCHEMA,
    DERIVED_SCHEMA,
    INDEX_FILE,
    PARTS_DIR,
    REJECTED_FILE,
    REJECTED_SCHEMA,
)

SEQ_KEY = b"inspector.last_seq"
ROW_GROUP = 4096  # rows per parquet row group in the folded index (bounds finalize's buffer)


def part_path(store: Path, seq: int, kind: str) -> Path:
    """parts/part-SEQ.KIND.parquet, KIND "index" or "rejected"."""
    return store / PARTS_DIR / f"part-{seq:08d}.{kind}.parquet"


def _seq_of(p: Path) -> int:
    return int(p.name.split(".")[0].split("-")[1])


def committed_parts(store: Path) -> list[int]:
    """Sequence numbers of the chunks whose index part exists (committed), in order."""
    return sorted(_seq_of(p) for p in (store / PARTS_DIR).glob("part-*.index.parquet"))


def last_seq(path: Path) -> int:
    """The last part sequence number folded into a consolidated parquet file (-1 if none)."""
    if not path.exists():
        return -1
    meta = pq.read_schema(path).metadata or {}
    return int(meta.get(SEQ_KEY, b"-1"))


def recover_parts(store: Path) -> tuple[list[int], int]:
    """(committed parts not yet folded, next sequence number), after dropping what a crash left behind.

    Leftovers are temp files, rejected parts of chunks that never committed,
    and parts already folded (a crash after folding, before unlinking).
    """
    idx_seq = last_seq(store / INDEX_FILE)
    rej_seq = last_seq(store / REJECTED_FILE)
    for p in (store / PARTS_DIR).glob("*.tmp"):
        p.unlink()
    committed = committed_parts(store)
    for p in (store / PARTS_DIR).glob("part-*.rejected.parquet"):
        seq = _seq_of(p)
        if seq not in committed or seq <= rej_seq:
            p.unlink()
    for seq in committed:
        if seq <= idx_seq:
            part_path(store, seq, "index").unlink()
    new_parts = [s for s in committed if s > idx_seq]
    return new_parts, max([idx_seq, rej_seq, *committed], default=-1) + 1


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns: missing ones null, types cast."""
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def unify(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema holding every column of `schemas`, base columns first, derived last."""
    base = [f.name for f in BASE_SCHEMA]
    derived = [f.name for f in DERIVED_SCHEMA]
    fields: dict[str, pa.Field] = {}
    for s in schemas:
        for f in s:
            f = f.remove_metadata()
            if f.name not in fields or pa.types.is_null(fields[f.name].type):
                fields[f.name] = f
    middle = [n for n in fields if n not in base and n not in derived]
    order = [n for n in base if n in fields] + middle + [n for n in derived if n in fields]
    return pa.schema([fields[n] for n in order])


def atomic_write_table(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def stream_tables(out: Path, sources: Iterable[pa.Table], schema: pa.Schema, last_seq: int) -> int:
    """Write tables one after another into `out` (atomically); returns the row count.

    Streaming keeps memory at one part/row group, whatever N is.
    """
    schema = schema.with_metadata({SEQ_KEY: str(last_seq).encode()})
    tmp = out.with_name(out.name + ".tmp")
    n = 0
    plain = schema.remove_metadata()
    pending: list[pa.Table] = []
    n_pending = 0
    with pq.ParquetWriter(tmp, schema) as writer:

        def flush() -> None:
            if pending:
                writer.write_table(pa.concat_tables(pending).replace_schema_metadata(schema.metadata))
                pending.clear()

        for t in sources:  # parts are small: gather them into row groups of ~4k rows
            if t.num_rows:
                pending.append(conform(t, plain))
                n_pending += t.num_rows
                n += t.num_rows
                if n_pending >= ROW_GROUP:
                    flush()
                    n_pending = 0
        flush()
    os.replace(tmp, out)
    return n


def read_small(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One small parquet file, read without the dataset layer and its thread pools.

    (pq.read_table spins up arrow's thread pools, whose allocator caches made
    the parent's RSS grow by tens of MB while folding thousands of parts.)
    """
    with pq.ParquetFile(path) as pf:
        return pf.read(columns=columns, use_threads=False)


def iter_batches(path: Path) -> Iterable[pa.Table]:
    """A consolidated parquet file one row group at a time (nothing if it does not exist)."""
    if path.exists():
        with pq.ParquetFile(path) as pf:
            for i in range(pf.num_row_groups):
                yield pf.read_row_group(i, use_threads=False)


def fold_parts(store: Path, parts: Sequence[int], n_rows: int) -> tuple[int, int]:
    """Fold parts `parts` into index.parquet / rejected.parquet, then delete them; (n index, n rejected).

    `n_rows` is the committed row count the folded index must hold.
    """
    last = max(parts) if parts else max(last_seq(store / INDEX_FILE), -1)
    rej_seq = last_seq(store / REJECTED_FILE)
    rej_parts = [part_path(store, s, "rejected") for s in parts if part_path(store, s, "rejected").exists()]
    idx_parts = [part_path(store, s, "index") for s in parts]
    # files attempted by parts not yet in rejected.parquet: their older rejections are superseded
    # (a rejected file that changed and was read again)
    tried = [read_small(p, columns=["file"]).column("file").combine_chunks().cast(pa.string())
             for s, p in [(s, part_path(store, s, k)) for s in parts for k in ("index", "rejected")]
             if s > rej_seq and p.exists()]
    attempted = pc.unique(pa.concat_arrays(tried)) if tried else pa.array([], pa.string())

    if rej_seq < last:
        def old_rejected() -> Iterable[pa.Table]:
            for t in iter_batches(store / REJECTED_FILE):
                yield t.filter(pc.invert(pc.is_in(t.column("file"), value_set=attempted)))

        def all_rejected() -> Iterable[pa.Table]:
            yield from old_rejected()
            for p in rej_parts:
                yield read_small(p)

        n_rej = stream_tables(store / REJECTED_FILE, all_rejected(), REJECTED_SCHEMA, last)
    else:
        n_rej = pq.ParquetFile(store / REJECTED_FILE).metadata.num_rows if (store / REJECTED_FILE).exists() else 0

    if last_seq(store / INDEX_FILE) < last or not (store / INDEX_FILE).exists():
        schemas = [pq.read_schema(p) for p in idx_parts]
        if (store / INDEX_FILE).exists():
            schemas.insert(0, pq.read_schema(store / INDEX_FILE))
        schema = unify(schemas) if schemas else pa.schema([*BASE_SCHEMA, *DERIVED_SCHEMA])

        def all_index() -> Iterable[pa.Table]:
            yield from iter_batches(store / INDEX_FILE)
            for p in idx_parts:
                yield read_small(p)

        n_idx = stream_tables(store / INDEX_FILE, all_index(), schema, last)
    else:
        n_idx = pq.ParquetFile(store / INDEX_FILE).metadata.num_rows
    if n_idx != n_rows:
        raise RuntimeError(f"index has {n_idx} rows, expected {n_rows}")
    for p in [*idx_parts, *rej_parts]:
        p.unlink(missing_ok=True)
    return n_idx, n_rej
