"""Retrain on decisions: labels, held-out split, new version + parent + metrics, promote, rollback, failure safety."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy import select

from db.decisions import record_decision
from db.engine import make_engine, session_scope
from db.labels import decided_labels, held_out_rule, is_held_out
from db.load import current_model, predictions_frame
from db.schema import ModelVersion, Spectrum, TriageFlag
from db_helpers import fresh_database

N = 200


@pytest.fixture(autouse=True, scope="module")
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The `inspector demo --no-serve` pipeline on a tiny mock: survey, store, predict, triage, db."""
    from inspector.ingest import ingest
    from inspector.mock import make_survey
    from inspector.pipeline.predict import write_predictions
    from inspector.pipeline.triage import load_into_db, run_triage
    from model.assets import DEMO_MODEL

    w = tmp_path_factory.mktemp("retrain")
    make_survey(w / "survey", N, seed=0, workers=1)
    ingest([str(w / "survey")], w / "store")
    side = write_predictions(w / "store", DEMO_MODEL)
    flags, _, meta = run_triage(w / "store", Path(side["predictions"]))
    url = fresh_database(w, name="retrain")  # SQLite, or PostgreSQL under FNET_TEST_DB_URL (a schema of its own)
    load_into_db(url, w / "store", Path(side["predictions"]), flags, meta)
    return w / "store", url


def _state(url):
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            cur = current_model(s)
            versions = s.scalars(select(ModelVersion.id).order_by(ModelVersion.id)).all()
            pred = predictions_frame(s, cur.id)
            flags = s.execute(select(TriageFlag.spectrum_id, TriageFlag.rule, TriageFlag.priority)).all()
            return cur.id, list(versions), pred, sorted(flags)
    finally:
        engine.dispose()


def _queue(url):
    from inspector.pipeline.retrain import queue_size

    return queue_size(url)


def _queued_decided(url) -> set[int]:
    """Spectra in the queue (flagged, nobody decided) that someone did decide: none, if the counters are right."""
    from db.schema import Decision

    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            queued = set(s.scalars(select(TriageFlag.spectrum_id).where(TriageFlag.n_inspectors == 0)))
            judged = set(s.scalars(select(Decision.spectrum_id).where(Decision.action != "skip")))
            return queued & judged
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def decided(demo):
    """An inspector corrects the flagged quasars with the true z; calls the rest not a quasar."""
    from inspector.store import open_store

    store, url = demo
    index = open_store(store).index.set_index("object_id")
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            cur = current_model(s)
            oids = s.scalars(select(TriageFlag.spectrum_id).distinct()).all()
            flagged = s.scalars(select(Spectrum.object_id).where(Spectrum.id.in_(oids))).all()
            for i, oid in enumerate(sorted(flagged)[:120]):
                row = index.loc[oid]
                if bool(row["is_qso"]) and np.isfinite(row["z"]):
                    record_decision(s, oid, "alice", "correct", z_final=float(row["z"]), quality=4 - (i % 5 == 0) * 3,
                                    model_version_id=cur.id)
                else:
                    record_decision(s, oid, "alice", "not_qso", quality=3, model_version_id=cur.id)
    finally:
        engine.dispose()
    return store, url


def test_labels_and_fixed_split(decided):
    _, url = decided
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            lab = decided_labels(s, min_quality=3)
            lab0 = decided_labels(s, min_quality=0)
    finally:
        engine.dispose()
    assert list(lab.columns) == ["z", "quality", "n_inspectors"]
    assert len(lab) > 10 and (lab["quality"] >= 3).all() and (lab["n_inspectors"] == 1).all()
    assert len(lab0) > len(lab)  # the quality-1 corrections are left out at 3
    ids = [f"obj{i}" for i in range(2000)]
    h = is_held_out(ids)
    assert np.array_equal(h, is_held_out(ids)) and np.array_equal(h[:100], is_held_out(ids[:100]))
    assert 0.15 < h.mean() < 0.25 and held_out_rule()["fraction"] == 0.2

    # a second inspector: calling one bad removes its label; agreeing on another makes it a 2-inspector label
    bad, agreed = lab.index[0], lab.index[1]
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            record_decision(s, bad, "bob", "bad_spectrum")
            record_decision(s, agreed, "bob", "correct", z_final=float(lab.loc[agreed, "z"]), quality=4)
            lab2 = decided_labels(s, min_quality=3)
    finally:
        engine.dispose()
    assert bad not in lab2.index and lab2.loc[agreed, "n_inspectors"] == 2
    assert len(lab2) == len(lab) - 1


def test_failing_training_leaves_everything(decided):
    from inspector.pipeline.retrain import retrain

    store, url = decided
    before = _state(url)

    def boom(epoch, record, model):
        raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected"):
        retrain(store, url, epochs=2, promote="always", callback=boom, device="cpu")
    after = _state(url)
    assert after[0] == before[0] and after[1] == before[1] and after[3] == before[3]
    pd.testing.assert_frame_equal(after[2], before[2])


def test_retrain_promote_rollback(decided):
    from inspector.pipeline.retrain import promote_version, retrain, versions_frame

    store, url = decided
    old_id, old_versions, old_pred, _ = _state(url)
    q0 = _queue(url)
    res = retrain(store, url, epochs=2, promote="never", device="cpu")
    cur, versions, pred, _ = _state(url)
    assert cur == old_id and res.version_id not in old_versions and res.version_id in versions
    assert not res.promoted
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            mv = s.get(ModelVersion, res.version_id)
            assert mv.parent_id == old_id and mv.data_hash and mv.label_count == res.label_count > 0
            assert mv.config and Path(mv.path).exists() and Path(mv.path).parent.name == "models"
            home = Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite") else store
            assert Path(mv.path).parent.parent == home  # beside a SQLite file; in the store with a server
            for when in ("before", "after"):
                assert mv.metrics[when]["mock_test"]["n"] > 0 and "acc@6000" in mv.metrics[when]["mock_test"]
                assert mv.metrics[when]["held_out_decided"]["n"] > 0
            assert mv.metrics["held_out_rule"] == held_out_rule()
    finally:
        engine.dispose()

    promote_version(store, url, res.version_id)
    cur, _, pred, _ = _state(url)
    assert cur == res.version_id
    assert not np.allclose(pred.sort_values("object_id")["z"].to_numpy(),
                           old_pred.sort_values("object_id")["z"].to_numpy())
    assert not _queued_decided(url)  # decisions kept: decided spectra stay out of the queue (the new model
    # may flag spectra nobody decided yet)

    promote_version(store, url, old_id)  # rollback
    cur, _, pred, _ = _state(url)
    assert cur == old_id
    np.testing.assert_allclose(pred.sort_values("object_id")["z"].to_numpy(),
                               old_pred.sort_values("object_id")["z"].to_numpy(), rtol=1e-6)
    assert _queue(url) == q0
    vf = versions_frame(url)
    assert set(vf["id"]) >= {old_id, res.version_id} and vf.loc[vf["current"], "id"].tolist() == [old_id]


def test_promotion_rule():
    from inspector.pipeline.retrain import decide_promotion

    def m(old, new, n=5):
        return {"before": {"held_out_decided": {"n": n, "acc@6000": old}, "mock_test": {"n": 9, "acc@6000": 50.0}},
                "after": {"held_out_decided": {"n": n, "acc@6000": new}, "mock_test": {"n": 9, "acc@6000": 10.0}}}

    assert decide_promotion(m(80.0, 79.6), "auto")[0]
    assert not decide_promotion(m(80.0, 79.4), "auto")[0]
    assert not decide_promotion(m(80.0, 99.0, n=0), "auto")[0]  # no held-out decided: the mock test split rules
    assert decide_promotion(m(80.0, 0.0), "always")[0] and not decide_promotion(m(0.0, 90.0), "never")[0]
    with pytest.raises(ValueError):
        decide_promotion(m(1, 1), "sometimes")


def test_cli_cancel_progress_and_list(decided, tmp_path):
    import json

    from typer.testing import CliRunner

    from inspector.cli import app

    store, url = decided
    before = _state(url)
    cancel, prog = tmp_path / "cancel", tmp_path / "progress.json"
    cancel.touch()
    r = CliRunner().invoke(app, ["retrain", "--store", str(store), "--db", url, "--epochs", "2", "--device", "cpu",
                                 "--promote", "always", "--cancel-file", str(cancel), "--progress-file", str(prog)])
    assert r.exit_code == 130, r.output
    assert json.loads(prog.read_text())["state"] == "cancelled" and json.loads(prog.read_text())["epoch"] == 1
    after = _state(url)
    assert after[0] == before[0] and after[1] == before[1] and after[3] == before[3]
    r = CliRunner().invoke(app, ["models", "list", "--db", url])
    assert r.exit_code == 0 and "fnet-small-mock" in r.output


def test_job_in_a_separate_process(decided, tmp_path):
    import signal

    from inspector.pipeline.retrain_job import start_job

    store, url = decided
    before = _state(url)
    job = start_job(store, url, tmp_path / "cancelled", epochs=3, promote="always", device="cpu")
    job.cancel()  # stops at the end of the first epoch
    assert job.wait(120) == 130, job.log()
    p = job.progress()
    assert p["state"] == "cancelled" and p["epoch"] == 1
    killed = start_job(store, url, tmp_path / "killed", epochs=3, promote="always", device="cpu")
    killed.process.send_signal(signal.SIGKILL)
    killed.wait(60)
    assert killed.progress()["state"] == "crashed"
    after = _state(url)
    assert after[0] == before[0] and after[1] == before[1] and after[3] == before[3]

    job = start_job(store, url, tmp_path / "done", epochs=1, promote="never", device="cpu")
    assert job.wait(120) == 0, job.log()
    p = job.progress()
    assert p["state"] == "done" and p["epoch"] == 1 and "train_loss" in p and p["version_id"] not in before[1]
    assert "model version" in job.log() and _state(url)[0] == before[0]


def test_from_scratch_tiny(decided):
    from dataclasses import replace

    from inspector.pipeline.retrain import retrain
    from model.fnet import FNetConfig

    store, url = decided
    tiny = FNetConfig(kernel_sizes=(31, 15, 3), paddings=(15, 7, 1), stages=((1, 4, 1), (4, 1, 1)), head=(16,))
    tiny = replace(tiny, output="bins", n_bins=64, z_max_bins=4.0, input_pool=4)
    before = _state(url)
    res = retrain(store, url, from_scratch=True, config=tiny, epochs=1, promote="never", device="cpu")
    assert res.parent_id == before[0] and not res.promoted and res.metrics["labels"]["from_scratch"]
    assert _state(url)[0] == before[0]


def test_training_labels_put_people_over_the_store():
    """Replay labels from the store, then the people's verdicts over them: a decided quasar's z and class, and
    for a not-a-quasar verdict its type and no quasar z; a model without a class head gets quasar z's only."""
    from inspector.pipeline.retrain import training_labels
    from model.classes import CLASSES, UNKNOWN

    index = pd.DataFrame({"object_id": list("abcdef"), "z": [2.0, 1.0, 0.5, 3.0, 0.0, 1.5],
                          "is_qso": [True, True, True, True, False, True],
                          "CLASS_PERSON": [3, 30, 3, 3, 1, 3]})  # fmt: skip
    labels = pd.DataFrame({"z": [2.05], "quality": [4.0], "n_inspectors": [1]}, index=pd.Index(["a"]))
    classes = pd.DataFrame({"class_person": [30, 4, 0, 1], "z": [2.05, 0.12, np.nan, np.nan], "quality": 3.0},
                           index=pd.Index(["a", "c", "d", "e"]))  # a: a BAL; c: a galaxy; d: not a quasar; e: a star
    z, cls, dec = training_labels(index, labels, classes, with_classes=True)
    k = {name: i for i, name in enumerate(CLASSES)}
    assert cls.tolist() == [k["BAL"], k["BAL"], k["GALAXY"], UNKNOWN, k["STAR"], k["QSO"]]
    np.testing.assert_array_equal(z, [2.05, 1.0, 0.12, np.nan, 0.0, 1.5])  # d's quasar z goes; e's star z stays
    assert dec.tolist() == [0]
    z0, cls0, _ = training_labels(index, labels, classes, with_classes=False)
    assert (cls0 == UNKNOWN).all()
    np.testing.assert_array_equal(z0, [2.05, 1.0, np.nan, np.nan, np.nan, 1.5])  # quasar z's only
    z1, cls1, _ = training_labels(index, labels, classes, replay=False, with_classes=True)
    np.testing.assert_array_equal(z1, [2.05, np.nan, 0.12, np.nan, np.nan, np.nan])
    assert cls1.tolist() == [k["BAL"], UNKNOWN, k["GALAXY"], UNKNOWN, k["STAR"], UNKNOWN]


def test_not_a_quasar_decisions_teach_the_class_head(decided):
    """An inspector types the mock's stars and galaxies; a class-head model retrained on the decisions alone
    (no replay) is taught exactly those classes, and the quasars they corrected as QSO."""
    from dataclasses import replace

    from db.labels import decided_classes
    from inspector.pipeline.retrain import retrain
    from inspector.store import open_store
    from model.fnet import FNetConfig

    store, url = decided
    ix = open_store(store).index
    truth = pd.to_numeric(ix["CLASS_PERSON"]).to_numpy()
    others = {o: {1: "STAR", 4: "GALAXY"}[int(c)] for o, c in zip(ix["object_id"], truth) if c in (1, 4)}
    assert len(others) >= 3
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            for oid, kind in others.items():
                record_decision(s, oid, "alice", "not_qso", quality=4, spectral_type=kind)
            said = decided_classes(s, min_quality=3)
            labels = decided_labels(s, min_quality=3)
    finally:
        engine.dispose()
    code = {"STAR": 1, "GALAXY": 4}
    assert all(said.loc[o, "class_person"] == code[k] for o, k in others.items())
    assert set(said.loc[labels.index, "class_person"]) <= {3, 30}  # every quasar label is a quasar class
    free = ~is_held_out(list(others))
    tiny = FNetConfig(kernel_sizes=(31, 15, 3), paddings=(15, 7, 1), stages=((1, 4, 1), (4, 1, 1)), head=(16,))
    tiny = replace(tiny, output="bins", n_bins=64, z_max_bins=4.0, input_pool=4, n_classes=5)
    res = retrain(store, url, from_scratch=True, config=tiny, epochs=1, promote="never", device="cpu", replay=False)
    got = res.metrics["labels"]["classes"]
    kinds = np.array(list(others.values()))
    assert got["STAR"] == int((free & (kinds == "STAR")).sum()) and got["GALAXY"] == int((free & (kinds == "GALAXY")).sum())
    assert got["STAR"] + got["GALAXY"] > 0 and got["QSO"] + got["BAL"] == int((~is_held_out(labels.index)).sum())
    assert res.metrics["labels"]["n_decided_classes"] == len(said)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_retrain_on_gpu(decided):
    from inspector.pipeline.retrain import retrain
    from model.checkpoint import load_checkpoint

    store, url = decided
    before = _state(url)
    res = retrain(store, url, epochs=1, promote="never", device="cuda")
    _, meta = load_checkpoint(res.path)
    assert meta["provenance"]["device"].startswith("cuda")  # bf16 autocast there (model.predict.autocast_for)
    assert res.metrics["after"]["mock_test"]["n"] > 0 and _state(url)[0] == before[0]
