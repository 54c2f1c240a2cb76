"""FNet architecture, the FFT convolution, training and checkpoints (CPU, a few seconds each)."""

import numpy as np
import pytest
import torch
from torch import nn

from model.fftconv import FFTConv1d, fft_conv1d, next_fast_len
from model.fnet import PAPER_N_PARAMS, FNet, FNetConfig, count_parameters
from model.grid import FNET_LOGLAM, FNET_NPIX
from model.train import load_checkpoint, predict, save_checkpoint, train


@pytest.fixture(autouse=True, scope="module")
def _threads():
    # one thread: on a shared 2-core machine two OpenMP threads stall in barriers
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


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
        assert y.shape == (3,)
        assert m(x.unsqueeze(1)).shape == (3,)
        m.set_conv_impl("direct")
        y_direct = m(x)
    assert torch.allclose(y, y_direct, rtol=1e-4, atol=1e-4 * y.abs().max().item())
    with pytest.raises(ValueError):
        m(torch.rand(2, 100))


def _synthetic(n, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.5, 3.0, n)
    flux = np.ones((n, FNET_NPIX), np.float32)
    for i in range(n):
        for line in (1215.67, 1549.06, 1908.73, 2798.75, 4862.68, 6564.61):
            flux[i] += 3 * np.exp(-0.5 * ((FNET_LOGLAM - np.log10(line * (1 + z[i]))) / 0.002) ** 2)
    flux += 0.05 * rng.standard_normal(flux.shape).astype(np.float32)
    return flux, z


def test_tiny_config_overfits():
    flux, z = _synthetic(8)
    model, hist = train(TINY, flux, z, epochs=25, batch_size=8, lr=3e-3, progress=False, seed=0)
    assert len(hist) == 25
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] / 10
    assert float(model.z_min) == pytest.approx(z.min()) and float(model.z_max) == pytest.approx(z.max())


def test_checkpoint_round_trip(tmp_path):
    flux, z = _synthetic(6, seed=1)
    model, hist = train(TINY, flux, z, flux, z, epochs=2, batch_size=3, progress=False)
    p = save_checkpoint(tmp_path / "m.pt", model, metrics={"val_acc@6000": np.float64(12.5)}, history=hist)
    loaded, meta = load_checkpoint(p)
    assert loaded.cfg == TINY
    assert meta["metrics"] == {"val_acc@6000": 12.5}
    assert meta["label_scaling"] == {"z_min": float(z.min()), "z_max": float(z.max())}
    assert len(meta["history"]) == 2 and "val_acc@6000" in meta["history"][0]
    assert np.array_equal(predict(model, flux), predict(loaded, flux))
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


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
