"""Promotion killed with SIGKILL at every step leaves one current model with all its predictions and its own
flags (the old one before the switch commits, the new one after); a rerun finishes it and leaves no `.tmp`;
a second model job is refused while one runs and a dead one's lock is taken over (issue 15, defect 8).

Each kill is a real `kill -9` of an `inspector models promote` process: at the named steps of
`inspector.pipeline.promote` (FNET_PROMOTE_HOOK), and inside the calls the old code made between making the
version current and loading its predictions and flags (patched in the child to kill itself there).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select

from db.engine import make_engine, session_scope
from db.promotion import model_state
from db.schema import Spectrum, TriageFlag

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# `python -c CHILD KILL_IN STORE DB VERSION`: `inspector models promote`, killing itself inside KILL_IN
CHILD = r"""
import os, signal, sys
kill_in, store, url, vid = sys.argv[1:5]

def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)

if kill_in == "parquet":  # half of the new model's prediction file written to its .tmp
    import pyarrow.parquet as pq
    write = pq.ParquetWriter.write_table
    def write_then_die(self, *a, **k):
        write(self, *a, **k)
        if str(self.where).endswith(".parquet.tmp") and "/predictions/" in str(self.where):
            die()
    pq.ParquetWriter.write_table = write_then_die
else:  # patch the name wherever it is looked up (the db modules, the triage loader)
    import importlib, importlib.util
    mods = [importlib.import_module(m) for m in ("db.load", "db.promotion", "inspector.pipeline.triage")
            if importlib.util.find_spec(m) is not None]
    names = {"load_predictions": ("load_predictions",),  # the version registered, its predictions not loaded
             "flags": ("triage_flags_writer", "load_triage_flags"),  # the flags about to be replaced
             "mark_current": ("mark_current", "_set_current")}.get(kill_in, ())  # inside the switch transaction
    for mod in mods:
        for name in names:
            if not hasattr(mod, name):
                continue
            if kill_in == "mark_current":  # marked current (flags written), not committed
                def marked(*a, _orig=getattr(mod, name), **k):
                    _orig(*a, **k)
                    die()
                setattr(mod, name, marked)
            else:
                setattr(mod, name, die)
from inspector.cli import app
sys.argv = ["inspector", "models", "promote", vid, "--store", store, "--db", url]
app()
"""


@pytest.fixture(autouse=True, scope="module")
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def _url_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def _state(url: str) -> dict:
    """What the app would show: current version(s), complete predictions or not, flags and their version."""
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            st = model_state(s)
            n_spectra = s.scalar(select(func.count()).select_from(Spectrum))
            flags = sorted(s.execute(select(TriageFlag.spectrum_id, TriageFlag.rule, TriageFlag.model_version_id)).all())
    finally:
        engine.dispose()
    return {"current": st["current"], "all_predictions": st["predictions"] == n_spectra,
            "flag_versions": st["flag_versions"], "flags": flags}  # fmt: skip


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """A triaged 40-spectrum mock (the demo model current) and a second version (the demo model's weights
    nudged) registered, not promoted; the database saved as `pristine`, and the state a clean promotion
    gives (on a copy)."""
    from app_helpers import triaged_mock

    from db.load import add_model_version
    from inspector.pipeline.promote import promote_version
    from model.assets import DEMO_MODEL
    from model.checkpoint import file_sha1, load_checkpoint, save_checkpoint

    d = tmp_path_factory.mktemp("promote-crash")
    store, _, _, url = triaged_mock(d)
    model, _ = load_checkpoint(DEMO_MODEL)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * p.std().nan_to_num(0.0) * torch.randn(p.shape, generator=g))
    path = save_checkpoint(d / "models" / "nudged.pt", model)
    engine = make_engine(url)
    with session_scope(engine) as s:
        new = add_model_version(s, "nudged", file_sha1(path), parent_sha1=file_sha1(DEMO_MODEL), path=str(path)).id
    engine.dispose()
    pristine = d / "pristine.sqlite"
    shutil.copyfile(_url_path(url), pristine)
    old_state = _state(url)
    clean = d / "clean.sqlite"
    shutil.copyfile(pristine, clean)
    promote_version(store, f"sqlite:///{clean}", new)
    new_state = _state(f"sqlite:///{clean}")
    assert old_state["current"] != new_state["current"] == [new]
    assert old_state["flags"] != new_state["flags"]  # the nudged model flags other spectra
    for st in (old_state, new_state):
        assert st["all_predictions"] and st["flag_versions"] == st["current"]
    return {"dir": d, "store": store, "pristine": pristine, "new": new, "path": path, "old": old_state,
            "new_state": new_state}  # fmt: skip


def _fresh_db(m: dict, name: str) -> str:
    db = m["dir"] / f"{name}.sqlite"
    shutil.copyfile(m["pristine"], db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{db}"


def _promote_child(m: dict, url: str, kill_in: str = "", hook: str = "", **popen) -> subprocess.Popen:
    env = {**os.environ, "FNET_PROMOTE_HOOK": hook}
    return subprocess.Popen([sys.executable, "-c", CHILD, kill_in or "-", str(m["store"]), url, str(m["new"])],
                            cwd=REPO, env=env, text=True, **popen)  # fmt: skip


def _stale_tmp(m: dict) -> list[Path]:
    return sorted(p for sub in ("predictions", "triage") for p in (m["store"] / sub).glob("*.tmp"))


def _check_then_rerun(m: dict, url: str) -> str:
    """The database shows exactly the old or the new model, whole; a rerun ends at the new one, no .tmp left."""
    from inspector.pipeline.promote import promote_version

    st = _state(url)
    assert st in (m["old"], m["new_state"]), st
    which = "old" if st == m["old"] else "new"
    promote_version(m["store"], url, m["new"])
    assert _state(url) == m["new_state"]
    assert _stale_tmp(m) == []
    return which


@pytest.mark.parametrize("kill_in, hook, expect", [
    ("parquet", "", "old"),
    ("", "locked", "old"),
    ("", "predicted", "old"),
    ("", "triaged", "old"),
    ("load_predictions", "", "old"),
    ("", "loaded", "old"),
    ("flags", "", "old"),
    ("mark_current", "", "old"),
    ("", "switched", "new"),
])  # fmt: skip
def test_promotion_killed_at_any_point_leaves_one_whole_model(two_models, kill_in, hook, expect):
    m = two_models
    if kill_in == "parquet":  # the new model's prediction file must be written, not reused
        for p in (m["store"] / "predictions").glob(f"{m['path'].stem}.*"):
            p.unlink()
    url = _fresh_db(m, f"kill-{kill_in or hook}")
    p = _promote_child(m, url, kill_in, f"{hook}:kill" if hook else "", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)  # fmt: skip
    out, err = p.communicate(timeout=300)
    assert p.returncode == -signal.SIGKILL, (p.returncode, out, err)
    if kill_in == "parquet":
        assert [t.name for t in _stale_tmp(m)] == [f"{m['path'].stem}.parquet.tmp"]  # what the kill left
    assert _check_then_rerun(m, url) == expect


def test_second_job_refused_while_one_runs_and_dead_holder_taken_over(two_models):
    from typer.testing import CliRunner

    from inspector.cli import app

    m = two_models
    url = _fresh_db(m, "paused")
    p = _promote_child(m, url, hook="loaded:pause", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline()
        assert line.strip() == "paused at loaded", (line, p.poll())
        for args in (["models", "promote", str(m["new"])], ["models", "rollback", "1"]):
            r = CliRunner().invoke(app, [*args, "--store", str(m["store"]), "--db", url])
            assert r.exit_code == 3 and "another job holds the model lock" in r.output, r.output
            assert f"pid {p.pid}" in r.output
        r = CliRunner().invoke(app, ["retrain", "--store", str(m["store"]), "--db", url, "--epochs", "1",
                                     "--device", "cpu"])  # fmt: skip
        assert r.exit_code == 3 and "promote model version" in r.output, r.output
        assert _state(url) == m["old"]  # staged, not switched: the old model is what people see
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert _check_then_rerun(m, url) == "old"  # the dead holder's lock was taken over by the rerun
