"""The SQL statements of one "next spectrum, then decide", each with its time: where a database's latency goes.

    python bench/db_statements.py                                   # a temp SQLite file, 20,000 spectra
    python bench/db_statements.py --url postgresql+psycopg://user@host/fnet_stmts   # an empty database

It loads a synthetic survey as bench/db.py does (`--n` spectra, ~40 % of them queued), then repeats
`db.queue.next_item` + `db.decisions.record_decision` (`--repeats` times, after a warm-up) and times each
statement the driver executes, from SQLAlchemy's before/after cursor events. It prints the median wall time
of the whole next + decide and, per statement of the sequence, the median time and the SQL's opening words;
what the statements leave of the whole is the commits and SQLAlchemy's Python. On a server each
statement is a round trip, so their count matters as much as their plans.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=None, help="SQLAlchemy URL of an empty database (default: a temp SQLite file)")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=50)
    a = ap.parse_args(argv)

    from db.decisions import record_decision
    from db.engine import make_engine, session_scope, upgrade
    from db.load import add_model_version, load_predictions, load_spectra, load_triage_flags
    from db.queue import next_item

    bench = _bench_db()  # bench/db.py's synthetic survey (its file name would shadow the db package)
    work = Path(tempfile.mkdtemp(prefix="fnet-bench-stmts-"))
    url = a.url or f"sqlite:///{work / 'inspections.sqlite'}"
    try:
        rng = np.random.default_rng(0)
        index = bench.store_index(a.n, rng)
        pred = bench.predictions(index, rng)
        upgrade(url)
        engine = make_engine(url)
        with session_scope(engine) as s:
            load_spectra(s, index)
            mv = add_model_version(s, name="fnet-bench", sha1="b" * 40, make_current=True)
            load_predictions(s, pred, mv.id)
            load_triage_flags(s, bench.triage_flags(index, rng, mv.id))

        times: dict[int, list[float]] = defaultdict(list)
        text: dict[int, str] = {}
        seq: list[tuple[float, str]] = []

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
            conn.info["t0"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
            seq.append((time.perf_counter() - conn.info["t0"], " ".join(statement.split())[:90]))

        totals = []
        with session_scope(engine) as s:
            for k in range(a.repeats + 3):
                seq.clear()
                t0 = time.perf_counter()
                spec = next_item(s, "stmts", crosscheck_fraction=0.0)
                if spec is None:
                    break
                record_decision(s, spec, "stmts", "accept", quality=3, z_model=2.0)
                if k < 3:
                    continue  # warm-up: first plans, the inspector's row
                totals.append(time.perf_counter() - t0)
                for i, (dt, sql) in enumerate(seq):
                    times[i].append(dt)
                    text.setdefault(i, sql)
        engine.dispose()

        print(f"bench/db_statements.py: {engine.dialect.name}, {a.n:,} spectra, {len(totals)} next + decide")
        print(f"next + decide, median wall {np.median(totals) * 1e3:.1f} ms; {len(times)} statements:")
        for i in sorted(times):
            print(f"  {i + 1:2d}. {np.median(times[i]) * 1e3:6.2f} ms  {text[i]}")
        stmt_sum = sum(float(np.median(v)) for v in times.values())
        print(f"statements' medians add up to {stmt_sum * 1e3:.1f} ms; the rest is commits and Python")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _bench_db():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_db", Path(__file__).resolve().parent / "db.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


if __name__ == "__main__":
    raise SystemExit(main())
