"""FNet prediction: streaming over a memmap, uncertainties, and `inspector train` / `inspector predict`."""
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import line_spectra
from typer.testing import CliRunner

from model.checkpoint import file_sha1, save_checkpoint
from model.classes import CLASSES, PROB_COLUMNS
from model.fnet import FNet, FNetConfig
from model.metrics import accuracy_row
from model.predict import predict_store, uncertainty_method
from model.train import predict, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY_BINS = FNetConfig(
    kernel_sizes=(31, 15, 3), paddings=(15, 7, 1), stages=((1, 4, 1), (4, 1, 1)), head=(32,),
    input_pool=4, output="bins", n_bins=100, z_max_bins=4.0, label_smoothing=0.0,
)  # fmt: skip


synthetic = line_spectra


@pytest.fixture(scope="module")
def line_model():
    flux, z = synthetic(300, seed=0)
    model, _ = train(TINY_BINS, flux, z, epochs=12, batch_size=32, lr=3e-3, progress=False, device="cpu")
    return model


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    flux, z = synthetic(100, seed=1)
    p = tmp_path_factory.mktemp("flux") / "flux.npy"
    np.save(p, flux)
    return np.load(p, mmap_mode="r"), z


def test_model_trained_on_synthetic_line_spectra_predicts_their_z(line_model, held_out):
    flux, z = held_out
    zp = np.concatenate([b.z for b in predict_store(line_model, flux, batch_size=32)])
    row = accuracy_row(zp, z)
    assert row["acc@6000"] >= 75 and row["median_abs_dv"] < 3000, row


def test_streaming_equals_one_batch(line_model, held_out):
    flux, _ = held_out
    big = list(predict_store(line_model, flux, batch_size=1000))
    assert len(big) == 1
    small = list(predict_store(line_model, flux, batch_size=7))
    assert len(small) == 15
    rows = np.concatenate([b.rows for b in small])
    assert np.array_equal(rows, np.arange(100))
    for attr in ("z", "z_err"):
        np.testing.assert_allclose(np.concatenate([getattr(b, attr) for b in small]), getattr(big[0], attr), rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([b.alternatives.p_z for b in small]), big[0].alternatives.p_z, rtol=1e-5)
    assert (big[0].z_err > 0).all() and np.isfinite(big[0].z_err).all()
    # an arbitrary subset, in the caller's order
    sub = np.array([42, 3, 99, 3, 0])
    (b,) = predict_store(line_model, flux, rows=sub, batch_size=64)
    assert np.array_equal(b.rows, sub)
    np.testing.assert_allclose(b.z, big[0].z[sub], rtol=1e-6)
    # the old entry point agrees
    np.testing.assert_allclose(predict(line_model, np.asarray(flux)), big[0].z, rtol=1e-6)


class CountingArray:
    """A flux array that records how many rows each read asks for."""

    def __init__(self, arr):
        self.arr, self.shape, self.ndim, self.reads = arr, arr.shape, arr.ndim, []

    def __getitem__(self, idx):
        self.reads.append(np.size(idx) if not isinstance(idx, slice) else len(range(*idx.indices(self.shape[0]))))
        return self.arr[idx]


def test_reads_one_batch_at_a_time(line_model, held_out):
    flux = CountingArray(held_out[0])
    n = sum(b.rows.size for b in predict_store(line_model, flux, batch_size=16))
    assert n == 100 and max(flux.reads) <= 16 and sum(flux.reads) == 100


def test_mc_dropout_uncertainty_for_regression(held_out):
    flux, _ = held_out
    torch.manual_seed(0)
    cfg = replace(TINY_BINS, output="regression", dropout=0.3)
    m = FNet(cfg)
    m.set_label_scaling(0.0, 4.0)
    m.eval()
    assert uncertainty_method(m, 10) == "mc_dropout" and uncertainty_method(m, 0) == "none"
    state = torch.get_rng_state()
    (a,) = predict_store(m, flux, rows=np.arange(20), mc_samples=10)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is left alone
    (b,) = predict_store(m, flux, rows=np.arange(20), mc_samples=10)
    assert (a.z_err > 0).all() and np.array_equal(a.z, b.z) and np.array_equal(a.z_err, b.z_err)
    assert np.isnan(a.alternatives.z).all()
    assert not any(x.training for x in m.modules())  # dropout switched off again afterwards
    (c,) = predict_store(m, flux, rows=np.arange(20))
    assert np.isnan(c.z_err).all()  # no sampling: a single regression output has no uncertainty
    m0 = FNet(replace(cfg, dropout=0.0))
    assert uncertainty_method(m0, 10) == "none"
    with pytest.warns(UserWarning, match="no dropout"):
        (d,) = predict_store(m0, flux, rows=np.arange(4), mc_samples=10)
    assert np.isnan(d.z_err).all()
    with pytest.raises(ValueError):
        next(predict_store(m, flux, mc_samples=1))


def test_mc_dropout_in_pieces_is_the_whole_run(held_out):
    """A run cut into pieces (a Dask task per chunk of rows) gives the whole run's numbers when each piece says
    where it starts: the dropout masks are seeded by the batch's place in the run, not in the piece."""
    flux, _ = held_out
    torch.manual_seed(0)
    m = FNet(replace(TINY_BINS, dropout=0.3))
    m.eval()
    whole = list(predict_store(m, flux, rows=np.arange(24), batch_size=4, mc_samples=5))
    pieces = [b for a, e in ((0, 8), (8, 24)) for b in predict_store(m, flux, rows=np.arange(a, e), batch_size=4,
                                                                        mc_samples=5, seed_offset=a)]  # fmt: skip
    assert [b.rows.tolist() for b in whole] == [b.rows.tolist() for b in pieces]
    for w, p in zip(whole, pieces, strict=True):
        assert np.array_equal(w.z, p.z) and np.array_equal(w.z_err, p.z_err) and (w.z_err > 0).all()
    (unaligned,) = predict_store(m, flux, rows=np.arange(8, 12), batch_size=4, mc_samples=5)  # no offset given
    assert not np.array_equal(unaligned.z_err, whole[2].z_err)  # other masks: why the offset is needed


def test_cli_train_then_predict(mock_store, tmp_path):
    from inspector.cli import app
    from inspector.store import open_store
    from inspector.training_set import training_rows

    runner = CliRunner()
    out = tmp_path / "m.pt"
    args = ["train", "--store", str(mock_store), "--out", str(out), "--no-progress", "--threads", "1", "--seed", "1"]
    r = runner.invoke(app, [*args, "--epochs", "1"])
    assert r.exit_code == 0, r.output
    ckpt = tmp_path / "m.ckpt.pt"
    assert out.exists() and ckpt.exists() and str(ckpt) in r.output and "val_acc@6000" in r.output
    r = runner.invoke(app, [*args, "--epochs", "2", "--resume"])
    assert r.exit_code == 0, r.output
    meta = torch.load(out, weights_only=True)
    assert "training" not in meta and [h["epoch"] for h in meta["history"]] == [1, 2]
    prov = meta["provenance"]
    st = open_store(mock_store)
    n_labelled = training_rows(st.index, with_classes=True).size  # quasars, stars and galaxies: the class head
    assert n_labelled > int((st.index["is_qso"] & st.index["z"].notna()).sum())
    assert prov["n_train"] + prov["n_val"] == n_labelled and prov["n_val"] > 0
    assert meta["config"]["n_classes"] == 5 and prov["class_head"] is True
    assert prov["resumed_at_epochs"] == [1] and len(prov["data_hash"]) == 40
    assert meta["config"]["output"] == "bins" and meta["metrics"]["validation"][0]["group"] == "all"

    r = runner.invoke(app, ["predict", "--store", str(mock_store), "--model", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    pq = mock_store / "predictions" / "m.parquet"
    df = pd.read_parquet(pq)
    assert len(df) == len(st) == 60
    assert df["row"].tolist() == list(range(60))
    assert df["object_id"].tolist() == st.index["object_id"].astype(str).tolist()
    assert {"z_fnet", "z_fnet_err", "z_alt1", "p_alt1", "z_alt2", "p_alt2", "model_sha1"} <= set(df.columns)
    assert df["z_fnet"].between(0, 6.5).all() and (df["z_fnet_err"] > 0).all()
    assert (df["model_sha1"] == file_sha1(out)).all()
    side = json.loads(pq.with_suffix(".json").read_text())
    assert side["model"]["sha1"] == file_sha1(out) and side["uncertainty"]["method"] == "posterior"
    # the class head's columns: probabilities that sum to 1, the most probable class, p_qso = QSO + BAL
    probs = df[list(PROB_COLUMNS)].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert df["fnet_class"].tolist() == [CLASSES[i] for i in probs.argmax(axis=1)]
    np.testing.assert_allclose(df["p_qso"], df["p_cls_qso"] + df["p_cls_bal"])
    assert side["classes"] == list(CLASSES) and {"fnet_class", "p_qso"} <= set(side["columns"])
    assert side["model"]["provenance"]["data_hash"] == prov["data_hash"] and side["n_spectra"] == 60

    # a model to an explicit path; a missing store is a clean error
    r = runner.invoke(app, ["predict", "--store", str(mock_store), "--model", str(out), "--out", str(tmp_path / "p.parquet"), "--no-progress"])
    assert r.exit_code == 0 and len(pd.read_parquet(tmp_path / "p.parquet")) == 60
    r = runner.invoke(app, ["predict", "--store", str(tmp_path / "nope"), "--model", str(out)])
    assert r.exit_code == 2 and "not a spectrum store" in r.output


def test_predictions_file_has_the_class_columns_with_or_without_a_class_head(mock_store, tmp_path):
    """Every predictions file has the same columns; a model without a class head (the published network, the
    old shipped model) leaves the class columns null and says so in the sidecar."""
    from inspector.pipeline.predict import CLASS_COLUMNS, write_predictions

    tiny = FNetConfig(kernel_sizes=(31, 15, 3), paddings=(15, 7, 1), stages=((1, 4, 1), (4, 1, 1)), head=(16,),
                      output="bins", n_bins=64, z_max_bins=4.0, input_pool=4)
    frames, sides = {}, {}
    for n_classes in (0, len(CLASSES)):
        torch.manual_seed(0)
        path = tmp_path / f"tiny{n_classes}.pt"
        save_checkpoint(path, FNet(replace(tiny, n_classes=n_classes)))
        sides[n_classes] = write_predictions(mock_store, path, tmp_path / f"p{n_classes}.parquet", device="cpu",
                                             template=False)
        frames[n_classes] = pd.read_parquet(tmp_path / f"p{n_classes}.parquet")
    without, with_head = frames[0], frames[len(CLASSES)]
    assert list(without.columns) == list(with_head.columns) and set(CLASS_COLUMNS) <= set(without.columns)
    assert without[list(CLASS_COLUMNS)].isna().all().all() and sides[0]["classes"] is None
    assert with_head[list(CLASS_COLUMNS)].notna().all().all() and sides[len(CLASSES)]["classes"] == list(CLASSES)
    assert set(with_head["fnet_class"]) <= set(CLASSES)
    assert with_head["p_qso"].between(0, 1).all()
