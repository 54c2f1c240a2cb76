"""What a person set in the app, kept in the database: per-inspector settings.

    prefs = load_settings(s, "alice")               # every key, defaults where she set nothing
    save_settings(s, "alice", {"smoothing": 3.0, "queue_order": "sn"})
    save_settings(s, "alice", {"smoothing": None})  # back to the default

They live in the database, not the browser, because an inspector works from
several machines and browsers, and the database is the one thing they all
share. The keys, their types, bounds and defaults are one table, `SETTINGS`:
the app reads its defaults and labels from it, and every write is checked
against it, so a value the app cannot use never reaches the database. A value
stored by an older version that this table no longer accepts (a key dropped, a
queue order renamed) reads back as the default instead of failing the start-up.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.decisions import inspector_id
from db.engine import run_write
from db.queue import DEFAULT_ORDER, ORDERS
from db.schema import InspectorSetting, utcnow
from db.validate import INSPECTOR_NAME_MAX, DecisionError


class SettingError(DecisionError):
    """A setting refused: an unknown key, or a value of the wrong type or out of range; `field` is the key."""


@dataclass(frozen=True)
class Setting:
    """One thing a person may set, what it holds and what it is until they set it.

    kind: "bool", "number" (a finite float in [lo, hi]; an int is taken as a
        float), "choice" (one of `choices`) or "text" (at most `max_len`
        characters).
    """

    key: str
    kind: Literal["bool", "number", "choice", "text"]
    default: Any
    label: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    max_len: int = 0


SETTINGS: dict[str, Setting] = {s.key: s for s in (
    Setting("name", "text", "", "the name shown for you (empty: your inspector name)", max_len=INSPECTOR_NAME_MAX),
    Setting("smoothing", "number", 0.0, "smoothing sigma (pixels)", lo=0.0, hi=20.0),
    Setting("rest", "bool", False, "rest frame"),
    Setting("major_only", "bool", True, "major lines only"),
    Setting("show_grid", "bool", False, "the FNet grid"),
    Setting("show_chi2", "bool", False, "the template chi2(z) panel"),
    Setting("show_model", "bool", True, "the best-fit template over the data"),
    Setting("show_sky", "bool", True, "the sky spectrum"),
    Setting("queue_order", "choice", DEFAULT_ORDER, "the order the queue is taken in", choices=tuple(ORDERS)),
    Setting("quality_submits", "bool", False, "a quality key also saves"),
)}  # fmt: skip
DEFAULTS: dict[str, Any] = {k: s.default for k, s in SETTINGS.items()}


def _setting(key: Any) -> Setting:
    s = SETTINGS.get(key) if isinstance(key, str) else None
    if s is None:
        raise SettingError("setting", key, f"must be one of {', '.join(SETTINGS)}")
    return s


def check_setting(key: Any, value: Any) -> Any:
    """`value` as stored for `key` (an int smoothing becomes a float); SettingError naming the key otherwise."""
    s = _setting(key)
    if s.kind == "bool":
        if not isinstance(value, bool):
            raise SettingError(key, value, "must be true or false")
        return value
    if s.kind == "number":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise SettingError(key, value, f"must be a number in [{s.lo:g}, {s.hi:g}]")
        x = float(value)
        if not (s.lo <= x <= s.hi):  # type: ignore[operator]  # numbers always have bounds
            raise SettingError(key, value, f"must be a number in [{s.lo:g}, {s.hi:g}]")
        return x
    if s.kind == "choice":
        if not isinstance(value, str) or value not in s.choices:
            raise SettingError(key, value, f"must be one of {', '.join(s.choices)}")
        return value
    if not isinstance(value, str):
        raise SettingError(key, value, "must be text")
    if len(value) > s.max_len:
        raise SettingError(key, f"<{len(value)} characters>", f"must be at most {s.max_len} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SettingError(key, value, "must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise SettingError(key, value, f"is not valid unicode ({e.reason} at {e.start})") from None
    return value


def load_settings(session: Session, inspector: str) -> dict[str, Any]:
    """Every setting of `inspector`: what they saved, the default for the rest (and for an unknown inspector).

    A stored value the table no longer accepts reads as the default (see the
    module docstring); a stored key no longer in the table is left out.
    """
    out = dict(DEFAULTS)
    me = inspector_id(session, inspector, create=False)
    if me is None:
        return out
    rows = session.execute(
        select(InspectorSetting.key, InspectorSetting.value).where(InspectorSetting.inspector_id == me)
    ).all()
    for key, value in rows:
        if key in SETTINGS:
            try:
                out[key] = check_setting(key, value)
            except SettingError:
                pass  # keep the default
    return out


def save_settings(session: Session, inspector: str, changes: Mapping[str, Any]) -> None:
    """Set the keys of `changes` for `inspector` (a value None: back to the default); one transaction, commits.

    Every key and value is checked first: a SettingError leaves all the stored
    settings as they were. Keys not in `changes` are kept. Two writers of the
    same key (two browser tabs): the later one wins.
    """
    if not isinstance(changes, Mapping):
        raise SettingError("settings", changes, "must be a mapping of setting name to value")
    for k in changes:  # every key first: a None value is not checked, its key still is
        _setting(k)
    clean = {k: (None if v is None else check_setting(k, v)) for k, v in changes.items()}
    if not clean:
        return

    def work() -> None:
        me = inspector_id(session, inspector)
        now = utcnow()
        gone = [k for k, v in clean.items() if v is None]
        if gone:
            session.execute(
                delete(InspectorSetting)
                .where(InspectorSetting.inspector_id == me, InspectorSetting.key.in_(gone))
                .execution_options(synchronize_session=False)
            )
        rows = [{"inspector_id": me, "key": k, "value": v, "updated_at": now} for k, v in clean.items() if v is not None]
        if rows:
            dialect = session.get_bind().dialect.name
            ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(InspectorSetting)
            ins = ins.on_conflict_do_update(
                index_elements=[InspectorSetting.inspector_id, InspectorSetting.key],
                set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at},
            )
            session.execute(ins, rows)

    run_write(session, work)


__all__ = ["DEFAULTS", "SETTINGS", "Setting", "SettingError", "check_setting", "load_settings", "save_settings"]
