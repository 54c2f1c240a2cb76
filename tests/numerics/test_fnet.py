"""FNet architecture, the FFT convolution, training and checkpoints (CPU, a few seconds each)."""

import numpy as np
import pytest
import torch
from torch import nn

from model.fftconv import FFTConv1d, fft_conv1d, next_fast_len
from model.fnet import PAPER_N_PARAMS, FNet, FNetConfig, ZBins, count_parameters, decode_posterior
from model.grid import FNET_NPIX

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = FNetConfig(kernel_sizes=(31, 15, 3), paddings=(15, 7, 1), stages=((1, 4, 1), (4, 1, 1)), head=(16,))


def test_paper_parameter_count():
    cfg = FNetConfig.paper()
    assert cfg == FNetConfig()
    m = FNet(cfg)
    assert count_parameters(m) == PAPER_N_PARAMS == 10_171_944
    # 24 large convolutions + 4 shortcut 1x1 convolutions, stride 1
    convs = [c for c in m.modules() if isinstance(c, FFTConv1d)]
    assert len(convs) == 24
    assert sorted({c.kernel_size[0] for c in convs}) == [15, 200, 500]


def test_block_lengths_and_bad_padding():
    # 4618 -> 4619 (k500 p250) -> 4620 (k200 p100) -> 4618 (k15 p6)
    n = FNET_NPIX
    for k, p, d in zip((500, 200, 15), (250, 100, 6), (1, 1, -2)):
        assert n + 2 * p - k + 1 == n + d
        n += d
    assert n == FNET_NPIX
    with pytest.raises(ValueError, match="change the length"):
        FNetConfig(paddings=(250, 100, 7))


@pytest.mark.parametrize("cin,cout,k,pad", [(1, 32, 500, 250), (32, 32, 200, 100), (32, 32, 15, 6), (32, 64, 500, 250)])
def test_fft_conv_equals_direct(cin, cout, k, pad):
    torch.manual_seed(k + cin)
    conv = FFTConv1d(cin, cout, k, padding=pad, conv_impl="fft")
    ref = nn.Conv1d(cin, cout, k, padding=pad)
    ref.load_state_dict(conv.state_dict())  # same keys, same shapes
    x = torch.randn(2, cin, FNET_NPIX)
    with torch.no_grad():
        y_fft, y_ref = conv(x), ref(x)
    assert y_fft.shape == y_ref.shape == (2, cout, FNET_NPIX + 2 * pad - k + 1)
    assert (y_fft - y_ref).abs().max() / y_ref.abs().max() < 1e-4
    conv.conv_impl = "direct"
    with torch.no_grad():
        assert torch.equal(conv(x), y_ref)


def test_fft_conv_gradients_match():
    torch.manual_seed(0)
    w = torch.randn(8, 4, 200, requires_grad=True)
    b = torch.randn(8, requires_grad=True)
    x = torch.randn(2, 4, 700, requires_grad=True)
    g = torch.randn(2, 8, 601)
    grads = []
    for f in (lambda: fft_conv1d(x, w, b, 50), lambda: torch.nn.functional.conv1d(x, w, b, padding=50)):
        for t in (w, b, x):
            t.grad = None
        (f() * g).sum().backward()
        grads.append([t.grad.clone() for t in (w, b, x)])
    for a, r in zip(*grads):
        assert (a - r).abs().max() / r.abs().max() < 1e-4


def test_auto_impl_and_cache():
    c = FFTConv1d(2, 3, 101, padding=50)
    small = FFTConv1d(2, 3, 15, padding=7)
    x = torch.randn(1, 2, 300)
    assert c.uses_fft(x) and not small.uses_fft(x)
    with torch.no_grad():
        y1 = c(x)
        assert c._wf_cache is not None
        c.weight.mul_(2.0)  # bumps the version counter: cache must not be reused
        c.bias.mul_(2.0)
        assert torch.allclose(c(x), 2 * y1, atol=1e-5)
    assert next_fast_len(5118) == 5120 and next_fast_len(4619) == 4800


def test_paper_fnet_output_shape():
    m = FNet(FNetConfig.paper()).eval()
    with torch.inference_mode():
        y = m(torch.rand(1, FNET_NPIX))
    assert y.shape == (1,) and torch.isfinite(y).all()
    # every block keeps the length 4618
    x = torch.rand(1, 1, FNET_NPIX)
    with torch.inference_mode():
        for block in m.trunk:
            x = block(x)
            assert x.shape[-1] == FNET_NPIX
    assert x.shape == (1, 1, FNET_NPIX)


def test_fnet_output_shape_and_impls_agree():
    m = FNet(FNetConfig.small()).eval()
    x = torch.rand(3, FNET_NPIX)
    with torch.no_grad():
        y = m(x)
        assert y.shape == (3, 400)
        assert m(x.unsqueeze(1)).shape == (3, 400)
        m.set_conv_impl("direct")
        y_direct = m(x)
    assert torch.allclose(y, y_direct, rtol=1e-4, atol=1e-4 * y.abs().max().item())
    with pytest.raises(ValueError):
        m(torch.rand(2, 100))


def test_small_config():
    cfg = FNetConfig.small()
    assert (cfg.output, cfg.n_bins, cfg.input_pool, cfg.trunk_len) == ("bins", 400, 2, FNET_NPIX // 2)
    m = FNet(cfg)
    assert count_parameters(m) == 2_479_728
    # the published topology: residual blocks of 3 convs + BN, 1x1 shortcuts, flatten + dense head
    assert all(len([c for c in b.body if isinstance(c, nn.BatchNorm1d)]) == 3 for b in m.trunk)
    assert isinstance(m.trunk[0].shortcut, nn.Conv1d) and isinstance(m.trunk[2].shortcut, nn.Conv1d)
    assert cfg.out_channels == 4 and m.head[1].in_features == 4 * FNET_NPIX // 2
    assert FNetConfig.small(output="regression").n_out == 1
    assert FNetConfig.from_dict(cfg.to_dict()) == cfg
    # old checkpoints (no output / input_pool fields) read as the published regression network
    old = {k: v for k, v in FNetConfig.paper().to_dict().items() if k not in ("output", "input_pool", "n_bins")}
    assert FNetConfig.from_dict(old) == FNetConfig.paper()
    with pytest.raises(ValueError, match="output"):
        FNetConfig(output="softmax")


def test_head_stays_float32_under_autocast():
    m = FNet(FNetConfig.small(output="regression")).eval()
    x = torch.rand(2, FNET_NPIX)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.float32


def _gauss_posterior(bins, comps, floor=1e-5):
    """Posterior over the bins: sum of (weight, z, sigma in log(1+z)) Gaussians plus a flat floor."""
    p = np.full(bins.n, float(floor))
    for w, z, s in comps:
        g = np.exp(-0.5 * ((bins.centers - np.log1p(z)) / s) ** 2)
        p += w * g / g.sum()
    return p / p.sum()


def test_bins_decoding_two_peaks():
    bins = ZBins(400, 6.5)
    assert bins.index(np.array([-0.1, 0.0, 6.5, 9.0])).tolist() == [0, 0, 399, 399]
    assert bins.index(np.expm1(bins.centers[[5, 200]])).tolist() == [5, 200]
    # main peak at z = 2.0 (60%), a rival at z = 1.2 (30%: e.g. MgII taken for CIII]), a tiny bump at 4.0
    sig = 0.004
    p = _gauss_posterior(bins, [(0.6, 2.0, sig), (0.3, 1.2, sig), (0.003, 4.0, sig)], floor=0.097 / 400)
    d = decode_posterior(p[None], bins)
    assert d.z[0] == pytest.approx(2.0, abs=3e-3)
    assert d.alternatives.z[0, 0] == pytest.approx(1.2, abs=3e-3)
    assert d.alternatives.p[0, 0] == pytest.approx(0.3, abs=0.03)
    assert d.alternatives.p_z[0] == pytest.approx(0.6, abs=0.05)
    assert np.isnan(d.alternatives.z[0, 1:]).all()  # the 0.3% bump is below min_alt_prob
    assert np.nansum(d.alternatives.p) + d.alternatives.p_z[0] < 1
    # 60% + 30% in two peaks: the 68% interval must reach the second peak
    assert d.z_err[0] > (2.0 - 1.2) / 2 * 0.9
    # one Gaussian peak: z_err = the 1-sigma half width, in z
    wide = 0.02
    d1 = decode_posterior(_gauss_posterior(bins, [(1.0, 2.0, wide)], floor=0)[None], bins)
    assert abs(np.log1p(d1.z[0]) - np.log1p(2.0)) < 0.5 * bins.width  # a wide peak, a +-3-bin window
    assert d1.z_err[0] == pytest.approx(3.0 * wide, rel=0.1)
    assert np.isnan(d1.alternatives.z[0]).all()
    # a delta in one bin: z is the bin centre, z_err a fraction of the bin
    delta = np.zeros(400)
    delta[123] = 1.0
    d2 = decode_posterior(delta[None], bins)
    assert d2.z[0] == pytest.approx(np.expm1(bins.centers[123]))
    assert 0 < d2.z_err[0] < (1 + d2.z[0]) * bins.width


def test_bins_alternatives_separated():
    bins = ZBins(400, 6.5)
    # two maxima 3 bins (~4,500 km/s) apart count as one; a third far away is an alternative
    p = _gauss_posterior(bins, [(0.5, 2.0, 0.002), (0.25, np.expm1(np.log1p(2.0) + 3 * bins.width), 0.002),
                                (0.2, 0.8, 0.002)])  # fmt: skip
    d = decode_posterior(p[None], bins)
    alt = d.alternatives.z[0]
    assert alt[0] == pytest.approx(0.8, abs=3e-3)
    c = 299792.458
    assert all(abs(np.log1p(a) - np.log1p(d.z[0])) * c >= 6000 for a in alt[np.isfinite(alt)])


def test_regression_decode_has_no_alternatives():
    m = FNet(FNetConfig(kernel_sizes=(31, 15, 3), paddings=(15, 7, 1), stages=((1, 2, 1), (2, 1, 1)), head=(8,)))
    d = m.decode(torch.tensor([0.5, 0.25]))
    assert d.z.shape == (2,) and np.isnan(d.z_err).all() and np.isnan(d.alternatives.z).all()


def test_cached_weight_spectrum_outside_inference_mode():
    c = FFTConv1d(2, 3, 101, padding=50)
    x = torch.randn(1, 2, 300)
    with torch.inference_mode():
        y = c(x)
    c.weight.requires_grad_(False)  # frozen layer, input needing grad: the cache is used with autograd
    xg = x.clone().requires_grad_(True)
    out = c(xg)
    out.sum().backward()
    assert torch.allclose(out.detach(), y, atol=1e-5) and xg.grad is not None
