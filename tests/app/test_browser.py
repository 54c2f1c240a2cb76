"""A real triage session in Chromium (Playwright) against `inspector serve` on a demo built in tmp.

Skipped, with the reason, when /usr/bin/chromium or playwright is missing.
Saves the main view to assets/screenshot_inspect.png and the Overview tab to assets/screenshot_overview.png.
"""
from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import pytest
from app_helpers import (
    CHROMIUM,
    build_demo,
    chromium,
    demo_server,
    object_id,
    wait_drawn,
)
import numpy as np
from sqlalchemy import select, text

ROOT = Path(__file__).resolve().parents[2]

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

from db.decisions import history
from db.engine import make_engine, session_scope
from db.schema import Spectrum
from inspector.app.spectrum_plot import ROW
from inspector.readers import read_any
from model import lines as L
from model.template_model import template_model


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("appdemo")
    build_demo(d, 100, "--budget", "30")  # a stated budget: 30 queued, enough for every test's inspectors
    with demo_server(d) as (base, url):
        yield base, url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _inspect_page(browser, base: str, name: str):
    """A 1440x900 page (the screen the README shows) on Inspect as inspector `name`, its spectrum drawn."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{base}?inspector={name}")
    wait_drawn(page)
    return page


def _login(page, base: str, name: str) -> float:
    t0 = time.perf_counter()
    page.goto(base)
    page.locator(".fnet-name input").fill(name)
    page.locator(".fnet-start button").click()
    wait_drawn(page)
    return time.perf_counter() - t0


def _obj(page) -> str:
    return object_id(page)


def _press_and_wait(page, key: str, old: str, timeout: float = 15.0) -> float:
    t0 = time.perf_counter()
    page.keyboard.press(key)
    while time.perf_counter() - t0 < timeout:
        if _obj(page) != old:
            return time.perf_counter() - t0
        time.sleep(0.005)
    raise AssertionError(f"{key}: the next spectrum did not show (still {old})")


def _decisions(url: str, oid: str, who: str | None = None) -> list[tuple]:
    """The decisions on `oid` (only `who`'s when given: other tests' inspectors share the server, and the
    queue may hand one of their spectra over as a cross-check)."""
    with session_scope(make_engine(url)) as s:
        return [(d.inspector.name, d.action, d.z_final, d.quality, d.comment) for d in history(s, oid)
                if who is None or d.inspector.name == who]


def _focus_page(page) -> None:
    page.locator(".fnet-title").click()


def _inside(page, locator) -> bool:
    """Whether the element lies wholly inside the viewport (no scrolling needed to see it)."""
    box = locator.bounding_box()
    vp = page.viewport_size
    return box is not None and box["y"] >= 0 and box["x"] >= 0 and box["y"] + box["height"] <= vp["height"] \
        and box["x"] + box["width"] <= vp["width"]


def test_one_screen_at_1440x900(server, browser):
    """Issue 14: at 1440x900 the spectrum, the zoom, every candidate row, quality, type, flags and the decision
    buttons are in view without scrolling; a message shows right above the buttons."""
    base, _url = server
    page = _inspect_page(browser, base, "olga")
    page.locator(".fnet-candidates .fnet-cand-row").last.wait_for(timeout=10_000)
    time.sleep(1.0)
    (ROOT / "assets").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "assets" / "screenshot_inspect.png"))
    assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight + 1")
    rows = page.locator(".fnet-candidates .fnet-cand-row")
    assert rows.count() >= 8
    for loc in (rows.last, page.locator(".fnet-quality-buttons"), page.locator(".fnet-type"),
                page.locator(".fnet-flags"), page.locator(".fnet-comment"), *(page.locator(f".fnet-{a}") for a in
                ("accept", "correct", "not_qso", "bad_spectrum", "skip", "previous", "next"))):
        assert _inside(page, loc.first), loc
    canvases = page.locator(".bk-Canvas canvas, canvas")
    assert _inside(page, canvases.nth(0)) and _inside(page, canvases.nth(1))
    _focus_page(page)
    page.keyboard.press("Enter")  # no quality: the message appears beside the buttons, in words
    msg = page.locator(".fnet-message", has_text="press 0-4")
    msg.wait_for(timeout=10_000)
    assert _inside(page, msg) and abs(msg.bounding_box()["y"] - page.locator(".fnet-accept").bounding_box()["y"]) < 80
    page.keyboard.press("4")  # fixed: the complaint goes
    msg.wait_for(state="detached", timeout=10_000)
    page.close()


def test_keys_for_type_flag_comment(server, browser):
    base, url = server
    page = _inspect_page(browser, base, "pat")
    _focus_page(page)
    first = _obj(page)
    page.keyboard.press("G")
    page.keyboard.press("Z")
    sync_api.expect(page.locator(".fnet-type button.active, .fnet-type .bk-active")).to_have_text(
        re.compile("GALAXY"), timeout=10_000)
    page.keyboard.press("i")  # the comment box takes the keyboard
    page.keyboard.type("host galaxy lines")
    page.keyboard.press("Escape")
    page.keyboard.press("3")
    page.locator(".fnet-quality", has_text="3").wait_for(timeout=10_000)
    _press_and_wait(page, "x", first)
    with session_scope(make_engine(url)) as s:
        (d,) = [x for x in history(s, first) if x.inspector.name == "pat"]
        assert (d.action, d.spectral_type, d.comment, d.quality) == ("not_qso", "GALAXY", "host galaxy lines", 3)
        assert d.z_final is not None  # a galaxy keeps its z
        assert d.flags & 1  # bad_z (Shift+z)
    page.close()


def test_legend_click_hides_a_curve_in_both_panels(server, browser):
    """A click on the sky's legend entry hides the sky in the spectrum and the zoom panel and unticks 'sky [y]';
    the key y shows it again (legend, toggle and both panels are one state)."""
    base, _url = server
    page = _inspect_page(browser, base, "lena")
    shown = f"""() => ['spectrum_main', 'spectrum_zoom'].map(p =>
        Bokeh.documents[0].get_model_by_name(`curves:${{p}}`).view.filter.booleans[{ROW["sky"]}])"""
    assert page.evaluate(shown) == [True, True]
    sky_box = page.locator(".fnet-sky input")
    assert sky_box.is_checked()
    page.locator(".bk-item").filter(has=page.get_by_text("sky", exact=True)).click()
    sync_api.expect(sky_box).not_to_be_checked(timeout=10_000)
    assert page.evaluate(shown) == [False, False]
    _focus_page(page)
    page.keyboard.press("y")
    sync_api.expect(sky_box).to_be_checked(timeout=10_000)
    page.wait_for_function(f"() => ({shown})().every(v => v)", timeout=10_000)
    page.close()


def test_template_model_drawn_follows_z(server, browser):
    """The template model is drawn over the data in both panels and follows z: after z + 0.01 (ArrowUp) the
    browser holds the best-fit model at the new z, pixel for pixel (`model.template_model` on the file)."""
    base, url = server
    page = _inspect_page(browser, base, "mona")
    row = f"""() => {{ const s = Bokeh.documents[0].get_model_by_name('fnet_spectrum');
        return Array.from(s.data.ys[{ROW["template model"]}], v => isFinite(v) ? v : null); }}"""
    page.wait_for_function(f"() => ({row})().some(v => v !== null)", timeout=10_000)
    z_box, before = page.locator(".fnet-z input"), page.evaluate(row)
    shown_z = z_box.input_value()
    _focus_page(page)
    page.keyboard.press("ArrowUp")
    sync_api.expect(z_box).not_to_have_value(shown_z, timeout=10_000)
    z1 = float(z_box.input_value())  # the session's z, rounded to 1e-5 by the nudge: shown whole
    assert z1 == pytest.approx(float(shown_z) + 0.01, abs=2e-5)
    page.wait_for_function(f"() => JSON.stringify(({row})()) !== {json.dumps(json.dumps(before))}", timeout=10_000)
    with session_scope(make_engine(url)) as s:
        spec = s.scalars(select(Spectrum).where(Spectrum.object_id == _obj(page))).one()
        (native,) = [x for x in read_any(spec.file) if x.fiberid == spec.fiberid]
    want = template_model(np.asarray(native.wave, float), np.asarray(native.flux, float),
                          np.asarray(native.ivar, float), z1)  # fmt: skip
    got = np.array(page.evaluate(row), dtype=float)
    assert np.isfinite(want).sum() > 1000
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-5, atol=1e-4 * np.nanmax(np.abs(want)))
    drawn = """() => ['spectrum_main', 'spectrum_zoom'].map(p => {
        const r = Bokeh.documents[0].get_model_by_name(`curves:${p}`); return r.visible && r.data_source.name; })"""
    assert page.evaluate(drawn) == ["fnet_spectrum", "fnet_spectrum"]
    page.close()


def test_each_typed_z_moves_the_line_markers(server, browser):
    """A z typed in the field (then Enter) draws the line markers at lambda (1 + z) at once, every time. Panel
    handled the typed value outside Bokeh's document lock when a browser event followed it, the markers stayed
    where they were and the server logged "_pending_writes should be non-None"."""
    base, _url = server
    page = _inspect_page(browser, base, "nina")
    lya = float(L.line_table().set_index("name").loc["Lyα", "lambda"])
    marker = """() => { const s = Bokeh.documents[0].get_model_by_name('fnet_lines');
        const k = s.data.label.indexOf('Lyα'); return k < 0 ? null : s.data.x[k]; }"""
    z_box = page.locator(".fnet-z input")
    for z in (2.1204, 2.1214, 0.8123):
        z_box.fill(f"{z}")
        z_box.press("Enter")
        page.wait_for_function(f"() => Math.abs(({marker})() - {lya * (1 + z)}) < 1e-6", timeout=10_000)
        _focus_page(page)
    page.close()


def test_candidate_row_click_adopts_its_z(server, browser):
    """A click on a numbered candidate row makes its z the current one (the marker moves to that row); a click
    on a row without a z changes nothing."""
    base, _url = server
    page = _inspect_page(browser, base, "rhea")
    rows = page.locator(".fnet-candidates .fnet-cand-row")
    rows.last.wait_for(timeout=10_000)
    z_box = page.locator(".fnet-z input")
    before = z_box.input_value()
    cells = [rows.nth(i).locator("td").nth(2).inner_text().strip() for i in range(rows.count())]
    pick = next(i for i, z in enumerate(cells) if z not in ("", "–") and abs(float(z) - float(before)) > 1e-4)
    rows.nth(pick).click()
    sync_api.expect(z_box).to_have_value(f"{float(cells[pick]):.5f}", timeout=10_000)
    sync_api.expect(rows.nth(pick)).to_have_class(re.compile("fnet-cand-here"), timeout=10_000)
    page.close()


def test_overview_jump_shows_it_in_inspect(server, browser):
    """Defect 1: the Overview's jump-to really shows that spectrum in Inspect (and switches there); defect 8:
    the progress is current when the tab opens."""
    base, url = server
    page = _inspect_page(browser, base, "quinn")
    shown = _obj(page)
    page.locator(".bk-tab", has_text="Overview").click()
    page.locator(".tabulator-row").first.wait_for(timeout=30_000)
    with session_scope(make_engine(url)) as s:
        decided = s.execute(text(
            "SELECT count(DISTINCT spectrum_id) FROM decisions WHERE action != 'skip'")).scalar()
    sync_api.expect(page.locator("body")).to_contain_text(f"{decided:,}", timeout=10_000)
    with session_scope(make_engine(url)) as s:
        oids = s.execute(text("SELECT object_id FROM spectra ORDER BY id DESC LIMIT 2")).scalars()
        oid = next(o for o in oids if o != shown)
    jump = page.locator("input[placeholder*='Jump'], input[placeholder*='0300']").first
    jump.fill(oid)
    jump.press("Enter")
    sync_api.expect(page.locator(".fnet-object")).to_have_text(oid, timeout=15_000)
    assert page.locator(".fnet-object").is_visible()  # Inspect is the active tab again
    page.close()


def test_triage_session(server, browser):
    base, url = server
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    load = _login(page, base, "alice")
    assert load < 30
    time.sleep(0.5)
    _focus_page(page)

    # the template fit among the candidates; t shows the chi2(z) panel and hides it again
    page.locator(".fnet-candidates", has_text="Template alt 1").wait_for(timeout=10_000)
    toggle = page.locator(".fnet-chi2-toggle input")
    chi2 = page.locator(".fnet-chi2 canvas")
    assert not toggle.is_checked()
    sync_api.expect(chi2.first).to_be_hidden()
    page.keyboard.press("t")
    sync_api.expect(toggle).to_be_checked(timeout=10_000)
    sync_api.expect(chi2.first).to_be_visible(timeout=10_000)
    page.keyboard.press("t")
    sync_api.expect(toggle).not_to_be_checked(timeout=10_000)
    sync_api.expect(chi2.first).to_be_hidden(timeout=10_000)

    # Enter without a quality: a visible message, nothing saved
    first = _obj(page)
    page.keyboard.press("Enter")
    page.locator(".fnet-message", has_text="quality").wait_for(timeout=10_000)
    assert _decisions(url, first, "alice") == []

    # a digit sets the quality, Enter accepts, the next spectrum shows
    page.keyboard.press("4")
    page.locator(".fnet-quality", has_text="4").wait_for(timeout=10_000)
    _press_and_wait(page, "Enter", first)
    (d,) = _decisions(url, first, "alice")
    assert d[:2] == ("alice", "accept") and d[3] == 4

    # a typed z corrects
    second = _obj(page)
    z = page.locator(".fnet-z input")
    z.fill("abc")
    z.press("Enter")
    page.locator(".fnet-message", has_text="number").wait_for(timeout=10_000)
    sync_api.expect(z).not_to_have_value("abc", timeout=10_000)
    z.fill("12")
    z.press("Enter")
    page.locator(".fnet-message", has_text="between").wait_for(timeout=10_000)
    sync_api.expect(z).not_to_have_value("12", timeout=10_000)  # the field is reset to the current z first
    z.fill("2.34567")
    z.press("Enter")
    page.locator(".fnet-message", has_text="between").wait_for(state="detached", timeout=30_000)  # a loaded CI machine
    _focus_page(page)
    page.keyboard.press("3")
    page.locator(".fnet-quality", has_text="3").wait_for(timeout=10_000)
    _press_and_wait(page, "c", second)
    (d,) = _decisions(url, second, "alice")
    assert d[:4] == ("alice", "correct", 2.34567, 3)

    # skip, then back
    third = _obj(page)
    _press_and_wait(page, "s", third)
    assert [x[1] for x in _decisions(url, third, "alice")] == ["skip"]
    _press_and_wait(page, "p", _obj(page))
    assert _obj(page) == third

    # a 10 kB comment with HTML: refused with a message, nothing saved
    page.locator("textarea").fill("<b>x</b>" * 1300)
    _focus_page(page)
    page.keyboard.press("2")
    page.keyboard.press("c")
    page.locator(".fnet-message", has_text="shorten it").wait_for(timeout=10_000)
    assert [x[1] for x in _decisions(url, third, "alice")] == ["skip"]
    page.close()


def test_two_inspectors_and_latency(server, browser):
    base, _url = server
    pages = {}
    for name in ("carol", "dave"):
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        pages[name] = ctx.new_page()
        _login(pages[name], base, name)
        _focus_page(pages[name])
    c, d = pages["carol"], pages["dave"]
    times = []
    for _ in range(4):
        assert _obj(c) != _obj(d)
        for p in (c, d):
            p.keyboard.press("3")
            p.locator(".fnet-quality", has_text="3").wait_for(timeout=10_000)
            times.append(_press_and_wait(p, "Enter", _obj(p)))
    assert _obj(c) != _obj(d)
    med = statistics.median(times)
    print(f"accept-to-next median {med * 1000:.0f} ms over {len(times)}")
    assert med < 1.0  # generous on a loaded CI machine; the target (150 ms) is reported, not enforced


def test_overview_screenshot(server, browser):
    base, _url = server
    page = _inspect_page(browser, base, "erin")  # as the README shows it: what one screen holds
    page.locator(".bk-tab", has_text="Overview").click()
    page.locator(".tabulator-row").first.wait_for(timeout=30_000)
    t0 = time.perf_counter()
    while page.locator("canvas").count() < 4 and time.perf_counter() - t0 < 30:  # three survey plots + the leak curve
        time.sleep(0.1)
    time.sleep(3.0)  # let the survey plots finish drawing
    # full_page=True comes back blank for this tab in Chromium (the tab's content is in a scrolled container)
    page.screenshot(path=str(ROOT / "assets" / "screenshot_overview.png"))
    page.close()


def test_click_feature_and_pick_line(server, browser):
    """A click in the spectrum fills the feature wavelength; choosing a line sets z = λ_obs / λ_line - 1."""
    base, _url = server
    page = _inspect_page(browser, base, "frank")
    time.sleep(0.5)
    box = page.locator(".bk-Canvas canvas, canvas").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    feat = page.locator(".fnet-feature-wave")
    feat.wait_for(timeout=10_000)
    lam = float(feat.inner_text())
    assert 3000 < lam < 11000
    page.locator(".fnet-line-pick select").select_option(label=next(
        o for o in page.locator(".fnet-line-pick option").all_inner_texts() if o.startswith("Mg II")))
    z = page.locator(".fnet-z input")
    rest = float(page.locator(".fnet-line-pick select").input_value().split()[-1])  # the label's λ, to 1 Å
    t0 = time.perf_counter()
    while abs(float(z.input_value()) - (lam / rest - 1)) > 1e-3 and time.perf_counter() - t0 < 10:
        time.sleep(0.05)
    assert float(z.input_value()) == pytest.approx(lam / rest - 1, abs=1e-3)
    # the next key calls it the next line of the list: z follows, the select shows it
    old = page.locator(".fnet-line-pick select").input_value()
    _focus_page(page)
    page.keyboard.press("l")
    sync_api.expect(page.locator(".fnet-line-pick select")).not_to_have_value(old, timeout=10_000)
    page.close()


def test_overview_only_inspected_label_toggles(server, browser):
    """Defect 10: a click on the words "only inspected" toggles the box, as on any form."""
    base, _url = server
    page = _inspect_page(browser, base, "ruth")
    page.locator(".bk-tab", has_text="Overview").click()
    label = page.get_by_text("only inspected", exact=True)
    label.wait_for(timeout=30_000)
    button = page.locator(".fnet-only-inspected button")
    assert "bk-active" not in (button.get_attribute("class") or "")
    label.click()
    sync_api.expect(button).to_have_class(re.compile("bk-active"), timeout=10_000)
    label.click()
    sync_api.expect(button).not_to_have_class(re.compile("bk-active"), timeout=10_000)
    page.close()
