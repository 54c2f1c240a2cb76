"""FNet's class head: it learns to tell line spectra from flat ones, feeds predictions, and old models load."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from synthetic import line_spectra

from model.classes import CLASSES, N_CLASSES, UNKNOWN, class_index, from_class_person, p_qso
from model.fnet import PAPER_N_PARAMS, FNet, FNetConfig, count_parameters
from model.predict import predict_store
from model.train import load_checkpoint, save_checkpoint, train

TINY_BINS = FNetConfig(
    kernel_sizes=(31, 15, 3), paddings=(15, 7, 1), stages=((1, 4, 1), (4, 2, 1)), head=(32,),
    output="bins", n_bins=64, z_max_bins=4.0, input_pool=4, label_smoothing=0.0,
)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mixed_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half quasar-like line spectra (class QSO, their z), a quarter red 'stars' (z 0), a quarter
    empty spectra (class BAD, no z): what the class head must separate."""
    rng = np.random.default_rng(seed)
    flux, z = line_spectra(n, seed)
    cls = np.full(n, class_index("QSO"))
    star = np.arange(n) % 4 == 1
    bad = np.arange(n) % 4 == 3
    x = np.linspace(0, 1, flux.shape[1], dtype=np.float32)
    flux[star] = 1 + 2 * x + 0.05 * rng.standard_normal((star.sum(), flux.shape[1])).astype(np.float32)
    flux[bad] = 0.3 * rng.standard_normal((bad.sum(), flux.shape[1])).astype(np.float32)
    z = z.copy()
    z[star] = 0.0
    z[bad] = np.nan
    cls[star] = class_index("STAR")
    cls[bad] = class_index("BAD")
    return flux, z, cls


def test_class_vocabulary_follows_dr16q():
    assert from_class_person(np.array([3, 30, 1, 4, 50, 0, -1])).tolist() == [
        class_index("QSO"), class_index("BAL"), class_index("STAR"), class_index("GALAXY"), class_index("QSO"),
        UNKNOWN, UNKNOWN,
    ]  # fmt: skip
    prob = np.eye(N_CLASSES)
    assert p_qso(prob).tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_paper_config_is_still_the_published_network():
    assert FNetConfig.paper().n_classes == 0
    assert count_parameters(FNet(FNetConfig.paper())) == PAPER_N_PARAMS
    with pytest.raises(ValueError, match="n_classes"):
        FNetConfig.small(n_classes=3)


def test_class_head_learns_classes_and_keeps_redshifts(tmp_path):
    flux, z, cls = mixed_set(48, seed=0)
    cfg = replace(TINY_BINS, n_classes=N_CLASSES)
    model, hist = train(
        cfg, flux, z, flux, z, train_classes=cls, val_classes=cls, epochs=25, batch_size=12, lr=3e-3,
        progress=False, device="cpu", seed=0,
    )  # fmt: skip
    assert hist[-1]["val_class_acc"] >= 95.0
    assert hist[-1]["val_acc@30000"] >= 80.0  # scored on the quasars only
    path = save_checkpoint(tmp_path / "m.pt", model)
    loaded, _ = load_checkpoint(path)
    batches = list(predict_store(loaded, flux, batch_size=16, n_alt=1))
    prob = np.concatenate([b.class_prob for b in batches])
    assert prob.shape == (48, N_CLASSES) and np.allclose(prob.sum(axis=1), 1.0)
    called = np.array(CLASSES)[prob.argmax(axis=1)]
    assert np.mean(called == np.array(CLASSES)[cls]) >= 0.95
    zp = np.concatenate([b.z for b in batches])
    star = cls == class_index("STAR")
    assert np.all(np.abs(zp[star]) < 0.1)  # a star keeps its own z, near 0


def test_model_without_class_head_predicts_no_classes():
    flux, z = line_spectra(8, seed=3)
    model, _ = train(TINY_BINS, flux, z, epochs=1, batch_size=4, progress=False, device="cpu")
    assert all(b.class_prob is None for b in predict_store(model, flux, batch_size=4))
    with pytest.raises(ValueError, match="class head"):
        train(TINY_BINS, flux, z, train_classes=np.zeros(8, int), epochs=1, progress=False, device="cpu")


def test_spectrum_without_z_or_class_is_refused():
    flux, z, cls = mixed_set(8, seed=1)
    cls[3] = UNKNOWN  # a BAD row: no z either now
    with pytest.raises(ValueError, match="finite redshift or a class"):
        train(replace(TINY_BINS, n_classes=N_CLASSES), flux, z, train_classes=cls, epochs=1, progress=False)


def test_a_class_head_added_to_a_trained_model_leaves_its_redshifts_alone():
    from model.class_head import with_class_head

    flux, z = line_spectra(16, seed=4)
    base, _ = train(TINY_BINS, flux, z, epochs=2, batch_size=8, progress=False, device="cpu")
    grown = with_class_head(base)
    assert grown.cfg.n_classes == N_CLASSES and base.class_head is None
    zb = np.concatenate([b.z for b in predict_store(base, flux, batch_size=8)])
    batches = list(predict_store(grown, flux, batch_size=8))
    assert np.array_equal(np.concatenate([b.z for b in batches]), zb)
    assert all(b.class_prob.shape == (8, N_CLASSES) for b in batches)


def test_quasar_only_redshift_labels_keep_the_classes():
    import pandas as pd

    from inspector.training_set import labels

    index = pd.DataFrame({
        "object_id": ["a", "b", "c", "d"], "z": [2.1, 0.0, 0.3, -1.0], "CLASS_PERSON": [3, 1, 4, 0],
        "MOCK_KIND": ["QSO", "STAR", "GALAXY", "BAD"],
    })  # fmt: skip
    z_all, cls = labels(index, with_classes=True)
    z_qso, cls2 = labels(index, with_classes=True, z_quasars_only=True)
    assert np.array_equal(cls, cls2) and list(np.array(CLASSES)[cls]) == ["QSO", "STAR", "GALAXY", "BAD"]
    assert z_all[:3].tolist() == [2.1, 0.0, 0.3] and np.isnan(z_all[3])
    assert z_qso[0] == 2.1 and np.isnan(z_qso[1:]).all()


@pytest.mark.slow
def test_shipped_model_recipe_trains_quasars_then_the_class_head_and_resumes(tmp_path):
    from inspector.pipeline.shipped_model import Recipe, build
    from inspector.risk.learner import load_risk_model, risk_path_for
    from model.checkpoint import file_sha1

    recipe = Recipe(n=160, epochs=1, class_epochs=1, threads=1, workers=1,
                    risk_mocks=(("dr16q", 201, "qso", 150), ("super", 202, "superset", 150)))
    out = build(tmp_path / "w", tmp_path / "m.pt", recipe, progress=False, echo=lambda s: None)
    model, meta = load_checkpoint(out)
    prov = meta["provenance"]
    assert model.cfg.n_classes == N_CLASSES and prov["class_head"] is True and model.cfg.class_net == "twin"
    assert prov["init"]["sha1"] == file_sha1(tmp_path / "w" / "fnet-qso.pt")
    # the risk model describes this very FNet
    assert load_risk_model(risk_path_for(out)).meta["fnet_sha1"] == file_sha1(out)
    build(tmp_path / "w", tmp_path / "m.pt", recipe, progress=False, echo=lambda s: None)  # everything done: resumes
    assert load_checkpoint(out)[1]["provenance"]["data_hash"] == prov["data_hash"]
    with pytest.raises(ValueError, match="another recipe"):
        build(tmp_path / "w", tmp_path / "m.pt", Recipe(n=161), progress=False)


def test_an_added_class_head_is_the_same_for_the_same_seed():
    from model.class_head import with_class_head

    flux, z = line_spectra(8, seed=5)
    base, _ = train(TINY_BINS, flux, z, epochs=1, batch_size=4, progress=False, device="cpu")
    a, b, c = with_class_head(base, 0), with_class_head(base, 0), with_class_head(base, 1)
    assert torch.equal(a.class_head.weight, b.class_head.weight)
    assert not torch.equal(a.class_head.weight, c.class_head.weight)


def test_non_quasar_redshift_loss_counts_at_its_weight():
    """A star's z teaches the redshift head at `non_quasar_z_weight` of a quasar's; 0 leaves it out, 1 is plain."""
    torch.manual_seed(0)
    flux, z, cls = mixed_set(8, seed=2)
    x = torch.from_numpy(flux[:, None, :])
    zt, ct = torch.from_numpy(z), torch.from_numpy(cls)
    losses = {}
    for w in (0.0, 0.5, 1.0):
        torch.manual_seed(0)
        model = FNet(replace(TINY_BINS, n_classes=N_CLASSES, class_weight=0.0, non_quasar_z_weight=w)).eval()
        with torch.no_grad():
            losses[w] = float(model.loss(model(x), zt, ct))
    only_qso = zt.clone()
    only_qso[ct != class_index("QSO")] = float("nan")
    with torch.no_grad():
        plain_qso = float(model.loss(model(x), only_qso, ct))
    assert losses[0.0] == pytest.approx(plain_qso, rel=1e-5)
    assert losses[0.5] == pytest.approx((losses[0.0] + losses[1.0]) / 2, rel=1e-5)
    assert losses[1.0] > losses[0.0]


def test_a_twin_class_network_learns_classes_without_touching_the_quasar_redshifts(tmp_path):
    """The shipped layout: the quasar network frozen, its twin learns the classes and the stars' own z."""
    from model.class_head import with_class_head

    flux, z, cls = mixed_set(48, seed=0)
    quasar = cls == class_index("QSO")
    base, _ = train(
        TINY_BINS, flux, z, train_rows=np.flatnonzero(quasar), epochs=6, batch_size=12, lr=3e-3, progress=False,
        device="cpu", seed=0,
    )  # fmt: skip
    z_base = np.concatenate([b.z for b in predict_store(base, flux, batch_size=16)])
    twin = with_class_head(base, twin=True)
    twin.freeze_redshift()
    frozen = {k: v.clone() for k, v in twin.state_dict().items() if not k.startswith("twin.")}
    model, hist = train(
        twin.cfg, flux, z, flux, z, train_classes=cls, val_classes=cls, epochs=20, batch_size=12, lr=3e-3,
        progress=False, device="cpu", seed=0, model=twin,
    )  # fmt: skip
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in frozen.items()), "weights and BN statistics kept"
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "twin.pt", model))
    assert loaded.cfg.class_net == "twin" and loaded.twin is not None
    batches = list(predict_store(loaded, flux, batch_size=16, n_alt=1))
    prob = np.concatenate([b.class_prob for b in batches])
    zp = np.concatenate([b.z for b in batches])
    called = prob.argmax(axis=1)
    assert np.mean(called == cls) >= 0.95
    sure_quasar = p_qso(prob) > 0.99  # the z posterior is the class-weighted mix of the two networks'
    assert sure_quasar.sum() >= 20
    dv = 299792.458 * (zp[sure_quasar] - z_base[sure_quasar]) / (1 + z_base[sure_quasar])
    assert np.all(np.abs(dv) < 50), "a quasar's z is the quasar network's"
    star = (cls == class_index("STAR")) & (called == cls)
    assert star.any() and np.all(np.abs(zp[star]) < 0.1), "a star keeps its own z, near 0"
    with pytest.raises(ValueError, match="twin"):
        base.freeze_redshift()
