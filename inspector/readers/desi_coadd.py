"""DESI `coadd-*.fits` (spectra per camera arm B, R, Z): one Spectrum per row, arms merged.

Merging the arms: DESI's own `desispec.coaddition.coadd_cameras` puts the three
arms on one wavelength grid and takes the ivar-weighted mean where they
overlap (~5760-5800 A and ~7520-7620 A, where the dichroic hands over and
both cameras see light). We do the same: the arms' 0.8 A grids coincide
pixel for pixel, so no resampling is needed, and weighting by ivar keeps the
photons of both cameras instead of throwing half away at a hard cut, with no
step at the join. A merged pixel's ivar is the sum of the arms' ivar; where
every contributing ivar is 0 the flux is their plain mean (for display only).
If a file's arm grids do not line up (not seen in DESI data) we fall back to
concatenation, cutting each overlap at its midpoint.

Per arm: MASK != 0 sets ivar = 0 (the pipeline's own verdict on the pixel);
a RESOLUTION kernel that sums to <= 0 also sets ivar = 0, and the median
line-spread sigma from the kernels' second moment is kept in
`extra['lsf_sigma_angstrom']`. TARGETID comes from FIBERMAP when present
(QuasarNP's test file has none: targetid stays None and `source` names the row).

Rows that fail validation (e.g. an all-zero fiber) are skipped with a
SpectrumFileWarning, so one dead fiber does not cost the other 499.
"""
from __future__ import annotations

import warnings

import numpy as np

from inspector.readers import rawfits
from inspector.readers.common import (
    PathLike,
    check_pixel_count,
    check_spectra_count,
    names_the_file,
    open_hdus,
    require_float,
    require_numeric,
)
from inspector.readers.errors import SpectrumFileError, SpectrumFileWarning
from inspector.readers.validate import validate_spectrum
from inspector.spectrum import Spectrum

ARMS = ("B", "R", "Z")
PRIMARY_KEYS = ("SURVEY", "PROGRAM", "HPXPIXEL", "TILEID", "SPGRP", "SPGRPVAL")


def read_desi_coadd(path: PathLike) -> list[Spectrum]:
    """One Spectrum per usable row, B/R/Z merged; source is "path#ROW"."""
    return from_hdus(path, open_hdus(path))


def is_desi(hdus: list[rawfits.HDU]) -> bool:
    names = {h.name for h in hdus}
    return any(f"{arm}_FLUX" in names for arm in ARMS)


def _arm(path: PathLike, by_name: dict[str, rawfits.HDU], arm: str) -> dict[str, np.ndarray]:
    def image(kind: str, required: bool = True) -> np.ndarray | None:
        hdu = by_name.get(f"{arm}_{kind}")
        if hdu is None or not hdu.is_image:
            if required:
                raise SpectrumFileError(path, f"missing HDU {arm}_{kind} (arm {arm} has a {arm}_FLUX HDU)")
            return None
        shape = hdu.shape  # bounded before the image is decoded (a header can claim a sparse hole)
        check_pixel_count(path, shape[-1], f"{arm}_{kind}")
        check_spectra_count(path, shape[0] if len(shape) > 1 else 1, f"{arm}_{kind} rows")
        return hdu.image()

    wave = require_float(path, image("WAVELENGTH"), f"{arm}_WAVELENGTH").astype(np.float64).reshape(-1)
    _check_wavelength(path, arm, wave)
    flux = np.atleast_2d(require_float(path, image("FLUX"), f"{arm}_FLUX")).astype(np.float32)
    ivar = np.atleast_2d(require_float(path, image("IVAR"), f"{arm}_IVAR")).astype(np.float32)
    if flux.ndim != 2 or flux.shape[1] != wave.size or ivar.shape != flux.shape:
        raise SpectrumFileError(path, f"arm {arm}: array length mismatch: {arm}_WAVELENGTH {wave.size}, "
                                      f"{arm}_FLUX {flux.shape}, {arm}_IVAR {ivar.shape}")
    mask = image("MASK", required=False)
    if mask is not None:
        mask = np.atleast_2d(require_numeric(path, mask, f"{arm}_MASK"))
        if mask.shape != flux.shape:
            raise SpectrumFileError(path, f"arm {arm}: {arm}_MASK shape {mask.shape} != {arm}_FLUX {flux.shape}")
        with np.errstate(invalid="ignore"):
            mask = mask.astype(np.uint32)
        ivar[mask != 0] = 0.0
    out = {"wave": wave, "flux": flux, "ivar": ivar, "mask": mask}
    res = image("RESOLUTION", required=False)
    if res is not None:
        nspec, npix = flux.shape
        if res.ndim == 2 and nspec == 1:
            res = res[None]
        if res.ndim != 3 or res.shape[0] != nspec or res.shape[2] != npix:
            raise SpectrumFileError(path, f"arm {arm}: {arm}_RESOLUTION shape {res.shape} does not fit "
                                          f"{nspec} spectra of {npix} pixels")
        ndiag = res.shape[1]
        offsets = (ndiag // 2 - np.arange(ndiag))[None, :, None]
        norm = res.sum(axis=1)
        ivar[~(norm > 0)] = 0.0
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            var_pix = np.clip((res * offsets**2).sum(axis=1) / norm, 0, None)
        step = np.median(np.diff(wave))
        out["sigma_A"] = np.sqrt(np.where(norm > 0, var_pix, np.nan)) * step
    return out


def _check_wavelength(path: PathLike, arm: str, wave: np.ndarray) -> None:
    """The merge places pixels by (wave - start) / step: a reversed, unsorted or non-finite grid would put
    flux at the wrong wavelengths (or at negative indices) instead of failing."""
    if wave.size < 2:
        raise SpectrumFileError(path, f"arm {arm}: {arm}_WAVELENGTH has {wave.size} pixel(s)")
    if not np.isfinite(wave).all():
        raise SpectrumFileError(path, f"arm {arm}: non-finite {arm}_WAVELENGTH at pixel "
                                      f"{int(np.flatnonzero(~np.isfinite(wave))[0])}")
    step = np.diff(wave)
    if not (step > 0).all():
        i = int(np.flatnonzero(step <= 0)[0])
        raise SpectrumFileError(path, f"arm {arm}: {arm}_WAVELENGTH is not strictly increasing: pixel {i} is "
                                      f"{wave[i]:.3f} A, pixel {i + 1} is {wave[i + 1]:.3f} A")


def _merge(arms: list[dict[str, np.ndarray]], row: int) -> tuple[np.ndarray, ...]:
    arms = sorted(arms, key=lambda a: a["wave"][0])
    step = float(np.median(np.diff(arms[0]["wave"])))
    start = arms[0]["wave"][0]
    pos = [(a["wave"] - start) / step for a in arms]
    aligned = all(np.allclose(p, np.round(p), atol=1e-3, rtol=0) for p in pos)
    # One common grid only when the arms overlap or abut: a gap (or a corrupt far-away arm) would make
    # the merged grid as long as the gap, so such files take the concatenation below instead.
    if aligned and max(p[-1] for p in pos) < sum(p.size for p in pos):
        idx = [np.round(p).astype(np.int64) for p in pos]
        n = int(max(i[-1] for i in idx)) + 1
        wave = start + step * np.arange(n)
        num, den = np.zeros(n), np.zeros(n)
        plain, count = np.zeros(n), np.zeros(n)
        mask = np.full(n, 0xFFFFFFFF, np.uint32)
        for a, i in zip(arms, idx):
            f, iv = a["flux"][row].astype(np.float64), a["ivar"][row].astype(np.float64)
            num[i] += f * iv  # indices are unique within an arm, so += accumulates correctly
            den[i] += iv
            plain[i] += f
            count[i] += 1
            if a["mask"] is not None:
                mask[i] &= a["mask"][row]
            else:
                mask[i] = 0
        mask[count == 0] = 0
        with np.errstate(invalid="ignore", divide="ignore"):
            flux = np.where(den > 0, num / den, plain / np.maximum(count, 1))
        return wave, flux.astype(np.float32), den.astype(np.float32), mask
    # Fallback: concatenate, each overlap cut at its midpoint.
    waves, fluxes, ivars, masks = [], [], [], []
    for k, a in enumerate(arms):
        w = a["wave"]
        keep = np.ones(w.size, bool)
        if k > 0:
            keep &= w >= 0.5 * (arms[k - 1]["wave"][-1] + w[0])
        if k < len(arms) - 1:
            keep &= w < 0.5 * (w[-1] + arms[k + 1]["wave"][0])
        waves.append(w[keep])
        fluxes.append(a["flux"][row][keep])
        ivars.append(a["ivar"][row][keep])
        masks.append(np.zeros(keep.sum(), np.uint32) if a["mask"] is None else a["mask"][row][keep])
    return tuple(np.concatenate(x) for x in (waves, fluxes, ivars, masks))


@names_the_file
def from_hdus(path: PathLike, hdus: list[rawfits.HDU]) -> list[Spectrum]:
    by_name = {h.name: h for h in hdus if h.name}
    arms = [_arm(path, by_name, arm) for arm in ARMS if f"{arm}_FLUX" in by_name]
    if not arms:
        raise SpectrumFileError(path, "no B_FLUX/R_FLUX/Z_FLUX HDU: not a DESI coadd")
    nspec = arms[0]["flux"].shape[0]
    if any(a["flux"].shape[0] != nspec for a in arms):
        raise SpectrumFileError(path, f"arms hold different numbers of spectra: {[a['flux'].shape[0] for a in arms]}")

    targetid = _table_column(path, by_name.get("FIBERMAP"), "TARGETID", nspec)
    ra = _table_column(path, by_name.get("FIBERMAP"), "TARGET_RA", nspec)
    dec = _table_column(path, by_name.get("FIBERMAP"), "TARGET_DEC", nspec)
    redshifts = _redshifts(path, by_name.get("REDSHIFTS"))
    primary_extra = {k: hdus[0].get(k) for k in PRIMARY_KEYS if k in hdus[0]}
    primary_extra = {k: (v.strip() if isinstance(v, str) else v) for k, v in primary_extra.items()}

    out: list[Spectrum] = []
    for row in range(nspec):
        wave, flux, ivar, mask = _merge(arms, row)
        tid = None if targetid is None else int(targetid[row])
        spec = Spectrum(wave=wave, flux=flux, ivar=ivar, source=f"{path}#{row}", survey="DESI",
                        and_mask=mask, targetid=tid,
                        ra=None if ra is None else float(ra[row]), dec=None if dec is None else float(dec[row]))
        if tid is not None and tid in redshifts:
            spec.z, spec.zwarning, spec.spec_class = redshifts[tid]
        spec.extra.update(primary_extra)
        spec.extra["row"] = row
        sigmas = [a["sigma_A"][row] for a in arms if "sigma_A" in a]
        if sigmas and np.isfinite(np.concatenate(sigmas)).any():
            spec.extra["lsf_sigma_angstrom"] = float(np.nanmedian(np.concatenate(sigmas)))
        what = f"row {row}" + ("" if tid is None else f" (TARGETID {tid})")
        try:
            out.append(validate_spectrum(spec, path, what))
        except SpectrumFileError as err:
            warnings.warn(str(err) + " (row skipped)", SpectrumFileWarning, stacklevel=4)
    if not out:
        raise SpectrumFileError(path, f"none of the {nspec} rows is usable")
    return out


def _table_column(path: PathLike, hdu: rawfits.HDU | None, name: str, nspec: int) -> np.ndarray | None:
    if hdu is None or not hdu.is_table or not hdu.has_column(name):
        return None
    if hdu.nrows != nspec:
        raise SpectrumFileError(path, f"HDU {hdu.name} has {hdu.nrows} rows for {nspec} spectra")
    data = require_numeric(path, hdu.column(name), f"HDU {hdu.name} column {name}")
    if data.ndim != 1:
        raise SpectrumFileError(path, f"HDU {hdu.name} column {name} has shape {data.shape}, expected one value per row")
    if name == "TARGETID" and data.dtype.kind == "f":
        raise SpectrumFileError(path, f"HDU {hdu.name} column TARGETID holds floats, expected integers")
    return data


def _redshifts(path: PathLike, hdu: rawfits.HDU | None) -> dict[int, tuple[float, int, str]]:
    """TARGETID -> (Z, ZWARN, SPECTYPE) from a REDSHIFTS HDU, when the file carries one."""
    if hdu is None or not hdu.is_table or not all(hdu.has_column(c) for c in ("TARGETID", "Z")):
        return {}
    n = hdu.nrows
    check_spectra_count(path, n, "REDSHIFTS rows")
    tid = _table_column(path, hdu, "TARGETID", n)
    z = _table_column(path, hdu, "Z", n)
    zwarn = _table_column(path, hdu, "ZWARN", n)
    zwarn = np.zeros(n, int) if zwarn is None else zwarn
    stype = hdu.strings("SPECTYPE") if hdu.has_column("SPECTYPE") else np.full(n, "")
    if zwarn.dtype.kind == "f" and not np.isfinite(zwarn).all():
        raise SpectrumFileError(path, "HDU REDSHIFTS column ZWARN holds non-finite values")
    return {int(t): (float(zz), int(w), str(s) or None) for t, zz, w, s in zip(tid, z, zwarn, stype)}
