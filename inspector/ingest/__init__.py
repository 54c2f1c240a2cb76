"""Ingest: survey files -> validated, resampled rows of a spectrum store.

Modules, in the order an ingest uses them:

* `plan`: which files to read, in which order, and which catalog to join
  (`paths`: what is refused before reading; `catalog_file`: what a catalog looks like);
* `worker`: read a chunk of files, validate, resample onto the FNet grid;
* `pool`: the worker processes, where a file that kills or stalls one is rejected;
* `catalog_join`: join each row to its catalog row and derive the training labels;
* `run`: the parent process (`ingest`), the only writer, committing chunks in order;
* `summary`: the report, the category of each rejection reason, the end-of-run text.
"""
from __future__ import annotations

from inspector.ingest.catalog_join import CatalogJoin, build_index, derive_labels
from inspector.ingest.plan import (
    IngestPlan,
    looks_like_catalog,
    plan_sources,
    sas_spec_path,
)
from inspector.ingest.pool import WorkerPool
from inspector.ingest.run import default_workers, ingest
from inspector.ingest.summary import IngestReport, classify, format_summary
from inspector.ingest.worker import ChunkResult, WorkerLimits, process_chunk, validate

__all__ = [
    "CatalogJoin", "ChunkResult", "IngestPlan", "IngestReport", "WorkerLimits", "WorkerPool", "build_index",
    "classify", "default_workers", "derive_labels", "format_summary", "ingest", "looks_like_catalog",
    "plan_sources", "process_chunk", "sas_spec_path", "validate",
]
