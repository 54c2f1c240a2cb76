"""DESI visual-inspection CSV files, as DESI's prospect writes them (one file per scanner).

The columns, in prospect's order, are its `vi_file_fields` (py/prospect/utilities.py of prospect 1.x,
the list with Redrock_deltachi2; the prospect versions checked carry no survey or program field):
`DESI_VI_FIELDS`. The file is desi-vi_<title>_<scanner>.csv, prospect's default name.

Written values: VI_quality our quality; VI_issue our flags as prospect's letters and VI_spectype our type
as its word (`db.vi_vocab`); VI_z our z_final and Redrock_z the automatic z the person saw, with four
decimals (prospect keeps both as six-character strings); Redrock_spectype and Redrock_deltachi2 the
automatic class and score (`db.vi_exchange.auto_answer`); EXPID, NIGHT, TILEID and the versions
prospect's "not known" -1. The comment is written as given on one line, quoted where CSV needs it
(prospect itself turns commas into semicolons and keeps 100 ASCII characters; we keep the text).

Read by column name, so an older file without Redrock_deltachi2 and a newer one with extra columns read
alike. DESI's conventions: VI_quality -1 grades nothing (a comment only); an empty VI_spectype means the
scanner agreed with Redrock's class, and an empty VI_z, where the class stands, with Redrock's z. The file
states no time: its modification time stands in.
"""
from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from db.validate import QUALITY_MAX, QUALITY_MIN
from db.vi_vocab import (
    VI_TYPE_BY_OURS,
    VI_TYPES,
    ViFile,
    ViFileError,
    ViRecord,
    flags_of_letters,
    issue_letters,
    one_line,
)

DESI_VI_FIELDS = (
    "TARGETID", "EXPID", "NIGHT", "TILEID", "Spec_version", "Redrock_version", "Template_version",
    "Redrock_spectype", "Redrock_z", "Redrock_deltachi2", "VI_scanner", "VI_quality", "VI_issue", "VI_z",
    "VI_spectype", "VI_comment",
)  # fmt: skip
REQUIRED_FIELDS = ("TARGETID", "VI_quality", "VI_issue", "VI_z", "VI_spectype", "VI_comment")
NOT_KNOWN = "-1"  # prospect's default for the ids, versions, Redrock_z and VI_quality
Z_DECIMALS = 4
PREFIX = "desi-vi_"
SUFFIX = ".csv"
TYPE_OF_WORD = {t.desi: t.ours for t in reversed(VI_TYPES)}  # reversed: the first row wins (QSO, not BAL QSO)


def file_name(title: str, scanner: str) -> str:
    """desi-vi_<title>_<scanner>.csv; prospect splits the scanner off at the last '_', so the name has none."""
    safe = re.sub(r"[^\w.-]|_", "-", scanner) or "unknown-user"  # prospect's name for a scanner nobody gave
    return f"{PREFIX}{title}_{safe}{SUFFIX}"


def scanner_of(path: Path) -> str:
    """The scanner a prospect file name carries ('' if the name is not prospect's)."""
    stem = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem
    return stem.rsplit("_", 1)[1] if stem.startswith(PREFIX) and stem.count("_") >= 2 else ""


def _z(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:.{Z_DECIMALS}f}"


def write(records: Sequence[ViRecord], path: Path) -> Path:
    """One CSV, header `DESI_VI_FIELDS`, a row per record (all one scanner's, as prospect writes them)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(DESI_VI_FIELDS)
        for r in records:
            if r.targetid is None:
                raise ValueError(f"{r.object_id}: a DESI VI row needs a TARGETID")
            auto = VI_TYPE_BY_OURS[r.auto_type].desi if r.auto_type else ""
            w.writerow([
                r.targetid, NOT_KNOWN, NOT_KNOWN, NOT_KNOWN, NOT_KNOWN, NOT_KNOWN, NOT_KNOWN,
                auto, _z(r.auto_z) or NOT_KNOWN, NOT_KNOWN if r.auto_score is None else f"{r.auto_score:.2f}",
                r.inspector, NOT_KNOWN if r.quality is None else r.quality, issue_letters(r.flags), _z(r.z),
                VI_TYPE_BY_OURS[r.spectral_type].desi if r.spectral_type else "", one_line(r.comment),
            ])  # fmt: skip
    return path


def _number(text: str, path: Path, line: int, field: str, kind: type) -> float | int | None:
    text = text.strip()
    if not text:
        return None
    try:
        v = kind(text)
    except ValueError:
        raise ViFileError(path, line, f"{field} {text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(v):
        raise ViFileError(path, line, f"{field} {text!r} is not a finite number")
    return v


def _type(word: str, path: Path, line: int, field: str) -> str | None:
    word = word.strip().upper()
    if not word:
        return None
    if word not in TYPE_OF_WORD:
        raise ViFileError(path, line, f"{field} {word!r} is not one of {', '.join(TYPE_OF_WORD)}")
    return TYPE_OF_WORD[word]


def _record(row: dict[str, str], path: Path, line: int, scanner: str) -> ViRecord:
    def get(name: str) -> str:
        return (row.get(name) or "").strip()

    targetid = _number(get("TARGETID"), path, line, "TARGETID", int)
    if targetid is None:
        raise ViFileError(path, line, "TARGETID is empty")
    quality = _number(get("VI_quality") or NOT_KNOWN, path, line, "VI_quality", int)
    if quality != -1 and not QUALITY_MIN <= int(quality) <= QUALITY_MAX:
        raise ViFileError(path, line, f"VI_quality {quality} is not -1 (none) or {QUALITY_MIN}-{QUALITY_MAX}")
    rr_z = _number(get("Redrock_z"), path, line, "Redrock_z", float)
    rr_z = None if rr_z == -1 else rr_z
    rr_type = _type(get("Redrock_spectype"), path, line, "Redrock_spectype")
    vi_type = _type(get("VI_spectype"), path, line, "VI_spectype")
    vi_z = _number(get("VI_z"), path, line, "VI_z", float)
    kind = vi_type or rr_type
    return ViRecord(
        inspector=get("VI_scanner") or scanner, quality=None if quality == -1 else int(quality),
        flags=flags_of_letters(get("VI_issue"), path, line), spectral_type=kind,
        z=vi_z if vi_z is not None else (rr_z if kind is not None and kind == rr_type else None),
        comment=get("VI_comment") or None, targetid=int(targetid), auto_z=rr_z, auto_type=rr_type, line=line,
    )  # fmt: skip


def read(path: str | Path) -> ViFile:
    """The records of one DESI VI CSV; ViFileError naming the file and line for anything it cannot read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ViFileError(path, None, f"cannot be read ({e})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in REQUIRED_FIELDS if c not in (reader.fieldnames or [])]
    if missing:
        raise ViFileError(path, 1, f"lacks column(s) {', '.join(missing)}; a DESI VI file has {', '.join(DESI_VI_FIELDS)}")
    records = []
    try:
        for row in reader:
            if None in row:
                raise ViFileError(path, reader.line_num, f"has {len(reader.fieldnames or []) + len(row[None])} values, "
                                                          f"the header names {len(reader.fieldnames or [])}")  # fmt: skip
            records.append(_record(row, path, reader.line_num, scanner_of(path)))
    except csv.Error as e:
        raise ViFileError(path, reader.line_num, f"is not valid CSV ({e})") from None
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return ViFile(path, tuple(records), mtime, "mtime")
