"""Incremental corroboration: an incremental run judges again only the alerts whose inputs changed.

Besides the alerts it replaced and those with a member whose pass-through standing changed (covered by
``test_detect_incremental.py::test_corroboration_totals_follow_new_batches``), a pass-through alert is judged
again when its mule belongs to a structural alert whose judgement can change: one judged again, or one the
run removed. Each case below leaves the pass-through alert itself untouched, so only that rule unpublishes it.
"""

from __future__ import annotations

from fundtrace.detect import run
from fundtrace.workspace import Workspace
from test_detect_helpers import fill, snapshot
from test_detect_incremental import SETTINGS

# X keeps money of its own (share 0.67: it corroborates, but not alone); Y keeps much more (it does not
# corroborate); W only passes money on. The chain v -> X -> Y -> W -> z has two corroborating mules (X, W), so it
# is kept, and X's pass-through alert (payer v, payee Y: no link of its own) is kept because X is a mule of it.
CHAIN = [
    ("k1", 0, "sx", "X", 5000.0),
    ("k2", 0, "sy", "Y", 50000.0),
    ("c1", 1440, "v", "X", 10000.0),
    ("c2", 1500, "X", "Y", 9800.0),
    ("c3", 1560, "Y", "W", 9600.0),
    ("c4", 1620, "W", "z", 9400.0),
    ("u1", 100, "a", "B", 3000.0),  # an unrelated mule, untouched: not judged again
    ("u2", 160, "B", "c", 2950.0),
]


def _published(ws) -> set[tuple[str, str]]:
    """(typology, mule) of the published chain and pass-through alerts (the mule of a chain: its first)."""
    rows = ws.con.execute(
        "SELECT a.typology, min(m.account) FROM alerts a JOIN alert_members m USING (alert_id) "
        "WHERE m.role = 'mule' AND a.typology IN ('chain', 'pass_through') GROUP BY a.alert_id, a.typology"
    ).fetchall()
    return set(rows)


def _incremental_then_full(tmp_path, later):
    lines: list[str] = []
    with Workspace(tmp_path / "inc.duckdb") as ws:
        fill(ws, CHAIN, batch_id=1)
        run(ws, SETTINGS)
        before = _published(ws)
        fill(ws, later, batch_id=2)
        inc = run(ws, SETTINGS, debug_sql=True, report=lines.append)
        assert inc["mode"] == "incremental"
        raw = ws.con.execute("SELECT count(*) FROM detect_raw_alerts").fetchall()[0][0]
        after = _published(ws)
        got = snapshot(ws)
    with Workspace(tmp_path / "full.duckdb") as ws:
        fill(ws, CHAIN, batch_id=1)
        fill(ws, later, batch_id=2)
        run(ws, SETTINGS, full=True)
        expected = snapshot(ws)
    (scope,) = [int(line.split()[2].replace(",", "")) for line in lines if line.startswith("step dc_scope:")]
    return before, after, got, expected, scope, raw


def test_a_structural_alert_judged_again_takes_its_mules_pass_through_alerts_along(tmp_path):
    """W receives a large payment it keeps: it no longer corroborates, so the chain (judged again: W is its
    member) is no longer kept, and X's untouched pass-through alert loses its link."""
    before, after, got, expected, scope, raw = _incremental_then_full(tmp_path, [("b1", 5760, "q", "W", 100000.0)])
    assert ("pass_through", "X") in before and ("chain", "W") in before
    assert ("pass_through", "X") not in after and ("chain", "W") not in after
    assert got == expected
    assert scope < raw  # judged incrementally, not all again


def test_a_removed_structural_alert_takes_its_mules_pass_through_alerts_along(tmp_path):
    """A late payment into Y that Y keeps ends Y's episode: the chain through it is gone (no new alert names X),
    Y's standing does not change, and X's untouched pass-through alert loses its link."""
    before, after, got, expected, scope, raw = _incremental_then_full(tmp_path, [("L1", 1530, "q", "Y", 60000.0)])
    assert ("pass_through", "X") in before and ("chain", "W") in before
    assert ("pass_through", "X") not in after and ("chain", "W") not in after
    assert got == expected
    assert scope < raw
