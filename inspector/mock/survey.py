"""`make_survey`: a mock survey in the real formats: spec-*.fits files plus a DR16Q-like catalog.

Each object is made from its own random stream (spawned from the survey
seed), so a survey is the same whatever the number of worker processes.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table
from tqdm import tqdm

from inspector.mock import calibration, contaminants, estimates, observe, quasar
from inspector.readers import write_spec_file
from inspector.spectrum import Spectrum
from model.classes import CLASS_TABLE
from model.grid import resample_one
from model.template_fit import fit_redshift

CATALOG_NAME = "DR16Q_mock.fits"
SPECTRA_DIR = "spectra"
CONTAMINANT_FRACTION = 0.05
FIBERS_PER_PLATE = 500

# DR16Q-like n(z): fraction of quasars per bin (uniform inside a bin); 0-6, peak near 2.3-2.5
Z_BINS = np.array([0.0, 0.3, 0.5, 0.8, 1.1, 1.5, 2.0, 2.2, 2.5, 2.8, 3.0, 3.5, 4.0, 5.0, 6.0])
Z_WEIGHTS = np.array([2.0, 3.0, 7.0, 9.0, 14.0, 17.0, 9.0, 14.0, 10.0, 5.0, 6.0, 2.2, 1.1, 0.3])
Z_WEIGHTS = Z_WEIGHTS / Z_WEIGHTS.sum()

# a mock object's DR16Q CLASS_PERSON: its class's first code; 0 ("not inspected") for BAD, which has none
CLASS_PERSON = {name: codes[0] if codes else 0 for name, codes, _ in CLASS_TABLE}

# "qso": a quasar catalog's mock, ~5% prospect stars/galaxies (the demo's and the tests'); "superset": a
# quasar-target superset, ~50% quasars and the contaminants of `contaminants.SUPERSET`.
POPULATIONS = ("qso", "superset")


# A training set wants every z well sampled, not the survey's n(z): "flat" is uniform to 4.5, thinner beyond.
Z_FLAT_BINS = np.array([0.0, 4.5, 6.0])
Z_FLAT_WEIGHTS = np.array([0.95, 0.05])
Z_DISTRIBUTIONS = {"dr16q": (Z_BINS, Z_WEIGHTS), "flat": (Z_FLAT_BINS, Z_FLAT_WEIGHTS)}


def z_table(z_distribution: str) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges, weights) of a named n(z), or of "uniform:LO-HI" (quasars uniform in one z window,
    e.g. the FNet paper's line-masking test at 2.8-3.0)."""
    if z_distribution in Z_DISTRIBUTIONS:
        return Z_DISTRIBUTIONS[z_distribution]
    kind, _, window = z_distribution.partition(":")
    lo, _, hi = window.partition("-")
    try:
        edges = np.array([float(lo), float(hi)])
    except ValueError:
        edges = None
    if kind != "uniform" or edges is None or not 0 <= edges[0] < edges[1]:
        raise ValueError(
            f"z_distribution must be one of {tuple(Z_DISTRIBUTIONS)} or uniform:LO-HI, got {z_distribution!r}"
        )
    return edges, np.array([1.0])


def check_options(z_distribution: str, population: str, sn_distribution: str = "dr16q") -> None:
    """A clear error before any work (a worker pool would otherwise fail on the first object)."""
    z_table(z_distribution)
    if sn_distribution not in observe.SN_DISTRIBUTIONS:
        raise ValueError(f"sn_distribution must be one of {observe.SN_DISTRIBUTIONS}, got {sn_distribution!r}")
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {POPULATIONS}, got {population!r}")


def draw_z(rng: np.random.Generator, distribution: str = "dr16q") -> float:
    bins, weights = z_table(distribution)
    k = rng.choice(len(weights), p=weights)
    return float(rng.uniform(bins[k], bins[k + 1]))


def _ids(index: int, is_sdss1: bool, rng: np.random.Generator) -> tuple[int, int, int, float, float]:
    """Plate/MJD/fiber in the era of the borrowed instrument; RA/DEC in the plate's patch."""
    plate_no = index // FIBERS_PER_PLATE
    base = 300 + plate_no * 7 if is_sdss1 else 3600 + plate_no * 7
    plate = base
    mjd = (51600 if is_sdss1 else 55200) + plate_no * 3
    fiber = index % FIBERS_PER_PLATE + 1
    ra0, dec0 = (plate_no * 13.7) % 360, -5 + (plate_no * 7.3) % 60
    ra = float((ra0 + rng.uniform(-1.5, 1.5)) % 360)
    dec = float(np.clip(dec0 + rng.uniform(-1.5, 1.5), -89, 89))
    return plate, mjd, fiber, ra, dec


def sdss_name(ra: float, dec: float) -> str:
    h = ra / 15
    hh, mm = int(h), int((h * 60) % 60)
    ss = (h * 3600) % 60
    sign = "+" if dec >= 0 else "-"
    d = abs(dec)
    dd, dm = int(d), int((d * 60) % 60)
    ds = (d * 3600) % 60
    return f"{hh:02d}{mm:02d}{ss:05.2f}{sign}{dd:02d}{dm:02d}{ds:04.1f}"


Z_PCA_SOURCES = ("simulated", "template")


def template_z_pca(loglam: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> float:
    """Z_PCA measured on the noisy mock spectrum by the template fit (`model.template_fit`), as DR16Q
    measured its Z_PCA with a PCA fit; -1 (DR16Q's "none") where there is no fit."""
    z = fit_redshift(loglam, flux, ivar, keep_curve=False).z
    return float(z) if np.isfinite(z) else -1.0


def _draw_template(roll: float, population: str) -> str:
    """"QSO" (a quasar, BAL or not) or the contaminant template the uniform `roll` picks in `population`."""
    if population == "superset":
        return contaminants.superset_template(roll)
    if roll < CONTAMINANT_FRACTION * 0.5:
        return "STAR"
    return "GALAXY" if roll < CONTAMINANT_FRACTION else "QSO"


def make_object(index: int, seed: int, calib: dict, z_distribution: str = "dr16q",
                z_pca_source: str = "simulated", population: str = "qso",
                sn_distribution: str = "dr16q") -> tuple[Spectrum, dict]:
    """One mock object: its spectrum record and its catalog row.

    `z_pca_source`: "simulated" (truth + DR16Q-like error model) or "template" (measured on the
    spectrum by the template fit). The random draws are the same either way, so a seed gives
    the same objects. `population` (POPULATIONS): which mix of quasars and contaminants; the
    quasars follow `z_distribution` and `sn_distribution` (observe.draw_sn) in either."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    inst = observe.draw_instrument(rng, calib)
    wave = inst.wave
    template = _draw_template(rng.random(), population)
    superset_contaminant = population == "superset" and template != "QSO"
    truth = None
    if template == "QSO":
        z = draw_z(rng, z_distribution)
        luminosity = float(np.exp(rng.normal(0, 0.7)))
        flux_true, truth = quasar.observed_flux(rng, calib, z, wave, luminosity)
        kind = "BAL" if truth.bal is not None else "QSO"
    elif superset_contaminant:
        kind = contaminants.kind_of(template)
        flux_true, z = contaminants.superset_flux(rng, template, inst)
    else:
        kind = template
        flux_true, z = contaminants.star_flux(rng, wave) if kind == "STAR" else contaminants.galaxy_flux(rng, wave)
    is_qso = kind in ("QSO", "BAL")
    if superset_contaminant:
        sn, flux_scale = contaminants.draw_sn_scale(rng, template)
    else:
        sn = observe.draw_sn(rng, sn_distribution if is_qso else "dr16q")
        flux_scale = float(np.exp(rng.normal(np.log(8.0), 0.6)))
    # a quasar's S/N is set on its continuum redward of Lya where the forest would otherwise dominate the median
    red = wave / (1 + z) > observe.RED_OF_LYA if is_qso else None
    obs = observe.observe(rng, flux_true, inst, sn, flux_scale, sn_pixels=red)
    if template == "BAD-broken":
        contaminants.break_half(rng, obs, wave)
    sn_meas = float(obs["sn_median_all"])
    wmin, wmax = float(wave[0]), float(wave[-1])
    if kind == "BAD":
        pipe_class, zp, zwarn = estimates.z_pipe_no_signal(rng)
    else:
        zp, zwarn = estimates.z_pipe(rng, z, sn_meas, wmin, wmax, is_qso)
    zq, is_qso_qn = estimates.z_qn(rng, z, sn_meas, wmin, wmax, is_qso)
    zpca = estimates.z_pca(rng, z, sn_meas, wmin, wmax, is_qso)
    if z_pca_source == "template":
        zpca = template_z_pca(inst.loglam, obs["flux"], obs["ivar"])
    plate, mjd, fiber, ra, dec = _ids(index, inst.is_sdss1, rng)
    if superset_contaminant and kind != "BAD":
        pipe_class = estimates.pipe_class(rng, template)
    elif kind != "BAD":
        pipe_class = "QSO" if is_qso else kind
    if is_qso and zp > 0 and abs(zp - z) / (1 + z) > 0.05 and rng.random() < 0.3:
        pipe_class = "GALAXY"
    survey = "SDSS" if inst.is_sdss1 else ("BOSS" if plate < 7000 else "eBOSS")
    spec = Spectrum(
        wave=wave,
        flux=obs["flux"],
        ivar=obs["ivar"],
        source="",
        survey=survey,
        and_mask=obs["and_mask"],
        sky=obs["sky"],
        plate=plate,
        mjd=mjd,
        fiberid=fiber,
        ra=ra,
        dec=dec,
        spec_class=pipe_class,
        z=zp,
        z_err=abs(rng.normal(0, 3e-4)) * (1 + max(z, 0.0)),
        zwarning=zwarn,
        sn_median_all=sn_meas,
        extra={"SUBCLASS": _subclass(template, is_qso), "THING_ID": seed * 10_000_000 + index, "RUN2D": "26" if inst.is_sdss1 else "v5_13_0"},
    )
    row = {
        "SDSS_NAME": sdss_name(ra, dec),
        "RA": ra,
        "DEC": dec,
        "PLATE": plate,
        "MJD": mjd,
        "FIBERID": fiber,
        "Z": z,
        "SOURCE_Z": "VI",
        "Z_PIPE": zp,
        "ZWARNING": zwarn,
        "Z_VI": z,
        "Z_CONF": 0 if kind == "BAD" else 3,  # a spectrum with no signal has no z to be sure of
        "CLASS_PERSON": CLASS_PERSON[kind],
        "Z_QN": zq,
        "IS_QSO_QN": is_qso_qn,
        "Z_PCA": zpca,
        "Z_DR12Q": -1.0,
        "Z_10K": -1.0,
        "BAL_PROB": (1.0 if kind == "BAL" else 0.0) if (is_qso and z > 1.57) else -1.0,
        "SN_MEDIAN_ALL": sn_meas,
        "IS_QSO_FINAL": 1 if is_qso else 0,
        "MOCK_KIND": kind,
        "MOCK_SN_TARGET": sn,
        "MOCK_INSTRUMENT": "SDSS" if inst.is_sdss1 else "BOSS",
        "MOCK_NOISE_ROW": inst.row,
        "MOCK_TEMPLATE": truth.template if truth else template,
        "MOCK_LINE_SCALE": truth.line_scale if truth else np.nan,
        "MOCK_LINE_SIGMA_KMS": truth.line_sigma_kms if truth else np.nan,
        "MOCK_SLOPE_DELTA": truth.slope_delta if truth else np.nan,
        "MOCK_HOST_FRACTION": truth.host_fraction if truth else np.nan,
        "MOCK_N_DLA": len(truth.dlas) if truth else 0,
        "MOCK_BAL_VMAX": truth.bal.v_max if (truth and truth.bal) else 0.0,
        "MOCK_OIII_EW": getattr(truth, "oiii_ew", np.nan) if truth else np.nan,
        "MOCK_HALPHA_EW": getattr(truth, "halpha_ew", np.nan) if truth else np.nan,
    }
    return spec, row


def _subclass(template: str, is_qso: bool) -> str:
    """The pipeline's SUBCLASS: BROADLINE for quasars, the spectral type for superset stars, STARFORMING
    for emission-line galaxies (as the SDSS pipeline labels them); empty otherwise."""
    if is_qso:
        return "BROADLINE"
    if template.startswith("STAR-"):
        return template[5:]
    return "STARFORMING" if template == "GALAXY-emission" else ""


def spec_path(out_dir: Path, plate: int, mjd: int, fiber: int) -> Path:
    """SAS layout: spectra/PPPP/spec-PPPP-MMMMM-FFFF.fits."""
    return out_dir / SPECTRA_DIR / f"{plate:04d}" / f"spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits"


def _work(args: tuple[int, int, str, str, str, str]) -> dict:
    index, seed, out_dir, z_distribution, z_pca_source, population, sn_distribution = args
    spec, row = make_object(index, seed, _CALIB, z_distribution, z_pca_source, population, sn_distribution)

    path = spec_path(Path(out_dir), row["PLATE"], row["MJD"], row["FIBERID"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_spec_file(path, spec, layout="sdss" if row["MOCK_INSTRUMENT"] == "SDSS" else "boss")
    return row


_CALIB: dict = {}


def _init_worker(calib_path: str) -> None:
    global _CALIB
    _CALIB = calibration.load(Path(calib_path))


def make_survey(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    workers: int | None = None,
    calibration_file: Path = calibration.CALIBRATION_FILE,
    progress: bool = True,
    z_distribution: str = "dr16q",
    z_pca_source: str = "simulated",
    population: str = "qso",
    sn_distribution: str = "dr16q",
) -> Path:
    """Write `n` mock spectra and the catalog under `out_dir`; return the catalog's path.

    `z_pca_source`: where the catalog's Z_PCA comes from; `population`: the mix of objects (both see
    `make_object`)."""
    if z_pca_source not in Z_PCA_SOURCES:
        raise ValueError(f"z_pca_source must be one of {Z_PCA_SOURCES}, got {z_pca_source!r}")
    check_options(z_distribution, population, sn_distribution)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or min(mp.cpu_count(), 8)
    tasks = [(i, seed, str(out), z_distribution, z_pca_source, population, sn_distribution) for i in range(n)]
    t0 = time.time()
    if workers > 1 and n > 50:
        with mp.get_context("fork").Pool(workers, _init_worker, (str(calibration_file),)) as pool:
            it = pool.imap(_work, tasks, chunksize=32)
            rows = list(tqdm(it, total=n, desc="mock", unit="spec", disable=not progress))
    else:
        _init_worker(str(calibration_file))
        rows = [_work(t) for t in tqdm(tasks, desc="mock", unit="spec", disable=not progress)]
    table = Table.from_pandas(pd.DataFrame(rows))
    table.meta.update({"MOCKSEED": seed, "MOCKN": n, "ORIGIN": "FNet Inspector mock survey"})
    cat_path = out / CATALOG_NAME
    table.write(cat_path, overwrite=True)
    meta = {"n": n, "seed": seed, "z_distribution": z_distribution, "z_pca": z_pca_source, "population": population, "sn_distribution": sn_distribution, "seconds": round(time.time() - t0, 1), "catalog": CATALOG_NAME, "spectra": SPECTRA_DIR}
    (out / "mock.json").write_text(json.dumps(meta, indent=2))
    return cat_path


def _grid_work(args: tuple[int, int, str, str]) -> tuple[np.ndarray, dict]:
    index, seed, z_distribution, population, sn_distribution = args
    spec, row = make_object(index, seed, _CALIB, z_distribution, population=population, sn_distribution=sn_distribution)
    flux, _ = resample_one(np.log10(spec.wave), spec.flux, spec.ivar, spec.and_mask)
    return flux, row


def make_grid_arrays(
    n: int,
    seed: int = 0,
    z_distribution: str = "flat",
    workers: int | None = None,
    calibration_file: Path = calibration.CALIBRATION_FILE,
    progress: bool = True,
    population: str = "qso",
    sn_distribution: str = "dr16q",
) -> tuple[np.ndarray, pd.DataFrame]:
    """The mock straight onto the FNet grid (N x 4618 float32) with its catalog, no files written.

    The same objects as `make_survey` with the same seed, for training sets
    and studies that never need the FITS files. A class-aware training set is
    `z_distribution="flat", population="superset"`: flat-z quasars among the
    superset's stars, galaxies and BAD spectra.
    """
    check_options(z_distribution, population, sn_distribution)
    workers = workers or min(mp.cpu_count(), 8)
    flux = np.zeros((n, 4618), np.float32)
    rows = []
    tasks = [(i, seed, z_distribution, population, sn_distribution) for i in range(n)]
    with mp.get_context("fork").Pool(workers, _init_worker, (str(calibration_file),)) as pool:
        for i, (f, r) in enumerate(tqdm(pool.imap(_grid_work, tasks, chunksize=64), total=n, desc="mock", unit="spec", disable=not progress)):
            flux[i] = f
            rows.append(r)
    return flux, pd.DataFrame(rows)


def make_arrays(
    n: int, seed: int = 0, calibration_file: Path = calibration.CALIBRATION_FILE, z_distribution: str = "dr16q",
    population: str = "qso", sn_distribution: str = "dr16q",
) -> tuple[list[Spectrum], pd.DataFrame]:
    """The same objects as `make_survey` in memory, without writing files (tests, quick studies)."""
    check_options(z_distribution, population, sn_distribution)
    calib = calibration.load(calibration_file)
    specs, rows = [], []
    for i in range(n):
        s, r = make_object(i, seed, calib, z_distribution, population=population, sn_distribution=sn_distribution)
        specs.append(s)
        rows.append(r)
    return specs, pd.DataFrame(rows)
