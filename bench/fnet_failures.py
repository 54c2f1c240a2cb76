"""Why FNet misses real quasars: every miss (|dv| > 6000 km/s) on the labelled real SDSS quasars, by cause.

    python bench/fnet_failures.py [--model assets/models/fnet-small-mock.pt] [--baseline assets/models/quasarnet-mock.pt]
                                  [--no-template] [--json out.json]

Runs FNet on the labelled real quasars of ../shared/data/real
(`inspector.realset`; truth z_ref) and gives each miss one cause by the rule
table `inspector.failure_causes.CAUSES` (narrow-line confusion at low z,
masked gaps, the clamped grid ends beyond SDSS-I/II's 3800-9200 A, BAL, other
line confusions, high z, low S/N, near misses), with the line pair the error
maps ((1 + z_pred) lambda_a = (1 + z_true) lambda_b). Prints, per estimator:
the table of causes (n: misses it is the cause of; n_holds: misses its rule
holds for; hits_holds: spectra the estimator got right that a spectrum rule
holds for, the base rate), misses by survey, and the list of misses. The
QuasarNET-style baseline (default weights in assets/models) and the template
fit (native pixels) get the same treatment; they are cheap. Without
../shared/data/real (a fresh clone) it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inspector import realset
from inspector.failure_causes import (
    CAUSE_NAMES,
    CAUSES,
    MISS_KMS,
    cause_table,
    diagnose,
)
from inspector.pipeline.evaluate_common import BASELINE, FNET, TEMPLATE, survey_names
from model.assets import DEMO_MODEL, MODEL_DIR
from model.evaluate import SURVEY_ORDER


def estimates(model: Path, baseline: Path | None, template: bool, flux, ivar, table) -> dict[str, np.ndarray]:
    """z per estimator on the real quasars (NaN: no redshift)."""
    from inspector.pipeline.evaluate_real import predict_baseline, run_fnet, template_fit_real
    from model.train import load_checkpoint

    out: dict[str, np.ndarray] = {}
    if template:  # first: its worker processes fork before torch starts its threads
        out[TEMPLATE] = template_fit_real(realset.REAL_ROOT, table["file"], processes=2)["z_tpl"].to_numpy(float)
    net, _ = load_checkpoint(model, map_location="cpu")
    out = {FNET: run_fnet(net, flux)[0], **out}
    if baseline is not None:
        out[BASELINE] = predict_baseline(baseline, flux, ivar)[0]
    return out


def by_survey(diag: pd.DataFrame, survey: np.ndarray) -> pd.DataFrame:
    """Spectra, misses and the miss rate per survey."""
    miss = diag["miss"].to_numpy(bool)
    names = [s for s in SURVEY_ORDER if (survey == s).any()] + sorted(set(survey) - set(SURVEY_ORDER))
    rows = {s: {"n": int((survey == s).sum()), "misses": int(miss[survey == s].sum())} for s in names}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df["miss_pct"] = (100.0 * df["misses"] / df["n"]).round(1)
    df.index.name = "survey"
    return df


def report(name: str, z: np.ndarray, grid_ivar: np.ndarray, table: pd.DataFrame) -> tuple[str, dict]:
    survey = survey_names(table["survey"])
    diag = diagnose(
        table["z_ref"], z, sn=pd.to_numeric(table["sn_median_all"], errors="coerce"),
        is_bal=(table["true_class"] == "BAL").to_numpy(), lam_min=table["lam_min"], lam_max=table["lam_max"],
        grid_ivar=grid_ivar, misses_only=False,
    )  # fmt: skip
    causes = cause_table(diag)
    misses = diag[diag["miss"]].copy()
    misses.insert(0, "file", [Path(table["file"].iloc[i]).name for i in misses["position"]])
    misses.insert(1, "survey", survey[misses["position"].to_numpy()])
    misses["cause"] = pd.Categorical(misses["cause"], categories=CAUSE_NAMES, ordered=True)  # table order
    misses = misses.drop(columns=["position", "miss", "holds"]).sort_values(["cause", "z_true"])
    n, k = len(diag), len(misses)
    lines = [
        (f"==== {name}: {k} misses of {n} real quasar spectra (|dv| > {MISS_KMS:g} km/s), "
         f"{100.0 * (n - k) / n:.1f} % right ===="),
        causes.drop(columns="meaning").astype(object).fillna("-").to_string(), "", by_survey(diag, survey).to_string(), "",
        misses.to_string(index=False, float_format=lambda v: f"{v:.4f}" if abs(v) < 100 else f"{v:.0f}") if k else "(no misses)",
        "",
    ]  # fmt: skip
    rec = {"n": n, "misses": k, "causes": causes.reset_index().to_dict(orient="records"),
           "list": misses.to_dict(orient="records")}  # fmt: skip
    return "\n".join(lines), rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=DEMO_MODEL)
    ap.add_argument("--baseline", type=Path, default=MODEL_DIR / "quasarnet-mock.pt",
                    help="QuasarNET-style baseline weights; 'none' to leave it out")  # fmt: skip
    ap.add_argument("--no-template", action="store_true", help="leave the template fit out")
    ap.add_argument("--json", type=Path, help="also write the tables and lists here")
    a = ap.parse_args()
    if not realset.available():
        print(f"skipped: the real SDSS set is not at {realset.REAL_ROOT} (a fresh clone without ../shared; "
              "set FNET_REAL_DATA to point at it)")  # fmt: skip
        return 0
    import torch

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    flux, ivar, table = realset.load_on_grid()
    baseline = None if str(a.baseline).lower() == "none" else a.baseline
    est = estimates(a.model, baseline, not a.no_template, flux, ivar, table)
    print(f"model {a.model}; {len(table)} labelled real quasar spectra in {realset.REAL_ROOT}; truth z_ref\n")
    out = {"model": str(a.model), "baseline": str(baseline) if baseline else None, "estimators": {}}
    for name, z in est.items():
        text, rec = report(name, z, ivar, table)
        print(text)
        out["estimators"][name] = rec
    print("what each cause means (first rule that holds, in this order; inspector/failure_causes.py CAUSES):")
    for name, meaning, _, _ in CAUSES:
        print(f"  {name}: {meaning}")
    print(f"{time.perf_counter() - t0:.0f} s")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1, default=str))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
