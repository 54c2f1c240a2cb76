"""The `inspector import-vi` subcommand: DESI VI CSVs and Marz .mz files recorded as decisions (`db.vi_import`).

Exit status: 0 all rows imported (or already there); 1 some rows matched no spectrum (the rest imported,
those rows listed); 2 a file could not be read or a row is not a valid decision (nothing imported).
"""
from __future__ import annotations

from pathlib import Path

import typer

from inspector.cli import app

SHOWN = 20  # rows listed per kind before "..."


@app.command("import-vi")
def import_vi_command(
    files: list[Path] = typer.Argument(..., help="desi-vi_<title>_<scanner>.csv (DESI prospect) and <title>_<initials>.mz "
                                       "(Marz) files, by suffix."),
    db: str = typer.Option(..., "--db", "--url", help="SQLAlchemy URL of the inspection database."),
    inspector: str | None = typer.Option(
        None, "--inspector", help="Record every row as this inspector's (default: the file's VI_scanner, or the name "
        "in the Marz header or file name)."),
) -> None:
    """Record VI files' rows as decisions: matched to spectra by TARGETID, object id or plate-mjd-fiber, timed by
    the file (Marz header) or its modification time; a file imported twice records nothing new."""
    from db.vi_import import import_vi_files

    try:
        report = import_vi_files(db, files, inspector)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    times = ", ".join(sorted({f"{f.path.name}: {f.time_from} {f.decided_at:%Y-%m-%d %H:%M:%S} UTC" for f in report.files}))
    typer.echo(f"recorded {report.recorded} decision(s), {report.already} already there, from {len(report.files)} "
               f"file(s) ({times})")
    for what, rows in (("graded nothing and said nothing (not recorded)", report.undecided),
                       ("matched no single spectrum (not recorded)", report.unmatched)):  # fmt: skip
        if rows:
            typer.echo(f"{len(rows)} row(s) {what}:")
            for r in rows[:SHOWN]:
                typer.echo(f"  {r}")
            if len(rows) > SHOWN:
                typer.echo(f"  ... {len(rows) - SHOWN} more")
    if report.unmatched:
        raise typer.Exit(1)
