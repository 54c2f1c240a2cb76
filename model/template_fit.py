"""Redshift by chi-square template fitting with the redrock QSO eigenspectra (issue 7, point 1).

For every whole-pixel shift s = log10(1+z) = j * 1e-4 on the SDSS log-lambda grid,
the model is a linear combination of the 4 eigenvectors (redshifted) plus
`n_legendre` Legendre polynomials in the observed frame, fitted by
ivar-weighted least squares. The normal-equation entries
    A_ab(j) = sum_i w_i T_a(i-j) T_b(i-j),  b_a(j) = sum_i w_i f_i T_a(i-j),
    A_al(j) = sum_i w_i L_l(i) T_a(i-j)
are cross-correlations of spectrum-side arrays with template-side arrays and
are evaluated for all shifts at once with real FFTs; the small systems are
solved batched with numpy.linalg.solve.

Coverage: an eigenvector is zero where the template has no rest-frame
coverage (those pixels contribute nothing to its terms), but the Legendre
polynomials span every pixel, so chi2 is always summed over the same pixels
and stays comparable between redshifts. LOZ is used for z < 1.7, HIZ for
z > 1.3, the lower chi2 of the two where both apply.

Physics the eigenspectra alone do not know, both evaluated for all shifts at once:
- the Lya forest (`igm`, default on): the template's part blueward of Lya (beyond a 1500 km/s
  proximity zone) is multiplied by the mean forest transmission exp(-tau_eff) of each observed
  pixel (Faucher-Giguere et al. 2008), after dividing out the forest already in the templates
  (that of their DR16Q quasars, taken at z = 2.5). Since the blue and red parts never overlap,
  every normal-equation term is still a sum of cross-correlations. Without it the fit slides
  z > 5 quasars along the suppressed blue side; the mock's forest is this same mean model, so
  the mock can only check consistency: no real quasar above z 3.3 is at hand (README, 'Template-fit
  redshifts').
- the Lyman limit (`lyman_limit_veto`): z >= 4 is ruled out where the spectrum has significant
  flux below 912 (1+z) A. It is what lets the default z_max reach 6.0: without it a scan beyond
  5 puts low-z SDSS-I/II spectra (Halpha where Lya would be) at z 5.2-6.0.

Dependencies: numpy, and astropy for the FITS templates; never imports `inspector/` or `db/`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from model.assets import TEMPLATE_DIR

DLOG = 1e-4
from .metrics import C_KMS

# validity range of each template in z (LOZ below ~1.7, HIZ above ~1.3)
Z_RANGES = {"LOZ": (-0.01, 1.7), "HIZ": (1.3, 99.0)}
MIN_SEPARATION_KMS = 3000.0
Z_MAX = 6.0
LYA = 1215.67  # A, vacuum
# The redrock QSO templates come from DR16Q quasars whose own forest is in them; its mean
# transmission is taken as that at this z when the scan applies the forest at the fitted z.
IGM_TEMPLATE_Z = 2.5
# The quasar's own light ionises the gas next to it: no forest within this velocity blueward of Lya.
PROXIMITY_KMS = 1500.0
# Lyman-limit veto (see `lyman_limit_veto`): from this z on, significant flux (> SIGMA) below the
# Lyman limit brighter than FRACTION of the flux redward of Lya rules the redshift out.
LYMAN_VETO_Z = 4.0
LYMAN_VETO_SIGMA = 5.0
LYMAN_VETO_FRACTION = 0.3


@dataclass
class TemplateFit:
    z: float
    z_err: float
    chi2_min: float
    delta_chi2: float
    candidates: list  # up to 3 best (z, chi2), best first, >= 3000 km/s apart
    template: str  # 'LOZ' | 'HIZ'
    chi2_curve: tuple = field(repr=False, default=None)  # (z grid, chi2)
    npix: int = 0


def _read_basis(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from astropy.io import fits

    with fits.open(path) as h:
        hdr = h[0].header
        vec = np.asarray(h[0].data, dtype=np.float64)
        loglam = hdr["CRVAL1"] + hdr["CDELT1"] * (np.arange(vec.shape[1]) + 1 - hdr["CRPIX1"])
    return loglam, vec


@cache
def load_templates(template_dir: str | Path = TEMPLATE_DIR) -> dict:
    """{'LOZ': (rest loglam, 4 x n vectors), 'HIZ': ...} from the redrock QSO template files."""
    d = Path(template_dir)
    return {w: _read_basis(d / f"rrtemplate-QSO-{w}-v1.1.fits") for w in ("LOZ", "HIZ")}


def _legendre(n: int, n_leg: int) -> np.ndarray:
    x = np.linspace(-1.0, 1.0, n)
    return np.polynomial.legendre.legvander(x, max(n_leg - 1, 0))[:, :n_leg].T  # n_leg x n


def tau_eff_lya(z_abs: np.ndarray) -> np.ndarray:
    """Mean Lya-forest optical depth, Faucher-Giguere et al. (2008): 0.0018 (1+z)^3.92."""
    return 0.0018 * (1.0 + np.clip(np.asarray(z_abs, float), 0.0, None)) ** 3.92


def igm_transmission_obs(loglam_obs: np.ndarray) -> np.ndarray:
    """Mean forest transmission at each observed wavelength, exp(-tau_eff(lambda / 1215.67 - 1))."""
    return np.exp(-tau_eff_lya(10.0**loglam_obs / LYA - 1.0))


@lru_cache(maxsize=64)
def _template_side(template_dir: str, which: str, l0_key: int, n: int, J: int, nfft: int, igm: bool):
    """FFTs of the template-side arrays on the rest grid R_m = L0 + (m - J) * DLOG, m = 0..n+J-1.

    Returns (FT, FP, FT_blue, FP_blue, iu). With `igm`, the part blueward of Lya (the "blue" arrays)
    is kept apart, so the scan can apply the mean forest transmission of the spectrum's own
    wavelengths to it: the template's own forest (that of its training quasars, at about
    IGM_TEMPLATE_Z) is divided out first. Without `igm` (or for LOZ, which starts at 1329 A rest)
    the blue arrays are None."""
    tl, vec = load_templates(template_dir)[which]
    l0 = l0_key * 1e-7
    rest = l0 + (np.arange(n + J) - J) * DLOG
    T = np.vstack([np.interp(rest, tl, v, left=0.0, right=0.0) for v in vec])  # k x (n+J)
    k = T.shape[0]
    iu = np.triu_indices(k)
    blue = rest < np.log10(LYA * (1.0 - PROXIMITY_KMS / C_KMS))
    if not igm or not np.any(T[:, blue]):
        return np.fft.rfft(T, nfft), np.fft.rfft(T[iu[0]] * T[iu[1]], nfft), None, None, iu
    B = np.where(blue, T, 0.0) * np.exp(tau_eff_lya((1.0 + IGM_TEMPLATE_Z) * 10.0**rest / LYA - 1.0) * blue)
    R = np.where(blue, 0.0, T)
    return (np.fft.rfft(R, nfft), np.fft.rfft(R[iu[0]] * R[iu[1]], nfft),
            np.fft.rfft(B, nfft), np.fft.rfft(B[iu[0]] * B[iu[1]], nfft), iu)


def _to_uniform(loglam, flux, ivar):
    loglam = np.asarray(loglam, float)
    flux = np.asarray(flux, float)
    ivar = np.asarray(ivar, float)
    good = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    flux = np.where(good, flux, 0.0)
    ivar = np.where(good, ivar, 0.0)
    d = np.diff(loglam)
    if d.size and np.all(np.abs(d - DLOG) < 1e-6):
        return loglam[0], flux, ivar
    # not on a 1e-4 log grid (e.g. DESI, linear): interpolate onto one
    grid = np.arange(loglam[0], loglam[-1] + 0.5 * DLOG, DLOG)
    f = np.interp(grid, loglam, flux)
    w = np.interp(grid, loglam, ivar)
    bad = np.interp(grid, loglam, (~good).astype(float)) > 0
    w[bad] = 0.0
    # ivar per resampled pixel scales with the pixel width ratio
    native = np.interp(grid[:-1] + 0.5 * DLOG, loglam[:-1], d) if d.size else np.full(grid.size - 1, DLOG)
    w *= np.append(DLOG / native, DLOG / native[-1]) if native.size else 1.0
    return grid[0], f, w


def lyman_limit_veto(l0: float, f: np.ndarray, w: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """True for the shifts (z >= LYMAN_VETO_Z) that the spectrum's own flux rules out: significant flux
    blueward of the Lyman limit, 912 (1+z) A, at more than LYMAN_VETO_FRACTION of the flux just redward
    of Lya (rest 1250-1450 A).

    Why: at z >~ 4 Lyman-limit systems make a quasar dark below its Lyman limit, and the
    Lyman-alpha forest absorbs most of the flux between 912 and 1216 A rest. The eigenspectra
    plus free Legendre terms cannot know that, so a low-z spectrum (Halpha at the observed place of
    Lya at z ~ 5.3, plenty of blue flux) can fit better at z > 5 than at its own z: on the real SDSS
    quasars a scan to z 6 without this veto put 3 of 144 at z 5.2-6.0.
    Prefix sums over the pixels make it one vectorised pass over all shifts."""
    n = f.size
    veto = np.zeros(shifts.size, bool)
    z = 10.0 ** (shifts * DLOG) - 1.0
    test = z >= LYMAN_VETO_Z
    if not test.any():
        return veto
    cw = np.r_[0.0, np.cumsum(w)]
    cwf = np.r_[0.0, np.cumsum(w * f)]

    def idx(rest_loglam):  # first pixel with loglam >= rest_loglam + s, clipped to [0, n]
        return np.clip(np.ceil((rest_loglam + shifts[test] * DLOG - l0) / DLOG).astype(np.int64), 0, n)

    ll_end = idx(np.log10(912.0))
    r0, r1 = idx(np.log10(1250.0)), idx(np.log10(1450.0))
    wb, fb = cw[ll_end], cwf[ll_end]
    wr, fr = cw[r1] - cw[r0], cwf[r1] - cwf[r0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_b, mean_r = fb / wb, fr / wr
        sig_b = fb / np.sqrt(wb)  # S/N of the mean flux below the Lyman limit
        bad = (wb > 0) & (sig_b > LYMAN_VETO_SIGMA) & ((wr <= 0) | (mean_b > LYMAN_VETO_FRACTION * mean_r))
    veto[np.flatnonzero(test)[bad]] = True
    return veto


def chi2_scan(loglam, flux, ivar, z_min=0.0, z_max=Z_MAX, n_legendre=3, template_dir=TEMPLATE_DIR, positive=True,
              igm=True):
    """(z grid, chi2 per template {'LOZ','HIZ'}: inf outside its z range, or where the leading
    eigen-coefficient is <= 0 when `positive`, or where `lyman_limit_veto` rules z out), n good pixels,
    pixel shifts."""
    l0, f, w = _to_uniform(loglam, flux, ivar)
    n = f.size
    J = int(np.ceil(np.log10(1.0 + z_max) / DLOG))
    j_lo = max(int(np.floor(np.log10(1.0 + max(z_min, 0.0)) / DLOG)), 0)
    shifts = np.arange(J + 1)  # s = j * DLOG
    z = 10.0 ** (shifts * DLOG) - 1.0
    nfft = _fast_len(n + J)
    P = _legendre(n, n_legendre)  # n_leg x n
    wf = w * f
    # spectrum-side arrays (reversed-index correlation via conj FFT); with `igm`, also weighted by the
    # forest transmission G of each observed pixel, for the template's part blueward of Lya:
    # model = sum_a c_a (G B_a + R_a) + Legendre, and B, R never overlap, so every normal-equation
    # term is a sum of two cross-correlations.
    S = np.conj(np.fft.rfft(np.vstack([w[None], wf[None], w * P]), nfft))  # 1 + 1 + n_leg
    G = igm_transmission_obs(l0 + DLOG * np.arange(n)) if igm else None
    SG = np.conj(np.fft.rfft(np.vstack([(w * G * G)[None], (wf * G)[None], w * G * P]), nfft)) if igm else None
    ll = (w * P) @ P.T  # n_leg x n_leg, shift independent
    bl = P @ wf
    ff = float(wf @ f)
    ngood = int(np.count_nonzero(w))
    vetoed = lyman_limit_veto(l0, f, w, shifts)
    out = {}
    for which in ("LOZ", "HIZ"):
        zr = Z_RANGES[which]
        ok = (z >= zr[0]) & (z <= zr[1]) & (shifts >= j_lo) & (z <= z_max)
        chi2 = np.full(z.size, np.inf)
        if not ok.any() or ngood == 0:
            out[which] = chi2
            continue
        FT, FP, FTB, FPB, iu = _template_side(str(template_dir), which, round(l0 * 1e7), n, J, nfft, igm)
        k = FT.shape[0]
        m = k + n_legendre
        # lag = J - j  -> r[lag] = sum_i x[i] y[i + lag]
        lag = J - shifts[ok]
        pp, tf_, tl_ = S[0][None] * FP, S[1][None] * FT, S[2:][:, None, :] * FT[None]
        if FTB is not None:
            pp = pp + SG[0][None] * FPB
            tf_ = tf_ + SG[1][None] * FTB
            tl_ = tl_ + SG[2:][:, None, :] * FTB[None]
        r_pp = np.fft.irfft(pp, nfft)[:, lag]  # products vs w
        r_tf = np.fft.irfft(tf_, nfft)[:, lag]  # T_a vs w f
        r_tl = np.fft.irfft(tl_, nfft)[..., lag]  # n_leg x k x nshift
        ns = lag.size
        A = np.empty((ns, m, m))
        tt = np.empty((ns, k, k))
        tt[:, iu[0], iu[1]] = r_pp.T
        tt[:, iu[1], iu[0]] = r_pp.T
        A[:, :k, :k] = tt
        A[:, :k, k:] = np.transpose(r_tl, (2, 1, 0))
        A[:, k:, :k] = np.transpose(r_tl, (2, 0, 1))
        A[:, k:, k:] = ll
        b = np.empty((ns, m))
        b[:, :k] = r_tf.T
        b[:, k:] = bl
        # tiny ridge keeps systems solvable where a template barely covers the spectrum
        scale = np.maximum(np.abs(np.einsum("sii->si", A)), 1e-30)
        A[:, np.arange(m), np.arange(m)] += 1e-10 * scale
        try:
            x = np.linalg.solve(A, b[..., None])[..., 0]
        except np.linalg.LinAlgError:
            x = np.stack([np.linalg.lstsq(a, bb, rcond=None)[0] for a, bb in zip(A, b)])
        c = ff - np.einsum("si,si->s", x, b)
        if positive:  # physical prior: the leading (mean-like) eigenvector enters with a positive weight
            c[x[:, 0] <= 0] = np.inf
        chi2[ok] = c
        chi2[vetoed] = np.inf
        out[which] = chi2
    return z, out, ngood, shifts


def _fast_len(n: int) -> int:
    best = 1 << int(np.ceil(np.log2(n)))
    for p3 in (1, 3, 9, 5, 15):
        c = p3
        while c < n:
            c *= 2
        best = min(best, c)
    return best


def _local_minima(chi2: np.ndarray) -> np.ndarray:
    c = chi2
    fin = np.isfinite(c)
    left = np.r_[np.inf, c[:-1]]
    right = np.r_[c[1:], np.inf]
    idx = np.flatnonzero(fin & (c <= left) & (c <= right))
    return idx[np.argsort(c[idx])]


def _refine(shifts, chi2, i):
    s = shifts[i] * DLOG
    if 0 < i < len(chi2) - 1 and np.all(np.isfinite(chi2[i - 1:i + 2])):
        y0, y1, y2 = chi2[i - 1], chi2[i], chi2[i + 1]
        a = 0.5 * (y0 + y2 - 2 * y1) / DLOG**2  # chi2 ~ a (s - s0)^2 + c
        if a > 0:
            ds = -0.5 * (y2 - y0) / (2 * DLOG) / a
            ds = float(np.clip(ds, -DLOG, DLOG))
            return s + ds, y1 - a * ds**2, 1.0 / np.sqrt(a)
    return s, chi2[i], DLOG


def fit_redshift(loglam, flux, ivar, z_min=0.0, z_max=Z_MAX, n_legendre=3,
                 template_dir=TEMPLATE_DIR, keep_curve=True, igm=True) -> TemplateFit:
    """Best redshift of one spectrum (`loglam` = log10 vacuum Angstrom; flux, ivar on those pixels)."""
    z, chi2s, ngood, shifts = chi2_scan(loglam, flux, ivar, z_min, z_max, n_legendre, template_dir, igm=igm)
    which_hi = chi2s["HIZ"] < chi2s["LOZ"]
    chi2 = np.where(which_hi, chi2s["HIZ"], chi2s["LOZ"])
    mins = _local_minima(chi2)
    if mins.size == 0 or ngood == 0:
        return TemplateFit(np.nan, np.nan, np.nan, 0.0, [], "LOZ", (z, chi2) if keep_curve else None, ngood)
    sep = MIN_SEPARATION_KMS / C_KMS / np.log(10.0) / DLOG  # in pixels
    chosen = []
    for i in mins:
        if all(abs(int(i) - c) >= sep for c in chosen):
            chosen.append(int(i))
        if len(chosen) == 3:
            break
    best = chosen[0]
    s0, c0, sig_s = _refine(shifts, chi2, best)
    zb = 10.0**s0 - 1.0
    zerr = float(np.log(10.0) * (1.0 + zb) * sig_s)
    cands = [(float(zb), float(c0))] + [(float(z[i]), float(chi2[i])) for i in chosen[1:]]
    dchi2 = float(chi2[chosen[1]] - c0) if len(chosen) > 1 else float("inf")
    return TemplateFit(float(zb), zerr, float(c0), dchi2, cands, "HIZ" if which_hi[best] else "LOZ",
                       (z, chi2) if keep_curve else None, ngood)


def _fit_one(args):
    loglam, flux, ivar, kw = args
    return fit_redshift(loglam, flux, ivar, **kw)


def fit_batch(loglam, flux, ivar, z_min=0.0, z_max=Z_MAX, n_legendre=3, template_dir=TEMPLATE_DIR,
              keep_curve=False, processes: int = 1, igm: bool = True) -> list[TemplateFit]:
    """Many spectra: `loglam` one shared 1-D grid or one per spectrum (2-D array or list);
    `flux`, `ivar` N x npix arrays or lists. `processes` > 1 uses a multiprocessing pool."""
    n = len(flux)
    if isinstance(loglam, np.ndarray) and loglam.ndim == 1:
        lls = [loglam] * n
    else:
        lls = list(loglam)
    kw = {"z_min": z_min, "z_max": z_max, "n_legendre": n_legendre, "template_dir": template_dir,
          "keep_curve": keep_curve, "igm": igm}
    jobs = [(lls[i], flux[i], ivar[i], kw) for i in range(n)]
    if processes <= 1:
        return [_fit_one(j) for j in jobs]
    import multiprocessing as mp

    with mp.get_context("fork").Pool(processes) as pool:
        return pool.map(_fit_one, jobs, chunksize=max(1, n // (4 * processes)))


# --------------------------------------------------------------------------- columns for a prediction run
# The per-spectrum columns a prediction run stores beside FNet's z (issue 7, point 2):
# z_tpl, its error from the chi2 curvature, redrock-like delta chi2 to the next minimum,
# the best chi2 and its number of pixels, the template used, and the next two candidates
# with their chi2 above the best.
TPL_COLUMNS = ("z_tpl", "z_tpl_err", "tpl_dchi2", "tpl_chi2", "tpl_npix", "tpl_template",
               "z_tpl_alt1", "tpl_dchi2_alt1", "z_tpl_alt2", "tpl_dchi2_alt2")  # fmt: skip


def fits_to_columns(fits: list[TemplateFit]) -> dict[str, np.ndarray]:
    """`TPL_COLUMNS` as arrays (NaN where a fit or a candidate is missing; tpl_template '' without a fit)."""
    n = len(fits)
    out = {c: np.full(n, np.nan) for c in TPL_COLUMNS}
    out["tpl_npix"] = np.zeros(n, np.int64)
    out["tpl_template"] = np.full(n, "", dtype=object)
    for i, f in enumerate(fits):
        out["tpl_npix"][i] = f.npix
        if not np.isfinite(f.z):
            continue
        out["z_tpl"][i], out["z_tpl_err"][i] = f.z, f.z_err
        out["tpl_dchi2"][i], out["tpl_chi2"][i], out["tpl_template"][i] = f.delta_chi2, f.chi2_min, f.template
        for k, (zc, c2) in enumerate(f.candidates[1:3], 1):
            out[f"z_tpl_alt{k}"][i], out[f"tpl_dchi2_alt{k}"][i] = zc, c2 - f.chi2_min
    return out


def settings_key(z_min: float = 0.0, z_max: float = Z_MAX, n_legendre: int = 3,
                 template_dir: str | Path = TEMPLATE_DIR, igm: bool = True) -> dict:
    """What a stored fit depends on (template files' sha1, z range, Legendre terms): a cache is valid
    only while this is unchanged."""
    import hashlib

    d = Path(template_dir)
    sha = {w: hashlib.sha1((d / f"rrtemplate-QSO-{w}-v1.1.fits").read_bytes()).hexdigest() for w in ("LOZ", "HIZ")}
    return {"templates": sha, "z_min": float(z_min), "z_max": float(z_max), "n_legendre": int(n_legendre),
            "dlog": DLOG, "z_ranges": {k: list(v) for k, v in Z_RANGES.items()}, "positive": True,
            "igm": {"on": bool(igm), "template_z": IGM_TEMPLATE_Z, "tau_eff": "0.0018 (1+z)^3.92",
                    "proximity_kms": PROXIMITY_KMS},
            "lyman_veto": {"z": LYMAN_VETO_Z, "sigma": LYMAN_VETO_SIGMA, "fraction": LYMAN_VETO_FRACTION}}
