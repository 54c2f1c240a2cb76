"""QuasarNET-style baseline: input, targets and decoding, a short training on synthetic line spectra, the CLI."""

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from model.grid import FNET_LOGLAM, FNET_WAVE, QN_NBINS, rebin_quasarnet, standardise_quasarnet
from model.quasarnet import (
    QN_LINES,
    Z_QN_FAILED,
    QNRebinner,
    QuasarNet,
    QuasarNetConfig,
    count_parameters,
    decode,
    make_targets,
    quasarnet_input,
    quasarnet_loss,
    targets_as_logits,
)
from model.quasarnet_train import load_quasarnet, predict_quasarnet, save_quasarnet, score, train_quasarnet

C_KMS = 299792.458


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic(n: int, seed: int, qso_frac: float = 0.6):
    """Power-law continua + noise; quasars get Gaussian lines at all six QN lines. ivar 0 below 3800 A (BOSS-like)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.1, 4.0, n)
    q = rng.random(n) < qso_frac
    cont = (FNET_WAVE[None] / 5000.0) ** rng.uniform(-2.0, 1.0, (n, 1))  # flat (0) well inside
    flux = cont.copy()
    amps = {"LYA": 4.0, "CIV": 2.0, "CIII": 1.0, "MGII": 1.2, "HB": 1.0, "HA": 2.5}
    for name, lam in QN_LINES.items():
        amp = amps[name] * rng.uniform(0.5, 1.5, (n, 1))
        sig = rng.uniform(1500, 4000, (n, 1)) / C_KMS / np.log(10)  # dex
        centre = np.log10(lam * (1 + z))[:, None]
        flux += np.where(q[:, None], amp * np.exp(-0.5 * ((FNET_LOGLAM[None] - centre) / sig) ** 2), 0.0)
    noise = cont.mean(axis=1, keepdims=True) / rng.uniform(3, 15, (n, 1))
    flux += rng.normal(size=flux.shape) * noise
    ivar = np.broadcast_to(1.0 / noise**2, flux.shape).copy()
    ivar[:, FNET_WAVE < 3800] = 0
    return flux.astype(np.float32), ivar.astype(np.float32), z, q


# ---------------------------------------------------------------- architecture and input


def test_paper_architecture():
    cfg = QuasarNetConfig.paper()
    assert cfg.n_bins == QN_NBINS == 443 and cfg.n_boxes == 13 and cfg.n_lines == 6
    assert cfg.conv_lengths() == [443, 217, 104, 48, 20]  # k=10 stride 2, no padding
    m = QuasarNet(cfg)
    # conv 1,100 + 3 x 100,100 (k=10, bias) + 4 BN; dense 2000->100 + BN; 6x13 boxes, 6x13 offsets, 13 BAL boxes
    assert count_parameters(m) == 1100 + 3 * 100100 + 4 * 200 + 200100 + 200 + 2 * (100 * 78 + 78) + 1313
    with torch.no_grad():
        out = m.eval()(torch.zeros(3, 443))
    assert out["box"].shape == out["offset"].shape == (3, 6, 13) and out["bal"].shape == (3, 13)
    assert float(out["offset"].min()) >= -0.1 and float(out["offset"].max()) <= 1.1
    assert QuasarNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        QuasarNetConfig(n_lines_min=7)


def test_batched_rebin_equals_rebin_quasarnet():
    rng = np.random.default_rng(0)
    flux = rng.normal(1, 0.5, (7, FNET_LOGLAM.size)).astype(np.float32)
    ivar = rng.uniform(0, 3, flux.shape).astype(np.float32)
    ivar[ivar < 0.5] = 0
    ivar[2, :1500] = 0  # a whole blue end missing: empty bins
    flux[3, 200] = np.nan
    ivar[4, 300] = np.inf
    fl, iv = QNRebinner()(flux, ivar)
    for k in range(flux.shape[0]):
        f1, i1 = rebin_quasarnet(FNET_LOGLAM, flux[k], ivar[k])
        np.testing.assert_allclose(fl[k], f1, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(iv[k], i1, rtol=1e-5)
    assert (iv[2, :100] == 0).all() and (fl[2, :100] == 0).all()
    x = quasarnet_input(flux, ivar)
    np.testing.assert_allclose(x, standardise_quasarnet(fl, iv), atol=1e-5)
    assert x.shape == (7, 443) and np.isfinite(x).all()
    # every QN bin gets ~10 FNet pixels (1e-3 / 1e-4 dex)
    r = QNRebinner()
    assert np.diff(np.r_[r.starts, r.hi - r.lo]).min() >= 9 and r.bin_of_run.size == 443


# ---------------------------------------------------------------- targets, loss, decoding


def test_targets_decode_round_trip():
    cfg = QuasarNetConfig()
    z = np.linspace(0.1, 4.0, 400)
    tgt = make_targets(z, np.ones(z.size, bool), cfg=cfg)
    assert set(np.unique(tgt["box"])) == {0.0, 1.0}
    assert tgt["box"].sum(axis=2).max() == 1  # at most one box per line
    in_window = tgt["box"].sum(axis=2) > 0
    assert in_window.any(axis=1).all()  # 3600-10000 A always holds a line for z in 0.1..4
    # the observed wavelength of each in-window line is inside 3600-10000 A, and the others are not
    obs = np.asarray(cfg.line_waves)[None] * (1 + z[:, None])
    edge = 10 ** (cfg.loglam_min + cfg.n_bins * cfg.dloglam)
    np.testing.assert_array_equal(in_window, (obs >= 3600.0) & (obs < edge))

    # perfect outputs decode back exactly, line by line and overall
    dec = decode(targets_as_logits(tgt, cfg), cfg)
    assert not dec["qn_failed"].any() and (dec["is_qso_qn"] == 1).all()
    np.testing.assert_allclose(dec["z_qn"], z, atol=1e-7)
    for li, name in enumerate(cfg.line_names):
        m = in_window[:, li]
        np.testing.assert_allclose(dec[f"qn_z_{name.lower()}"][m], z[m], atol=1e-7)

    # the box alone (offset at its centre) is right to half a box: 0.0174 dex, ~ 12,000 km/s
    coarse = targets_as_logits(tgt, cfg)
    coarse["offset"] = np.full_like(tgt["offset"], 0.5)
    dz = decode(coarse, cfg)["z_qn"].to_numpy()
    half_box = 10 ** (cfg.box_width_dex / 2) - 1
    assert np.all(np.abs(dz - z) / (1 + z) <= half_box + 1e-9)


def test_targets_non_quasars_out_of_window_and_bal():
    cfg = QuasarNetConfig()
    z = np.array([2.5, 2.5, 0.1, 6.5, np.nan, 2.5])
    q = np.array([True, False, True, True, True, True])
    bal = np.array([1.0, 1.0, -1.0, 0.0, np.nan, 0.0])
    t = make_targets(z, q, bal, cfg)
    assert t["box"][1].sum() == 0 and t["offset"][1].sum() == 0  # non-quasar: "no line" everywhere
    assert t["box"][4].sum() == 0  # quasar without z
    lya, ha = cfg.line_names.index("LYA"), cfg.line_names.index("HA")
    assert t["box"][2, lya].sum() == 0 and t["box"][2, ha].sum() == 1  # z=0.1: Lya at 1337 A is out
    assert t["box"][3, lya].sum() == 1 and t["box"][3].sum() == 1  # z=6.5: only Lya (9118 A) is in the window
    assert t["bal"][0].sum() == 1 and t["bal"][5].sum() == 0
    np.testing.assert_array_equal(t["bal_known"], [True, True, False, True, False, True])


def test_loss_small_for_perfect_outputs_and_trains_offsets():
    cfg = QuasarNetConfig()
    z = np.linspace(0.2, 3.8, 16)
    tgt = make_targets(z, np.r_[np.ones(12, bool), np.zeros(4, bool)], np.r_[np.ones(6), np.zeros(10)], cfg)
    tt = {k: torch.from_numpy(v) for k, v in tgt.items()}
    perfect = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in targets_as_logits(tgt, cfg).items()}
    assert float(quasarnet_loss(perfect, tt)) < 1e-6
    wrong = dict(perfect, offset=perfect["offset"] + 0.3)
    n_lines_seen = int((tgt["box"].sum(axis=(0, 2)) > 0).sum())
    assert float(quasarnet_loss(wrong, tt)) == pytest.approx(0.09 * n_lines_seen, rel=1e-3)
    out = QuasarNet(cfg).train()(torch.randn(16, 443))
    loss = quasarnet_loss(out, tt)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 1.0


# ---------------------------------------------------------------- a short training on synthetic lines


@pytest.fixture(scope="module")
def trained():
    # ~8 s of one core: 1600 spectra x 4 epochs
    flux, ivar, z, q = synthetic(1900, seed=11)
    model, hist = train_quasarnet(
        flux, ivar, z, q, rows=np.arange(1600), val_rows=np.arange(1600, 1900),
        epochs=4, batch_size=32, lr=1e-3, seed=0, progress=False,
    )
    return model, hist


def test_short_training_finds_lines(trained):
    model, hist = trained
    assert len(hist) == 4 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert {"val_acc@6000", "val_failed_frac", "val_other_rejected_frac"} <= set(hist[-1])
    flux, ivar, z, q = synthetic(400, seed=99)  # held out, never seen
    pred = predict_quasarnet(model, flux, ivar, batch_size=128)
    s = score(pred, z, q)
    assert s["acc@6000"] >= 95.0, s
    assert s["failed_frac"] <= 0.03 and s["other_rejected_frac"] >= 0.9, s
    ok = ~pred["qn_failed"].to_numpy()
    assert (pred["z_qn"].to_numpy()[~ok] == Z_QN_FAILED).all()


def test_fails_on_a_spectrum_without_lines(trained):
    model, _ = trained
    rng = np.random.default_rng(5)
    flat = (1.0 + 0.1 * rng.normal(size=(20, FNET_LOGLAM.size))).astype(np.float32)
    ivar = np.full_like(flat, 100.0)
    ivar[:, FNET_WAVE < 3800] = 0
    pred = predict_quasarnet(model, flat, ivar)
    assert (pred["z_qn"] == Z_QN_FAILED).all() and pred["qn_failed"].all() and (pred["is_qso_qn"] == 0).all()
    assert pred["z_qn_conf"].max() < model.cfg.c_threshold


def test_checkpoint_round_trip(tmp_path, trained):
    model, hist = trained
    path = save_quasarnet(tmp_path / "qn.pt", model, metrics={"x": np.float64(1.5)}, history=hist,
                          extra={"rows": torch.arange(3)})
    loaded, ckpt = load_quasarnet(path)
    flux, ivar, _, _ = synthetic(8, seed=4)
    pd.testing.assert_frame_equal(predict_quasarnet(model, flux, ivar), predict_quasarnet(loaded, flux, ivar))
    assert ckpt["metrics"] == {"x": 1.5} and "state_dict" not in ckpt and len(ckpt["history"]) == 4
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a QuasarNET"):
        load_quasarnet(tmp_path / "other.pt")


# ---------------------------------------------------------------- the command line on a mock store


def test_cli_train_and_predict(tmp_path):
    from inspector.cli import app
    from inspector.ingest import ingest
    from inspector.mock import make_survey
    from inspector.store import open_store

    make_survey(tmp_path / "s", 60, seed=3, workers=1)
    ingest([str(tmp_path / "s")], tmp_path / "store", workers=1, progress=False)
    store = tmp_path / "store"
    runner = CliRunner()
    res = runner.invoke(app, ["baseline", "train", "--store", str(store), "--out", str(tmp_path / "qn.pt"),
                              "--epochs", "2", "--batch-size", "16", "--threads", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "val quasars" in res.output and (tmp_path / "qn.pt").exists()
    res = runner.invoke(app, ["baseline", "predict", "--store", str(store), "--model", str(tmp_path / "qn.pt"),
                              "--batch-size", "25", "--threads", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    pred = pd.read_parquet(store / "predictions" / "quasarnet.parquet")
    st = open_store(store)
    assert len(pred) == len(st) == 60
    np.testing.assert_array_equal(pred["row"], np.arange(60))
    assert (pred["object_id"].astype(str).to_numpy() == st.index["object_id"].astype(str).to_numpy()).all()
    for col in ("z_qn", "z_qn_conf", "z_qn_line", "bal_prob", "qn_failed", "is_qso_qn", "qn_z_civ", "qn_conf_mgii"):
        assert col in pred.columns
    assert (pred.loc[pred["qn_failed"], "z_qn"] == Z_QN_FAILED).all()
    assert set(pred["split"]) == {"train", "val", "test"}
    assert pred["split"].value_counts()["test"] == 6  # --test-fraction 0.1: held out from training

    # --split-from: reuse another model's split (here this one's), so both are scored on the same unseen spectra
    res = runner.invoke(app, ["baseline", "train", "--store", str(store), "--out", str(tmp_path / "qn2.pt"),
                              "--epochs", "1", "--batch-size", "16", "--threads", "1", "--no-progress",
                              "--split-from", str(store / "predictions" / "quasarnet.parquet")])
    assert res.exit_code == 0, res.output
    a, b = load_quasarnet(tmp_path / "qn.pt")[1]["extra"], load_quasarnet(tmp_path / "qn2.pt")[1]["extra"]
    assert torch.equal(a["train_rows"], b["train_rows"]) and torch.equal(a["val_rows"], b["val_rows"])
