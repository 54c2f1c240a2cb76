"""`inspector retrain` (train a new model version on the decisions) and `inspector models list|promote|rollback`.

    inspector retrain --store S --db URL [--from-scratch] [--epochs N] [--min-quality 3] [--promote auto|never|always]
    inspector models list --db URL
    inspector models promote ID --store S --db URL [--progress-file P]
    inspector models rollback ID --store S --db URL [--progress-file P]

`--progress-file P` writes {"state", "epoch", "epochs", "train_loss", "val_acc@6000", ...} as JSON after each
epoch (atomically, for an app to poll); `--cancel-file F`: when F exists at the end of an epoch the job stops
and nothing is registered (as after Ctrl-C / SIGTERM): the current model and the database stay as they were.
A promotion's progress file says its step ({"state", "step", "step_no", "steps", "version_id"}).

Exit codes: 0 done, 2 failed, 3 another model job (retrain, promote, rollback) holds the database's job
lock (nothing was done), 130 cancelled.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import typer

from inspector.cli import app

models_app = typer.Typer(help="Model versions in the database: list, promote, roll back.", no_args_is_help=True)
app.add_typer(models_app, name="models")


BUSY = 3  # exit code: another model job holds the lock


class Cancelled(RuntimeError):
    pass


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, default=str))
    os.replace(tmp, path)


@app.command("retrain")
def retrain_command(
    store: Path = typer.Option(..., "--store", help="Spectrum store directory."),
    db: str = typer.Option(..., "--db", help="SQLAlchemy URL of the inspection database."),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Train a new small FNet instead of fine-tuning."),
    epochs: int = typer.Option(3, "--epochs", min=1),
    min_quality: float = typer.Option(3, "--min-quality", help="Decided labels need this consensus quality."),
    promote: str = typer.Option("auto", "--promote", help="auto (if not worse by the rule), never or always."),
    no_replay: bool = typer.Option(False, "--no-replay", help="Train on the decided labels only."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu or cuda."),
    progress_file: Path | None = typer.Option(None, "--progress-file", help="JSON progress written each epoch."),
    cancel_file: Path | None = typer.Option(None, "--cancel-file", help="Stop (register nothing) if this exists."),
) -> None:
    """Train a new model version on the inspectors' decisions, compare it with the current one, maybe promote it.

    Data-parallel: `torchrun --nproc_per_node N -m inspector.cli retrain ...`; rank 0 alone holds the job
    lock, writes the progress file and registers the version.
    """
    from db.jobs import JobLockHeld
    from inspector.pipeline.retrain import PROMOTE_MODES, retrain
    from model import distributed

    if promote not in PROMOTE_MODES:
        raise typer.BadParameter(f"--promote must be one of {PROMOTE_MODES}")
    if not distributed.is_main():
        progress_file = None  # one writer
    status: dict[str, Any] = {"state": "running", "epoch": 0, "epochs": epochs, "pid": os.getpid()}
    if progress_file is not None:
        _write_json(progress_file, status)

    def on_term(signum, frame):  # SIGTERM: stop like Ctrl-C
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)

    def callback(epoch: int, record: dict[str, float], model: Any) -> None:
        status.update({k: v for k, v in record.items() if isinstance(v, (int, float))}, epoch=epoch)
        typer.echo(
            f"epoch {epoch}/{epochs}: train loss {record.get('train_loss', float('nan')):.4g}"
            + (f", val acc@6000 {record['val_acc@6000']:.1f}%" if "val_acc@6000" in record else "")
        )
        if progress_file is not None:
            _write_json(progress_file, status)
        if cancel_file is not None and cancel_file.exists():
            raise Cancelled(f"cancelled ({cancel_file} exists)")

    try:
        res = retrain(
            store, db, from_scratch=from_scratch, epochs=epochs, min_quality=min_quality, promote=promote,
            replay=not no_replay, device=device, callback=callback,
        )  # fmt: skip
    except (Cancelled, KeyboardInterrupt) as exc:
        status["state"] = "cancelled"
        if progress_file is not None:
            _write_json(progress_file, status)
        typer.echo(f"{exc or 'interrupted'}: nothing registered; the current model is unchanged", err=True)
        raise typer.Exit(130) from None
    except JobLockHeld as exc:
        status.update(state="failed", error=str(exc))
        if progress_file is not None:
            _write_json(progress_file, status)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(BUSY) from None
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        status.update(state="failed", error=str(exc))
        if progress_file is not None:
            _write_json(progress_file, status)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        signal.signal(signal.SIGTERM, old)
        distributed.teardown()
    if res is None:  # a torchrun rank > 0: rank 0 reports
        return
    m = res.metrics
    lines = [f"model version {res.version_id} (parent {res.parent_id}): {res.path}",
             f"labels: {res.label_count} training spectra ({res.n_decided_labels} decided labels in all)"]  # fmt: skip
    if m["labels"].get("classes"):  # a class head: what it was taught, people's verdicts included
        lines.append("classes: " + ", ".join(f"{k} {v}" for k, v in m["labels"]["classes"].items()))
    for where in ("held_out_decided", "mock_test"):
        b, a = m["before"][where], m["after"][where]
        if b.get("n"):
            acc = "  ".join(f"{k} {b[k]:.1f} -> {a[k]:.1f}" for k in b if k.startswith("acc@"))
            lines.append(f"{where} ({b['n']} spectra): {acc}")
    lines.append(f"promotion: {res.reason}; {'now current' if res.promoted else 'not promoted'}")
    status.update(state="done", version_id=res.version_id, promoted=res.promoted)
    if progress_file is not None:
        _write_json(progress_file, status)
    typer.echo("\n".join(lines))


@models_app.command("list")
def models_list(db: str = typer.Option(..., "--db", help="SQLAlchemy URL of the inspection database.")) -> None:
    """Every model version: parent, current, label count, acc@6000 before -> after."""
    import pandas as pd

    from inspector.pipeline.retrain import versions_frame

    df = versions_frame(db)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        typer.echo(df.to_string(index=False) if len(df) else "no model versions")


def _promote(version_id: int, store: Path, db: str, what: str, progress_file: Path | None) -> None:
    from db.jobs import JobLockHeld
    from inspector.pipeline.promote import STEPS, promote_version
    from inspector.pipeline.retrain import queue_size

    status: dict[str, Any] = {"state": "running", "job": what, "version_id": version_id, "step": "starting",
                              "step_no": 0, "steps": len(STEPS), "pid": os.getpid()}  # fmt: skip

    def save(**kw: Any) -> None:
        status.update(kw)
        if progress_file is not None:
            _write_json(progress_file, status)

    def on_step(step: str) -> None:
        save(step=step, step_no=STEPS.index(step) + 1)

    save()
    try:
        counts = promote_version(store, db, version_id, on_step=on_step)
    except JobLockHeld as exc:
        save(state="failed", error=str(exc))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(BUSY) from None
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        save(state="failed", error=str(exc))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    save(state="done", predictions=counts["predictions"], flags=counts["flags"])
    typer.echo(
        f"{what}: model version {version_id} is current; {counts['predictions']} predictions, "
        f"{counts['flags']} flags reloaded; {queue_size(db)} undecided spectra in the queue"
    )


PROGRESS_HELP = "JSON progress (state, step) written at each step, for an app to poll."


@models_app.command("promote")
def models_promote(
    version_id: int = typer.Argument(...),
    store: Path = typer.Option(..., "--store"),
    db: str = typer.Option(..., "--db"),
    progress_file: Path | None = typer.Option(None, "--progress-file", help=PROGRESS_HELP),
) -> None:
    """Make a model version current: re-predict and re-triage (decisions are kept); one switch at the end."""
    _promote(version_id, store, db, "promoted", progress_file)


@models_app.command("rollback")
def models_rollback(
    version_id: int = typer.Argument(...),
    store: Path = typer.Option(..., "--store"),
    db: str = typer.Option(..., "--db"),
    progress_file: Path | None = typer.Option(None, "--progress-file", help=PROGRESS_HELP),
) -> None:
    """Make an earlier model version current again (re-predict and re-triage)."""
    _promote(version_id, store, db, "rolled back", progress_file)
