"""The Inspect desk without a browser: keys for everything, adopting in few keys, types that keep their z."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pn = pytest.importorskip("panel")

from app_helpers import flagged_queue
from db_helpers import fresh_database

from db.decisions import history
from db.engine import make_engine, session_scope
from inspector.app.desk import estimators_consensus
from inspector.app.item import candidates
from inspector.app.session import InspectSession


def _queue(url: str, n: int = 8, z_pipe: float = 2.0, sn: list[float] | float = 3.0) -> None:
    flagged_queue(url, {"sn": sn, "Z_PIPE": z_pipe, "Z_QN": 2.01, "Z_PCA": 1.99},
                  {"z_fnet": 0.45, "z_fnet_err": 0.01, "p_fnet": 0.5, "z_alt1": 2.0, "p_alt1": 0.3, "z_tpl": 2.004,
                   "tpl_dchi2": 80.0}, n, plate=7100)


@pytest.fixture
def session(tmp_path):
    url = fresh_database(tmp_path)
    _queue(url)
    t = InspectSession(make_engine(url), None, inspector="alice")
    t.start()
    return t


def _last(t: InspectSession, oid: str):
    with session_scope(t.engine) as s:
        return history(s, oid)[-1]


def test_accepting_fnet_takes_two_keys_and_any_candidate_four(session):
    t = session
    first = t.item.object_id
    t.dispatch("4"), t.dispatch("Enter")  # two keys
    assert _last(t, first).action == "accept"
    # the 4th candidate with a z, in four keys: j, 4 (its row number), a quality, c
    oid = t.item.object_id
    usable = [c for c in t.candidates() if c["z"] is not None]
    for k in ("j", "4", "3", "c"):
        t.dispatch(k)
    d = _last(t, oid)
    assert (d.action, d.quality, d.z_final) == ("correct", 3, pytest.approx(usable[3]["z"]))


def test_a_quality_key_can_save_as_in_marz(session):
    t = session
    t.quality_submits = True
    oid = t.item.object_id
    t.dispatch("4")  # on FNet's z: an accept, in one key
    assert _last(t, oid).action == "accept" and t.item.object_id != oid
    oid = t.item.object_id
    t.dispatch("e")  # the estimators' consensus (template, Z_PIPE, Z_QN, Z_PCA agree near 2.0)
    t.dispatch("3")
    d = _last(t, oid)
    assert d.action == "correct" and d.z_final == pytest.approx(2.0, abs=0.01)


def test_consensus_is_the_largest_agreeing_group():
    item = SimpleNamespace(z_fnet=0.45, z_tpl=2.004, info={"z_pipe": 2.0, "z_qn": -1.0, "z_pca": 1.99})
    assert estimators_consensus(item) == pytest.approx(2.0)  # -1 (no z) ignored, FNet the odd one out
    lone = SimpleNamespace(z_fnet=0.45, z_tpl=1.3, info={"z_pipe": 2.0, "z_qn": None, "z_pca": None})
    assert estimators_consensus(lone) is None


def test_a_galaxy_keeps_its_redshift(session):
    """Defect 2: 'not a quasar', typed GALAXY, with the template z adopted, is stored with that z."""
    t = session
    oid = t.item.object_id
    t.dispatch("G")
    t.z = 0.1234
    t.dispatch("4")
    assert t.dispatch("x")
    d = _last(t, oid)
    assert (d.action, d.spectral_type, d.z_final, d.quality) == ("not_qso", "GALAXY", 0.1234, 4)


def test_a_star_keeps_a_negative_redshift_a_quasar_cannot(session):
    t = session
    assert not t.set_z_text("-0.0002")  # no type yet: a quasar's range
    assert "STAR" in t.message and "None" not in t.message
    t.dispatch("S")
    assert t.set_z_text("-0.0002") and t.z == -0.0002
    t.dispatch("ArrowLeft")
    assert t.z == pytest.approx(-0.0003)  # nudges go below 0 for a star
    oid = t.item.object_id
    t.dispatch("3")
    assert t.dispatch("x")
    d = _last(t, oid)
    assert (d.spectral_type, d.z_final) == ("STAR", pytest.approx(-0.0003))


def test_types_and_flags_by_key_and_kept_on_the_way_back(session):
    t = session
    oid = t.item.object_id
    t.dispatch("B"), t.dispatch("Z"), t.dispatch("D"), t.dispatch("D"), t.dispatch("K")
    assert t.spectral_type == "BAL QSO" and sorted(t.flags) == ["bad_class", "bad_z"]
    t.dispatch("4"), t.dispatch("Enter")
    t.dispatch("p")
    assert t.item.object_id == oid and t.spectral_type == "BAL QSO" and sorted(t.flags) == ["bad_class", "bad_z"]


def test_a_negative_pipeline_z_is_a_candidate(tmp_path):
    """Defect 3: a star's Z_PIPE of -2.4e-5 is shown (and adoptable), not '–'."""
    url = fresh_database(tmp_path)
    _queue(url, n=2, z_pipe=-2.4e-5)
    t = InspectSession(make_engine(url), None, inspector="bob")
    t.start()
    row = next(c for c in candidates(t.item, t.z) if c["source"] == "Z_PIPE")
    assert row["z"] == pytest.approx(-2.4e-5) and row["dv"] is not None


def test_view_keys_zoom_sky_model_focus(session):
    from inspector.app.inspect_view import InspectView

    t = session
    v = InspectView(t)
    r = v.plot.zoom.x_range
    w0 = r.end - r.start
    t.dispatch("+")
    assert (r.end - r.start) == pytest.approx(w0 / 1.5)
    t.dispatch("-"), t.dispatch("-")
    assert (r.end - r.start) == pytest.approx(w0 * 1.5)
    t.dispatch("y")
    assert not v.plot.is_shown("sky") and not v.plot.stand_ins["sky"].visible  # both panels, the legend
    seen = []
    v.keys.param.watch(lambda e: seen.append(1), "focus")
    t.dispatch("i")
    assert seen == [1]
    t.dispatch("Z")
    assert v.flags.value == ["bad_z"]
    t.dispatch("G")
    assert v.types.value == "GALAXY"
    assert np.isfinite(w0)


def test_what_a_person_set_is_kept_across_reloads(session):
    """Issue 14 point 6: smoothing, toggles and the queue order come back in a new session (a reload)."""
    t = session
    t.dispatch("]"), t.dispatch("]"), t.dispatch("y"), t.dispatch("o")
    t.quality_submits = True
    t.queue_order = "sn"
    again = InspectSession(t.engine, None, inspector="alice")
    assert (again.smoothing, again.show_sky, again.show_model, again.quality_submits, again.queue_order) == \
        (t.smoothing, False, False, True, "sn")
    assert t.smoothing > 0
    other = InspectSession(t.engine, None, inspector="bob")  # one person's choices are theirs alone
    assert (other.smoothing, other.show_sky, other.queue_order) == (0.0, True, "priority")


def test_the_queue_order_is_the_persons_choice(tmp_path):
    url = fresh_database(tmp_path)
    _queue(url, n=5, sn=[1.0, 2.0, 9.0, 4.0, 5.0])
    by_sn = InspectSession(make_engine(url), None, inspector="carl", queue_order="sn")
    by_sn.start()
    by_priority = InspectSession(make_engine(url), None, inspector="dora")
    by_priority.start()
    assert by_priority.item.object_id == "7100-57100-0000"  # the highest priority
    assert by_sn.item.object_id == "7100-57100-0002"  # the best S/N
