"""People's decisions written as other tools' VI files: one file per inspector, as those tools write them.

    paths, left_out = export_vi(session, "vi/dr16q", "desi-vi")   # vi/desi-vi_dr16q_<inspector>.csv ...
    paths, left_out = export_vi(session, "vi/dr16q", "marz")      # vi/dr16q_<initials>.mz ...

A file holds each of its inspector's latest judgements (skips are not judgements), one row per spectrum.
The automatic answer beside each (DESI's Redrock_*, Marz's Auto*) is `auto_answer`. A DESI file keys its
rows by TARGETID: a spectrum with neither a TARGETID nor plate/mjd/fiber for the stand-in
(`db.vi_vocab.standin_targetid`) cannot be written there and is listed in `left_out`.
"""
from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from db.catalog_decisions import MODEL_P_QSO_MIN
from db.catalog_files import write_atomic
from db.consensus import DZ_TOLERANCE
from db.load import current_model
from db.schema import Decision, Inspector, Prediction, Spectrum
from db.validate import DECIDING_ACTIONS, QSO_TYPES, flag_names
from db.vi_formats import VI_FORMATS, on_database
from db.vi_vocab import VI_TYPE_BY_OURS, ViRecord, standin_targetid


def auto_answer(z_model: float | None, z_fnet: float | None, z_tpl: float | None, tpl_dchi2: float | None,
                fnet_class: str | None, p_qso: float | None) -> tuple[float | None, str | None, float | None]:
    """(z, type, score) of the automatic answer a person judged, for the files' Redrock_* / Auto* columns.

    z: the z the inspector had on screen (the decision's z_model, FNet's), else FNet's current one, else
    the template fit's: what a bad_z flag (R) says is wrong. score: the template fit's delta chi2 where its
    z is that z (within the consensus tolerance), the only such score there is; None elsewhere. type:
    QSO where FNet's p_qso reaches `MODEL_P_QSO_MIN` (its own call), else FNet's class where it is one of
    ours (STAR, GALAXY), else None (no class head).
    """
    z = z_model if z_model is not None else z_fnet if z_fnet is not None else z_tpl
    same = z is not None and z_tpl is not None and abs(z_tpl - z) / (1.0 + min(z, z_tpl)) < DZ_TOLERANCE
    cls = (fnet_class or "").upper()
    if p_qso is not None and p_qso >= MODEL_P_QSO_MIN:
        kind: str | None = "QSO"
    else:
        kind = cls if cls in VI_TYPE_BY_OURS and cls not in QSO_TYPES else None
    return z, kind, tpl_dchi2 if same else None


def vi_records(session: Session) -> list[ViRecord]:
    """Each inspector's latest judgement on each spectrum, by inspector then spectrum, with the spectrum's ids,
    position and the automatic answer (the current model's prediction)."""
    mv = current_model(session)
    latest = (select(func.max(Decision.id)).where(Decision.action.in_(DECIDING_ACTIONS))
              .group_by(Decision.spectrum_id, Decision.inspector_id))  # fmt: skip
    p = Prediction
    q = (
        select(Inspector.name, Decision.quality, Decision.flags, Decision.z_final, Decision.spectral_type,
               Decision.comment, Decision.decided_at, Decision.z_model, Spectrum.object_id, Spectrum.targetid,
               Spectrum.plate, Spectrum.mjd, Spectrum.fiberid, Spectrum.ra, Spectrum.dec, p.z, p.z_tpl,
               p.tpl_dchi2, p.fnet_class, p.p_qso)
        .join(Spectrum, Spectrum.id == Decision.spectrum_id)
        .join(Inspector, Inspector.id == Decision.inspector_id)
        .outerjoin(p, and_(p.spectrum_id == Decision.spectrum_id, p.model_version_id == (mv.id if mv else -1)))
        .where(Decision.id.in_(latest))
        .order_by(Inspector.name, Decision.spectrum_id)
    )  # fmt: skip
    out = []
    for (name, quality, flags, z, kind, comment, when, z_model, oid, tid, plate, mjd, fiber, ra, dec,
         z_fnet, z_tpl, dchi2, fnet_class, p_qso) in session.execute(q):  # fmt: skip
        if tid is None and None not in (plate, mjd, fiber):
            tid = standin_targetid(plate, mjd, fiber)
        auto_z, auto_type, score = auto_answer(z_model, z_fnet, z_tpl, dchi2, fnet_class, p_qso)
        out.append(ViRecord(
            inspector=name, quality=quality, flags=tuple(flag_names(flags or 0)), z=z, spectral_type=kind,
            comment=comment, object_id=oid, targetid=tid, auto_z=auto_z, auto_type=auto_type, auto_score=score,
            ra=ra, dec=dec, decided_at=when,
        ))  # fmt: skip
    return out


def export_vi(session: Session, out_base: str | os.PathLike[str], fmt: str) -> tuple[list[Path], list[str]]:
    """Write one `fmt` file per inspector beside `out_base` (its name is the files' title); return the paths
    written and the object ids left out (no TARGETID for a DESI file). Each file is written atomically."""
    if fmt not in VI_FORMATS:
        raise ValueError(f"format must be one of {', '.join(VI_FORMATS)}, got {fmt!r}")
    f = VI_FORMATS[fmt]
    base = Path(out_base)
    base.parent.mkdir(parents=True, exist_ok=True)
    by_inspector: dict[str, list[ViRecord]] = defaultdict(list)
    left_out = []
    for r in vi_records(session):
        if f.needs_targetid and r.targetid is None:
            left_out.append(str(r.object_id))
        else:
            by_inspector[r.inspector].append(r)
    names = {name: f.file_name(base.name, name) for name in by_inspector}
    clash = {n for n in names.values() if list(names.values()).count(n) > 1}
    if clash:
        who = sorted(k for k, v in names.items() if v in clash)
        raise ValueError(f"inspectors {who} would share the file name {min(clash)}: {fmt} names files by them")
    paths = []
    for name, records in by_inspector.items():
        created = max((r.decided_at for r in records if r.decided_at), default=datetime.now(UTC))
        path = base.parent / names[name]
        paths.append(write_atomic(path, lambda p, rs=records, c=created: f.write(rs, p, base.name, c)))
    return paths, left_out


def export_vi_files(url: str, out_base: str | os.PathLike[str], fmt: str) -> tuple[list[Path], list[str]]:
    """`export_vi` on the database at `url`."""

    def work(s: Any) -> tuple[list[Path], list[str]]:
        return export_vi(s, out_base, fmt)

    return on_database(url, work)
