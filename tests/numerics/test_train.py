"""FNet training: overfitting, checkpoints, resume == uninterrupted, seeded reproducibility, balanced z."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from synthetic import line_spectra

from model.checkpoint import data_hash, read_checkpoint
from model.fnet import FNetConfig
from model.train import balanced_weights, epoch_order, load_checkpoint, predict, save_checkpoint, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = FNetConfig(kernel_sizes=(31, 15, 3), paddings=(15, 7, 1), stages=((1, 4, 1), (4, 1, 1)), head=(16,))
TINY_BINS = replace(TINY, output="bins", n_bins=64, z_max_bins=4.0, input_pool=4, dropout=0.2)


synthetic = line_spectra


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_config_overfits():
    flux, z = synthetic(8)
    model, hist = train(TINY, flux, z, epochs=25, batch_size=8, lr=3e-3, progress=False, seed=0, device="cpu")
    assert len(hist) == 25
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] / 10
    assert float(model.z_min) == pytest.approx(z.min()) and float(model.z_max) == pytest.approx(z.max())


def test_tiny_bins_head_overfits():
    flux, z = synthetic(16, seed=2)
    cfg = replace(TINY_BINS, dropout=0.0, label_smoothing=0.0)
    _, hist = train(cfg, flux, z, flux, z, epochs=30, batch_size=8, lr=3e-3, progress=False, device="cpu")
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] / 10
    assert hist[-1]["val_acc@30000"] >= 80.0
    assert {"val_acc@6000", "val_acc@12000", "val_acc@30000", "val_loss", "lr", "seconds"} <= set(hist[-1])


def test_checkpoint_round_trip(tmp_path):
    flux, z = synthetic(6, seed=1)
    model, hist = train(TINY, flux, z, flux, z, epochs=2, batch_size=3, progress=False, device="cpu")
    p = save_checkpoint(tmp_path / "m.pt", model, metrics={"val_acc@6000": np.float64(12.5)}, history=hist)
    loaded, meta = load_checkpoint(p)
    assert loaded.cfg == TINY
    assert meta["metrics"] == {"val_acc@6000": 12.5}
    assert meta["label_scaling"] == {"z_min": float(z.min()), "z_max": float(z.max())}
    assert len(meta["history"]) == 2 and "val_acc@6000" in meta["history"][0]
    assert meta["provenance"]["data_hash"] == data_hash(np.arange(6), z)
    assert loaded.provenance["n_train"] == 6
    assert np.array_equal(predict(model, flux), predict(loaded, flux))
    assert same_state(model, loaded)
    with pytest.raises(ValueError, match="not an FNet checkpoint"):
        torch.save({"format": "something else"}, tmp_path / "x.pt")
        load_checkpoint(tmp_path / "x.pt")


def test_seeded_training_is_reproducible():
    flux, z = synthetic(12, seed=3)
    kw = dict(epochs=2, batch_size=4, lr=3e-3, progress=False, device="cpu", balance_z=True)
    a, ha = train(TINY_BINS, flux, z, **kw, seed=7)
    b, hb = train(TINY_BINS, flux, z, **kw, seed=7)
    c, _ = train(TINY_BINS, flux, z, **kw, seed=8)
    assert same_state(a, b)
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    assert not same_state(a, c)


class Stop(Exception):
    pass


@pytest.mark.parametrize(
    "cfg,kw",
    [
        (TINY_BINS, dict(schedule="cosine", balance_z=True)),  # dropout: the torch RNG must be restored
        (replace(TINY, dropout=0.1), dict(schedule="plateau")),
    ],
    ids=["bins-cosine-balanced-dropout", "regression-plateau"],
)
def test_resume_gives_the_same_weights(tmp_path, cfg, kw):
    flux, z = synthetic(14, seed=4)
    common = dict(epochs=4, batch_size=4, lr=3e-3, seed=5, progress=False, device="cpu", **kw)
    full, hist_full = train(cfg, flux[:10], z[:10], flux[10:], z[10:], checkpoint_path=tmp_path / "full.pt", **common)

    def kill_after_2(epoch, rec, model):
        if epoch == 2:
            raise Stop

    ck = tmp_path / "run.pt"
    with pytest.raises(Stop):
        train(cfg, flux[:10], z[:10], flux[10:], z[10:], checkpoint_path=ck, callback=kill_after_2, **common)
    assert read_checkpoint(ck)["training"]["epoch"] == 2
    # a fresh process would start from the RNG state the seed leaves; disturb it to be sure it is restored
    torch.manual_seed(999)
    resumed, hist = train(cfg, flux[:10], z[:10], flux[10:], z[10:], checkpoint_path=ck, resume=True, **common)
    assert same_state(full, resumed)
    drop = ("seconds",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in hist] == [
        {k: v for k, v in h.items() if k not in drop} for h in hist_full
    ]
    assert resumed.provenance["resumed_at_epochs"] == [2]
    # the training checkpoint loads with weights_only=True and holds what resuming needs
    raw = torch.load(ck, weights_only=True)
    assert {"optimizer", "scheduler", "epoch", "rng", "args"} <= set(raw["training"])
    assert raw["training"]["epoch"] == 4 and len(raw["history"]) == 4
    assert set(raw["provenance"]["git"]) == {"revision", "dirty"}
    assert raw["provenance"]["data_hash"] == data_hash(np.arange(10), z[:10])
    # and it is a model checkpoint too
    m, _ = load_checkpoint(ck)
    assert same_state(m, full)


def test_resume_refuses_other_data_config_or_arguments(tmp_path):
    flux, z = synthetic(8, seed=6)
    ck = tmp_path / "c.pt"
    kw = dict(batch_size=4, progress=False, device="cpu", checkpoint_path=ck)
    train(TINY, flux, z, epochs=1, **kw)
    z2 = z.copy()
    z2[0] += 0.1
    with pytest.raises(ValueError, match="other data"):
        train(TINY, flux, z2, epochs=2, resume=True, **kw)
    with pytest.raises(ValueError, match="another config"):
        train(replace(TINY, head=(8,)), flux, z, epochs=2, resume=True, **kw)
    with pytest.raises(ValueError, match="training arguments"):
        train(TINY, flux, z, epochs=2, resume=True, lr=1e-2, **kw)
    _, h = train(TINY, flux, z, epochs=2, resume=True, **kw)  # more epochs is fine
    assert [r["epoch"] for r in h] == [1, 2]
    # resume=False starts afresh and overwrites
    _, h = train(TINY, flux, z, epochs=1, **kw)
    assert len(h) == 1 and read_checkpoint(ck)["training"]["epoch"] == 1


def test_balanced_weights_flatten_nz():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.uniform(2.0, 2.5, 900), rng.uniform(0.2, 0.7, 100)])
    w = balanced_weights(z)
    assert w.sum() == pytest.approx(1.0) and (w > 0).all()
    # without the cap, every occupied bin of 0.05 in log(1+z) gets the same share of the draws
    u = np.log1p(z)
    b = np.floor((u - u.min()) / 0.05).astype(int)
    share = np.bincount(b, weights=balanced_weights(z, max_ratio=np.inf))[np.unique(b)]
    assert share == pytest.approx(np.full(share.size, 1 / share.size), rel=1e-9)
    assert w[900:].sum() > 0.5  # the 10% at low z span more of log(1+z): now most of the draws
    assert w.max() <= 10 / z.size * (1 + 1e-9)
    # a lone high-z spectrum is capped at 10x the uniform rate
    w2 = balanced_weights(np.concatenate([z, [5.0]]))
    assert w2[-1] == pytest.approx(10 / (z.size + 1))


def test_epoch_order_depends_only_on_seed_and_epoch():
    a = epoch_order(50, seed=1, epoch=3)
    assert np.array_equal(a, epoch_order(50, seed=1, epoch=3)) and sorted(a) == list(range(50))
    assert not np.array_equal(a, epoch_order(50, seed=1, epoch=4))
    w = np.full(50, 1 / 50)
    assert np.array_equal(epoch_order(50, 1, 3, w), epoch_order(50, 1, 3, w))


def test_data_hash():
    z = np.array([1.0, 2.0])
    h = data_hash(["a", "b"], z)
    assert h == data_hash(np.array(["a", "b"]), z.tolist())
    assert h != data_hash(["a", "c"], z) and h != data_hash(["a", "b"], z + 1e-9) and h != data_hash(["b", "a"], z)
