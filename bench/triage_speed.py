"""Triage at survey size: the estimates frame, the risk model, the policy and the rules over 1.44 M spectra.

    python bench/triage_speed.py --store STORE --predictions P.parquet [--n 1440000]

A store's index and prediction run are tiled to --n rows (DR16Q's superset is 1.44 M observations)
with unique object ids, then timed stage by stage as `inspector triage --max-leak` runs them
(reading files from disk is not included; `inspector triage` prints its own read time).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector.estimates import estimates_frame
from inspector.pipeline.triage import EXPLAIN_MAX, explain_head
from inspector.risk.learner import load_risk_model, risk_path_for
from inspector.risk.policy import DEFAULT_MAX_LEAK, Policy, apply_policy
from inspector.triage import apply_rules
from model.assets import DEMO_MODEL


def tiled(df: pd.DataFrame, reps: int, n: int) -> pd.DataFrame:
    out = pd.concat([df] * reps, ignore_index=True).iloc[:n].copy()
    out["row"] = np.arange(len(out))
    out["object_id"] = out["object_id"].astype(str) + "-" + (np.arange(len(out)) // len(df)).astype(str)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--predictions", type=Path, required=True)
    ap.add_argument("--n", type=int, default=1_440_000)
    ap.add_argument("--risk", type=Path, default=risk_path_for(DEMO_MODEL))
    a = ap.parse_args()
    from inspector.store import open_store

    index = open_store(a.store).index
    pred = pd.read_parquet(a.predictions)
    reps = -(-a.n // len(index))
    index, pred = tiled(index, reps, a.n), tiled(pred.sort_values("row"), reps, a.n)
    model = load_risk_model(a.risk)
    t = [time.perf_counter()]
    frame = estimates_frame(index, pred)
    t.append(time.perf_counter())
    scored = model.score(frame)
    t.append(time.perf_counter())
    risk = scored["risk"].to_numpy()
    d = apply_policy(risk, frame["sn"].to_numpy(), frame["tpl_dchi2"].to_numpy(), Policy(max_leak=DEFAULT_MAX_LEAK))
    frame["risk"], frame["policy_queue"], frame["no_signal_bucket"] = risk, d["queued"], d["no_signal"]
    t.append(time.perf_counter())
    prio = np.where(d["accepted"], np.nan, d["priority"])
    flags = apply_rules(index, pred, frame=frame, policy_priority=prio)
    t.append(time.perf_counter())
    explain_head(model, frame, prio)
    t.append(time.perf_counter())
    names = ("estimates frame", "risk model", "policy", "rules", f"drivers (queue head, {EXPLAIN_MAX})")
    for name, a0, a1 in zip(names, t[:-1], t[1:], strict=True):
        print(f"{name:>28}: {a1 - a0:6.1f} s")
    print(f"{'total':>28}: {t[-1] - t[0]:6.1f} s for {len(frame):,} spectra; queue {len(flags):,} "
          f"({100 * len(flags) / len(frame):.1f} %)")


if __name__ == "__main__":
    main()
