"""A low-z quasar's host galaxy: the redrock galaxy archetypes, compacted into `assets/templates/host_galaxy.npz`.

Below z ~ 0.8 an SDSS fiber takes in much of the host, and below z ~ 0.3 the
host can outshine the nucleus at 5100 A: the spectrum then shows Ca H&K, the
4000 A break and Balmer absorption under the broad lines, which a model must
have seen to tell a low-z quasar from a galaxy. The archetypes (redrock's
galaxy basis times its 750 archetype coefficients) are real galaxy spectral
shapes; only those without strong emission lines are kept, since the
quasar's own narrow lines are added by `narrow_lines.py` and would otherwise
be counted twice.

`python -m inspector.mock.host` rebuilds the asset from
`../shared/data/templates/rrtemplate-galaxy-2016.fits`; a fresh clone uses the
shipped file.
"""
from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits

from inspector.mock.templates import TEMPLATE_DIR

HOST_FILE = TEMPLATE_DIR / "host_galaxy.npz"
SOURCE_FILE = Path(__file__).resolve().parents[3] / "shared" / "data" / "templates" / "rrtemplate-galaxy-2016.fits"
# Rest grid of the asset: 1e-4 dex, as the QSO eigenspectra and the SDSS pixels.
LOGLAM0, LOGLAM1 = np.log10(1200.0), np.log10(9990.0)
# An archetype is kept as a host if its Halpha emission is weak (rest EW, A) and it is positive over the grid.
MAX_HALPHA_EW = 10.0


def _window_median(wave: np.ndarray, flux: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.median(flux[..., (wave > lo) & (wave < hi)], axis=-1)


def build(source: Path = SOURCE_FILE) -> dict[str, np.ndarray]:
    """The kept archetypes on the 1e-4 dex rest grid, each normalised to 1 at 5100 A (float16: ample for a host under a quasar)."""
    with fits.open(source) as h:
        hdr = h[0].header
        basis = np.asarray(h[0].data, float)
        coeff = np.asarray(h["ARCHETYPE_COEFF"].data, float)
    wave = hdr["CRVAL1"] + hdr["CDELT1"] * np.arange(basis.shape[1])
    spectra = coeff @ basis
    cont = _window_median(wave, spectra, 6600, 6620)
    halpha_ew = (np.sum(spectra[:, (wave > 6555) & (wave < 6575)], axis=1) * hdr["CDELT1"] - 20 * cont) / cont
    loglam = np.arange(LOGLAM0, LOGLAM1, 1e-4)
    rest = 10**loglam
    # average over each 1e-4 dex pixel (not sample it), so absorption lines keep their EW
    edges = 10 ** np.concatenate([[loglam[0] - 5e-5], loglam + 5e-5])
    cum = np.cumsum(spectra, axis=1) * hdr["CDELT1"]
    out = np.diff(np.vstack([np.interp(edges, wave, c) for c in cum]), axis=1) / np.diff(edges)
    keep = (halpha_ew < MAX_HALPHA_EW) & (out.min(axis=1) > 0)
    out = out[keep] / _window_median(rest, out[keep], 5080, 5120)[:, None]
    return {"loglam": loglam, "flux": out.astype(np.float16), "source_index": np.flatnonzero(keep)}


@lru_cache(maxsize=1)
def _archetypes() -> tuple[np.ndarray, np.ndarray]:
    with np.load(HOST_FILE) as f:
        return 10.0 ** f["loglam"], f["flux"].astype(float)


def draw_host(rng: np.random.Generator, rest_wave: np.ndarray) -> np.ndarray:
    """One host galaxy on `rest_wave`, 1 at 5100 A; 0 outside the archetypes' range."""
    wave, flux = _archetypes()
    return np.interp(rest_wave, wave, flux[rng.integers(len(flux))], left=0.0, right=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=SOURCE_FILE)
    ap.add_argument("--out", type=Path, default=HOST_FILE)
    args = ap.parse_args()
    arrays = build(args.source)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {len(arrays['flux'])} archetypes x {arrays['flux'].shape[1]} px")


if __name__ == "__main__":
    main()
