"""Preparing payments in time slices gives exactly the rows of one wide prepare.

An incremental run prepares the payments from the latest context the window families can have, and the
slice before it only when a changed pass-through episode widens a family's context
(``queries/detect/prep.sql`` with ``ctx_to``). A holder's own transfer is kept or dropped by the payments
around it (a dwell window either side), which may lie in the other slice: the rows must not depend on
where the slices are cut.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta

import pytest

import fundtrace.detect as detect
from fundtrace.detect import DetectSettings
from fundtrace.detect.sqlfamilies import prepare
from fundtrace.engine.duckdb import DuckDBEngine
from fundtrace.workspace import Workspace
from test_detect_cycles_incremental import _random_payments
from test_detect_helpers import T0, fill, snapshot
from test_detect_incremental import SETTINGS as INC_SETTINGS

SETTINGS = DetectSettings(dwell_hours=6)
# the windowed families but the one-account ones, whose wider contexts would make the first prepare reach further back
ONLY = [
    "pass_through",
    "chain",
    "stacked",
    "fan_in",
    "fan_out",
    "scatter_gather",
    "gather_scatter",
    "bipartite",
    "cycle",
]
# short windows; cycles as in tests/test_detect_cycles_incremental.py (through pass-through accounts, degree cap)
INC = dataclasses.replace(
    INC_SETTINGS, cycle_max_degree=18, cycle_pass_through_only=True, cycle_max_len=4, corroborate=("pass_through",)
)
COLS = "txn_id, t, src_id, dst_id, amt, cash_out"


def _holder_world(seed: int, cuts=()):
    """Holders with three accounts each, outsiders, and money that transits a holder (in from an outsider,
    one own transfer, out to an outsider) at random times and across each of ``cuts``; plus noise.
    Minutes after T0."""
    rng = random.Random(seed)
    accounts = [{"account": f"h{h}a{k}", "holder_id": f"H{h}"} for h in range(8) for k in range(3)]
    rows, n = [], 0

    def add(t, s, d, a, channel="transfer"):
        nonlocal n
        rows.append((f"p{n:05d}", t, s, d, round(a, 2), channel))
        n += 1

    for _ in range(800):  # noise between everyone, own transfers included
        s, d = rng.sample([a["account"] for a in accounts] + [f"o{i}" for i in range(30)], 2)
        add(rng.randrange(6 * 1440), s, d, rng.uniform(50, 3000))
    for j in range(40):  # money transiting a holder: in, own transfer, out, each a few hours apart
        h, t0, a = rng.randrange(8), rng.randrange(6 * 1440 - 900), rng.uniform(4000, 9000)
        add(t0, f"o{rng.randrange(30)}", f"h{h}a0", a)
        add(t0 + rng.randrange(30, 150), f"h{h}a0", f"h{h}a1", a * 0.98)
        add(t0 + rng.randrange(160, 330), f"h{h}a1", f"o{rng.randrange(30)}", a * 0.96, "atm" if j % 2 else "transfer")
    for j, c in enumerate(cuts):  # the money in before the cut, the own transfer after it; and the other way
        add(c - 60, "o1", f"h{j % 8}a0", 5000)
        add(c + 30, f"h{j % 8}a0", f"h{j % 8}a2", 4900)
        add(c + 120, f"h{j % 8}a2", "o2", 4800)
        add(c - 200, "o3", f"h{(j + 3) % 8}a1", 6000)
        add(c - 30, f"h{(j + 3) % 8}a1", f"h{(j + 3) % 8}a2", 5900)
        add(c + 60, f"h{(j + 3) % 8}a2", "o4", 5800)
    return rows, accounts


def _rows(con, table: str) -> list:
    return sorted(con.execute(f"SELECT {COLS} FROM {table}").fetchall())


def test_slices_give_the_rows_of_one_wide_prepare(tmp_path):
    cuts = (23, 40.5, 61, 97, 130)  # hours after T0: through transits and far from them
    rows, accounts = _holder_world(3, [h * 60 for h in cuts])
    with Workspace(tmp_path / "w.duckdb") as ws:
        fill(ws, rows, accounts=accounts)
        con, engine = ws.con, DuckDBEngine(ws.con)
        start = T0 + timedelta(hours=20)
        prepare(engine, SETTINGS, start)
        con.execute("ALTER TABLE temp.dt_tx RENAME TO wide").fetchall()
        wide = _rows(con, "wide")
        own = con.execute(
            "SELECT count(*) FROM wide w JOIN accounts s ON s.account_id = w.src_id "
            "JOIN accounts d ON d.account_id = w.dst_id WHERE s.holder_id = d.holder_id"
        ).fetchall()[0][0]
        dropped = con.execute(
            "SELECT count(*) FROM transactions tx JOIN accounts s ON s.account_id = tx.src_id "
            "JOIN accounts d ON d.account_id = tx.dst_id WHERE s.holder_id = d.holder_id AND tx.ts >= $s "
            "AND tx.txn_id NOT IN (SELECT txn_id FROM wide)",
            {"s": start},
        ).fetchall()[0][0]
        assert own >= 10 and dropped >= 10  # own transfers both kept (money in transit) and dropped
        for hours in cuts:
            cut = T0 + timedelta(hours=hours)
            prepare(engine, SETTINGS, start, ctx_to=cut)
            con.execute("ALTER TABLE temp.dt_tx RENAME TO early").fetchall()
            prepare(engine, SETTINGS, cut)
            early = _rows(con, "early")
            assert all(r[1] < (cut - datetime(1970, 1, 1)) // timedelta(microseconds=1) for r in early)
            assert sorted(early + _rows(con, "dt_tx")) == wide, f"cut at {hours} h"
            con.execute("DROP TABLE temp.early").fetchall()


@pytest.mark.parametrize("seed", [0, 1])
def test_an_incremental_run_that_prepares_an_earlier_slice_equals_a_full_run(tmp_path, monkeypatch, seed):
    """Late payments change episodes near the pass-through cutoff: the window families' contexts move
    before what was prepared first, the earlier slice is added (holders' transits on both sides of it),
    and every stored alert equals a full rerun's."""
    slices = []
    wide = detect.prepare

    def recording(engine, settings, ctx_from=None, **kw):
        if kw.get("ctx_to") is not None:
            slices.append((ctx_from, kw["ctx_to"]))
        return wide(engine, settings, ctx_from, **kw)

    monkeypatch.setattr(detect, "prepare", recording)
    rng = random.Random(seed)
    own, accounts = _holder_world(seed)
    rows = _random_payments(seed) + own
    cut = 6 * 1440 - 200
    later = [r for r in rows if r[1] >= cut or (r[1] > cut - 600 and rng.random() < 0.3)]
    first = [r for r in rows if r not in later]
    with Workspace(tmp_path / "inc.duckdb") as ws:
        fill(ws, first, batch_id=1, accounts=accounts)
        detect.run(ws, INC, only=ONLY)
        fill(ws, later, batch_id=2)
        result = detect.run(ws, INC, only=ONLY)
        got = snapshot(ws)
    with Workspace(tmp_path / "full.duckdb") as ws:
        fill(ws, first, batch_id=1, accounts=accounts)
        fill(ws, later, batch_id=2)
        detect.run(ws, INC, only=ONLY, full=True)
        expected = snapshot(ws)
    assert result["mode"] == "incremental"
    assert slices and all(a < b for a, b in slices)
    assert got == expected
