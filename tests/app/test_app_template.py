"""The template fit in the Inspect view: Z_TPL and its next minima among the adoptable redshifts, the chi2(z)
panel (fitted live, only while shown), and predictions made before the template fit existed."""
from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pn = pytest.importorskip("panel")

from sqlalchemy import select, update

from db.engine import make_engine, session_scope
from db.schema import Prediction, Spectrum
from inspector.app import chi2_plot as C
from inspector.app.item import C_KMS, Item, candidates
from inspector.app.session import InspectSession

REAL = Path(__file__).resolve().parents[1] / "data" / "real"


@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    from app_helpers import triaged_mock

    from inspector.store import open_store

    store, _, _, url = triaged_mock(tmp_path_factory.mktemp("tpl"))
    return open_store(store), url


def _with_template(url: str) -> str:
    """An object id whose stored prediction has Z_TPL and two more template minima."""
    with session_scope(make_engine(url)) as s:
        for oid, cands in s.execute(select(Spectrum.object_id, Prediction.tpl_candidates)
                                    .join(Prediction, Prediction.spectrum_id == Spectrum.id)
                                    .where(Prediction.z_tpl.is_not(None))):  # fmt: skip
            if cands and len(cands) == 2:
                return oid
    raise AssertionError("no prediction with a template fit and two more minima")


def _triage(mock, oid: str | None = None, name: str = "tina") -> InspectSession:
    store, url = mock
    t = InspectSession(make_engine(url), store, inspector=name)
    if oid is None:
        t.start()
    else:
        assert t.jump(oid)
    return t


def test_candidates_include_the_stored_template_fit(mock):
    _, url = mock
    oid = _with_template(url)
    t = _triage(mock, oid)
    it = t.item
    with session_scope(make_engine(url)) as s:
        p = s.scalars(select(Prediction).join(Spectrum).where(Spectrum.object_id == oid)).one()
        stored = (p.z_tpl, p.z_tpl_err, p.tpl_dchi2, p.tpl_candidates)
    assert (it.z_tpl, it.z_tpl_err, it.tpl_dchi2, it.tpl_candidates) == stored

    z = 2.0
    rows = candidates(it, z)
    src = [r["source"] for r in rows]
    i = src.index("Template")
    assert src[i:i + 3] == ["Template", "Template alt 1", "Template alt 2"]
    assert all(s.startswith("FNet") for s in src[:i]) and src[i + 3] == "Z_PIPE"  # after FNet, before Z_PIPE
    tpl, alt1, alt2 = rows[i:i + 3]
    assert tpl["z"] == it.z_tpl and alt1["z"] == it.tpl_candidates[0]["z"] and alt2["z"] == it.tpl_candidates[1]["z"]
    for r in (tpl, alt1, alt2):  # dv of the current z from the candidate: c (z - z_c) / (1 + z_c)
        assert r["dv"] == pytest.approx(C_KMS * (z - r["z"]) / (1 + r["z"]), abs=0.06)
    assert tpl["note"] == f"± {it.z_tpl_err:.5f}, Δχ²={it.tpl_dchi2:.1f}"
    assert alt1["note"] == f"Δχ²=+{it.tpl_candidates[0]['dchi2']:.1f}"
    assert float(alt2["note"].split("+")[1]) >= float(alt1["note"].split("+")[1]) - 0.05  # best first

    # on the page: the candidates table shows them
    from inspector.app.inspect_view import InspectView

    frame = InspectView(t).cands.value
    assert {"Template", "Template alt 1", "Template alt 2"} <= set(frame["source"])
    assert frame.loc[frame["source"] == "Template", "z"].item() == f"{it.z_tpl:.5f}"


def test_adopting_the_template_candidate_with_the_key(mock):
    _, url = mock
    t = _triage(mock, _with_template(url), name="tom")
    usable = [c for c in t.candidates() if c["z"] is not None]
    k = [c["source"] for c in usable].index("Template")
    for _ in range(k):  # `a` steps through the adoptable redshifts in table order
        assert t.dispatch("a")
    assert t.z == t.item.z_tpl
    assert t.dispatch("a") and t.z == t.item.tpl_candidates[0]["z"]
    assert t.dispatch("A") and t.z == t.item.z_tpl
    assert t.dispatch("f") and t.z == t.item.z_fnet  # FNet's z back
    # the candidates table's click goes to the same z
    from inspector.app.inspect_view import InspectView

    v = InspectView(t)
    row = [c["source"] for c in t.candidates()].index("Template alt 2")
    v._cand_click(SimpleNamespace(row=row))
    assert t.z == t.item.tpl_candidates[1]["z"]
    marked = v.cands.value.set_index("source")["#"]  # the table as shown
    assert marked["Template alt 2"].startswith("●") and not marked["FNet"].startswith("●")  # the adopted z marked
    # a correction saved at the adopted Template z
    while t.candidates()[t.candidate_index]["source"] != "Template":
        t.dispatch("a")
    z_tpl, oid = t.item.z_tpl, t.item.object_id
    assert t.z == z_tpl
    t.dispatch("3")
    assert t.dispatch("c")
    from db.decisions import history

    with session_scope(make_engine(url)) as s:
        assert [(d.action, d.z_final) for d in history(s, oid)] == [("correct", z_tpl)]


def _manifest() -> dict[str, dict[str, str]]:
    with open(REAL / "manifest.csv") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


def _item_from_file(rel: str) -> Item:
    from inspector.readers import read_any

    s = read_any(REAL / rel)[0]
    mask = None if s.and_mask is None else np.asarray(s.and_mask) != 0
    return Item(1, rel, {"z_pipe": None}, np.asarray(s.wave, float), np.asarray(s.flux, float),
                np.asarray(s.ivar, float), mask, None)


@pytest.mark.parametrize("rel", ["sdss/spec-4055-55359-0010.fits", "sdss/spec-7340-58289-0736.fits",
                                 "sdss/spec-1836-54567-0270.fits"])
def test_chi2_plot_has_its_minimum_at_the_file_z(rel):
    z_file = float(_manifest()[rel]["z"])
    item = _item_from_file(rel)
    fit, pixels = C.fit_item(item)
    assert pixels == "native" and fit.npix > 3000
    fig = C.chi2_figure(fit, C.markers(item, fit), 1.0, C.title(fit, pixels))
    (line,) = [r for r in fig.renderers if getattr(r.glyph, "y", None) == "y"]
    data = line.data_source.data
    y = np.asarray(data["y"], float)
    z_min = float(np.asarray(data["z"])[np.nanargmin(y)])
    assert abs(C_KMS * (z_min - z_file) / (1 + z_file)) < 3000, (z_min, z_file)
    assert np.nanmin(y) == 1.0  # chi2 - min chi2 + 1
    assert fig.y_scale.__class__.__name__ == "LogScale"
    assert "Z_TPL" in fig.title.text and f"{fit.z:.5f}" in fig.title.text
    marks = {m["label"]: m["x"] for m in C.markers(item, fit)}
    assert marks["Z_TPL"] == fit.z and "alt 1" in " ".join(marks)
    # a click near the best minimum adopts the refined Z_TPL
    assert C.snap(fit, fit.z + 0.005 * (1 + fit.z)) == fit.z


def test_chi2_panel_is_lazy_cached_and_follows_z(mock, monkeypatch):
    from inspector.app.inspect_view import InspectView

    calls = []
    real = C.fit_item
    monkeypatch.setattr(C, "fit_item", lambda item, **kw: calls.append(item.spectrum_id) or real(item, **kw))
    t = _triage(mock, name="lazy")
    v = InspectView(t)
    assert not v.chi2.fig.visible
    t.quality = 4
    t.dispatch("Enter")  # hidden: accept -> next fits nothing
    assert calls == []
    assert t.dispatch("t") and t.show_chi2 and v.chi2.fig.visible
    assert calls == [t.item.spectrum_id] and len(v.chi2.curve.data["z"]) > 1000
    t.dispatch("t")
    t.dispatch("t")
    assert len(calls) == 1  # cached per spectrum
    t.dispatch("ArrowUp")
    assert v.chi2.current.data["x"] == [t.z]  # the current-z marker follows z
    labels = {x for lab in v.chi2.marks.data["label"] for x in lab.split(", ")}  # close markers share one
    assert {"FNet", "Z_TPL"} <= labels
    # a click in the panel adopts the nearest chi2 minimum
    fit = v.fit()[0]
    v._chi2_tapped(SimpleNamespace(x=fit.z + 0.003))
    assert t.z == fit.z
    t.quality = 4
    first = t.item.spectrum_id
    t.dispatch("Enter")  # shown: the next spectrum is fitted (off the server: at once)
    assert calls == [first, t.item.spectrum_id]


def test_predictions_without_template_fit_and_a_missing_file(mock):
    """Rows predicted before the template fit existed (NULL z_tpl) and a spectrum whose file is gone."""
    from inspector.app.inspect_view import InspectView
    from inspector.app.why_panel import why_html

    _, url = mock
    oid = _with_template(url)
    engine = make_engine(url)
    with session_scope(engine) as s:
        sid = s.scalars(select(Spectrum.id).where(Spectrum.object_id == oid)).one()
        s.execute(update(Prediction).where(Prediction.spectrum_id == sid)
                  .values(z_tpl=None, z_tpl_err=None, tpl_dchi2=None, tpl_candidates=None))  # fmt: skip
        s.execute(update(Spectrum).where(Spectrum.id == sid).values(file="/nonexistent/spec.fits"))
    t = _triage(mock, oid, name="olga")
    it = t.item
    assert it.z_tpl is None and it.tpl_candidates == [] and it.source == "store"
    rows = candidates(it, 1.0)
    tpl = [r for r in rows if r["source"].startswith("Template")]
    assert len(tpl) == 1 and tpl[0]["z"] is None and tpl[0]["dv"] is None and "none stored" in tpl[0]["note"]
    v = InspectView(t)
    assert "Template" in set(v.cands.value["source"]) and why_html(t)
    usable = [c["source"] for c in t.candidates() if c["z"] is not None]
    for _ in range(len(usable)):  # `a` cycles over the usable rows only
        t.dispatch("a")
        assert t.z is not None and t.z >= 0
    t.dispatch("t")  # the live fit (on the store's FNet-grid row) still gives a Z_TPL
    assert "Z_TPL" in v.chi2.fig.title.text and "FNet grid" in v.chi2.fig.title.text
    assert any("Z_TPL" in lab for lab in v.chi2.marks.data["label"])


def test_why_panel_reads_the_template_rules(mock):
    from inspector.app.why_panel import _rule_html

    assert _rule_html("dv_tpl", -12345.6, 2.5).endswith("<b>dv_tpl</b> -12,346 km/s (priority 2.5)</li>")
    assert "template fit disagrees" in _rule_html("dv_tpl", 5000.0, 1.0)
    # the queue policy's rules speak of the risk, and of the bucket's place after the queue
    assert "<b>risk</b> P(wrong) 62 % (expected errors a look removes 0.31)" in _rule_html("risk", 0.62, 0.31)
    assert "own bucket, after the queue" in _rule_html("no_signal", 0.9, -0.8)
    assert "<b>tpl_low_dchi2</b> 12.3 (priority" in _rule_html("tpl_low_dchi2", 12.3, 1.0)
    assert "<b>fnet_uncertain</b> 7,000 km/s" in _rule_html("fnet_uncertain", 7000.0, 1.0)
    assert "<b>unknown</b> 1.5 (" in _rule_html("unknown", 1.5, 1.0)  # a rule the table no longer has


def test_close_markers_share_one_label():
    item = SimpleNamespace(z_fnet=2.0001, info={"z_pipe": 2.5})
    fit = SimpleNamespace(z=2.0, chi2_min=100.0, candidates=[(2.0, 100.0), (2.5002, 140.0), (1.0, 103.0)])
    rows = C.markers(item, fit)
    assert [r["x"] for r in rows] == [2.0001, 2.0, 2.5002, 1.0, 2.5]  # every line is drawn
    assert [r["label"] for r in rows] == ["FNet, Z_TPL", "", "alt 1 (Δχ² 40), Z_PIPE", "alt 2 (Δχ² 3.0)", ""]


@pytest.mark.parametrize("rel", ["sdss/spec-7340-58289-0736.fits", "sdss/spec-1836-54567-0270.fits"])
def test_blank_chi2_ranges_say_why(rel):
    """Defect 9: where the fit has no chi2 the panel shades the range and says why (Lyman-limit veto above
    z 4, a negative template amplitude below), and the title says how much of z is blank."""
    item = _item_from_file(rel)
    fit, pixels = C.fit_item(item)
    z, chi2 = (np.asarray(a, float) for a in fit.chi2_curve)
    blank = ~np.isfinite(chi2)
    assert blank.any()  # these low-z spectra have blue flux: z >= 4 is ruled out
    g = C.gaps(fit)
    covered = np.zeros(z.size, bool)
    for r in g:
        covered |= (z >= r["x0"] - 1e-9) & (z <= r["x1"] + 1e-9)
        assert r["why"] in C.WHY_BLANK.values()
        assert ("Lyman" in r["why"]) == (r["x0"] >= 4.0 - 1e-9)
    assert covered[blank].all()  # every blank z is explained
    assert any("Lyman" in r["why"] for r in g)
    fig = C.chi2_figure(fit, C.markers(item, fit), 1.0, C.title(fit, pixels))
    assert f"blank {100 * blank.mean():.0f} % of z" in fig.title.text
