"""Soak: inspectors' processes killed with `kill -9` while they take the queue and decide; promotions killed
at random moments; the poison-file ingest soak. Prints what was acknowledged against what was stored.

    python bench/soak.py                                   # SQLite: 8 writers for 60 s, 10 killed promotions
    python bench/soak.py --seconds 20 --promote-kills 0    # the writers alone, shorter
    python bench/soak.py --url postgresql+psycopg://user@host/fnet   # also PostgreSQL (schema fnet_soak)
    python bench/soak.py --json out.json                   # the figures as JSON too (the test reads them)

Writers (`--writers`, 8): each is a process that loops `db.queue.next_item` (a short lease) then
`db.decisions.record_decision`, and prints a line only after each commit: the lease it got (from the
database's row) and the decision id ("acknowledged"). The soak kills a random writer every 0.1-0.6 s
(once it has imported and connected: on a loaded machine that takes seconds, and a kill before it tests nothing)
with SIGKILL and starts another (half of the time under the killed one's name, so its held lease comes
back to it; otherwise under a new name, so the lease has to expire and be taken over). Then:

- acknowledged vs stored: every acknowledged decision must be in the database (lost: target 0);
  stored but not acknowledged are the ones killed between commit and print (harmless);
- duplicates: spectra decided by more than one writer although each decided within its lease (no
  cross-checks are asked for: target 0); counted apart, spectra decided twice because a writer, slowed
  by the load, decided after its lease had expired and another had taken the spectrum over (leases
  expire by design; the soak's are 2 s, so on a loaded machine this happens);
- overlapping leases: two writers holding the same spectrum at once, from the lease rows each got
  (held from leased_at until leased_until or its own decision: target 0);
- integrity: SQLite's integrity_check and foreign_key_check, and the queue counters equal to a
  recount from the decisions;
- throughput: decisions stored per second, all writers together, kills included.

Promotions (`--promote-kills`, 10): a 40-spectrum mock with the demo model current and a second version
(the demo model nudged); `inspector models promote` to whichever is not current, each run killed with
SIGKILL, every other one at a random moment of its run (after one clean run is timed), the others at
each named step in turn; then the database is checked: exactly one current version, its predictions
for every spectrum, and flags that all name it (target: every time).

Ingest: `bench/soak_ingest.py` (the poison-file ingest soak, another engineer's) is run when it exists;
until then the soak says so.

PostgreSQL: everything goes into the schema `fnet_soak` of the given database, dropped and made anew at
the start (nothing else there is touched). Needs `pip install "psycopg[binary]"`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path[0] = str(REPO)  # the repo, not bench/ (bench/db.py would shadow db/)

N_SPECTRA = 60_000
LEASE_S = 2.0
SCHEMA = "fnet_soak"


# --------------------------------------------------------------------------- one writer (a child process)
def writer(url: str, name: str) -> None:
    """Take the queue and decide until it is empty; print each lease and decision after its commit."""
    from db.decisions import record_decision
    from db.engine import make_engine, session_scope
    from db.queue import lease_of, next_item

    engine = make_engine(url)
    with session_scope(engine) as s:
        print("R", flush=True)  # imported and connected: from now on a kill can catch it mid-write
        while True:
            sp = next_item(s, name, lease_seconds=LEASE_S, crosscheck_fraction=0.0)
            if sp is None:
                return
            lease = lease_of(s, sp.id)
            if lease is not None:
                print(f"L {sp.id} {lease.leased_at.timestamp():.6f} {lease.leased_until.timestamp():.6f}", flush=True)
            d = record_decision(s, sp, name, "accept", quality=3, z_model=1.0)
            print(f"A {d.id} {sp.id}", flush=True)


# --------------------------------------------------------------------------- the database
def pg_schema_url(url: str) -> str:
    """`url` with the soak's own schema as search_path; the schema dropped and created anew."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from db.engine import make_engine

    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS fnet_soak CASCADE"))
            conn.execute(text("CREATE SCHEMA fnet_soak"))
    finally:
        engine.dispose()
    return make_url(url).update_query_dict({"options": f"-csearch_path={SCHEMA}"}).render_as_string(hide_password=False)


def prepare(url: str, n: int) -> None:
    """A migrated database with `n` spectra, all flagged (the queue the writers drain)."""
    import numpy as np
    import pandas as pd

    from db.engine import make_engine, session_scope, upgrade
    from db.load import load_spectra, load_triage_flags

    upgrade(url)
    oids = [f"soak-{i:07d}" for i in range(n)]
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            load_spectra(s, pd.DataFrame({"object_id": oids, "row": np.arange(n)}))
            load_triage_flags(s, pd.DataFrame({"object_id": oids, "rule": "dv_pipe",
                                               "priority": np.random.default_rng(0).random(n)}))  # fmt: skip
    finally:
        engine.dispose()


def integrity(url: str) -> dict[str, Any]:
    """SQLite's own checks (where SQLite) and the queue counters against a recount from the decisions."""
    from sqlalchemy import select

    from db.decisions import refresh_triage_counters
    from db.engine import make_engine, session_scope
    from db.schema import TriageFlag

    out: dict[str, Any] = {}
    engine = make_engine(url)
    try:
        cols = (TriageFlag.spectrum_id, TriageFlag.n_inspectors, TriageFlag.first_inspector_id)
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                out["integrity_check"] = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
                out["foreign_key_violations"] = len(conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall())
            before = conn.execute(select(*cols).order_by(TriageFlag.id)).all()
        with session_scope(engine) as s:
            refresh_triage_counters(s)
            after = s.execute(select(*cols).order_by(TriageFlag.id)).all()
            s.rollback()
        out["queue_counters_match"] = before == after
    finally:
        engine.dispose()
    out["ok"] = (out.get("integrity_check", "ok") == "ok" and not out.get("foreign_key_violations")
                 and out["queue_counters_match"])  # fmt: skip
    return out


# --------------------------------------------------------------------------- the writers' soak
class Writer:
    """A writer process and the lines it printed (read by a thread, so a killed one loses nothing read)."""

    def __init__(self, url: str, name: str, log: list[tuple[str, str]], lock: threading.Lock) -> None:
        self.name = name
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--writer", name, "--url", url],
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        self.ready = threading.Event()  # its first line read (or its end)
        self.thread = threading.Thread(target=self._read, args=(log, lock), daemon=True)
        self.thread.start()

    def _read(self, log: list[tuple[str, str]], lock: threading.Lock) -> None:
        for line in self.proc.stdout:
            self.ready.set()
            with lock:
                log.append((self.name, line))
        self.ready.set()


def soak_writers(url: str, n_writers: int, seconds: float, seed: int = 0, min_acks: int = 0) -> dict[str, Any]:
    """Run the writers for `seconds`, killing one every 0.1-0.6 s; then compare the log with the database."""
    from sqlalchemy import func, select

    from db.engine import make_engine, session_scope
    from db.schema import Decision, Inspector

    rng = random.Random(seed)
    log: list[tuple[str, str]] = []
    lock = threading.Lock()
    writers = [Writer(url, f"w{k}", log, lock) for k in range(n_writers)]
    started, kills, restarts = time.time(), 0, 0

    def acks() -> int:
        with lock:
            return sum(line.startswith("A ") for _, line in log)

    t0 = time.perf_counter()
    try:
        # `seconds`, or longer (up to 4x) until `min_acks` decisions were acknowledged: a loaded machine
        # must not make the soak too short to mean anything
        while (elapsed := time.perf_counter() - t0) < seconds or (acks() < min_acks and elapsed < 4 * seconds):
            time.sleep(rng.uniform(0.1, 0.6))
            k = rng.randrange(n_writers)
            w = writers[k]
            if not w.ready.wait(30):  # a kill while it is still importing tests nothing (a loaded machine: seconds)
                raise RuntimeError(f"writer {w.name} printed nothing in 30 s (see `bench/soak.py --writer NAME --url URL`)")
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGKILL)
                kills += 1
            w.proc.wait()
            name = w.name if rng.random() < 0.5 else f"w{k}-r{restarts}"
            writers[k] = Writer(url, name, log, lock)
            restarts += 1
    finally:
        for w in writers:  # the end is a kill too
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGKILL)
                kills += 1
        every = list(writers)
        for w in every:
            w.proc.wait()
    elapsed = time.perf_counter() - t0
    time.sleep(0.2)
    with lock:
        lines = list(log)

    acked: dict[int, tuple[str, int]] = {}
    leases: list[tuple[int, str, float, float]] = []
    for name, line in lines:
        parts = line.split()
        try:
            if parts[0] == "A" and len(parts) == 3:
                acked[int(parts[1])] = (name, int(parts[2]))
            elif parts[0] == "L" and len(parts) == 4:
                leases.append((int(parts[1]), name, float(parts[2]), float(parts[3])))
        except (ValueError, IndexError):
            continue  # a line cut by the kill

    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            rows = s.execute(select(Decision.id, Decision.spectrum_id, Inspector.name, Decision.decided_at)
                             .join(Inspector, Inspector.id == Decision.inspector_id)
                             .where(Decision.decided_at >= _utc(started))).all()  # fmt: skip
            n_all = s.scalar(select(func.count()).select_from(Decision))
    finally:
        engine.dispose()
    stored = {r[0]: r for r in rows}
    lost = sorted(set(acked) - set(stored))
    wrong = sorted(i for i, (name, sid) in acked.items() if i in stored and stored[i][1:3] != (sid, name))
    per_spectrum: dict[int, set[str]] = {}
    decided_at: dict[tuple[int, str], float] = {}
    for _, sid, name, at in rows:
        per_spectrum.setdefault(sid, set()).add(name)
        decided_at[(sid, name)] = min(decided_at.get((sid, name), float("inf")), at.timestamp())
    dup = [sid for sid, names in per_spectrum.items() if len(names) > 1]
    late = late_decisions(leases, decided_at)
    duplicates = sum(1 for sid in dup if not any((sid, name) in late for name in per_spectrum[sid]))
    overlaps = overlapping_leases(leases, decided_at)
    return {
        "writers": n_writers, "seconds": round(elapsed, 1), "kills": kills, "acknowledged": len(acked),
        "stored": len(stored), "stored_total": n_all, "lost": len(lost), "lost_ids": lost[:10],
        "acknowledged_but_different": len(wrong), "stored_not_acknowledged": len(set(stored) - set(acked)),
        "duplicates": duplicates, "decided_twice_after_a_lease_expired": len(dup) - duplicates,
        "late_decisions": len(late), "leases_logged": len(leases), "overlapping_leases": overlaps,
        "decisions_per_s": round(len(stored) / elapsed, 1), "integrity": integrity(url),
    }  # fmt: skip


def _utc(epoch: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch - 1, UTC)


def late_decisions(leases: list[tuple[int, str, float, float]],
                   decided_at: dict[tuple[int, str], float]) -> set[tuple[int, str]]:
    """(spectrum, writer) decided after the writer's last logged lease on it had expired. Leases expire on
    purpose (a person who walks away must not keep a spectrum forever), and a decision is never refused
    for it, so a spectrum taken over after its lease ran out can be decided by both: that is a late
    decision, not the queue handing one spectrum to two at once."""
    last: dict[tuple[int, str], float] = {}
    for sid, name, _, until in leases:
        last[(sid, name)] = max(last.get((sid, name), 0.0), until)
    return {k for k, at in decided_at.items() if k in last and at > last[k]}


def overlapping_leases(leases: list[tuple[int, str, float, float]], decided_at: dict[tuple[int, str], float]) -> int:
    """Pairs of leases on one spectrum, held by different writers, whose holding times intersect: a lease is
    held from leased_at until leased_until, or until its holder's decision on the spectrum if sooner."""
    by_sid: dict[int, list[tuple[float, float, str]]] = {}
    for sid, name, start, until in leases:
        end = min(until, decided_at.get((sid, name), float("inf")))
        by_sid.setdefault(sid, []).append((start, max(end, start), name))
    n = 0
    for held in by_sid.values():
        held.sort()
        for i, (s1, e1, n1) in enumerate(held):
            n += sum(1 for s2, e2, n2 in held[i + 1:] if n2 != n1 and s2 < e1 and s1 < e2)
    return n


# --------------------------------------------------------------------------- killed promotions
def promotion_mock(work: Path) -> dict[str, Any]:
    """A 40-spectrum mock, predicted and triaged with the demo model (current), and a nudged copy of the demo
    model registered as a second version."""
    import torch

    from db.engine import make_engine, session_scope
    from db.load import add_model_version, current_model
    from inspector.ingest import ingest
    from inspector.mock import make_survey
    from inspector.pipeline.predict import write_predictions
    from inspector.pipeline.triage import load_into_db, run_triage
    from model.assets import DEMO_MODEL
    from model.checkpoint import file_sha1, load_checkpoint, save_checkpoint

    make_survey(work / "survey", 40, seed=5, workers=1, progress=False)
    store = work / "store"
    ingest([str(work / "survey")], store, workers=1, progress=False)
    side = write_predictions(store, DEMO_MODEL, device="cpu")
    flags, _, meta = run_triage(store, Path(side["predictions"]))
    url = f"sqlite:///{(work / 'promote.sqlite').resolve()}"
    load_into_db(url, store, Path(side["predictions"]), flags, meta)
    model, _ = load_checkpoint(DEMO_MODEL)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * p.std().nan_to_num(0.0) * torch.randn(p.shape, generator=g))
    path = save_checkpoint(work / "models" / "nudged.pt", model)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            old = current_model(s).id
            new = add_model_version(s, "nudged", file_sha1(path), parent_sha1=file_sha1(DEMO_MODEL), path=str(path)).id
    finally:
        engine.dispose()
    return {"store": store, "url": url, "versions": (old, new)}


def whole(url: str) -> tuple[bool, list[int]]:
    """(one current version with a prediction for every spectrum and flags that all name it, current ids)."""
    from sqlalchemy import func, select

    from db.engine import make_engine, session_scope
    from db.promotion import model_state
    from db.schema import Spectrum

    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            st = model_state(s)
            n = s.scalar(select(func.count()).select_from(Spectrum))
    finally:
        engine.dispose()
    ok = len(st["current"]) == 1 and st["predictions"] == n and st["flag_versions"] in ([], st["current"])
    return ok, st["current"]


def soak_promotions(n: int, seed: int = 0) -> dict[str, Any]:
    """`n` promotions and rollbacks killed with SIGKILL, every other one at a random moment of its run, the
    others at the named steps in turn (`inspector.pipeline.promote.STEPS`, paused there by its hook: a random
    moment rarely falls in the milliseconds the database phases take on a small mock); the database
    checked after each."""
    from inspector.pipeline.promote import HOOK_ENV, STEPS

    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="fnet-soak-promote-"))
    try:
        m = promotion_mock(work)
        old, new = m["versions"]

        def run(version: int, kill_after: float | None, pause_at: str = "") -> tuple[int, float]:
            cmd = [sys.executable, "-c", "from inspector.cli import app; app()", "models", "promote", str(version),
                   "--store", str(m["store"]), "--db", m["url"]]  # fmt: skip
            env = {**os.environ, HOOK_ENV: f"{pause_at}:pause" if pause_at else ""}
            t = time.perf_counter()
            p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if pause_at:  # it waits at the step: kill it there
                for line in p.stdout:
                    if line.startswith("paused at"):
                        break
                p.send_signal(signal.SIGKILL)
            try:
                p.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
            p.stdout.close()
            return p.returncode, time.perf_counter() - t

        rc, clean_s = run(new, None)  # one clean run: how long a promotion takes here
        if rc != 0 or not whole(m["url"])[0]:
            raise RuntimeError(f"the clean promotion failed (exit {rc})")
        results = []
        cur = [new]
        for i in range(n):
            target = old if cur == [new] else new  # always a real switch: to the version not current now
            step = STEPS[(i // 2) % len(STEPS)] if i % 2 else ""
            rc, _ = run(target, None if step else rng.uniform(0.4, 1.02) * clean_s, step)
            ok, cur = whole(m["url"])
            results.append({"target": target, "at": step or "random", "killed": rc == -signal.SIGKILL, "whole": ok,
                            "current": cur})  # fmt: skip
        return {"runs": n, "clean_seconds": round(clean_s, 1),
                "killed": sum(r["killed"] for r in results), "whole": sum(r["whole"] for r in results),
                "switched": sum(r["current"] == [r["target"]] for r in results), "detail": results}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- the ingest soak
def soak_ingest() -> dict[str, Any]:
    """Run bench/soak_ingest.py where it exists (its own output shown as it is)."""
    script = REPO / "bench" / "soak_ingest.py"
    if not script.exists():
        return {"ran": False, "note": "bench/soak_ingest.py (the poison-file ingest soak) is not in this tree yet"}
    r = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, check=False)
    return {"ran": True, "returncode": r.returncode, "output": (r.stdout + r.stderr)[-4000:]}


# --------------------------------------------------------------------------- report
def show_writers(where: str, r: dict[str, Any]) -> None:
    i = r["integrity"]
    print(f"\n== {where}: {r['writers']} writers, {r['seconds']} s, {r['kills']} kill -9")
    print(f"  acknowledged {r['acknowledged']}, stored {r['stored']}: lost {r['lost']} (target 0), "
          f"stored but not acknowledged {r['stored_not_acknowledged']} (killed between commit and reply)")
    print(f"  duplicates {r['duplicates']} (target 0); overlapping leases {r['overlapping_leases']} (target 0) "
          f"of {r['leases_logged']} leases logged")
    print(f"  decided after the decider's {LEASE_S:g} s lease had expired: {r['late_decisions']}, of which "
          f"{r['decided_twice_after_a_lease_expired']} spectra were taken over and decided again (by design)")
    print(f"  integrity: {'ok' if i['ok'] else 'FAILED'} {json.dumps({k: v for k, v in i.items() if k != 'ok'})}")
    print(f"  throughput: {r['decisions_per_s']} decisions/s (all writers, kills included)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--min-acks", type=int, default=0,
                    help="go on past --seconds (up to 4x) until this many decisions were acknowledged")
    ap.add_argument("--spectra", type=int, default=N_SPECTRA)
    ap.add_argument("--url", help="also soak this PostgreSQL database (in its schema fnet_soak)")
    ap.add_argument("--promote-kills", type=int, default=10)
    ap.add_argument("--no-ingest", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--writer", help=argparse.SUPPRESS)  # a child: `--writer NAME --url URL`
    a = ap.parse_args()
    if a.writer:
        writer(a.url, a.writer)
        return 0

    report: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="fnet-soak-"))
    try:
        targets = [("sqlite", f"sqlite:///{tmp / 'soak.sqlite'}")]
        if a.url:
            targets.append(("postgresql", pg_schema_url(a.url)))
        for where, url in targets:
            t = time.perf_counter()
            prepare(url, a.spectra)
            print(f"{where}: {a.spectra} flagged spectra loaded in {time.perf_counter() - t:.1f} s", flush=True)
            report[where] = soak_writers(url, a.writers, a.seconds, a.seed, a.min_acks)
            show_writers(where, report[where])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.promote_kills:
        p = report["promotion"] = soak_promotions(a.promote_kills, a.seed)
        print(f"\n== promotions: {p['runs']} promotions killed with kill -9, half at a random moment (a clean run: "
              f"{p['clean_seconds']} s), half at a named step; {p['killed']} were still running when killed")
        print(f"  one current model with all its predictions and its own flags after {p['whole']} of {p['runs']} "
              f"(target: every time); the kill came after the switch in {p['switched']}, before it in "
              f"{p['runs'] - p['switched']}")
    if not a.no_ingest:
        ing = report["ingest"] = soak_ingest()
        print("\n== ingest: " + (ing["note"] if not ing["ran"] else f"bench/soak_ingest.py exit {ing['returncode']}"))
        if ing.get("output"):
            print(ing["output"])
    if a.json:
        a.json.write_text(json.dumps(report, indent=1, default=str))
    ok = all(r["lost"] == 0 and r["duplicates"] == 0 and r["overlapping_leases"] == 0 and r["integrity"]["ok"]
             for k, r in report.items() if k in ("sqlite", "postgresql"))  # fmt: skip
    ok = ok and ("promotion" not in report or report["promotion"]["whole"] == report["promotion"]["runs"])
    print("\nall targets met" if ok else "\nTARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
