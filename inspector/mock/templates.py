"""Rest-frame spectral templates shipped in `assets/`: redrock QSO eigenspectra and star/galaxy archetype
bases, prospect's standard star/galaxy.

Data only; the physics that combines them lives in `quasar.py` and `contaminants.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits

from model.assets import ASSETS, TEMPLATE_DIR  # noqa: F401  (ASSETS: calibration, compare)


@dataclass(frozen=True)
class EigenBasis:
    """A redrock PCA basis: `vectors` (k x n) on rest-frame `loglam` (1e-4 dex steps)."""

    name: str
    loglam: np.ndarray
    vectors: np.ndarray

    @property
    def wave(self) -> np.ndarray:
        return 10.0**self.loglam

    def at(self, rest_wave: np.ndarray) -> np.ndarray:
        """The basis interpolated to `rest_wave` (k x m); NaN outside the template's range."""
        ll = np.log10(rest_wave)
        out = np.vstack([np.interp(ll, self.loglam, v, left=np.nan, right=np.nan) for v in self.vectors])
        return out


@cache
def qso_basis(which: str) -> EigenBasis:
    """`which` is "LOZ" (rest 1329-9632 A, for z < 1.7) or "HIZ" (rest 444-4498 A, for z > 1.3)."""
    path = TEMPLATE_DIR / f"rrtemplate-QSO-{which}-v1.1.fits"
    with fits.open(path) as h:
        hdr = h[0].header
        vec = np.asarray(h[0].data, dtype=np.float64)
        loglam = hdr["CRVAL1"] + hdr["CDELT1"] * (np.arange(vec.shape[1]) + 1 - hdr["CRPIX1"])
    return EigenBasis(which, loglam, vec)


@cache
def std_template(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """prospect's standard rest-frame template for "GALAXY", "STAR" or "QSO": (wave A, flux)."""
    with fits.open(TEMPLATE_DIR / "std_templates.fits") as h:
        for hdu in h[1:]:
            names = hdu.columns.names
            if f"wave_{kind}" in names:
                return (np.asarray(hdu.data[f"wave_{kind}"], float), np.asarray(hdu.data[f"flux_{kind}"], float))
    raise KeyError(kind)


# ---- stars and galaxies: the redrock archetype bases, shipped compact -----------------------------

CONTAMINANT_FILE = TEMPLATE_DIR / "redrock_stars_galaxies.npz"
STAR_TYPES = ("A", "B", "F", "G", "K", "M", "WD", "CV")
# source file per basis name (redrock-templates @110d448); all on linear rest grids, 0.1 A steps
CONTAMINANT_SOURCES = {**{f"STAR-{t}": f"rrtemplate-STAR-{t}-v0.1.fits" for t in STAR_TYPES},
                       "GALAXY": "rrtemplate-galaxy-2016.fits"}
COMPACT_DLOGLAM = 1e-4  # the SDSS/BOSS pixel: finer would only grow the file


@dataclass(frozen=True)
class ArchetypeBasis(EigenBasis):
    """An EigenBasis with the coefficients of the real archetype spectra redrock projected on it (m x k;
    empty for the CV basis, which has none)."""

    archetypes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def rebin_linear_to_log(wave0: float, dwave: float, vectors: np.ndarray, dloglam: float = COMPACT_DLOGLAM) -> tuple[np.ndarray, np.ndarray]:
    """Flux-conserving average of a linear-grid basis into log-lambda pixels (centres, k x n).

    An average over each pixel, not a point sample: a 0.1 A grid holds narrow emission lines and
    stellar features that point-sampling at 0.7-2.5 A pixels would alias or drop."""
    n_lin = vectors.shape[1]
    edges_lin = wave0 + dwave * (np.arange(n_lin + 1) - 0.5)
    lo = np.ceil(np.log10(edges_lin[0]) / dloglam) * dloglam
    hi = np.floor(np.log10(edges_lin[-1]) / dloglam) * dloglam
    edges = 10.0 ** np.arange(lo, hi + dloglam / 2, dloglam)
    cum = np.concatenate([np.zeros((vectors.shape[0], 1)), np.cumsum(vectors, axis=1) * dwave], axis=1)
    at_edges = np.vstack([np.interp(edges, edges_lin, c) for c in cum])
    centres = np.log10(edges[:-1]) + dloglam / 2
    return centres, np.diff(at_edges, axis=1) / np.diff(edges)


def build_contaminant_file(src_dir: Path, out: Path = CONTAMINANT_FILE) -> Path:
    """Write the compact star/galaxy bases the mock ships with (`python -m inspector.mock.templates SRC_DIR`).

    The redrock files are ~30 MB of 0.1 A pixels; the mock needs only SDSS-sized pixels, so a fresh
    clone carries a ~2 MB npz and never needs `../shared`."""
    arrays: dict[str, np.ndarray] = {}
    for name, fname in CONTAMINANT_SOURCES.items():
        path = Path(src_dir) / fname
        if not path.exists():
            raise FileNotFoundError(f"{path}: redrock template missing (expected {fname} from desihub/redrock-templates)")
        with fits.open(path) as h:
            hdr = h[0].header
            loglam, vec = rebin_linear_to_log(float(hdr["CRVAL1"]), float(hdr["CDELT1"]), np.asarray(h[0].data, np.float64))
            coeff = np.asarray(h["ARCHETYPE_COEFF"].data, np.float32) if "ARCHETYPE_COEFF" in h else np.zeros((0, vec.shape[0]), np.float32)
        arrays[f"{name}/loglam0"] = np.float64(loglam[0])
        arrays[f"{name}/vectors"] = vec.astype(np.float32)
        arrays[f"{name}/archetypes"] = coeff
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


@lru_cache(maxsize=1)
def _contaminant_npz() -> dict[str, np.ndarray]:
    if not CONTAMINANT_FILE.exists():
        raise FileNotFoundError(f"{CONTAMINANT_FILE}: missing; make it with `python -m inspector.mock.templates ../shared/data/templates`")
    with np.load(CONTAMINANT_FILE) as z:
        return {k: z[k] for k in z.files}


@cache
def contaminant_basis(name: str) -> ArchetypeBasis:
    """A star ("STAR-A" ... "STAR-CV") or galaxy ("GALAXY") basis on rest-frame log-lambda (1e-4 dex)."""
    if name not in CONTAMINANT_SOURCES:
        raise KeyError(f"no contaminant basis {name!r}; known: {', '.join(CONTAMINANT_SOURCES)}")
    d = _contaminant_npz()
    vec = d[f"{name}/vectors"].astype(np.float64)
    loglam = float(d[f"{name}/loglam0"]) + COMPACT_DLOGLAM * np.arange(vec.shape[1])
    return ArchetypeBasis(name, loglam, vec, d[f"{name}/archetypes"].astype(np.float64))


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m inspector.mock.templates REDROCK_TEMPLATE_DIR  (e.g. ../shared/data/templates)")
    written = build_contaminant_file(Path(sys.argv[1]))
    print(f"wrote {written} ({written.stat().st_size / 1e6:.2f} MB)")
