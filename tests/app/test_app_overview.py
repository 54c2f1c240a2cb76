"""The Overview tab (inspector/app/overview.py): progress, the survey table and its filters, jump-to,
the plots, and the Export download -- on a 40-spectrum mock triaged into a SQLite database."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(engine, store, predictions, decided {object_id: z or None}) with 6 decisions by two inspectors."""
    from app_helpers import triaged_mock

    from db.decisions import record_decision
    from db.engine import make_engine, session_scope
    from db.queue import next_item

    store, predictions, flags, url = triaged_mock(tmp_path_factory.mktemp("overview"))
    engine = make_engine(url)
    decided: dict[str, float | None] = {}
    with session_scope(engine) as s:
        for k, who in enumerate(["alice", "alice", "alice", "bob", "bob", "bob"]):
            sp = next_item(s, who, crosscheck_fraction=0)
            assert sp is not None
            if k % 3 == 0:
                record_decision(s, sp, who, "correct", z_final=1.2345 + k, quality=3)
                decided[sp.object_id] = 1.2345 + k
            elif k % 3 == 1:
                record_decision(s, sp, who, "accept", z_final=2.5, quality=4)
                decided[sp.object_id] = 2.5
            else:
                record_decision(s, sp, who, "not_qso", quality=2, spectral_type="STAR")
                decided[sp.object_id] = None
        skipped = next_item(s, "bob", crosscheck_fraction=0)
        record_decision(s, skipped, "bob", "skip")
        n_flagged = len(flags)
    yield engine, store, predictions, decided, n_flagged
    engine.dispose()


@pytest.fixture(scope="module")
def view(demo):
    from inspector.app.overview import overview_view

    engine, store, *_ = demo
    return overview_view(engine, store)


def test_progress_counts(demo):
    from inspector.app.overview_data import progress, progress_markdown

    engine, _, _, decided, n_flagged = demo
    p = progress(engine)
    assert p["flagged"] == n_flagged
    assert p["decided"] == len(decided) == 6
    assert p["left"] == n_flagged - 6
    assert p["decisions"] == 6 and p["last_hour"] == 6  # the skip is not a decision
    per = p["inspectors"].set_index("inspector")
    assert per.loc["alice", "decisions"] == 3 and per.loc["bob", "decisions"] == 3
    assert per.loc["bob", "last_hour"] == 3 and per.loc["bob", "per_hour"] > 0
    assert f"**6 / {n_flagged}**" in progress_markdown(p)


def test_table_rows_and_decisions(view, demo):
    ov = view.overview
    _, _, _, decided, _ = demo
    t = ov.table
    assert len(t) == 40 and t["object_id"].is_unique
    grid = ov.grid.value
    assert list(grid.columns) == ["object_id", "z_fnet", "z_err", "class", "p_qso", "Z_TPL", "Z_PIPE", "Z_QN", "rules",
                                  "priority", "decision", "quality", "inspector", "z_final", "z_source", "is_qso",
                                  "dv_kms"]  # fmt: skip
    assert len(grid) == 40 and ov.grid.pagination == "remote"
    assert grid["Z_TPL"].notna().sum() >= 35  # the demo's prediction run stored the template fit
    rows = t.set_index("object_id")
    for oid, z in decided.items():
        r = rows.loc[oid]
        assert r["z_source"] == "person" and r["n_decisions"] == 1
        if z is None:  # a person's "not a quasar" decides the class, whatever FNet said
            assert r["decision"] == "not_qso" and np.isnan(r["z_ref"]) and r["is_qso_final"] == -1
        else:
            assert r["z_final"] == pytest.approx(z) and r["z_ref"] == pytest.approx(z)
            assert r["z_ref_source"] == "decided" and r["is_qso_final"] == 1
    undecided = t[~t["object_id"].isin(decided)]
    assert (undecided["z_ref_source"] == "store").all()  # the mock's truth z
    # nobody decided: FNet's class, with the triage's threshold (0.9); nothing known without a class head
    p = undecided["p_qso"].to_numpy(float)
    want = np.where(p >= 0.9, 1, np.where(p <= 0.1, -1, 0))
    assert (undecided["is_qso_final"].to_numpy() == want).all()
    assert ((undecided["fnet_class"] == "") == np.isnan(p)).all()


def test_filters(view, demo):
    from inspector.app.overview_data import RULE_NONE

    ov = view.overview
    _, _, _, decided, n_flagged = demo
    try:
        ov.decision = "decided"
        assert set(ov.grid.value["object_id"]) == set(decided)
        ov.decision = "correct"
        assert len(ov.grid.value) == 2 and set(ov.grid.value["decision"]) == {"correct"}
        ov.decision = "undecided"
        assert len(ov.grid.value) == 40 - 6
        ov.decision = "any"
        ov.quality = "≥ 3"
        assert len(ov.grid.value) == 4 and (ov.grid.value["quality"] >= 3).all()
        ov.quality = "not inspected"
        assert len(ov.grid.value) == 34
        ov.quality = "any"
        ov.rule = RULE_NONE
        assert len(ov.grid.value) == 40 - n_flagged
        rule = ov.param.rule.objects[2]
        ov.rule = rule
        assert len(ov.grid.value) > 0 and all(rule in r.split(",") for r in ov.grid.value["rules"])
        ov.rule = "any"
        ov.z_range = (1.0, 2.0)
        z = ov.grid.value["z_fnet"]
        assert len(z) > 0 and ((z >= 1.0) & (z <= 2.0)).all()
    finally:
        ov.param.update(decision="any", quality="any", rule="any", z_range=ov.param.z_range.bounds)
    assert len(ov.grid.value) == 40


def test_jump_to_sets_the_shared_param(view):
    ov, state = view.overview, view.overview_state
    seen = []
    state.param.watch(lambda e: seen.append(e.new), "jump_to")
    oid = ov.table["object_id"].iloc[7]
    assert ov.jump(oid) and state.jump_to == oid
    ov.jump(oid)  # the same id again re-triggers (the Inspect page may have moved on)
    assert seen == [oid, oid]
    assert not ov.jump("<b>nope</b>") and state.jump_to == oid
    assert "&lt;b&gt;" in ov._message_pane().object  # escaped
    ov.jump_input.value = ov.table["object_id"].iloc[3]
    assert state.jump_to == ov.table["object_id"].iloc[3]


def test_refresh_sees_new_decisions(demo):
    from db.decisions import record_decision
    from db.engine import session_scope
    from inspector.app.overview import overview_view

    engine, store, *_ = demo
    v = overview_view(engine, store)
    ov = v.overview
    n0 = int((ov.table["n_decisions"] > 0).sum())
    oid = ov.table.loc[ov.table["n_decisions"] == 0, "object_id"].iloc[0]
    with session_scope(engine) as s:
        record_decision(s, oid, "carol", "bad_spectrum", quality=0)
    ov.refresh_button.clicks += 1
    assert int((ov.table["n_decisions"] > 0).sum()) == n0 + 1
    assert "carol" in set(ov.rates.value["inspector"])


def test_export_download_is_a_fits_with_the_decided_z(view, demo, tmp_path):
    from astropy.table import Table

    ov = view.overview
    _, _, _, decided, _ = demo
    assert ov.download.filename == "fnet_catalog.fits"
    data = ov.download.callback().getvalue()
    (tmp_path / "c.fits").write_bytes(data)
    t = Table.read(tmp_path / "c.fits").to_pandas()
    t["object_id"] = t["object_id"].str.decode("utf-8") if t["object_id"].dtype == object and isinstance(
        t["object_id"].iloc[0], bytes) else t["object_id"]  # fmt: skip
    rows = t.set_index("object_id")
    assert len(rows) >= 40
    for oid, z in decided.items():
        assert rows.loc[oid, "z_source"] in ("person", b"person")
        if z is not None:
            assert rows.loc[oid, "z_final"] == pytest.approx(z)
    ov.export_format = "csv"
    try:
        assert ov.download.filename == "fnet_catalog.csv"
        (tmp_path / "c.csv").write_bytes(ov.download.callback().getvalue())
        csv = pd.read_csv(tmp_path / "c.csv").set_index("object_id")
        some = next(o for o, z in decided.items() if z is not None)
        assert csv.loc[some, "z_final"] == pytest.approx(decided[some])
        ov.only_inspected = True
        (tmp_path / "i.csv").write_bytes(ov.download.callback().getvalue())
        assert len(pd.read_csv(tmp_path / "i.csv")) >= len(decided)
    finally:
        ov.param.update(export_format="fits", only_inspected=False)


def test_plots_points_and_datashader(view):
    import holoviews as hv

    from inspector.app.overview_plots import survey_plots, z_vs_ref

    ov = view.overview
    layout = survey_plots(ov.table)
    assert len(layout) == 3
    hv.render(layout, backend="bokeh")
    assert isinstance(z_vs_ref(ov.table).values()[0], hv.Points)
    big = pd.DataFrame({"object_id": np.arange(30), "z_ref": np.linspace(0.1, 3, 30),
                        "z_fnet": np.linspace(0.1, 3, 30), "z_pipe": 1.0, "z_qn": -1.0})  # fmt: skip
    shaded = z_vs_ref(big, datashade_min=10)
    assert isinstance(shaded, hv.DynamicMap)  # rasterized by datashader (re-rendered on zoom)
    hv.render(shaded, backend="bokeh")


def test_renders_to_html(view, tmp_path):
    import panel as pn

    out = tmp_path / "ov.html"
    pn.panel(view).save(out, resources="inline")
    text = out.read_text()
    assert out.stat().st_size > 10_000 and "Queue progress" in text
