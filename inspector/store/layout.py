"""What a store directory holds: its file names and the columns of its two tables."""
from __future__ import annotations

import pyarrow as pa

FLUX_FILE = "flux.npy"
IVAR_FILE = "ivar.npy"
INDEX_FILE = "index.parquet"
REJECTED_FILE = "rejected.parquet"
META_FILE = "store.json"
PARTS_DIR = "parts"
STORE_FORMAT = 1

# Columns every index has, in order; catalog columns (upper-case, as in DR16Q)
# come between these and DERIVED_SCHEMA.
BASE_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("object_id", pa.string()),
        ("file", pa.string()),
        ("hdu_or_fiber", pa.string()),
        ("file_index", pa.int32()),  # position in readers.read_any(file): re-read the native spectrum
        ("survey", pa.string()),
        ("plate", pa.int64()),
        ("mjd", pa.int64()),
        ("fiberid", pa.int64()),
        ("targetid", pa.int64()),
        ("ra", pa.float64()),
        ("dec", pa.float64()),
        ("spec_class", pa.string()),
        ("z_file", pa.float64()),
        ("zwarning", pa.int64()),
        ("sn_median_all", pa.float64()),
        ("n_pix_native", pa.int32()),
        ("lam_min", pa.float64()),
        ("lam_max", pa.float64()),
        ("n_pix_grid_good", pa.int32()),  # grid pixels with ivar > 0
    ]
)
DERIVED_SCHEMA = pa.schema(
    [
        ("catalog_match", pa.bool_()),
        ("z", pa.float64()),  # training label: Z_VI where inspected, else catalog Z, else z_file
        ("z_source", pa.string()),  # "Z_VI" | "Z" | "z_file" | null
        ("is_qso", pa.bool_()),  # CLASS_PERSON in {3, 30} where inspected, else spec_class == "QSO"
        ("class_source", pa.string()),  # "CLASS_PERSON" | "spec_class" | null (then is_qso is a guess: False)
    ]
)
REJECTED_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("reason", pa.string()),
        ("when", pa.timestamp("us", tz="UTC")),
        ("category", pa.string()),
        ("hdu_or_fiber", pa.string()),
        ("object_id", pa.string()),
        ("size", pa.int64()),  # file size and mtime when rejected: a changed file is retried
        ("mtime_ns", pa.int64()),
    ]
)
