"""Helpers shared by the browser tests and the latency benchmark: build a demo, run `inspector serve`
on a free port, launch Debian's Chromium through Playwright with the flags it needs headless.

    with demo_server(tmp_dir) as (base_url, db_url):
        with chromium() as browser: ...
"""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from db_helpers import TEST_URL_ENV, fresh_database, worker_url

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
CLI = [sys.executable, "-c", "from inspector.cli import app; app()"]  # the `inspector` command, this interpreter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo_schema(d: Path) -> str:
    """A PostgreSQL schema name of the demo in `d` (two demos of one test run must not share one)."""
    return "demo_" + hashlib.sha1(str(Path(d).resolve()).encode()).hexdigest()[:10]


def demo_db_url(d: Path) -> str:
    """The database of the demo in `d`: its SQLite file, or with $FNET_TEST_DB_URL a PostgreSQL schema of its own
    (the browser tests run on both backends)."""
    if os.environ.get(TEST_URL_ENV):
        return worker_url(os.environ[TEST_URL_ENV], _demo_schema(d))
    return f"sqlite:///{Path(d) / 'fnet_inspector.sqlite'}"


def build_demo(d: Path, n: int = 40, *extra: str) -> None:
    """`inspector demo --n N --dir D [extra]`: a store under `d`, its database at `demo_db_url(d)` (emptied first)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    db = ["--db", fresh_database(d, _demo_schema(d))] if os.environ.get(TEST_URL_ENV) else []
    subprocess.run([*CLI, "demo", "--n", str(n), "--dir", str(d), "--no-serve", *db, *extra], check=True,
                   env=env, capture_output=True, timeout=600)  # fmt: skip


@contextmanager
def demo_server(d: Path, *extra: str) -> Iterator[tuple[str, str]]:
    """`inspector serve` on the demo in `d`, on a free port; yields (base URL, database URL)."""
    d = Path(d)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    url = demo_db_url(d)
    port = free_port()
    with open(d / "serve.log", "w") as log:
        proc = subprocess.Popen([*CLI, "serve", "--store", str(d / "store"), "--db", url,
                                 "--port", str(port), "--address", "127.0.0.1", *extra],
                                stdout=log, stderr=log, env=env)  # fmt: skip
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"inspector serve exited ({proc.returncode}); see {d / 'serve.log'}")
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}/", url
        finally:
            proc.terminate()
            proc.wait(10)


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright browser on /usr/bin/chromium (headless, no sandbox)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def wait_drawn(page: Any, timeout_ms: int = 30_000) -> None:
    """Until a spectrum is on the page: its object id shown and a plot canvas attached."""
    page.locator(".fnet-object").wait_for(timeout=timeout_ms)
    page.locator(".bk-Canvas canvas, canvas").first.wait_for(timeout=timeout_ms)


def object_id(page: Any) -> str:
    return page.locator(".fnet-object").inner_text().strip()


def triaged_mock(d: Path, n: int = 40, seed: int = 5) -> tuple[Path, Path, Any, str]:
    """A small mock survey ingested, predicted with the demo model and triaged into SQLite, in-process.

    Returns (store, predictions, triage flags, database URL): the same steps as `inspector demo --no-serve`.
    """
    from inspector.ingest import ingest
    from inspector.mock import make_survey
    from inspector.pipeline.predict import write_predictions
    from inspector.pipeline.triage import load_into_db, run_triage
    from inspector.store.files import predictions_path
    from model.assets import DEMO_MODEL

    d = Path(d)
    make_survey(d / "survey", n, seed=seed, workers=1, progress=False)
    store = d / "store"
    ingest([str(d / "survey")], store, workers=1, progress=False)
    write_predictions(store, DEMO_MODEL, device="cpu")
    predictions = predictions_path(store, DEMO_MODEL)
    flags, _, meta = run_triage(store, predictions)
    url = f"sqlite:///{(d / 'db.sqlite').resolve()}"
    load_into_db(url, store, predictions, flags, meta)
    return store, predictions, flags, url


def flagged_queue(url: str, spectra: dict[str, Any], predictions: dict[str, Any], n: int, plate: int = 7000) -> None:
    """n spectra without files, one current model's predictions, every one flagged (highest priority first):
    the queue the desk tests inspect. `spectra` / `predictions` give the columns that differ per test
    (a scalar for all, or a list of n)."""
    import pandas as pd

    from db.engine import make_engine, session_scope
    from db.load import (
        add_model_version,
        load_predictions,
        load_spectra,
        load_triage_flags,
    )

    mjd = 50000 + plate
    ids = [f"{plate:04d}-{mjd}-{i:04d}" for i in range(n)]
    base = {"object_id": ids, "plate": plate, "mjd": mjd, "fiberid": range(n), "ra": 10.0, "dec": -1.0}
    with session_scope(make_engine(url)) as s:
        load_spectra(s, pd.DataFrame({**base, **spectra}))
        mv = add_model_version(s, "test", f"{plate:04x}" * 10, make_current=True)
        load_predictions(s, pd.DataFrame({"object_id": ids, **predictions}), mv.id)
        load_triage_flags(s, pd.DataFrame({"object_id": ids, "rule": "dv_pipe", "value": 1e4,
                                           "priority": [float(n - i) for i in range(n)]}))
