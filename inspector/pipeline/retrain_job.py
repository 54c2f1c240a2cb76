"""Run `inspector retrain` or `inspector models promote|rollback` in a separate process (so the app stays
responsive), poll its progress, cancel it.

    job = start_job(store, db_url, job_dir, epochs=3, promote="auto")
    job.progress()   # {"state": "running"|"done"|"cancelled"|"failed", "epoch", "epochs", "train_loss", ...}
    job.cancel()     # the job stops at the end of its epoch; nothing is registered
    job.wait()       # exit code (0 done, 130 cancelled, 2 failed, 3 another model job holds the lock)
    job = start_promote_job(store, db_url, job_dir, version_id)   # progress: {"state", "step", "step_no", ...}

The job writes `progress.json` (atomically, after each epoch) and its output to `log.txt` in `job_dir`;
`cancel.flag` there asks it to stop. A job that crashes or is killed leaves the current model and the
database as they were (nothing reaches the database before training and evaluation have finished; a
promotion switches the model in one transaction at its end). Each job takes the database's model job
lock (`db.jobs`), so a second one, from this app or anywhere, fails at once (exit 3) naming the first.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENTRY = "from inspector.cli import app; app()"


@dataclass
class RetrainJob:
    job_dir: Path
    process: subprocess.Popen

    @property
    def progress_file(self) -> Path:
        return self.job_dir / "progress.json"

    @property
    def cancel_file(self) -> Path:
        return self.job_dir / "cancel.flag"

    def progress(self) -> dict[str, Any]:
        """The last progress written; state "crashed" if the process ended without saying how."""
        try:
            p = json.loads(self.progress_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            p = {"state": "starting", "epoch": 0}
        rc = self.process.poll()
        if rc is not None and p.get("state") in ("starting", "running"):
            p = {**p, "state": "crashed", "returncode": rc}
        return p

    def log(self) -> str:
        try:
            return (self.job_dir / "log.txt").read_text()
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.process.poll() is None

    def cancel(self, *, terminate: bool = False) -> None:
        """Ask the job to stop at the end of its epoch (or at once with SIGTERM if `terminate`)."""
        self.cancel_file.touch()
        if terminate and self.running():
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout)


def _spawn(args: list[str], job_dir: Path) -> RetrainJob:
    log = open(job_dir / "log.txt", "w")  # noqa: SIM115 (the child owns it)
    try:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}, cwd=os.getcwd())
    finally:
        log.close()
    return RetrainJob(job_dir, proc)


def _fresh(job_dir: Path) -> Path:
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    for name in ("progress.json", "cancel.flag"):
        (job_dir / name).unlink(missing_ok=True)
    return job_dir


def start_promote_job(store: Path, db_url: str, job_dir: Path, version_id: int, *,
                      rollback: bool = False) -> RetrainJob:
    """Start `inspector models promote|rollback ID` in a child process writing its progress to `job_dir`."""
    job_dir = _fresh(job_dir)
    args = [
        sys.executable, "-c", ENTRY, "models", "rollback" if rollback else "promote", str(int(version_id)),
        "--store", str(store), "--db", db_url, "--progress-file", str(job_dir / "progress.json"),
    ]  # fmt: skip
    return _spawn(args, job_dir)


def start_job(
    store: Path,
    db_url: str,
    job_dir: Path,
    *,
    epochs: int = 3,
    promote: str = "auto",
    from_scratch: bool = False,
    min_quality: float = 3,
    device: str = "auto",
    extra_args: list[str] | None = None,
) -> RetrainJob:
    """Start `inspector retrain` in a child process writing its progress to `job_dir`."""
    job_dir = _fresh(job_dir)
    args = [
        sys.executable, "-c", ENTRY, "retrain", "--store", str(store), "--db", db_url, "--epochs", str(epochs),
        "--promote", promote, "--min-quality", str(min_quality), "--device", device,
        "--progress-file", str(job_dir / "progress.json"), "--cancel-file", str(job_dir / "cancel.flag"),
    ]  # fmt: skip
    if from_scratch:
        args.append("--from-scratch")
    args += list(extra_args or [])
    return _spawn(args, job_dir)
