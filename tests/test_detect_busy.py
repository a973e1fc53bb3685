"""busy_in: without account kinds, an account paid many times that keeps its money is commerce, not a sink.

A mule M forwards a victim's 5,000 to S (times in minutes after T0, tests/test_detect_helpers.py). S is paid by
ordinary customers C0.. as well and keeps everything: with busy_in = 5 it is a shop once five or more payments
reached it over its history, and is no longer listed as the pass-through alert's sink.
"""

from __future__ import annotations

import pytest

from fundtrace.detect import DetectSettings, run
from fundtrace.workspace import Workspace
from test_detect_helpers import fill, full_state, incremental_state, snapshot

MULE = [("v", 0, "V", "M", 5000), ("m", 30, "M", "S", 4900)]
SETTINGS = DetectSettings(busy_in=5)


def _customers(n: int, start: int = 0, minute: int = 600) -> list[tuple]:
    return [(f"c{i}", minute + i, f"C{i}", "S", 20) for i in range(start, start + n)]


def _members(ws: Workspace) -> set[tuple[str, str]]:
    rows = ws.con.execute(
        "SELECT m.account, m.role FROM alert_members m JOIN alerts a USING (alert_id) WHERE a.typology = 'pass_through'"
    ).fetchall()
    return set(rows)


@pytest.mark.parametrize(
    ("customers", "registry", "sink_listed"),
    [
        (3, None, True),  # four payments in: not busy
        (4, None, False),  # five: a busy account that keeps its money, a shop
        (40, None, False),
        (40, {"X": "merchant"}, True),  # the registry names commerce by kind: behaviour does not stand in
        (40, {"X": "personal"}, False),  # a registry without an innocent kind says nothing
    ],
)
def test_busy_account_that_keeps_its_money_is_no_sink(tmp_path, customers, registry, sink_listed):
    accounts = [{"account": a, "kind": k} for a, k in (registry or {}).items()]
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, MULE + _customers(customers), accounts=accounts)
        result = run(ws, SETTINGS, full=True)
        assert ("M", "mule") in _members(ws)
        assert (("S", "sink") in _members(ws)) is sink_listed
        assert any("busy_in" in n for n in result["notes"]) is (not registry or "merchant" not in registry.values())


def test_a_sink_that_gets_busy_is_dropped_by_an_incremental_run(tmp_path):
    """The fifth payment to S arrives in a later batch, four weeks later (no window of the alert reaches it, so the
    alert is not recomputed): it is judged again and loses its sink, as in a full rerun."""
    batches = [MULE + _customers(3), _customers(1, start=3, minute=40000), [("x", 40100, "Y", "Z", 50)]]
    for upto in (2, 3):
        full = full_state(tmp_path / f"full{upto}.duckdb", batches[:upto], SETTINGS)
        incr, _ = incremental_state(tmp_path / f"incr{upto}.duckdb", batches[:upto], SETTINGS)
        assert incr == full
    with Workspace(tmp_path / "incr3.duckdb") as ws:
        assert _members(ws) == {("V", "source"), ("M", "mule")}


def test_a_busy_account_that_passes_money_through_stays(tmp_path):
    """A busy mule (money out again) is no shop: its own alert and its sink stay."""
    rows = MULE + _customers(6) + [("out", 700, "S", "K", 5000)]
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows)
        run(ws, SETTINGS, full=True)
        assert ("S", "sink") in _members(ws)
        assert snapshot(ws)[0]


# H is paid three times just under the 50,000 threshold (structuring), and by ordinary customers too
STRUCTURED = [(f"s{i}", 60 * i, f"P{i}", "H", 48000) for i in range(3)]


def _typologies(ws: Workspace) -> list[str]:
    return [t for (t,) in ws.con.execute("SELECT typology FROM alerts ORDER BY 1").fetchall()]


@pytest.mark.parametrize(
    ("customers", "registry", "kept"),
    [(1, None, True), (2, None, False), (2, {"X": "merchant"}, True)],  # five payments in: a busy hub
)
def test_an_alert_whose_hub_is_busy_and_keeps_its_money_is_commerce(tmp_path, customers, registry, kept):
    rows = STRUCTURED + [(f"h{i}", 600 + i, f"C{i}", "H", 20) for i in range(customers)]
    accounts = [{"account": a, "kind": k} for a, k in (registry or {}).items()]
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows, accounts=accounts)
        run(ws, SETTINGS, full=True)
        assert _typologies(ws) == (["structuring"] if kept else [])


def test_a_hub_that_gets_busy_loses_its_alert_in_an_incremental_run(tmp_path):
    batches = [STRUCTURED + [("h0", 600, "C0", "H", 20)], [("h1", 40000, "C1", "H", 20)]]
    full = full_state(tmp_path / "full.duckdb", batches, SETTINGS)
    incr, _ = incremental_state(tmp_path / "incr.duckdb", batches, SETTINGS)
    assert incr == full and full[0] == []


def test_totals_of_an_older_workspace_get_their_counts(tmp_path):
    """detect_in_totals without n_in (a workspace detected before busy_in): the next run sums the totals again."""
    batches = [MULE + _customers(3), _customers(1, start=3, minute=40000)]
    full = full_state(tmp_path / "full.duckdb", batches, SETTINGS)

    def drop_counts(ws):
        ws.con.execute("ALTER TABLE detect_in_totals DROP COLUMN n_in").fetchall()

    incr, _ = incremental_state(tmp_path / "incr.duckdb", batches, SETTINGS, before_last=drop_counts)
    assert incr == full
    with Workspace(tmp_path / "incr.duckdb") as ws:
        assert ws.con.execute("SELECT n_in FROM detect_in_totals WHERE acct = account_key('b', 'S')").fetchall() == [
            (5,)
        ]
