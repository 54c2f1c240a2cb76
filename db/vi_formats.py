"""The VI file formats by name, one row each: how a file is named, written and read.

`inspector export --format desi-vi|marz` picks a row by name; `inspector import-vi` by the file's
suffix, so a directory of mixed files imports in one go.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from db import vi_desi, vi_marz
from db.vi_vocab import ViFile, ViFileError, ViRecord

T = TypeVar("T")


@dataclass(frozen=True)
class ViFormat:
    name: str
    suffix: str
    file_name: Callable[[str, str], str]  # (title, inspector) -> file name
    write: Callable[[Sequence[ViRecord], Path, str, datetime], Path]  # (records, path, title, created)
    read: Callable[[Path], ViFile]
    needs_targetid: bool  # a row is keyed by TARGETID (else by our object id)


VI_FORMATS: dict[str, ViFormat] = {
    "desi-vi": ViFormat("desi-vi", vi_desi.SUFFIX, vi_desi.file_name,
                        lambda records, path, title, created: vi_desi.write(records, path), vi_desi.read, True),
    "marz": ViFormat("marz", vi_marz.SUFFIX, vi_marz.file_name, vi_marz.write, vi_marz.read, False),
}  # fmt: skip


def format_of(path: Path) -> ViFormat:
    """The format a file's suffix says; ViFileError for any other file."""
    for f in VI_FORMATS.values():
        if path.name.lower().endswith(f.suffix):
            return f
    raise ViFileError(path, None, f"is no VI file: the suffixes read are {', '.join(f.suffix for f in VI_FORMATS.values())}")


def on_database(url: str, work: Callable[[Any], T]) -> T:
    """`work(session)` on the database at `url`; its errors as ValueError naming the URL without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from db.engine import make_engine, session_scope

    shown = make_url(url).render_as_string(hide_password=True)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            return work(s)
    except SQLAlchemyError as exc:
        raise ValueError(f"database {shown}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
