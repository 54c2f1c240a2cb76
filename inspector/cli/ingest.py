"""The `inspector ingest` subcommand."""
from __future__ import annotations

from pathlib import Path

import typer

from inspector.cli import app


@app.command("ingest")
def ingest_command(
    sources: list[Path] = typer.Argument(
        ...,
        help="Spectrum files, directories (walked for *.fits), a DR16Q-like catalog FITS "
        "(its rows are located under --spectra-root) or a mock survey directory.",
    ),
    store: Path = typer.Option(..., "--store", help="Store directory (created, resumed or appended to)."),
    catalog: Path | None = typer.Option(
        None, "--catalog", help="DR16Q-like catalog to join on PLATE/MJD/FIBERID or TARGETID "
        "(default: the one catalog-like file among the sources, if any)."
    ),
    no_catalog: bool = typer.Option(False, "--no-catalog", help="Join no catalog, even one found among the sources."),
    spectra_root: Path | None = typer.Option(
        None, "--spectra-root", help="Where a catalog SOURCE's spec files live, as PPPP/spec-PPPP-MMMMM-FFFF.fits."
    ),
    workers: int | None = typer.Option(None, "--workers", "-j", help="Worker processes (default: all cores)."),
    chunk_size: int = typer.Option(64, "--chunk-size", help="Files per chunk (the unit of commit and resume)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    fsync: bool = typer.Option(
        True, "--fsync/--no-fsync", help="Flush each chunk to disk before committing it (safe against power loss)."
    ),
    file_timeout: float = typer.Option(
        60.0, "--file-timeout", help="Seconds one file may take in a worker; past that it is rejected."
    ),
    worker_memory: int = typer.Option(
        2048, "--worker-memory", help="MB a worker may allocate for one file; past that it is rejected."
    ),
    max_file_size: float = typer.Option(4.0, "--max-file-size", help="GiB; larger files are rejected unread."),
    retry_rejected: bool = typer.Option(
        False, "--retry-rejected", help="Read again the files an earlier run rejected (else skipped while unchanged)."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address (tcp://host:8786): the cluster's workers read the files, "
        "which must be at the same paths there (a shared filesystem). Default: local worker processes."
    ),
    scheduler_timeout: float = typer.Option(10.0, "--scheduler-timeout", help="Seconds to wait for the scheduler."),
) -> None:
    """Read, validate and resample spectra onto the FNet grid into a spectrum store.

    Rerun the same command after an interruption to resume; rerun with more
    sources to append only the new files. Rejected inputs (including FIFOs,
    devices, symlink loops and files that exceed the time or memory limits)
    are listed at the end and kept, with reasons, in STORE/rejected.parquet;
    a rerun skips them while they are unchanged.
    """
    from inspector.cluster import client_for
    from inspector.ingest import WorkerLimits, format_summary, ingest

    try:
        with client_for(scheduler, scheduler_timeout) as client:
            report = ingest(
                [str(s) for s in sources], store, catalog=catalog, spectra_root=spectra_root,
                workers=workers, chunk_size=chunk_size, progress=progress, fsync=fsync, no_catalog=no_catalog,
                retry_rejected=retry_rejected, limits=WorkerLimits(file_timeout, worker_memory * 2**20),
                max_file_bytes=int(max_file_size * 2**30), scheduler=client,
            )
    except (ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_summary(report))
    if report.interrupted:
        raise typer.Exit(130)
