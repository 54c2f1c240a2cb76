"""The spectrum store on disk: plain .npy memmaps + parquet index, and its commit protocol.

These tests drive `StoreWriter` directly (no file reading) to pin down what a
crash at each step leaves behind; tests/store/test_ingest.py covers the store as the
ingest command fills it.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inspector.ingest import build_index
from inspector.store import (
    FLUX_FILE,
    INDEX_FILE,
    IVAR_FILE,
    PARTS_DIR,
    REJECTED_SCHEMA,
    SpectrumStore,
    StoreWriter,
)
from inspector.store.npy import read_npy_header, set_npy_rows
from model.grid import FNET_NPIX


def _rows(start: int, n: int, plate: int = 4000) -> list[dict]:
    """Index rows as a worker sends them back (SDSS-like ids, the file's own labels)."""
    return [
        {"object_id": f"{plate:04d}-55000-{i:04d}", "file": f"/data/{plate}/spec-{plate:04d}-55000-{i:04d}.fits",
         "hdu_or_fiber": "1", "file_index": 0, "survey": "BOSS", "plate": plate, "mjd": 55000, "fiberid": i,
         "targetid": None, "ra": 150.0 + i * 1e-3, "dec": 2.0, "spec_class": "QSO" if i % 3 else "GALAXY",
         "z_file": 0.5 + 0.01 * i, "zwarning": 0, "sn_median_all": 3.0, "n_pix_native": 4600,
         "lam_min": 3600.0, "lam_max": 10380.0, "n_pix_grid_good": 4500}
        for i in range(start, start + n)
    ]


def _arrays(start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(start)
    return (rng.normal(10, 2, (n, FNET_NPIX)).astype(np.float32),
            rng.uniform(0.1, 1, (n, FNET_NPIX)).astype(np.float32))


def _rejected(files: list[str]) -> pa.Table:
    now = pd.Timestamp.now(tz="UTC")
    return pa.Table.from_pylist(
        [{"file": f, "reason": "truncated FITS file", "when": now, "category": "truncated", "hdu_or_fiber": None,
          "object_id": None, "size": 10, "mtime_ns": 1} for f in files], schema=REJECTED_SCHEMA)


def _commit(w: StoreWriter, start: int, n: int, rejected: list[str] | None = None) -> None:
    f, iv = _arrays(start, n)
    w.commit(f, iv, build_index(_rows(start, n), None), _rejected(rejected) if rejected else None)


def test_npy_resize_in_place_keeps_data_and_stays_loadable(tmp_path):
    p = tmp_path / "a.npy"
    arr = np.lib.format.open_memmap(p, mode="w+", dtype=np.float32, shape=(3, FNET_NPIX))
    arr[:] = np.arange(3, dtype=np.float32)[:, None]
    del arr
    _, hlen, _ = read_npy_header(p)
    set_npy_rows(p, 1000)  # grow: no copy, header rewritten in place
    assert read_npy_header(p)[0] == (1000, FNET_NPIX) and read_npy_header(p)[1] == hlen
    a = np.load(p, mmap_mode="r")
    assert a.shape == (1000, FNET_NPIX) and (a[:3, 0] == [0, 1, 2]).all() and (a[3:] == 0).all()
    del a
    set_npy_rows(p, 2)  # trim
    assert np.load(p).shape == (2, FNET_NPIX)
    assert p.stat().st_size == hlen + 2 * FNET_NPIX * 4
    assert (np.load(p)[:, 7] == [0, 1]).all()


def test_committed_store_opens_as_memmaps_with_index_and_rejections(tmp_path):
    with StoreWriter(tmp_path / "s") as w:
        w.open_arrays(5)
        _commit(w, 0, 4, rejected=["/data/bad-1.fits"])
        _commit(w, 4, 3)  # past the preallocated 5 rows: grows in place
        meta = w.finalize({"sources": ["/data"]})
    assert meta["counts"] == {"stored": 7, "rejected": 1} and meta["state"] == "complete"
    store = SpectrumStore(tmp_path / "s")
    assert len(store) == 7
    for arr in (store.flux, store.ivar):
        assert isinstance(arr, np.memmap) and arr.dtype == np.float32 and arr.shape == (7, FNET_NPIX)
        assert not arr.flags.writeable  # read-only: the app can never scribble on the store
    # the same files are plain .npy files anyone can load
    assert np.load(tmp_path / "s" / FLUX_FILE).shape == (7, FNET_NPIX)
    f0, iv0 = _arrays(0, 4)
    f1, _ = _arrays(4, 3)
    np.testing.assert_array_equal(store.flux[[0, 3]], f0[[0, 3]])
    np.testing.assert_array_equal(store.ivar[:4], iv0)
    np.testing.assert_array_equal(store.flux[4:], f1)
    assert store.index["row"].tolist() == list(range(7))
    assert store.row_of("4000-55000-0005") == 5
    with pytest.raises(KeyError):
        store.row_of("9999-55000-0001")
    assert store.rejected["file"].tolist() == ["/data/bad-1.fits"]
    assert store.meta["grid"]["npix"] == FNET_NPIX and store.meta["grid"]["normalised"] is False
    assert not (tmp_path / "s" / PARTS_DIR).exists() or not list((tmp_path / "s" / PARTS_DIR).iterdir())


def test_uncommitted_chunk_is_invisible_and_overwritten_on_resume(tmp_path):
    """A chunk whose arrays were written but whose index part never landed (SIGKILL) is garbage."""
    s = tmp_path / "s"
    w = StoreWriter(s)
    w.open_arrays(10)
    _commit(w, 0, 3)
    _commit(w, 3, 3, rejected=["/data/bad-2.fits"])
    last = sorted((s / PARTS_DIR).glob("*.index.parquet"))[-1]
    last.unlink()  # = killed after writing the rows and rejected part, before the commit rename
    (s / PARTS_DIR / "part-00000009.index.parquet.tmp").write_bytes(b"half a parquet")
    w.close()  # the process is gone; no finalize

    w2 = StoreWriter(s)
    assert w2.state.n_rows == 3 and "/data/bad-2.fits" not in w2.state.rejected_files
    assert not list((s / PARTS_DIR).glob("*.tmp")) and not list((s / PARTS_DIR).glob("*.rejected.parquet"))
    w2.open_arrays(10)
    _commit(w2, 100, 2)
    w2.finalize({})
    w2.close()
    store = SpectrumStore(s)
    assert len(store) == 5 and store.flux.shape == (5, FNET_NPIX)
    np.testing.assert_array_equal(store.flux[3:], _arrays(100, 2)[0])
    assert len(store.rejected) == 0


def test_interrupted_finalize_never_counts_parts_twice(tmp_path):
    s = tmp_path / "s"
    with StoreWriter(s) as w:
        w.open_arrays(4)
        _commit(w, 0, 4, rejected=["/data/bad-3.fits"])
        saved = {p.name: p.read_bytes() for p in (s / PARTS_DIR).iterdir()}
        w.finalize({})
    for name, data in saved.items():  # as if killed after writing index.parquet, before deleting parts
        (s / PARTS_DIR / name).write_bytes(data)
    with StoreWriter(s) as w:
        assert w.state.n_rows == 4
        w.open_arrays(4)
        w.finalize({})
    store = SpectrumStore(s)
    assert len(store) == 4 and len(store.rejected) == 1
    assert pq.read_metadata(s / INDEX_FILE).num_rows == 4


def test_reader_sees_only_the_consolidated_rows_of_an_interrupted_store(tmp_path):
    s = tmp_path / "s"
    with StoreWriter(s) as w:
        w.open_arrays(2)
        _commit(w, 0, 2)
        w.finalize({})
    with StoreWriter(s) as w:  # a second run, killed before finalize
        w.open_arrays(50)
        w.meta["state"] = "ingesting"
        w.write_meta()
        _commit(w, 2, 5)
    store = SpectrumStore(s)
    assert len(store) == 2 and store.flux.shape == (2, FNET_NPIX) and not store.complete
    assert np.load(s / IVAR_FILE, mmap_mode="r").shape[0] >= 7  # capacity still allocated until finalize


def test_second_concurrent_writer_is_refused(tmp_path):
    with StoreWriter(tmp_path / "s"):
        with pytest.raises(RuntimeError, match="another ingest"):
            StoreWriter(tmp_path / "s")


def test_store_json_records_grid_counts_and_software(tmp_path):
    with StoreWriter(tmp_path / "s") as w:
        w.open_arrays(1)
        _commit(w, 0, 1)
        w.finalize({"sources": ["/somewhere"], "software": {"fnet-inspector": "0.1.0"}})
    meta = json.loads((tmp_path / "s" / "store.json").read_text())
    assert meta["grid"]["loglam_min"] == pytest.approx(3.5522) and meta["grid"]["dloglam"] == pytest.approx(1e-4)
    assert meta["counts"]["stored"] == 1 and meta["sources"] == ["/somewhere"] and "created" in meta
    shutil.rmtree(tmp_path / "s")


def test_kill_between_folding_rejected_and_index_loses_and_doubles_nothing(tmp_path, monkeypatch):
    """finalize writes rejected.parquet, then index.parquet: a crash in between must be harmless,
    including for a many-spectrum file with one row stored and one rejected."""
    import inspector.store.parts as store_mod

    s = tmp_path / "s"
    with StoreWriter(s) as w:
        w.open_arrays(3)
        f, iv = _arrays(0, 3)
        rows = _rows(0, 3)
        w.commit(f, iv, build_index(rows, None), _rejected([rows[0]["file"]]))  # fiber 0 of that file rejected
        real = store_mod.stream_tables
        calls = []

        def crash_on_index(out, *a, **k):
            calls.append(out.name)
            if out.name == INDEX_FILE:
                raise KeyboardInterrupt  # killed right here
            return real(out, *a, **k)

        monkeypatch.setattr(store_mod, "stream_tables", crash_on_index)
        with pytest.raises(KeyboardInterrupt):
            w.finalize({})
        monkeypatch.setattr(store_mod, "stream_tables", real)
    assert calls == ["rejected.parquet", INDEX_FILE]
    with StoreWriter(s) as w:
        assert w.state.n_rows == 3
        w.open_arrays(5)
        _commit(w, 3, 2, rejected=["/data/other.fits"])
        w.finalize({})
    store = SpectrumStore(s)
    assert len(store) == 5 and store.index["row"].tolist() == list(range(5))
    assert sorted(store.rejected["file"]) == sorted([rows[0]["file"], "/data/other.fits"])


def test_a_store_built_on_another_grid_is_not_appended_to(tmp_path):
    with StoreWriter(tmp_path / "s") as w:
        w.open_arrays(1)
        _commit(w, 0, 1)
        w.finalize({})
    meta = json.loads((tmp_path / "s" / "store.json").read_text())
    meta["grid"]["npix"] = 443
    (tmp_path / "s" / "store.json").write_text(json.dumps(meta))
    with pytest.raises(RuntimeError, match="another grid"):
        StoreWriter(tmp_path / "s")
