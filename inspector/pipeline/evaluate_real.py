"""`inspector evaluate --real`: an FNet checkpoint on the labelled real SDSS spectra.

FNet runs on every sdss/ file of the real set (`inspector.realset`): the
quasars, the stars and the galaxies.

Redshift, on the quasars only (`realset.labelled_quasars`; the z of a star
or galaxy is no quasar redshift): truth is z_ref (the curated ref_z where
given, else the file's Z). Beside FNet: our QuasarNET-style baseline (its
checkpoint, run on the same FNet-grid rows; a failure counts as wrong), the
chi2 template fit (`model.template_fit.fit_batch` on each file's native
pixels, loglam = log10(wave); no fit counts as wrong) and the files' own
pipeline Z. Tables per spectrum (overall, by z, by survey, by S/N) and per
object: repeat epochs of one object are kept together, every object weighs 1
and scores the fraction of its spectra within each threshold
(`model.evaluate.object_accuracy_table`).

Class, on every file with a class truth (`realset.CLASS_RULES`: the
manifest's class unless the curated notes or ref_z say otherwise; a file
whose epochs disagree is listed, not scored): the confusion matrix, quasar
completeness and purity, and every star or galaxy FNet calls a quasar by name.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd

from inspector import realset
from inspector.estimates import catalog_z
from inspector.pipeline.evaluate_common import (
    BASELINE,
    FNET,
    TEMPLATE,
    Evaluation,
    class_report,
    survey_names,
    write_json,
)
from inspector.pipeline.predict import class_columns
from inspector.pipeline.template import default_processes
from inspector.readers import read_spec_file
from model.class_metrics import class_indices
from model.evaluate import (
    Z_EDGES,
    compact,
    evaluation_tables,
    format_tables,
    object_accuracy_table,
    sn_bin_groups,
    survey_groups,
    worst,
)
from model.metrics import format_table, z_bin_groups
from model.template_fit import fit_batch, fits_to_columns

PIPELINE = "pipeline Z (file)"
CLASS_TRUTH = "the manifest's class, overruled by the curated notes and ref_z (inspector.realset.CLASS_RULES)"


def run_fnet(model, flux: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(z, class probabilities N x len(CLASSES) or None for a model without a class head) for grid flux."""
    from model.predict import predict_store

    zs, probs = [], []
    for b in predict_store(model, flux):
        zs.append(np.asarray(b.z, np.float64))
        probs.append(getattr(b, "class_prob", None))
    if not zs:
        return np.zeros(0), None
    return np.concatenate(zs), (None if any(p is None for p in probs) else np.concatenate(probs))


def predict_baseline(path: Path, flux: np.ndarray, ivar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z with failures as NaN, failed) from a QuasarNET-style baseline checkpoint."""
    from model.quasarnet_train import load_quasarnet, predict_quasarnet

    qn, _ = load_quasarnet(path)
    df = predict_quasarnet(qn, flux, ivar)
    failed = df["qn_failed"].to_numpy(bool)
    return np.where(failed, np.nan, df["z_qn"].to_numpy(np.float64)), failed


def template_z_range() -> str:
    """The z range `fit_batch` scans by default, as text ("z 0-5")."""
    par = inspect.signature(fit_batch).parameters
    return f"z {par['z_min'].default:g}-{par['z_max'].default:g}"


def template_fit_real(root: Path, files, processes: int | None = None) -> pd.DataFrame:
    """`model.template_fit.TPL_COLUMNS` for each file under `root`, fitted on its native pixels.

    Read with the reader `inspector.realset` uses; loglam = log10(wave), flux
    and ivar as read (NaN z_tpl where the fit found no minimum).
    """
    specs = [read_spec_file(Path(root) / f) for f in files]
    fits = fit_batch(
        [np.log10(np.asarray(s.wave, np.float64)) for s in specs],
        [np.asarray(s.flux, np.float64) for s in specs],
        [np.asarray(s.ivar, np.float64) for s in specs],
        processes=processes or min(default_processes(), 4),
    )  # fmt: skip
    return pd.DataFrame(fits_to_columns(fits))


def fnet_class_columns(class_prob: np.ndarray | None, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(fnet_class, p_qso) as a predictions file has them, or (None, None) without a class head."""
    if class_prob is None:
        return None, None

    cols = class_columns(class_prob, n)
    return cols["fnet_class"], cols["p_qso"]


def _real_classes(spectra: pd.DataFrame) -> np.ndarray:
    """Class index per file from `true_class`; UNKNOWN where there is none (disputed or unlabelled)."""
    return class_indices(spectra["true_class"].tolist())


def _non_quasar_listing(spectra: pd.DataFrame, z_fnet: np.ndarray, fnet_class, p_qso) -> pd.DataFrame:
    """Every file whose z is not scored (stars, galaxies, disputed) with what FNet makes of it."""
    keep = ~spectra["z_scored"].to_numpy(bool)
    df = pd.DataFrame({
        "file": [Path(f).name for f in spectra["file"]], "survey": survey_names(spectra["survey"]),
        "sn": pd.to_numeric(spectra["sn_median_all"], errors="coerce"),
        "true_class": spectra["true_class"].replace({"": "disputed"}), "z_file": spectra["z"],
        "z_fnet": z_fnet,
    })  # fmt: skip
    if fnet_class is not None:
        df["fnet_class"], df["p_qso"] = fnet_class, p_qso
    return df[keep].reset_index(drop=True)


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
    """Run an FNet checkpoint (a baseline, the template fit) on the labelled real SDSS spectra; see the module docstring."""
    from model.plots import fig4

    root = Path(real_root) if real_root is not None else realset.REAL_ROOT
    if not realset.available(root):
        raise ValueError(f"the real SDSS set is not at {root} (set FNET_REAL_DATA or --real-root)")
    flux, ivar, spectra = realset.load_on_grid(root, realset.labelled_spectra(root))
    q = spectra["z_scored"].to_numpy(bool)
    table = spectra[q].reset_index(drop=True)
    # the template fit first: its worker processes are forked before torch starts its thread pools
    tpl = template_fit_real(root, table["file"], template_processes) if template else None
    from model.train import load_checkpoint

    model, _ = load_checkpoint(Path(model_path))
    z_fnet_all, class_prob = run_fnet(model, flux)
    z_true = table["z_ref"].to_numpy(np.float64)
    estimators = {FNET: z_fnet_all[q]}
    if baseline is not None:
        estimators[BASELINE], _ = predict_baseline(Path(baseline), flux[q], ivar[q])
    if tpl is not None:
        estimators[TEMPLATE] = tpl["z_tpl"].to_numpy(np.float64)
    estimators[PIPELINE] = catalog_z(table["z"])
    objects = table["object_group"].astype(str).to_numpy()
    survey = survey_names(table["survey"])
    sn = pd.to_numeric(table["sn_median_all"], errors="coerce").to_numpy(np.float64)

    tables = evaluation_tables(estimators, z_true, sn=sn, survey=survey)
    obj_groups = {"objects_by_z": z_bin_groups(z_true, Z_EDGES), "objects_by_survey": survey_groups(survey),
                  "objects_by_sn": sn_bin_groups(sn)}  # fmt: skip
    obj_tables = {k: object_accuracy_table(estimators, z_true, objects, g) for k, g in obj_groups.items()}

    fnet_class, p_qso = fnet_class_columns(class_prob, len(spectra))
    survey_all = survey_names(spectra["survey"])
    sn_all = pd.to_numeric(spectra["sn_median_all"], errors="coerce").to_numpy(np.float64)
    class_tables, class_text, class_meta = class_report(
        _real_classes(spectra), fnet_class, p_qso, names=[Path(f).name for f in spectra["file"]],
        groups={**survey_groups(survey_all), **sn_bin_groups(sn_all)}, truth_note=CLASS_TRUTH,
    )  # fmt: skip
    others = _non_quasar_listing(spectra, z_fnet_all, fnet_class, p_qso)
    class_meta["not_z_scored"] = others.to_dict(orient="records")

    columns = {
        "file": [Path(f).name for f in table["file"]], "object": objects, "survey": survey, "sn": sn,
        "z_pipe": estimators[PIPELINE],
        **({"z_baseline": estimators[BASELINE]} if BASELINE in estimators else {}),
        **({"z_tpl": estimators[TEMPLATE]} if TEMPLATE in estimators else {}),
    }  # fmt: skip
    w = worst(estimators[FNET], z_true, n_worst, columns=columns)
    fmt = lambda v: f"{v:.4f}" if abs(v) < 100 else f"{v:.0f}"

    head = (
        f"real SDSS spectra ({root}): {len(spectra)} files; redshift scored on the {len(table)} quasar spectra of "
        f"{len(set(objects))} objects, truth z_ref (curated ref_z where given, else the file's Z); model {model_path}"
    )
    if tpl is not None:
        head += f"\n{TEMPLATE}: model.template_fit on each file's native pixels ({template_z_range()})"
    parts = [head, "", "PER SPECTRUM", format_tables(tables), "PER OBJECT (each object weighs 1: the mean of its spectra's hits)"]
    for key, title in (("objects_by_z", "by true redshift"), ("objects_by_survey", "by survey"), ("objects_by_sn", "by S/N")):
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
    parts += ["", "CLASS (every file)", class_text,
              f"== the {len(others)} files whose z is not scored (stars, galaxies, disputed): what FNet makes of them ==",
              others.to_string(index=False, float_format=fmt) if len(others) else "(none)"]  # fmt: skip
    text = "\n".join(parts) + "\n"

    all_tables = {**tables, **obj_tables, **class_tables}
    out = Path(out_dir) if out_dir is not None else Path("evaluation") / f"real-{Path(model_path).stem}"
    meta = {
        "real_root": str(root), "model": str(model_path), "baseline": str(baseline) if baseline else None,
        "n_files": len(spectra), "n_spectra": len(table), "n_objects": len(set(objects)),
        "estimators": list(estimators),
        "per_object_rule": "every object weighs 1; its score is the fraction of its spectra within the threshold",
        "worst": w.to_dict(orient="records"), "template_fit": meta_tpl, "class": class_meta,
    }  # fmt: skip
    files = [write_json(out / "evaluation_real.json", all_tables, meta)]
    if plot:
        files.append(fig4(estimators, z_true, out / "fig4_real.png", title=f"{Path(model_path).stem} on {len(table)} real SDSS quasar spectra"))
    return Evaluation(all_tables, text, files, meta)


__all__ = ["CLASS_TRUTH", "PIPELINE", "evaluate_real", "fnet_class_columns", "predict_baseline", "run_fnet", "template_fit_real"]
