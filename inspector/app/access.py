"""Who may reach the app and as whom: the basic-auth file, the allowed origins, Panel's component route.

With a login configured the inspector is the authenticated user and nothing else: no `?inspector=`
argument, no name typed, nothing from the session token (Bokeh takes session arguments from an
unsigned token, so a logged-in user could otherwise record decisions under another name). Browsers
may connect from the configured hosts only, never from any Origin. Panel 1.9.4 serves
`/components/<module>/...` for any importable module to anyone (it imports the module named in the
URL): here only Panel's, Bokeh's and our own, and only after login when there is one.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from panel.io import server as panel_server
from tornado.web import HTTPError

from db.validate import DecisionError, check_name

COMPONENT_MODULES = ("panel", "bokeh", "inspector")  # packages whose component resources the browser loads


class AccessError(ValueError):
    """A login or origin setting the server must not start with; the message names the file or value."""


def read_basic_auth(path: str | Path) -> dict[str, str]:
    """The {user: password} of a basic-auth file, checked before the server starts: Panel would take a
    missing file's path as one shared password for every user name."""
    p = Path(path)
    if not p.is_file():
        raise AccessError(f"--basic-auth {p}: no such file (expected JSON {{\"user\": \"password\", ...}})")
    try:
        users = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise AccessError(f"--basic-auth {p}: cannot be read ({e})") from None
    except json.JSONDecodeError as e:
        raise AccessError(f"--basic-auth {p}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(users, dict) or not users:
        raise AccessError(f"--basic-auth {p}: must be a JSON object of user name to password, with one user at least")
    for user, password in users.items():
        try:
            check_name(user)
        except DecisionError as e:
            raise AccessError(f"--basic-auth {p}: user {user!r}: {e}") from None
        if not isinstance(password, str) or len(password) < 8:
            raise AccessError(f"--basic-auth {p}: user {user!r} needs a password of 8 characters at least")
    return users


def origins(address: str | None, port: int, allowed: list[str] | None = None) -> list[str]:
    """The Origins a browser may open the app's websocket from: this machine by name and address, the
    address served on (unless it is every interface), and what the operator allowed."""
    out = [f"localhost:{port}", f"127.0.0.1:{port}"]
    if address and address not in ("0.0.0.0", "::", "localhost", "127.0.0.1"):
        out.append(f"{address}:{port}")
    for o in allowed or []:
        o = o.strip()
        if not o or "*" in o or "/" in o:
            raise AccessError(f"--allow-origin {o!r}: give a host[:port] such as inspect.example.org:5006")
        out.append(o if ":" in o else f"{o}:{port}")
    return list(dict.fromkeys(out))


def free_port(address: str | None) -> int:
    """A port free now on `address` (port 0 asked for: the origins must name the real one)."""
    with socket.socket() as s:
        s.bind((address or "127.0.0.1", 0))
        return int(s.getsockname()[1])


class GuardedComponents(panel_server.ComponentResourceHandler):
    """Panel's component-resource route, limited to COMPONENT_MODULES and, with a login, to logged-in users."""
    login_required = False

    def prepare(self) -> Any:
        if self.login_required and not self.get_secure_cookie("user"):
            raise HTTPError(403, "log in first")
        return super().prepare()

    def parse_url_path(self, path: str) -> str:
        module = path.split("/", 1)[0]
        if module.split(".", 1)[0] not in COMPONENT_MODULES:
            raise HTTPError(404, "Module not found")
        return super().parse_url_path(path)


def guard_component_route(login_required: bool) -> None:
    """Make Panel's server build its component route from `GuardedComponents` (Panel reads the handler
    class from its module when it builds the routes, in `pn.serve`)."""
    GuardedComponents.login_required = login_required
    panel_server.ComponentResourceHandler = GuardedComponents


__all__ = ["AccessError", "COMPONENT_MODULES", "GuardedComponents", "free_port", "guard_component_route",
           "origins", "read_basic_auth"]
