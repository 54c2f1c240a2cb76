"""What one spectrum on screen carries, read from the store (or its file) and the database.

    item = load_item(session, store, spectrum, "alice", model_version_id)
    item.wave, item.flux, item.ivar, item.mask, item.sky      # native pixels (vacuum A)
    item.z_tpl, item.tpl_candidates                           # the stored template fit (None: not run)
    item.fnet_class, item.p_qso, item.class_probs             # FNet's class (None: no class head)
    item.risk, item.z_best, item.z_best_source, item.risk_drivers  # the risk model's answer (None: no risk)
    candidates(item, z=2.31)                                  # rows with dv to the current z

The native spectrum comes from the file named in the database (`read_any`);
when that file is gone the FNet-grid row of the store stands in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.schema import Decision, Inspector, Prediction, Spectrum, TriageFlag
from inspector.estimates import NO_Z
from inspector.readers import read_any
from model.classes import CLASSES
from model.grid import FNET_WAVE
from model.metrics import C_KMS


def dv_kms(z: float, z_ref: float) -> float:
    """c (z - z_ref) / (1 + z_ref): the velocity offset of z from z_ref."""
    return C_KMS * (float(z) - float(z_ref)) / (1.0 + float(z_ref))


@dataclass
class Item:
    spectrum_id: int
    object_id: str
    info: dict[str, Any]  # ids, RA/DEC, S/N, z_pipe, z_qn, z_pca, file ...
    wave: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray | None
    sky: np.ndarray | None
    grid_wave: np.ndarray | None = None
    grid_flux: np.ndarray | None = None
    grid_ivar: np.ndarray | None = None
    z_fnet: float | None = None
    z_err: float | None = None
    p: float | None = None
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    z_tpl: float | None = None  # the prediction run's template fit (None: predicted before it existed)
    z_tpl_err: float | None = None
    tpl_dchi2: float | None = None  # chi2 of its next minimum minus the best
    tpl_candidates: list[dict[str, Any]] = field(default_factory=list)  # [{"z", "dchi2"}, ...] next minima
    fnet_class: str | None = None  # FNet's most probable class (None: the model has no class head)
    p_qso: float | None = None  # its probability of a quasar (QSO + BAL)
    class_probs: dict[str, float] = field(default_factory=dict)  # {class: probability}, in `CLASSES` order
    risk: float | None = None  # P(the catalog's automatic z or class is wrong) (None: rules-only triage, older db)
    z_best: float | None = None  # the catalog's z: the least risky of FNet, the template fit, the pipeline
    z_best_source: str | None = None  # where z_best came from: "fnet", "tpl" or "pipe"
    risk_drivers: list[list[Any]] = field(default_factory=list)  # [[feature, value, risk it adds], ...]
    rules: list[tuple[str, float | None, float]] = field(default_factory=list)  # (rule, value, priority)
    others: list[tuple[str, str, float | None, int | None]] = field(default_factory=list)  # earlier decisions
    mine: dict[str, Any] | None = None  # my latest decision on it, if any
    source: str = "file"


def _native(spec: Spectrum, store: Any) -> tuple[Any, str]:
    if not spec.file:
        return None, "store"
    try:
        found = read_any(spec.file)
    except Exception:  # noqa: BLE001 - a missing/broken file falls back to the store row
        return None, "store"
    if len(found) > 1 and spec.fiberid is not None:
        found = [s for s in found if s.fiberid == spec.fiberid] or found
    return (found[0], "file") if found else (None, "store")


def _grid(spec: Spectrum, store: Any) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The spectrum's FNet-grid row from the store (wave, flux, ivar), or Nones."""
    if store is None:
        return None, None, None
    try:
        row = spec.store_row if spec.store_row is not None else store.row_of(spec.object_id)
        return FNET_WAVE, np.asarray(store.flux[row], float), np.asarray(store.ivar[row], float)
    except (KeyError, IndexError):
        return None, None, None


def load_item(session: Session, store: Any, spectrum: Spectrum | int, inspector: str,
              model_version_id: int | None) -> Item:
    spec = spectrum if isinstance(spectrum, Spectrum) else session.get_one(Spectrum, int(spectrum))
    native, source = _native(spec, store)
    gw, gf, gi = _grid(spec, store)
    if native is not None:
        wave, flux, ivar = (np.asarray(a, float) for a in (native.wave, native.flux, native.ivar))
        mask = None if native.and_mask is None else np.asarray(native.and_mask) != 0
        sky = None if native.sky is None else np.asarray(native.sky, float)
    elif gw is not None:
        wave, flux, ivar, mask, sky = gw, gf, gi, gi <= 0, None
    else:
        wave = flux = ivar = np.zeros(0)
        mask = sky = None
    info = {k: getattr(spec, k) for k in ("object_id", "survey", "plate", "mjd", "fiberid", "targetid", "ra", "dec",
                                           "sn", "spec_class", "z_file", "zwarning", "z_pipe", "z_qn", "z_pca",
                                           "z_vi", "file")}  # fmt: skip
    item = Item(spec.id, spec.object_id, info, wave, flux, ivar, mask, sky, gw, gf, gi, source=source)
    if model_version_id is not None:
        pred = session.scalars(select(Prediction).where(Prediction.spectrum_id == spec.id,
                                                        Prediction.model_version_id == model_version_id)).first()
        if pred is not None:
            item.z_fnet, item.z_err, item.p = pred.z, pred.z_err, pred.p
            item.alternatives = list(pred.alternatives or [])
            item.z_tpl, item.z_tpl_err, item.tpl_dchi2 = pred.z_tpl, pred.z_tpl_err, pred.tpl_dchi2
            item.tpl_candidates = [c for c in (pred.tpl_candidates or []) if isinstance(c, dict)]
            item.fnet_class, item.p_qso = pred.fnet_class, pred.p_qso
            item.class_probs = ordered_probs(pred.class_probs)
            item.risk, item.z_best, item.z_best_source = pred.risk, pred.z_best, pred.z_best_source
            item.risk_drivers = [list(d) for d in (pred.risk_drivers or [])
                                 if isinstance(d, (list, tuple)) and len(d) == 3]  # fmt: skip
    item.rules = [(r.rule, r.value, r.priority) for r in session.scalars(
        select(TriageFlag).where(TriageFlag.spectrum_id == spec.id).order_by(TriageFlag.priority.desc()))]
    rows = session.execute(
        select(Inspector.name, Decision.action, Decision.z_final, Decision.quality, Decision.flags,
               Decision.spectral_type, Decision.comment)
        .join(Inspector, Inspector.id == Decision.inspector_id)
        .where(Decision.spectrum_id == spec.id).order_by(Decision.id)
    ).all()  # fmt: skip
    for name, action, zf, q, flags, stype, comment in rows:
        if name == inspector:
            item.mine = {"action": action, "z_final": zf, "quality": q, "flags": flags, "spectral_type": stype,
                         "comment": comment}
        else:
            item.others.append((name, action, zf, q))
    return item


def ordered_probs(probs: Any) -> dict[str, float]:
    """{class: p} in the order of `model.classes.CLASSES` (PostgreSQL's JSONB keeps no key order), any class
    the model names beyond those after them."""
    if not isinstance(probs, dict):
        return {}
    rank = {c: i for i, c in enumerate(CLASSES)}
    return {k: float(probs[k]) for k in sorted(probs, key=lambda k: (rank.get(k, len(rank)), k))
            if probs[k] is not None}  # fmt: skip


def class_note(item: Item) -> str:
    """'QSO, p_qso 0.98' (FNet's class and how sure it is a quasar); '' without a class head."""
    if item.fnet_class is None:
        return ""
    return f"{item.fnet_class}, p_qso {_num(item.p_qso, '.2f')}" if item.p_qso is not None else item.fnet_class


def _num(v: Any, spec: str) -> str:
    v = float(v)
    return format(v, spec) if np.isfinite(v) else "∞"


def _tpl_note(item: Item) -> str:
    """'± 0.0012, Δχ²=345.6' for the stored template fit; why there is none otherwise."""
    if item.z_tpl is None:
        return "none stored (the χ² panel fits it live)"
    parts = [f"± {_num(item.z_tpl_err, '.5f')}" if item.z_tpl_err is not None else "",
             f"Δχ²={_num(item.tpl_dchi2, '.1f')}" if item.tpl_dchi2 is not None else ""]
    return ", ".join(p for p in parts if p)


# z_best_source -> the candidate row that shows that estimate
CATALOG_ROWS = {"fnet": "FNet", "tpl": "Template", "pipe": "Z_PIPE"}
CATALOG_NOTE = "★ catalog z"
SAME_Z_KMS = 1.0  # a shown estimate within this of z_best is the one the catalog adopted


def mark_catalog_z(item: Item, rows: list[dict[str, Any]], z: float) -> list[dict[str, Any]]:
    """Mark the row the catalog's z (`z_best`, from `z_best_source`) came from, so an inspector sees which
    estimate goes into the catalog unless they change it. When no shown row holds that z (the pipeline's Z
    read from the spectrum file, say) it gets a row of its own at the end. No risk model: rows untouched."""
    if item.z_best_source is None:
        return rows
    name = CATALOG_ROWS.get(item.z_best_source)
    zb = item.z_best if item.z_best is not None and np.isfinite(item.z_best) else None
    for row in rows:
        if row["source"] == name and row["z"] is not None and (zb is None or abs(dv_kms(row["z"], zb)) < SAME_Z_KMS):
            row["note"] = " · ".join(x for x in (CATALOG_NOTE, row["note"]) if x)
            return rows
    if zb is not None:
        rows.append({"source": f"catalog ({item.z_best_source})", "z": float(zb), "note": CATALOG_NOTE,
                     "dv": round(dv_kms(z, zb), 1)})  # fmt: skip
    return rows


def candidates(item: Item, z: float) -> list[dict[str, Any]]:
    """Every redshift one could adopt, with its dv (km/s) to the current z: FNet (noted with its error,
    class and p_qso), its alternatives, the template fit (Z_TPL and its next two minima; a row without z
    where the prediction run had none), the catalog's Z_PIPE / Z_QN (\"failed\" when -1) / Z_PCA, and
    other inspectors' z; the estimate the catalog adopts (`z_best_source`) is marked."""
    out: list[dict[str, Any]] = []

    def add(source: str, zc: float | None, note: str = "") -> None:
        ok = zc is not None and np.isfinite(zc) and zc > NO_Z  # a star's small negative z is a z; -1 is none
        out.append({"source": source, "z": float(zc) if ok else None, "note": note,
                    "dv": round(dv_kms(z, zc), 1) if ok else None})  # fmt: skip

    if item.z_fnet is not None:
        err = f"± {item.z_err:.4f}" if item.z_err is not None else ""
        add("FNet", item.z_fnet, " · ".join(x for x in (err, class_note(item)) if x))
    for i, alt in enumerate(item.alternatives, 1):
        p = alt.get("p")
        add(f"FNet alt {i}", alt.get("z"), f"p={p:.2f}" if p is not None else "")
    if item.z_fnet is not None or item.z_tpl is not None:
        add("Template", item.z_tpl, _tpl_note(item))
    for i, alt in enumerate(item.tpl_candidates[:2], 1):
        d = alt.get("dchi2")
        add(f"Template alt {i}", alt.get("z"), f"Δχ²=+{_num(d, '.1f')}" if d is not None else "")
    add("Z_PIPE", item.info.get("z_pipe"))
    zqn = item.info.get("z_qn")
    add("Z_QN", zqn, "failed" if zqn is not None and zqn == -1 else "")
    add("Z_PCA", item.info.get("z_pca"))
    for name, action, zf, q in item.others:
        if zf is not None:
            add(f"{name} ({action})", zf, f"q={q}" if q is not None else "")
    return mark_catalog_z(item, out, z)
