"""Figures of the evaluation (matplotlib without pyplot: no display, no global state)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .evaluate import Estimates, accuracy_curve, as_estimates
from .metrics import THRESHOLDS_KMS, dv_kms

SCATTER_MAX = 3000  # above this many spectra the left panels become density-shaded 2-D histograms
# one colour per estimator (FNet, baseline, template fit, the catalog's Z_PIPE / Z_PCA / Z_QN, ...)
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
          "tab:cyan", "tab:gray")  # fmt: skip


def fig4(
    z_pred: Estimates,
    z_true,
    path: str | Path,
    title: str | None = None,
    z_max: float | None = None,
    dpi: int = 120,
) -> Path:
    """Write a PNG like Fig. 4 of Rastegar Nia et al. (2022) and return its path.

    Left (one panel per estimator): predicted vs true redshift, points for up
    to SCATTER_MAX spectra, a log-shaded 2-D histogram above that; spectra
    with no prediction (NaN) are counted in the panel title. Right: the
    percentage of spectra with |dv| below a threshold, against the threshold on
    a log axis, every estimator on one axis, with the 6000 / 12000 / 30000 km/s
    marks and each estimator's accuracy at 6000 km/s in the legend.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure  # no pyplot: no global state, no display, safe in a server

    est = as_estimates(z_pred, default_name="prediction")
    zt = np.asarray(z_true, dtype=np.float64).ravel()
    for name, zp in est.items():
        if zp.shape != zt.shape:
            raise ValueError(f"estimator {name!r} has {zp.size} values for {zt.size} spectra")
    n_est = len(est)
    if z_max is None:
        finite = [zt[np.isfinite(zt)]] + [zp[np.isfinite(zp)] for zp in est.values()]
        hi = max((float(np.percentile(a, 99.9)) for a in finite if a.size), default=1.0)
        z_max = max(float(np.nanmax(zt)) if zt.size else 1.0, hi, 0.5) * 1.05

    # scatter panels in a grid (up to 3 across, 2 rows for 4+), the accuracy panel spanning the right
    ncol = n_est if n_est <= 3 else math.ceil(n_est / 2)
    nrow = math.ceil(n_est / ncol)
    fig = Figure(figsize=(3.7 * ncol + 5.2, 3.7 * nrow + 0.7))
    gs = fig.add_gridspec(nrow, ncol + 1, width_ratios=[1.0] * ncol + [1.45])
    axes = [fig.add_subplot(gs[k // ncol, k % ncol]) for k in range(n_est)]
    axes.append(fig.add_subplot(gs[:, ncol]))
    edges = np.linspace(0.0, z_max, 121)
    for k, (ax, (name, zp)) in enumerate(zip(axes[:-1], est.items())):
        ok = np.isfinite(zp) & np.isfinite(zt)
        if zt.size > SCATTER_MAX:
            *_, im = ax.hist2d(zt[ok], zp[ok], bins=[edges, edges], norm=LogNorm(), cmap="viridis", cmin=1)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="spectra per bin")
        else:
            color = COLORS[k % len(COLORS)]
            ax.scatter(zt[ok], zp[ok], s=6 if zt.size > 300 else 14, alpha=0.6, lw=0, color=color)
        ax.plot([0, z_max], [0, z_max], color="k", lw=0.7, ls="--")
        ax.set_xlim(0, z_max)
        ax.set_ylim(0, z_max)
        ax.set_aspect("equal")
        ax.set_xlabel("true z")
        ax.set_ylabel(f"{name} z")
        n_fail = int((~np.isfinite(zp)).sum())
        ax.set_title(f"{name}: {zt.size} spectra" + (f", {n_fail} no z" if n_fail else ""), fontsize=9)

    ax = axes[-1]
    grid = np.logspace(1, np.log10(3e5), 400)
    for k, (name, zp) in enumerate(est.items()):
        curve = accuracy_curve(zp, zt, grid)
        a6 = float(np.mean(np.abs(np.nan_to_num(dv_kms(zp, zt), nan=np.inf)) < THRESHOLDS_KMS[0])) * 100
        ax.plot(grid, curve, color=COLORS[k % len(COLORS)], lw=1.6, label=f"{name} ({a6:.1f}% < 6000)")
    for t in THRESHOLDS_KMS:
        ax.axvline(t, color="0.5", lw=0.8, ls=":")
        ax.text(t, 0.5, f"{t:g} km/s", rotation=90, va="center", ha="right", fontsize=8, color="0.35",
                transform=ax.get_xaxis_transform())
    ax.set_xscale("log")
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(0, 101)
    ax.set_xlabel("|dv| threshold (km/s)")
    ax.set_ylabel("spectra with |dv| below it (%)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("accuracy vs velocity threshold", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


__all__ = ["SCATTER_MAX", "fig4"]
