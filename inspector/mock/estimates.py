"""The survey's own redshift estimates for a mock object: Z_PIPE, Z_QN, Z_PCA.

Each is the truth plus a realistic error, and now and then a realistic
catastrophe: the pipeline taking one broad line for another (the failures
seen in the real data: broad Halpha taken for Lya gives z ~ 6 for a z ~ 0.3
quasar), QuasarNET giving no z (Z_QN = -1) when fewer than two of its lines
are in the window or the S/N is too low.
"""
from __future__ import annotations

import numpy as np

from model.metrics import C_KMS
from model.quasarnet import QN_LINES

# The pipeline confuses pairs of QuasarNET's lines (`model.quasarnet.QN_LINES`, rest vacuum A).
# (line really seen, line the fit takes it for), roughly by how often it happens
CONFUSIONS = (("MGII", "CIV"), ("CIV", "LYA"), ("CIII", "MGII"), ("MGII", "CIII"), ("HA", "LYA"), ("HB", "MGII"), ("CIV", "CIII"), ("LYA", "CIV"))


def lines_in_window(z: float, wave_min: float, wave_max: float, margin: float = 50.0) -> list[str]:
    return [n for n, lam in QN_LINES.items() if wave_min + margin < lam * (1 + z) < wave_max - margin]


def confused_z(rng: np.random.Generator, z: float, wave_min: float, wave_max: float) -> float | None:
    """A line-confusion redshift: a line in the window read as another line; None if none fits."""
    seen = set(lines_in_window(z, wave_min, wave_max))
    options = [(a, b) for a, b in CONFUSIONS if a in seen]
    if not options:
        return None
    a, b = options[rng.integers(len(options))]
    return (1 + z) * QN_LINES[a] / QN_LINES[b] - 1


def _small_error(rng: np.random.Generator, z: float, sigma_kms: float) -> float:
    return z + rng.normal(0, sigma_kms) / C_KMS * (1 + z)


def z_pipe(rng: np.random.Generator, z: float, sn: float, wave_min: float, wave_max: float, is_qso: bool) -> tuple[float, int]:
    """Pipeline z and ZWARNING: ~2-3% catastrophic for quasars, more at low S/N."""
    p_fail = (0.015 + 0.06 * (sn < 2) + 0.02 * (sn < 1)) if is_qso else 0.005
    if rng.random() < p_fail:
        zc = confused_z(rng, z, wave_min, wave_max)
        if zc is not None and zc > -0.01:
            return float(zc), (4 if rng.random() < 0.4 else 0)
    zwarning = 4 if (sn < 1.5 and rng.random() < 0.3) else 0
    return float(max(_small_error(rng, z, 150 if is_qso else 30), -0.005)), zwarning


def z_qn(rng: np.random.Generator, z: float, sn: float, wave_min: float, wave_max: float, is_qso: bool) -> tuple[float, int]:
    """QuasarNET z and IS_QSO_QN: -1 / 0 when fewer than two lines are in the window or S/N < ~1."""
    n_lines = len(lines_in_window(z, wave_min, wave_max))
    if not is_qso:
        return (-1.0, 0) if rng.random() < 0.9 else (float(rng.uniform(0.5, 3.0)), 1)
    if n_lines < 2 or sn < 0.8 or (sn < 1.5 and rng.random() < 0.3):
        return -1.0, 0
    if rng.random() < 0.015:
        zc = confused_z(rng, z, wave_min, wave_max)
        if zc is not None and zc > 0:
            return float(zc), 1
    return float(max(_small_error(rng, z, 600), 0.0)), 1


def z_pca(rng: np.random.Generator, z: float, sn: float, wave_min: float, wave_max: float, is_qso: bool) -> float:
    """DR16Q-style PCA z: -1 when the fit fails, ~500 km/s scatter, rare catastrophes."""
    if not is_qso or (sn < 1.0 and rng.random() < 0.5):
        return -1.0
    if rng.random() < 0.02:
        zc = confused_z(rng, z, wave_min, wave_max)
        if zc is not None and zc > 0:
            return float(zc)
    return float(max(_small_error(rng, z, 500), 0.0))


# The pipeline's class for a superset contaminant, when it is not the object's own: (template prefix, class it
# gives instead, how often). The SDSS pipeline calls some emission-line galaxies (AGN-like line ratios, broad
# Halpha wings) and cataclysmic variables (broad Balmer and He emission) QSO; featureless white dwarfs and
# hot B stars now and then fit best as a QSO or galaxy continuum.
PIPE_MISCLASS: tuple[tuple[str, str, float], ...] = (
    ("GALAXY-emission", "QSO", 0.05),
    ("GALAXY-passive", "QSO", 0.01),
    ("STAR-CV", "QSO", 0.3),
    ("STAR-WD", "QSO", 0.05),
    ("STAR-WD", "GALAXY", 0.05),
    ("STAR-B", "QSO", 0.03),
    ("STAR", "GALAXY", 0.01),
)


def pipe_class(rng: np.random.Generator, template: str) -> str:
    """The pipeline's CLASS for a superset star or galaxy: its own kind, or now and then a PIPE_MISCLASS."""
    roll = rng.random()
    for prefix, wrong, p in PIPE_MISCLASS:
        if template.startswith(prefix):
            if roll < p:
                return wrong
            roll -= p
    return template.split("-")[0]


def z_pipe_no_signal(rng: np.random.Generator) -> tuple[str, float, int]:
    """CLASS, Z and ZWARNING the pipeline gives a spectrum with no usable signal: whatever template fits the
    noise best at a meaningless z, flagged SMALL_DELTA_CHI2 (bit 2) mostly. Never QSO here, so that an ingest
    (which falls back to the file's CLASS where CLASS_PERSON is 0) does not count it as a quasar."""
    cls = "GALAXY" if rng.random() < 0.7 else "STAR"
    z = float(rng.uniform(0.0, 1.5)) if cls == "GALAXY" else float(rng.normal(0, 1e-3))
    return cls, z, 4 if rng.random() < 0.8 else 0
