"""Who may reach the app and as whom (issue 15, defects 6, 7 and 9): the login is the inspector, browsers
connect from the configured hosts only, a bad auth file stops the server, Panel's component route
imports nothing it should not."""
from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from app_helpers import CHROMIUM, CLI, build_demo, demo_server, wait_drawn

from inspector.app.access import AccessError, origins, read_basic_auth


def test_a_bad_basic_auth_file_is_refused(tmp_path):
    with pytest.raises(AccessError, match="no such file"):
        read_basic_auth(tmp_path / "users.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{alice: secret")
    with pytest.raises(AccessError, match="not JSON"):
        read_basic_auth(bad)
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"alice": "pw"}))
    with pytest.raises(AccessError, match="8 characters"):
        read_basic_auth(short)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"alice": "correct horse"}))
    assert read_basic_auth(good) == {"alice": "correct horse"}


def test_serve_stops_on_a_missing_auth_file(tmp_path):
    """Defect 7: Panel took the missing file's path as everyone's password; now the command says so and
    exits before serving."""
    build_demo(tmp_path, 12)
    r = subprocess.run([*CLI, "serve", "--store", str(tmp_path / "store"), "--db", "sqlite://", "--port", "0",
                        "--basic-auth", str(tmp_path / "nope.json")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "nope.json: no such file" in r.stderr


def test_origins_are_the_configured_hosts():
    assert origins("127.0.0.1", 5006) == ["localhost:5006", "127.0.0.1:5006"]
    assert "inspect.example.org:5006" in origins("0.0.0.0", 5006, ["inspect.example.org"])
    assert "0.0.0.0:5006" not in origins("0.0.0.0", 5006)
    with pytest.raises(AccessError):
        origins("127.0.0.1", 5006, ["*"])


@pytest.fixture(scope="module")
def authed(tmp_path_factory):
    d = tmp_path_factory.mktemp("authdemo")
    build_demo(d, 40, "--budget", "10")
    users = d / "users.json"
    users.write_text(json.dumps({"alice": "correct horse", "bob": "battery staple"}))
    with demo_server(d, "--basic-auth", str(users)) as (base, url):
        yield base, url, d


def _status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_component_route_imports_nothing_else(authed):
    """Defect 9: /components/<module>/... imported any module named in the URL, for anyone."""
    base, _, d = authed
    assert _status(f"{base}components/this/s/__css__/x.css") in (403, 404)  # `import this` prints the Zen
    assert "Beautiful is better than ugly" not in (d / "serve.log").read_text()
    assert _status(f"{base}components/panel/widgets/__css__/x.css") == 403  # not logged in


def test_websocket_from_another_origin_is_refused(authed):
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    base, _, _ = authed
    ws = base.replace("http://", "ws://") + "ws"

    async def connect(origin: str) -> int:
        try:
            c = await websocket_connect(HTTPRequest(ws, headers={"Origin": origin}))
            c.close()
            return 101
        except HTTPClientError as e:
            return e.code

    assert asyncio.run(connect("http://evil.example")) == 403


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing")
def test_the_login_is_the_inspector(authed):
    """Defect 6: logged in as alice, a `?inspector=mallory` in the URL changes nothing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from app_helpers import chromium

    base, url, _ = authed
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{base}?inspector=mallory")
        page.locator("input[name='username']").fill("alice")
        page.locator("input[name='password']").fill("correct horse")
        page.locator("button, input[type='submit']").first.click()
        page.goto(f"{base}?inspector=mallory")
        wait_drawn(page)
        sync_api.expect(page.locator(".fnet-inspector")).to_have_text("alice")


def test_without_login_the_component_route_still_imports_only_ours(authed):
    _, _, d = authed
    with demo_server(d) as (base, _url):
        assert _status(f"{base}components/this/s/__css__/x.css") == 404
        assert _status(f"{base}components/inspector.app.inspect_view/KeyCatcher/__css__/x.css") != 403
    assert "Beautiful is better than ugly" not in (d / "serve.log").read_text()


def test_oauth_needs_its_key_and_secret_and_excludes_basic_auth(tmp_path):
    from inspector.app.serve import serve

    with pytest.raises(AccessError, match="--oauth-key, --oauth-secret"):
        serve(tmp_path, "sqlite://", port=0, oauth={"oauth_provider": "github"})
    users = tmp_path / "u.json"
    users.write_text(json.dumps({"alice": "correct horse"}))
    with pytest.raises(AccessError, match="choose one"):
        serve(tmp_path, "sqlite://", port=0, basic_auth=str(users), oauth={"oauth_provider": "github"})
