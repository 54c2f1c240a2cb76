"""The vetted catalog carries what people wrote and flagged: each spectrum's comment(s) and issue flags
(and spectral type), in every format the export writes, read back with astropy and pandas.

Runs on a temp SQLite file, or on PostgreSQL with FNET_TEST_DB_URL set (see tests/db_helpers.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table

from db import load
from db.consensus import resolve
from db.decisions import record_decision
from db.engine import make_engine, session_scope
from db.export import export_catalog, final_decisions, overlay_decisions

OIDS = [f"7166-56602-{i:04d}" for i in range(6)]


@pytest.fixture
def decided(db_url) -> pd.DataFrame:
    """final_decisions after: one inspector; two who agree; a conflict; a resolved conflict; a skip only."""
    e = make_engine(db_url)
    with session_scope(e) as s:
        load.load_spectra(s, pd.DataFrame({"object_id": OIDS, "row": np.arange(len(OIDS))}))
        record_decision(s, OIDS[0], "alice", "correct", z_final=2.0, quality=3, comment="first look")  # superseded
        record_decision(s, OIDS[0], "alice", "correct", z_final=2.31, quality=4, flags=["bad_spectrum"],
                        comment="CIV, CIII] clear; sky line at 5577")  # fmt: skip
        record_decision(s, OIDS[1], "alice", "accept", z_model=1.5, quality=4, comment="MgII")
        record_decision(s, OIDS[1], "Zoë", "accept", z_model=1.5, quality=3, flags=["bad_spectrum"], comment="🙂 ok")
        record_decision(s, OIDS[2], "alice", "not_qso", spectral_type="STAR", quality=4, comment="M dwarf")
        record_decision(s, OIDS[2], "bob", "correct", z_final=2.2, quality=3)  # no comment of his own
        record_decision(s, OIDS[3], "alice", "correct", z_final=1.0, quality=4)
        record_decision(s, OIDS[3], "bob", "correct", z_final=2.0, quality=4, comment="Lya at 3650")
        resolve(s, OIDS[3], "carol", z=2.0, quality=4, comment="bob is right", flags=["bad_spectrum"])
        record_decision(s, OIDS[4], "alice", "skip", comment="not sure")  # a skip alone makes no row
        frame = final_decisions(s)
    e.dispose()
    return frame


def _base() -> pd.DataFrame:
    n = len(OIDS)
    return pd.DataFrame({
        "object_id": OIDS, "ra": np.linspace(150, 151, n), "dec": np.linspace(2, 3, n), "z_final": np.full(n, 1.9),
        "z_source": "model", "quality": np.nan, "inspectors": "", "n_decisions": 0, "z_fnet": np.full(n, 1.9),
        "z_fnet_err": 0.01, "z_pipe": 1.9, "z_qn": 1.9, "z_pca": 1.9, "model_version": "abc",
    })  # fmt: skip


EXPECTED = {  # object id -> (comment, issue_flags, spectral_type)
    OIDS[0]: ("CIV, CIII] clear; sky line at 5577", "bad_z,bad_spectrum", "QSO"),  # one inspector: as written
    OIDS[1]: ("alice: MgII; Zoë: 🙂 ok", "bad_spectrum", "QSO"),  # several: behind their names, flags all together
    OIDS[2]: ("alice: M dwarf", "bad_z,bad_class", ""),  # a conflict (STAR vs QSO) keeps what they said
    OIDS[3]: ("bob: Lya at 3650; carol: bob is right", "bad_z,bad_spectrum", "QSO"),  # the resolution's too
    OIDS[5]: ("", "", ""),  # nobody decided
}


def test_final_decisions_carry_comments_and_flags(decided):
    got = decided.set_index("object_id")
    assert OIDS[4] not in got.index  # a skip is no judgement
    for oid, (comment, flags, _) in EXPECTED.items():
        if oid in got.index:
            assert (got.loc[oid, "comment"], got.loc[oid, "issue_flags"]) == (comment, flags), oid


def test_every_format_carries_comments_and_flags(decided, tmp_path):
    export_catalog(overlay_decisions(_base(), decided), tmp_path / "cat")
    csv = pd.read_csv(tmp_path / "cat.csv", keep_default_na=False, dtype=str).set_index("object_id")
    pq = pd.read_parquet(tmp_path / "cat.parquet").set_index("object_id")
    fit = Table.read(tmp_path / "cat.fits", mask_invalid=False).to_pandas()  # strings: their UTF-8 bytes
    fit = fit.map(lambda v: v.decode("utf-8") if isinstance(v, bytes) else v).set_index("object_id")
    for table in (csv, pq, fit):
        for oid, expected in EXPECTED.items():
            assert tuple(table.loc[oid, ["comment", "issue_flags", "spectral_type"]]) == expected, oid
    hdr = fits.getheader(tmp_path / "cat.fits", 1)
    names = [hdr[f"TTYPE{i}"] for i in range(1, hdr["TFIELDS"] + 1)]
    assert "bad_class" in hdr[f"TCOMM{names.index('issue_flags') + 1}"]
    assert "name: comment" in hdr[f"TCOMM{names.index('comment') + 1}"]
