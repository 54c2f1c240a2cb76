"""A real triage session in Chromium (Playwright) against `inspector serve` on a demo built in tmp.

Skipped, with the reason, when /usr/bin/chromium or playwright is missing.
Saves the main view to assets/screenshot_inspect.png and the Overview tab to assets/screenshot_overview.png.
"""
from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[2]

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

from db.decisions import history
from db.engine import make_engine, session_scope


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


def _decisions(url: str, oid: str) -> list[tuple]:
    with session_scope(make_engine(url)) as s:
        return [(d.inspector.name, d.action, d.z_final, d.quality, d.comment) for d in history(s, oid)]


def _focus_page(page) -> None:
    page.locator(".fnet-title").click()


def test_triage_session(server, browser):
    base, url = server
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    load = _login(page, base, "alice")
    assert load < 30
    time.sleep(0.5)
    (ROOT / "assets").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "assets" / "screenshot_inspect.png"), full_page=True)
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
    assert _decisions(url, first) == []

    # a digit sets the quality, Enter accepts, the next spectrum shows
    page.keyboard.press("4")
    page.locator(".fnet-quality", has_text="4").wait_for(timeout=10_000)
    _press_and_wait(page, "Enter", first)
    (d,) = _decisions(url, first)
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
    (d,) = _decisions(url, second)
    assert d[:4] == ("alice", "correct", 2.34567, 3)

    # skip, then back
    third = _obj(page)
    _press_and_wait(page, "s", third)
    assert [x[1] for x in _decisions(url, third)] == ["skip"]
    _press_and_wait(page, "p", _obj(page))
    assert _obj(page) == third

    # a 10 kB comment with HTML: refused with a message, nothing saved
    page.locator("textarea").fill("<b>x</b>" * 1300)
    _focus_page(page)
    page.keyboard.press("2")
    page.keyboard.press("c")
    page.locator(".fnet-message", has_text="Comment too long").wait_for(timeout=10_000)
    assert [x[1] for x in _decisions(url, third)] == ["skip"]
    page.close()


def test_two_inspectors_and_latency(server, browser):
    base, _url = server
    pages = {}
    for name in ("carol", "dave"):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
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
    page = browser.new_page(viewport={"width": 1400, "height": 1750})  # the whole tab fits: plots included
    page.goto(f"{base}?inspector=erin")
    wait_drawn(page)
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
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(f"{base}?inspector=frank")
    wait_drawn(page)
    time.sleep(0.5)
    box = page.locator(".bk-Canvas canvas, canvas").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    feat = page.locator(".fnet-feature input")
    t0 = time.perf_counter()
    while not feat.input_value() and time.perf_counter() - t0 < 10:
        time.sleep(0.05)
    lam = float(feat.input_value())
    assert 3000 < lam < 11000
    page.locator(".fnet-line-pick select").select_option(label=next(
        o for o in page.locator(".fnet-line-pick option").all_inner_texts() if o.startswith("Mg II")))
    z = page.locator(".fnet-z input")
    want = f"{lam / float(page.locator('.fnet-line-pick select').input_value().split()[-1]) - 1:.5f}"
    t0 = time.perf_counter()
    while z.input_value() != want and time.perf_counter() - t0 < 10:
        time.sleep(0.05)
    assert z.input_value() == want
    page.close()
