"""FNet (Rastegar Nia et al. 2022, arXiv 2201.03393) in torch.

A 1-D ResNet with stride 1 and no pooling over the 4618-pixel FNet grid,
then a dense head to one number, the min-max scaled redshift.

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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from .fftconv import CONV_IMPLS, DEFAULT_FFT_MIN_KERNEL, FFTConv1d
from .grid import FNET_NPIX

PAPER_N_PARAMS = 10_171_944


@dataclass(frozen=True)
class FNetConfig:
    """Every hyper-parameter of the FNet architecture.

    stages: (in_channels, out_channels, n_blocks) per stage; the first block of
    each stage has a 1x1 conv shortcut. head: hidden widths of the dense head
    after flattening (last stage's channels x n_pix), each followed by ReLU
    (and dropout if > 0), then a final Linear to 1.
    conv_impl: "auto" (FFT on CPU for kernels >= fft_min_kernel, else direct),
    "direct" or "fft"; it changes speed only, never weights or results (to ~1e-6).
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

    def __post_init__(self) -> None:
        if len(self.kernel_sizes) != len(self.paddings):
            raise ValueError("kernel_sizes and paddings must have the same length")
        growth = sum(2 * p - k + 1 for k, p in zip(self.kernel_sizes, self.paddings))
        if growth != 0:
            raise ValueError(
                f"kernels {self.kernel_sizes} with paddings {self.paddings} change the length "
                f"by {growth:+d} per block; a residual block must keep it"
            )
        lengths = [self.n_pix]
        for k, p in zip(self.kernel_sizes, self.paddings):
            lengths.append(lengths[-1] + 2 * p - k + 1)
        if min(lengths) <= 0:
            raise ValueError(f"n_pix {self.n_pix} too short for kernels {self.kernel_sizes}")
        if self.conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {CONV_IMPLS}")
        prev = self.stages[0][0]
        if prev != 1:
            raise ValueError("the first stage must take 1 input channel (the spectrum)")
        for cin, cout, nb in self.stages:
            if cin != prev or nb < 1:
                raise ValueError(f"stage {(cin, cout, nb)} does not follow a stage ending with {prev} channels")
            prev = cout

    @classmethod
    def paper(cls, **overrides: Any) -> FNetConfig:
        """The published network: 8 blocks, 24 large convolutions, 10,171,944 parameters."""
        return replace(cls(), **overrides)

    @classmethod
    def small(cls, **overrides: Any) -> FNetConfig:
        """A CPU-trainable variant (~0.3 M parameters, ~7 ms per spectrum per training step on one core).

        Same topology (stages of residual blocks of three convs, stride 1, no
        pooling, the last stage down to 1 channel, flatten + dense head), but 8
        channels, 3 blocks ((1->8) x2, (8->1) x1) and kernels (127, 65, 7) with
        length-keeping paddings (63, 32, 3). One block spans 197 pixels
        (13,600 km/s), so a broad line ~100 px wide fits inside one block's view
        and the stack sees ~590 px; both long kernels take the FFT path under
        "auto" on CPU.
        """
        base = cls(
            kernel_sizes=(127, 65, 7),
            paddings=(63, 32, 3),
            stages=((1, 8, 2), (8, 1, 1)),
            head=(64, 32),
        )
        return replace(base, **overrides)

    @property
    def out_channels(self) -> int:
        return self.stages[-1][1]

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
    """FNet: (B, n_pix) or (B, 1, n_pix) normalised flux -> (B,) scaled redshift.

    `forward` returns the network output in label units (min-max scaled z);
    `predict_z` returns redshift, using the `z_min` / `z_max` buffers.
    """

    def __init__(self, cfg: FNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FNetConfig.paper()
        blocks: list[nn.Module] = []
        for cin, cout, nb in cfg.stages:
            for b in range(nb):
                blocks.append(ResBlock(cin if b == 0 else cout, cout, cfg, projection=(b == 0)))
        self.trunk = nn.Sequential(*blocks)
        head: list[nn.Module] = [nn.Flatten()]
        width = cfg.out_channels * cfg.n_pix
        for h in cfg.head:
            head += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            if cfg.dropout > 0:
                head.append(nn.Dropout(cfg.dropout))
            width = h
        head.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*head)
        self.register_buffer("z_min", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("z_max", torch.tensor(1.0, dtype=torch.float64))
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
        return self.head(self.trunk(x)).squeeze(-1)

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

    def predict_z(self, x: torch.Tensor) -> torch.Tensor:
        """Redshift (float64) for a batch of normalised spectra, in whatever mode the module is in."""
        return self.unscale_z(self(x))

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


__all__ = ["FNet", "FNetConfig", "ResBlock", "count_parameters", "PAPER_N_PARAMS"]
