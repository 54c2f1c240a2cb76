"""The files under STORE/ have one owner: where each run lives, and writes that are whole or not at all."""
from __future__ import annotations

import os
import time

import pytest

from inspector.store.files import (
    atomic_path,
    baseline_path,
    prediction_runs,
    predictions_path,
    resolve_predictions,
    scores_path,
    template_cache_path,
    triage_path,
)


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    f = tmp_path / "run.parquet"
    f.write_bytes(b"the previous run")
    with pytest.raises(RuntimeError), atomic_path(f) as tmp:
        tmp.write_bytes(b"half a ne")
        raise RuntimeError("killed mid-write")
    assert f.read_bytes() == b"the previous run"
    assert not (tmp_path / "run.parquet.tmp").exists()
    with atomic_path(f) as tmp:
        tmp.write_bytes(b"the new run")
    assert f.read_bytes() == b"the new run"


def test_where_each_run_lives(tmp_path):
    store = tmp_path / "store"
    (store / "predictions").mkdir(parents=True)
    run = predictions_path(store, "assets/models/fnet-small-mock.pt")
    assert run == store / "predictions" / "fnet-small-mock.parquet"
    assert triage_path(store, run) == store / "triage" / "fnet-small-mock.parquet"
    assert scores_path(triage_path(store, run)) == store / "triage" / "fnet-small-mock.scores.parquet"
    for p in (run, baseline_path(store), template_cache_path(store)):
        p.write_bytes(b"x")
        time.sleep(0.01)
    os.utime(run, (1, 1))  # the oldest
    # the baseline run and the template cache are not prediction runs, however new
    assert prediction_runs(store) == [run]
    assert resolve_predictions(store, "fnet-small-mock") == run
    with pytest.raises(FileNotFoundError, match="nor under"):
        resolve_predictions(store, "other-model")
