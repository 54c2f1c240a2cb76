"""Consensus between inspectors (the DESI VI rule), the conflict queue, and resolutions.

Two inspectors' latest decisions on a spectrum conflict if
  - their qualities differ by 2 or more, or
  - |z1 - z2| / (1 + min(z1, z2)) >= 0.0033 (both gave a redshift), or
  - their spectral types differ;
else they agree. With three or more inspectors, any conflicting pair makes a
conflict. A 'resolve' decision settles the decisions it references; a later
decision by anyone reopens the spectrum (the resolution no longer covers the
current state).

    for v in conflicts(s):                       # the conflict queue, highest triage priority first
        print(v.object_id, v.reasons)
    resolve(s, v.spectrum_id, "carol", z=2.305, quality=4, spectral_type="QSO", comment="MgII decides")
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import fmean

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session, selectinload

from db.decisions import SpectrumRef, latest_query, record_decision, spectrum_id
from db.schema import Decision, Spectrum, TriageFlag
from db.validate import DECIDING_ACTIONS, DecisionError

DZ_TOLERANCE = 0.0033  # |dz| / (1 + z)
QUALITY_TOLERANCE = 2  # quality difference that is a conflict
JUDGEMENTS = tuple(a for a in DECIDING_ACTIONS if a != "resolve")


@dataclass
class Verdict:
    """The consensus state of one spectrum.

    status: 'single' (one inspector), 'agree', 'conflict' or 'resolved'.
    decisions: each inspector's latest judgement (not skips, not resolutions).
    z / quality / spectral_type: the resolution's values if resolved; else, if
        all agree, the mean z and quality and the common type; else None.
    """

    spectrum_id: int
    object_id: str
    status: str
    decisions: list[Decision]
    reasons: list[str] = field(default_factory=list)
    resolution: Decision | None = None
    z: float | None = None
    quality: float | None = None
    spectral_type: str | None = None
    priority: float | None = None

    @property
    def inspectors(self) -> list[str]:
        return [d.inspector.name for d in self.decisions]


def compare(a: Decision, b: Decision) -> list[str]:
    """Why two decisions conflict by the DESI rule ([] if they agree)."""
    reasons = []
    if a.quality is not None and b.quality is not None and abs(a.quality - b.quality) >= QUALITY_TOLERANCE:
        reasons.append(f"quality {a.quality} vs {b.quality}")
    if a.z_final is not None and b.z_final is not None:
        dz = abs(a.z_final - b.z_final) / (1.0 + min(a.z_final, b.z_final))
        if dz >= DZ_TOLERANCE:
            reasons.append(f"|dz|/(1+z) = {dz:.4f} (z {a.z_final:.4f} vs {b.z_final:.4f})")
    if a.spectral_type != b.spectral_type:
        reasons.append(f"type {a.spectral_type} vs {b.spectral_type}")
    return reasons


def judge(decisions: list[Decision], resolution: Decision | None = None) -> tuple[str, list[str]]:
    """(status, reasons) for one spectrum's latest judgements and its latest resolution."""
    if resolution is not None and {d.id for d in decisions} <= {r.id for r in resolution.resolves}:
        return "resolved", []
    reasons = []
    for i, a in enumerate(decisions):
        for b in decisions[i + 1:]:
            reasons += [f"{a.inspector.name} / {b.inspector.name}: {r}" for r in compare(a, b)]
    if reasons:
        return "conflict", reasons
    return ("single" if len(decisions) < 2 else "agree"), []


def consensus(
    session: Session, spectrum_ids: Iterable[int] | None = None, *, min_inspectors: int = 2
) -> list[Verdict]:
    """The verdict for every spectrum with at least `min_inspectors` inspectors' judgements, by spectrum id."""
    n = func.count(distinct(Decision.inspector_id))
    cand = select(Decision.spectrum_id).where(Decision.action.in_(JUDGEMENTS))
    ids = None if spectrum_ids is None else list(spectrum_ids)
    if ids is not None:
        if not ids:
            return []
        cand = cand.where(Decision.spectrum_id.in_(ids))
    cand = cand.group_by(Decision.spectrum_id).having(n >= max(1, int(min_inspectors)))
    latest = session.scalars(latest_query(None, JUDGEMENTS).where(Decision.spectrum_id.in_(cand))).unique().all()
    by_spec: dict[int, list[Decision]] = defaultdict(list)
    for d in latest:
        by_spec[d.spectrum_id].append(d)
    if not by_spec:
        return []
    spec_ids = sorted(by_spec)
    last_res = (
        select(func.max(Decision.id))
        .where(Decision.action == "resolve", Decision.spectrum_id.in_(cand))
        .group_by(Decision.spectrum_id)
    )
    resolutions = {
        r.spectrum_id: r
        for r in session.scalars(
            select(Decision).where(Decision.id.in_(last_res)).options(selectinload(Decision.resolves))
        ).unique()
    }
    object_ids = dict(session.execute(select(Spectrum.id, Spectrum.object_id).where(Spectrum.id.in_(cand))).all())
    priority = dict(
        session.execute(
            select(TriageFlag.spectrum_id, func.max(TriageFlag.priority))
            .where(TriageFlag.spectrum_id.in_(cand))
            .group_by(TriageFlag.spectrum_id)
        ).all()
    )
    out = []
    for sid in spec_ids:
        ds = by_spec[sid]
        res = resolutions.get(sid)
        status, reasons = judge(ds, res)
        v = Verdict(sid, object_ids[sid], status, ds, reasons, res, priority=priority.get(sid))
        if status == "resolved" and res is not None:
            v.z, v.quality, v.spectral_type = res.z_final, res.quality, res.spectral_type
        elif status in ("agree", "single"):
            zs = [d.z_final for d in ds if d.z_final is not None]
            qs = [d.quality for d in ds if d.quality is not None]
            v.z = fmean(zs) if zs else None
            v.quality = fmean(qs) if qs else None
            v.spectral_type = ds[0].spectral_type
        out.append(v)
    return out


def conflicts(session: Session) -> list[Verdict]:
    """The conflict queue: unresolved conflicts, highest triage priority first, then oldest spectrum id."""
    vs = [v for v in consensus(session) if v.status == "conflict"]
    return sorted(vs, key=lambda v: (-(v.priority if v.priority is not None else float("-inf")), v.spectrum_id))


def verdict(session: Session, spectrum: SpectrumRef) -> Verdict | None:
    """The consensus state of one spectrum (None if no one judged it)."""
    vs = consensus(session, [spectrum_id(session, spectrum)], min_inspectors=1)
    return vs[0] if vs else None


def resolve(
    session: Session,
    spectrum: SpectrumRef,
    inspector: str,
    z: float | None,
    quality: int,
    spectral_type: str = "QSO",
    comment: str | None = None,
    *,
    flags: object = None,
    model_version_id: int | None = None,
    z_model: float | None = None,
) -> Decision:
    """Record the value that settles a spectrum: a 'resolve' decision referencing each inspector's latest one.

    z may be None only for a non-quasar type. Commits (see `record_decision`).
    """
    sid = spectrum_id(session, spectrum)
    settled = [d.id for d in session.scalars(latest_query([sid], JUDGEMENTS)).unique()]
    if not settled:
        raise DecisionError("spectrum", spectrum, "has no decisions to resolve")
    return record_decision(
        session, sid, inspector, "resolve", z_final=z, quality=quality, flags=flags, spectral_type=spectral_type,
        comment=comment, model_version_id=model_version_id, z_model=z_model, resolves=settled,
    )  # fmt: skip


__all__ = ["DZ_TOLERANCE", "QUALITY_TOLERANCE", "Verdict", "compare", "conflicts", "consensus", "judge", "resolve",
           "verdict"]  # fmt: skip
