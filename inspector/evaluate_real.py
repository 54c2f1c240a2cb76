"""`inspector evaluate --real`: an FNet checkpoint on the labelled real SDSS quasars.

Truth is `inspector.realset`'s z_ref (the curated ref_z where given, else the
file's Z). Beside FNet: our QuasarNET-style baseline (its checkpoint, run on
the same FNet-grid rows; a failure counts as wrong), the chi2 template fit
(`model.template_fit.fit_batch` on each file's native pixels, loglam =
log10(wave), as bench/template_fit.py scores it; no fit counts as wrong) and
the files' own pipeline Z. Tables per spectrum (overall, by z, by S/N, by
survey) and per object: repeat epochs of one object are kept together, every
object weighs 1 and scores the fraction of its spectra within each threshold
(`model.evaluate.object_accuracy_table`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from inspector.cli_evaluate import BASELINE, FNET, TEMPLATE, Evaluation, _no_z_as_nan, _write_json

PIPELINE = "pipeline Z (file)"


def _predict_fnet(model, flux: np.ndarray) -> np.ndarray:
    from model.train import predict

    return np.asarray(predict(model, flux), dtype=np.float64)


def _predict_baseline(path: Path, flux: np.ndarray, ivar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z with failures as NaN, failed) from a QuasarNET-style baseline checkpoint."""
    from model.quasarnet_train import load_quasarnet, predict_quasarnet

    qn, _ = load_quasarnet(path)
    df = predict_quasarnet(qn, flux, ivar)
    failed = df["qn_failed"].to_numpy(bool)
    return np.where(failed, np.nan, df["z_qn"].to_numpy(np.float64)), failed


def template_z_range() -> str:
    """The z range `fit_batch` scans by default, as text ("z 0-5")."""
    import inspect

    from model.template_fit import fit_batch

    par = inspect.signature(fit_batch).parameters
    return f"z {par['z_min'].default:g}-{par['z_max'].default:g}"


def template_fit_real(root: Path, files, processes: int | None = None) -> pd.DataFrame:
    """`model.template_fit.TPL_COLUMNS` for each file under `root`, fitted on its native pixels.

    Read with the reader `inspector.realset` uses; loglam = log10(wave), flux
    and ivar as read (NaN z_tpl where the fit found no minimum).
    """
    from inspector.readers import read_spec_file
    from inspector.template_run import default_processes
    from model.template_fit import fit_batch, fits_to_columns

    specs = [read_spec_file(Path(root) / f) for f in files]
    fits = fit_batch(
        [np.log10(np.asarray(s.wave, np.float64)) for s in specs],
        [np.asarray(s.flux, np.float64) for s in specs],
        [np.asarray(s.ivar, np.float64) for s in specs],
        processes=processes or min(default_processes(), 4),
    )  # fmt: skip
    return pd.DataFrame(fits_to_columns(fits))


def evaluate_real(
    model_path: Path,
    baseline: Path | None = None,
    out_dir: Path | None = None,
    real_root: Path | None = None,
    n_worst: int = 10,
    plot: bool = True,
    template: bool = True,
    template_processes: int | None = None,
) -> Evaluation:
    """Run an FNet checkpoint (a baseline, the template fit) on the labelled real SDSS quasars; see the module docstring."""
    from inspector import realset
    from model.evaluate import (
        Z_EDGES,
        compact,
        compare_table,
        evaluation_tables,
        fig4,
        format_tables,
        object_accuracy_table,
        worst,
    )
    from model.metrics import format_table, z_bin_groups

    root = Path(real_root) if real_root is not None else realset.REAL_ROOT
    if not realset.available(root):
        raise ValueError(f"the real SDSS set is not at {root} (set FNET_REAL_DATA or --real-root)")
    flux, ivar, table = realset.load_on_grid(root)
    # the template fit first: its worker processes are forked before torch starts its thread pools
    tpl = template_fit_real(root, table["file"], template_processes) if template else None
    from model.train import load_checkpoint

    model, _ = load_checkpoint(Path(model_path))
    z_true = table["z_ref"].to_numpy(np.float64)
    estimators = {FNET: _predict_fnet(model, flux)}
    if baseline is not None:
        estimators[BASELINE], _ = _predict_baseline(Path(baseline), flux, ivar)
    if tpl is not None:
        estimators[TEMPLATE] = tpl["z_tpl"].to_numpy(np.float64)
    estimators[PIPELINE] = _no_z_as_nan(table["z"])
    objects = table["object_group"].astype(str).to_numpy()
    survey = table["survey"].astype(str).to_numpy()
    sn = pd.to_numeric(table["sn_median_all"], errors="coerce").to_numpy(np.float64)
    survey_groups = {f"survey={s}": survey == s for s in ("SDSS-I/II", "BOSS", "eBOSS") if (survey == s).any()}
    for s in sorted(set(survey) - {"SDSS-I/II", "BOSS", "eBOSS"}):
        survey_groups[f"survey={s}"] = survey == s

    tables = evaluation_tables(estimators, z_true, sn=sn)
    tables["by_survey"] = compare_table(estimators, z_true, survey_groups)
    zg = z_bin_groups(z_true, Z_EDGES)
    obj_tables = {
        "objects_by_z": object_accuracy_table(estimators, z_true, objects, zg),
        "objects_by_survey": object_accuracy_table(estimators, z_true, objects, survey_groups),
    }
    columns = {
        "file": [Path(f).name for f in table["file"]], "object": objects, "survey": survey, "sn": sn,
        "z_pipe": estimators[PIPELINE],
        **({"z_baseline": estimators[BASELINE]} if BASELINE in estimators else {}),
        **({"z_tpl": estimators[TEMPLATE]} if TEMPLATE in estimators else {}),
    }  # fmt: skip
    w = worst(estimators[FNET], z_true, n_worst, columns=columns)
    fmt = lambda v: f"{v:.4f}" if abs(v) < 100 else f"{v:.0f}"

    head = (
        f"real SDSS quasars ({root}): {len(table)} spectra of {len(set(objects))} objects; "
        f"truth z_ref (curated ref_z where given, else the file's Z); model {model_path}"
    )
    if tpl is not None:
        head += f"\n{TEMPLATE}: model.template_fit on each file's native pixels ({template_z_range()})"
    parts = [head, "", "PER SPECTRUM", format_tables(tables), "PER OBJECT (each object weighs 1: the mean of its spectra's hits)"]
    for key, title in (("objects_by_z", "by true redshift"), ("objects_by_survey", "by survey")):
        parts += [f"== {title} ==", format_table(compact(obj_tables[key], keep_all=True)), ""]
    parts += [f"== worst {n_worst} spectra for {FNET} ==", w.to_string(index=False, float_format=fmt)]
    meta_tpl = None
    if tpl is not None:
        # every spectrum the template fit misses at 6000 km/s (few: it is the most accurate estimator here)
        cols = {k: v for k, v in columns.items() if k != "z_tpl"} | {"tpl_dchi2": tpl["tpl_dchi2"].to_numpy()}
        wt = worst(estimators[TEMPLATE], z_true, len(table), columns=cols).rename(columns={"z_pred": "z_tpl"})
        wt = wt[~(np.abs(wt["dv_kms"]) < 6000)]
        parts += ["", f"== {TEMPLATE}: spectra off by 6000 km/s or more ({len(wt)}) ==",
                  wt.to_string(index=False, float_format=fmt) if len(wt) else "(none)"]  # fmt: skip
        meta_tpl = {
            "method": f"model.template_fit.fit_batch, native pixels, {template_z_range()}",
            "n_no_fit": int(np.isnan(estimators[TEMPLATE]).sum()),
            "misses_6000": wt.to_dict(orient="records"),
        }  # fmt: skip
    text = "\n".join(parts) + "\n"

    all_tables = {**tables, **obj_tables}
    out = Path(out_dir) if out_dir is not None else Path("evaluation") / f"real-{Path(model_path).stem}"
    meta = {
        "real_root": str(root), "model": str(model_path), "baseline": str(baseline) if baseline else None,
        "n_spectra": len(table), "n_objects": len(set(objects)), "estimators": list(estimators),
        "per_object_rule": "every object weighs 1; its score is the fraction of its spectra within the threshold",
        "worst": w.to_dict(orient="records"), "template_fit": meta_tpl,
    }  # fmt: skip
    files = [_write_json(out / "evaluation_real.json", all_tables, meta)]
    if plot:
        files.append(fig4(estimators, z_true, out / "fig4_real.png", title=f"{Path(model_path).stem} on {len(table)} real SDSS quasar spectra"))
    return Evaluation(all_tables, text, files, meta)


__all__ = ["PIPELINE", "evaluate_real", "template_fit_real"]
