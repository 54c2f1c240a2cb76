"""Benchmark the inspection database at DR16Q-superset scale (1.44 M spectra).

    python bench/db.py                      # 1,440,000 spectra into a temp SQLite file (deleted afterwards)
    python bench/db.py --n 200000           # quick
    python bench/db.py --url postgresql+psycopg://user@host/fnet_bench   # PostgreSQL (use an empty database)
    python bench/db.py --keep DIR           # keep the SQLite file (and the exported catalog) in DIR

Everything goes through the project's own code, as `inspector triage --db` and
`inspector export --db` do: `db.engine.upgrade`, then `db.load.load_spectra`
(a synthetic store index: PLATE-MJD-FIBER object ids, ra/dec, S/N, Z, Z_PIPE,
Z_QN, Z_PCA, Z_VI...), `add_model_version`, `load_predictions` (z, error, p and
three alternatives, as `inspector predict` writes them) and `load_triage_flags`
(~40 % of the spectra flagged by 1-3 rules, priority = sum of the rule
weights, as `inspector.pipeline.triage.flags_long` builds it). Then:

- next-queue-item latency: `db.queue.next_item` for three inspectors in turn;
- the same in each of the queue's orders (`db.queue.ORDERS`: priority, S/N,
  rule, FNet z), after the export, `--order-calls` next + decide each;
- decision write latency: `db.decisions.record_decision` on the item just handed out;
- the next + decide loop rate (spectra per hour for one inspector, db cost only);
- `--inspectors` (8) inspectors at once, each a process of its own (bench/db_inspectors.py): their
  pooled next / decide latencies and the decisions per second all together;
- export: `decisions_frame`, `final_decisions`, `overlay_decisions` onto the
  model rows of every spectrum, `export_catalog` to FITS, CSV and Parquet;
- the database's size on disk.

Timings use time.perf_counter; the targets (issue 4) are printed with PASS /
MISS, nothing is asserted. No extra dependencies.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.engine import make_engine, session_scope, settle_after_load, upgrade
from db.load import add_model_version, load_predictions, load_spectra, load_triage_flags

DR16Q_SUPERSET = 1_440_000
FLAGGED_FRACTION = 0.40
# rule -> weight (the defaults of inspector.triage.RULES), and how often each fires among flagged spectra
RULE_WEIGHTS = {"dv_pipe": 1.0, "dv_qn": 1.0, "qn_failed": 1.5, "fnet_uncertain": 1.0, "fnet_low_p": 0.5,
                "low_sn": 0.5, "z_outside_training": 1.0, "fnet_missing": 3.0}  # fmt: skip
RULE_SHARE = np.array([0.30, 0.25, 0.10, 0.15, 0.08, 0.08, 0.03, 0.01])
INSPECTORS = ("alice", "bob", "carol")
TARGETS = {"load": 120.0, "next": 0.020, "decide": 0.010}  # seconds (issue 4)


# --------------------------------------------------------------------------- synthetic survey
def store_index(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A store index plus DR16Q catalog columns for `n` spectra (1000 fibers a plate)."""
    i = np.arange(n)
    plate = 3586 + i // 1000
    mjd = 55000 + (plate * 7) % 3500
    fiber = i % 1000 + 1
    oid = pd.Series(plate.astype(str)) + "-" + pd.Series(mjd.astype(str)) + "-" + pd.Series(fiber).map("{:04d}".format)
    z = np.clip(rng.lognormal(0.6, 0.45, n), 0.0, 7.0)
    z_qn = z + rng.normal(0, 0.002, n)
    z_qn[rng.random(n) < 0.03] = -1.0
    z_pca = z + rng.normal(0, 0.003, n)
    z_pca[rng.random(n) < 0.02] = -1.0
    z_vi = np.where(rng.random(n) < 0.25, z, np.nan)
    return pd.DataFrame({
        "object_id": oid.to_numpy(object), "survey": "sdss", "plate": plate, "mjd": mjd, "fiberid": fiber,
        "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-10, 70, n),
        "file": [f"spec-{p:04d}-{m}-{f:04d}.fits" for p, m, f in zip(plate, mjd, fiber, strict=True)],
        "row": i, "sn_median_all": rng.gamma(2.0, 2.0, n), "zwarning": np.where(rng.random(n) < 0.05, 4, 0),
        "Z": z, "Z_PIPE": np.where(rng.random(n) < 0.05, rng.uniform(0, 5, n), z + rng.normal(0, 0.001, n)),
        "Z_QN": z_qn, "Z_PCA": z_pca, "Z_VI": z_vi, "CLASS_PERSON": np.where(np.isnan(z_vi), 0, 3),
    })  # fmt: skip


def predictions(index: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """What `inspector predict` writes: row, object_id, z_fnet, z_fnet_err, p_fnet, z_alt1..3, p_alt1..3."""
    n = len(index)
    z = np.clip(index["Z"].to_numpy() + rng.normal(0, 0.003, n), 0.0, 7.0)
    out = {"row": index["row"].to_numpy(), "object_id": index["object_id"].to_numpy(), "z_fnet": z,
           "z_fnet_err": rng.gamma(2.0, 0.004, n) * (1 + z), "p_fnet": rng.beta(5, 1.5, n)}  # fmt: skip
    for k in range(1, 4):
        alt = rng.uniform(0, 6, n)
        alt[rng.random(n) < 0.3 * k] = np.nan  # fewer alternatives further down
        out[f"z_alt{k}"] = alt
        out[f"p_alt{k}"] = np.where(np.isnan(alt), np.nan, rng.uniform(0, 0.3, n))
    return pd.DataFrame(out)


def triage_flags(index: pd.DataFrame, rng: np.random.Generator, model_version_id: int) -> pd.DataFrame:
    """One row per (flagged spectrum, rule), the priority being the spectrum's total weight (as flags_long)."""
    n = len(index)
    flagged = np.flatnonzero(rng.random(n) < FLAGGED_FRACTION)
    names = np.array(list(RULE_WEIGHTS), dtype=object)
    weights = np.array(list(RULE_WEIGHTS.values()))
    n_rules = rng.choice([1, 2, 3], size=len(flagged), p=[0.6, 0.3, 0.1])
    pos = np.repeat(flagged, n_rules)
    first = np.repeat(np.cumsum(n_rules) - n_rules, n_rules)
    k = np.arange(len(pos)) - first  # 0, 1, 2 within a spectrum
    base = rng.choice(len(names), size=len(flagged), p=RULE_SHARE / RULE_SHARE.sum())
    rule_ix = (np.repeat(base, n_rules) + 3 * k) % len(names)  # distinct rules within a spectrum
    prio_each = weights[rule_ix] + rng.uniform(0, 0.01, len(pos))  # jitter: ties are rare, as with real values
    prio = np.bincount(np.repeat(np.arange(len(flagged)), n_rules), weights=prio_each)
    return pd.DataFrame({
        "object_id": index["object_id"].to_numpy()[pos], "rule": names[rule_ix],
        "value": rng.uniform(3000, 30000, len(pos)), "priority": np.repeat(prio, n_rules),
        "model_version_id": np.full(len(pos), model_version_id, dtype=object),
    })  # fmt: skip


# --------------------------------------------------------------------------- helpers
def clock() -> float:
    return time.perf_counter()


def stats(xs: list[float]) -> tuple[float, float, float]:
    """(median, p95, max) in seconds."""
    a = np.asarray(xs)
    return float(np.median(a)), float(np.percentile(a, 95)), float(a.max())


def ms(x: float) -> str:
    return f"{x * 1e3:.1f} ms"


def db_size(engine, url: str) -> tuple[int, str]:
    """Bytes on disk and how it was measured (SQLite: the file after a WAL checkpoint; PostgreSQL: the database)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(engine.url.database)
        wal = Path(str(path) + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0), f"{path.name} (+ WAL after checkpoint)"
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()), "pg_database_size"


def human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{nbytes:.0f} B"
        nbytes /= 1024
    return ""


# --------------------------------------------------------------------------- the benchmark
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=DR16Q_SUPERSET, help="spectra (default 1,440,000: DR16Q superset)")
    ap.add_argument("--url", default=None, help="SQLAlchemy URL (default: a temp SQLite file)")
    ap.add_argument("--calls", type=int, default=300, help="next + decide iterations (inspectors in turn)")
    ap.add_argument("--keep", type=Path, default=None, help="directory for the SQLite file and the catalog (kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--order-calls", type=int, default=150, help="next + decide iterations in each queue order")
    ap.add_argument("--inspectors", type=int, default=8, help="inspectors deciding at once (0: skip that part)")
    ap.add_argument("--inspector-calls", type=int, default=100, help="next + decide iterations of each of them")
    ap.add_argument("--think", type=float, default=0.5, help="their mean pause between spectra, seconds (0: flat out)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="fnet-bench-db-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    url = args.url or f"sqlite:///{work / 'inspections.sqlite'}"
    if args.url is None and (work / "inspections.sqlite").exists():
        sys.exit(f"{work / 'inspections.sqlite'} exists: give an empty --keep directory")
    rng = np.random.default_rng(args.seed)
    res: dict[str, float] = {}
    try:
        print(f"bench/db.py: {args.n:,} spectra, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPU(s), python {platform.python_version()}")  # fmt: skip
        t = clock()
        index = store_index(args.n, rng)
        pred = predictions(index, rng)
        print(f"synthetic survey built in {clock() - t:.1f} s (not counted)")

        t = clock()
        upgrade(url)
        res["migrate"] = clock() - t
        engine = make_engine(url)
        with session_scope(engine) as s:
            t = clock()
            n_spec = load_spectra(s, index)
            res["load_spectra"] = clock() - t
            t = clock()
            mv = add_model_version(s, name="fnet-bench", sha1="b" * 40, config={"bench": True}, make_current=True)
            n_pred = load_predictions(s, pred, mv.id)
            res["load_predictions"] = clock() - t
            flags = triage_flags(index, rng, mv.id)  # built outside the clock, like the triage parquet
            t = clock()
            n_flags = load_triage_flags(s, flags)
            res["load_flags"] = clock() - t
            mv_id = mv.id
        res["load_total"] = res["load_spectra"] + res["load_predictions"] + res["load_flags"]
        t = clock()
        if settle_after_load(engine):  # as `inspector triage --db` does after its load (PostgreSQL only)
            res["settle"] = clock() - t
        n_flagged = flags["object_id"].nunique()
        print(f"loaded {n_spec:,} spectra ({res['load_spectra']:.1f} s), {n_pred:,} predictions "
              f"({res['load_predictions']:.1f} s), {n_flags:,} flags on {n_flagged:,} spectra "
              f"({res['load_flags']:.1f} s); migrations {res['migrate']:.1f} s")  # fmt: skip

        # ---------------------------------------------------------------- queue + decisions
        from db.decisions import record_decision
        from db.queue import next_item

        z_model = dict(zip(pred["object_id"], pred["z_fnet"], strict=True))
        t_next: list[float] = []
        t_dec: list[float] = []
        picked: list[str] = []
        actions = rng.choice(["accept", "accept", "accept", "correct", "not_qso", "bad_spectrum", "skip"],
                             size=args.calls)  # fmt: skip
        with session_scope(engine) as s:
            for who in INSPECTORS:  # warm-up (first query plans, inspector rows): not timed
                spec = next_item(s, who)
                if spec is not None:
                    record_decision(s, spec, who, "skip")
            t_loop = clock()
            for k in range(args.calls):
                who = INSPECTORS[k % len(INSPECTORS)]
                t = clock()
                spec = next_item(s, who)
                t_next.append(clock() - t)
                if spec is None:
                    break
                picked.append(spec.object_id)
                zm = float(z_model[spec.object_id])
                act = str(actions[k])
                kw: dict = {"model_version_id": mv_id, "z_model": zm}
                if act in ("accept", "correct"):
                    kw["quality"] = int(rng.integers(2, 5))
                if act == "correct":
                    kw["z_final"] = float(np.clip(zm + rng.normal(0, 0.5), 0.0, 7.0))
                    kw["flags"] = ["bad_z"]
                    kw["comment"] = "CIV and CIII] clear"
                if act == "not_qso":
                    kw["quality"] = 3
                    kw["spectral_type"] = "STAR"
                t = clock()
                record_decision(s, spec, who, act, **kw)
                t_dec.append(clock() - t)
            res["loop"] = clock() - t_loop
        n_loop = len(t_dec)
        res["next_med"], res["next_p95"], res["next_max"] = stats(t_next)
        res["dec_med"], res["dec_p95"], res["dec_max"] = stats(t_dec)
        res["per_hour"] = 3600.0 * n_loop / res["loop"]
        n_cross = len(picked) - len(set(picked))
        print(f"next+decide: {n_loop} iterations over {len(INSPECTORS)} inspectors in {res['loop']:.2f} s "
              f"({n_cross} cross-checks handed out)")  # fmt: skip

        # ---------------------------------------------------------------- export
        from db.decisions import decisions_frame
        from db.export import export_catalog, final_decisions, overlay_decisions

        out = work / "vetted"
        with session_scope(engine) as s:
            t = clock()
            dec_frame = decisions_frame(s, latest_only=False, include_skips=True)
            res["decisions_frame"] = clock() - t
            t = clock()
            decided = final_decisions(s)
            res["final_decisions"] = clock() - t
        t = clock()
        n = len(index)
        rows = pd.DataFrame({
            "object_id": index["object_id"], "ra": index["ra"], "dec": index["dec"],
            "z_final": pred["z_fnet"], "z_source": np.full(n, "model", dtype=object),
            "quality": np.full(n, np.nan, np.float32), "inspectors": np.full(n, "", dtype=object),
            "n_decisions": np.zeros(n, np.int32), "z_fnet": pred["z_fnet"], "z_fnet_err": pred["z_fnet_err"],
            "z_pipe": index["Z_PIPE"], "z_qn": index["Z_QN"], "z_pca": index["Z_PCA"],
            "model_version": np.full(n, "fnet-bench@" + "b" * 12, dtype=object),
            "plate": index["plate"], "mjd": index["mjd"], "fiberid": index["fiberid"], "z_vi": index["Z_VI"],
            "sn_median_all": index["sn_median_all"],
        })  # fmt: skip
        rows = overlay_decisions(rows, decided)
        res["overlay"] = clock() - t
        meta = {"model_version": "fnet-bench@" + "b" * 12, "thresholds": {"dv_pipe": 3000.0, "dv_qn": 3000.0}}
        for fmt in ("parquet", "csv", "fits"):
            t = clock()
            export_catalog(rows, out, meta, formats=[fmt])
            res[f"export_{fmt}"] = clock() - t
        res["export_total"] = (res["decisions_frame"] + res["final_decisions"] + res["overlay"]
                               + res["export_parquet"] + res["export_csv"] + res["export_fits"])  # fmt: skip
        sizes = {f: (out.with_suffix("." + f)).stat().st_size for f in ("parquet", "csv", "fits")}
        print(f"export: {len(dec_frame)} decisions, {len(decided)} judged spectra, {n:,} catalog rows; "
              + ", ".join(f"{f} {human(b)}" for f, b in sizes.items()))  # fmt: skip

        # ---------------------------------------------------------------- next_item in each queue order
        from db.queue import ORDERS

        t_order: dict[str, list[float]] = {}
        with session_scope(engine) as s:
            for name in ORDERS:
                for who in INSPECTORS:  # warm-up (this order's first query plans): not timed
                    spec = next_item(s, who, order=name, crosscheck_fraction=0.0)
                    if spec is not None:
                        record_decision(s, spec, who, "skip")
                t_order[name] = []
                for k in range(args.order_calls):
                    who = INSPECTORS[k % len(INSPECTORS)]
                    t = clock()
                    spec = next_item(s, who, order=name)
                    t_order[name].append(clock() - t)
                    if spec is None:
                        break
                    record_decision(s, spec, who, "accept", quality=3, model_version_id=mv_id,
                                    z_model=float(z_model[spec.object_id]))  # fmt: skip

        size, how = db_size(engine, url)
        engine.dispose()

        # ---------------------------------------------------------------- several inspectors at once
        team = None
        if args.inspectors > 0:
            from db_inspectors import concurrent_inspectors

            team = concurrent_inspectors(url, args.inspectors, args.inspector_calls, args.think, seed=args.seed)

        # ---------------------------------------------------------------- report
        def row(what: str, value: str, target: str = "", ok: bool | None = None) -> str:
            verdict = "" if ok is None else ("PASS" if ok else "MISS")
            return f"{what:<38} {value:>22}  {target:<10} {verdict}"

        scale = "" if args.n == DR16Q_SUPERSET else f"   (at {args.n:,} spectra; targets are for 1,440,000)"
        print()
        print(f"results: {args.n:,} spectra, {n_flagged:,} in the queue ({n_flags:,} flag rows), "
              f"{engine.dialect.name}{scale}")  # fmt: skip
        print(row("measure", "value", "target", None) + "result")
        print("-" * 80)
        print(row("bulk load: spectra", f"{res['load_spectra']:.1f} s"))
        print(row("bulk load: model version + predictions", f"{res['load_predictions']:.1f} s"))
        print(row("bulk load: triage flags", f"{res['load_flags']:.1f} s"))
        print(row("bulk load: total", f"{res['load_total']:.1f} s", "< 120 s", res["load_total"] < TARGETS["load"]))
        if "settle" in res:
            print(row("then VACUUM (ANALYZE) of the loaded tables", f"{res['settle']:.1f} s"))
        print(row(f"next_item median / p95 (n={len(t_next)})", f"{ms(res['next_med'])} / {ms(res['next_p95'])}",
                  "< 20 ms", res["next_p95"] < TARGETS["next"]))  # fmt: skip
        print(row(f"record_decision median / p95 (n={n_loop})", f"{ms(res['dec_med'])} / {ms(res['dec_p95'])}",
                  "< 10 ms", res["dec_p95"] < TARGETS["decide"]))  # fmt: skip
        for name, xs in t_order.items():
            med, p95, mx = stats(xs)
            print(row(f"next_item order={name} med / p95 (n={len(xs)})", f"{ms(med)} / {ms(p95)}", "< 20 ms",
                      p95 < TARGETS["next"]) + f" (max {ms(mx)})")  # fmt: skip
        print(row("next + decide loop", f"{res['per_hour']:,.0f} spectra/h"))
        if team is not None:
            k = f"{team['inspectors']} at once (think {team['think']:g} s):"
            for what, key, target in (("next_item", "next", "next"), ("record_decision", "decide", "decide")):
                med, p95, mx = stats(team[key])
                print(row(f"{k} {what} med / p95 (n={len(team[key])})", f"{ms(med)} / {ms(p95)}",
                          f"< {TARGETS[target] * 1e3:.0f} ms", p95 < TARGETS[target]) + f" (max {ms(mx)})")
            print(row(f"{k} decisions, all together", f"{team['decisions_per_s']:.0f} /s"))
        print(row("export: decisions_frame (all)", f"{res['decisions_frame']:.2f} s"))
        print(row("export: final_decisions (consensus)", f"{res['final_decisions']:.2f} s"))
        print(row("export: model rows + overlay", f"{res['overlay']:.2f} s"))
        for f in ("parquet", "csv", "fits"):
            print(row(f"export_catalog -> {f} ({n:,} rows)", f"{res['export_' + f]:.1f} s"))
        print(row("export: total", f"{res['export_total']:.1f} s"))
        print(row("database size", f"{human(size)}", how))
        print("(PASS/MISS on the p95 for latencies; max next "
              f"{ms(res['next_max'])}, max decide {ms(res['dec_max'])})")  # fmt: skip
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
