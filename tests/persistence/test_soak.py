"""bench/soak.py as a test: 8 writer processes killed with kill -9 while they take the queue and decide;
nothing acknowledged is lost, no spectrum is decided twice or held by two at once, the database is whole.

Runs on a temp SQLite file, and on PostgreSQL too with FNET_TEST_DB_URL set (in its schema fnet_soak).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from db_helpers import TEST_URL_ENV

REPO = Path(__file__).resolve().parents[2]
SOAK = REPO / "bench" / "soak.py"


def _soak_module():
    spec = importlib.util.spec_from_file_location("bench_soak", SOAK)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_overlap_count_sees_two_holders_at_once():
    soak = _soak_module()
    # spectrum 1: a holds 0-10 but decides at 4, b takes it at 5 (fine); spectrum 2: b takes it at 3 while a holds it
    leases = [(1, "a", 0.0, 10.0), (1, "b", 5.0, 15.0), (2, "a", 0.0, 10.0), (2, "b", 3.0, 13.0), (2, "a", 1.0, 11.0)]
    assert soak.overlapping_leases(leases, {(1, "a"): 4.0}) == 2  # b against each of a's two leases on 2


@pytest.mark.slow
def test_eight_writers_killed_lose_nothing(tmp_path):
    out = tmp_path / "soak.json"
    cmd = [sys.executable, str(SOAK), "--writers", "8", "--seconds", "8", "--spectra", "5000", "--promote-kills", "0",
           "--min-acks", "40", "--no-ingest", "--json", str(out)]  # fmt: skip
    if os.environ.get(TEST_URL_ENV):
        cmd += ["--url", os.environ[TEST_URL_ENV]]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.read_text())
    for where in ("sqlite", "postgresql") if os.environ.get(TEST_URL_ENV) else ("sqlite",):
        w = report[where]
        assert w["kills"] >= 8 and w["acknowledged"] >= 40, w  # enough writes to mean something (it runs on until then)
        assert w["lost"] == 0 and w["acknowledged_but_different"] == 0, w
        assert w["duplicates"] == 0 and w["overlapping_leases"] == 0, w
        assert w["integrity"]["ok"], w["integrity"]
