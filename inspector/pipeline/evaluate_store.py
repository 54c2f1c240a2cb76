"""`inspector evaluate --store`: a predictions parquet scored on a spectrum store.

Redshift: FNet's predictions scored against the store's `z` on its quasars
(`inspector.training_set.quasar_rows`, the one definition of what redshift
accuracy is scored on), beside the estimators the store's catalog carries
(Z_PIPE, Z_PCA, Z_QN; a -1 there is "no redshift" and counts as wrong) and,
with a baseline predictions parquet, our QuasarNET-style baseline (a failure,
qn_failed, counts as wrong) and the chi2 template fit (Z_TPL,
`model.template_fit`: the predictions' z_tpl column when `inspector predict`
stored one with today's settings, else fitted by
`inspector.pipeline.template.template_fits`, cached; no fit counts as wrong) -- all
on the same spectra. Tables: overall, by true z, by survey, by S/N
(SN_MEDIAN_ALL), BAL or not (CLASS_PERSON 30 or BAL_PROB >= 0.5), and split by
where the baseline failed.

Class: FNet's fnet_class / p_qso on every scored spectrum, stars, galaxies and
empty spectra included, against `inspector.training_set.store_classes` (the
mock's MOCK_KIND, else DR16Q's CLASS_PERSON, else the file's CLASS): the
confusion matrix and quasar completeness and purity, overall, by survey and
by S/N; "no class head" for a model without one.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

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
from inspector.pipeline.template import template_fits
from inspector.store import open_store
from inspector.store.files import read_sidecar, template_cache_path
from inspector.training_set import held_out_rows, quasar_rows, store_classes
from model.evaluate import (
    evaluation_tables,
    format_tables,
    sn_bin_groups,
    survey_groups,
)
from model.template_fit import settings_key

CATALOG_ESTIMATORS = ("Z_PIPE", "Z_PCA", "Z_QN")


def _read_predictions(path: Path, index: pd.DataFrame, z_col: str, what: str) -> pd.DataFrame:
    """A predictions parquet keyed by store `row`, checked against the store's object ids."""
    if not path.exists():
        raise ValueError(f"{what} file {path} does not exist")
    pred = pd.read_parquet(path)
    missing = {"row", z_col} - set(pred.columns)
    if missing:
        raise ValueError(f"{path}: no column(s) {sorted(missing)} (has {list(pred.columns)[:12]})")
    rows = pred["row"].to_numpy(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= len(index)):
        raise ValueError(f"{path}: rows up to {rows.max()} but the store has {len(index)} spectra")
    if pd.Index(rows).has_duplicates:
        raise ValueError(f"{path}: a store row is predicted more than once")
    if "object_id" in pred.columns:
        stored = index["object_id"].astype(str).to_numpy()[rows]
        bad = np.flatnonzero(stored != pred["object_id"].astype(str).to_numpy())
        if bad.size:
            r = int(rows[bad[0]])
            raise ValueError(
                f"{path}: made on another store: row {r} is {stored[bad[0]]!r} here, "
                f"{pred['object_id'].iloc[bad[0]]!r} there ({bad.size} rows differ)"
            )
    return pred.set_index("row", drop=False)


def _held_out_rows(store: Path, index: pd.DataFrame, predictions: Path) -> tuple[np.ndarray | None, str]:
    """Rows the model behind `predictions` did not train on, from the predictions' JSON sidecar.

    (None, why) when that cannot be known. A model trained on another store
    never saw this one: every row is held out. A model trained on this store
    held out the validation split `inspector train` drew (grouped by object),
    rebuilt by `inspector.training_set.held_out_rows` and accepted only if it
    hashes to the model's recorded training data.
    """
    side_path = Path(predictions).with_suffix(".json")
    if not side_path.exists():
        return None, f"no sidecar {side_path.name} naming the model's training data"
    try:
        side = json.loads(side_path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable sidecar {side_path.name} ({exc})"
    prov = (side.get("model") or {}).get("provenance") or {}
    trained_on = prov.get("store")
    if not trained_on:
        return None, "the model's provenance does not name its training store"
    if Path(trained_on).resolve() != Path(store).resolve():
        return np.arange(len(index), dtype=np.int64), f"held out: the model was trained on another store ({trained_on})"
    seed = (prov.get("train_args") or {}).get("seed", prov.get("seed"))
    if seed is None or not prov.get("data_hash"):
        return None, "the model was trained on this store and its provenance does not say which rows were held out"

    vf = prov.get("val_fraction", (prov.get("train_args") or {}).get("val_fraction"))
    val = held_out_rows(index, prov, vf)
    if val is None:
        return None, "the model was trained on this store and its training split could not be rebuilt (data hash differs)"
    return val, (
        f"held out: the validation split of training on this store (val_fraction {0.1 if vf is None else vf:g}, "
        f"seed {seed}; verified against the model's training-data hash)"
    )


def _select_split(
    pred: pd.DataFrame, split: str, store: Path | None = None, index: pd.DataFrame | None = None,
    predictions: Path | None = None,
) -> tuple[np.ndarray, str]:
    """Store rows to score and a note saying which.

    split "all": every predicted row. Otherwise the rows whose `split` column
    equals it, if the predictions have that column; else, for "test" (or
    "val"), the rows the model did not train on, as far as the predictions'
    sidecar tells (`_held_out_rows`); else every row, with a note saying the
    figures may include training data.
    """
    rows = pred["row"].to_numpy(np.int64)
    if split == "all":
        return rows, "all predicted spectra"
    if "split" in pred.columns:
        values = pred["split"].astype(str)
        keep = (values == split).to_numpy()
        if not keep.any():
            raise ValueError(f"no predictions in split {split!r} (splits there: {sorted(values.unique())})")
        return rows[keep], f"split {split!r}"
    why = "no 'split' column"
    if split in ("test", "val") and store is not None and index is not None and predictions is not None:
        held, why = _held_out_rows(store, index, predictions)
        if held is not None:
            return rows[np.isin(rows, held)], why
    return rows, (
        f"all predicted spectra: --split {split} cannot be honoured ({why}); the figures may include training data"
    )


def _bal_flag(index: pd.DataFrame) -> np.ndarray | None:
    flags = []
    if "CLASS_PERSON" in index:
        flags.append(pd.to_numeric(index["CLASS_PERSON"], errors="coerce").to_numpy(np.float64, na_value=np.nan) == 30)
    if "BAL_PROB" in index:
        flags.append(pd.to_numeric(index["BAL_PROB"], errors="coerce").to_numpy(np.float64, na_value=np.nan) >= 0.5)
    return np.logical_or.reduce(flags) if flags else None


def _sn(index: pd.DataFrame) -> np.ndarray | None:
    for col in ("SN_MEDIAN_ALL", "sn_median_all"):
        if col in index:
            return pd.to_numeric(index[col], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return None


def _sources(sub: pd.DataFrame) -> str:
    if "z_source" not in sub:
        return "?"
    counts = sub["z_source"].astype("string").fillna("none").value_counts()
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _store_template_z(
    store: Path, pred: pd.DataFrame, rows: np.ndarray, processes: int | None, predictions: Path | None = None
) -> tuple[np.ndarray, str]:
    """Z_TPL on `rows` (NaN where the fit found none) and where it came from.

    The predictions' z_tpl column when it holds any value and was made with
    today's template-fit settings (its sidecar records them); else
    `inspector.pipeline.template.template_fits`, which fits the whole store once and
    caches it, so a stale column is never scored as the current estimator.
    """
    stale = ""
    if "z_tpl" in pred.columns:
        col = pd.to_numeric(pred["z_tpl"], errors="coerce")
        if col.notna().any():
            made_with = ((read_sidecar(predictions) or {}).get("template_fit") or {}).get("settings")
            if predictions is None or made_with == settings_key():
                return col.loc[rows].to_numpy(np.float64, na_value=np.nan), "the predictions' z_tpl column"
            stale = "; the predictions' z_tpl column was made with other settings (or unrecorded ones), not used"
    df = template_fits(store, processes=processes).set_index("row")
    z = pd.to_numeric(df["z_tpl"], errors="coerce").reindex(rows).to_numpy(np.float64, na_value=np.nan)
    return z, f"inspector.pipeline.template on the store (cached in {template_cache_path(store)}){stale}"


def _fnet_classes(pred: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(fnet_class, p_qso) on `rows`, or (None, None) where the predictions carry no class (no class head)."""
    if "fnet_class" not in pred.columns or not pred["fnet_class"].notna().any():
        return None, None
    cls = pred.loc[rows, "fnet_class"].to_numpy(object)
    p = pd.to_numeric(pred.loc[rows, "p_qso"], errors="coerce").to_numpy(np.float64) if "p_qso" in pred else None
    return cls, p


def evaluate_store(
    store: Path,
    predictions: Path,
    baseline: Path | None = None,
    split: str = "test",
    out_dir: Path | None = None,
    plot: bool = True,
    template: bool = True,
    template_processes: int | None = None,
) -> Evaluation:
    """Score a predictions parquet on a store: redshift on its quasars, class on every spectrum (module docstring)."""
    from model.plots import fig4

    index = open_store(store).index
    pred = _read_predictions(Path(predictions), index, "z_fnet", "predictions")
    scored, split_note = _select_split(pred, split, Path(store), index, Path(predictions))
    scored = np.sort(scored)
    z_all = pd.to_numeric(index["z"], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    rows = quasar_rows(index, scored)
    rows = rows[np.isfinite(z_all[rows]) & (z_all[rows] >= 0)]
    if rows.size == 0:
        raise ValueError("no quasar with a redshift among the predicted spectra")

    z_true = z_all[rows]
    estimators: dict[str, np.ndarray] = {FNET: pred.loc[rows, "z_fnet"].to_numpy(np.float64)}
    baseline_failed = None
    failed_from = None
    notes: list[str] = []
    if baseline is not None:
        qn = _read_predictions(Path(baseline), index, "z_qn", "baseline")
        have = np.isin(rows, qn["row"].to_numpy(np.int64))
        if not have.all():
            raise ValueError(f"{baseline}: no baseline prediction for {int((~have).sum())} of the {rows.size} spectra")
        qn = qn.loc[rows]
        if "split" in qn:
            seen = int((qn["split"].astype(str) == "train").sum())
            if seen:
                notes.append(f"note: the baseline was trained on {seen} of the {rows.size} scored spectra; its figures are optimistic")
        failed = qn["qn_failed"].to_numpy(bool) if "qn_failed" in qn else np.isnan(catalog_z(qn["z_qn"]))
        estimators[BASELINE] = np.where(failed, np.nan, qn["z_qn"].to_numpy(np.float64))
        baseline_failed, failed_from = failed, f"our baseline ({Path(baseline).name}) failed"
    template_from = None
    if template:
        estimators[TEMPLATE], template_from = _store_template_z(Path(store), pred, rows, template_processes,
                                                                Path(predictions))
    sub = index.iloc[rows]
    for col in CATALOG_ESTIMATORS:
        if col in sub:
            estimators[f"catalog {col}"] = catalog_z(sub[col])
    if baseline_failed is None and "Z_QN" in sub:
        baseline_failed = np.isnan(catalog_z(sub["Z_QN"]))  # Z_QN = -1 (or missing)
        failed_from = "catalog Z_QN = -1"
    sn, bal = _sn(index), _bal_flag(index)
    survey = survey_names(index["survey"]) if "survey" in index else np.full(len(index), "unknown", dtype=object)
    tables = evaluation_tables(
        estimators, z_true,
        sn=None if sn is None else sn[rows],
        is_bal=None if bal is None else bal[rows],
        baseline_failed=baseline_failed,
        survey=survey[rows],
    )  # fmt: skip

    fnet_class, p_qso = _fnet_classes(pred, scored)
    sn_scored = np.full(scored.size, np.nan) if sn is None else sn[scored]
    class_tables, class_text, class_meta = class_report(
        store_classes(index)[scored], fnet_class, p_qso,
        names=index["object_id"].astype(str).to_numpy()[scored],
        groups={**survey_groups(survey[scored]), **sn_bin_groups(sn_scored)},
        truth_note="the mock's MOCK_KIND, else CLASS_PERSON, else the file's CLASS",
    )  # fmt: skip

    head = [
        f"store {store}: {len(index)} spectra; predictions {predictions}: {len(pred)} spectra",
        f"scored: {rows.size} quasars with a true z, {scored.size} spectra for the class ({split_note})",
        f"truth: the store's z (z_source: {_sources(sub)})",
    ]
    if failed_from:
        head.append(f"baseline-failed subset: {failed_from}, {int(np.sum(baseline_failed))} spectra")
    if template_from:
        n_none = int(np.isnan(estimators[TEMPLATE]).sum())
        head.append(f"{TEMPLATE}: from {template_from}" + (f"; no fit for {n_none} spectra (wrong)" if n_none else ""))
    head += notes
    text = "\n".join(head) + "\n\n" + format_tables(tables) + "\n" + class_text

    all_tables = {**tables, **class_tables}
    out = Path(out_dir) if out_dir is not None else Path(store) / "evaluation" / Path(predictions).stem
    meta = {
        "store": str(store), "predictions": str(predictions), "baseline": str(baseline) if baseline else None,
        "split": split_note, "n_scored": int(rows.size), "n_scored_class": int(scored.size),
        "estimators": list(estimators), "baseline_failed_from": failed_from, "template_from": template_from,
        "class": class_meta,
    }  # fmt: skip
    files = [write_json(out / "evaluation.json", all_tables, meta)]
    if plot:
        files.append(fig4(estimators, z_true, out / "fig4.png", title=f"{Path(predictions).stem} on {Path(store).name}: {rows.size} quasars"))
    return Evaluation(all_tables, text, files, meta)


__all__ = ["CATALOG_ESTIMATORS", "evaluate_store"]
