"""The bins head's posterior: the z grid uniform in log(1+z), bin labels, and decoding a posterior into a
redshift, its uncertainty and the alternative redshifts the inspector is offered."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from .metrics import C_KMS

if TYPE_CHECKING:
    from .fnet import FNetConfig


class ZBins:
    """`n` bins uniform in u = log(1+z) over [0, log(1 + z_max)]."""

    def __init__(self, n: int, z_max: float) -> None:
        self.n = int(n)
        self.z_max = float(z_max)
        self.edges = np.linspace(0.0, math.log1p(self.z_max), self.n + 1)  # in u = log(1+z)
        self.centers = 0.5 * (self.edges[1:] + self.edges[:-1])
        self.width = float(self.edges[1] - self.edges[0])

    @classmethod
    def of(cls, cfg: FNetConfig) -> ZBins:
        return cls(cfg.n_bins, cfg.z_max_bins)

    def index(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """Bin of each redshift; z outside [0, z_max] goes to the first / last bin."""
        u = np.log1p(np.clip(np.asarray(z, dtype=np.float64), 0.0, None))
        return np.clip((u / self.width).astype(np.int64), 0, self.n - 1)

    @property
    def z_centers(self) -> np.ndarray:
        return np.expm1(self.centers)


class Alternatives(NamedTuple):
    """Alternative redshifts per spectrum, best first; NaN where there are fewer.

    z, p: (N, k) redshift and posterior mass within +-window bins of each
    alternative; p_z: (N,) the same mass around the chosen redshift (how sure
    the network is of it). All NaN for a regression model.
    """

    z: np.ndarray
    p: np.ndarray
    p_z: np.ndarray

    @classmethod
    def empty(cls, n: int, k: int = 3) -> Alternatives:
        return cls(np.full((n, k), np.nan), np.full((n, k), np.nan), np.full(n, np.nan))


class Decoded(NamedTuple):
    z: np.ndarray  # (N,) float64
    z_err: np.ndarray  # (N,) float64, NaN where not estimated
    alternatives: Alternatives


def decode_posterior(
    prob: np.ndarray,
    bins: ZBins,
    window: int = 3,
    mass: float = 0.68,
    n_alt: int = 3,
    min_sep_kms: float = 6000.0,
    min_alt_prob: float = 0.01,
) -> Decoded:
    """Redshift, uncertainty and alternatives from a posterior over z bins (N x n_bins, rows sum to 1).

    z: exp of the posterior-weighted mean of log(1+z) over the +-`window` bins
    around the most probable bin, minus 1. z_err: half the width, in z, of the
    interval holding `mass` of the posterior, grown from the peak bin one bin
    at a time towards the more probable neighbour (the last bin taken
    fractionally, the posterior being flat within a bin); a second peak of
    comparable weight therefore widens it. Alternatives: the other local
    maxima of the posterior, ordered by the mass within +-`window` bins of
    them, each at least `min_sep_kms` (in c * delta log(1+z)) from z and from
    every better alternative, keeping those with mass >= `min_alt_prob`
    (a label-smoothed posterior has a floor of tiny bumps that are no candidates).
    """
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != bins.n:
        raise ValueError(f"posterior must be N x {bins.n}, got {p.shape}")
    n, nb = p.shape
    p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-300, None)
    c = bins.centers
    rows = np.arange(n)
    # window sums and weighted means for every bin at once (cumulative sums, clipped windows)
    cp = np.concatenate([np.zeros((n, 1)), np.cumsum(p, axis=1)], axis=1)
    cpu_ = np.concatenate([np.zeros((n, 1)), np.cumsum(p * c, axis=1)], axis=1)
    lo = np.clip(np.arange(nb) - window, 0, nb)
    hi = np.clip(np.arange(nb) + window + 1, 0, nb)
    wmass = cp[:, hi] - cp[:, lo]  # (n, nb)
    wmean = (cpu_[:, hi] - cpu_[:, lo]) / np.clip(wmass, 1e-300, None)

    k = p.argmax(axis=1)
    u = wmean[rows, k]
    z = np.expm1(u)
    p_z = wmass[rows, k]

    # 68% interval grown from the peak
    a, b = k.copy(), k.copy()  # bins [a, b] taken whole
    m = p[rows, k].copy()
    frac_lo = np.zeros(n)  # fraction of bin a-1 / b+1 taken at the end
    frac_hi = np.zeros(n)
    first = m >= mass
    # the peak bin alone holds enough: take the central fraction of it
    w_first = np.where(first, mass / np.clip(m, 1e-300, None), 1.0)
    active = ~first
    while active.any():
        i = np.flatnonzero(active)
        pl = np.where(a[i] > 0, p[i, np.maximum(a[i] - 1, 0)], -1.0)
        ph = np.where(b[i] < nb - 1, p[i, np.minimum(b[i] + 1, nb - 1)], -1.0)
        go_lo = pl >= ph
        add = np.where(go_lo, pl, ph)
        exhausted = add < 0
        need = mass - m[i]
        done = (add >= need) | exhausted
        f = np.where(exhausted, 0.0, np.clip(need / np.clip(add, 1e-300, None), 0.0, 1.0))
        dl = i[done & go_lo]
        dh = i[done & ~go_lo]
        frac_lo[dl] = f[done & go_lo]
        frac_hi[dh] = f[done & ~go_lo]
        cont = ~done
        a[i[cont & go_lo]] -= 1
        b[i[cont & ~go_lo]] += 1
        m[i[cont]] += add[cont]
        active[i[done]] = False
    edges = bins.edges
    u_lo = np.where(first, c[k] - 0.5 * w_first * bins.width, edges[a] - frac_lo * bins.width)
    u_hi = np.where(first, c[k] + 0.5 * w_first * bins.width, edges[b + 1] + frac_hi * bins.width)
    z_err = 0.5 * (np.expm1(u_hi) - np.expm1(u_lo))

    # alternatives: local maxima, by window mass, separated in velocity
    left = np.concatenate([np.full((n, 1), -np.inf), p[:, :-1]], axis=1)
    right = np.concatenate([p[:, 1:], np.full((n, 1), -np.inf)], axis=1)
    is_max = (p >= left) & (p > right)
    alt_z = np.full((n, n_alt), np.nan)
    alt_p = np.full((n, n_alt), np.nan)
    sep = min_sep_kms / C_KMS  # in log(1+z)
    for r in range(n if n_alt > 0 else 0):
        cand = np.flatnonzero(is_max[r] & (wmass[r] >= min_alt_prob))
        if cand.size == 0:
            continue
        cand = cand[np.argsort(-wmass[r, cand], kind="stable")]
        taken = [u[r]]
        j = 0
        for q in cand:
            uq = wmean[r, q]
            if all(abs(uq - t) >= sep for t in taken):
                alt_z[r, j] = math.expm1(uq)
                alt_p[r, j] = wmass[r, q]
                taken.append(uq)
                j += 1
                if j == n_alt:
                    break
    return Decoded(z, z_err, Alternatives(alt_z, alt_p, p_z))


__all__ = ["Alternatives", "Decoded", "ZBins", "decode_posterior"]
