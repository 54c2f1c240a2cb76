"""db safety: real concurrency (threads and processes), a writer killed mid-transaction, migrations with
data, and no SQL built by formatting strings.

Runs on a temp SQLite file, or on PostgreSQL with FNET_TEST_DB_URL set (see tests/db_helpers.py).
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from db_helpers import HEAD, backend, fresh_database
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from db import load
from db.consensus import resolve
from db.decisions import count_decisions, record_decision, refresh_triage_counters
from db.engine import (
    MIGRATIONS_DIR,
    current_revision,
    downgrade,
    make_engine,
    session_scope,
    upgrade,
)
from db.queue import next_item
from db.schema import Base, Decision, TriageFlag

REPO = Path(__file__).resolve().parents[2]
N_SPECTRA = 40
OIDS = [f"o{i:03d}" for i in range(N_SPECTRA)]
N_WORKERS = 4

# One child process: `python -c CHILD MODE URL NAME N`. It prints "ready", waits for a line on stdin
# (so all children start together), then works and prints its result as JSON.
CHILD = r"""
import json, sys, time
from db.engine import make_engine, session_scope
from db.decisions import record_decision
from db.queue import next_item
from db.schema import Decision

mode, url, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
engine = make_engine(url)
oids = [f"o{i:03d}" for i in range(40)]
print("ready", flush=True)
sys.stdin.readline()
with session_scope(engine) as s:
    if mode == "write":
        ids = [record_decision(s, oids[i % len(oids)], name, "correct", z_final=1.0 + i / 100, quality=i % 5,
                               comment=f"{name} #{i}").id for i in range(n)]
        print(json.dumps(ids), flush=True)
    elif mode == "queue":
        got = []
        while (sp := next_item(s, name, crosscheck_fraction=0.0)) is not None:
            got.append(sp.object_id)
            record_decision(s, sp, name, "accept", quality=3, z_model=1.5)
        print(json.dumps(got), flush=True)
    elif mode == "hold":  # a write transaction left open: many rows written, never committed
        from db.engine import begin_write
        begin_write(s)
        for i in range(n):
            s.add(Decision(spectrum_id=1 + i % 40, inspector_id=1, action="skip", flags=0))
        s.flush()
        print("holding", flush=True)
        time.sleep(600)
    elif mode == "stream":  # committed decisions one after another until killed
        i = 0
        while True:
            d = record_decision(s, oids[i % len(oids)], name, "correct", z_final=2.0, quality=3)
            print(d.id, flush=True)
            i += 1
"""


@pytest.fixture
def db_url(tmp_path):
    url = fresh_database(tmp_path)
    e = make_engine(url)
    with session_scope(e) as s:
        load.load_spectra(s, pd.DataFrame({"object_id": OIDS, "row": np.arange(N_SPECTRA)}))
        load.load_triage_flags(s, pd.DataFrame({"object_id": OIDS, "rule": "dv_pipe",
                                                "priority": np.linspace(1, 2, N_SPECTRA)}))  # fmt: skip
    e.dispose()
    return url


@pytest.fixture
def engine(db_url):
    e = make_engine(db_url)
    yield e
    e.dispose()


def _start(mode: str, url: str, name: str, n: int) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, url, name, str(n)], cwd=REPO, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    return p


def _run_together(mode: str, url: str, names: list[str], n: int) -> list:
    procs = [_start(mode, url, name, n) for name in names]
    try:
        for p in procs:
            line = p.stdout.readline()
            assert line.strip() == "ready", p.stderr.read()
        for p in procs:  # go, all at once
            p.stdin.write("go\n")
            p.stdin.flush()
        out = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=120)
            assert p.returncode == 0, stderr
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _integrity(engine) -> None:
    """The database is consistent: SQLite's own checks, and the queue counters match the decisions."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        before = conn.execute(select(TriageFlag.spectrum_id, TriageFlag.n_inspectors, TriageFlag.first_inspector_id)
                              .order_by(TriageFlag.id)).all()  # fmt: skip
    with session_scope(engine) as s:
        refresh_triage_counters(s)
        after = s.execute(select(TriageFlag.spectrum_id, TriageFlag.n_inspectors, TriageFlag.first_inspector_id)
                          .order_by(TriageFlag.id)).all()  # fmt: skip
        s.rollback()
    assert before == after


# --------------------------------------------------------------------------- concurrent writers
def test_threads_writing_decisions_lose_none(engine):
    n_threads, per = 8, 15
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []
    ids: list[int] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        try:
            barrier.wait(30)
            with session_scope(engine) as s:
                for i in range(per):
                    d = record_decision(s, OIDS[(k + i) % N_SPECTRA], f"thread{k}", "correct",
                                        z_final=0.5 + i / 10, quality=i % 5, comment=f"t{k}-{i}")  # fmt: skip
                    with lock:
                        ids.append(d.id)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            barrier.abort()  # the others stop waiting

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(set(ids)) == n_threads * per
    with session_scope(engine) as s:
        assert count_decisions(s) == n_threads * per
        comments = set(s.scalars(select(Decision.comment)))
        assert comments == {f"t{k}-{i}" for k in range(n_threads) for i in range(per)}
    _integrity(engine)


def test_processes_writing_decisions_lose_none(db_url, engine):
    per = 20
    out = _run_together("write", db_url, [f"proc{k}" for k in range(N_WORKERS)], per)
    ids = [i for ids in out for i in ids]
    assert len(ids) == len(set(ids)) == N_WORKERS * per
    with session_scope(engine) as s:
        assert count_decisions(s) == N_WORKERS * per
        assert sorted(s.scalars(select(Decision.id))) == sorted(ids)
    _integrity(engine)


# --------------------------------------------------------------------------- concurrent queue
def test_threads_asking_at_once_never_share_a_spectrum(engine):
    n_threads = 6
    rounds = 3
    barrier = threading.Barrier(n_threads)
    got: dict[int, list[list[str]]] = {k: [] for k in range(n_threads)}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            with session_scope(engine) as s:
                for _ in range(rounds):
                    barrier.wait(30)
                    sp = next_item(s, f"insp{k}", crosscheck_fraction=0.0)
                    got[k].append(sp.object_id)
                    barrier.wait(30)  # everyone holds a lease now: all must differ
                    record_decision(s, sp, f"insp{k}", "accept", quality=3, z_model=1.0)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for r in range(rounds):
        same_time = [got[k][r] for k in range(n_threads)]
        assert len(set(same_time)) == n_threads, same_time
    every = [o for k in got for o in got[k]]
    assert len(every) == len(set(every)) == n_threads * rounds
    # the highest priorities went first
    assert set(every) == set(OIDS[-n_threads * rounds:])
    _integrity(engine)


def test_processes_draining_the_queue_never_share_a_spectrum(db_url, engine):
    out = _run_together("queue", db_url, [f"insp{k}" for k in range(N_WORKERS)], 0)
    every = [o for got in out for o in got]
    assert Counter(every).most_common(1)[0][1] == 1, Counter(every).most_common(3)
    assert sorted(every) == OIDS  # drained: each spectrum exactly once
    with session_scope(engine) as s:
        assert count_decisions(s) == N_SPECTRA
        per_spec = s.execute(select(Decision.spectrum_id, func.count()).group_by(Decision.spectrum_id)).all()
        assert {n for _, n in per_spec} == {1}
        assert next_item(s, "late", crosscheck_fraction=0.0) is None
    _integrity(engine)


# --------------------------------------------------------------------------- killed writers
def test_writer_killed_mid_transaction_leaves_no_trace(db_url, engine):
    with session_scope(engine) as s:
        record_decision(s, OIDS[0], "alice", "accept", quality=4, z_model=1.0)
    p = _start("hold", db_url, "killer", 500)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "holding", p.stderr.read()
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == -signal.SIGKILL
    _integrity(engine)
    with session_scope(engine) as s:
        assert count_decisions(s) == 1  # none of its 500 uncommitted rows
        d = record_decision(s, OIDS[1], "bob", "accept", quality=3, z_model=1.0)  # the lock is free again
        assert d.id is not None and count_decisions(s) == 2


def test_writer_killed_while_committing_keeps_every_committed_decision(db_url, engine):
    p = _start("stream", db_url, "streamer", 0)
    seen: list[int] = []
    try:
        assert p.stdout.readline().strip() == "ready"
        p.stdin.write("go\n")
        p.stdin.flush()
        while len(seen) < 25:
            line = p.stdout.readline()
            assert line, p.stderr.read()
            seen.append(int(line))
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    _integrity(engine)
    with session_scope(engine) as s:
        ids = set(s.scalars(select(Decision.id)))
        assert set(seen) <= ids  # every decision it reported committed is there
        assert len(ids) >= len(seen)
        for d in s.scalars(select(Decision)):  # and each row is whole
            assert (d.action, d.z_final, d.quality, d.inspector.name) == ("correct", 2.0, 3, "streamer")


# --------------------------------------------------------------------------- migrations with data
REVISION_TEST = '''"""test-only revision: a column on spectra and a table of notes."""
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("spectra") as b:
        b.add_column(sa.Column("note", sa.Text()))
    op.create_table("notes", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("body", sa.Text()))


def downgrade():
    op.drop_table("notes")
    with op.batch_alter_table("spectra") as b:
        b.drop_column("note")
'''


def _snapshot(engine) -> dict:
    with engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(select(Base.metadata.tables[t]).order_by(*Base.metadata.tables[t].primary_key.columns)).all()]
            for t in ("spectra", "model_versions", "predictions", "inspectors", "decisions", "resolutions",
                      "triage_flags")
        }  # fmt: skip


def test_template_fit_revision_0002_keeps_predictions_and_decisions(db_url):
    """0002 adds the template-fit columns to predictions: down to 0001 keeps every FNet prediction and
    decision (only the Z_TPL values go), up again gives the columns back empty."""
    e = make_engine(db_url)
    with session_scope(e) as s:
        mv = load.add_model_version(s, "fnet", "cd" * 20, make_current=True)
        load.load_predictions(s, pd.DataFrame({
            "object_id": OIDS, "z_fnet": np.linspace(0.1, 3, N_SPECTRA), "z_tpl": np.linspace(0.1, 3, N_SPECTRA) + 0.01,
            "z_tpl_err": 1e-4, "tpl_dchi2": 80.0, "z_tpl_alt1": 1.5, "tpl_dchi2_alt1": 80.0}), mv.id)  # fmt: skip
        record_decision(s, OIDS[0], "alice", "accept", quality=4, model_version_id=mv.id, z_model=0.1)
        # re-loading FNet's columns alone updates them and keeps the stored template fit
        load.load_predictions(s, pd.DataFrame({"object_id": OIDS, "z_fnet": np.linspace(0.2, 3.1, N_SPECTRA)}), mv.id)
        pred = load.predictions_frame(s, mv.id)
    assert pred["tpl_candidates"][0] == [{"z": 1.5, "dchi2": 80.0}] and pred["z_tpl"].notna().all()
    assert np.allclose(pred["z"], np.linspace(0.2, 3.1, N_SPECTRA))
    assert np.allclose(pred["z_tpl"], np.linspace(0.1, 3, N_SPECTRA) + 0.01)
    e.dispose()

    downgrade(db_url, "0001")
    e = make_engine(db_url)
    with e.connect() as conn:
        cols = {c["name"] for c in inspect(e).get_columns("predictions")}
        assert not cols & {"z_tpl", "z_tpl_err", "tpl_dchi2", "tpl_candidates"}
        rows = conn.execute(text("SELECT z FROM predictions ORDER BY spectrum_id")).scalars().all()
        assert np.allclose(rows, pred["z"]) and conn.execute(text("SELECT count(*) FROM decisions")).scalar() == 1
    e.dispose()

    upgrade(db_url)
    assert current_revision(db_url) == HEAD
    e = make_engine(db_url)
    with session_scope(e) as s:
        again = load.predictions_frame(s, mv.id)
        assert np.allclose(again["z"], pred["z"]) and again["z_tpl"].isna().all()
        assert count_decisions(s) == 1
    with pytest.raises(DBAPIError, match="append-only"), e.begin() as conn:
        conn.execute(text("DELETE FROM decisions"))
    _integrity(e)
    e.dispose()


def test_class_revision_0003_keeps_predictions_and_decisions(db_url):
    """0003 adds FNet's class to predictions: down to 0002 keeps every prediction (its template fit too) and
    decision (only the class values go), up again gives the columns back empty, to be filled by a re-load."""
    probs = np.tile([0.90, 0.05, 0.03, 0.01, 0.01], (N_SPECTRA, 1))
    probs[:5] = [0.02, 0.01, 0.90, 0.05, 0.02]  # five stars
    frame = pd.DataFrame({"object_id": OIDS, "z_fnet": np.linspace(0.1, 3, N_SPECTRA), "z_tpl": 1.0,
                          "fnet_class": ["STAR"] * 5 + ["QSO"] * (N_SPECTRA - 5), "p_qso": probs[:, :2].sum(axis=1),
                          **{f"p_cls_{c}": probs[:, i] for i, c in enumerate(("qso", "bal", "star", "galaxy", "bad"))}})
    e = make_engine(db_url)
    with session_scope(e) as s:
        mv = load.add_model_version(s, "fnet", "ef" * 20, make_current=True)
        load.load_predictions(s, frame, mv.id)
        record_decision(s, OIDS[0], "alice", "not_qso", quality=4, spectral_type="STAR", model_version_id=mv.id)
        # re-loading FNet's z alone keeps the stored class
        load.load_predictions(s, frame[["object_id", "z_fnet"]].assign(z_fnet=frame["z_fnet"] + 0.01), mv.id)
        pred = load.predictions_frame(s, mv.id)
    assert pred["fnet_class"].tolist() == frame["fnet_class"].tolist()
    assert pred["class_probs"][0] == {"QSO": 0.02, "BAL": 0.01, "STAR": 0.90, "GALAXY": 0.05, "BAD": 0.02}
    np.testing.assert_allclose(pred["p_qso"], frame["p_qso"])
    e.dispose()

    downgrade(db_url, "0002")
    e = make_engine(db_url)
    with e.connect() as conn:
        assert not {c["name"] for c in inspect(e).get_columns("predictions")} & {"fnet_class", "p_qso", "class_probs"}
        z, z_tpl = zip(*conn.execute(text("SELECT z, z_tpl FROM predictions ORDER BY spectrum_id")).all())
        assert np.allclose(z, pred["z"]) and np.allclose(z_tpl, 1.0)
        assert conn.execute(text("SELECT count(*) FROM decisions")).scalar() == 1
    e.dispose()

    upgrade(db_url)
    assert current_revision(db_url) == HEAD
    e = make_engine(db_url)
    with session_scope(e) as s:
        again = load.predictions_frame(s, mv.id)
        assert np.allclose(again["z"], pred["z"]) and again["fnet_class"].isna().all() and again["p_qso"].isna().all()
        load.load_predictions(s, frame, mv.id)
        assert load.predictions_frame(s, mv.id)["fnet_class"].tolist() == frame["fnet_class"].tolist()
        assert count_decisions(s) == 1
    with pytest.raises(DBAPIError, match="append-only"), e.begin() as conn:
        conn.execute(text("DELETE FROM decisions"))
    _integrity(e)
    e.dispose()


def test_migrations_down_and_up_on_a_copy_with_data(db_url, tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    e = make_engine(db_url)
    with session_scope(e) as s:
        mv = load.add_model_version(s, "fnet", "ab" * 20, config={"k": 1}, make_current=True)
        load.load_predictions(s, pd.DataFrame({"object_id": OIDS, "z_fnet": np.linspace(0.1, 3, N_SPECTRA),
                                               "z_alt1": 0.5, "p_alt1": 0.1}), mv.id)  # fmt: skip
        record_decision(s, OIDS[0], "alice", "accept", quality=4, model_version_id=mv.id, z_model=0.1, comment="é")
        record_decision(s, OIDS[0], "bob", "correct", z_final=2.0, quality=4)
        resolve(s, OIDS[0], "carol", z=2.0, quality=4)
    before = _snapshot(e)
    e.dispose()

    if backend() == "sqlite":  # work on a copy; the original stays as it was
        src = Path(db_url.removeprefix("sqlite:///"))
        copy = tmp_path / "copy.sqlite"
        shutil.copyfile(src, copy)
        url = f"sqlite:///{copy}"
    else:  # PostgreSQL: the test schema is already a scratch copy
        url = db_url
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9001_test.py").write_text(REVISION_TEST.replace("{head}", HEAD))

    upgrade(url, script_location=scripts)
    assert current_revision(url) == "9001"
    e = make_engine(url)
    assert "note" in {c["name"] for c in inspect(e).get_columns("spectra")}
    with e.begin() as conn:
        conn.execute(text("UPDATE spectra SET note = :n WHERE object_id = :o").bindparams(n="hi", o=OIDS[1]))
    assert _snapshot(e)["decisions"] == before["decisions"]
    e.dispose()

    downgrade(url, HEAD, script_location=scripts)
    assert current_revision(url) == HEAD
    e = make_engine(url)
    assert _snapshot(e) == before  # everything the head schema holds survived the round trip
    with e.connect() as conn:  # and the schema is the head's again, triggers included
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    with pytest.raises(DBAPIError, match="append-only"), e.begin() as conn:
        conn.execute(text("DELETE FROM decisions"))
    _integrity(e)
    e.dispose()

    upgrade(url, script_location=scripts)
    e = make_engine(url)
    assert _snapshot(e) == before
    e.dispose()
    downgrade(url, HEAD, script_location=scripts)

    downgrade(url, "base")  # base drops the schema (and the data with it) ...
    assert current_revision(url) is None
    upgrade(url)  # ... and head rebuilds it empty
    e = make_engine(url)
    with session_scope(e) as s:
        assert count_decisions(s) == 0
    e.dispose()
    if backend() == "sqlite":
        assert _snapshot(make_engine(db_url)) == before  # the original was never touched


# --------------------------------------------------------------------------- no string-formatted SQL
EXECUTORS = {"text", "exec_driver_sql", "execute", "executemany", "executescript"}


def _formatted(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return not (isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant))
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"


def test_no_sql_is_built_by_string_formatting():
    files = sorted((REPO / "db").rglob("*.py"))
    assert len(files) >= 9
    offenders = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in EXECUTORS and _formatted(node.args[0]):
                offenders.append(f"{f.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_the_lint_sees_formatting():
    bad = ast.parse('conn.execute(f"SELECT * FROM t WHERE id = {x}")\ntext("a %s" % x)\ns.execute("x {}".format(y))')
    calls = [n for n in ast.walk(bad) if isinstance(n, ast.Call) and n.args and _formatted(n.args[0])]
    assert len(calls) == 3


def test_hostile_object_ids_and_comments_are_only_data(engine):
    evil = "o'); DROP TABLE decisions; --"
    with session_scope(engine) as s:
        load.load_spectra(s, pd.DataFrame({"object_id": [evil], "row": [99]}))
        d = record_decision(s, evil, "x'; DELETE FROM spectra; --", "correct", z_final=1.0, quality=2,
                            comment="%s %(x)s {0} :param ? $1")  # fmt: skip
    with session_scope(engine) as s:
        assert s.get(Decision, d.id).comment == "%s %(x)s {0} :param ? $1"
        assert count_decisions(s) == 1
        assert s.scalar(select(func.count()).select_from(Base.metadata.tables["spectra"])) == N_SPECTRA + 1
