"""Layering's stored hub buckets (``detect_ly_hub``, migration 0006) and the batch they are current for.

A full run stores every hub bucket; an incremental run reads them instead of counting every payment of its
context and recounts only the touched accounts' buckets (``queries/detect/layering_scope.sql``, ``dx_ly_hn``),
which it stores. The stored buckets must stay equal to a full run's, and a run that changes payments without
keeping them up to date must leave them unused until the next full run.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import fundtrace.detect as detect
from fundtrace.detect import run
from fundtrace.workspace import Workspace
from test_detect_helpers import T0, fill
from test_detect_incremental import SETTINGS
from test_detect_incremental_layering import _NOISE, BYSTANDER, CASES, B, _hub, _sg


def _hubs(ws) -> list:
    return ws.con.execute("SELECT acct, b, n FROM detect_ly_hub ORDER BY ALL").fetchall()


def _marker(ws) -> list:
    return ws.con.execute("SELECT value FROM detect_state WHERE name = 'ly_hub'").fetchall()


def _sg_alerts(ws) -> list:
    return ws.con.execute(
        "SELECT a.alert_id, list(m.account_id ORDER BY m.account_id) FROM detect_raw_alerts a "
        "JOIN detect_raw_members m USING (alert_id) WHERE a.typology = 'scatter_gather' GROUP BY 1 ORDER BY 1"
    ).fetchall()


@pytest.mark.parametrize("dense", [False, True], ids=["scoped", "dense"])
@pytest.mark.parametrize(
    ("name", "gained"),
    [
        ("intermediate becomes a hub where paid", 1),
        ("gather-scatter counterparty becomes a hub", 3),
        ("path to an untouched source", 0),
    ],
)
def test_stored_hub_buckets_equal_a_full_runs(tmp_path, monkeypatch, name, gained, dense):
    """After an incremental run the stored hub buckets are a full run's, new hubs included, and current, whether
    layering ran scoped or, the batch being dense, unscoped over its window."""
    monkeypatch.setattr(detect, "DENSE_SHARE", 0.0 if dense else 2.0)
    first, later, _ = CASES[name]()
    batches = [first + BYSTANDER + _NOISE, later]
    with Workspace(tmp_path / "i.duckdb") as ws:
        for i, rows in enumerate(batches, start=1):
            fill(ws, rows, batch_id=i)
            result = run(ws, SETTINGS)
            assert result["mode"] == ("full" if i == 1 else "incremental")
            assert _marker(ws) == [(str(i),)]
            if i == 1:
                before = _hubs(ws)
        got = _hubs(ws)
    with Workspace(tmp_path / "f.duckdb") as ws:
        for i, rows in enumerate(batches, start=1):
            fill(ws, rows, batch_id=i)
        run(ws, SETTINGS, full=True)
        expected = _hubs(ws)
    assert got == expected
    assert len(expected) == len(before) + gained  # the hub buckets the case's new payments make


def test_hub_buckets_left_stale_are_not_read(tmp_path):
    """A run from an explicit time after new payments leaves the stored buckets stale (61 payments make m13 a hub):
    the marker goes, the next incremental run counts every payment of its context (the path s5 -> m13 -> k5 goes
    and with it the alert; read, the stale buckets keep it) and leaves it unmarked; a full run marks it again.
    (A run of other typologies alone also leaves them stale, but after it every run of layering is full.)"""
    first = _sg("f", "s5", "k5", ["m12", "m13", "m14"], B + 300) + BYSTANDER + _NOISE
    hub = _hub("h", "m13", B + 100, out=False)
    last = [("n5", B + 400, "s5", "elsewhere", 70.0)]
    with Workspace(tmp_path / "i.duckdb") as ws:
        fill(ws, first, batch_id=1)
        run(ws, SETTINGS)
        assert _marker(ws) == [("1",)]
        assert len(_sg_alerts(ws)) == 2  # s5 -> {m12, m13, m14} -> k5 and the bystander
        fill(ws, hub, batch_id=2)
        assert run(ws, SETTINGS, since=T0 + timedelta(minutes=B + 100))["mode"] == "incremental"
        assert _marker(ws) == []
        fill(ws, last, batch_id=3)
        assert run(ws, SETTINGS)["mode"] == "incremental"
        assert _marker(ws) == []
        got = _sg_alerts(ws)
        run(ws, SETTINGS, full=True)
        assert _marker(ws) == [("3",)]
        stored = _hubs(ws)
    with Workspace(tmp_path / "f.duckdb") as ws:
        for i, rows in enumerate([first, hub, last], start=1):
            fill(ws, rows, batch_id=i)
        run(ws, SETTINGS, full=True)
        assert got == _sg_alerts(ws)
        assert len(got) == 1  # the bystander's
        assert stored == _hubs(ws)
