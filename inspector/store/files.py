"""Every file under STORE/ besides the spectra, and how all of them are written: whole or not at all.

    STORE/predictions/<model stem>.parquet (+ .json sidecar)   a prediction run (`inspector predict`)
    STORE/predictions/quasarnet.parquet                          the baseline run (Z_QN where no catalog has it)
    STORE/predictions/template_fit.parquet (+ .json)             the template-fit cache
    STORE/triage/<run stem>.parquet (+ .json)                    a triage of a prediction run
    STORE/triage/<run stem>.scores.parquet                       its risk, best z and policy per spectrum

One owner, so that no two modules can disagree on where a run lives. Every writer goes through
`atomic_path` (write a sibling `.tmp`, then rename): a process killed mid-write leaves the previous
file whole, never half a file under the real name.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PREDICTIONS_DIR = "predictions"
TRIAGE_DIR = "triage"
BASELINE_NAME = "quasarnet.parquet"
TEMPLATE_CACHE_NAME = "template_fit.parquet"
SCORES_SUFFIX = ".scores.parquet"


def tmp_sibling(path: str | os.PathLike[str]) -> Path:
    """Where `atomic_path` writes `path` first: `<name>.tmp` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def remove_stale_tmp(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Remove the `.tmp` siblings of these files that a killed writer left (SIGKILL skips `atomic_path`'s
    cleanup); returns those removed. Call it only where no other process writes these files (a job that
    holds the model lock, for its own outputs). Other stale `.tmp` files are harmless: no reader globs
    them, and the next write of the same file replaces its `.tmp`."""
    removed = []
    for p in paths:
        tmp = tmp_sibling(p)
        if tmp.exists():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    tmp = tmp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=str))
    return Path(path)


def predictions_path(store: str | os.PathLike[str], model: str | os.PathLike[str]) -> Path:
    """A model's prediction run: STORE/predictions/<model stem>.parquet."""
    return Path(store) / PREDICTIONS_DIR / f"{Path(model).stem}.parquet"


def prediction_runs(store: str | os.PathLike[str]) -> list[Path]:
    """The store's FNet prediction runs, oldest first (the baseline run and the template cache are not runs)."""
    found = sorted((Path(store) / PREDICTIONS_DIR).glob("*.parquet"), key=lambda p: p.stat().st_mtime)
    return [p for p in found if p.name not in (BASELINE_NAME, TEMPLATE_CACHE_NAME)]


def resolve_predictions(store: str | os.PathLike[str], predictions: str | os.PathLike[str]) -> Path:
    """A predictions path as given, else STORE/predictions/<name>(.parquet)."""
    p = Path(predictions)
    if p.exists():
        return p
    for cand in (Path(store) / PREDICTIONS_DIR / p.name, Path(store) / PREDICTIONS_DIR / f"{p.name}.parquet"):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"predictions {predictions} not found (nor under {Path(store) / PREDICTIONS_DIR})")


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The JSON beside a parquet file (its provenance or metadata)."""
    return Path(path).with_suffix(".json")


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar's contents; None where there is none or it cannot be read."""
    p = sidecar_path(path)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def baseline_path(store: str | os.PathLike[str]) -> Path:
    return Path(store) / PREDICTIONS_DIR / BASELINE_NAME


def template_cache_path(store: str | os.PathLike[str]) -> Path:
    return Path(store) / PREDICTIONS_DIR / TEMPLATE_CACHE_NAME


def triage_path(store: str | os.PathLike[str], predictions: str | os.PathLike[str]) -> Path:
    """The triage of a prediction run: STORE/triage/<run stem>.parquet."""
    return Path(store) / TRIAGE_DIR / f"{Path(predictions).stem}.parquet"


def scores_path(triage_out: str | os.PathLike[str]) -> Path:
    """Every spectrum's risk and best z, beside a triage: STORE/triage/<run stem>.scores.parquet."""
    return Path(triage_out).with_name(Path(triage_out).stem + SCORES_SUFFIX)
