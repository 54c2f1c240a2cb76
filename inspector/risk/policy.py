"""A queue policy a person can state: a target leak rate or a budget, over calibrated risks.

- `--max-leak L`: auto-accept the least risky spectra, as many as keep the expected fraction of
  wrong answers among the accepted at or below L (their mean risk); the rest need a person.
- `--budget N`: the N spectra whose inspection removes the most expected errors.

A look removes a spectrum's expected error only if a person can decide it, so the order is the
risk times a decidability that grows with S/N up to `DECIDABLE_SN` (where a broad line is plain
to the eye). Spectra with no signal a person can use (S/N below `NO_SIGNAL_SN` and no decisive
template minimum) that the policy does not accept go to their own bucket, never the head of the
queue: no look will settle them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_MAX_LEAK = 0.005  # the leak rate a triage aims at unless told otherwise (DR16Q-class catalogs: < 1 %)
DECIDABLE_SN = 2.0  # median S/N per pixel from which a person can decide a spectrum
NO_SIGNAL_SN = 1.0  # below this, and no decisive template fit, nothing for a person to see
DECISIVE_DCHI2 = 25.0  # template fit delta chi2 to its next minimum that says there is a feature
NO_SIGNAL_PRIORITY_OFFSET = -1.0  # the bucket's priorities: below every queued spectrum's (those are >= 0)


@dataclass(frozen=True)
class Policy:
    """Exactly one of max_leak / budget."""

    max_leak: float | None = None
    budget: int | None = None

    def __post_init__(self) -> None:
        if (self.max_leak is None) == (self.budget is None):
            raise ValueError("a queue policy is a target leak rate (--max-leak) or a budget (--budget), one of them")
        if self.max_leak is not None and not 0.0 <= self.max_leak < 1.0:
            raise ValueError(f"--max-leak is a fraction in [0, 1), got {self.max_leak}")
        if self.budget is not None and self.budget < 0:
            raise ValueError(f"--budget is a number of spectra >= 0, got {self.budget}")

    def describe(self) -> str:
        return f"max leak {self.max_leak:g}" if self.max_leak is not None else f"budget {self.budget}"


def decidability(sn: np.ndarray) -> np.ndarray:
    """How far a look can settle a spectrum, 0-1, from its S/N (unknown S/N: assume it can)."""
    s = np.asarray(sn, np.float64)
    return np.where(np.isfinite(s), np.clip(s / DECIDABLE_SN, 0.0, 1.0), 1.0)


def no_signal(sn: np.ndarray, tpl_dchi2: np.ndarray) -> np.ndarray:
    s, d = np.asarray(sn, np.float64), np.asarray(tpl_dchi2, np.float64)
    with np.errstate(invalid="ignore"):
        return (s < NO_SIGNAL_SN) & ~(d >= DECISIVE_DCHI2)


def leak_curve(risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fraction sent to people, expected leak among the accepted) for accepting the k least risky, k = n..0."""
    r = np.sort(np.asarray(risk, np.float64))
    n = r.size
    k = np.arange(n, -1, -1)  # accepted counts, most accepted first
    csum = np.concatenate([[0.0], np.cumsum(r)])
    with np.errstate(invalid="ignore", divide="ignore"):
        leak = np.where(k > 0, csum[k] / np.maximum(k, 1), 0.0)
    return (n - k) / max(n, 1), leak


def accept_for_leak(risk: np.ndarray, max_leak: float) -> np.ndarray:
    """Accepted mask: the largest set of least-risky spectra whose mean risk is at most `max_leak`."""
    r = np.asarray(risk, np.float64)
    order = np.argsort(r, kind="stable")
    mean = np.cumsum(r[order]) / np.arange(1, r.size + 1)
    ok = np.flatnonzero(mean <= max_leak + 1e-12)
    k = int(ok[-1]) + 1 if ok.size else 0  # sorted ascending, the mean only grows: the last fit is the largest
    acc = np.zeros(r.size, bool)
    acc[order[:k]] = True
    return acc


def apply_policy(risk: np.ndarray, sn: np.ndarray, tpl_dchi2: np.ndarray, policy: Policy) -> pd.DataFrame:
    """Per spectrum: accepted, queued, no_signal (the bucket), score (expected errors a look removes) and the
    queue priority (score; the bucket below every queued spectrum)."""
    r = np.asarray(risk, np.float64)
    score = r * decidability(sn)
    dead = no_signal(sn, tpl_dchi2)
    if policy.max_leak is not None:
        accepted = accept_for_leak(r, policy.max_leak)
        queued = ~accepted & ~dead
    else:
        live = np.flatnonzero(~dead)
        top = live[np.argsort(-score[live], kind="stable")[: policy.budget]]
        queued = np.zeros(r.size, bool)
        queued[top] = True
        accepted = ~queued & ~dead
        # a dead spectrum the budget leaves out is accepted only if its risk is no worse than the queue's least
        floor = r[top].min() if top.size else np.inf
        accepted |= dead & (r < floor)
    bucket = ~accepted & ~queued
    priority = np.where(bucket, NO_SIGNAL_PRIORITY_OFFSET + score, score)
    return pd.DataFrame({"accepted": accepted, "queued": queued, "no_signal": bucket, "score": score,
                         "priority": priority})  # fmt: skip


def policy_summary(risk: np.ndarray, decision: pd.DataFrame, policy: Policy) -> dict[str, Any]:
    """The numbers a catalog quotes: sizes and the expected contamination of the accepted part, plus the
    leak curve (thinned to about 200 points) for the Overview."""
    r = np.asarray(risk, np.float64)
    acc = decision["accepted"].to_numpy(bool)
    n = r.size
    frac, leak = leak_curve(r)
    step = max(1, frac.size // 200)
    return {
        "policy": policy.describe(),
        "max_leak": policy.max_leak,
        "budget": policy.budget,
        "n_spectra": int(n),
        "n_accepted": int(acc.sum()),
        "n_queued": int(decision["queued"].sum()),
        "n_no_signal": int(decision["no_signal"].sum()),
        "expected_wrong_accepted": float(r[acc].sum()),
        "expected_leak": float(r[acc].mean()) if acc.any() else 0.0,
        "expected_wrong_all": float(r.sum()),
        "curve": {"queue_fraction": frac[::step].round(5).tolist(), "expected_leak": leak[::step].round(6).tolist()},
    }
