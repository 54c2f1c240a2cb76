"""What the two `inspector evaluate` modes (a store, the real SDSS set) share: the result record, the
estimator names, survey names, the JSON file and the class report.

Both modes report the same tables (by true z, by survey, by S/N, and the class
scores), so a figure read off one can be compared with the other.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.class_metrics import (
    class_indices,
    confusion_table,
    format_quasar_table,
    purity_at_completeness,
    quasar_table,
)
from model.classes import UNKNOWN, is_qso_class
from model.evaluate import tables_to_records

FNET = "FNet"
BASELINE = "QuasarNET-style (ours)"
TEMPLATE = "Template fit (Z_TPL)"
QSO_COMPLETENESS_TARGET = 98.0  # percent: the purity of a catalog this complete is what the class report quotes
MAX_LISTED = 50  # spectra listed by name per class mistake in the text (all of them go to the JSON)


@dataclass
class Evaluation:
    """What one evaluation produced: tables by name, the text printed, the files written."""
    tables: dict[str, pd.DataFrame]
    text: str
    files: list[Path] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def survey_names(values) -> np.ndarray:
    """The survey of each spectrum as the tables name it (`model.evaluate.SURVEY_ORDER`).

    The readers say "SDSS" for SDSS-I/II (run2d 26, lower-case spec-lite
    layout) and the mock writes the same names; the real manifest already says
    "SDSS-I/II"; a DESI manifest entry carries its program after the name.
    """
    out = []
    for v in pd.Series(values, dtype=object):
        s = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
        if s.upper().startswith("SDSS"):
            s = "SDSS-I/II"
        elif s.upper().startswith("DESI"):
            s = "DESI"
        out.append(s or "unknown")
    return np.array(out, dtype=object)


def write_json(path: Path, tables: Mapping[str, pd.DataFrame], meta: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": dict(meta), "tables": tables_to_records(tables)}, indent=1, default=str))
    return path


def _listing(names: np.ndarray, what: str) -> list[str]:
    shown = ", ".join(map(str, names[:MAX_LISTED]))
    more = f" ... and {names.size - MAX_LISTED} more (all in the JSON)" if names.size > MAX_LISTED else ""
    return [f"{what} ({names.size}): {shown or '(none)'}{more}"]


def class_report(
    true_idx: np.ndarray | None,
    pred_class: Sequence[object] | None,
    p_qso: np.ndarray | None,
    names: Sequence[str],
    groups: Mapping[str, np.ndarray],
    truth_note: str,
) -> tuple[dict[str, pd.DataFrame], str, dict[str, Any]]:
    """(tables, text, meta) scoring FNet's class against the truth.

    `pred_class` None means the model has no class head: that is said, not
    scored. Tables: "class_confusion" (true x predicted counts) and
    "class_quasar" (quasar completeness and purity overall and per group).
    The text names every non-quasar called a quasar and every quasar called
    something else (up to MAX_LISTED each), since a person wants to look at them.
    """
    if pred_class is None:
        why = "no class head: this model predicts a redshift only, so nothing here is classified"
        return {}, f"== class ==\n{why}\n", {"class_head": False, "note": why}
    if true_idx is None or not (np.asarray(true_idx) != UNKNOWN).any():
        why = f"no class truth ({truth_note})"
        return {}, f"== class ==\n{why}\n", {"class_head": True, "note": why}
    t = np.asarray(true_idx, dtype=np.int64)
    p = class_indices(list(pred_class))
    names = np.asarray(names, dtype=object)
    known = t != UNKNOWN
    false_qso = names[known & ~is_qso_class(t) & is_qso_class(p)]
    missed = names[known & is_qso_class(t) & ~is_qso_class(p)]
    tables = {"class_confusion": confusion_table(t, p), "class_quasar": quasar_table(t, p, groups)}
    at = purity_at_completeness(t, p_qso, QSO_COMPLETENESS_TARGET) if p_qso is not None else None
    lines = [
        f"== class: true x FNet (truth: {truth_note}; {int((~known).sum())} spectra without a class truth left out) ==",
        tables["class_confusion"].to_string(), "",
        "== quasar (QSO or BAL) completeness and purity, percent ==",
        format_quasar_table(tables["class_quasar"][tables["class_quasar"]["n"] > 0]),
    ]  # fmt: skip
    if at is not None:
        lines.append(
            f"cut at p_qso >= {at['threshold']:.3f} (keeps {at['completeness']:.1f} % of the quasars): "
            f"purity {at['purity']:.1f} %"
        )
    lines += _listing(false_qso, "non-quasars FNet calls a quasar") + _listing(missed, "quasars FNet calls something else")
    meta = {
        "class_head": True, "truth": truth_note, "n_without_truth": int((~known).sum()),
        "non_quasars_called_quasar": false_qso.tolist(), "quasars_called_other": missed.tolist(),
        f"purity_at_completeness_{QSO_COMPLETENESS_TARGET:g}": at,
    }  # fmt: skip
    return tables, "\n".join(lines) + "\n", meta


__all__ = [
    "BASELINE", "FNET", "TEMPLATE", "Evaluation", "class_report", "survey_names", "write_json",
]
