"""inspector.pipeline.demo (what `inspector demo` and `./run.sh demo` build): a first run makes everything, a
second run reuses the survey and the predictions and keeps the decisions people already made."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # two demo runs on a 12-spectrum mock: ~30 s on 2 busy cores


def _queue_and_history(url: str, object_id: str):
    from db.decisions import history
    from db.engine import make_engine, session_scope
    from db.queue import queue_stats

    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            return queue_stats(s), [(d.inspector.name, d.action, d.z_final) for d in history(s, object_id)]
    finally:
        engine.dispose()


def test_second_run_reuses_the_demo_and_keeps_decisions(tmp_path):
    from db.decisions import record_decision
    from db.engine import make_engine, session_scope
    from db.queue import next_item
    from inspector.pipeline.demo import run_demo

    first: list[str] = []
    run = run_demo(tmp_path / "demo", n=12, seed=0, echo=first.append)
    assert any(m.startswith("making a 12-spectrum mock survey") for m in first)
    assert any(m.startswith("predicting with") for m in first)
    assert run.db_file.exists() and run.predictions.exists()
    assert run.counts["spectra"] == 12
    assert run.counts["flags"] >= 1, "the seed-0 mock must leave something in the queue for this test"
    assert str(run.db_file) in run.summary() and f"{run.counts['flags']} triage flags" in run.summary()

    engine = make_engine(run.db_url)
    try:
        with session_scope(engine) as s:
            sp = next_item(s, "alice", crosscheck_fraction=0)
            assert sp is not None
            decided = sp.object_id
            record_decision(s, sp, "alice", "correct", z_final=2.25, quality=3)
    finally:
        engine.dispose()
    stats_before, history_before = _queue_and_history(run.db_url, decided)
    assert stats_before["decided_once"] == 1
    predicted_at = run.predictions.stat().st_mtime_ns

    second: list[str] = []
    again = run_demo(tmp_path / "demo", n=12, seed=0, echo=second.append)
    assert not any(m.startswith(("making a", "predicting with")) for m in second)
    assert again.predictions == run.predictions and again.predictions.stat().st_mtime_ns == predicted_at
    assert again.counts["spectra"] == 12
    stats_after, history_after = _queue_and_history(again.db_url, decided)
    assert history_after == history_before == [("alice", "correct", 2.25)]
    assert stats_after["decided_once"] == 1 and stats_after["undecided"] == stats_after["flagged"] - 1
