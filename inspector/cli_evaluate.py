"""The `inspector evaluate` subcommand: the paper's accuracy tables and Fig. 4.

Two modes.

Store mode (`--store DIR --predictions P.parquet`): FNet's predictions scored
against the store's `z` on its quasars (`is_qso`), beside the estimators the
store's catalog carries (Z_PIPE, Z_PCA, Z_QN; a -1 there is "no redshift" and
counts as wrong) and, with `--baseline quasarnet.parquet`, our QuasarNET-style
baseline (a failure, qn_failed, counts as wrong) and the chi2 template fit
(Z_TPL, `model.template_fit`: the predictions' z_tpl column when `inspector
predict` stored one, else fitted by `inspector.template_run.template_fits`,
cached in STORE/predictions/template_fit.parquet; a spectrum with no fit
counts as wrong) -- all on the same spectra.
Tables: overall, by true z, by S/N (SN_MEDIAN_ALL), BAL or not (CLASS_PERSON
30 or BAL_PROB >= 0.5), and split by where the baseline failed (our
baseline's qn_failed with --baseline, else the catalog's Z_QN = -1).

Real mode (`--real --model fnet.pt [--baseline qn.pt]`, in
`inspector.evaluate_real`): the model run on the labelled real SDSS quasars
(`inspector.realset`, truth = z_ref), beside the baseline, the template fit
(run on each file's native pixels, loglam = log10(wave)) and the files' own
pipeline Z, per spectrum and per object. Per object, repeat epochs of one
object are kept together: every object weighs 1 and scores the fraction of
its spectra within each threshold (the per-object mean of the per-spectrum
hits; see `model.evaluate.object_accuracy_table`).

Both print the tables and write fig4*.png and evaluation*.json to --out-dir;
--no-template leaves the template fit out of both.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from inspector.cli import app

CATALOG_ESTIMATORS = ("Z_PIPE", "Z_PCA", "Z_QN")
FNET = "FNet"
BASELINE = "QuasarNET-style (ours)"
TEMPLATE = "Template fit (Z_TPL)"


@dataclass
class Evaluation:
    """What one evaluation produced: tables by name, the text printed, the files written."""

    tables: dict[str, pd.DataFrame]
    text: str
    files: list[Path] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers
def _no_z_as_nan(values) -> np.ndarray:
    """Catalog redshift column -> float array with the DR16Q "no redshift" -1 (and NA) as NaN."""
    z = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return np.where(z <= -0.99, np.nan, z)


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
    which is rebuilt from the val_fraction and seed its provenance records.
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
    recorded = prov.get("val_fraction", (prov.get("train_args") or {}).get("val_fraction"))
    if seed is None or not prov.get("data_hash"):
        return None, "the model was trained on this store and its provenance does not say which rows were held out"
    from inspector.training_set import held_out_rows

    # Rebuild `inspector train`'s split (its val_fraction as recorded, else its default 0.1) and accept it
    # only if the training rows hash to the model's recorded data hash: then it is exactly the split used.
    val = held_out_rows(index, prov, recorded)
    if val is not None:
        vf = 0.1 if recorded is None else float(recorded)
        return val, (
            f"held out: the validation split of training on this store (val_fraction {vf:g}, seed {seed}; "
            "verified against the model's training-data hash)"
        )
    return None, "the model was trained on this store and its training split could not be rebuilt (data hash differs)"


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


def _write_json(path: Path, tables: dict[str, pd.DataFrame], meta: dict[str, Any]) -> Path:
    from model.evaluate import tables_to_records

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "tables": tables_to_records(tables)}, indent=1, default=str))
    return path


def _store_template_z(
    store: Path, pred: pd.DataFrame, rows: np.ndarray, processes: int | None, predictions: Path | None = None
) -> tuple[np.ndarray, str]:
    """Z_TPL on `rows` (NaN where the fit found none) and where it came from.

    The predictions' z_tpl column when it holds any value and was made with
    today's template-fit settings (its sidecar records them); else
    `inspector.template_run.template_fits`, which fits the whole store once and
    caches it, so a stale column is never scored as the current estimator.
    """
    from inspector.template_run import cache_path, template_fits
    from inspector.triage import read_sidecar
    from model.template_fit import settings_key

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
    return z, f"inspector.template_run on the store (cached in {cache_path(store)}){stale}"


# --------------------------------------------------------------------------- store mode
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
    """Score a predictions parquet on a store's quasars; see the module docstring."""
    from inspector.store import open_store
    from model.evaluate import evaluation_tables, fig4, format_tables

    st = open_store(store)
    index = st.index
    pred = _read_predictions(Path(predictions), index, "z_fnet", "predictions")
    rows, split_note = _select_split(pred, split, Path(store), index, Path(predictions))
    z_all = pd.to_numeric(index["z"], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    is_qso = index["is_qso"].astype("boolean").fillna(False).to_numpy(bool)
    keep = is_qso[rows] & np.isfinite(z_all[rows]) & (z_all[rows] >= 0)
    rows = np.sort(rows[keep])
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
        failed = qn["qn_failed"].to_numpy(bool) if "qn_failed" in qn else (qn["z_qn"].to_numpy(float) <= -0.99)
        estimators[BASELINE] = np.where(failed, np.nan, qn["z_qn"].to_numpy(np.float64))
        baseline_failed, failed_from = failed, f"our baseline ({Path(baseline).name}) failed"
    template_from = None
    if template:
        estimators[TEMPLATE], template_from = _store_template_z(Path(store), pred, rows, template_processes,
                                                                Path(predictions))
    sub = index.iloc[rows]
    for col in CATALOG_ESTIMATORS:
        if col in sub:
            estimators[f"catalog {col}"] = _no_z_as_nan(sub[col])
    if baseline_failed is None and "Z_QN" in sub:
        baseline_failed = np.isnan(_no_z_as_nan(sub["Z_QN"]))  # Z_QN = -1 (or missing)
        failed_from = "catalog Z_QN = -1"
    sn, bal = _sn(index), _bal_flag(index)
    tables = evaluation_tables(
        estimators, z_true,
        sn=None if sn is None else sn[rows],
        is_bal=None if bal is None else bal[rows],
        baseline_failed=baseline_failed,
    )  # fmt: skip

    n_pred = len(pred)
    head = [
        f"store {store}: {len(index)} spectra; predictions {predictions}: {n_pred} spectra",
        f"scored: {rows.size} quasars with a true z ({split_note})",
        f"truth: the store's z (z_source: {_sources(sub)})",
    ]
    if failed_from:
        head.append(f"baseline-failed subset: {failed_from}, {int(np.sum(baseline_failed))} spectra")
    if template_from:
        n_none = int(np.isnan(estimators[TEMPLATE]).sum())
        head.append(f"{TEMPLATE}: from {template_from}" + (f"; no fit for {n_none} spectra (wrong)" if n_none else ""))
    head += notes
    text = "\n".join(head) + "\n\n" + format_tables(tables)

    out = Path(out_dir) if out_dir is not None else Path(store) / "evaluation" / Path(predictions).stem
    meta = {
        "store": str(store), "predictions": str(predictions), "baseline": str(baseline) if baseline else None,
        "split": split_note, "n_scored": int(rows.size), "estimators": list(estimators),
        "baseline_failed_from": failed_from, "template_from": template_from,
    }  # fmt: skip
    files = [_write_json(out / "evaluation.json", tables, meta)]
    if plot:
        files.append(fig4(estimators, z_true, out / "fig4.png", title=f"{Path(predictions).stem} on {Path(store).name}: {rows.size} quasars"))
    return Evaluation(tables, text, files, meta)


# --------------------------------------------------------------------------- the command
@app.command("evaluate")
def evaluate_command(
    store: Path | None = typer.Option(None, "--store", help="Spectrum store whose quasars are scored."),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="FNet predictions parquet (row, object_id, z_fnet), e.g. STORE/predictions/fnet.parquet."
    ),
    baseline: Path | None = typer.Option(
        None, "--baseline",
        help="QuasarNET-style baseline: its predictions parquet (row, z_qn, qn_failed) with --store, its checkpoint with --real.",
    ),
    split: str = typer.Option(
        "test", "--split", help="'all', or which value of the predictions' split column to score (test, val, train)."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out-dir",
        help="Where fig4*.png and evaluation*.json go (default STORE/evaluation/<predictions stem>, or evaluation/real-<model stem>).",
    ),
    real: bool = typer.Option(False, "--real", help="Score --model on the labelled real SDSS quasars instead."),
    model: Path | None = typer.Option(None, "--model", help="FNet checkpoint (with --real)."),
    real_root: Path | None = typer.Option(None, "--real-root", help="Real data directory (default ../shared/data/real)."),
    threads: int | None = typer.Option(None, "--threads", help="torch threads for --real (default: torch's)."),
    template: bool = typer.Option(
        True, "--template/--no-template",
        help="Score the chi2 template fit (Z_TPL) too: the predictions' z_tpl column, else fitted on the store "
        "(cached) or, with --real, on the files' native pixels.",
    ),
    template_processes: int | None = typer.Option(
        None, "--template-processes", min=1, help="Processes for a template fit that must be run (default: the CPU count, <= 8).",
    ),
) -> None:
    """Print the paper's accuracy tables (|dv| < 6000/12000/30000 km/s) and save a Fig. 4 plot."""
    try:
        if real:
            if model is None:
                raise ValueError("--real needs --model fnet.pt")
            if threads:
                import torch

                torch.set_num_threads(threads)
            from inspector.evaluate_real import evaluate_real

            ev = evaluate_real(model, baseline, out_dir, real_root, template=template, template_processes=template_processes)
        else:
            if store is None or predictions is None:
                raise ValueError("give --store and --predictions (or --real --model)")
            ev = evaluate_store(
                store, predictions, baseline, split, out_dir, template=template, template_processes=template_processes
            )
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        typer.echo(ev.text)
    for f in ev.files:
        typer.echo(f"wrote {f}")
