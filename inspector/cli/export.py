"""The `inspector export` subcommand: the vetted catalog (FITS + CSV + Parquet) of a prediction run.

Without a database (or before anyone decided anything) every spectrum's final
z is the model's (source "model"). With `--db URL`, the database's verdicts
override it (`db.export.final_decisions`: one inspector -> "person"; agreeing
inspectors or a resolution -> "consensus"; an unresolved conflict ->
"conflict", keeping the model's z). The catalog columns, units, header and
options are `db.export`'s; the rows come from the store, the predictions and
the triage run (`inspector.pipeline.catalog_rows.model_rows`).

`--format desi-vi` or `--format marz` writes people's decisions instead, one file per inspector as DESI's
prospect or Marz write them (`db.vi_export`): they need `--db` only.
"""
from __future__ import annotations

from pathlib import Path

import typer

from db.vi_formats import VI_FORMATS
from inspector.cli import app
from inspector.pipeline.catalog_rows import model_rows


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


CATALOG = "catalog"
VI_FORMAT_NAMES = tuple(VI_FORMATS)  # db.vi_formats imports nothing heavy, so --help can name them


@app.command("export")
def export_command(
    store: Path | None = typer.Option(None, "--store", help="Spectrum store directory (the catalog needs it)."),
    predictions: Path | None = typer.Option(
        None, "--predictions",
        help="Predictions parquet (`inspector predict`), or its name under STORE/predictions (the catalog needs it).",
    ),
    out: Path = typer.Option(..., "--out", help="Output base: writes BASE.fits, BASE.csv, BASE.parquet, BASE.json; "
                             "with --format desi-vi / marz, one file per inspector beside BASE, titled by its name."),
    fmt: str = typer.Option(CATALOG, "--format", help=f"{CATALOG} (the vetted catalog, in --formats) or people's "
                            f"decisions as VI files: {' or '.join(VI_FORMAT_NAMES)} (needs --db)."),
    only_inspected: bool = typer.Option(False, "--only-inspected", help="Only spectra a person decided."),
    min_quality: int | None = typer.Option(None, "--min-quality", help="Only spectra with quality >= Q (0-4)."),
    only_qso: bool = typer.Option(False, "--only-qso", help="Only quasars (is_qso_final = 1: a person's verdict, "
                                  "else FNet's p_qso at or above the triage's fnet_qso_unsure threshold; "
                                  "a model without a class head calls nothing a quasar)."),
    formats: str = typer.Option("fits,csv,parquet", "--formats", help="Comma-separated subset of fits,csv,parquet."),
    db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL: people's decisions override the model's z."),
) -> None:
    """Write the vetted catalog: final z, its source (person / consensus / model), quality, inspectors, their
    comments and issue flags, the model's z and class, is_qso_final (a person's verdict, else FNet's), the
    catalog's z's, with units and provenance (model version, date, counts, thresholds). Or, with --format
    desi-vi / marz, each inspector's decisions as a DESI VI CSV / Marz .mz file."""
    if fmt != CATALOG:
        export_vi_command(fmt, out, db)
        return
    from db.export import export_catalog, overlay_decisions

    try:
        if store is None or predictions is None:
            raise ValueError("the catalog needs --store and --predictions")
        rows, meta = model_rows(store, predictions)
        if db is not None:
            decided, meta["database"] = decisions_from_db(db)
            rows = overlay_decisions(rows, decided)
        paths = export_catalog(
            rows, out, meta, formats=[f.strip() for f in formats.split(",") if f.strip()],
            only_inspected=only_inspected, min_quality=min_quality, p_qso_min=meta["p_qso_min"], only_qso=only_qso,
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
        f"is_qso_final: {c['n_qso']} quasars, {c['n_not_qso']} not, {c['n_qso_unknown']} not known "
        f"(p_qso >= {side['p_qso_min']:g} counts where nobody decided); model {side['model_version']}"
    )
    for p in paths:
        typer.echo(f"  {p}")


def export_vi_command(fmt: str, out: Path, db: str | None) -> None:
    """--format desi-vi / marz: `db.vi_export.export_vi_files`, then the files written and those left out."""
    from db.vi_export import export_vi_files

    try:
        if fmt not in VI_FORMAT_NAMES:
            raise ValueError(f"--format must be {CATALOG} or one of {', '.join(VI_FORMAT_NAMES)}, got {fmt!r}")
        if db is None:
            raise ValueError(f"--format {fmt} writes people's decisions: give --db")
        paths, left_out = export_vi_files(db, out, fmt)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{fmt}: {len(paths)} file(s), one per inspector")
    for p in paths:
        typer.echo(f"  {p}")
    if left_out:
        typer.echo(f"left out (no TARGETID, nor plate/mjd/fiber for its stand-in): {len(left_out)}: "
                   f"{', '.join(left_out[:10])}{' ...' if len(left_out) > 10 else ''}")
