"""FNet (Rastegar Nia et al. 2022, arXiv 2201.03393) in torch.

A 1-D ResNet with stride 1 and no pooling over the 4618-pixel FNet grid,
then a dense head to one number, the min-max scaled redshift (the published
"regression" output), or optionally to `n_bins` logits of a posterior over
log(1+z) (the "bins" output, see `ZBins` and `decode_posterior`).

Residual block (published): Conv1d k=500 pad 250 -> BN -> ReLU -> Conv1d k=200
pad 100 -> BN -> ReLU -> Conv1d k=15 pad 6 -> BN, plus the shortcut (a 1x1
Conv1d with bias and no BN in the first block of a stage, identity otherwise),
then ReLU. The paddings are not "same" paddings: k=500/pad 250 and k=200/pad 100
each lengthen the signal by one pixel and k=15/pad 6 shortens it by two, so a
block maps 4618 -> 4619 -> 4620 -> 4618 and the sum lines up with the shortcut.
`FNetConfig` checks that any kernel/padding triple has that property.

With conv biases, BN (weight, bias) and the 1x1 shortcut biases, the published
configuration has exactly 10,171,944 trainable parameters (6,336,417 in the
convolutional trunk, 3,835,527 in the head), which the tests check.

The label scaling (z_min, z_max of the training set) is stored in the module as
buffers, so a state_dict carries it and `predict_z` needs nothing else.

Output heads. "regression" (published): one unit, MSE on min-max scaled z.
"bins": `n_bins` bins uniform in log(1+z) over [0, log(1 + z_max_bins)],
cross-entropy with label smoothing; z is the posterior-weighted mean of
log(1+z) within +-3 bins of the most probable bin, its uncertainty half the
68% interval of the posterior grown around that peak, and the next best local
maxima of the posterior (at least 6000 km/s apart) are the alternative
redshifts the app offers. Why offer it: a small z classifier learns in a few
CPU epochs what MSE regression of the same network had not learned after
many more (the commit log has the early measurements), and a classifier says
when two redshifts are plausible (line confusions such as MgII at z vs CIV at
a higher z), which a single regressed number averages.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .classes import CLASSES, N_CLASSES, QSO_INDICES, UNKNOWN
from .fftconv import CONV_IMPLS, DEFAULT_FFT_MIN_KERNEL, FFTConv1d
from .grid import FNET_NPIX
from .zbins import Alternatives, Decoded, ZBins, decode_posterior

PAPER_N_PARAMS = 10_171_944
OUTPUTS = ("regression", "bins")


# Where the class head sits: "shared" reads FNet's own last hidden layer; "twin" is a second FNet of the
# same config beside the redshift network, with its own class head and redshift head (see `FNet`).
CLASS_NETS = ("shared", "twin")


@dataclass(frozen=True)
class FNetConfig:
    """Every hyper-parameter of the FNet architecture.

    stages: (in_channels, out_channels, n_blocks) per stage; the first block of
    each stage has a 1x1 conv shortcut. head: hidden widths of the dense head
    after flattening (last stage's channels x trunk length), each followed by
    ReLU (and dropout if > 0), then a final Linear to the output.
    conv_impl: "auto" (FFT on CPU for kernels >= fft_min_kernel, else direct),
    "direct" or "fft"; it changes speed only, never weights or results (to ~1e-6).
    input_pool: AvgPool1d factor applied to the n_pix input before the trunk
    (1 = published: the trunk sees all 4618 pixels; 2 = 2309 pixels of 2e-4 dex).
    output: "regression" (published: 1 unit, MSE on min-max scaled z) or
    "bins" (n_bins logits over log(1+z) uniform on [0, log(1 + z_max_bins)],
    cross-entropy with `label_smoothing`).
    """

    n_pix: int = FNET_NPIX
    kernel_sizes: tuple[int, int, int] = (500, 200, 15)
    paddings: tuple[int, int, int] = (250, 100, 6)
    stages: tuple[tuple[int, int, int], ...] = ((1, 32, 5), (32, 64, 1), (64, 32, 1), (32, 1, 1))
    head: tuple[int, ...] = (796, 199)
    dropout: float = 0.0
    conv_impl: str = "auto"
    fft_min_kernel: int = DEFAULT_FFT_MIN_KERNEL
    bn_momentum: float = 0.1  # torch convention (Keras 0.99 == torch 0.01)
    bn_eps: float = 1e-5
    input_pool: int = 1
    output: str = "regression"
    n_bins: int = 400
    z_max_bins: float = 6.5
    label_smoothing: float = 0.05
    n_classes: int = 0
    class_weight: float = 1.0
    non_quasar_z_weight: float = 1.0
    class_net: str = "shared"

    def __post_init__(self) -> None:
        if len(self.kernel_sizes) != len(self.paddings):
            raise ValueError("kernel_sizes and paddings must have the same length")
        growth = sum(2 * p - k + 1 for k, p in zip(self.kernel_sizes, self.paddings))
        if growth != 0:
            raise ValueError(
                f"kernels {self.kernel_sizes} with paddings {self.paddings} change the length "
                f"by {growth:+d} per block; a residual block must keep it"
            )
        if self.input_pool < 1:
            raise ValueError("input_pool must be >= 1")
        lengths = [self.trunk_len]
        for k, p in zip(self.kernel_sizes, self.paddings):
            lengths.append(lengths[-1] + 2 * p - k + 1)
        if min(lengths) <= 0:
            raise ValueError(f"trunk length {self.trunk_len} too short for kernels {self.kernel_sizes}")
        if self.conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {CONV_IMPLS}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.output == "bins" and (self.n_bins < 8 or not self.z_max_bins > 0):
            raise ValueError("the bins output needs n_bins >= 8 and z_max_bins > 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError("label_smoothing must be in [0, 1)")
        if self.n_classes not in (0, N_CLASSES):
            raise ValueError(f"n_classes must be 0 (no class head) or {N_CLASSES} ({', '.join(CLASSES)})")
        if not self.class_weight >= 0:
            raise ValueError("class_weight must be >= 0")
        if not self.non_quasar_z_weight >= 0:
            raise ValueError("non_quasar_z_weight must be >= 0")
        if self.class_net not in CLASS_NETS:
            raise ValueError(f"class_net must be one of {CLASS_NETS}, got {self.class_net!r}")
        prev = self.stages[0][0]
        if prev != 1:
            raise ValueError("the first stage must take 1 input channel (the spectrum)")
        for cin, cout, nb in self.stages:
            if cin != prev or nb < 1:
                raise ValueError(f"stage {(cin, cout, nb)} does not follow a stage ending with {prev} channels")
            prev = cout

    @classmethod
    def paper(cls, **overrides: Any) -> FNetConfig:
        """The published network: 8 blocks, 24 large convolutions, 10,171,944 parameters, regression."""
        return replace(cls(), **overrides)

    @classmethod
    def small(cls, **overrides: Any) -> FNetConfig:
        """A CPU-trainable FNet (bins head): small enough to train on a laptop's cores in an afternoon
        (`python bench/fnet_speed.py` times a training step and inference).

        Kept from the paper: stages of residual blocks of three convolutions
        (long, medium, short kernel) with BN and ReLU, a 1x1 conv shortcut in
        the first block of a stage, stride 1 and no pooling inside the trunk,
        flatten + dense head, He-normal init.

        Different, and why:

        * input_pool=2: the 4618-pixel input is averaged in pairs (2e-4 dex,
          138 km/s pixels) before the trunk. Broad lines are thousands of km/s
          wide, so nothing the redshift needs is lost, and every convolution
          and the first dense layer cost half.
        * 8 channels, 3 blocks ((1->8) x2, (8->4) x1) instead of 32/64 channels
          and 8 blocks, and kernels (63, 31, 7) instead of (500, 200, 15): one
          block spans ~100 pooled pixels (~13,000 km/s), a broad line with its
          wings; the stack sees ~300 (~40,000 km/s). 61 MFLOP per spectrum
          (direct-convolution count) against the paper's 58.5 GFLOP.
        * the last stage ends with 4 channels, not 1: one channel has to say
          both where a line is and which line it is, and learns more slowly
          (the comparison is in the commit log).
        * output="bins": 400 bins of log(1+z) with cross-entropy; on a CPU
          budget a classifier converges in a few epochs where MSE regression
          needs many (see the module docstring), and it gives the posterior
          width and alternative redshifts.
        * head (256,): one wider hidden layer in front of the 400 logits.
        * fft_min_kernel=24: with 8 channels at 2309 pixels the FFT route
          wins for the long and medium kernels and loses for the short one
          (`python bench/fnet_speed.py` times both routes).
        """
        base = cls(
            kernel_sizes=(63, 31, 7),
            paddings=(31, 15, 3),
            stages=((1, 8, 2), (8, 4, 1)),
            head=(256,),
            input_pool=2,
            output="bins",
            fft_min_kernel=24,
        )
        return replace(base, **overrides)

    @property
    def trunk_len(self) -> int:
        """Pixels the trunk sees: n_pix // input_pool (AvgPool1d drops a remainder)."""
        return self.n_pix // self.input_pool

    @property
    def out_channels(self) -> int:
        return self.stages[-1][1]

    @property
    def n_out(self) -> int:
        """Width of the final Linear: 1 (regression) or n_bins."""
        return 1 if self.output == "regression" else self.n_bins

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of lists and scalars (safe for `torch.load(weights_only=True)` and JSON)."""
        d = asdict(self)
        d["kernel_sizes"] = list(self.kernel_sizes)
        d["paddings"] = list(self.paddings)
        d["stages"] = [list(s) for s in self.stages]
        d["head"] = list(self.head)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown FNetConfig fields: {sorted(unknown)}")
        kw = dict(d)
        for key in ("kernel_sizes", "paddings", "head"):
            if key in kw:
                kw[key] = tuple(int(v) for v in kw[key])
        if "stages" in kw:
            kw["stages"] = tuple(tuple(int(v) for v in s) for s in kw["stages"])
        return cls(**kw)


def _is_quasar(idx: torch.Tensor) -> torch.Tensor:
    """Whether each class index is a quasar class (`model.classes.is_qso_class` for tensors)."""
    return torch.isin(idx, torch.tensor(QSO_INDICES, device=idx.device, dtype=idx.dtype))


class ResBlock(nn.Module):
    """conv-BN-ReLU, conv-BN-ReLU, conv-BN, + shortcut, ReLU (see the module docstring)."""

    def __init__(self, cin: int, cout: int, cfg: FNetConfig, projection: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        n = len(cfg.kernel_sizes)
        for j, (k, p) in enumerate(zip(cfg.kernel_sizes, cfg.paddings)):
            layers.append(
                FFTConv1d(c, cout, k, padding=p, conv_impl=cfg.conv_impl, fft_min_kernel=cfg.fft_min_kernel)
            )
            layers.append(nn.BatchNorm1d(cout, eps=cfg.bn_eps, momentum=cfg.bn_momentum))
            if j < n - 1:
                layers.append(nn.ReLU(inplace=True))
            c = cout
        self.body = nn.Sequential(*layers)
        self.shortcut: nn.Module = nn.Conv1d(cin, cout, 1) if projection else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class FNet(nn.Module):
    """FNet: (B, n_pix) or (B, 1, n_pix) normalised flux -> the network output.

    `forward` returns the raw output: (B,) min-max scaled z for the regression
    head, (B, n_bins) logits for the bins head. `loss(output, z)` is the
    training loss for true redshifts z; `predict_z` returns redshift (float64)
    and `decode(output)` redshift, uncertainty and alternatives.
    The dense head always runs in float32 (also under bf16 autocast): a scaled
    z in bfloat16 would carry only ~3 significant digits.
    """

    def __init__(self, cfg: FNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FNetConfig.paper()
        self.pool: nn.Module = nn.AvgPool1d(cfg.input_pool) if cfg.input_pool > 1 else nn.Identity()
        blocks: list[nn.Module] = []
        for cin, cout, nb in cfg.stages:
            for b in range(nb):
                blocks.append(ResBlock(cin if b == 0 else cout, cout, cfg, projection=(b == 0)))
        self.trunk = nn.Sequential(*blocks)
        head: list[nn.Module] = [nn.Flatten()]
        width = cfg.out_channels * cfg.trunk_len
        for h in cfg.head:
            head += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            if cfg.dropout > 0:
                head.append(nn.Dropout(cfg.dropout))
            width = h
        head.append(nn.Linear(width, cfg.n_out))
        self.head = nn.Sequential(*head)
        # the class head reads the same last hidden layer as the redshift output, or sits in a twin network
        twin = cfg.n_classes > 0 and cfg.class_net == "twin"
        self.class_head: nn.Module | None = nn.Linear(width, cfg.n_classes) if cfg.n_classes and not twin else None
        self.twin: FNet | None = FNet(replace(cfg, class_net="shared")) if twin else None
        self.redshift_frozen = False
        self.register_buffer("z_min", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("z_max", torch.tensor(1.0, dtype=torch.float64))
        self.bins = ZBins.of(cfg) if cfg.output == "bins" else None
        self.provenance: dict[str, Any] = {}  # filled by training / load_checkpoint; not in the state dict
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal (Kaiming, fan_in, ReLU gain) weights, zero biases, BN (1, 0)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.shape[-1] != self.cfg.n_pix or x.shape[1] != 1:
            raise ValueError(f"expected (B, 1, {self.cfg.n_pix}) input, got {tuple(x.shape)}")
        feat = self.hidden(x)  # the trunk under any autocast, the dense head in float32
        with torch.autocast(x.device.type, enabled=False):
            out = self.head[-1](feat)
            if self.twin is not None:  # [redshift | the twin's redshift | class logits]
                return torch.cat([out, self.twin(x)], dim=-1)
            if self.class_head is not None:
                return torch.cat([out, self.class_head(feat)], dim=-1)
        return out.squeeze(-1) if self.cfg.output == "regression" else out

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (B, width), float32: what the redshift output and the class head read."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        h = self.trunk(self.pool(x))
        with torch.autocast(h.device.type, enabled=False):
            return self.head[:-1](h.float())

    # the parts of an output ----------------------------------------------
    @property
    def has_classes(self) -> bool:
        return self.class_head is not None or self.twin is not None

    def z_part(self, out: torch.Tensor) -> torch.Tensor:
        """The redshift output: (B,) scaled z (regression) or (B, n_bins) logits.

        With a twin, the bins head gives the posterior over z marginalised over the class,
        P(z) = p_qso P_quasar-network(z) + (1 - p_qso) P_twin(z) (as log-probabilities): a star or a
        galaxy keeps a z of its own, a quasar's comes from the network trained on quasars alone, and
        where the class is in doubt both answers stay in the posterior, the less likely one as an
        alternative. A regression twin takes the z of the called class.
        """
        if not self.has_classes:
            return out
        n = self.cfg.n_out
        zo = out[..., :n]
        if self.twin is not None:
            other = out[..., n : 2 * n]
            if self.cfg.output == "regression":
                zo = torch.where(self.called_quasar(out).unsqueeze(-1), zo, other)
            else:
                pq = self.p_qso(out).unsqueeze(-1)
                mix = pq * torch.softmax(zo.double(), dim=-1) + (1 - pq) * torch.softmax(other.double(), dim=-1)
                zo = torch.log(mix.clamp_min(1e-300)).to(zo.dtype)
        return zo.squeeze(-1) if self.cfg.output == "regression" else zo

    def class_logits(self, out: torch.Tensor) -> torch.Tensor | None:
        """(B, n_classes) class logits in the order of `model.classes.CLASSES`; None without a class head."""
        return out[..., -self.cfg.n_classes :] if self.has_classes else None

    def p_qso(self, out: torch.Tensor) -> torch.Tensor:
        """(B,) float64 P(QSO) + P(BAL) from the class logits."""
        prob = torch.softmax(self.class_logits(out).double(), dim=-1)
        return prob[..., list(QSO_INDICES)].sum(dim=-1)

    def called_quasar(self, out: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the most probable class is a quasar one (what `fnet_class` shows)."""
        return _is_quasar(self.class_logits(out).argmax(dim=-1))

    def freeze_redshift(self) -> None:
        """Train only the twin from now on: the redshift network keeps its weights and its batch-norm
        statistics, so a class stage cannot cost the quasars' redshifts anything."""
        if self.twin is None:
            raise ValueError("only a model with a twin class network can freeze its redshift network")
        for name, p in self.named_parameters():
            if not name.startswith("twin."):
                p.requires_grad_(False)
        self.redshift_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> FNet:
        super().train(mode)
        if self.redshift_frozen:
            for part in (self.pool, self.trunk, self.head):
                part.eval()
        return self

    def class_prob(self, out: torch.Tensor) -> np.ndarray | None:
        """(B, n_classes) class probabilities (float64 numpy); None without a class head."""
        logits = self.class_logits(out)
        return None if logits is None else torch.softmax(logits.detach().double(), dim=-1).cpu().numpy()

    # labels and loss -----------------------------------------------------
    def target(self, z: torch.Tensor) -> torch.Tensor:
        """What the output is trained towards: scaled z (float32) or the bin index (int64)."""
        if self.bins is None:
            return self.scale_z(z)
        return torch.from_numpy(self.bins.index(z.detach().cpu().numpy())).to(z.device)

    def loss(self, out: torch.Tensor, z: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        """Redshift loss (MSE on the scaled z, or label-smoothed cross-entropy over the bins) on the rows
        with a finite z, plus `class_weight` x cross-entropy of the class head on the rows with a class.

        Rows without a redshift (a spectrum with nothing in it has none) still teach the class head, and
        stars and galaxies teach the redshift head their own z, so a non-quasar keeps a z of its own;
        their redshift loss counts `non_quasar_z_weight` times a quasar's, since the quasars' z is what
        the network is for and a star's or galaxy's is the easier, secondary answer.
        """
        if self.twin is not None:
            return self._twin_loss(out, z, cls)
        zo = self.z_part(out).float()
        has_z = torch.isfinite(z)
        if bool(has_z.any()):
            per_row = self._z_loss(zo[has_z], z[has_z])
            weight = self._z_weights(cls, has_z)
            loss = (per_row if weight is None else per_row * weight).sum() / z.numel()
        else:
            loss = zo.sum() * 0.0
        logits = self.class_logits(out)
        if logits is not None and cls is not None and bool((cls != UNKNOWN).any()):
            ce = F.cross_entropy(logits.float(), cls.long(), ignore_index=UNKNOWN, reduction="sum")
            loss = loss + self.cfg.class_weight * ce / cls.numel()
        return loss

    def _twin_loss(self, out: torch.Tensor, z: torch.Tensor, cls: torch.Tensor | None) -> torch.Tensor:
        """The redshift network's loss on the quasars (and rows of unknown class) plus the twin's own loss."""
        n = self.cfg.n_out
        zo = out[..., :n].float()
        zo = zo.squeeze(-1) if self.cfg.output == "regression" else zo
        use = torch.isfinite(z)
        if cls is not None:
            use &= (cls == UNKNOWN) | _is_quasar(cls)
        loss = self._z_loss(zo[use], z[use]).sum() / z.numel() if bool(use.any()) else zo.sum() * 0.0
        return loss + self.twin.loss(out[..., n:], z, cls)

    def _z_weights(self, cls: torch.Tensor | None, has_z: torch.Tensor) -> torch.Tensor | None:
        """Per-row weight of the redshift loss on the rows with a z; None where every row weighs 1."""
        if cls is None or self.cfg.non_quasar_z_weight == 1.0:
            return None
        known = cls[has_z]
        non_quasar = (known != UNKNOWN) & ~_is_quasar(known)
        return torch.where(non_quasar, self.cfg.non_quasar_z_weight, 1.0).float()

    def _z_loss(self, zo: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-row redshift loss."""
        t = self.target(z)
        if self.bins is None:
            return F.mse_loss(zo, t, reduction="none")
        return F.cross_entropy(zo, t, label_smoothing=self.cfg.label_smoothing, reduction="none")

    # label scaling -------------------------------------------------------
    def set_label_scaling(self, z_min: float, z_max: float) -> None:
        if not z_max > z_min:
            z_max = z_min + 1.0
        self.z_min.fill_(float(z_min))
        self.z_max.fill_(float(z_max))

    def scale_z(self, z: torch.Tensor) -> torch.Tensor:
        return ((z.double() - self.z_min) / (self.z_max - self.z_min)).float()

    def unscale_z(self, y: torch.Tensor) -> torch.Tensor:
        return y.double() * (self.z_max - self.z_min) + self.z_min

    # prediction ----------------------------------------------------------
    def output_z(self, out: torch.Tensor) -> torch.Tensor:
        """Redshift (float64 tensor) from a forward output; cheaper than `decode` (no width, no alternatives)."""
        out = self.z_part(out)
        if self.bins is None:
            return self.unscale_z(out)
        prob = torch.softmax(out.double(), dim=-1).cpu().numpy()
        return torch.from_numpy(decode_posterior(prob, self.bins, n_alt=0).z)

    def predict_z(self, x: torch.Tensor) -> torch.Tensor:
        """Redshift (float64) for a batch of normalised spectra, in whatever mode the module is in."""
        return self.output_z(self(x))

    def decode(self, out: torch.Tensor, n_alt: int = 3) -> Decoded:
        """z, z_err, alternatives (numpy) from a forward output; z_err and alternatives NaN for regression."""
        out = self.z_part(out)
        if self.bins is None:
            z = self.unscale_z(out).detach().cpu().numpy()
            return Decoded(z, np.full(z.shape, np.nan), Alternatives.empty(z.shape[0], n_alt))
        return self.bins_decode(out, n_alt)

    def bins_decode(self, z_logits: torch.Tensor, n_alt: int = 3) -> Decoded:
        """`decode` of the bins head's own (B, n_bins) logits or log-probabilities."""
        prob = torch.softmax(z_logits.detach().double(), dim=-1).cpu().numpy()
        return decode_posterior(prob, self.bins, n_alt=n_alt)

    # speed knobs ---------------------------------------------------------
    def set_conv_impl(self, conv_impl: str) -> None:
        """Switch every large convolution between "auto", "direct" and "fft" in place."""
        if conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {CONV_IMPLS}")
        for m in self.modules():
            if isinstance(m, FFTConv1d):
                m.conv_impl = conv_impl
        self.cfg = replace(self.cfg, conv_impl=conv_impl)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "FNet", "FNetConfig", "ResBlock", "ZBins", "Alternatives", "Decoded", "decode_posterior",
    "count_parameters", "PAPER_N_PARAMS",
]
