"""A Conv1d that can compute itself with FFTs: same module, same weights, same output.

FNet's convolutions have kernels of 500 and 200 pixels over 4618 pixels. Done
directly that is ~58 GFLOP per spectrum; on a CPU the FFT route (rfft,
multiply and sum over input channels per frequency, irfft, crop) costs a small
fraction of it. On CUDA cuDNN's direct kernels are fast and support bf16, so
"auto" keeps the direct path there.

`FFTConv1d` subclasses `nn.Conv1d`, so its parameters and state_dict keys
(`weight`, `bias`) are those of `nn.Conv1d`: checkpoints move freely between
implementations, and `conv_impl` can be switched at any time.

Only the FNet case is computed by FFT: stride 1, dilation 1, groups 1, integer
zero padding. Anything else falls back to the direct convolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONV_IMPLS = ("auto", "direct", "fft")
# On the 2-core development CPU (8-32 channels, 4618 px, training step, 1 thread)
# the FFT route was ~2.4x faster than oneDNN's direct convolution at k=65 and
# ~20% slower at k=7; the paper's k=15 stays direct, k=200/500 go FFT.
DEFAULT_FFT_MIN_KERNEL = 64


def next_fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (sizes pocketfft / cuFFT handle fastest)."""
    best = 1 << max(0, (n - 1).bit_length())  # a power of two always qualifies
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def fft_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: int = 0,
    weight_fft: torch.Tensor | None = None,
) -> torch.Tensor:
    """`F.conv1d(x, weight, bias, padding=padding)` (stride 1, groups 1) computed by FFT.

    x: (B, C_in, L); weight: (C_out, C_in, K). Output (B, C_out, L + 2 padding - K + 1).
    Computed in float32 (or float64 if given float64); the result has x's dtype.
    `weight_fft` may pass a precomputed `weight_spectrum(weight, fft_size(L, padding), padding)`.
    """
    out_dtype = x.dtype
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    xw = x.to(work)
    b, c_in, length = xw.shape
    c_out, c_in_w, k = weight.shape
    if c_in_w != c_in:
        raise ValueError(f"input has {c_in} channels, weight expects {c_in_w}")
    l_out = length + 2 * padding - k + 1
    if l_out <= 0:
        raise ValueError(f"kernel {k} longer than the padded input {length + 2 * padding}")
    if not 0 <= padding <= k - 1:
        raise ValueError(f"padding {padding} outside 0..{k - 1}")
    # Circular cross-correlation of x zero-extended to n with the kernel placed at
    # offsets -padding .. k-1-padding (see `weight_spectrum`). Output position t
    # reads x at t-padding .. t+k-1-padding, i.e. indices -padding .. length+padding-1:
    # all either data or zeros (no wrap into data) as long as n >= length + padding.
    # So the zero padding costs nothing and needs no copy of x.
    n = fft_size(length, padding)
    xf = torch.fft.rfft(xw, n=n)  # (B, C_in, F)
    nf = xf.shape[-1]
    wf = weight_fft if weight_fft is not None else weight_spectrum(weight.to(work), n, padding)
    # y[b, o, f] = sum_i x[b, i, f] conj(w[o, i, f]): one real batched matmul over
    # frequencies, [Re x, Im x] @ [[Re w*, Im w*], [-Im w*, Re w*]] (faster on CPU
    # than a complex matmul)
    xr = torch.view_as_real(xf).permute(2, 0, 3, 1).reshape(nf, b, 2 * c_in)
    yr = torch.bmm(xr, wf)  # (F, B, 2 C_out)
    yf = torch.view_as_complex(yr.reshape(nf, b, 2, c_out).permute(1, 3, 0, 2).contiguous())
    y = torch.fft.irfft(yf, n=n)[..., :l_out]
    if bias is not None:
        y = y + bias.to(work)[None, :, None]
    return y.to(out_dtype)


def fft_size(length: int, padding: int) -> int:
    """FFT length `fft_conv1d` uses for an input of `length` pixels."""
    return next_fast_len(length + padding)


def weight_spectrum(weight: torch.Tensor, n: int, padding: int = 0) -> torch.Tensor:
    """The weight as `fft_conv1d` multiplies it: (F, 2 C_in, 2 C_out) real, F = n // 2 + 1.

    The kernel tap j sits at offset j - padding (mod n); this is the real form of
    multiplying by conj(rfft) of that, summed over input channels.
    """
    k = weight.shape[-1]
    wpad = torch.roll(F.pad(weight, (0, n - k)), shifts=-padding, dims=-1)
    wc = torch.fft.rfft(wpad).conj().permute(2, 1, 0)  # (F, C_in, C_out)
    wr, wi = wc.real, wc.imag
    return torch.cat([torch.cat([wr, wi], dim=-1), torch.cat([-wi, wr], dim=-1)], dim=-2).contiguous()


class FFTConv1d(nn.Conv1d):
    """`nn.Conv1d` that computes stride-1 convolutions by FFT where that pays.

    conv_impl: "direct" (always `F.conv1d`), "fft" (always FFT where the layer
    supports it), "auto" (FFT on CPU for kernels >= fft_min_kernel, direct on
    CUDA and for small kernels). In eval / no-grad use the weight spectrum is
    cached, keyed on the weight's storage and version counter.
    """

    def __init__(
        self,
        *args,
        conv_impl: str = "auto",
        fft_min_kernel: int = DEFAULT_FFT_MIN_KERNEL,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")
        self.conv_impl = conv_impl
        self.fft_min_kernel = int(fft_min_kernel)
        self._wf_cache: tuple[tuple, torch.Tensor] | None = None

    @property
    def fft_capable(self) -> bool:
        return (
            self.stride == (1,)
            and self.dilation == (1,)
            and self.groups == 1
            and self.padding_mode == "zeros"
            and isinstance(self.padding, tuple)
            and isinstance(self.padding[0], int)
            and 0 <= self.padding[0] <= self.kernel_size[0] - 1
        )

    def uses_fft(self, x: torch.Tensor) -> bool:
        """Whether forward(x) takes the FFT path."""
        if not self.fft_capable or self.conv_impl == "direct":
            return False
        if self.conv_impl == "fft":
            return True
        return x.device.type == "cpu" and self.kernel_size[0] >= self.fft_min_kernel

    def _weight_fft(self, n: int, pad: int, work: torch.dtype) -> torch.Tensor | None:
        w = self.weight
        if torch.is_grad_enabled() and w.requires_grad:
            return None  # training: let autograd see the weight FFT
        key = (w.data_ptr(), w._version, n, pad, w.device, work)
        if self._wf_cache is not None and self._wf_cache[0] == key:
            return self._wf_cache[1]
        with torch.inference_mode(False), torch.no_grad():  # a normal tensor, usable outside inference mode
            wf = weight_spectrum(w.detach().to(work), n, pad)
        self._wf_cache = (key, wf)
        return wf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.uses_fft(x):
            return super().forward(x)
        pad = self.padding[0]
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        n = fft_size(x.shape[-1], pad)
        return fft_conv1d(x, self.weight, self.bias, pad, weight_fft=self._weight_fft(n, pad, work))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", conv_impl={self.conv_impl!r}"

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .half() ... drop the cache
        self._wf_cache = None
        return super()._apply(fn, *args, **kwargs)
