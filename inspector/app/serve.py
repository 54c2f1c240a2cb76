"""Build the app for each browser session and serve it.

    serve(store_dir, db_url, port=5006, basic_auth="users.json")

The inspector's name is the basic-auth user when a login is configured, and
nothing else then (`inspector.app.access`); without a login, the
`?inspector=NAME` URL parameter (validated like the prompt; an invalid one
shows the prompt with the reason), else the page asks for one. Each session has its own `InspectSession`
state and its own lease from the queue; closing the tab gives the lease back.
Tabs: Inspect, Overview when `inspector.app.overview` is installed, Models (versions, retrain).
"""
from __future__ import annotations

import html
import importlib.util
import logging
import secrets
from pathlib import Path
from typing import Any

import panel as pn

from db.engine import make_engine
from db.validate import DecisionError, check_name
from inspector.app.inspect_view import (
    InspectView,  # at import: pn.extension runs before any page is served
)
from inspector.app.access import AccessError, free_port, guard_component_route, origins, read_basic_auth
from inspector.app.session import InspectSession
from inspector.app.websocket import send_frames_at_once
from inspector.store import open_store

log = logging.getLogger(__name__)


def _tabs(engine: Any, store: Any, store_dir: str, name: str, crosscheck_fraction: float = 0.1) -> pn.viewable.Viewable:
    """Inspect, Overview, Models. The Overview's "jump to" (and a click on its table) shows that spectrum in
    Inspect and switches there; opening the Overview re-reads its progress, so it is never stale."""
    session = InspectSession(engine, store, inspector=name, crosscheck_fraction=crosscheck_fraction)
    session.start()
    pn.state.on_session_destroyed(lambda ctx: session.stop())
    tabs = pn.Tabs(("Inspect", InspectView(session).panel()), dynamic=True, sizing_mode="stretch_width")
    overview = None
    if importlib.util.find_spec("inspector.app.overview") is not None:
        try:
            from inspector.app.overview import OverviewState, overview_view

            state = OverviewState()
            view = overview_view(engine, store_dir, state=state)
            overview, overview_tab = view.overview, len(tabs)
            tabs.append(("Overview", view))

            def jumped(event: Any) -> None:
                if event.new and session.jump(event.new):
                    tabs.active = 0

            state.param.watch(jumped, "jump_to")
        except Exception as e:
            log.exception("overview tab failed")
            tabs.append(("Overview", pn.pane.Alert(f"Overview unavailable: {e}", alert_type="warning")))
    try:
        from inspector.app.models_tab import models_view

        tabs.append(("Models", models_view(engine, store_dir, engine.url.render_as_string(hide_password=False))))
    except Exception as e:
        log.exception("models tab failed")
        tabs.append(("Models", pn.pane.Alert(f"Models unavailable: {e}", alert_type="warning")))
    if overview is not None:
        tabs.param.watch(lambda e: overview.refresh_progress() if e.new == overview_tab else None, "active")
    return tabs


def _error_html(text: str) -> str:
    return f"<span style='color:#b00020'>{html.escape(text)}</span>"


def _url_name() -> tuple[str | None, str | None]:
    """(name, None) from a valid `?inspector=NAME`, (None, reason) from an invalid one, (None, None) without."""
    args = pn.state.session_args or {}
    raw = args.get("inspector")
    if not raw:
        return None, None
    value = raw[0].decode("utf-8", "replace") if isinstance(raw[0], bytes) else str(raw[0])
    try:
        return check_name(value), None
    except DecisionError as e:
        return None, str(e)


def make_app(store_dir: str, db_url: str, crosscheck_fraction: float = 0.1, login: bool = False) -> Any:
    """A function building one session's page (for `pn.serve`); `crosscheck_fraction` goes to the queue
    (`db.queue.next_item`): the share of picks that re-check another inspector's decision. With `login`
    the inspector is the authenticated user only (`inspector.app.access`)."""
    if not 0 <= crosscheck_fraction <= 1:
        raise ValueError(f"crosscheck_fraction must be in [0, 1], got {crosscheck_fraction}")
    engine = make_engine(db_url)
    store = open_store(store_dir)

    def app() -> pn.viewable.Viewable:
        user = pn.state.user
        body = pn.Column(sizing_mode="stretch_width")
        if login:  # the login is the only name: never the URL's, a typed one or the session token's
            try:
                who = check_name(user or "")
            except DecisionError:
                body.append(pn.pane.HTML(_error_html("Not logged in: reload the page and log in.")))
                return body
            body.append(_tabs(engine, store, store_dir, who, crosscheck_fraction))
            return body
        given, given_err = _url_name()
        if given:
            body.append(_tabs(engine, store, store_dir, given, crosscheck_fraction))
        else:
            name = pn.widgets.TextInput(name="Your name (recorded with every decision)", placeholder="e.g. alice",
                                        css_classes=["fnet-name"])  # fmt: skip
            go = pn.widgets.Button(name="Start inspecting", button_type="primary", css_classes=["fnet-start"])
            err = pn.pane.HTML(_error_html(given_err) if given_err else "")

            def start(*_: Any) -> None:
                try:
                    who = check_name(name.value_input or name.value)
                except DecisionError as e:
                    err.object = _error_html(str(e))
                    return
                body[:] = [_tabs(engine, store, store_dir, who, crosscheck_fraction)]

            go.on_click(start)
            name.param.watch(start, "enter_pressed")
            body.append(pn.Column(pn.pane.Markdown("## FNet Inspector"), name, go, err))
        return body

    return app


def serve(store_dir: str | Path, db_url: str, *, port: int = 5006, address: str | None = "127.0.0.1",
          basic_auth: str | None = None, show: bool = False, cookie_secret: str | None = None,
          crosscheck_fraction: float = 0.1, allow_origin: list[str] | None = None,
          oauth: dict[str, str] | None = None) -> None:
    """Serve the app. `basic_auth` is a JSON file of {user: password}, checked first (`AccessError` names
    what is wrong); `oauth` Panel's OAuth settings (oauth_provider, oauth_key, oauth_secret, and
    oauth_redirect_uri behind a proxy); browsers connect from `access.origins` only."""
    kw: dict[str, Any] = {}
    if basic_auth and oauth:
        raise AccessError("--basic-auth and --oauth-provider: choose one login")
    if basic_auth:
        read_basic_auth(basic_auth)
        kw.update(basic_auth=str(Path(basic_auth).resolve()))
    if oauth:
        missing = [k for k in ("oauth_provider", "oauth_key", "oauth_secret") if not oauth.get(k)]
        if missing:
            raise AccessError(f"OAuth needs {', '.join('--' + k.replace('_', '-') for k in missing)}")
        kw.update({k: v for k, v in oauth.items() if v})
    login = bool(basic_auth or oauth)
    if login:
        kw["cookie_secret"] = cookie_secret or secrets.token_hex(32)
    port = port or free_port(address)
    allowed = origins(address, port, allow_origin)
    guard_component_route(login_required=login)
    send_frames_at_once()
    pn.serve({"/": make_app(str(store_dir), db_url, crosscheck_fraction, login=login)}, port=port,
             address=address, show=show, title="FNet Inspector", websocket_origin=allowed, **kw)
