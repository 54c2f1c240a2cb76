"""Ingest against poison input (issue 15, defects 4 and 5): files that are not what their name says,
that hang a reader, exhaust its memory or kill its process. Each must become one rejection with a
reason, the rest of the survey must be stored, and a rerun must skip what was rejected.

The poison makers are in tests/poison.py (shared with bench/soak_ingest.py). Tests that would
hang or eat memory without the fix run under an alarm, so a regression fails instead of hanging.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from poison import (
    make_dev_zero_link,
    make_fifo,
    make_gzip_bomb,
    make_sparse_coadd,
    make_spec_without_coadd,
    make_symlink_loop,
)
from test_ingest import _catalog, sas_path, store_equal, write_files

from inspector.ingest import (
    WorkerLimits,
    classify,
    format_summary,
    ingest,
    looks_like_catalog,
    plan_sources,
)
from inspector.store import PARTS_DIR, SpectrumStore

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) when the block runs past `seconds`."""
    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s: hung on a poison file?")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """8 good spec files on one plate."""
    root = tmp_path_factory.mktemp("good")
    write_files(root, 8, plate=4000)
    return root


def _src(good: Path, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(good, src)
    return src


def _one_good(good: Path) -> Path:
    return sas_path(good, 4000, 55300, 1)


# --------------------------------------------------------------------------- defect 4: what is a catalog


def test_a_spec_file_without_its_coadd_is_a_rejected_spectrum_not_the_catalog(good, tmp_path):
    src = _src(good, tmp_path)
    broken = make_spec_without_coadd(src / "obj-a.fits", _one_good(good))  # HDU 1 is now SPALL: keys and Z
    assert not looks_like_catalog(broken)
    plan = plan_sources([src])
    assert plan.catalog is None and str(broken) in plan.files
    rep = ingest([src], tmp_path / "s", workers=1, progress=False)
    assert rep.catalog is None and rep.n_stored == 8
    rej = SpectrumStore(tmp_path / "s").rejected
    assert rej["file"].tolist() == [str(broken)] and len(rej.loc[0, "reason"]) > 10


def test_two_corrupt_spec_files_do_not_abort_the_ingest(good, tmp_path):
    src = _src(good, tmp_path)
    a = make_spec_without_coadd(src / "obj-a.fits", _one_good(good))
    b = make_spec_without_coadd(src / "obj-b.fits", sas_path(good, 4000, 55300, 2))
    rep = ingest([src], tmp_path / "s", workers=1, progress=False)  # was: "several catalogs found"
    assert rep.n_stored == 8 and rep.n_rejected == 2 and rep.catalog is None
    assert sorted(SpectrumStore(tmp_path / "s").rejected["file"]) == sorted([str(a), str(b)])


def test_a_real_catalog_is_still_found_and_the_user_can_name_another_or_none(good, tmp_path):
    src = _src(good, tmp_path)
    make_spec_without_coadd(src / "obj-a.fits", _one_good(good))
    cat = _catalog(src / "DR16Q_like.fits", [{"PLATE": 4000, "MJD": 55300, "FIBERID": 1, "Z": 2.5, "Z_VI": 2.5}])
    other = _catalog(tmp_path / "mine.fits", [{"PLATE": 4000, "MJD": 55300, "FIBERID": 2, "Z": 1.5, "Z_VI": 1.5}])
    assert looks_like_catalog(cat) and looks_like_catalog(other)

    auto = plan_sources([src])
    assert auto.catalog == cat.resolve() and auto.catalog_auto
    named = plan_sources([src], catalog=other)
    assert named.catalog == other.resolve() and named.ignored == [str(cat.resolve())]
    none = plan_sources([src], no_catalog=True)
    assert none.catalog is None and none.ignored == [str(cat.resolve())] and str(cat.resolve()) not in none.files
    with pytest.raises(ValueError, match="contradict"):
        plan_sources([src], catalog=other, no_catalog=True)

    rep = ingest([src], tmp_path / "s", workers=1, progress=False, no_catalog=True)
    idx = SpectrumStore(tmp_path / "s").index
    assert rep.catalog is None and not idx["catalog_match"].any() and "Z_VI" not in idx.columns
    assert "catalog-like file not used" in format_summary(rep)
    rep = ingest([src], tmp_path / "t", workers=1, progress=False)
    assert "found among the sources; --catalog PATH names another, --no-catalog joins none" in format_summary(rep)


def test_two_real_catalogs_ask_which_one_naming_both_flags(good, tmp_path):
    src = _src(good, tmp_path)
    _catalog(src / "a.fits", [{"PLATE": 4000, "MJD": 55300, "FIBERID": 1, "Z": 2.5}])
    _catalog(src / "b.fits", [{"PLATE": 4000, "MJD": 55300, "FIBERID": 1, "Z": 2.5}])
    with pytest.raises(ValueError, match=r"--catalog PATH.*--no-catalog"):
        plan_sources([src])
    assert plan_sources([src], catalog=src / "a.fits").files == plan_sources([src], no_catalog=True).files


def test_a_named_catalog_that_is_not_a_file_is_refused_by_name(good, tmp_path):
    fifo = make_fifo(tmp_path / "cat.fits")
    with pytest.raises(ValueError, match=r"cat\.fits: not a regular file: a FIFO"):
        plan_sources([good], catalog=fifo)
    with pytest.raises(ValueError, match=r"nothere\.fits: file not found"):
        plan_sources([good], catalog=tmp_path / "nothere.fits")


def test_cli_no_catalog_and_a_contradiction(good, tmp_path):
    from typer.testing import CliRunner

    from inspector.cli import app

    src = _src(good, tmp_path)
    cat = _catalog(src / "DR16Q_like.fits", [{"PLATE": 4000, "MJD": 55300, "FIBERID": 1, "Z": 2.5}])
    base = ["ingest", str(src), "--store", str(tmp_path / "s"), "--workers", "1", "--no-progress"]
    res = CliRunner().invoke(app, [*base, "--catalog", str(cat), "--no-catalog"])
    assert res.exit_code == 2 and "contradict" in res.output
    res = CliRunner().invoke(app, [*base, "--no-catalog"])
    assert res.exit_code == 0, res.output
    assert "8 spectra stored" in res.output and "catalog joined" not in res.output


# --------------------------------------------------------------------------- defect 5: poison files


def test_fifo_dev_zero_link_and_symlink_loop_are_refused_at_planning_and_skipped_on_rerun(good, tmp_path):
    src = _src(good, tmp_path)
    fifo = make_fifo(src / "4000" / "aa-fifo.fits")  # sorts first: everything after it must still be read
    zero = make_dev_zero_link(src / "4000" / "ab-zero.fits")
    loop = make_symlink_loop(src / "4000" / "ac-loop.fits")
    with deadline(120):
        plan = plan_sources([src])  # was: RuntimeError("Symlink loop from ...")
        rep = ingest([src], tmp_path / "s", workers=2, chunk_size=2, progress=False)  # was: hangs on the FIFO
    reasons = dict(plan.refused)
    assert set(reasons) == {str(fifo), str(zero), str(loop)} and not set(reasons) & set(plan.files)
    assert "FIFO" in reasons[str(fifo)] and "/dev/zero" in reasons[str(zero)] and "loop" in reasons[str(loop)]
    assert rep.n_stored == 8 and rep.by_category == {"not-regular-file": 2, "symlink-loop": 1}
    rej = SpectrumStore(tmp_path / "s").rejected.set_index("file")
    assert rej.loc[str(zero), "reason"].startswith("not a regular file: a character device")
    text = format_summary(rep)
    assert "aa-fifo.fits" in text and "not-regular-file 2" in text
    with deadline(120):
        again = ingest([src], tmp_path / "s", workers=2, chunk_size=2, progress=False)
    assert (again.n_stored, again.n_rejected, again.n_skipped_rejected) == (0, 0, 3)
    assert "3 files skipped: rejected by an earlier run and unchanged since" in format_summary(again)
    assert len(SpectrumStore(tmp_path / "s").rejected) == 3  # recorded once, not once per run


def _kills_itself_on_0003(path: str):
    from inspector.readers import read_any

    if path.endswith("-0003.fits"):
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
    return read_any(path)


def test_a_file_that_kills_its_worker_is_rejected_and_the_rest_are_stored(good, tmp_path):
    with deadline(120):
        rep = ingest([good], tmp_path / "s", workers=2, chunk_size=3, progress=False, reader=_kills_itself_on_0003)
    assert rep.n_stored == 7 and rep.by_category == {"worker-died": 1} and rep.worker_restarts == 1
    store = SpectrumStore(tmp_path / "s")
    assert store.rejected.loc[0, "file"].endswith("-0003.fits")
    assert "killed (SIGKILL)" in store.rejected.loc[0, "reason"]
    assert store.index["fiberid"].tolist() == [1, 2, 4, 5, 6, 7, 8]  # the rest of its chunk too, in order
    again = ingest([good], tmp_path / "s", workers=2, chunk_size=3, progress=False)
    assert (again.n_stored, again.n_skipped_rejected) == (0, 1)  # skipped while unchanged...
    retried = ingest([good], tmp_path / "s", workers=2, progress=False, retry_rejected=True)
    assert retried.n_stored == 1  # ...until asked to read it again
    store = SpectrumStore(tmp_path / "s")
    assert len(store) == 8 and len(store.rejected) == 0


def _hangs_on_0005(path: str):
    from inspector.readers import read_any

    if path.endswith("-0005.fits"):
        time.sleep(600)
    return read_any(path)


def test_a_file_that_hangs_is_stopped_at_the_time_limit(good, tmp_path):
    t0 = time.monotonic()
    with deadline(120):
        rep = ingest([good], tmp_path / "s", workers=1, chunk_size=4, progress=False, reader=_hangs_on_0005,
                     limits=WorkerLimits(seconds=2.0))
    assert time.monotonic() - t0 < 60
    assert rep.n_stored == 7 and rep.by_category == {"timeout": 1}
    rej = SpectrumStore(tmp_path / "s").rejected
    assert rej.loc[0, "file"].endswith("-0005.fits") and "longer than 2 s" in rej.loc[0, "reason"]


def _greedy_on_0002(path: str):
    from inspector.readers import read_any

    if path.endswith("-0002.fits"):
        hog = np.ones(2**30 // 8)  # 1 GiB
        return hog  # never reached under the limit
    return read_any(path)


def test_a_file_past_the_memory_limit_is_rejected_and_the_worker_goes_on(good, tmp_path):
    with deadline(120):
        rep = ingest([good], tmp_path / "s", workers=1, progress=False, reader=_greedy_on_0002,
                     limits=WorkerLimits(memory_bytes=256 * 2**20))
    assert rep.n_stored == 7 and rep.by_category == {"out-of-memory": 1} and rep.worker_restarts == 0
    reason = SpectrumStore(tmp_path / "s").rejected.loc[0, "reason"]
    assert reason == "out of memory: reading it needed more than the worker's limit of 256 MB (--worker-memory)"


def test_a_sparse_coadd_declaring_5e7_rows_and_a_gzip_bomb_cost_a_bounded_worker(good, tmp_path):
    """The real reader on the two memory poisons: each is rejected, and the worker that read them
    survives (unbounded, the sparse COADD alone took ~4 GB and 10 s)."""
    src = _src(good, tmp_path)
    sparse = make_sparse_coadd(src / "4000" / "aa-sparse.fits", _one_good(good), rows=50_000_000)
    bomb = make_gzip_bomb(src / "4000" / "ab-bomb.fits.gz", _one_good(good), unpacked_bytes=2**30)
    assert sparse.stat().st_size > 1.5e9 and bomb.stat().st_size < 2e6
    with deadline(240):
        rep = ingest([src], tmp_path / "s", workers=1, progress=False,
                     limits=WorkerLimits(seconds=120, memory_bytes=384 * 2**20))
    assert (rep.n_stored, rep.n_rejected, rep.worker_restarts) == (8, 2, 0)
    rej = SpectrumStore(tmp_path / "s").rejected.set_index("file")
    assert set(rej.index) == {str(sparse), str(bomb)}
    # the memory limit, or the reader's own bound on what a header may declare, whichever comes first
    assert not set(rej["category"]) & {"worker-died", "timeout"}, rej["reason"].tolist()


# --------------------------------------------------------------------------- a killed ingest with poison in it


_RUNNER = textwrap.dedent("""
    import os, signal, sys, time
    from inspector.ingest import ingest
    from inspector.readers import read_any

    def read(path):  # the worker reading -0013 dies, as under the OOM killer; slowed so the kill lands mid-way
        if sys.argv[3] == "slow":
            time.sleep(0.04)
        if path.endswith("-0013.fits"):
            os.kill(os.getpid(), signal.SIGKILL)
        return read_any(path)

    ingest([sys.argv[1]], sys.argv[2], workers=2, chunk_size=4, progress=False, reader=read)
""")


def _kills_itself_on_0013(path: str):
    from inspector.readers import read_any

    if path.endswith("-0013.fits"):
        os.kill(os.getpid(), signal.SIGKILL)
    return read_any(path)


def test_a_killed_ingest_over_poison_files_reruns_to_the_same_store(tmp_path):
    src = tmp_path / "src"
    write_files(src, 40, plate=4000)
    make_fifo(src / "4000" / "spec-4000-55300-0020x.fits")
    make_symlink_loop(src / "4000" / "zz-loop.fits")
    reference = tmp_path / "reference"
    with deadline(180):
        ingest([src], reference, workers=1, chunk_size=64, progress=False, reader=_kills_itself_on_0013)
    store = tmp_path / "s"
    cmd = [sys.executable, "-c", _RUNNER, str(src), str(store)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd + ["slow"], env=env)
    limit = time.monotonic() + 60
    while len(list((store / PARTS_DIR).glob("*.index.parquet"))) < 5 and time.monotonic() < limit:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not SpectrumStore(store).complete
    subprocess.run(cmd + ["fast"], env=env, timeout=180, check=True)
    store_equal(store, reference)
    st = SpectrumStore(store)
    assert len(st) == 39 and sorted(st.rejected["category"]) == ["not-regular-file", "symlink-loop", "worker-died"]


# --------------------------------------------------------------------------- small parts


def test_rejection_categories_of_the_poison_reasons():
    from inspector.ingest.pool import death_reason, timeout_reason

    assert classify("symbolic link loop: the link leads back to itself, there is no file to read") == "symlink-loop"
    assert classify("not a regular file: a FIFO (named pipe); only plain files are read") == "not-regular-file"
    assert classify("too large: 5.0 GiB, over the 4 GiB limit per file (--max-file-size)") == "too-large"
    assert classify(timeout_reason(60)) == "timeout"
    assert classify(death_reason(-signal.SIGKILL)) == "worker-died"
    assert classify(death_reason(-signal.SIGSEGV)).startswith("worker-died")
    assert classify("out of memory: reading it needed more than the worker's limit of 2048 MB") == "out-of-memory"
    assert classify("file not found: a symbolic link to x.fits, which does not exist") == "not-found"
    # the readers' own bounds (a word inside a word is not the word: "inflates" is not "inf")
    assert classify("gzip stream inflates to more than 536870912 bytes: refused (rawfits.MAX_GUNZIP_BYTES; a "
                    "decompression bomb or an unexpectedly big file)") == "too-large"
    assert classify("HDU 1 (COADD) rows: 50000000 pixels per spectrum, more than the 1000000 a survey spectrum "
                    "has: a corrupt header") == "corrupt-header"
    assert classify("empty arrays (0 pixels)") == "empty" and classify("ivar has 3 NaN/inf values") == "non-finite"


def test_memory_limit_counts_allocations_not_mapped_files(tmp_path):
    """RLIMIT_DATA, in a child: a big allocation fails, mapping a bigger file read-only does not."""
    code = textwrap.dedent("""
        import mmap, sys
        import numpy as np
        from inspector.ingest.worker import limit_memory
        assert limit_memory(128 * 2**20)
        try:
            np.ones(2**28 // 8)  # 256 MiB
            sys.exit("allocated past the limit")
        except MemoryError:
            pass
        with open(sys.argv[1], "rb") as fh:
            m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            assert len(m) == 2**30 and m[-1] == 0
    """)
    big = tmp_path / "sparse.bin"
    with open(big, "wb") as fh:
        fh.truncate(2**30)
    subprocess.run([sys.executable, "-c", code, str(big)], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    assert resource.getrlimit(resource.RLIMIT_DATA)[0] == resource.RLIM_INFINITY  # the test process untouched
