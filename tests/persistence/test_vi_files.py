"""DESI VI CSVs (prospect) and Marz .mz files: written as those tools write them, read back from them and
from files in their own layout, and round trips export -> import into a fresh database.

Runs on temp SQLite files, or on PostgreSQL with FNET_TEST_DB_URL set (see tests/db_helpers.py).
"""
from __future__ import annotations

import csv
import math
import os
from datetime import UTC, datetime

import pandas as pd
import pytest
from db_helpers import fresh_database
from typer.testing import CliRunner

from db import load, vi_desi, vi_marz
from db.decisions import count_decisions, latest_decisions, record_decision
from db.engine import make_engine, session_scope
from db.vi_export import auto_answer, export_vi
from db.vi_import import import_vi
from db.vi_vocab import ViFileError, ViRecord, standin_targetid

DESI_TID = 39627652591521181
OIDS = ["7166-56602-0590", "7166-56602-0591", "desi-39627652591521181", "7166-56602-0593", "sky-1"]
SPECTRA = pd.DataFrame({
    "object_id": OIDS,
    "plate": pd.array([7166, 7166, None, 7166, None], dtype="Int64"),
    "mjd": pd.array([56602, 56602, None, 56602, None], dtype="Int64"),
    "fiberid": pd.array([590, 591, None, 593, None], dtype="Int64"),
    "targetid": pd.array([None, None, DESI_TID, None, None], dtype="Int64"),
    "ra": [150.1, 150.2, 210.5, 150.4, 10.0], "dec": [2.1, 2.2, -5.5, 2.4, 0.0], "row": range(5),
})  # fmt: skip
ZOE = "Zoë Ångström"
# (object id, inspector, action, kwargs): every action and type a VI file can carry
DECISIONS = [
    (OIDS[0], "alice", "correct", {"z_final": 2.31234, "quality": 4, "flags": ["bad_z"], "comment": "CIV and CIII] clear"}),
    (OIDS[1], "alice", "not_qso", {"spectral_type": "STAR", "z_final": 0.0001, "quality": 3, "comment": "M star"}),
    (OIDS[2], "alice", "accept", {"z_model": 1.234, "quality": 3}),
    (OIDS[3], "alice", "bad_spectrum", {"comment": "sky residuals, all over"}),
    (OIDS[4], "alice", "accept", {"z_model": 1.0, "quality": 2}),
    (OIDS[0], "bob", "correct", {"z_final": 2.3125, "quality": 3, "comment": "Lyα forest"}),
    (OIDS[2], "bob", "not_qso", {"spectral_type": "GALAXY", "z_final": 0.35, "quality": 4, "flags": ["bad_spectrum"]}),
    (OIDS[1], ZOE, "not_qso", {"spectral_type": "STAR", "z_final": 0.0, "quality": 4}),
]  # fmt: skip


def _spectra(url: str) -> None:
    e = make_engine(url)
    with session_scope(e) as s:
        load.load_spectra(s, SPECTRA)
    e.dispose()


@pytest.fixture
def source(tmp_path):
    """A database with `SPECTRA` and `DECISIONS` (alice's earlier correction of OIDS[0] superseded)."""
    (tmp_path / "a").mkdir()
    url = fresh_database(tmp_path / "a")
    _spectra(url)
    e = make_engine(url)
    with session_scope(e) as s:
        record_decision(s, OIDS[0], "alice", "correct", z_final=2.0, quality=1)  # superseded below
        for oid, who, action, kw in DECISIONS:
            record_decision(s, oid, who, action, **kw)
    yield e
    e.dispose()


@pytest.fixture
def target(tmp_path):
    """A fresh database with the same spectra and no decisions."""
    (tmp_path / "b").mkdir()
    url = fresh_database(tmp_path / "b", name="b")
    _spectra(url)
    e = make_engine(url)
    yield e
    e.dispose()


def _state(engine) -> dict[tuple[str, str], tuple]:
    """(object id, inspector) -> (action, quality, flags, type, comment, z) of the latest decisions."""
    with session_scope(engine) as s:
        oid = {i: o for o, i in load.spectrum_ids(s).items()}
        return {(oid[d.spectrum_id], d.inspector.name): (d.action, d.quality, d.flags, d.spectral_type, d.comment,
                                                         None if d.z_final is None else round(d.z_final, 4))
                for d in latest_decisions(s)}  # fmt: skip


# --------------------------------------------------------------------------- the files, as the tools write them
def test_desi_vi_file_is_prospects_layout(tmp_path, source):
    with session_scope(source) as s:
        paths, left_out = export_vi(s, tmp_path / "vi" / "dr16q", "desi-vi")
    assert sorted(p.name for p in paths) == ["desi-vi_dr16q_Zoë-Ångström.csv", "desi-vi_dr16q_alice.csv",
                                             "desi-vi_dr16q_bob.csv"]  # fmt: skip
    assert left_out == ["sky-1"]  # no TARGETID, no plate/mjd/fiber: a DESI file cannot key it
    rows = list(csv.reader((tmp_path / "vi" / "desi-vi_dr16q_alice.csv").open(encoding="utf-8")))
    assert tuple(rows[0]) == vi_desi.DESI_VI_FIELDS
    assert rows[0][:4] == ["TARGETID", "EXPID", "NIGHT", "TILEID"] and rows[0][-1] == "VI_comment"
    got = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    first = got[str(standin_targetid(7166, 56602, 590))]
    assert first["TARGETID"] == "7166566020590" and first["EXPID"] == "-1" and first["Spec_version"] == "-1"
    assert (first["VI_scanner"], first["VI_quality"], first["VI_issue"], first["VI_z"], first["VI_spectype"],
            first["VI_comment"]) == ("alice", "4", "R", "2.3123", "QSO", "CIV and CIII] clear")  # fmt: skip
    assert got[str(DESI_TID)]["VI_z"] == "1.2340" and got[str(DESI_TID)]["Redrock_z"] == "1.2340"
    assert got["7166566020591"]["VI_issue"] == "C" and got["7166566020591"]["VI_spectype"] == "STAR"
    bad = got["7166566020593"]
    assert (bad["VI_quality"], bad["VI_issue"], bad["VI_z"], bad["VI_spectype"]) == ("0", "S", "", "UNKNOWN")
    assert bad["VI_comment"] == "sky residuals, all over"  # quoted by CSV, kept whole


def test_marz_file_is_marz_layout(tmp_path, source):
    with session_scope(source) as s:
        paths, left_out = export_vi(s, tmp_path / "vi" / "run1", "marz")
    assert sorted(p.name for p in paths) == ["run1_Zongstrm.mz", "run1_alice.mz", "run1_bob.mz"] and left_out == []
    lines = (tmp_path / "vi" / "run1_alice.mz").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# Results generated by alice for file [[run1]] at ")
    assert '(JSON: "' in lines[0] and lines[0].endswith("at version {{fnet-inspector}}")
    assert lines[1] == "# Redshift quality > 2 for 3 out of 5 targets, a success rate of  60.0%"
    assert [c.strip() for c in lines[2].lstrip("#").split(",")] == list(vi_marz.MARZ_COLUMNS)
    assert all(ln.startswith(" ") and "," not in ln.replace(",  ", "") for ln in lines[3:])
    row = dict(zip(vi_marz.MARZ_COLUMNS, (v.strip() for v in lines[3].split(",")), strict=True))
    assert row["ID"] == "0001" and row["Name"] == OIDS[0] and row["Type"] == "P"
    assert (row["FinTID"], row["FinTN"], row["FinZ"], row["QOP"], row["Comment"]) == (
        "12", "Quasar", "2.31234", "4", "[R] CIV and CIII] clear")  # fmt: skip
    assert float(row["RA"]) == pytest.approx(math.radians(150.1), abs=1e-6)  # radians, as the 2dF fibre table
    by_name = {v[1]: v for v in ([x.strip() for x in ln.split(",")] for ln in lines[3:])}
    assert by_name[OIDS[3]][-2:] == ["1", "[S] sky residuals; all over"]  # quality 0 -> QOP 1; no commas
    zoe = (tmp_path / "vi" / "run1_Zongstrm.mz").read_text(encoding="utf-8").splitlines()
    assert zoe[0].startswith(f"# Results generated by {ZOE} ") and zoe[3].split(",")[-2].strip() == "6"  # a star


def test_reads_a_file_in_prospects_own_layout(tmp_path):
    """prospect's older 15 columns (no Redrock_deltachi2), a quoted comma, DESI's "empty = agree with Redrock"."""
    path = tmp_path / "desi-vi_tile80605_AB.csv"
    path.write_text(
        "TARGETID,EXPID,NIGHT,TILEID,Spec_version,Redrock_version,Template_version,Redrock_spectype,Redrock_z,"
        "VI_scanner,VI_quality,VI_issue,VI_z,VI_spectype,VI_comment\n"
        '39627652591521181,81234,20210405,80605,everest,0.15.4,0.1,QSO,1.2345,AB,4,,,,"broad MgII, CIII]"\n'
        "39627652591521182,81234,20210405,80605,everest,0.15.4,0.1,GALAXY,0.5123,AB,3,CR,2.1,QSO,\n"
        "39627652591521183,81234,20210405,80605,everest,0.15.4,0.1,STAR,0.0001,,-1,,,,look again\n",
        encoding="utf-8")  # fmt: skip
    vi = vi_desi.read(path)
    assert vi.time_from == "mtime" and len(vi.records) == 3
    a, b, c = vi.records
    assert (a.targetid, a.inspector, a.quality, a.flags, a.z, a.spectral_type, a.comment, a.line) == (
        39627652591521181, "AB", 4, (), 1.2345, "QSO", "broad MgII, CIII]", 2)  # fmt: skip
    assert (b.quality, b.flags, b.z, b.spectral_type, b.auto_z, b.auto_type) == (
        3, ("bad_z", "bad_class"), 2.1, "QSO", 0.5123, "GALAXY")  # fmt: skip
    assert (c.inspector, c.quality, c.comment, c.spectral_type, c.z) == ("AB", None, "look again", "STAR", 0.0001)


def test_reads_a_file_in_marz_own_layout(tmp_path):
    path = tmp_path / "ozdes_run1_SRH.mz"
    path.write_text(
        '# Results generated by SRH for file [[ozdes_run1]] at 3/1/2016, 10:00:00 AM (JSON: "2016-03-01T10:00:00.000Z") '
        "at version {{0.9.8}}\n"
        "# Redshift quality > 2 for 2 out of 3 targets, a success rate of  66.7%\n"
        "#ID  ,  Name           ,  RA      ,  DEC      ,  Mag  ,  Type,  AutoTID,  AutoTN,  AutoZ  ,  AutoXCor,  "
        "FinTID,  FinTN ,  FinZ   ,  QOP,  Comment\n"
        " 0001,  7166-56602-0590,  2.620000,  0.036652 ,  19.20,  P   ,  12     ,  Quasar,  2.31200,  0.81234 ,  "
        "12    ,  Quasar,  2.31210,  4  ,         \n"
        " 0002,  7166-56602-0591,  2.620100,  0.036700 ,  18.10,  P   ,  2      ,  K Star,  0.00010,  0.50000 ,  "
        "2     ,  K Star,  0.00010,  6  ,  late K\n"
        " 0003,  7166-56602-0593,  2.620200,  0.036800 ,  21.00,  P   ,  12     ,  Quasar,  1.10000,  0.10000 ,  "
        "12    ,  Quasar,  1.10000,  0  ,         \n",
        encoding="utf-8")  # fmt: skip
    vi = vi_marz.read(path)
    assert vi.time_from == "file" and vi.decided_at == datetime(2016, 3, 1, 10, 0, tzinfo=UTC)
    q, star, none = vi.records
    assert (q.inspector, q.object_id, q.quality, q.spectral_type, q.z, q.auto_z, q.comment) == (
        "SRH", OIDS[0], 4, "QSO", 2.3121, 2.312, None)  # fmt: skip
    assert (star.quality, star.spectral_type, star.comment) == (4, "STAR", "late K")  # QOP 6, any star template
    assert none.quality is None and none.line == 6  # nobody graded it


@pytest.mark.parametrize(("bad", "expect"), [
    ("39627652591521181,1,2,3,-1,-1,-1,QSO,1.2,AB,7,,,,", "VI_quality 7 is not -1 (none) or 0-4"),
    ("39627652591521181,1,2,3,-1,-1,-1,QSO,1.2,AB,3,X,,,", "issue letter 'X'"),
    ("3962765259152118x,1,2,3,-1,-1,-1,QSO,1.2,AB,3,,,,", "TARGETID '3962765259152118x' is not an integer"),
    ("39627652591521181,1,2,3,-1,-1,-1,QSO,1.2,AB,3,,2.1,NEBULA,", "VI_spectype 'NEBULA'"),
    ("39627652591521181,1,2,3,-1,-1,-1,QSO,1.2,AB,3,,abc,,", "VI_z 'abc' is not a number"),
])  # fmt: skip
def test_a_bad_desi_file_names_file_and_line(tmp_path, bad, expect):
    path = tmp_path / "desi-vi_t_AB.csv"
    path.write_text(",".join(vi_desi.DESI_VI_FIELDS[:9] + vi_desi.DESI_VI_FIELDS[10:]) + "\n" + bad + "\n")
    with pytest.raises(ViFileError, match=r"desi-vi_t_AB\.csv, line 2: " + expect.replace("(", r"\(").replace(")", r"\)")):
        vi_desi.read(path)


def test_a_bad_marz_file_names_file_and_line(tmp_path):
    path = tmp_path / "r_X.mz"
    path.write_text("#ID,  Name,  FinTID,  FinTN,  FinZ,  QOP,  Comment\n 0001,  a,  12,  Quasar,  2.0,  5,  \n")
    with pytest.raises(ViFileError, match=r"r_X\.mz, line 2: QOP 5 is not one of 0, 1, 2, 3, 4, 6"):
        vi_marz.read(path)
    path.write_text("#ID,  Name,  FinTID,  FinTN,  FinZ,  QOP\n 0001,  a,  99,  Nebula,  2.0,  3\n")
    with pytest.raises(ViFileError, match=r"line 2: FinTID '99' \('Nebula'\) is no Marz template"):
        vi_marz.read(path)
    path.write_text("#ID,  Name,  FinZ\n 0001,  a,  2.0\n")
    with pytest.raises(ViFileError, match=r"line 1: lacks column\(s\) QOP"):
        vi_marz.read(path)


def test_auto_answer():
    assert auto_answer(2.0, 2.5, 2.001, 80.0, "QSO", 0.97) == (2.0, "QSO", 80.0)  # the fit found the same z
    assert auto_answer(None, 2.5, 1.0, 80.0, "STAR", 0.02) == (2.5, "STAR", None)  # not the same z: no score
    assert auto_answer(None, None, 1.0, 9.0, None, None) == (1.0, None, 9.0)  # no FNet: the template fit's


# --------------------------------------------------------------------------- round trips through a fresh database
def test_desi_vi_round_trip_and_idempotent(tmp_path, source, target):
    with session_scope(source) as s:
        paths, _ = export_vi(s, tmp_path / "vi" / "dr16q", "desi-vi")
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    for p in paths:
        os.utime(p, (when.timestamp(), when.timestamp()))
    with session_scope(target) as s:
        report = import_vi(s, paths)
    assert (report.recorded, report.already, report.unmatched, report.undecided) == (7, 0, [], [])
    before, after = _state(source), _state(target)
    assert after == {k: v for k, v in before.items() if k[0] != "sky-1"}  # action, quality, flags, type, comment, z
    assert after[(OIDS[1], ZOE)] == ("not_qso", 4, 2, "STAR", None, 0.0)
    with session_scope(target) as s:
        assert {d.decided_at for d in latest_decisions(s)} == {when}  # no time in the file: its mtime
        n = count_decisions(s)
        again = import_vi(s, paths)
        assert (again.recorded, again.already, count_decisions(s)) == (0, 7, n)
    with session_scope(source) as s:  # into the database it came from: nothing new either
        assert import_vi(s, paths).recorded == 0


def test_marz_round_trip(tmp_path, source, target):
    with session_scope(source) as s:
        paths, _ = export_vi(s, tmp_path / "vi" / "run1", "marz")
    with session_scope(target) as s:
        report = import_vi(s, paths)
    assert (report.recorded, report.unmatched) == (8, [])
    before, after = _state(source), _state(target)
    assert set(after) == set(before)
    for key, (action, quality, flags, kind, comment, z) in before.items():
        if key == (OIDS[3], "alice"):  # Marz has no grade below 1, and no commas
            assert after[key] == (action, 1, flags, kind, "sky residuals; all over", z)
        else:
            assert after[key] == (action, quality, flags, kind, comment, z), key
    with session_scope(source) as s:
        newest: dict[str, datetime] = {}
        for d in latest_decisions(s):
            newest[d.inspector.name] = max(newest.get(d.inspector.name, d.decided_at), d.decided_at)
    with session_scope(target) as s:  # the time the file states: its inspector's latest decision's, to the ms
        for d in latest_decisions(s):
            assert abs((d.decided_at - newest[d.inspector.name]).total_seconds()) < 1e-3
        assert import_vi(s, paths).recorded == 0


def test_unmatched_rows_are_reported_and_a_bad_file_imports_nothing(tmp_path, target):
    good = tmp_path / "desi-vi_t_AB.csv"
    fields = ",".join(vi_desi.DESI_VI_FIELDS)
    good.write_text(fields + "\n"
                    f"{DESI_TID},-1,-1,-1,-1,-1,-1,QSO,1.2345,-1,AB,3,,,QSO,\n"
                    "123,-1,-1,-1,-1,-1,-1,QSO,1.2,-1,AB,3,,,QSO,\n"
                    f"{standin_targetid(7166, 56602, 593)},-1,-1,-1,-1,-1,-1,QSO,0.9,-1,AB,2,,1.5,QSO,\n")  # fmt: skip
    with session_scope(target) as s:
        report = import_vi(s, [good])
        assert report.recorded == 2 and report.unmatched == [f"{good}:3 TARGETID 123: matches no spectrum"]
        n = count_decisions(s)
    bad = tmp_path / "desi-vi_t_CD.csv"
    bad.write_text(fields + "\n" + f"{DESI_TID},-1,-1,-1,-1,-1,-1,QSO,1.2,-1,CD,3,,9.9,QSO,\n")
    other = tmp_path / "desi-vi_t_EF.csv"
    other.write_text(fields + "\n" + f"{DESI_TID},-1,-1,-1,-1,-1,-1,QSO,1.2,-1,EF,3,,,QSO,\n")
    with session_scope(target) as s:
        with pytest.raises(ViFileError, match=r"desi-vi_t_CD\.csv, line 2: as a 'accept' decision: z_final"):
            import_vi(s, [other, bad])
        assert count_decisions(s) == n  # the good file beside it recorded nothing either


def test_commands_export_and_import(tmp_path, source, target):
    from inspector.cli import app

    url_a = source.url.render_as_string(hide_password=False)
    url_b = target.url.render_as_string(hide_password=False)
    runner = CliRunner()
    res = runner.invoke(app, ["export", "--format", "desi-vi", "--db", url_a, "--out", str(tmp_path / "vi" / "dr16q")])
    assert res.exit_code == 0, res.output
    assert "3 file(s)" in res.output and "sky-1" in res.output
    res = runner.invoke(app, ["export", "--format", "marz", "--db", url_a, "--out", str(tmp_path / "vi" / "dr16q")])
    assert res.exit_code == 0, res.output
    files = sorted(str(p) for p in (tmp_path / "vi").iterdir())
    res = runner.invoke(app, ["import-vi", *files, "--url", url_b])
    assert res.exit_code == 0, res.output
    # the Marz files repeat the DESI ones but for sky-1 (no TARGETID) and the bad spectrum (Marz: quality 1, no commas)
    assert "recorded 9 decision(s), 6 already there" in res.output
    res = runner.invoke(app, ["import-vi", files[0], "--db", url_b, "--inspector", "carol"])
    assert res.exit_code == 0 and "recorded" in res.output
    res = runner.invoke(app, ["export", "--format", "desi-vi", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "give --db" in res.output
    (tmp_path / "broken.mz").write_text("no header here\n")
    res = runner.invoke(app, ["import-vi", str(tmp_path / "broken.mz"), "--db", url_b])
    assert res.exit_code == 2 and "broken.mz, line 1" in res.output
    (tmp_path / "desi-vi_t_GH.csv").write_text(",".join(vi_desi.DESI_VI_FIELDS) + "\n123,-1,-1,-1,-1,-1,-1,QSO,1,-1,GH,3,,,,\n")
    res = runner.invoke(app, ["import-vi", str(tmp_path / "desi-vi_t_GH.csv"), "--db", url_b])
    assert res.exit_code == 1 and "TARGETID 123: matches no spectrum" in res.output


def test_record_helpers():
    r = ViRecord("a", 3, ("bad_z", "bad_spectrum"), 2.0, "QSO", "x,\ny")
    assert vi_marz._comment(r) == "[RS] x; y"
    assert vi_marz.qop(4, "STAR") == 6 and vi_marz.qop(3, "STAR") == 3 and vi_marz.qop(0, "QSO") == 1
    assert vi_marz.initials("Zoë Ångström_x") == "Zongstrmx" and vi_desi.file_name("t", "a_b c") == "desi-vi_t_a-b-c.csv"
