"""How many inspectors one `inspector serve` process holds: its CPU per decision and memory per session.

    python bench/app_server.py                        # builds a 300-spectrum demo (250 queued) in a temp directory
    python bench/app_server.py --demo DIR             # a demo directory (store/, fnet_inspector.sqlite) whose
                                                      # queue holds --decisions + 3 + --sessions spectra

Each browser session is an `InspectSession` with its `InspectView` (the Bokeh models the browser mirrors) in
the server's one Python process. This builds them in-process, as the server does, without a browser:

- the server's side of "accept, then the next spectrum" (the decision written, the next lease taken, the
  spectrum loaded, the template model fitted, the plot's data replaced), timed over `--decisions`
  accepts by one session: its wall time, which the server's one event loop spends on it (sessions'
  handlers run one at a time), and its CPU time over all threads (numpy and torch use more than one).
  3600 s over the first, or the cores times 3600 s over the second, whichever is less, is the decisions
  per hour one process can serve; divided by a person's pace (`--pace`, 1,000 an hour) that is how many
  people could decide at once before they queue.
- memory per session: the process's resident memory after opening `--sessions` more sessions (each on its
  first spectrum), per session.

The browser's drawing (bench/app_latency.py) is on each person's own machine and not counted here.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def rss_mib() -> float:
    """Resident memory now (Linux /proc), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", type=Path, help="a demo directory; default: build a 300-spectrum one")
    ap.add_argument("--decisions", type=int, default=40)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--pace", type=float, default=1000.0, help="a person's decisions per hour")
    a = ap.parse_args(argv)

    if a.demo is None:
        from app_helpers import build_demo

        a.demo = Path(tempfile.mkdtemp(prefix="fnet-bench-server-"))
        print(f"building a 300-spectrum demo in {a.demo} ...")
        build_demo(a.demo, 300, "--budget", "250")

    from bokeh.document import Document

    from db.engine import make_engine
    from inspector.app.inspect_view import InspectView
    from inspector.app.session import InspectSession
    from inspector.store import open_store

    engine = make_engine(f"sqlite:///{(a.demo / 'fnet_inspector.sqlite').resolve()}")
    store = open_store(a.demo / "store")

    def open_session(name: str) -> tuple[InspectSession, InspectView, Any]:
        t = InspectSession(engine, store, inspector=name)
        v = InspectView(t)
        root = v.panel().get_root(Document())  # the Bokeh models a browser session mirrors, kept in sync
        t.start()
        return t, v, root

    t, _v, _root = open_session("bench-server")
    for _ in range(3):  # warm-up: first queries, first template fits
        t.quality = 3
        t.accept()
    costs = []
    for _ in range(a.decisions):
        if t.item is None:
            raise SystemExit(f"the queue of {a.demo} ran out after {len(costs)} accepts: give a demo with a longer "
                             "one (inspector demo --budget N) or fewer --decisions")
        t.quality = 3
        c = time.process_time()
        w = time.perf_counter()
        if not t.accept():
            raise SystemExit(f"the accept was refused: {t.message}")
        costs.append((time.process_time() - c, time.perf_counter() - w))
    cpu = np.array([c for c, _ in costs])
    wall = np.array([w for _, w in costs])

    base = rss_mib()
    keep = [open_session(f"bench-server-{k}") for k in range(a.sessions)]
    per_session = (rss_mib() - base) / max(len(keep), 1)

    loop_hour = 3600.0 / float(np.median(wall))  # the session's handlers run one at a time on the server's loop
    cpu_hour = (os.cpu_count() or 1) * 3600.0 / float(np.median(cpu))  # all threads (BLAS, torch) on all cores
    per_hour = min(loop_hour, cpu_hour)
    print(f"bench/app_server.py: demo {a.demo}, {len(costs)} accepts, {os.cpu_count()} cores")
    print(f"server side of accept -> next, median: {np.median(wall) * 1e3:.1f} ms on the event loop "
          f"(p90 {np.percentile(wall, 90) * 1e3:.1f}), {np.median(cpu) * 1e3:.1f} ms of CPU over all threads")
    print(f"one server process: {loop_hour:,.0f} decisions/h by its event loop, {cpu_hour:,.0f} by this machine's "
          f"CPU; so {per_hour / a.pace:.0f} people at {a.pace:,.0f} decisions/h each before they queue")
    print(f"memory: {per_session:.1f} MiB per open session ({a.sessions} opened; process {rss_mib():.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
