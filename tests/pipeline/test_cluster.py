"""Ingest and predict on a Dask cluster (issue 16): the same store and the same predictions as locally.

One LocalCluster of 2 worker processes x 1 thread for the module; a small mock with small chunks, so
every stage is cut into several tasks that finish out of order and must come back in order.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from inspector.store import open_store
from inspector.store.files import baseline_path, template_cache_path
from model.assets import DEMO_MODEL

pytestmark = pytest.mark.slow
N = 36


@pytest.fixture(scope="module")
def cluster():
    import dask
    from distributed import Client, LocalCluster

    # a worker that dies on a chunk: give up on the chunk at once (the default retries 3 times)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
                Client(lc) as client:
            yield client


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from inspector.mock import make_survey

    d = tmp_path_factory.mktemp("cluster")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_survey(d / "s", N, seed=5, workers=1, progress=False)
    return d


@pytest.fixture(scope="module")
def stores(survey, cluster):
    """The survey ingested locally and on the cluster (no catalog: then predict runs the baseline too)."""
    from inspector.ingest import ingest

    kw = {"chunk_size": 5, "progress": False, "no_catalog": True, "fsync": False}
    local = ingest([str(survey / "s")], survey / "local", workers=1, **kw)
    remote = ingest([str(survey / "s")], survey / "remote", scheduler=cluster, **kw)
    assert local.n_stored == remote.n_stored == N
    return survey / "local", survey / "remote"


def _table(path, drop=()):
    return pq.read_table(path).drop_columns(list(drop)).to_pandas()


def test_ingest_on_a_cluster_writes_the_local_store(stores):
    a, b = (open_store(p) for p in stores)
    assert np.array_equal(a.flux, b.flux) and np.array_equal(a.ivar, b.ivar)
    pd.testing.assert_frame_equal(a.index, b.index)
    pd.testing.assert_frame_equal(a.rejected.drop(columns="when"), b.rejected.drop(columns="when"))
    assert "dask" in b.meta["runs"][-1] and b.meta["runs"][-1]["dask"]["workers"] == 2


def test_predict_on_a_cluster_writes_the_local_predictions(stores, cluster):
    from inspector.pipeline.predict import write_predictions

    import torch

    kw = {"batch_size": 4, "device": "cpu", "template_processes": 1}
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Dask worker: the last bits of a network's output depend on the thread count
    try:
        a = write_predictions(stores[0], DEMO_MODEL, stores[0] / "p.parquet", **kw)
    finally:
        torch.set_num_threads(old)
    b = write_predictions(stores[1], DEMO_MODEL, stores[1] / "p.parquet", scheduler=cluster, chunk_rows=8, **kw)
    assert b["dask"]["workers"] == 2 and a["dask"] is None
    pa_, pb_ = _table(a["predictions"]), _table(b["predictions"])
    assert len(pa_) == N and pa_["z_tpl"].notna().sum() > N // 2 and pa_["fnet_class"].notna().all()
    pd.testing.assert_frame_equal(pa_, pb_)  # FNet's z, class, Z_TPL: every column, bit for bit
    pd.testing.assert_frame_equal(_table(template_cache_path(stores[0])), _table(template_cache_path(stores[1])))
    assert a["baseline"] and b["baseline"]  # no catalog Z_QN in these stores: the baseline ran
    qa, qb = _table(baseline_path(stores[0])), _table(baseline_path(stores[1]))
    assert len(qa) == N
    pd.testing.assert_frame_equal(qa, qb)


def test_mc_dropout_on_a_cluster_gives_the_local_numbers(stores, cluster, tmp_path):
    """`--mc-samples` with `--scheduler`: each task seeds its dropout passes by its rows' place in the store,
    so the cluster's z and z_err are the local run's, bit for bit."""
    import torch

    from inspector.pipeline.predict import write_predictions
    from model.checkpoint import save_checkpoint
    from model.fnet import FNet, FNetConfig

    cfg = FNetConfig(kernel_sizes=(31, 15, 3), paddings=(15, 7, 1), stages=((1, 4, 1), (4, 1, 1)), head=(16,),
                     output="regression", input_pool=4, dropout=0.3)  # fmt: skip
    torch.manual_seed(0)
    m = FNet(cfg)
    m.set_label_scaling(0.0, 4.0)
    path = tmp_path / "dropout.pt"
    save_checkpoint(path, m.eval())
    kw = {"batch_size": 4, "device": "cpu", "mc_samples": 4, "template": False, "baseline": False}
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Dask worker
    try:
        a = write_predictions(stores[0], path, tmp_path / "local.parquet", **kw)
    finally:
        torch.set_num_threads(old)
    b = write_predictions(stores[1], path, tmp_path / "remote.parquet", scheduler=cluster, chunk_rows=8, **kw)
    assert a["uncertainty"] == b["uncertainty"] == {"method": "mc_dropout", "mc_samples": 4}
    pa_, pb_ = _table(a["predictions"]), _table(b["predictions"])
    assert len(pa_) == N and (pa_["z_fnet_err"] > 0).sum() > N // 2  # the passes differ: dropout was on
    pd.testing.assert_frame_equal(pa_, pb_)


def test_a_file_that_kills_its_dask_worker_is_rejected_and_the_rest_stored(survey, cluster):
    from inspector.ingest import ingest
    from inspector.readers import read_any

    files = sorted(str(p) for p in (survey / "s").rglob("spec-*.fits"))[:6]
    poison = files[2]

    def reader(path: str):  # nested: pickled by value, so the workers need not import this test module
        if path == poison:
            import os

            os._exit(3)
        return read_any(path)

    rep = ingest(files, survey / "poisoned", chunk_size=3, progress=False, fsync=False, reader=reader,
                 scheduler=cluster, no_catalog=True)
    assert rep.n_stored == 5 and rep.n_rejected == 1
    rej = open_store(survey / "poisoned").rejected
    assert rej["file"].tolist() == [poison] and "Dask worker reading it died" in rej["reason"].iloc[0]


def test_an_unreachable_scheduler_fails_fast_naming_it(survey):
    from inspector.cli import app

    addr = "tcp://127.0.0.1:9"  # discard port: nothing listens
    t0 = time.perf_counter()
    for args in (["ingest", str(survey / "s"), "--store", str(survey / "never"), "--no-progress"],
                 ["predict", "--store", str(survey / "never"), "--model", str(DEMO_MODEL)]):
        r = CliRunner().invoke(app, [*args, "--scheduler", addr, "--scheduler-timeout", "2"])
        assert r.exit_code == 2, r.output
        assert f"cannot reach the Dask scheduler at {addr}" in r.output
    assert time.perf_counter() - t0 < 30
