"""DR16Q-like quasar catalogs (FITS binary table) -> pandas.DataFrame.

The real DR16Q is 750k rows and a few hundred columns, the mock survey's
catalog has the same core columns plus MOCK_* truth, and older or trimmed
catalogs lack some columns. So: only the columns the app uses are read
(the file is memory-mapped when large, so the rest is never touched), names
match without regard to case, and a missing column is filled with a neutral
value (NaN / -1 / "") and named in `df.attrs['missing_columns']` instead of
failing: a triage rule that needs Z_QN can then say why it has nothing.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from inspector.readers import rawfits
from inspector.readers.common import PathLike, names_the_file, open_hdus
from inspector.readers.errors import SpectrumFileError

# DESIGN.md's columns and the dtype the app expects for each.
CATALOG_COLUMNS: dict[str, str] = {
    "SDSS_NAME": "str", "RA": "float", "DEC": "float", "PLATE": "int", "MJD": "int", "FIBERID": "int",
    "Z": "float", "SOURCE_Z": "str", "Z_PIPE": "float", "ZWARNING": "int", "Z_VI": "float", "Z_CONF": "int",
    "CLASS_PERSON": "int", "Z_QN": "float", "IS_QSO_QN": "int", "Z_PCA": "float", "Z_DR12Q": "float",
    "Z_10K": "float", "BAL_PROB": "float", "SN_MEDIAN_ALL": "float", "IS_QSO_FINAL": "int",
}
_FILL = {"float": np.nan, "int": -1, "str": ""}


def read_catalog(path: PathLike, extra_columns: Sequence[str] | str = ()) -> pd.DataFrame:
    """The DESIGN.md columns (upper-case names, native dtypes, stripped str), one row per table row.

    extra_columns: more columns to keep as they are (e.g. the mock's MOCK_KIND),
    or "*" for every column in the table. Array-valued extra columns are skipped.
    """
    return _read(path, open_hdus(path), extra_columns)


@names_the_file
def _read(path: PathLike, hdus: list[rawfits.HDU], extra_columns: Sequence[str] | str) -> pd.DataFrame:
    table = next((h for h in hdus if h.is_table), None)
    if table is None:
        raise SpectrumFileError(path, "no binary table HDU: not a catalog")
    n = table.nrows
    data: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for name, kind in CATALOG_COLUMNS.items():
        if table.has_column(name):
            data[name] = _as_kind(path, name, table.values(name), kind)
        else:
            missing.append(name)
            data[name] = np.full(n, _FILL[kind], dtype=object if kind == "str" else kind)
    if len(missing) == len(CATALOG_COLUMNS):
        raise SpectrumFileError(path, f"HDU {table.index} has none of the catalog columns "
                                      f"({', '.join(CATALOG_COLUMNS)}): not a DR16Q-like catalog")
    wanted = table.column_names if extra_columns == "*" else list(extra_columns)
    for name in wanted:
        key = name.upper()
        if key in data:
            continue
        if not table.has_column(name):
            raise SpectrumFileError(path, f"requested extra column {name} is not in HDU {table.index}")
        values = table.values(name)
        if values.ndim == 1:
            data[key] = values.astype(object) if values.dtype.kind == "U" else values
    df = pd.DataFrame(data)
    df.attrs["missing_columns"] = missing
    df.attrs["source"] = str(path)
    return df


def _as_kind(path: PathLike, name: str, values: np.ndarray, kind: str) -> np.ndarray:
    if values.ndim != 1:
        raise SpectrumFileError(path, f"column {name} is array-valued (shape {values.shape[1:]}), expected one value per row")
    if kind == "str":
        if values.dtype.kind not in "US":
            values = values.astype(str)
        return np.char.strip(values.astype(str)).astype(object)
    if values.dtype.kind in "US":
        raise SpectrumFileError(path, f"column {name} holds text, expected numbers")
    if kind == "float":
        return values.astype(np.float64)
    if values.dtype.kind == "f":  # an int column written as float: NaN means "no value" -> -1
        return np.where(np.isfinite(values), values, -1).astype(np.int64)
    return values.astype(np.int64)
