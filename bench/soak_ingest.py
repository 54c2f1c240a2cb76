"""Soak `inspector ingest` with poison files mixed into a good survey (issue 15, defect 5).

    python bench/soak_ingest.py                      # 300 mock spectra + the poison set, 2 workers
    python bench/soak_ingest.py --n 2000 --workers 4 --bomb-gb 3 --sparse-rows 50000000
    python bench/soak_ingest.py --json out.json      # the figures as JSON too

The poison set, made in a temp dir (tests/poison.py; sparse files and gzip members of zeros, so a
few MB on disk): a FIFO named *.fits, a link to /dev/zero, a symlink loop, a spec-lite COADD
declaring 5e7 rows (1.6 GB apparent, sparse), a gzip bomb (3 GiB unpacked by default), and a
spec file without its COADD HDU (it used to be taken for the catalog). The ingest runs in a
child process, as a user's would; a thread there samples each worker's /proc status every 10 ms.

Prints: files, accepted (stored), rejected with their reasons, wall time, peak worker RSS
(RUSAGE_CHILDREN, which counts the pages of a file the reader maps, and the sampled peak of
private memory, RssAnon, which is what --worker-memory bounds); then a rerun of the same
command, which must skip every rejected file and say so. Exit 1 if a good file is not stored
or a poison file is (or the rerun reads anything).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # the repo, not bench/ (bench/db.py would shadow db/)
sys.path.insert(1, str(REPO / "tests"))  # the poison makers, shared with the tests


def make_poison(spectra: Path, good_file: Path, bomb_bytes: int, sparse_rows: int) -> dict[str, str]:
    """The poison files under `spectra/poison/`; {path: what it is}."""
    from poison import (
        make_dev_zero_link,
        make_fifo,
        make_gzip_bomb,
        make_sparse_coadd,
        make_spec_without_coadd,
        make_symlink_loop,
    )

    d = spectra / "poison"
    d.mkdir()
    made = {
        make_fifo(d / "fifo.fits"): "FIFO named *.fits",
        make_dev_zero_link(d / "zero.fits"): "symlink to /dev/zero",
        make_symlink_loop(d / "loop.fits"): "symlink loop",
        make_sparse_coadd(d / "sparse-coadd.fits", good_file, rows=sparse_rows):
            f"sparse COADD declaring {sparse_rows:.0e} rows",
        make_gzip_bomb(d / "bomb.fits.gz", good_file, unpacked_bytes=bomb_bytes):
            f"gzip bomb ({bomb_bytes / 2**30:.1f} GiB unpacked)",
        make_spec_without_coadd(d / "obj-no-coadd.fits", good_file): "spec file without its COADD HDU",
    }
    return {os.path.abspath(p): what for p, what in made.items()}


class WorkerSampler(threading.Thread):
    """Peak RssAnon / RssFile / VmHWM over this process's children, sampled from /proc."""

    def __init__(self, every_s: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
        self.stop = threading.Event()

    def _children(self) -> list[str]:
        pid = os.getpid()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                return fh.read().split()
        except OSError:
            return []

    def run(self) -> None:
        while not self.stop.is_set():
            for child in self._children():
                try:
                    with open(f"/proc/{child}/status") as fh:
                        for line in fh:
                            key = line.split(":")[0]
                            if key in self.peak:
                                self.peak[key] = max(self.peak[key], int(line.split()[1]) * 1024)
                except OSError:
                    pass
            self.stop.wait(self.every_s)


def run_ingest(survey: str, store: str, workers: int, seconds: float, memory_mb: int) -> dict[str, Any]:
    """One ingest in this process (the child); its figures."""
    import pandas as pd

    from inspector.ingest import WorkerLimits, format_summary, ingest

    sampler = WorkerSampler()
    sampler.start()
    t0 = time.perf_counter()
    rep = ingest([survey], store, workers=workers, progress=False,
                 limits=WorkerLimits(seconds=seconds, memory_bytes=memory_mb * 2**20))
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    rej = pd.read_parquet(Path(store) / "rejected.parquet") if (Path(store) / "rejected.parquet").exists() \
        else pd.DataFrame(columns=["file", "category", "reason"])
    idx = pd.read_parquet(Path(store) / "index.parquet", columns=["file"])
    return {
        "files": rep.n_files, "stored": rep.n_stored, "rejected": rep.n_rejected,
        "skipped_rejected_before": rep.n_skipped_rejected, "worker_restarts": rep.worker_restarts,
        "stored_files": sorted(set(idx["file"])),
        "rejections": rej[["file", "category", "reason"]].to_dict("records"),
        "wall_s": round(wall, 2),
        "peak_worker_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "peak_worker_sampled_mb": {k: round(v / 2**20, 1) for k, v in sampler.peak.items()},
        "summary": format_summary(rep),
    }


def _child(survey: Path, store: Path, a: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(survey), str(store), "--workers", str(a.workers),
           "--file-timeout", str(a.file_timeout), "--worker-memory", str(a.worker_memory)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the ingest child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(title: str, r: dict[str, Any], poison: dict[str, str]) -> None:
    print(f"\n== {title}: {r['files']} files, {r['stored']} accepted (stored), {r['rejected']} rejected this run, "
          f"{r['skipped_rejected_before']} skipped as rejected before; wall {r['wall_s']} s")
    s = r["peak_worker_sampled_mb"]
    print(f"  peak worker RSS {r['peak_worker_rss_mb']} MB (RUSAGE_CHILDREN, incl. mapped file pages); "
          f"sampled: private (RssAnon) {s['RssAnon']} MB, mapped file pages (RssFile) {s['RssFile']} MB; "
          f"workers replaced: {r['worker_restarts']}")
    for x in r["rejections"]:
        what = poison.get(x["file"], "good file?!")
        print(f"  in rejected.parquet [{x['category']}] {Path(x['file']).name} ({what}): {x['reason']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="good spectra (a mock survey)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bomb-gb", type=float, default=3.0)
    ap.add_argument("--sparse-rows", type=int, default=50_000_000)
    ap.add_argument("--file-timeout", type=float, default=60.0)
    ap.add_argument("--worker-memory", type=int, default=2048, help="MB")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs=2, metavar=("SURVEY", "STORE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_ingest(a.child[0], a.child[1], a.workers, a.file_timeout, a.worker_memory)))
        return 0

    from inspector.mock import make_survey

    work = Path(tempfile.mkdtemp(prefix="fnet-soak-ingest-"))
    try:
        t0 = time.perf_counter()
        make_survey(work / "survey", a.n, seed=1, workers=1, progress=False)
        good = sorted((work / "survey" / "spectra").rglob("*.fits"))
        poison = make_poison(work / "survey" / "spectra", good[0], int(a.bomb_gb * 2**30), a.sparse_rows)
        disk = sum(os.lstat(p).st_blocks * 512 for p in poison)
        print(f"survey: {len(good)} good spec files + {len(poison)} poison files ({disk / 2**20:.1f} MB on disk), "
              f"made in {time.perf_counter() - t0:.1f} s in {work}")
        print(f"limits: --file-timeout {a.file_timeout:g} s, --worker-memory {a.worker_memory} MB, "
              f"--workers {a.workers}")
        first = _child(work / "survey", work / "store", a)
        show("ingest", first, poison)
        print("\n" + first["summary"])
        again = _child(work / "survey", work / "store", a)
        show("rerun, same command", again, poison)

        good_set = {str(p.resolve()) for p in good}
        stored = set(first["stored_files"])
        rejected = {x["file"] for x in first["rejections"]}
        problems = []
        if good_set - stored:
            problems.append(f"{len(good_set - stored)} good files not stored")
        if set(poison) - rejected:
            problems.append(f"poison not rejected: {sorted(set(poison) - rejected)}")
        if again["stored"] or again["rejected"] or again["skipped_rejected_before"] != len(poison):
            problems.append("the rerun read something again")
        print("\nresult: " + ("ok" if not problems else "FAILED: " + "; ".join(problems)))
        if a.json:
            a.json.write_text(json.dumps({"first": first, "rerun": again, "problems": problems}, indent=2))
        return 1 if problems else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
