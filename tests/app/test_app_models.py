"""The Models tab (inspector/app/models_tab.py): versions table, a retrain job in a child process (progress,
cancel, done), promote and rollback through the buttons -- on a 40-spectrum mock triaged into SQLite."""
from __future__ import annotations

import time

import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(engine, store, db url): the overview tests' mock, predicted and triaged."""
    from app_helpers import triaged_mock

    from db.engine import make_engine

    store, _, _, url = triaged_mock(tmp_path_factory.mktemp("models"))
    engine = make_engine(url)
    yield engine, store, url
    engine.dispose()


def _current(url):
    from db.engine import make_engine, session_scope
    from db.load import current_model

    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            return current_model(s).id
    finally:
        engine.dispose()


def _wait(mv, timeout=120):
    t0 = time.time()
    while mv.job.running() and time.time() - t0 < timeout:
        time.sleep(0.2)
        mv.poll()
    mv.job.wait(10)
    return mv.poll()


def test_builds_lists_current_and_saves_html(demo, tmp_path):
    import panel as pn

    from inspector.app.models_tab import models_view

    engine, store, url = demo
    view = models_view(engine, store, url)
    mv = view.models_state
    df = mv.table.value
    assert len(df) == 1 and "fnet-small-mock" in df["name"].iloc[0] and df["current"].iloc[0].startswith("●")
    assert mv.current_id() == _current(url)
    out = tmp_path / "models.html"
    pn.panel(view).save(out, resources="inline")
    assert out.stat().st_size > 10_000 and "Model versions" in out.read_text()


def test_job_cancel_then_done_then_promote_and_rollback(demo, tmp_path):
    from inspector.app.models_tab import ModelsView

    engine, store, url = demo
    first = _current(url)
    mv = ModelsView(engine, store, url, job_root=tmp_path / "jobs", device="cpu")
    # nothing selected: a message, no exception
    mv.promote()
    assert "Select a model version" in mv.message.object

    mv.epochs.value = 3
    mv.retrain_button.clicks += 1  # -> start()
    assert mv.job is not None and mv.retrain_button.disabled and not mv.cancel_button.disabled
    mv.start()  # a second start while running is refused with a message
    assert "already running" in mv.message.object
    mv.cancel_button.clicks += 1  # -> cancel(): stops at the end of epoch 1
    p = _wait(mv)
    assert p["state"] == "cancelled" and p["epoch"] == 1, mv.job.log()
    assert "state: cancelled" in mv.progress_line.object and "loss" in mv.progress_line.object
    assert "nothing registered" in mv.message.object and not mv.retrain_button.disabled
    assert len(mv.table.value) == 1 and _current(url) == first

    mv.epochs.value = 1
    mv.start()
    p = _wait(mv)
    assert p["state"] == "done", mv.job.log()
    new = int(p["version_id"])
    assert len(mv.table.value) == 2 and f"model version {new}" in mv.message.object
    assert _current(url) == first and mv.bar.value == 1

    ids = list(mv.table.value["id"].astype(int))
    mv.table.selection = [ids.index(new)]
    mv.promote_button.clicks += 1  # a background job: the page stays live, its step on the bar
    assert mv.job_kind == "Promote" and mv.promote_button.disabled and mv.retrain_button.disabled
    mv.start()  # no retrain while a promotion runs
    assert "already running" in mv.message.object
    p = _wait(mv)
    assert p["state"] == "done" and p["step"] == "switched", mv.job.log()
    assert _current(url) == new and "Promote: model version" in mv.message.object, mv.message.object
    assert mv.current_id() == new and mv.bar.value == mv.bar.max and "step 5/5" in mv.progress_line.object
    assert not mv.promote_button.disabled and not mv.retrain_button.disabled
    mv.table.selection = [ids.index(first)]
    mv.rollback_button.clicks += 1
    p = _wait(mv)
    assert _current(url) == first and "Rollback: model version" in mv.message.object, mv.message.object


def test_errors_are_shown_not_raised(demo, tmp_path):
    from inspector.app.models_tab import ModelsView

    engine, store, url = demo
    mv = ModelsView(engine, store, url, job_root=tmp_path / "jobs")
    mv.table.value = mv.table.value.assign(id=999)  # a version that does not exist
    mv.table.selection = [0]
    mv.rollback()
    p = _wait(mv)
    assert p["state"] == "failed", mv.job.log()
    assert "failed" in mv.message.object and "999" in mv.message.object, mv.message.object
    mv.cancel()
    assert "No retrain job" in mv.message.object
