"""Validation at the boundary: every value a person (or a script) hands the database passes here first.

One small table each drives the actions, the issue flags and the spectral
types (`ACTIONS`, `FLAGS`, `SPECTRAL_TYPES`): the UI's buttons and help, the
schema's CHECK constraints and the checks below all read them, so there are
no if-chains to keep in step.

A bad value raises `DecisionError` naming the field and the value, e.g.
``DecisionError: quality must be an integer 0-4, got 5``. Text is data: a
comment is stored exactly as given (HTML, SQL, emoji, right-to-left text);
escaping it is the UI's job. The only characters refused are the ones no
backend can store faithfully (NUL, which PostgreSQL text cannot hold, and
lone surrogates, which are not encodable as UTF-8).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Z_MIN = 0.0  # a quasar's, and the default for a z with no type
Z_MAX = 7.5
# A star's or a nearby galaxy's z is a radial velocity and may be negative; 0.01 (3000 km/s) is beyond any
# star's and any Local Group galaxy's. Stars stay within it on the red side too: a "star" at z 0.5 is a typo.
Z_LOCAL = 0.01
Z_FLOOR = -Z_LOCAL  # the lowest z any type allows (the database's CHECK constraint)
QUALITY_MIN = 0
QUALITY_MAX = 4
COMMENT_MAX = 2000
INSPECTOR_NAME_MAX = 64
RULE_NAME_MAX = 64
# a predictions frame's per-class probability columns are p_cls_<class> (model.classes.PROB_COLUMNS, which db/
# does not import); db.load stores them as predictions.class_probs, db.export passes them through
CLASS_PROB_PREFIX = "p_cls_"


class DecisionError(ValueError):
    """A value refused at the database boundary; `field` and `value` say which."""

    def __init__(self, field: str, value: Any, problem: str) -> None:
        self.field = field
        self.value = value
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field} {problem}, got {shown}")


# --------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Flag:
    """An issue flag (DESI VI): stored as one bit of `decisions.flags`."""

    name: str
    bit: int
    label: str


FLAGS: tuple[Flag, ...] = (
    Flag("bad_z", 1, "the redshift shown (pipeline/model) is wrong"),
    Flag("bad_class", 2, "the classification is wrong"),
    Flag("bad_spectrum", 4, "the spectrum itself is bad (artefacts, missing data)"),
)
FLAG_BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}
FLAGS_ALL = sum(f.bit for f in FLAGS)


@dataclass(frozen=True)
class SpectralType:
    name: str
    class_person: int  # the DR16Q CLASS_PERSON code
    is_qso: bool
    z_min: float = Z_MIN  # the redshifts a person may give this type
    z_max: float = Z_MAX


SPECTRAL_TYPES: tuple[SpectralType, ...] = (
    SpectralType("QSO", 3, True),
    SpectralType("BAL QSO", 30, True),
    SpectralType("STAR", 1, False, -Z_LOCAL, Z_LOCAL),
    SpectralType("GALAXY", 4, False, -Z_LOCAL, Z_MAX),
    SpectralType("UNKNOWN", 0, False),
)
TYPE_BY_NAME: dict[str, SpectralType] = {t.name: t for t in SPECTRAL_TYPES}
QSO_TYPES = frozenset(t.name for t in SPECTRAL_TYPES if t.is_qso)
# what a person says a non-quasar is (STAR, GALAXY; not UNKNOWN, CLASS_PERSON 0): the catalog's is_qso_final
# reads it, and a not_qso decision of these types keeps its z
NOT_QSO_TYPES = frozenset(t.name for t in SPECTRAL_TYPES if not t.is_qso and t.class_person)
ALL_TYPES = frozenset(TYPE_BY_NAME)


@dataclass(frozen=True)
class Action:
    """What a decision can say, and what each one requires.

    z: "required" (a final redshift must be given), "optional" (may be None),
        "qso" (required when the spectral type is a quasar one).
    z_from_model: accept with no z_final takes the z that was on screen (z_model).
    quality: "required", "optional", or an int default used when None is given.
    decides: counts as an inspection (a skip does not: the spectrum stays in the
        queue for other inspectors, and consensus ignores it).
    implied_flags: flag bits always set by this action.
    default_type / types: spectral type used when none is given / the ones allowed.
    """

    name: str
    label: str
    z: str
    quality: str | int
    decides: bool
    implied_flags: int
    default_type: str | None
    types: frozenset[str]
    z_from_model: bool = False
    resolves: bool = False


ACTIONS: tuple[Action, ...] = (
    Action("accept", "the model's redshift is right", "required", "required", True, 0, "QSO", QSO_TYPES,
           z_from_model=True),
    Action("correct", "a quasar, at another redshift", "required", "required", True, 1, "QSO", QSO_TYPES),
    Action("not_qso", "not a quasar", "optional", "required", True, 2, "UNKNOWN", ALL_TYPES - QSO_TYPES),
    Action("bad_spectrum", "the spectrum is unusable", "optional", 0, True, 4, "UNKNOWN", ALL_TYPES),
    Action("skip", "pass it on, no judgement", "optional", "optional", False, 0, None, ALL_TYPES),
    Action("resolve", "the value settling a conflict between inspectors", "qso", "required", True, 0, "QSO",
           ALL_TYPES, resolves=True),
)  # fmt: skip
ACTION_BY_NAME: dict[str, Action] = {a.name: a for a in ACTIONS}
DECIDING_ACTIONS = tuple(a.name for a in ACTIONS if a.decides)
NON_DECIDING_ACTIONS = tuple(a.name for a in ACTIONS if not a.decides)

LEASE_PURPOSES = ("primary", "crosscheck")


# --------------------------------------------------------------------------- scalar checks
def check_text(field: str, value: Any, max_len: int, *, allow_none: bool = True) -> str | None:
    """A str of at most `max_len` characters, stored verbatim; None passes if allowed."""
    if value is None:
        if allow_none:
            return None
        raise DecisionError(field, value, "is required")
    if not isinstance(value, str):
        raise DecisionError(field, value, "must be text (str)")
    if len(value) > max_len:
        raise DecisionError(field, f"<{len(value)} characters>", f"must be at most {max_len} characters")
    if "\x00" in value:
        raise DecisionError(field, value, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DecisionError(field, value, f"is not valid unicode ({e.reason} at {e.start})") from None
    return value


def check_comment(value: Any) -> str | None:
    return check_text("comment", value, COMMENT_MAX)


def check_name(value: Any, field: str = "inspector") -> str:
    """An inspector name: non-empty after trimming spaces, at most 64 characters, no control characters."""
    if not isinstance(value, str):
        raise DecisionError(field, value, "must be a name (str)")
    name = value.strip()
    if not name:
        raise DecisionError(field, value, "must not be empty")
    if len(name) > INSPECTOR_NAME_MAX:
        raise DecisionError(field, value, f"must be at most {INSPECTOR_NAME_MAX} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DecisionError(field, value, "must not contain control characters")
    check_text(field, name, INSPECTOR_NAME_MAX, allow_none=False)
    return name


def check_rule(value: Any) -> str:
    """A triage rule name: same shape as an inspector name."""
    return check_name(value, "rule")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def z_range(spectral_type: str | None) -> tuple[float, float]:
    """The redshifts allowed for a spectral type (a name of SPECTRAL_TYPES; None: a quasar's range)."""
    t = TYPE_BY_NAME.get(spectral_type) if spectral_type else None
    return (Z_MIN, Z_MAX) if t is None else (t.z_min, t.z_max)


def check_z(value: Any, field: str = "z_final", *, allow_none: bool = True,
            spectral_type: str | None = None) -> float | None:
    """A finite redshift in the range of its spectral type (`z_range`); None passes if allowed."""
    if value is None:
        if allow_none:
            return None
        raise DecisionError(field, value, "is required for this action")
    if not _is_number(value):
        raise DecisionError(field, value, "must be a number")
    z = float(value)
    lo, hi = z_range(spectral_type)
    if not math.isfinite(z) or not (lo <= z <= hi):
        what = f" for a {spectral_type}" if spectral_type else ""
        raise DecisionError(field, value, f"must be a redshift in [{lo:g}, {hi:g}]{what}")
    return z


def check_z_model(value: Any) -> float | None:
    """The model's z as shown: any finite number (a model may stray outside [0, 7.5]), or None."""
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(float(value)):
        raise DecisionError("z_model", value, "must be a finite number or None")
    return float(value)


def check_quality(value: Any, *, allow_none: bool = True) -> int | None:
    if value is None:
        if allow_none:
            return None
        raise DecisionError("quality", value, f"is required for this action (an integer {QUALITY_MIN}-{QUALITY_MAX})")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DecisionError("quality", value, f"must be an integer {QUALITY_MIN}-{QUALITY_MAX}")
    q = int(value)
    if not (QUALITY_MIN <= q <= QUALITY_MAX):
        raise DecisionError("quality", value, f"must be an integer {QUALITY_MIN}-{QUALITY_MAX}")
    return q


def check_action(value: Any) -> Action:
    a = ACTION_BY_NAME.get(value.strip().lower()) if isinstance(value, str) else None
    if a is None:
        raise DecisionError("action", value, f"must be one of {', '.join(ACTION_BY_NAME)}")
    return a


def check_type(value: Any, allowed: Iterable[str] = ALL_TYPES) -> str:
    """A spectral type name, case and '_' vs ' ' forgiven ('bal_qso' -> 'BAL QSO')."""
    t = TYPE_BY_NAME.get(" ".join(value.replace("_", " ").split()).upper()) if isinstance(value, str) else None
    if t is None:
        raise DecisionError("spectral_type", value, f"must be one of {', '.join(TYPE_BY_NAME)}")
    allowed = frozenset(allowed)
    if t.name not in allowed:
        raise DecisionError("spectral_type", value, f"must be one of {', '.join(n for n in TYPE_BY_NAME if n in allowed)} for this action")
    return t.name


def check_flags(value: Any) -> int:
    """Issue flags as a bitmask: from an int mask, an iterable of flag names, or a {name: bool} mapping."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise DecisionError("flags", value, "must be flag names, a {name: bool} mapping or a bitmask")
    if isinstance(value, numbers.Integral):
        m = int(value)
        if m < 0 or m & ~FLAGS_ALL:
            raise DecisionError("flags", value, f"must be a bitmask of {', '.join(f'{f.name}={f.bit}' for f in FLAGS)}")
        return m
    if isinstance(value, str):
        value = [value]
    names = [k for k, v in value.items() if v] if isinstance(value, Mapping) else list(value)
    mask = 0
    for n in names:
        f = FLAG_BY_NAME.get(n.strip().lower()) if isinstance(n, str) else None
        if f is None:
            raise DecisionError("flags", n, f"must name flags among {', '.join(FLAG_BY_NAME)}")
        mask |= f.bit
    return mask


def flag_names(mask: int) -> list[str]:
    return [f.name for f in FLAGS if mask & f.bit]


# --------------------------------------------------------------------------- a whole decision
@dataclass(frozen=True)
class CleanDecision:
    action: str
    z_final: float | None
    quality: int | None
    flags: int
    spectral_type: str | None
    comment: str | None
    z_model: float | None


def check_decision(
    action: Any,
    z_final: Any = None,
    quality: Any = None,
    flags: Any = None,
    spectral_type: Any = None,
    comment: Any = None,
    z_model: Any = None,
) -> CleanDecision:
    """All the values of one decision, checked against its action's row of `ACTIONS`."""
    a = check_action(action)
    zm = check_z_model(z_model)
    if z_final is None and a.z_from_model and zm is not None:
        z_final = zm  # accept = the redshift on screen
    t = a.default_type if spectral_type is None else check_type(spectral_type, a.types)
    z = check_z(z_final, allow_none=a.z == "optional" or (a.z == "qso" and t not in QSO_TYPES), spectral_type=t)
    if isinstance(a.quality, int) and quality is None:
        q: int | None = a.quality
    else:
        q = check_quality(quality, allow_none=a.quality != "required")
    return CleanDecision(
        action=a.name, z_final=z, quality=q, flags=check_flags(flags) | a.implied_flags,
        spectral_type=t, comment=check_comment(comment), z_model=zm,
    )  # fmt: skip
