"""What a quasar target list holds besides quasars: stars, galaxies and spectra with no usable signal.

Two populations use this module. "qso" (the default mock, ~5% contaminants)
keeps prospect's one standard star and galaxy, tilted, so its surveys stay
what they were for a seed. "superset" draws from the redrock archetype bases
(`templates.contaminant_basis`): real stars of eight types and real galaxies,
passive and emission-line, at their own redshifts, and sky-dominated, empty or
half-broken spectra, in the proportions of `SUPERSET` below.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d

from inspector.mock import observe
from inspector.mock.templates import ArchetypeBasis, contaminant_basis, std_template
from model.metrics import C_KMS

# The superset's mix, one row per MOCK_TEMPLATE: (template, fraction of all objects, median S/N, log-normal
# sigma of S/N). Why these numbers: DR16Q's superset is 1.44 M observations of which ~750 k are quasars
# (~52%); of the rest most are stars (the colour cuts that pick z > 2 quasars run into the stellar locus:
# M, K, F and G dwarfs dominate, A/B horizontal-branch stars, white dwarfs and CVs are rarer), then
# galaxies (mostly z < 0.7, emission-line ones outnumbering passive), then spectra with no usable signal.
# Stars are often bright (the targets are faint for a quasar, bright for a star), galaxies faint.
# "QSO" stands for every quasar (BALs among them, quasar.BAL_FRACTION) with the quasar's own S/N law.
SUPERSET: tuple[tuple[str, float, float, float], ...] = (
    ("QSO", 0.50, 0.0, 0.0),
    ("STAR-M", 0.085, 8.0, 0.8),
    ("STAR-K", 0.065, 8.0, 0.8),
    ("STAR-F", 0.055, 9.0, 0.8),
    ("STAR-G", 0.045, 9.0, 0.8),
    ("STAR-A", 0.025, 9.0, 0.8),
    ("STAR-WD", 0.012, 6.0, 0.7),
    ("STAR-B", 0.008, 8.0, 0.8),
    ("STAR-CV", 0.005, 5.0, 0.7),
    ("GALAXY-emission", 0.07, 3.0, 0.6),
    ("GALAXY-passive", 0.05, 3.5, 0.6),
    ("BAD-sky", 0.04, 1.5, 0.4),
    ("BAD-empty", 0.03, 3.0, 0.4),
    ("BAD-broken", 0.01, 3.0, 0.4),
)
SUPERSET_TEMPLATES: tuple[str, ...] = tuple(t for t, _, _, _ in SUPERSET)
_CUMULATIVE = np.cumsum([f for _, f, _, _ in SUPERSET])
assert abs(_CUMULATIVE[-1] - 1.0) < 1e-9, "SUPERSET fractions must sum to 1"

STAR_RV_SIGMA_KMS = 80.0  # disc and halo stars of a high-latitude target list: tens of km/s, a few hundred at most
GALAXY_Z_BINS = np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.2])  # n(z) of the galaxies a QSO selection picks up
GALAXY_Z_WEIGHTS = np.array([8.0, 22.0, 28.0, 22.0, 12.0, 8.0]) / 100.0
EMISSION_EW_HALPHA = 5.0  # A: an archetype with a larger rest EW(Halpha) is an emission-line galaxy
HALPHA = 6564.61
MAX_DRAWS = 30


def kind_of(template: str) -> str:
    """MOCK_KIND of a template name: "STAR-M" -> "STAR", "GALAXY-passive" -> "GALAXY", "QSO" -> "QSO"."""
    return template.split("-")[0]


def superset_template(roll: float) -> str:
    """The template a uniform `roll` in [0, 1) picks from SUPERSET."""
    return SUPERSET_TEMPLATES[int(np.searchsorted(_CUMULATIVE, roll, side="right"))]


def draw_sn_scale(rng: np.random.Generator, template: str) -> tuple[float, float]:
    """(target S/N, flux scale in 1e-17 cgs) for a contaminant: its kind's S/N law; brighter when S/N is high."""
    _, _, median, sigma = SUPERSET[SUPERSET_TEMPLATES.index(template)]
    sn = float(np.clip(np.exp(rng.normal(np.log(median), sigma)), 0.5, 80.0))
    return sn, float(np.exp(rng.normal(np.log(8.0), 0.6)) * max(sn / 3.5, 1.0))


# ---- the "qso" population's contaminants (unchanged, so its surveys stay the same for a seed) --------

def star_flux(rng: np.random.Generator, wave_obs: np.ndarray) -> tuple[np.ndarray, float]:
    """prospect's standard star, its colour varied by a power-law tilt; z from a radial velocity."""
    w, f = std_template("STAR")
    z = rng.normal(0, 60) / C_KMS
    flux = np.interp(wave_obs / (1 + z), w, f) * (wave_obs / 5000.0) ** rng.normal(0, 1.0)
    return flux / np.median(flux[flux > 0]), float(z)


def galaxy_flux(rng: np.random.Generator, wave_obs: np.ndarray) -> tuple[np.ndarray, float]:
    """prospect's standard galaxy at z in 0.02-0.7, its colour varied by a power-law tilt."""
    w, f = std_template("GALAXY")
    z = float(rng.uniform(0.02, 0.7))
    flux = np.interp(wave_obs / (1 + z), w, f, left=f[0], right=f[-1]) * (wave_obs / 5000.0) ** rng.normal(0, 0.5)
    flux = np.maximum(flux, 0)
    return flux / np.median(flux[flux > 0]), z


# ---- the superset's contaminants -----------------------------------------------------------------

def _at_rest(basis: ArchetypeBasis, model: np.ndarray, rest_wave: np.ndarray) -> np.ndarray:
    """A rest-frame model at `rest_wave`; beyond the basis's range its edge value (a few hundred A at most)."""
    return np.interp(np.log10(rest_wave), basis.loglam, model, left=model[0], right=model[-1])


def _normalised(flux: np.ndarray) -> np.ndarray:
    flux = np.maximum(flux, 0.0)
    pos = flux > 0
    return flux / np.median(flux[pos]) if pos.any() else flux


def _archetype_coefficients(rng: np.random.Generator, basis: ArchetypeBasis, rows: np.ndarray | None = None) -> np.ndarray:
    """A real archetype's coefficients plus a jitter of 10% of the archetypes' own spread per component:
    new objects near real ones, never an unphysical mix of distant ones."""
    pool = basis.archetypes if rows is None else basis.archetypes[rows]
    pick = pool[rng.integers(len(pool))].copy()
    return pick + rng.normal(0, 0.1 * basis.archetypes.std(axis=0))


def _cv_coefficients(rng: np.random.Generator, basis: ArchetypeBasis) -> np.ndarray:
    """The CV basis has no archetypes: the mean spectrum (its Balmer and He emission) plus small draws of the
    other components, scaled to their size, redrawn until the spectrum stays positive."""
    rms = np.sqrt((basis.vectors**2).mean(axis=1))
    for _ in range(MAX_DRAWS):
        coef = np.concatenate([[1.0], rng.normal(0, 0.15, len(rms) - 1) * rms[0] / rms[1:]])
        if np.mean(coef @ basis.vectors < 0) <= 0.005:
            break
    return coef


def archetype_star_flux(rng: np.random.Generator, star_type: str, wave_obs: np.ndarray) -> tuple[np.ndarray, float]:
    """A star of `star_type` (A, B, F, G, K, M, WD, CV) at its radial-velocity redshift: (flux, median 1; z)."""
    basis = contaminant_basis(f"STAR-{star_type}")
    coef = _archetype_coefficients(rng, basis) if len(basis.archetypes) else _cv_coefficients(rng, basis)
    z = float(rng.normal(0, STAR_RV_SIGMA_KMS) / C_KMS)
    flux = _at_rest(basis, coef @ basis.vectors, wave_obs / (1 + z))
    # spectrophotometric calibration is good to ~10% across the range: a gentle tilt, not a new colour
    return _normalised(flux * (wave_obs / 5000.0) ** rng.normal(0, 0.1)), z


@lru_cache(maxsize=1)
def emission_archetypes() -> np.ndarray:
    """Whether each galaxy archetype is an emission-line galaxy (rest EW(Halpha) > EMISSION_EW_HALPHA).

    Measured on the archetypes themselves: the redrock set is bimodal (a third with no Halpha at all,
    the rest with EW 20-250 A), so the split does not hang on the threshold."""
    basis = contaminant_basis("GALAXY")
    spectra = basis.archetypes @ basis.vectors
    w = basis.wave
    line = np.abs(w - HALPHA) < 10
    cont = (np.abs(w - HALPHA) > 25) & (np.abs(w - HALPHA) < 60)
    c = np.median(spectra[:, cont], axis=1)
    ew = np.trapezoid(spectra[:, line] - c[:, None], w[line], axis=1) / c
    return ew > EMISSION_EW_HALPHA


def draw_galaxy_z(rng: np.random.Generator) -> float:
    k = rng.choice(len(GALAXY_Z_WEIGHTS), p=GALAXY_Z_WEIGHTS)
    return float(rng.uniform(GALAXY_Z_BINS[k], GALAXY_Z_BINS[k + 1]))


def archetype_galaxy_flux(rng: np.random.Generator, emission: bool, wave_obs: np.ndarray) -> tuple[np.ndarray, float]:
    """A passive or emission-line galaxy at z from GALAXY_Z_BINS, with its own velocity dispersion."""
    basis = contaminant_basis("GALAXY")
    rows = np.flatnonzero(emission_archetypes() == emission)
    z = draw_galaxy_z(rng)
    rest = wave_obs / (1 + z)
    # the 5-vector projection of some archetypes dips below zero (most below 2000 A): such draws are redrawn
    for _ in range(MAX_DRAWS):
        flux = _at_rest(basis, _archetype_coefficients(rng, basis, rows) @ basis.vectors, rest)
        if np.mean(flux <= 0) <= 0.005:
            break
    sigma_kms = float(rng.uniform(60, 250))  # stellar velocity dispersion; one 1e-4 dex observed pixel is 69 km/s
    flux = gaussian_filter1d(flux, sigma_kms / 69.0)
    return _normalised(flux * (wave_obs / 5000.0) ** rng.normal(0, 0.1)), z


def sky_residual_flux(rng: np.random.Generator, inst: observe.Instrument) -> np.ndarray:
    """What is left of a fibre on blank sky, or on a target too faint to register: sky-subtraction residuals.

    Over- or under-subtraction scales with the sky itself; a sub-pixel wavelength mismatch leaves a
    derivative-shaped (P Cygni-like) residual at every bright line."""
    sky = inst.sky_rel
    wander = gaussian_filter1d(rng.standard_normal(sky.size), 100.0)  # throughput error drifts over ~100 px
    scale = rng.normal(0, 0.05) + 0.03 * wander / max(float(wander.std()), 1e-12)
    shift = rng.normal(0, 0.3)  # pixels
    return scale * sky + shift * np.gradient(sky)


def bad_flux(rng: np.random.Generator, template: str, inst: observe.Instrument) -> np.ndarray:
    """Noiseless 'signal' of a BAD spectrum: sky residuals for BAD-sky, nothing for BAD-empty / BAD-broken."""
    if template == "BAD-sky":
        return sky_residual_flux(rng, inst)
    return np.zeros(inst.loglam.size)


def break_half(rng: np.random.Generator, obs: dict, wave: np.ndarray) -> None:
    """One spectrograph arm lost (BAD-broken): the blue or the red side of ~6000 A has no data."""
    lost = wave < 6000.0 if rng.random() < 0.5 else wave >= 6000.0
    obs["flux"][lost] = 0.0
    obs["ivar"][lost] = 0.0
    obs["and_mask"][lost] |= observe.NODATA_BIT
    good = obs["ivar"] > 0
    obs["sn_median_all"] = float(np.median((obs["flux"] * np.sqrt(obs["ivar"]))[good])) if good.any() else 0.0


def superset_flux(rng: np.random.Generator, template: str, inst: observe.Instrument) -> tuple[np.ndarray, float]:
    """Noiseless observed flux and true z (-1 for BAD) of a superset contaminant."""
    kind = kind_of(template)
    if kind == "STAR":
        return archetype_star_flux(rng, template.split("-", 1)[1], inst.wave)
    if kind == "GALAXY":
        return archetype_galaxy_flux(rng, template == "GALAXY-emission", inst.wave)
    if kind == "BAD":
        return bad_flux(rng, template, inst), -1.0
    raise ValueError(f"{template!r} is not a superset contaminant; known: {', '.join(SUPERSET_TEMPLATES[1:])}")
