"""What an ingest run did: the report, the category of each rejection reason, the end-of-run text."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class IngestReport:
    """What one ingest run did; `format_summary` turns it into the end-of-run text."""

    store: Path
    n_files: int = 0  # files named by the sources
    n_skipped: int = 0  # already stored (or rejected and unchanged) by an earlier run
    n_skipped_rejected: int = 0  # of those, rejected by an earlier run and unchanged since
    n_read: int = 0  # files read this run
    n_stored: int = 0  # spectra stored this run
    n_rejected: int = 0  # rejections this run
    n_total: int = 0  # rows in the store afterwards
    by_category: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), first few
    seconds: float = 0.0
    interrupted: bool = False
    catalog: str | None = None
    catalog_auto: bool = False  # found among the sources, not named with --catalog
    ignored: list[str] = field(default_factory=list)
    worker_restarts: int = 0  # workers replaced after a file killed or stalled one

    @property
    def spectra_per_s(self) -> float:
        return self.n_stored / self.seconds if self.seconds > 0 else 0.0


def classify(reason: str) -> str:
    """A short category for a rejection reason, for the summary's counts (order matters)."""
    r = reason.lower()
    has = lambda *keys: any(k in r for k in keys)  # noqa: E731
    if has("duplicate"):
        return "duplicate"
    # the poison files: what planning refuses and what the worker limits stop (before the readers' words)
    if has("symbolic link loop"):
        return "symlink-loop"
    if has("not a regular file"):
        return "not-regular-file"
    if r.startswith("too large") or has("decompression bomb", "inflates to more than"):
        return "too-large"
    if has("per-file time limit"):
        return "timeout"
    if has("worker process"):
        return "worker-died"
    if has("out of memory"):
        return "out-of-memory"
    if has("not found", "no such file"):
        return "not-found"
    if has("corrupt header"):
        return "corrupt-header"  # a header declaring more rows/pixels than any survey file holds
    if has("truncat"):
        return "truncated"
    if has("not a fits", "non-fits", "not fits"):
        return "not-fits"
    if re.search(r"\(hdus 0:[^,)]*\)", r) or has("missing hdu", "has only 1 hdu"):
        return "missing-hdu"  # a FITS file with a primary HDU and nothing else
    if has("unrecognised", "unrecognized"):
        return "unrecognised-layout"
    if has("empty", "no pixels") or re.search(r"(?<![\d.])0 pixels", r):  # not "50000000 pixels"
        return "empty"
    if has("monoton", "increasing"):
        return "non-monotonic"
    if has("ivar") and has("zero", "no usable", "no pixel"):
        return "zero-ivar"
    non_finite = re.search(r"\bnan\b|\binf\b|finite", r) is not None  # words: "inflates" is not "inf"
    if has("flux") and non_finite:
        return "non-finite-flux"
    if non_finite:
        return "non-finite"
    if has("column"):
        return "missing-column"
    if has("hdu", "extension"):
        return "missing-hdu"
    if has("fnet grid"):
        return "off-grid"
    return "unreadable"


def format_summary(report: IngestReport, max_examples: int = 5) -> str:
    """The end-of-run text: what was stored, what was rejected and why."""
    lines = []
    state = "INTERRUPTED (rerun the same command to resume)" if report.interrupted else "done"
    lines.append(
        f"ingest {state}: {report.n_stored} spectra stored, {report.n_rejected} rejected, "
        f"{report.n_skipped} of {report.n_files} files already done; store {report.store} now holds "
        f"{report.n_total} spectra"
    )
    if report.n_stored:
        lines.append(f"  {report.spectra_per_s:.0f} spectra/s ({report.seconds:.1f} s)")
    if report.n_skipped_rejected:
        lines.append(f"  {report.n_skipped_rejected} files skipped: rejected by an earlier run and unchanged since "
                     f"(reasons in {report.store / 'rejected.parquet'}; --retry-rejected reads them again)")
    if report.catalog:
        how = " (found among the sources; --catalog PATH names another, --no-catalog joins none)" \
            if report.catalog_auto else ""
        lines.append(f"  catalog joined: {report.catalog}{how}")
    for c in report.ignored:
        lines.append(f"  catalog-like file not used (give it with --catalog to join it): {c}")
    if report.worker_restarts:
        lines.append(f"  {report.worker_restarts} worker(s) replaced after a file killed or stalled one "
                     "(those files are rejected, with what happened)")
    if report.by_category:
        lines.append("  rejected by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(report.by_category.items())))
        for f, r in report.examples[:max_examples]:
            lines.append(f"    {f}: {r}")
        if report.n_rejected > max_examples:
            lines.append(f"    ... all {report.n_rejected} with reasons in {report.store / 'rejected.parquet'}")
    return "\n".join(lines)
