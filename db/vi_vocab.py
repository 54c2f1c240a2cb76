"""What other tools' visual-inspection files say, in this project's words: one table per mapping.

DESI's prospect (`db.vi_desi`) and Marz (`db.vi_marz`) each write one file per
person. Both readers and both writers go through the tables here, so a flag,
a type or a quality grade is translated in exactly one place:

- `VI_ISSUE_LETTERS`: our issue flag -> prospect's issue letter. prospect
  (utilities.vi_flags) has three: R "Bad redshift fit", C "Bad spectype fit"
  (the pipeline's class is wrong, e.g. star vs QSO; not a calibration flag)
  and S "Bad spectrum". Ours map one to one: bad_z -> R, bad_class -> C,
  bad_spectrum -> S. Marz has no flags: they travel in its comment
  (`db.vi_marz`).
- `VI_TYPES`: our spectral type -> the word a DESI VI file uses (prospect's
  vocabulary is STAR, GALAXY, QSO) and the Marz template. Neither tool has a
  BAL class: a BAL QSO is written as QSO and reads back as QSO. UNKNOWN is
  written as the word UNKNOWN (not prospect's empty VI_spectype, which means
  "the pipeline's class is right") and as Marz's template id 0 ("none").
- `MARZ_QOP`: our quality 0-4 -> Marz's QOP (`db.vi_marz`).

A TARGETID is DESI's; an SDSS spectrum has none, so its stand-in is
`standin_targetid(plate, mjd, fiber)` = plate * 10**9 + mjd * 10**4 + fiber
(7166-56602-0590 -> 7166566020590): unique for fibers below 10**4 and MJDs
below 10**5, and far below any real DESI TARGETID (~3.9e16), so the two never
meet.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from db.validate import FLAG_BY_NAME, TYPE_BY_NAME

VI_ISSUE_LETTERS: dict[str, str] = {"bad_z": "R", "bad_class": "C", "bad_spectrum": "S"}
if set(VI_ISSUE_LETTERS) != set(FLAG_BY_NAME):  # a new flag needs its letter here before any file is written
    raise RuntimeError(f"VI_ISSUE_LETTERS must cover exactly the flags {list(FLAG_BY_NAME)}")
FLAG_OF_LETTER: dict[str, str] = {letter: flag for flag, letter in VI_ISSUE_LETTERS.items()}


@dataclass(frozen=True)
class ViType:
    """One of our spectral types as the other tools name it."""

    ours: str
    desi: str  # VI_spectype / Redrock_spectype
    marz_id: str  # Marz template id (FinTID / AutoTID); "0": no template
    marz_name: str  # Marz template name (FinTN / AutoTN)
    marz_word: str  # a word in the name of every Marz template of this kind ("" for none)


# Marz's ids and names as in its js/templates.js (1 'A Star', 8 'Late Type Emission Galaxy', 12 'Quasar');
# any other Marz template reads back by the first row's word in its name: GALAXY comes before STAR, as a
# 'High Redshift Star Forming Galaxy' is a galaxy, and a 'K Star' a star. Reading a word, the first row wins.
VI_TYPES: tuple[ViType, ...] = (
    ViType("QSO", "QSO", "12", "Quasar", "quasar"),
    ViType("BAL QSO", "QSO", "12", "Quasar", "quasar"),
    ViType("GALAXY", "GALAXY", "8", "Late Type Emission Galaxy", "galaxy"),
    ViType("STAR", "STAR", "1", "A Star", "star"),
    ViType("UNKNOWN", "UNKNOWN", "0", "", ""),
)
if {t.ours for t in VI_TYPES} != set(TYPE_BY_NAME):
    raise RuntimeError(f"VI_TYPES must cover exactly the spectral types {list(TYPE_BY_NAME)}")
VI_TYPE_BY_OURS: dict[str, ViType] = {t.ours: t for t in VI_TYPES}

# our quality 0-4 -> Marz QOP (1 unknown, 2 possible, 3 good, 4 great); reading, a QOP takes the first row that
# has it, so QOP 1 reads as quality 1: Marz has no grade for "nothing there"
MARZ_QOP: tuple[tuple[int, int], ...] = ((4, 4), (3, 3), (2, 2), (1, 1), (0, 1))
MARZ_STAR_QOP = 6  # Marz's grade for a star: written for a STAR of quality 4, read back as one
MARZ_UNDECIDED_QOP = 0  # Marz's "nobody graded it yet"


class ViFileError(ValueError):
    """A VI file this project cannot read: the message names the file and the line."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ViRecord:
    """One person's verdict on one spectrum, as a VI file holds it, in our vocabulary.

    object_id: ours (a Marz Name); targetid: DESI's or the stand-in; either may
    be None in a file read. quality None: the row grades nothing (a comment
    only). auto_*: the automatic answer the person saw (DESI's Redrock_*,
    Marz's Auto*). ra / dec (degrees) and decided_at: what a written file
    shows. line: where a read record sits in its file (1-based).
    """

    inspector: str
    quality: int | None
    flags: tuple[str, ...]
    z: float | None
    spectral_type: str | None
    comment: str | None
    object_id: str | None = None
    targetid: int | None = None
    auto_z: float | None = None
    auto_type: str | None = None
    auto_score: float | None = None
    ra: float | None = None
    dec: float | None = None
    decided_at: datetime | None = None
    line: int = 0


@dataclass(frozen=True)
class ViFile:
    """What one VI file says: its records and when they were made (`time_from`: 'file' when the file states
    it, 'mtime' when it does not and the file's modification time stands in)."""

    path: Path
    records: tuple[ViRecord, ...]
    decided_at: datetime
    time_from: str


def standin_targetid(plate: int, mjd: int, fiber: int) -> int:
    """The TARGETID written for a spectrum without one (module docstring)."""
    return int(plate) * 10**9 + int(mjd) * 10**4 + int(fiber)


def plate_mjd_fiber(targetid: int) -> tuple[int, int, int]:
    """The (plate, mjd, fiber) a stand-in TARGETID encodes."""
    return targetid // 10**9, (targetid // 10**4) % 10**5, targetid % 10**4


def issue_letters(flags: tuple[str, ...] | list[str]) -> str:
    """Our flag names -> prospect's letters, in `VI_ISSUE_LETTERS` order ("RS")."""
    return "".join(letter for flag, letter in VI_ISSUE_LETTERS.items() if flag in flags)


def flags_of_letters(letters: str, path: str | Path, line: int) -> tuple[str, ...]:
    """prospect's letters -> our flag names; ViFileError for a letter prospect does not define."""
    out = []
    for ch in letters.strip().upper():
        if ch.isspace():
            continue
        if ch not in FLAG_OF_LETTER:
            raise ViFileError(path, line, f"issue letter {ch!r} is not one of {', '.join(FLAG_OF_LETTER)}")
        out.append(FLAG_OF_LETTER[ch])
    return tuple(f for f in VI_ISSUE_LETTERS if f in out)


def one_line(text: str | None) -> str:
    """A comment on one line: both formats are line-based, so line breaks become spaces."""
    return " ".join((text or "").splitlines()).strip()
