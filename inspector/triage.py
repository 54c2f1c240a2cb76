"""Triage: which spectra a person should look at, and in what order.

One table, `RULES`, holds every rule: its name, what it means, its default
threshold, its priority weight, and a vectorised function over the *triage
frame* (the store index joined to a predictions file, one row per spectrum;
see `inspector.estimates.estimates_frame`). `apply_rules` runs them all and returns one row per
flagged spectrum with the rules that fired, the value each rule looked at and
a priority score (the sum of the weights of the rules that fired), which
orders the inspection queue.

Conventions
- dv = c (z_fnet - z_ref) / (1 + z_ref) in km/s (`model.metrics.dv_kms`); a
  dv rule fires on |dv| > threshold.
- A catalog redshift of -1 (DR16Q's "no redshift") or a missing one is not a
  redshift: the dv rule against it does not fire. In particular Z_QN = -1 is
  the `qn_failed` rule only, never also `dv_qn` (no double counting).
- A rule whose input is missing for a spectrum (NaN S/N, no p_fnet from a
  regression model, a store without the catalog column) does not fire there.
- Thresholds and weights can be overridden per call (`thresholds=`,
  `weights=`; the CLI's --threshold rule=value / --weight rule=value). A
  threshold of None (CLI: "off") disables a rule; a disabled-by-default rule
  (dv_pca) is enabled by giving it a threshold.
- FNet's class (models with a class head; p_qso = P(QSO) + P(BAL)): `fnet_not_qso`
  fires where FNet thinks it more likely not a quasar (p_qso below 0.5),
  `fnet_qso_unsure` where it leans quasar but not surely (p_qso from there up to
  0.9). Two rules, not one, so "why it is here" says which: a likely star or
  galaxy a person must confirm before it leaves the quasar catalog, or a
  doubtful quasar. They never both fire; without a class head neither can.
- FNet's own doubt (fnet_uncertain, fnet_low_p) sends a spectrum to people only
  where no independent estimate backs FNet: no template fit (Z_TPL), or one
  more than 3000 km/s away (see `_unchecked` for the measurements behind it).
- The training range of `z_outside_training` comes from the predictions'
  sidecar (`training_z_range`): the model's label scaling (min / max of the
  training redshifts), else the z range its output can express.

Pure numpy / pandas over whole columns (`bench/triage_speed.py` times it at survey size; figures in the README).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from inspector.estimates import NO_Z, estimates_frame
from model.metrics import C_KMS, dv_kms

TEMPLATE_AGREES_KMS = 3000.0  # FNet and Z_TPL this close: FNet's own doubt (fnet_uncertain, fnet_low_p) is moot

RuleFn = Callable[[pd.DataFrame, float, Mapping[str, Any]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Rule:
    """One triage rule.

    `func(frame, threshold, context) -> (value, fired)`: `value` is the float
    the rule judged (one per frame row, NaN where it could not judge; written
    to the output column `value_column`), `fired` a boolean array. `context`
    carries what is not per spectrum: the training z range ("z_range") and the
    thresholds of the enabled rules ("thresholds"), for a rule that gives way
    to another.
    """

    name: str
    description: str
    threshold: float | None  # None: disabled unless a threshold is given
    weight: float
    func: RuleFn
    value_column: str
    unit: str = ""
    needs: tuple[str, ...] = ()  # frame columns the rule reads (beyond z_fnet)

    @property
    def enabled(self) -> bool:
        return self.threshold is not None


def _f(frame: pd.DataFrame, col: str) -> np.ndarray:
    return frame[col].to_numpy(np.float64, na_value=np.nan)


def _catalog_z(frame: pd.DataFrame, col: str) -> np.ndarray:
    z = _f(frame, col)
    return np.where(z <= NO_Z, np.nan, z)


def _dv_rule(col: str) -> RuleFn:
    def fn(frame: pd.DataFrame, threshold: float, ctx: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            dv = dv_kms(_f(frame, "z_fnet"), _catalog_z(frame, col))
            return dv, np.abs(dv) > threshold  # NaN (no catalog z, no prediction) -> False

    return fn


def _qn_failed(frame: pd.DataFrame, threshold: float, ctx: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    z = _f(frame, "z_qn")
    return z, z <= threshold


def _unchecked(frame: pd.DataFrame) -> np.ndarray:
    """Spectra without an independent check of FNet: no template fit, or one that disagrees with FNet
    (the dv_tpl rule then fires anyway).

    Where FNet and the template fit agree within 3000 km/s, FNet's own doubt adds little but queue size:
    two independent estimators agreeing are rarely both wrong (the README's "What each rule catches"
    has the measurements, `bench/triage_recall.py`)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        dv = np.abs(dv_kms(_f(frame, "z_fnet"), _f(frame, "z_tpl")))
    return ~(dv <= TEMPLATE_AGREES_KMS)


def _fnet_uncertain(frame: pd.DataFrame, threshold: float, ctx: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        sig = C_KMS * _f(frame, "z_fnet_err") / (1.0 + _f(frame, "z_fnet"))
        return sig, (sig > threshold) & _unchecked(frame)


def _fnet_low_p(frame: pd.DataFrame, threshold: float, ctx: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    p = _f(frame, "p_fnet")
    with np.errstate(invalid="ignore"):
        return p, (p < threshold) & _unchecked(frame)


def _below_rule(col: str) -> RuleFn:
    """Fires where the frame column `col` is below the threshold (NaN: cannot judge, does not fire)."""

    def fn(frame: pd.DataFrame, threshold: float, ctx: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        v = _f(frame, col)
        with np.errstate(invalid="ignore"):
            return v, v < threshold

    return fn


def _fnet_qso_unsure(frame: pd.DataFrame, threshold: float, ctx: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """p_qso below the threshold but not so low that fnet_not_qso fires (that rule says more)."""
    p = _f(frame, "p_qso")
    below_not_qso = ctx.get("thresholds", {}).get("fnet_not_qso")
    with np.errstate(invalid="ignore"):
        fired = p < threshold
        if below_not_qso is not None:
            fired &= ~(p < below_not_qso)
    return p, fired


def _outside_training(frame: pd.DataFrame, threshold: float, ctx: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    z = _f(frame, "z_fnet")
    rng = ctx.get("z_range")
    if rng is None:
        return np.full(z.shape, np.nan), np.zeros(z.shape, bool)
    lo, hi = float(rng[0]), float(rng[1])
    # distance outside [lo, hi] in z: 0 inside, NaN without a prediction
    out = np.maximum(np.maximum(lo - z, z - hi), 0.0)
    with np.errstate(invalid="ignore"):
        return out, out > threshold


def _fnet_missing(frame: pd.DataFrame, threshold: float, ctx: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    z = _f(frame, "z_fnet")
    bad = (~np.isfinite(z)).astype(np.float64)
    return bad, bad > threshold


def _policy_rule(mask_col: str) -> RuleFn:
    """Fires where the queue policy marked the spectrum (frame column `mask_col`); never without a policy."""

    def fn(frame: pd.DataFrame, threshold: float, ctx: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        if mask_col not in frame.columns:
            return np.full(len(frame), np.nan), np.zeros(len(frame), bool)
        return _f(frame, "risk"), frame[mask_col].to_numpy(bool)

    return fn


RULES: tuple[Rule, ...] = (
    Rule("fnet_missing", "FNet gave no finite redshift (value 1; fires above the threshold)", 0.5, 3.0,
         _fnet_missing, "fnet_missing"),
    Rule("dv_pipe", "|dv(FNet, Z_PIPE)| above the threshold", 3000.0, 1.0, _dv_rule("z_pipe"),
         "dv_pipe_kms", "km/s", ("z_pipe",)),
    Rule("dv_qn", "|dv(FNet, Z_QN)| above the threshold, where QuasarNET gave a redshift", 3000.0, 1.0,
         _dv_rule("z_qn"), "dv_qn_kms", "km/s", ("z_qn",)),
    Rule("qn_failed", "QuasarNET gave no redshift: Z_QN at or below the threshold (DR16Q: -1)", NO_Z, 1.5,
         _qn_failed, "z_qn", "", ("z_qn",)),
    Rule("dv_tpl", "|dv(FNet, Z_TPL)| above the threshold: the template fit disagrees", 3000.0, 1.5,
         _dv_rule("z_tpl"), "dv_tpl_kms", "km/s", ("z_tpl",)),
    Rule("tpl_low_dchi2", "template fit not decisive: delta chi2 to its next minimum below the threshold", 25.0, 0.5,
         _below_rule("tpl_dchi2"), "tpl_dchi2", "", ("tpl_dchi2",)),
    Rule("dv_pca", "|dv(FNet, Z_PCA)| above the threshold (off by default)", None, 0.5, _dv_rule("z_pca"),
         "dv_pca_kms", "km/s", ("z_pca",)),
    Rule("fnet_uncertain", "FNet uncertainty c z_fnet_err / (1 + z_fnet) above the threshold, unless the template "
         "fit agrees with FNet", 6000.0, 1.0, _fnet_uncertain, "sigma_v_kms", "km/s", ("z_fnet_err",)),
    Rule("fnet_low_p", "FNet posterior mass near its z (p_fnet) below the threshold, unless the template fit "
         "agrees with FNet", 0.5, 0.5, _fnet_low_p, "p_fnet", "", ("p_fnet",)),
    Rule("fnet_not_qso", "FNet's class: more likely not a quasar (p_qso = P(QSO) + P(BAL) below the threshold); "
         "a person confirms before it leaves the quasar catalog", 0.5, 2.0, _below_rule("p_qso"), "p_qso", "",
         ("p_qso",)),
    Rule("fnet_qso_unsure", "FNet's class: a quasar, but not surely (p_qso below the threshold, where fnet_not_qso "
         "does not fire)", 0.9, 1.0, _fnet_qso_unsure, "p_qso", "", ("p_qso",)),
    Rule("low_sn", "median S/N per pixel (SN_MEDIAN_ALL) below the threshold", 2.0, 0.5, _below_rule("sn"),
         "sn_median_all", "", ("sn",)),
    Rule("z_outside_training", "FNet z further than the threshold outside the training z range", 0.0, 1.0,
         _outside_training, "dz_outside_training", ""),
    Rule("risk", "the risk model's P(the automatic z or class is wrong) is too high for the queue policy "
         "(--max-leak / --budget); value: the risk", 0.0, 0.0, _policy_rule("policy_queue"), "risk", "", ("risk",)),
    Rule("no_signal", "no signal a person can use (S/N below 1, no decisive template fit) and not accepted by the "
         "queue policy: its own bucket, after the queue; value: the risk", 0.0, 0.0, _policy_rule("no_signal_bucket"),
         "risk", "", ("risk",)),
)  # fmt: skip
RULE_NAMES = tuple(r.name for r in RULES)


def _check_names(what: str, names) -> None:
    unknown = sorted(set(names) - set(RULE_NAMES))
    if unknown:
        raise ValueError(f"unknown rule(s) in {what}: {unknown}; rules are {list(RULE_NAMES)}")


def _as_threshold(name: str, v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, str):
        s = v.strip().lower()
        if s in {"off", "none", "disable", "disabled"}:
            return None
        try:
            v = float(s)
        except ValueError:
            raise ValueError(f"threshold for {name}: {v!r} is neither a number nor 'off'") from None
    x = float(v)
    if math.isnan(x):
        raise ValueError(f"threshold for {name} is NaN")
    return x


def configured_rules(
    thresholds: Mapping[str, Any] | None = None, weights: Mapping[str, float] | None = None
) -> tuple[Rule, ...]:
    """`RULES` with thresholds / weights overridden (unknown names are an error; None or 'off' disables)."""
    thresholds = dict(thresholds or {})
    weights = dict(weights or {})
    _check_names("thresholds", thresholds)
    _check_names("weights", weights)
    out = []
    for r in RULES:
        if r.name in thresholds:
            r = replace(r, threshold=_as_threshold(r.name, thresholds[r.name]))
        if r.name in weights:
            w = float(weights[r.name])
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"weight for {r.name} must be finite and >= 0, got {weights[r.name]!r}")
            r = replace(r, weight=w)
        out.append(r)
    return tuple(out)


def parse_assignments(items: list[str] | None, what: str = "--threshold") -> dict[str, str]:
    """["dv_pipe=5000", "low_sn=off"] -> {"dv_pipe": "5000", "low_sn": "off"}."""
    out: dict[str, str] = {}
    for it in items or []:
        name, sep, value = it.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{what} expects rule=value, got {it!r}")
        out[name.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------- inputs
def training_z_range(sidecar: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """The z range a model was trained on, from a predictions sidecar (see `inspector.pipeline.predict`).

    In order: provenance "z_range" / "label_range" if a trainer recorded one,
    the label scaling (min / max of the training redshifts), else the range the
    output can express (bins head: [0, z_max_bins]); None if none is known.
    """
    if not sidecar:
        return None
    m = sidecar.get("model") or {}
    prov = m.get("provenance") or {}
    for key in ("z_range", "label_range"):
        v = prov.get(key)
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return float(v[0]), float(v[1])
    ls = m.get("label_scaling") or {}
    if ls.get("z_min") is not None and ls.get("z_max") is not None and float(ls["z_max"]) > float(ls["z_min"]):
        return float(ls["z_min"]), float(ls["z_max"])
    cfg = m.get("config") or {}
    if cfg.get("output") == "bins" and cfg.get("z_max_bins"):
        return 0.0, float(cfg["z_max_bins"])
    return None


# --------------------------------------------------------------------------- rules
def apply_rules(
    index_df: pd.DataFrame,
    predictions_df: pd.DataFrame,
    thresholds: Mapping[str, Any] | None = None,
    *,
    weights: Mapping[str, float] | None = None,
    z_range: tuple[float, float] | None = None,
    frame: pd.DataFrame | None = None,
    policy_priority: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per flagged spectrum, highest priority first.

    Without `policy_priority` the queue is every spectrum any rule sends, ordered by the sum of the
    weights of the rules that fired. With it (`inspector.risk.policy`: one value per frame row, NaN
    where the policy accepts the spectrum) the queue is the spectra it sends, in its order, and the
    rules that fired there say why.

    Columns: row, object_id, priority (sum of the weights of the rules that
    fired), n_rules, rules (list of rule names, in `RULES` order), z_fnet, then
    one value column per enabled rule (`Rule.value_column`: dv_pipe_kms,
    dv_qn_kms, z_qn, sigma_v_kms, p_fnet, sn_median_all, dz_outside_training,
    ...). Ties in priority keep store-row order.

    `thresholds` / `weights` override the defaults of `RULES` by rule name;
    `z_range` is the training z range (`training_z_range(sidecar)`; without it
    `z_outside_training` never fires). `frame` skips the join if you already
    have `estimates_frame(index_df, predictions_df)`. The result's `attrs` hold the
    rules used (threshold, weight), the z range, the number of spectra and
    per-rule counts (`summary(result)` prints them).
    """
    rules = [r for r in configured_rules(thresholds, weights) if r.enabled]
    if frame is None:
        frame = estimates_frame(index_df, predictions_df)
    n = len(frame)
    ctx = {"z_range": z_range, "thresholds": {r.name: r.threshold for r in rules}}  # enabled rules only
    if len(rules) > 62:
        raise ValueError("at most 62 rules")
    mask = np.zeros(n, np.int64)
    priority = np.zeros(n, np.float64)
    values: dict[str, np.ndarray] = {}
    fired_counts: dict[str, int] = {}
    for bit, r in enumerate(rules):
        value, fired = r.func(frame, float(r.threshold), ctx)
        fired = np.asarray(fired, bool)
        values[r.value_column] = np.asarray(value, np.float64)
        fired_counts[r.name] = int(fired.sum())
        mask |= fired.astype(np.int64) << bit
        priority += r.weight * fired
    if policy_priority is not None:
        priority = np.asarray(policy_priority, np.float64)
        sel = np.flatnonzero(np.isfinite(priority))
    else:
        sel = np.flatnonzero(mask)
    # highest priority first; stable, so equal priorities stay in row order
    sel = sel[np.argsort(-priority[sel], kind="stable")]
    m = mask[sel]
    codes, inv = np.unique(m, return_inverse=True)
    names_of = np.empty(codes.size, dtype=object)
    n_of = np.empty(codes.size, dtype=np.int64)
    for i, code in enumerate(codes):
        names_of[i] = [r.name for b, r in enumerate(rules) if (int(code) >> b) & 1]
        n_of[i] = len(names_of[i])
    out: dict[str, Any] = {
        "row": frame["row"].to_numpy(np.int64)[sel],
        "object_id": frame["object_id"].to_numpy()[sel],
        "priority": priority[sel],
        "n_rules": n_of[inv].astype(np.int16),
        "rules": names_of[inv],
        "z_fnet": frame["z_fnet"].to_numpy(np.float64)[sel],
    }
    for col, v in values.items():
        if col not in out:
            out[col] = v[sel]
    res = pd.DataFrame(out)
    res.attrs["triage"] = {
        "n_spectra": int(n),
        "n_flagged": int(sel.size),
        "n_multi": int((n_of[inv] >= 2).sum()),
        "z_range": None if z_range is None else [float(z_range[0]), float(z_range[1])],
        "rules": {
            r.name: {"threshold": r.threshold, "weight": r.weight, "unit": r.unit, "description": r.description,
                     "value_column": r.value_column, "n_fired": fired_counts[r.name]}
            for r in rules
        },
        "disabled": [r.name for r in configured_rules(thresholds, weights) if not r.enabled],
        "sources": dict(frame.attrs.get("sources", {})),
    }  # fmt: skip
    return res


def summary(flags: pd.DataFrame) -> pd.DataFrame:
    """Per rule: threshold, weight, n spectra it sends to people, % of the survey, n sent by it alone.

    Plus rows "queue (any rule)" and "flagged by >= 2 rules". Reads the attrs
    `apply_rules` left on its result.
    """
    meta = flags.attrs.get("triage") or {}
    n = int(meta.get("n_spectra", 0))
    alone = flags.loc[flags["n_rules"] == 1, "rules"].str[0].value_counts() if len(flags) else pd.Series(dtype=int)
    rows = []
    for name, r in (meta.get("rules") or {}).items():
        k = int(r["n_fired"])
        rows.append({
            "rule": name, "threshold": r["threshold"], "weight": r["weight"], "n": k,
            "percent": 100.0 * k / n if n else float("nan"), "only_this_rule": int(alone.get(name, 0)),
        })  # fmt: skip
    q = len(flags)
    rows.append({"rule": "queue (any rule)", "threshold": None, "weight": None, "n": q,
                 "percent": 100.0 * q / n if n else float("nan"), "only_this_rule": None})  # fmt: skip
    m = int(meta.get("n_multi", int((flags["n_rules"] >= 2).sum()) if len(flags) else 0))
    rows.append({"rule": "flagged by >= 2 rules", "threshold": None, "weight": None, "n": m,
                 "percent": 100.0 * m / n if n else float("nan"), "only_this_rule": None})  # fmt: skip
    return pd.DataFrame(rows).set_index("rule")


def format_summary(flags: pd.DataFrame) -> str:
    """`summary` as aligned text, with the survey size and the z range on top."""
    meta = flags.attrs.get("triage") or {}
    t = summary(flags)
    txt = t.copy()
    txt["threshold"] = t["threshold"].map(lambda v: "" if v is None or pd.isna(v) else f"{v:g}")
    txt["weight"] = t["weight"].map(lambda v: "" if v is None or pd.isna(v) else f"{v:g}")
    txt["percent"] = t["percent"].map(lambda v: "-" if pd.isna(v) else f"{v:.2f}%")
    txt["only_this_rule"] = t["only_this_rule"].map(lambda v: "" if v is None or pd.isna(v) else f"{int(v)}")
    head = f"{meta.get('n_spectra', 0)} spectra; training z range: "
    zr = meta.get("z_range")
    head += "unknown (z_outside_training cannot fire)" if zr is None else f"[{zr[0]:.3f}, {zr[1]:.3f}]"
    sources = meta.get("sources") or {}
    absent = [k for k, v in sources.items() if not v]
    if absent:
        head += (f"\nno source for {absent} (no catalog column, spectrum-file value or baseline run): "
                 "the rules on them cannot fire")
    mixed = {k: v for k, v in sources.items() if len(v) > 1 or any(not s.startswith("catalog") for s in v)}
    for k, v in mixed.items():
        head += f"\n{k} from " + ", ".join(f"{s} ({c})" for s, c in v.items())
    if meta.get("disabled"):
        head += f"\ndisabled: {', '.join(meta['disabled'])}"
    rules = meta.get("rules") or {}
    if any((rules.get(r) or {}).get("n_fired") for r in ("risk", "no_signal")):
        head += ("\na queue policy decided the queue (rules risk and no_signal); the other rules' counts are over "
                 "the whole survey and explain why a queued spectrum is there")
    return head + "\n" + txt.to_string()


def rules_table() -> pd.DataFrame:
    """The rule table as a DataFrame (name, description, default threshold, unit, weight)."""
    return pd.DataFrame(
        [{"rule": r.name, "threshold": r.threshold, "unit": r.unit, "weight": r.weight, "description": r.description}
         for r in RULES]
    ).set_index("rule")
