"""Survey file readers: every format becomes `inspector.spectrum.Spectrum` records.

Conventions shared by all readers:
- wavelengths in vacuum Angstrom (SDSS, BOSS and DESI already are);
- every spectrum passes `validate.validate_spectrum`: bad pixels get ivar = 0,
  unusable spectra raise `SpectrumFileError(path, problem)`;
- `Spectrum.extra` keys in UPPER case are the file's own values under their
  FITS names (RUN2D, SUBCLASS, THING_ID, OBJTYPE, SURVEY, ...); lower-case keys
  are what the reader derived (n_nonfinite, hdu_layout, ivar_missing, row, ...);
- many-spectrum files (spPlate, DESI coadd) skip an unusable fiber/row with a
  `SpectrumFileWarning` and fail only when nothing is usable.
"""
from __future__ import annotations

from inspector.readers import desi_coadd, image_spectrum, spec_file, spplate, spspec
from inspector.readers.catalog import CATALOG_COLUMNS, read_catalog
from inspector.readers.common import PathLike, names_the_file, open_hdus
from inspector.readers.desi_coadd import read_desi_coadd
from inspector.readers.errors import SpectrumFileError, SpectrumFileWarning
from inspector.readers.image_spectrum import read_image_spectrum
from inspector.readers.spec_file import read_spec_file, write_spec_file
from inspector.readers.spplate import read_spplate
from inspector.readers.spspec import read_spspec
from inspector.spectrum import Spectrum

__all__ = [
    "CATALOG_COLUMNS", "SpectrumFileError", "SpectrumFileWarning", "detect_format", "read_any", "read_catalog",
    "read_desi_coadd", "read_image_spectrum", "read_spec_file", "read_spplate", "read_spspec", "write_spec_file",
]


def detect_format(hdus: list) -> str:
    """'spec', 'desi', 'spspec', 'spplate', 'image' or 'catalog', from the HDU structure (never the file name).

    spSpec is asked before spPlate: both put a 2-D flux image in HDU 0, and only spectro1d's
    header cards tell an spSpec (4-5 rows) from a small spPlate subset."""
    if desi_coadd.is_desi(hdus):
        return "desi"
    if len(hdus) > 1 and hdus[1].is_table and hdus[1].has_column("flux") and hdus[1].has_column("loglam"):
        return "spec"
    if spspec.looks_like(hdus):
        return "spspec"
    if len(hdus[0].shape) == 2:
        return "spplate"
    if image_spectrum.looks_like(hdus):
        return "image"
    if any(h.is_table and h.has_column("Z") and h.has_column("RA") for h in hdus[1:]):
        return "catalog"
    return "unknown"


def read_any(path: PathLike) -> list[Spectrum]:
    """All spectra in a file of any supported format, in file order; raises SpectrumFileError."""
    return _dispatch(path, open_hdus(path))


@names_the_file
def _dispatch(path: PathLike, hdus: list) -> list[Spectrum]:
    # detect_format decodes column definitions (has_column): a bad TFORM surfaces here, and must
    # name the file like any fault the readers meet
    kind = detect_format(hdus)
    if kind == "spplate" and spspec.named_like(path):
        kind = "spspec"  # an spSpec that lost its spectro1d cards: its own errors beat "plug map has 36 rows"
    if kind == "spec":
        return [spec_file.from_hdus(path, hdus)]
    if kind == "desi":
        return desi_coadd.from_hdus(path, hdus)
    if kind == "spspec":
        return spspec.from_hdus(path, hdus)
    if kind == "spplate":
        return spplate.from_hdus(path, hdus)
    if kind == "image":
        return image_spectrum.from_hdus(path, hdus)
    if kind == "catalog":
        raise SpectrumFileError(path, "this is a catalog table, not spectra: read it with read_catalog")
    layout = ", ".join(f"{h.index}:{h.name or ('table' if h.is_table else 'image' if h.is_image else 'empty')}"
                       for h in hdus)
    raise SpectrumFileError(path, f"unrecognised FITS layout (HDUs {layout}): not a spec, spSpec, spPlate, DESI coadd "
                                  "or image spectrum file")
