"""Why a redshift estimator misses a quasar: one cause per miss, decided by the rule table `CAUSES`.

A miss is |dv| > MISS_KMS (or no redshift at all). For each miss the facts
are worked out once (`miss_facts`), and the first rule of `CAUSES` that holds
names the cause; the other rules that hold are kept as `also`, because a miss
often has more than one thing against it (a z = 0.44 SDSS-I spectrum whose
[O III] 5007 is read as Mg II also has its Halpha beyond the instrument's red
end). The order of the table is the order of blame: a specific physical
confusion first, a generic condition (low S/N) last.

The most telling fact is the line pair: a catastrophic redshift error almost
always puts one strong line a where the spectrum has another line b,
(1 + z_pred) lambda_a = (1 + z_true) lambda_b. `line_pairs` finds the pairs
that explain the error within PAIR_TOL_KMS, among the lines a network or a
person would key on (`KEY_LINES`, from the one line table
`model.lines`), requiring line b to be where the spectrum has data.
One error can fit two pairs at once (Mg II/C IV and [O III]/Mg II differ by
under 1 %), so all are kept, closest first.

The clamped-end fact counts a key line whose broad wing reaches the
instrument's edge (within CLAMP_MARGIN_KMS), not only one beyond it: the grid
repeats the edge value out to 10325 A, so a broad Halpha cut by SDSS-I/II's
red end becomes a shelf 1000 A wide at the height of its peak.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from model.grid import FNET_WAVE
from model.lines import line_table
from model.metrics import C_KMS, dv_kms

MISS_KMS = 6000.0  # the paper's first threshold: beyond it a redshift is wrong
PAIR_TOL_KMS = 3000.0  # how far the two line positions may disagree and still be one confused feature
NEAR_MISS_KMS = 30000.0  # below this a miss is an imprecise z on the right lines, not a confusion
LINE_WINDOW_KMS = 1500.0  # half-width of the pixels a line is judged on (masked or not)
CLAMP_MARGIN_KMS = 3000.0  # a broad line this close to the instrument's edge is cut by it
LOW_Z = 1.0  # below this, quasars show the strong narrow lines of the narrow-line region in the optical
HIGH_Z = 4.0
LOW_SN = 3.0  # SN_MEDIAN_ALL; DR16Q's median is about 3.5
# the lines a redshift rests on (longnames of model.lines' table), and the narrow ones among them
KEY_LINES = ("Lyman α", "C IV 1549", "C III] 1908", "Mg II 2796", "Balmer β", "[O III] 5007", "Balmer α")
NARROW_LINES = ("Balmer β", "[O III] 5007", "Balmer α")


@lru_cache(maxsize=1)
def key_line_waves() -> dict[str, float]:
    """Vacuum rest wavelength (A) of each of KEY_LINES, from the app's line table."""
    t = line_table()
    t = t[t["kind"] == "emission"].drop_duplicates("longname").set_index("longname")
    missing = [n for n in KEY_LINES if n not in t.index]
    if missing:
        raise ValueError(f"assets/lines/emission_lines.txt lacks the key line(s) {missing}")
    return {n: float(t.loc[n, "lambda"]) for n in KEY_LINES}


@dataclass(frozen=True)
class LinePair:
    """The truth's line `true_line`, observed at `observed_A`, read as `read_as` by the wrong redshift."""
    read_as: str
    true_line: str
    observed_A: float
    offset_kms: float  # how far apart the two positions are

    def __str__(self) -> str:
        return f"{self.true_line} read as {self.read_as}"


def line_pairs(
    z_true: float, z_pred: float, lam_min: float = 0.0, lam_max: float = np.inf, tol_kms: float = PAIR_TOL_KMS
) -> list[LinePair]:
    """The key-line pairs (1 + z_pred) lambda_a = (1 + z_true) lambda_b within tol_kms that explain z_pred,
    closest first, with line b observed inside [lam_min, lam_max] and on the FNet grid."""
    if not (np.isfinite(z_true) and np.isfinite(z_pred)):
        return []
    waves = key_line_waves()
    lo, hi = max(lam_min, FNET_WAVE[0]), min(lam_max, FNET_WAVE[-1])
    pairs = []
    for a, b in itertools.permutations(waves, 2):
        obs = (1.0 + z_true) * waves[b]
        off = C_KMS * ((1.0 + z_pred) * waves[a] / obs - 1.0)
        if lo <= obs <= hi and abs(off) <= tol_kms:
            pairs.append(LinePair(a, b, obs, off))
    return sorted(pairs, key=lambda p: abs(p.offset_kms))


def _truth_lines(z_true: float) -> dict[str, float]:
    """Observed wavelength of each key line at z_true, for those on the FNet grid."""
    if not np.isfinite(z_true):
        return {}
    obs = {n: (1.0 + z_true) * w for n, w in key_line_waves().items()}
    return {n: w for n, w in obs.items() if FNET_WAVE[0] <= w <= FNET_WAVE[-1]}


def clamped_lines(z_true: float, lam_min: float, lam_max: float) -> list[str]:
    """Key lines of the truth on the FNet grid but outside the instrument's range [lam_min, lam_max], or within
    CLAMP_MARGIN_KMS of its edge: the grid holds the clamped edge value there (SDSS-I/II covers 3800-9200 A of
    the grid's 3567-10325 A)."""
    m = CLAMP_MARGIN_KMS / C_KMS
    return [n for n, w in _truth_lines(z_true).items() if not lam_min * (1 + m) <= w <= lam_max * (1 - m)]


def masked_lines(z_true: float, lam_min: float, lam_max: float, grid_ivar: np.ndarray | None) -> list[str]:
    """Key lines of the truth inside the instrument's range whose pixels on the grid are mostly ivar = 0
    (a masked gap, bad columns): the network sees an interpolated bridge, not the line."""
    if grid_ivar is None:
        return []
    iv = np.asarray(grid_ivar).ravel()
    if iv.size != FNET_WAVE.size:
        raise ValueError(f"grid_ivar has {iv.size} pixels, the FNet grid {FNET_WAVE.size}")
    half = LINE_WINDOW_KMS / C_KMS
    out = []
    for n, w in _truth_lines(z_true).items():
        if lam_min <= w <= lam_max:
            win = (FNET_WAVE >= w * (1 - half)) & (FNET_WAVE <= w * (1 + half))
            if win.any() and np.mean(iv[win] <= 0) > 0.5:
                out.append(n)
    return out


@dataclass(frozen=True)
class MissFacts:
    """What the rules of `CAUSES` look at for one miss."""
    z_true: float
    z_pred: float
    dv_kms: float
    sn: float = float("nan")
    is_bal: bool = False
    pairs: tuple[LinePair, ...] = ()
    clamped: tuple[str, ...] = ()
    masked: tuple[str, ...] = ()


def miss_facts(
    z_true: float, z_pred: float, sn: float = float("nan"), is_bal: bool = False,
    lam_min: float = 0.0, lam_max: float = np.inf, grid_ivar: np.ndarray | None = None,
) -> MissFacts:
    """The facts of one spectrum's redshift estimate; lam_min/lam_max: the instrument's own wavelength range."""
    return MissFacts(
        z_true=float(z_true), z_pred=float(z_pred), dv_kms=float(dv_kms(z_pred, z_true)), sn=float(sn),
        is_bal=bool(is_bal), pairs=tuple(line_pairs(z_true, z_pred, lam_min, lam_max)),
        clamped=tuple(clamped_lines(z_true, lam_min, lam_max)),
        masked=tuple(masked_lines(z_true, lam_min, lam_max, grid_ivar)),
    )  # fmt: skip


def _narrow_confusion(f: MissFacts) -> bool:
    return f.z_true < LOW_Z and any(p.true_line in NARROW_LINES for p in f.pairs)


# (cause, what it means, rule, what the rule looks at); the first rule that holds is a miss's cause.
# "error" rules read the wrong redshift itself; "spectrum" rules only the spectrum, so they can be counted
# on the spectra an estimator got right too, as the base rate a cause must stand out from.
CAUSES: tuple[tuple[str, str, Callable[[MissFacts], bool], str], ...] = (
    ("no redshift", "the estimator gave none (a failed fit or line finder)", lambda f: not np.isfinite(f.z_pred), "error"),
    ("narrow-line confusion",
     f"z < {LOW_Z:g}: a strong narrow line of the truth ({', '.join(NARROW_LINES)}) read as another line",
     _narrow_confusion, "error"),
    ("masked gap", "a key line of the truth falls on masked (ivar = 0) pixels", lambda f: bool(f.masked), "spectrum"),
    ("clamped grid end",
     ("a key line of the truth lies beyond (or at) the instrument's edge, where the FNet grid holds the clamped "
      "edge value (SDSS-I/II: 3800-9200 A)"), lambda f: bool(f.clamped), "spectrum"),
    ("BAL", "a broad absorption line quasar: troughs eat the emission lines", lambda f: f.is_bal, "spectrum"),
    ("line confusion", "a line of the truth read as another line (not a low-z narrow line)",
     lambda f: bool(f.pairs) and not _narrow_confusion(f), "error"),
    ("high z", f"z >= {HIGH_Z:g}: the Lya forest and few lines redward of it", lambda f: f.z_true >= HIGH_Z, "spectrum"),
    ("low S/N", f"SN_MEDIAN_ALL < {LOW_SN:g}", lambda f: f.sn < LOW_SN, "spectrum"),
    ("near miss", f"|dv| < {NEAR_MISS_KMS:g} km/s: the right lines, an imprecise z",
     lambda f: abs(f.dv_kms) < NEAR_MISS_KMS, "error"),
    ("other", "none of the above", lambda f: True, "error"),
)  # fmt: skip
CAUSE_NAMES: tuple[str, ...] = tuple(c[0] for c in CAUSES)


def causes_of(facts: MissFacts) -> list[str]:
    """Every cause whose rule holds, in table order: the first is the cause, the rest hold as well."""
    return [name for name, _, rule, _ in CAUSES if rule(facts) and name != "other"] or ["other"]


def diagnose(
    z_true, z_pred, sn=None, is_bal=None, lam_min=None, lam_max=None, grid_ivar: np.ndarray | None = None,
    miss_kms: float = MISS_KMS, misses_only: bool = True,
) -> pd.DataFrame:
    """One row per miss (|dv| > miss_kms or no z; every spectrum with `misses_only` False): position, miss,
    z_true, z_pred, dv_kms, sn, cause, also, line_pair, clamped, masked. Arrays are per spectrum; lam_min/lam_max
    are each spectrum's instrument range and grid_ivar its N x 4618 ivar on the FNet grid (None: masked gaps
    are not looked for). For a spectrum that is not a miss, `cause` and `also` are meaningless; `holds` (the
    spectrum rules that hold) is what `cause_table` counts there."""
    zt = np.asarray(z_true, np.float64).ravel()
    zp = np.asarray(z_pred, np.float64).ravel()
    n = zt.size

    def per(values, fill):
        v = np.full(n, fill) if values is None else np.asarray(values).ravel()
        if v.size != n:
            raise ValueError(f"{v.size} values for {n} spectra")
        return v

    sn_, bal, lo, hi = per(sn, np.nan), per(is_bal, False), per(lam_min, 0.0), per(lam_max, np.inf)
    if grid_ivar is not None and np.shape(grid_ivar)[0] != n:
        raise ValueError(f"grid_ivar has {np.shape(grid_ivar)[0]} rows for {n} spectra")
    miss = ~(np.abs(dv_kms(zp, zt)) <= miss_kms)
    spectrum_rules = [(name, rule) for name, _, rule, kind in CAUSES if kind == "spectrum"]
    rows = []
    for i in np.flatnonzero(miss) if misses_only else range(n):
        f = miss_facts(zt[i], zp[i], float(sn_[i]), bool(bal[i]), float(lo[i]), float(hi[i]),
                       None if grid_ivar is None else grid_ivar[i])  # fmt: skip
        causes = causes_of(f)
        rows.append({
            "position": int(i), "miss": bool(miss[i]), "z_true": f.z_true, "z_pred": f.z_pred, "dv_kms": f.dv_kms,
            "sn": f.sn, "cause": causes[0], "also": ", ".join(causes[1:]),
            "holds": ", ".join(name for name, rule in spectrum_rules if rule(f)),
            "line_pair": "; ".join(f"{p} ({p.observed_A:.0f} A, {p.offset_kms:+.0f} km/s)" for p in f.pairs),
            "clamped": ", ".join(f.clamped), "masked": ", ".join(f.masked),
        })  # fmt: skip
    cols = ["position", "miss", "z_true", "z_pred", "dv_kms", "sn", "cause", "also", "holds", "line_pair",
            "clamped", "masked"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def cause_table(diag: pd.DataFrame) -> pd.DataFrame:
    """Per cause (table order): n (misses it is the cause of), n_holds (misses its rule holds for), and for a
    spectrum rule hits_holds (spectra the estimator got right that it holds for, when `diag` has them)."""
    misses, hits = diag[diag["miss"]], diag[~diag["miss"]]
    also = misses["also"].fillna("").str.split(", ")
    hit_holds = hits["holds"].fillna("").str.split(", ")
    rows = []
    for name, meaning, _, kind in CAUSES:
        first = int((misses["cause"] == name).sum())
        rows.append({
            "cause": name, "n": first, "n_holds": first + int(sum(name in a for a in also)),
            "hits_holds": int(sum(name in h for h in hit_holds)) if kind == "spectrum" and len(hits) else None,
            "meaning": meaning,
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("cause").astype({"hits_holds": "Int64"})


__all__ = [
    "CAUSES",
    "CAUSE_NAMES",
    "KEY_LINES",
    "MISS_KMS",
    "NARROW_LINES",
    "LinePair",
    "MissFacts",
    "cause_table",
    "causes_of",
    "clamped_lines",
    "diagnose",
    "key_line_waves",
    "line_pairs",
    "masked_lines",
    "miss_facts",
]
