"""The queue a leak target buys: queue size, predicted vs measured leak, and what heads the queue.

    python bench/queue_policy.py --store STORE --predictions STORE/predictions/fnet-small-mock.parquet
    python bench/queue_policy.py --real [--workdir /tmp/fnet_real_store]
    python bench/queue_policy.py ... --max-leak 0.005 --png reliability.png

Store mode scores a mock survey the risk model never saw (its truth in the store). Real mode
ingests the real SDSS spec files of ../shared/data/real/sdss as a user would, without a catalog
(so the files' own Z / CLASS / ZWARNING stand in for DR16Q's Z_PIPE and the baseline's run for
Z_QN), predicts with the shipped FNet and the baseline, and scores against the manifest's truth.
Prints the reliability table (predicted vs observed error rate per bin of risk), the policy's
queue, its no-signal bucket, the predicted and measured leak among the auto-accepted, the wrong
answers left out of the queue, and how many of the first 100 queued are wrong with S/N >= 2.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector.risk.learner import load_risk_model, risk_path_for
from inspector.risk.policy import DECIDABLE_SN, DEFAULT_MAX_LEAK, Policy, apply_policy
from inspector.risk.stores import reliability, scored_wrong, store_inputs
from model.assets import ASSETS, DEMO_MODEL

HEAD = 100


def real_store(workdir: Path, model: Path) -> tuple[Path, Path]:
    """The real sdss/ files ingested, predicted and run through the baseline, as a user would (cached)."""
    from inspector.realset import REAL_ROOT

    store = workdir / "store"
    pred = store / "predictions" / f"{model.stem}.parquet"
    inspector = [str(Path(sys.executable).parent / "inspector")]  # the console script (python -m would not register)
    if not (store / "store.json").exists():
        subprocess.run([*inspector, "ingest", str(REAL_ROOT / "sdss"), "--store", str(store), "--no-progress"],
                       check=True)  # fmt: skip
    if not pred.exists():
        subprocess.run([*inspector, "predict", "--store", str(store), "--model", str(model), "--out", str(pred),
                        "--no-progress"], check=True)  # fmt: skip
    if not (store / "predictions" / "quasarnet.parquet").exists():
        subprocess.run([*inspector, "baseline", "predict", "--store", str(store), "--model",
                        str(ASSETS / "models" / "quasarnet-mock.pt"), "--no-progress"], check=True)  # fmt: skip
    return store, pred


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path)
    ap.add_argument("--predictions", type=Path)
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/fnet_real_store"))
    ap.add_argument("--model", type=Path, default=DEMO_MODEL)
    ap.add_argument("--risk", type=Path)
    ap.add_argument("--max-leak", type=float, default=DEFAULT_MAX_LEAK)
    ap.add_argument("--png", type=Path, help="write the reliability diagram here")
    ap.add_argument("--title", default=None, help="the diagram's title (default: the store)")
    ap.add_argument("--sweep", default="0.002,0.003,0.004,0.005,0.01",
                    help="leak targets for the queue-size / predicted / measured leak table")
    a = ap.parse_args()
    if a.real:
        store, pred = real_store(a.workdir, a.model)
    else:
        if a.store is None or a.predictions is None:
            ap.error("give --store and --predictions, or --real")
        store, pred = a.store, a.predictions
    frame, truth, _ = store_inputs(store, pred)
    if a.real:
        from inspector.realset import store_truth
        from inspector.store import open_store

        truth = store_truth(open_store(store).index)
    model = load_risk_model(a.risk or risk_path_for(a.model))
    t0 = time.perf_counter()
    scored = model.score(frame)
    secs = time.perf_counter() - t0
    risk = scored["risk"].to_numpy()
    sn = frame["sn"].to_numpy(np.float64)
    decision = apply_policy(risk, sn, frame["tpl_dchi2"].to_numpy(np.float64), Policy(max_leak=a.max_leak))
    wrong, ok = scored_wrong(frame, scored, truth)
    n = len(frame)
    print(f"{store}: {n} spectra, {ok.sum()} with a truth, {wrong.sum()} automatic answers wrong "
          f"({100 * wrong.sum() / max(ok.sum(), 1):.2f} %); scored in {secs:.1f} s")
    print(f"catalog z from: {scored['z_best_source'].value_counts().to_dict()}")
    print("\nreliability (spectra with a truth):")
    table = reliability(risk[ok], wrong[ok])
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    acc, q, bucket = (decision[c].to_numpy(bool) for c in ("accepted", "queued", "no_signal"))
    print(f"\npolicy: max leak {a.max_leak:g}")
    print(f"  to people: {q.sum()} ({100 * q.mean():.1f} %); "
          f"no-signal bucket: {bucket.sum()} ({100 * bucket.mean():.1f} %)"
          f"; auto-accepted {acc.sum()} ({100 * acc.mean():.1f} %)")
    pred_leak = risk[acc].mean() if acc.any() else 0.0
    meas = wrong[acc & ok].sum() / max((acc & ok).sum(), 1)
    print(f"  leak among the auto-accepted: predicted {100 * pred_leak:.3f} %, measured {100 * meas:.3f} % "
          f"({wrong[acc & ok].sum()} wrong of {(acc & ok).sum()}); "
          f"ratio {meas / pred_leak if pred_leak else float('nan'):.2f}")
    left = np.flatnonzero(acc & wrong)
    print(f"  wrong answers auto-accepted: {left.size}"
          + (": " + ", ".join(frame['object_id'].iloc[left[:12]]) if left.size else ""))
    print(f"  wrong answers in the no-signal bucket: {(bucket & wrong).sum()}, in the queue: {(q & wrong).sum()}")
    order = np.flatnonzero(q)[np.argsort(-decision["priority"].to_numpy()[q], kind="stable")][:HEAD]
    good = wrong[order] & (sn[order] >= DECIDABLE_SN)
    print(f"  first {order.size} queued: {good.sum()} wrong with S/N >= {DECIDABLE_SN:g} ({100 * good.mean():.0f} %), "
          f"{wrong[order].sum()} wrong in all, median S/N {np.nanmedian(sn[order]):.1f}")
    print("\n  target   to people   bucket   leak predicted   measured")
    for target in (float(v) for v in a.sweep.split(",")):
        d = apply_policy(risk, sn, frame["tpl_dchi2"].to_numpy(np.float64), Policy(max_leak=target))
        ac = d["accepted"].to_numpy(bool)
        print(f"  {target:6.3f}   {100 * d['queued'].mean():8.1f} %   {100 * d['no_signal'].mean():5.1f} %"
              f"   {100 * risk[ac].mean():12.3f} %   {100 * wrong[ac & ok].sum() / max((ac & ok).sum(), 1):6.3f} %")
    if a.png:
        write_diagram(table, a.png, a.title or str(store)[-40:])
        print(f"wrote {a.png}")


def write_diagram(table: pd.DataFrame, path: Path, title: str) -> None:
    """Predicted against observed error rate per risk bin; a bin with no wrong answer shows its 95 % upper
    limit (3 / n) as a downward triangle, not a point at zero."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table[table["n"] > 0]
    x = t["predicted"].clip(1e-4).to_numpy()
    hit = t["n_wrong"].to_numpy() > 0
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot([1e-4, 1], [1e-4, 1], color="0.6", lw=1, label="calibrated")
    obs = t["observed"].to_numpy()
    err = np.sqrt(obs * (1 - obs) / t["n"].to_numpy())
    ax.errorbar(x[hit], obs[hit], yerr=err[hit], fmt="o", label="observed error rate")
    upper = np.minimum(1.0, 3.0 / t["n"].to_numpy())
    ax.plot(x[~hit], upper[~hit], "v", color="C1", label="none wrong: 95 % upper limit")
    for xi, yi, n in zip(x, np.where(hit, obs, upper), t["n"].to_numpy(), strict=True):
        ax.annotate(f"n={n}", (xi, yi), fontsize=7, xytext=(4, -9), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="predicted P(wrong), bin mean", ylabel="error rate", title=title)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
