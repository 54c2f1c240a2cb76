"""The `inspector export` subcommand: the vetted catalog (FITS + CSV + Parquet) of a prediction run.

Without a database (or before anyone decided anything) every spectrum's final
z is the model's (source "model"). With `--db URL`, the database's verdicts
override it (`db.export.final_decisions`: one inspector -> "person"; agreeing
inspectors or a resolution -> "consensus"; an unresolved conflict ->
"conflict", keeping the model's z). The catalog columns, units, header and
options are `db.export`'s; this module only gathers the rows from the store,
the predictions and the triage run (`model_rows`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from inspector.cli import app


def _num(index, *names: str) -> np.ndarray:
    import pandas as pd

    for c in names:
        if c in index.columns:
            return pd.to_numeric(index[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return np.full(len(index), np.nan)


def model_version_of(predictions: Path, pred, sidecar: dict[str, Any] | None) -> str:
    """'<model stem>@<sha1[:12]>' (the stem from the sidecar's model path, else the predictions' stem)."""
    sha = ((sidecar or {}).get("model") or {}).get("sha1")
    if not sha and "model_sha1" in pred.columns:
        u = pred["model_sha1"].dropna().unique()
        sha = str(u[0]) if len(u) == 1 else None
    path = ((sidecar or {}).get("model") or {}).get("path")
    stem = Path(path).stem if path else Path(predictions).stem
    return f"{stem}@{sha[:12]}" if sha else stem


def model_rows(store: Path, predictions: Path) -> tuple[Any, dict[str, Any]]:
    """Catalog rows (the `db.export` contract) with the model's z for every stored spectrum, and the meta.

    Adds plate/mjd/fiberid/targetid, z_vi, sn_median_all and, when
    STORE/triage/<predictions-stem>.parquet exists, the triage rules and
    priority of each flagged spectrum; the meta carries that run's thresholds.
    """
    import pandas as pd

    from inspector.cli_triage import (
        default_triage_output,
        read_triage,
        resolve_predictions,
    )
    from inspector.store import open_store
    from inspector.triage import read_sidecar, triage_frame

    st = open_store(store)
    pred_path = resolve_predictions(st.path, predictions)
    pred = pd.read_parquet(pred_path)
    side = read_sidecar(pred_path)
    frame = triage_frame(st.index, pred)  # checks the predictions belong to this store; NaN where none
    ix = st.index
    version = model_version_of(pred_path, pred, side)
    n = len(ix)
    rows = pd.DataFrame({
        "object_id": frame["object_id"].to_numpy(),
        "ra": _num(ix, "ra", "RA"), "dec": _num(ix, "dec", "DEC"),
        "z_final": frame["z_fnet"].to_numpy(),
        "z_source": np.full(n, "model", dtype=object),
        "quality": np.full(n, np.nan, dtype=np.float32),
        "inspectors": np.full(n, "", dtype=object),
        "n_decisions": np.zeros(n, np.int32),
        "z_fnet": frame["z_fnet"].to_numpy(), "z_fnet_err": frame["z_fnet_err"].to_numpy(),
        "z_pipe": _num(ix, "Z_PIPE"), "z_qn": _num(ix, "Z_QN"), "z_pca": _num(ix, "Z_PCA"),
        "model_version": np.full(n, version, dtype=object),
    })  # fmt: skip
    for c in ("plate", "mjd", "fiberid", "targetid"):
        if c in ix.columns:
            rows[c] = ix[c].astype("Int64").to_numpy()
    rows["z_vi"] = _num(ix, "Z_VI")
    if "z_tpl" in pred.columns and pred["z_tpl"].notna().any():  # the template fit, where the run stored it
        r = pred["row"].to_numpy(np.int64)
        for c in ("z_tpl", "z_tpl_err", "tpl_dchi2"):
            v = np.full(n, np.nan)
            v[r] = pd.to_numeric(pred[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
            rows[c] = v
    rows["sn_median_all"] = _num(ix, "SN_MEDIAN_ALL", "sn_median_all")
    meta: dict[str, Any] = {
        "model_version": version,
        "store": str(st.path.resolve()),
        "predictions": str(Path(pred_path).resolve()),
        "model": {k: ((side or {}).get("model") or {}).get(k) for k in ("path", "sha1", "label_scaling")},
        "thresholds": {},
        "triage": None,
    }
    tri = default_triage_output(st.path, pred_path)
    if tri.exists():
        flags, tmeta = read_triage(tri)
        rules = np.full(n, "", dtype=object)
        prio = np.zeros(n)
        r = flags["row"].to_numpy(np.int64)
        rules[r] = [",".join(x) for x in flags["rules"]]
        prio[r] = flags["priority"].to_numpy(np.float64)
        rows["triage_rules"] = rules
        rows["priority"] = prio
        meta["triage"] = str(tri.resolve())
        meta["thresholds"] = {k: v.get("threshold") for k, v in (tmeta.get("rules") or {}).items()}
        for k in tmeta.get("disabled") or []:
            meta["thresholds"][k] = None
    return rows, meta


def decisions_from_db(url: str):
    """(one row per judged spectrum from `db.export.final_decisions`, the URL without its password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from db.engine import make_engine, session_scope
    from db.export import final_decisions

    shown = make_url(url).render_as_string(hide_password=True)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            return final_decisions(s), shown
    except SQLAlchemyError as exc:
        raise ValueError(f"database {shown}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()


@app.command("export")
def export_command(
    store: Path = typer.Option(..., "--store", help="Spectrum store directory."),
    predictions: Path = typer.Option(
        ..., "--predictions", help="Predictions parquet (`inspector predict`), or its name under STORE/predictions."
    ),
    out: Path = typer.Option(..., "--out", help="Output base: writes BASE.fits, BASE.csv, BASE.parquet, BASE.json."),
    only_inspected: bool = typer.Option(False, "--only-inspected", help="Only spectra a person decided."),
    min_quality: int | None = typer.Option(None, "--min-quality", help="Only spectra with quality >= Q (0-4)."),
    formats: str = typer.Option("fits,csv,parquet", "--formats", help="Comma-separated subset of fits,csv,parquet."),
    db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL: people's decisions override the model's z."),
) -> None:
    """Write the vetted catalog: final z, its source (person / consensus / model), quality, inspectors,
    the model's z and the catalog's z's, with units and provenance (model version, date, counts, thresholds)."""
    from db.export import export_catalog, overlay_decisions

    try:
        rows, meta = model_rows(store, predictions)
        if db is not None:
            decided, meta["database"] = decisions_from_db(db)
            rows = overlay_decisions(rows, decided)
        paths = export_catalog(
            rows, out, meta, formats=[f.strip() for f in formats.split(",") if f.strip()],
            only_inspected=only_inspected, min_quality=min_quality,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    import json

    side = json.loads(paths[-1].read_text())
    c = side["counts"]
    typer.echo(
        f"catalog: {c['n_rows']} of {side['counts_before_filters']['n_rows']} spectra "
        f"(inspected {c['n_inspected']}; person {c['n_person']}, consensus {c['n_consensus']}, "
        f"conflict {c['n_conflict']}, model {c['n_model']}); "
        f"model {side['model_version']}"
    )
    for p in paths:
        typer.echo(f"  {p}")
