"""An incremental run recomputes the one-account families only for the touched accounts (``dx_touched``).

- Fans look only for the fans of the key accounts (the engine's ``key_accounts``): exactly the fans of
  those hubs that a run over every account finds, and no other.
- Structuring reads the touched accounts' payments through a view of every prepared payment
  (``_TOUCHED_VIEW``), so the copy of their payments (``dt_touched``) starts at the other families'
  contexts: a structuring alert whose first payments lie before that start still comes out as a full run's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

import fundtrace.detect as detect
from fundtrace.detect import DetectSettings
from fundtrace.detect.sqlfamilies import detect_fans, prepare, run_query
from fundtrace.engine import DuckDBEngine
from fundtrace.workspace import Workspace
from test_detect_fans_prune import _rows
from test_detect_helpers import fill, full_state, incremental_state
from test_detect_incremental import SETTINGS, _world

FANS = replace(
    DetectSettings(), dwell_hours=1.0, keep_max=0.3, over_max=0.3, fan_window_hours=2.0, fan_min=3,
    fan_max_cv=1.0, fan_min_one_shot=0.3,
)  # fmt: skip


def _by_hub(det) -> dict[int, tuple]:
    """Each fan alert (with its members and evidence) by its hub."""
    hubs = {m["alert_id"]: m["account_id"] for m in det.members.to_pylist() if m["role"] == "hub"}
    out: dict[int, list] = {}
    for a in det.alerts.to_pylist():
        members = sorted(
            (m["account_id"], m["role"]) for m in det.members.to_pylist() if m["alert_id"] == a["alert_id"]
        )
        evidence = sorted(e["txn_id"] for e in det.evidence.to_pylist() if e["alert_id"] == a["alert_id"])
        out.setdefault(hubs[a["alert_id"]], []).append(
            (a["alert_id"], round(a["score"], 9), a["start_ts"], members, evidence)
        )
    return {k: tuple(sorted(v)) for k, v in out.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fans_of_the_key_accounts_only(tmp_path, seed):
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, _rows(seed))
        engine = DuckDBEngine(ws.con)
        prepare(engine, FANS)
        run_query(engine, "detect_pass_through", FANS)
        every = _by_hub(detect_fans(engine, FANS))
        assert len(every) >= 4
        keys = sorted(every)[::2] + [h for h in range(10**6, 10**6 + 3)]  # half the hubs, and accounts without fans
        engine.con.execute("CREATE TEMP TABLE keys AS SELECT unnest($k)::UBIGINT AS account_id", {"k": keys})
        engine.key_accounts = "keys"
        keyed = _by_hub(detect_fans(engine, FANS))
    assert keyed == {h: v for h, v in every.items() if h in keys}
    assert set(keyed) < set(every)  # the other hubs' fans are not looked for


def _structuring_world(seed: int, cut: int) -> tuple[list, list]:
    """The incremental tests' world and accounts whose payments just under the threshold start about 100 h
    before the second batch and end in it (minutes): their structuring alerts reach further back than the
    other one-account families' contexts."""
    rows = _world(seed, boundary=cut)
    for k in range(4):
        for j, hours in enumerate((-100 + 3 * k, -90 + 3 * k, 1 + k)):
            rows.append((f"q{k}_{j}", cut + 60 * hours, f"q{k}", f"n{(k + j) % 150}", 46000 + 700 * j))
    return [r for r in rows if r[1] < cut], [r for r in rows if r[1] >= cut]


@pytest.mark.parametrize("dense_share", [2.0, 0.0], ids=["scoped", "dense"])
def test_structuring_before_the_touched_copy(tmp_path, monkeypatch, dense_share):
    monkeypatch.setattr(detect, "DENSE_SHARE", dense_share)
    settings = dataclasses.replace(SETTINGS, structuring_window_hours=120)
    cut = 8 * 1440
    first, second = _structuring_world(3, cut)

    def structuring(ws):
        return ws.con.execute(
            "SELECT a.alert_id, a.start_ts, a.n_txns, m.account FROM alerts a JOIN alert_members m USING (alert_id) "
            "WHERE a.typology = 'structuring' AND m.role = 'hub' ORDER BY 1"
        ).fetchall()

    got, inc = incremental_state(tmp_path / "inc.duckdb", [first, second], settings)
    expected = full_state(tmp_path / "full.duckdb", [first, second], settings)
    assert got == expected
    late = incremental_state(tmp_path / "inc2.duckdb", [first, second], settings, state=structuring)[0]
    assert {row[3] for row in late if row[2] == 3} >= {f"q{k}" for k in range(4)}  # each made whole by the batch
    assert inc["recomputed"].get("structuring", 0) >= 4
