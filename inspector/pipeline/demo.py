"""The demo pipeline behind `inspector demo` (and `./run.sh demo`): mock survey -> store -> FNet predictions
-> accuracy table -> triage -> SQLite, ready for the app.

It lives here, not in the command, so that the command only parses, calls and serves, and so that a
test or a script can build the same demo without going through the CLI. Every step whose output is
already on disk is reused (the survey, the store through ingest's own resume, the predictions), so a
second run costs the evaluation and triage only; loading the database upserts and never touches the
decisions people already made.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from inspector.ingest import format_summary, ingest
from inspector.mock import make_survey
from inspector.mock.survey import CATALOG_NAME
from inspector.pipeline.evaluate_store import evaluate_store
from inspector.pipeline.predict import write_predictions
from inspector.pipeline.triage import choose_policy, format_policy, load_into_db, run_triage
from inspector.store.files import predictions_path, scores_path, triage_path
from inspector.triage import format_summary as format_triage
from model.assets import DEMO_MODEL

DB_NAME = "fnet_inspector.sqlite"


@dataclass(frozen=True)
class DemoRun:
    """Where a demo run left everything, so that the caller can serve the app on it or report it."""

    workdir: Path
    store: Path
    predictions: Path
    db_url: str
    counts: dict[str, int]  # load_into_db's: spectra, predictions, flags, model_version_id

    @property
    def db_file(self) -> Path | None:
        """The SQLite file; None for a database server."""
        u = make_url(self.db_url)
        return Path(u.database) if u.get_backend_name() == "sqlite" and u.database else None

    @property
    def evaluation(self) -> Path:
        return self.workdir / "evaluation"

    def summary(self) -> str:
        """The closing lines a person needs to find the store, the predictions and the database again."""
        return (
            f"\nspectrum store: {self.store}\npredictions: {self.predictions}\nevaluation: {self.evaluation}"
            f"\ndatabase: {self.db_file or make_url(self.db_url).render_as_string()} ({self.counts['spectra']} spectra, {self.counts['flags']} triage flags in the queue)"
        )


def run_demo(
    workdir: Path,
    n: int = 1000,
    seed: int = 0,
    model: Path = DEMO_MODEL,
    echo: Callable[[str], object] = print,
    max_leak: float | None = None,
    budget: int | None = None,
    rules_only: bool = False,
    db_url: str | None = None,
) -> DemoRun:
    """Build (or bring up to date) the demo in `workdir`; `echo` gets each step's report as it finishes.

    The survey is made only when its catalog is missing and the predictions only when this model has
    none in the store yet, so `n` and `seed` are ignored once a demo exists (delete `workdir` to start
    over). `max_leak` / `budget` / `rules_only`: the queue policy, as `inspector triage` takes it (default:
    the default leak target where the model has a risk model). `db_url`: a team's database (PostgreSQL)
    instead of the SQLite file in `workdir`.
    """
    workdir = Path(workdir)
    survey, store = workdir / "survey", workdir / "store"
    if not (survey / CATALOG_NAME).exists():
        echo(f"making a {n}-spectrum mock survey in {survey} ...")
        make_survey(survey, n, seed=seed)
    echo(format_summary(ingest([str(survey)], store)))
    predictions = predictions_path(store, model)
    if not predictions.exists():
        echo(f"predicting with {model} ...")
        write_predictions(store, model, progress=True)
    echo(evaluate_store(store, predictions, split="all", out_dir=workdir / "evaluation").text)
    policy, note = choose_policy(max_leak, budget, rules_only, store, predictions)
    if note:
        echo(note)
    flags, _, meta = run_triage(store, predictions, policy=policy)
    echo(format_triage(flags))
    if meta.get("policy"):
        echo(format_policy(meta["policy"]))
    url = db_url or f"sqlite:///{(workdir / DB_NAME).resolve()}"
    counts = load_into_db(url, store, predictions, flags, meta, scores=scores_path(triage_path(store, predictions)))
    return DemoRun(workdir=workdir, store=store, predictions=predictions, db_url=url, counts=counts)
