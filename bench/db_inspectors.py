"""Several inspectors at once against one database: the part of bench/db.py that a team's server sees.

Each inspector is a process of its own (as each browser session is a connection of its own on the
server) that takes the queue with `db.queue.next_item` and decides with `db.decisions.record_decision`
in a loop, pausing a random 0-2x `think` seconds between spectra as a person looks (default 0.5 s: about
seven times the pace of a person doing a thousand an hour, so eight of them load the server as fifty
people would); all start together at a barrier, after one untimed warm-up call each (query plans, the
inspector's row). With `think` 0 they decide flat out, which measures the server's saturation, not what a
person waits. The latencies of every call of every inspector are pooled. On SQLite the writers
queue on the file lock; PostgreSQL serves them side by side, with `FOR UPDATE SKIP LOCKED` keeping two
from taking one spectrum.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

import numpy as np

ACTIONS = ("accept", "accept", "accept", "correct", "not_qso", "bad_spectrum", "skip")  # the mix bench/db.py uses


def _inspector(url: str, name: str, calls: int, think: float, seed: int, barrier: Any, out: Any) -> None:
    from db.decisions import record_decision
    from db.engine import make_engine, session_scope
    from db.queue import next_item

    rng = np.random.default_rng(seed)
    engine = make_engine(url)
    t_next: list[float] = []
    t_dec: list[float] = []
    try:
        with session_scope(engine) as s:
            spec = next_item(s, name)  # warm-up: not timed
            if spec is not None:
                record_decision(s, spec, name, "skip")
            barrier.wait()
            t0 = time.perf_counter()
            for _ in range(calls):
                time.sleep(rng.uniform(0.0, 2.0 * think))
                t = time.perf_counter()
                spec = next_item(s, name)
                t_next.append(time.perf_counter() - t)
                if spec is None:
                    break
                act = str(rng.choice(ACTIONS))
                kw: dict[str, Any] = {"z_model": 2.0}
                if act in ("accept", "correct"):
                    kw["quality"] = int(rng.integers(2, 5))
                if act == "correct":
                    kw.update(z_final=float(rng.uniform(0.1, 5.0)), flags=["bad_z"], comment="CIV and CIII] clear")
                if act == "not_qso":
                    kw.update(quality=3, spectral_type="STAR")
                t = time.perf_counter()
                record_decision(s, spec, name, act, **kw)
                t_dec.append(time.perf_counter() - t)
            wall = time.perf_counter() - t0
        out.put((name, t_next, t_dec, wall, None))
    except Exception as exc:  # noqa: BLE001 - reported by the parent, with the inspector's name
        out.put((name, t_next, t_dec, 0.0, f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()


def concurrent_inspectors(url: str, n_inspectors: int = 8, calls: int = 100, think: float = 0.5,
                          seed: int = 0) -> dict[str, Any]:
    """Pooled next / decide latencies (seconds) of `n_inspectors` processes deciding `calls` spectra each.

    Forked processes: the caller disposes of its own engine first (a pooled connection must not be shared).
    """
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n_inspectors)
    out = ctx.Queue()
    procs = [ctx.Process(target=_inspector, args=(url, f"team{k}", calls, think, seed + k, barrier, out))
             for k in range(n_inspectors)]  # fmt: skip
    for p in procs:
        p.start()
    got = [out.get(timeout=900) for _ in procs]
    for p in procs:
        p.join(60)
    errors = [f"{name}: {err}" for name, *_, err in got if err]
    if errors:
        raise RuntimeError("an inspector process failed: " + "; ".join(errors))
    t_next = [x for _, tn, _, _, _ in got for x in tn]
    t_dec = [x for _, _, td, _, _ in got for x in td]
    wall = max(w for *_, w, _ in got)
    return {"inspectors": n_inspectors, "think": think, "next": t_next, "decide": t_dec, "wall": wall,
            "decisions_per_s": len(t_dec) / wall if wall > 0 else 0.0}  # fmt: skip
