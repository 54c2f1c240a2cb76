"""The recipe that makes the shipped FNet (`assets/models/fnet-small-mock.pt`), start to end, resumable.

A model is only as reproducible as the data it was trained on, so the recipe owns every step:
a training mock (flat-z quasars with a flat S/N among a quasar-target superset's stars, galaxies and
empty spectra, so the class head sees what a real superset holds), its ingest into a store, the
network trained on the quasars, then a twin of it trained on everything for the classes and the
stars' and galaxies' own z while the quasar network stays frozen (`model.class_head` says why), and
last the risk model that describes this FNet (`inspector.risk`), fitted on two mock surveys of its own.
Each step picks up where a killed run stopped (the mock is kept once its catalog is written, the
ingest resumes itself, the training resumes from its per-epoch checkpoint), so the whole recipe
can run for hours under nohup and be rerun with the same command after any interruption.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inspector.ingest.run import ingest
from inspector.mock.survey import CATALOG_NAME, make_survey
from inspector.pipeline.predict import write_predictions
from inspector.pipeline.train import train_on_store
from inspector.risk.learner import load_risk_model, risk_path_for
from inspector.risk.stores import fit_on_stores


@dataclass(frozen=True)
class Recipe:
    n: int = 120_000
    seed: int = 7
    z_distribution: str = "flat"
    population: str = "superset"
    sn_distribution: str = "flat"
    config: str = "small"
    epochs: int = 10
    class_epochs: int = 3
    class_lr: float = 3e-4
    non_quasar_z_weight: float = 1.0  # 0: the class stage's redshift loss on the quasars only
    class_net: str = "twin"  # the class stage trains a copy; the quasar network stays as it is
    train_seed: int = 0
    threads: int = 2
    workers: int = 2
    # the risk model's mock surveys (name, seed, population, n): never the test seeds 98 / 99
    risk_mocks: tuple[tuple[str, int, str, int], ...] = (("dr16q", 201, "qso", 16000), ("super", 202, "superset", 12000))


def build(workdir: Path, out: Path, recipe: Recipe = Recipe(), progress: bool = True,
          echo: Callable[[str], Any] = print) -> Path:
    """Run (or resume) the recipe in `workdir`; write the finished model to `out` and return its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    mock_dir, store = workdir / "mock", workdir / "store"
    stamp = workdir / "recipe.json"
    if stamp.exists() and json.loads(stamp.read_text()) != json.loads(json.dumps(asdict(recipe))):  # tuples: lists
        raise ValueError(f"{workdir} holds a run of another recipe ({stamp}); use a fresh directory")
    stamp.write_text(json.dumps(asdict(recipe), indent=2))
    times: dict[str, float] = {}

    t0 = time.time()
    if not (mock_dir / CATALOG_NAME).exists():
        echo(f"mock: {recipe.n} spectra ({recipe.population}, {recipe.z_distribution} z, {recipe.sn_distribution} S/N)"
             f" -> {mock_dir}")
        make_survey(mock_dir, recipe.n, seed=recipe.seed, workers=recipe.workers, progress=progress,
                    z_distribution=recipe.z_distribution, population=recipe.population,
                    sn_distribution=recipe.sn_distribution)
    times["mock_s"] = time.time() - t0

    t0 = time.time()
    echo(f"ingest -> {store}")
    ingest([str(mock_dir)], store, workers=recipe.workers, progress=progress)
    times["ingest_s"] = time.time() - t0

    t0 = time.time()
    qso_model = workdir / "fnet-qso.pt"
    res = train_on_store(
        store, qso_model, config=recipe.config, epochs=recipe.epochs, seed=recipe.train_seed, resume=True,
        threads=recipe.threads, class_head=False, progress=progress, echo=echo,
    )  # fmt: skip
    times["train_s"] = time.time() - t0
    echo(res.history.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    echo(f"validation quasars ({res.n_val_quasars}):\n{res.validation_table}")

    t0 = time.time()
    head = train_on_store(
        store, out, config=recipe.config, epochs=recipe.class_epochs, lr=recipe.class_lr, seed=recipe.train_seed,
        resume=True, threads=recipe.threads, class_head=True, init=qso_model,
        z_quasars_only=recipe.non_quasar_z_weight == 0,
        non_quasar_z_weight=recipe.non_quasar_z_weight if recipe.non_quasar_z_weight > 0 else None,
        twin=recipe.class_net == "twin",
        progress=progress, echo=echo,
    )  # fmt: skip
    times["class_s"] = time.time() - t0
    echo(head.history.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    t0 = time.time()
    build_risk(workdir / "risk", head.out, recipe, progress, echo)
    times["risk_s"] = time.time() - t0
    echo(f"wall time this run: mock {times['mock_s']:.0f} s, ingest {times['ingest_s']:.0f} s, "
         f"quasar training {times['train_s']:.0f} s, class-head training {times['class_s']:.0f} s, "
         f"risk model {times['risk_s']:.0f} s; in all "
         f"(every resumed part) {res.train_seconds:.0f} s + {head.train_seconds:.0f} s of training")
    return head.out


def build_risk(workdir: Path, model: Path, recipe: Recipe = Recipe(), progress: bool = True,
               echo: Callable[[str], Any] = print) -> Path:
    """The risk model of a freshly trained FNet (`inspector.risk`): its own mock surveys, predicted by that
    FNet with the template fit, then fitted; written beside the model. Each mock and store is reused."""
    from model.checkpoint import file_sha1

    out = risk_path_for(model)
    if out.exists() and load_risk_model(out).meta.get("fnet_sha1") == file_sha1(model):
        echo(f"risk model: {out} already describes {model}")
        return out
    pairs = []
    for name, seed, population, n in recipe.risk_mocks:
        mock_dir, store = workdir / name / "mock", workdir / name / "store"
        if not (mock_dir / CATALOG_NAME).exists():
            echo(f"risk mock {name}: {n} spectra ({population}, seed {seed}) -> {mock_dir}")
            make_survey(mock_dir, n, seed=seed, workers=recipe.workers, progress=progress, population=population)
        ingest([str(mock_dir)], store, workers=recipe.workers, progress=progress)
        pred = workdir / name / f"{model.stem}.parquet"
        write_predictions(store, model, pred, progress=progress)  # always: the model is new
        pairs.append((store, pred))
    fitted = fit_on_stores(pairs, out)
    echo(f"risk model: {fitted.meta['n_spectra']} spectra, {fitted.meta['n_wrong']} wrong answers -> {out}")
    return out
