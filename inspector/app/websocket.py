"""The app's websocket with Nagle's algorithm off, so that each message reaches the browser as it is written.

Bokeh writes one message as several websocket frames (a header, metadata, the content, then one frame per
binary array); Tornado leaves Nagle's algorithm on, so a frame written while the one before is not yet
acknowledged waits in the kernel until the browser's delayed ACK comes, up to 40 ms on Linux. That stall
fell on the replies to single keys: a quality key pressed right after a new spectrum was drawn got its
reply ~45 ms late, and the Enter after it waited behind (measured with the browser's websocket frames:
README, 'Speed'). With TCP_NODELAY each frame leaves at once; Bokeh's frames are few and large enough that
nothing is gained by coalescing them.
"""
from __future__ import annotations

from typing import Any

from bokeh.server.urls import per_app_patterns
from panel.io import server as panel_server


class PromptWSHandler(panel_server.WSHandler):
    """Panel's websocket handler (its login check and route context kept), with TCP_NODELAY on the socket."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        self.set_nodelay(True)
        return super().open(*args, **kwargs)


def send_frames_at_once() -> None:
    """Serve each app's websocket with `PromptWSHandler`: Bokeh's server builds its routes from
    `per_app_patterns` when it starts (`pn.serve`), so this must run before; Panel replaces Bokeh's handler
    in that list the same way."""
    per_app_patterns[:] = [(route[0], PromptWSHandler, *route[2:]) if route[1] is panel_server.WSHandler else route
                           for route in per_app_patterns]  # fmt: skip


__all__ = ["PromptWSHandler", "send_frames_at_once"]
