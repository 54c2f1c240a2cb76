"""A QuasarNET-style line finder (Busca & Balland 2018, arXiv 1808.09955) in torch.

The baseline FNet is compared with, and the model whose failures (Z_QN = -1)
FNet is meant to rescue. Written from the paper and its code
(github.com/ngbusca/QuasarNET, `models.py`, `io.box_offset`,
`utils.process_preds`); what we kept and what differs:

Input. The spectrum rebinned by inverse-variance weighting into 443 bins of
1e-3 dex from 3600 to 10000 A, then standardised to ivar-weighted mean 0 and
rms 1 (`model.grid.rebin_quasarnet` / `standardise_quasarnet`). The store holds
spectra on the FNet grid (1e-4 dex pixels, the SDSS pixel width), so we rebin
from that grid: every QN bin gathers ~10 consecutive FNet pixels, which
`QNRebinner` sums with `np.add.reduceat` over a whole batch at once.

Network. 4 x [Conv1d(100 filters, k=10, stride 2, no padding) + BatchNorm +
ReLU] (443 -> 217 -> 104 -> 48 -> 20 samples), flatten (2000), Dense(100) +
BatchNorm + ReLU, then per line two Dense(13) heads: box confidences (sigmoid)
and offsets (sigmoid rescaled to [-0.1, 1.1], QuasarNET's later
"rescaled_sigmoid", so the ends of a box are reachable). QuasarNET's code has no
dropout (a BatchNorm after the dense layer instead); `dropout` is a config
option, 0 by default. Glorot-uniform weights, zero biases, as in the Keras code.
BatchNorm momentum is torch's 0.1 (Keras' 0.99 would be 0.01), as in FNet: the
running statistics settle within the short trainings a CPU affords.

Lines. Lya 1215.67, CIV 1549.06, CIII] 1908.73, MgII 2798.75, Hb 4862.68,
Ha 6564.61 A, vacuum and doublet-averaged, the values the mock survey and the
rest of this project use. (DESIGN.md quotes QuasarNET's own table, CIV 1548.20,
MgII 2796.35, Ha 6562.8; the differences are 80-230 km/s, well under a box.)
Plus a BAL head: 13 confidence-only boxes at CIV, on only for broad absorption
line quasars (QuasarNET's `lines_bal = ["CIV(1548)"]`); `bal_prob` is its most
confident box.

Boxes. The 13 boxes tile the 443 bins (each 443/13 = 34.1 bins, 0.034 dex
wide). A line at observed log-wavelength L sits at position
p = (L - log10 3600) / 1e-3 / 443 * 13; box floor(p) has confidence 1 and
offset p - floor(p). Lines outside the window, and every line of a non-quasar,
have all boxes 0.

Loss, per line and summed over lines (QuasarNET's `custom_loss`): binary
cross-entropy on the boxes with the positive and negative terms each divided
by their count in the batch (so the one positive box in 13 weighs as much as
the twelve negatives), plus the squared offset error of the true box only,
divided by the positive count. The BAL head has the same box term, over the
spectra whose BAL status is known.

Decoding. Per line: confidence c = the best box, z from that box and its
offset. The spectrum's z is the z of the most confident line. A spectrum is a
quasar with a redshift when at least `n_lines_min` (1) lines reach c >= 0.4
(`c_threshold`); otherwise it is a failure: Z_QN = -1, IS_QSO_QN = 0, the
convention of DR16Q.

Training, prediction over arrays and checkpoints: `model.quasarnet_train`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .grid import FNET_LOGLAM, QN_DLOGLAM, QN_LOGLAM_MIN, QN_NBINS, standardise_quasarnet

QN_LINES: dict[str, float] = {
    "LYA": 1215.67,
    "CIV": 1549.06,
    "CIII": 1908.73,
    "MGII": 2798.75,
    "HB": 4862.68,
    "HA": 6564.61,
}
QN_BAL_LINE = ("CIV", 1549.06)
Z_QN_FAILED = -1.0


@dataclass(frozen=True)
class QuasarNetConfig:
    """Every number of the QuasarNET-style baseline; the defaults are the paper's."""

    n_bins: int = QN_NBINS
    loglam_min: float = float(QN_LOGLAM_MIN)
    dloglam: float = QN_DLOGLAM
    n_conv: int = 4
    n_filters: int = 100
    kernel_size: int = 10
    stride: int = 2
    n_dense: int = 100
    dropout: float = 0.0
    n_boxes: int = 13
    line_names: tuple[str, ...] = tuple(QN_LINES)
    line_waves: tuple[float, ...] = tuple(QN_LINES.values())
    bal_wave: float | None = QN_BAL_LINE[1]  # None: no BAL head
    offset_range: tuple[float, float] = (-0.1, 1.1)  # offset = lo + (hi - lo) * sigmoid
    c_threshold: float = 0.4
    n_lines_min: int = 1
    bn_momentum: float = 0.1
    bn_eps: float = 1e-3  # Keras' default

    def __post_init__(self) -> None:
        if len(self.line_names) != len(self.line_waves) or not self.line_names:
            raise ValueError("line_names and line_waves must be non-empty and the same length")
        if self.n_lines_min < 1 or self.n_lines_min > len(self.line_names):
            raise ValueError(f"n_lines_min must be in 1..{len(self.line_names)}")
        if self.conv_lengths()[-1] < 1:
            raise ValueError(f"{self.n_bins} bins are too few for {self.n_conv} convolutions")

    @classmethod
    def paper(cls) -> QuasarNetConfig:
        return cls()

    @property
    def n_lines(self) -> int:
        return len(self.line_names)

    @property
    def box_width_dex(self) -> float:
        return self.n_bins * self.dloglam / self.n_boxes

    def conv_lengths(self) -> list[int]:
        out = [self.n_bins]
        for _ in range(self.n_conv):
            out.append((out[-1] - self.kernel_size) // self.stride + 1)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuasarNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown QuasarNetConfig keys: {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


# ---------------------------------------------------------------- input


class QNRebinner:
    """Batched `rebin_quasarnet` from a fixed input grid (default: the FNet grid).

    The map from input pixels to QN bins is fixed, and because the grid is
    sorted every bin is a run of consecutive pixels, so a batch is rebinned with
    two `np.add.reduceat` calls. Pixels with ivar <= 0 or non-finite flux/ivar
    do not count; empty bins get flux 0 and ivar 0 (as `rebin_quasarnet`).
    """

    def __init__(self, loglam: np.ndarray = FNET_LOGLAM, cfg: QuasarNetConfig | None = None) -> None:
        cfg = cfg or QuasarNetConfig()
        ll = np.asarray(loglam, dtype=np.float64)
        if np.any(np.diff(ll) <= 0):
            raise ValueError("the input grid must increase")
        bins = np.floor((ll - cfg.loglam_min) / cfg.dloglam).astype(np.int64)
        inside = np.flatnonzero((bins >= 0) & (bins < cfg.n_bins))
        self.n_pix = ll.size
        self.n_bins = cfg.n_bins
        self.lo, self.hi = (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0)
        b = bins[self.lo : self.hi]
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]]) if b.size else np.zeros(0, np.int64)
        self.starts = starts  # offsets into [lo, hi)
        self.bin_of_run = b[starts] if b.size else np.zeros(0, np.int64)

    def __call__(self, flux: np.ndarray, ivar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N x n_pix flux, N x n_pix ivar) -> (N x 443 flux, N x 443 ivar), float32."""
        flux = np.asarray(flux, dtype=np.float32)
        ivar = np.asarray(ivar, dtype=np.float32)
        if flux.shape[-1] != self.n_pix or ivar.shape != flux.shape:
            raise ValueError(f"flux and ivar must be N x {self.n_pix}, got {flux.shape} and {ivar.shape}")
        f = flux[..., self.lo : self.hi]
        iv = ivar[..., self.lo : self.hi]
        bad = ~(np.isfinite(f) & np.isfinite(iv) & (iv > 0))
        w = np.where(bad, np.float32(0), iv)  # float32 temporaries, float64 sums: lean on big batches
        wf = np.where(bad, np.float32(0), f)
        wf *= w
        out_shape = (*f.shape[:-1], self.n_bins)
        fl = np.zeros(out_shape, dtype=np.float64)
        wt = np.zeros(out_shape, dtype=np.float64)
        if self.starts.size:
            fl[..., self.bin_of_run] = np.add.reduceat(wf, self.starts, axis=-1, dtype=np.float64)
            wt[..., self.bin_of_run] = np.add.reduceat(w, self.starts, axis=-1, dtype=np.float64)
        has = wt > 0
        fl = np.divide(fl, wt, out=np.zeros_like(fl), where=has)
        return fl.astype(np.float32), wt.astype(np.float32)


_DEFAULT_REBINNER: QNRebinner | None = None


def quasarnet_input(flux: np.ndarray, ivar: np.ndarray, rebinner: QNRebinner | None = None) -> np.ndarray:
    """The network input for FNet-grid spectra: rebinned to 443 bins and standardised, N x 443 float32."""
    global _DEFAULT_REBINNER
    if rebinner is None:
        if _DEFAULT_REBINNER is None:
            _DEFAULT_REBINNER = QNRebinner()
        rebinner = _DEFAULT_REBINNER
    fl, iv = rebinner(np.atleast_2d(flux), np.atleast_2d(ivar))
    return standardise_quasarnet(fl, iv)


# ---------------------------------------------------------------- network


class QuasarNet(nn.Module):
    """The network: (B, 443) or (B, 1, 443) standardised input -> dict of logits.

    Outputs: "box" (B, n_lines, n_boxes) confidence logits, "offset"
    (B, n_lines, n_boxes) offsets already in `offset_range`, and "bal"
    (B, n_boxes) BAL confidence logits (absent without a BAL head).
    """

    def __init__(self, cfg: QuasarNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or QuasarNetConfig()
        layers: list[nn.Module] = []
        cin = 1
        for _ in range(cfg.n_conv):
            layers += [
                nn.Conv1d(cin, cfg.n_filters, cfg.kernel_size, stride=cfg.stride),
                nn.BatchNorm1d(cfg.n_filters, momentum=cfg.bn_momentum, eps=cfg.bn_eps),
                nn.ReLU(inplace=True),
            ]
            cin = cfg.n_filters
        self.features = nn.Sequential(*layers)
        flat = cfg.n_filters * cfg.conv_lengths()[-1]
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, cfg.n_dense),
            nn.BatchNorm1d(cfg.n_dense, momentum=cfg.bn_momentum, eps=cfg.bn_eps),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity(),
        )
        nl, nb = cfg.n_lines, cfg.n_boxes
        self.box_head = nn.Linear(cfg.n_dense, nl * nb)
        self.offset_head = nn.Linear(cfg.n_dense, nl * nb)
        self.bal_head = nn.Linear(cfg.n_dense, nb) if cfg.bal_wave is not None else None
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        h = self.dense(self.features(x))
        nl, nb = self.cfg.n_lines, self.cfg.n_boxes
        lo, hi = self.cfg.offset_range
        out = {
            "box": self.box_head(h).view(-1, nl, nb),
            "offset": lo + (hi - lo) * torch.sigmoid(self.offset_head(h).view(-1, nl, nb)),
        }
        if self.bal_head is not None:
            out["bal"] = self.bal_head(h)
        return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- targets and loss


def line_positions(z: np.ndarray, rest_waves, cfg: QuasarNetConfig) -> np.ndarray:
    """Box-unit position of each line for each z: (N, n_lines) float64, p in [0, n_boxes) when in the window."""
    z = np.asarray(z, dtype=np.float64).reshape(-1, 1)
    lw = np.log10(np.asarray(rest_waves, dtype=np.float64)).reshape(1, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        loglam = lw + np.log10(1.0 + z)
    return (loglam - cfg.loglam_min) / cfg.dloglam / cfg.n_bins * cfg.n_boxes


def position_to_z(pos: np.ndarray, rest_wave, cfg: QuasarNetConfig) -> np.ndarray:
    """Inverse of `line_positions` for one or many lines (broadcast)."""
    loglam = cfg.loglam_min + np.asarray(pos, dtype=np.float64) * cfg.n_bins / cfg.n_boxes * cfg.dloglam
    return 10.0 ** (loglam - np.log10(np.asarray(rest_wave, dtype=np.float64))) - 1.0


def make_targets(
    z: np.ndarray,
    is_qso: np.ndarray,
    bal: np.ndarray | None = None,
    cfg: QuasarNetConfig | None = None,
) -> dict[str, np.ndarray]:
    """Training targets from the true redshifts.

    Returns "box" (N, n_lines, n_boxes) 0/1, "offset" (same shape; the line's
    offset in its box, 0 elsewhere) and, with a BAL head, "bal" (N, n_boxes)
    0/1 and "bal_known" (N,) bool. Non-quasars and lines outside the window have
    all boxes 0. `bal`: 1 for a BAL quasar, 0 for not, NaN or < 0 for unknown
    (e.g. DR16Q's BAL_PROB = -1 where CIV is not covered); None: all unknown.
    """
    cfg = cfg or QuasarNetConfig()
    z = np.asarray(z, dtype=np.float64).ravel()
    q = np.asarray(is_qso, dtype=bool).ravel() & np.isfinite(z)
    n, nl, nb = z.size, cfg.n_lines, cfg.n_boxes
    box = np.zeros((n, nl, nb), dtype=np.float32)
    off = np.zeros((n, nl, nb), dtype=np.float32)
    pos = line_positions(np.where(q, z, 0.0), cfg.line_waves, cfg)
    j = np.floor(pos).astype(np.int64, copy=False) if pos.size else np.zeros(pos.shape, np.int64)
    on = q[:, None] & np.isfinite(pos) & (pos >= 0) & (pos < nb)
    ii, ll = np.nonzero(on)
    box[ii, ll, j[ii, ll]] = 1.0
    off[ii, ll, j[ii, ll]] = (pos - j)[ii, ll]
    out = {"box": box, "offset": off}
    if cfg.bal_wave is not None:
        b = np.full(n, np.nan) if bal is None else np.asarray(bal, dtype=np.float64).ravel()
        known = np.isfinite(b) & (b >= 0)
        is_bal = known & (b >= 0.5) & q
        bpos = line_positions(np.where(q, z, 0.0), [cfg.bal_wave], cfg)[:, 0]
        bj = np.floor(bpos).astype(np.int64)
        bon = is_bal & (bpos >= 0) & (bpos < nb)
        bt = np.zeros((n, nb), dtype=np.float32)
        bt[np.flatnonzero(bon), bj[bon]] = 1.0
        out["bal"] = bt
        out["bal_known"] = known
    return out


def _balanced_bce(logits: torch.Tensor, y: torch.Tensor, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """QuasarNET's box term, per head: positives / N1 + negatives / N2.

    logits, y: (B, H, n_boxes) for H heads (lines); returns (loss per head (H,), N1 per head (H,)).
    """
    n1 = y.sum(dim=(0, 2)) + eps
    n2 = (1.0 - y).sum(dim=(0, 2)) + eps
    pos = (y * F.softplus(-logits)).sum(dim=(0, 2)) / n1  # -log sigmoid(x)
    neg = ((1.0 - y) * F.softplus(logits)).sum(dim=(0, 2)) / n2  # -log(1 - sigmoid(x))
    return pos + neg, n1


def quasarnet_loss(out: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over lines of (balanced box BCE + offset MSE of the true box), plus the BAL box BCE."""
    y = tgt["box"]
    cls, n1 = _balanced_bce(out["box"], y)
    offset = (y * (out["offset"] - tgt["offset"]) ** 2).sum(dim=(0, 2)) / n1
    total = (cls + offset).sum()
    if "bal" in out and "bal" in tgt:
        known = tgt["bal_known"]
        if bool(known.any()):
            total = total + _balanced_bce(out["bal"][known][:, None], tgt["bal"][known][:, None])[0].sum()
    return total


# ---------------------------------------------------------------- decoding


def decode(out: dict[str, torch.Tensor] | dict[str, np.ndarray], cfg: QuasarNetConfig) -> pd.DataFrame:
    """Network outputs -> one row per spectrum.

    Columns: z_qn (-1 on failure), z_qn_conf (confidence of the line z comes
    from), z_qn_line (its name), is_qso_qn (0/1), qn_failed (bool), bal_prob
    (NaN without a BAL head), then per line qn_z_<line> and qn_conf_<line>.
    z_qn_conf and z_qn_line are given on failures too (the best, sub-threshold
    line), so a reviewer sees how close it came.
    """
    box = _np(out["box"])
    offset = _np(out["offset"])
    n, nl, _ = box.shape
    conf = 1.0 / (1.0 + np.exp(-box.astype(np.float64)))
    j = conf.argmax(axis=2)  # (n, nl)
    c_line = np.take_along_axis(conf, j[..., None], axis=2)[..., 0]
    o_line = np.take_along_axis(offset.astype(np.float64), j[..., None], axis=2)[..., 0]
    z_line = position_to_z(j + o_line, np.asarray(cfg.line_waves)[None, :], cfg)
    best = c_line.argmax(axis=1) if nl else np.zeros(n, np.int64)
    rows = np.arange(n)
    z_best = z_line[rows, best]
    c_best = c_line[rows, best]
    n_found = (c_line >= cfg.c_threshold).sum(axis=1)
    failed = n_found < cfg.n_lines_min
    df = pd.DataFrame(
        {
            "z_qn": np.where(failed, Z_QN_FAILED, z_best),
            "z_qn_conf": c_best,
            "z_qn_line": pd.Categorical(np.asarray(cfg.line_names)[best], categories=list(cfg.line_names)),
            "is_qso_qn": (~failed).astype(np.int8),
            "qn_failed": failed,
            "bal_prob": (1.0 / (1.0 + np.exp(-_np(out["bal"]).astype(np.float64)))).max(axis=1)
            if "bal" in out
            else np.full(n, np.nan),
        }
    )
    for li, name in enumerate(cfg.line_names):
        df[f"qn_z_{name.lower()}"] = z_line[:, li]
        df[f"qn_conf_{name.lower()}"] = c_line[:, li]
    return df


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def targets_as_logits(tgt: dict[str, np.ndarray], cfg: QuasarNetConfig, big: float = 20.0) -> dict[str, np.ndarray]:
    """Perfect network outputs for given targets (box logits +/- big, offsets as is): for round-trip tests."""
    out = {"box": np.where(tgt["box"] > 0, big, -big), "offset": tgt["offset"]}
    if "bal" in tgt:
        out["bal"] = np.where(tgt["bal"] > 0, big, -big)
    return out
