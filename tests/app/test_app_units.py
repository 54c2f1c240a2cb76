"""The inspection app without a browser: keymap, line table, markers at z, decisions via the UI's functions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pn = pytest.importorskip("panel")

from app_helpers import flagged_queue
from db_helpers import fresh_database

from db.decisions import history
from db.engine import make_engine, session_scope
from db.load import add_model_version, load_predictions, load_spectra, load_triage_flags
from inspector.app import keymap
from inspector.app.desk import feature_lines
from inspector.app.session import InspectSession, parse_z
from model import lines as L


def make_queue(url: str, n: int = 6) -> None:
    """n spectra (no files), FNet predictions with alternatives, every one flagged for inspection."""
    flagged_queue(url, {"sn": 3.0, "Z_PIPE": 2.0, "Z_QN": [-1.0] + [2.01] * (n - 1), "Z_PCA": 1.99},
                  {"z_fnet": [1.5 + 0.1 * i for i in range(n)], "z_fnet_err": 0.01, "p_fnet": 0.5, "z_alt1": 2.0,
                   "p_alt1": 0.3}, n, plate=7000)


@pytest.fixture
def url(tmp_path):
    u = fresh_database(tmp_path)
    make_queue(u)
    return u


def test_keymap_table_drives_help_and_dispatch():
    helptext = keymap.help_markdown()
    assert len({b.key for b in keymap.KEYMAP}) == len(keymap.KEYMAP)
    for b in keymap.KEYMAP:
        assert b.description in helptext
        assert callable(getattr(InspectSession, b.action)), b
        assert keymap.action_for(b.key) == b.action
    assert keymap.js_keys() == [b.key for b in keymap.KEYMAP]
    assert keymap.action_for("Enter") == "accept" and keymap.action_for("4") == "quality_4"
    assert keymap.action_for("q") is None


def test_every_type_and_flag_has_its_key():
    """Keys for everything (issue 14): each spectral type and each issue flag of the vocabulary is one key."""
    from db.validate import FLAGS, SPECTRAL_TYPES

    for st in SPECTRAL_TYPES:
        assert keymap.key_for("set_type", st.name), st.name
    for f in FLAGS:
        assert keymap.key_for("toggle_flag", f.name), f.name
    for action in ("focus_comment", "next_line", "zoom_in", "zoom_out", "toggle_sky", "toggle_model",
                   "adopt_consensus", "pick_candidate"):
        assert keymap.key_for(action), action


def test_js_key_handler_is_generated_from_the_table():
    from inspector.app.inspect_view import KeyCatcher

    k = KeyCatcher(lambda key: None)
    assert k.keys == keymap.js_keys()
    assert "model.keys.includes" in KeyCatcher._esm  # no key is spelled out in the JS


def test_air_to_vacuum_and_line_table():
    # SDSS idlutils airtovac: H-alpha 6562.80 (air) -> 6564.61 (vacuum), H-beta 4861.33 -> 4862.68
    assert L.air_to_vacuum(6562.801) == pytest.approx(6564.614, abs=0.01)
    assert L.air_to_vacuum(4861.325) == pytest.approx(4862.683, abs=0.01)
    assert L.air_to_vacuum(1215.67) == 1215.67  # below 2000 A: already vacuum
    t = L.line_table()
    lya = t[t["longname"] == "Lyman α"].iloc[0]
    assert lya["lambda"] == 1215.67 and lya["major"]
    air = t[~t["vacuum"]]
    assert len(air) > 10 and (air["lambda"] > air["lambda_file"]).all()
    assert L.select(t, major_only=True)["major"].all()
    assert len(L.select(t, major_only=False)) == len(t)


@pytest.mark.parametrize("z", [0.0, 0.83233, 2.123456789, 3.5, 7.0])
def test_markers_follow_z_exactly(z):
    from inspector.app.spectrum_plot import SpectrumPlot

    p = SpectrumPlot()
    p.set_lines(z, rest=False, major_only=False)
    t = L.line_table()
    np.testing.assert_allclose(np.asarray(p.lines.data["x"]) / (1 + z), t["lambda"].to_numpy(), rtol=0, atol=1e-9)
    # the marker z recovered from any line is the z asked for, far better than 1e-5
    zs = np.asarray(p.lines.data["x"]) / t["lambda"].to_numpy() - 1
    assert np.abs(zs - z).max() < 1e-5
    p.set_lines(z, rest=True, major_only=True)
    np.testing.assert_allclose(p.lines.data["x"], L.select(t, major_only=True)["lambda"].to_numpy())


def test_parse_z_refuses_bad_input():
    assert parse_z(" 2.12345 ") == 2.12345
    for bad in ("abc", "-1", "12", "nan", "inf", "", "0_5", "1_000", "0x1"):
        with pytest.raises(ValueError):
            parse_z(bad)
    assert parse_z("0.5") == 0.5  # "0_5" above: Python's float() would have read 5.0
    # a star or a galaxy may be blueshifted; a quasar may not
    assert parse_z("-2.4e-5", "STAR") == -2.4e-5 and parse_z("-0.001", "GALAXY") == -0.001
    with pytest.raises(ValueError):
        parse_z("-0.001", "QSO")
    with pytest.raises(ValueError):
        parse_z("0.5", "STAR")  # a star at z 0.5 is a typo


def test_decisions_through_the_ui_functions(url):
    engine = make_engine(url)
    t = InspectSession(engine, None, inspector="alice")
    t.start()
    first = t.item.object_id
    assert first == "7000-57000-0000" and t.z == pytest.approx(1.5)
    assert not t.dispatch("Enter") and "quality" in t.message  # accept needs a quality: nothing saved
    assert "None" not in t.message and "press 0-4" in t.message  # said as a person would, with the key
    assert t.message_level == "error"
    with session_scope(engine) as s:
        assert history(s, first) == []
    t.dispatch("4")
    assert t.message == ""  # the complaint goes once it is fixed
    assert t.dispatch("Enter")
    with session_scope(engine) as s:
        (d,) = history(s, first)
        assert (d.action, d.quality, d.z_final, d.inspector.name) == ("accept", 4, pytest.approx(1.5), "alice")
    assert t.item.object_id == "7000-57000-0001"  # auto-advance after the write

    # typed z, nudges, candidates; then correct
    assert not t.set_z_text("abc") and "number" in t.message
    assert not t.set_z_text("-1") and not t.set_z_text("12")
    assert t.set_z_text("2.34567") and t.z == 2.34567
    t.dispatch("ArrowRight"); t.dispatch("ArrowUp")
    assert t.z == pytest.approx(2.35577, abs=1e-12)
    t.dispatch("a")  # next candidate: FNet alt 1
    assert t.z == 2.0
    t.set_z_text("2.41234")
    t.comment = "<b>CIV</b> & MgII"
    t.dispatch("3")
    t.dispatch("c")
    with session_scope(engine) as s:
        (d,) = history(s, "7000-57000-0001")
        assert (d.action, d.z_final, d.quality, d.comment) == ("correct", 2.41234, 3, "<b>CIV</b> & MgII")

    # bad input saves nothing: a 10 kB comment
    cur = t.item.object_id
    t.comment = "x" * 10_000
    t.dispatch("2")
    assert not t.correct() and "comment" in t.message and t.item.object_id == cur
    with session_scope(engine) as s:
        assert history(s, cur) == []
    t.comment = ""
    assert t.skip()
    with session_scope(engine) as s:
        assert [d.action for d in history(s, cur)] == ["skip"]

    # back: the previous decided spectrum comes back with my decision on it
    t.dispatch("p")
    assert t.item.object_id == cur and t.item.mine["action"] == "skip"
    t.dispatch("p")
    assert t.item.object_id == "7000-57000-0001" and t.z == 2.41234 and t.quality == 3


def test_two_inspectors_get_different_spectra(url):
    engine = make_engine(url)
    # cross-checks (a second opinion on purpose) off: the two must never meet the same spectrum
    a, b = (InspectSession(engine, None, inspector=n, crosscheck_fraction=0.0) for n in ("alice", "bob"))
    a.start(); b.start()
    seen_a, seen_b = set(), set()
    for _ in range(3):
        seen_a.add(a.item.object_id); seen_b.add(b.item.object_id)
        assert a.item.object_id != b.item.object_id
        a.quality = b.quality = 4
        a.accept(); b.accept()
    assert not (seen_a & seen_b)


def test_inspect_view_builds_and_escapes(url):
    from inspector.app.inspect_view import InspectView
    from inspector.app.why_panel import why_html

    engine = make_engine(url)
    with session_scope(engine) as s:
        from db.decisions import record_decision

        record_decision(s, "7000-57000-0000", "<script>eve</script>", "correct", z_final=2.0, quality=3,
                        comment="<img src=x onerror=alert(1)>")
    t = InspectSession(engine, None, inspector="alice")
    t.start()
    v = InspectView(t)
    assert v.panel() is not None
    assert t.jump("7000-57000-0000") and not t.jump("<b>nope</b>")
    page = why_html(t)
    assert "<script>" not in page and "&lt;script&gt;" in page
    v._message()
    assert "<b>nope</b>" not in v.msg.object and "&lt;b&gt;nope" in v.msg.object


def test_fnet_class_in_the_candidates_and_why_it_is_here(tmp_path):
    """FNet's class and p_qso note its candidate; "why it is here" gives the class, p_qso and every class
    probability (in the class table's order), and a class rule names its value and FNet's class."""
    from inspector.app.why_panel import why_html
    from inspector.pipeline.predict import class_columns
    from inspector.triage import RULES

    url = fresh_database(tmp_path)
    ids = ["7000-57000-0001", "7000-57000-0002", "7000-57000-0003"]
    prob = np.array([[0.01, 0.0, 0.97, 0.01, 0.01], [0.66, 0.04, 0.02, 0.25, 0.03], [np.nan] * 5])
    cls = class_columns(prob[:2], 2)
    pred = pd.DataFrame({"object_id": ids, "z_fnet": [0.0003, 1.2, 2.0], "z_fnet_err": 0.01, "p_fnet": 0.9,
                         **{c: np.append(v, None if c == "fnet_class" else np.nan) for c, v in cls.items()}})
    w = {r.name: r.weight for r in RULES}
    flags = pd.DataFrame({"object_id": ids, "rule": ["fnet_not_qso", "fnet_qso_unsure", "dv_pipe"],
                          "value": [0.01, 0.70, 5000.0],
                          "priority": [w["fnet_not_qso"], w["fnet_qso_unsure"], w["dv_pipe"]]})  # fmt: skip
    with session_scope(make_engine(url)) as s:
        load_spectra(s, pd.DataFrame({"object_id": ids, "Z_PIPE": [0.0, 1.2, 2.2], "sn": 9.0}))
        mv = add_model_version(s, "classy", "cd" * 20, make_current=True)
        load_predictions(s, pred, mv.id)
        load_triage_flags(s, flags)
    t = InspectSession(make_engine(url), None, inspector="alice")
    assert t.jump(ids[0])
    it = t.item
    assert it.fnet_class == "STAR" and it.p_qso == pytest.approx(0.01)
    assert list(it.class_probs) == ["QSO", "BAL", "STAR", "GALAXY", "BAD"]
    fnet = t.candidates()[0]
    assert fnet["source"] == "FNet" and fnet["note"] == "± 0.0100 · STAR, p_qso 0.01"
    page = why_html(t)
    assert "<b>fnet_not_qso</b> p_qso 0.01, FNet: STAR (priority 2)" in page
    assert "FNet class: <b>STAR</b>, p_qso 0.010" in page and "QSO 0.01 · BAL 0.00 · STAR 0.97" in page
    assert t.jump(ids[1])
    assert "<b>fnet_qso_unsure</b> p_qso 0.7, FNet: QSO" in why_html(t) and "p_qso 0.70" in t.candidates()[0]["note"]
    assert t.jump(ids[2])  # a model without a class head: nothing made up
    assert t.item.fnet_class is None and t.item.class_probs == {} and t.candidates()[0]["note"] == "± 0.0100"
    assert "FNet class: – (the model has no class head)" in why_html(t)


def test_serve_crosscheck_fraction_option(tmp_path, monkeypatch):
    """`inspector serve --crosscheck-fraction F` reaches serve(); out-of-range values are refused."""
    from typer.testing import CliRunner

    import inspector.app.serve as S
    from inspector.cli import app

    (tmp_path / "store.json").write_text("{}")
    seen = {}
    monkeypatch.setattr(S, "serve", lambda *a, **kw: seen.update(kw))
    r = CliRunner().invoke(app, ["serve", "--store", str(tmp_path), "--crosscheck-fraction", "0.25"])
    assert r.exit_code == 0, r.output
    assert seen["crosscheck_fraction"] == 0.25
    assert CliRunner().invoke(app, ["serve", "--store", str(tmp_path), "--crosscheck-fraction", "1.5"]).exit_code != 0
    with pytest.raises(ValueError):
        S.make_app(str(tmp_path), "sqlite://", crosscheck_fraction=-0.1)


def test_z_from_clicked_feature_and_line(url):
    """A feature at observed λ named as a line of rest λ sets z = λ_obs / λ_rest - 1 (exact, 5 decimals typed
    nowhere); through the page: a click (observed or rest-frame axis) + the line select call the same function."""
    from types import SimpleNamespace

    from inspector.app.inspect_view import InspectView

    engine = make_engine(url)
    t = InspectSession(engine, None, inspector="alice")
    t.start()
    lya = float(L.line_table().set_index("name").loc["Lyα", "lambda"])
    assert t.z_from_feature(lya * 3.5, lya) and t.z == pytest.approx(2.5, abs=1e-12)
    assert not t.z_from_feature(lya * 10, lya) and t.z == pytest.approx(2.5)  # z 9 is refused, z kept
    assert "between" in t.message

    v = InspectView(t)
    label = next(k for k in v.line_pick.options if k.startswith("Lyα"))
    v._tapped(SimpleNamespace(x=4255.0))  # no spectrum pixels here (no file): the click stands as it is
    assert t.feature_wave == 4255.0 and t.feature_err is None and "4255.0" in v.feature.object
    v.line_pick.value = label
    assert t.z == pytest.approx(4255.0 / lya - 1, abs=1e-12)
    t.rest = True  # in the rest frame a click at x means observed x * (1 + z)
    z0 = t.z
    v._tapped(SimpleNamespace(x=1300.0))
    assert t.feature_wave == pytest.approx(1300.0 * (1 + z0))
    assert v.line_pick.value == ""  # a new feature: its line is not named yet
    t.dispatch("l")  # l: call it the next line of the list, the z follows
    assert t.line_name and v.line_pick.value == t.line_name
    assert t.z == pytest.approx(t.feature_wave / feature_lines()[t.line_name] - 1, abs=1e-12)
    # the next spectrum starts with no feature (it showed NaN before)
    t.dispatch("3"); t.dispatch("Enter")
    assert t.feature_wave is None and "nan" not in v.feature.object.lower()


def test_the_decision_buttons_are_the_vocabulary():
    """Every decision an inspector takes at the desk has its button, in the vocabulary's order; a new action in
    db.validate.ACTIONS without a look is an error, not a silently missing button."""
    from db.validate import ACTIONS
    from inspector.app import inspect_view as V

    shown = [a for a, _, _ in V.desk_buttons()]
    assert shown == [a.name for a in ACTIONS if a.name != "resolve"] + ["previous", "next"]
    looks = dict(V.BUTTON_LOOK)
    del V.BUTTON_LOOK["skip"]
    try:
        with pytest.raises(KeyError, match="skip"):
            V.desk_buttons()
    finally:
        V.BUTTON_LOOK.update(looks)
