"""The served app's websocket sends each frame at once (TCP_NODELAY): with Nagle's algorithm on, a frame
written behind an unacknowledged one waited for the browser's delayed ACK (~40 ms), e.g. the reply to a
quality key pressed right after a new spectrum."""
from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import panel as pn
import pytest
from app_helpers import CHROMIUM, chromium
from panel.io.server import get_server

from inspector.app.access import free_port
from inspector.app.websocket import PromptWSHandler, send_frames_at_once


def _nodelay(handler) -> bool:
    """Whether an open websocket handler's socket sends each write at once (TCP_NODELAY)."""
    return bool(handler.ws_connection.stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


@pytest.fixture
def served():
    """A Panel server in a thread of this process, routes built after `send_frames_at_once` as `serve` does."""
    send_frames_at_once()
    port, box, ready = free_port("127.0.0.1"), {}, threading.Event()

    def run() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        server = get_server({"/": lambda: pn.pane.Markdown("fnet-websocket-check")}, port=port, address="127.0.0.1",
                            start=False, show=False, websocket_origin=[f"127.0.0.1:{port}"])  # fmt: skip
        server.start()
        box["server"] = server
        ready.set()
        server.io_loop.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the server did not start"
    server = box["server"]
    yield f"http://127.0.0.1:{port}/", server
    server.io_loop.add_callback(server.stop)
    server.io_loop.add_callback(server.io_loop.stop)
    thread.join(10)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing")
def test_each_browser_websocket_has_nagle_off(served):
    base, server = served
    with chromium() as browser:
        page = browser.new_page()
        page.goto(base)
        page.get_by_text("fnet-websocket-check").wait_for(timeout=30_000)
        handlers = [c._socket for c in server._tornado._clients]
        assert handlers and all(isinstance(h, PromptWSHandler) for h in handlers)
        assert all(_nodelay(h) for h in handlers)
        page.close()
