"""Helpers for the detection tests: a workspace filled with transactions straight from Python rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from fundtrace.workspace import Workspace

T0 = datetime(2024, 3, 1, 8, 0)


def fill(ws: Workspace, rows: list[tuple], batch_id: int = 1, accounts: list[dict] | None = None) -> None:
    """rows: (txn_id, ts | minutes after T0, src, dst, amount[, channel]); accounts in bank 'b'."""
    data = []
    for r in rows:
        txn, ts, src, dst, amount = r[:5]
        channel = r[5] if len(r) > 5 else "transfer"
        if not isinstance(ts, datetime):
            ts = T0 + timedelta(minutes=float(ts))
        data.append({"txn_id": str(txn), "ts": ts, "src": str(src), "dst": str(dst), "amount": float(amount),
                     "channel": channel})  # fmt: skip
    table = pa.Table.from_pylist(
        data,
        pa.schema([("txn_id", pa.string()), ("ts", pa.timestamp("us")), ("src", pa.string()), ("dst", pa.string()),
                   ("amount", pa.float64()), ("channel", pa.string())]),
    )  # fmt: skip
    con = ws.con
    con.register("_rows", table)
    con.execute(
        "INSERT INTO batches VALUES (?, 'transactions', 'native', 'test', 'x', now()::TIMESTAMP, ?, ?, 0, 0, 0)",
        [batch_id, len(data), len(data)],
    ).fetchall()
    con.execute(
        "INSERT INTO transactions SELECT txn_id, ts, 'b', src, 'b', dst, account_key('b', src), account_key('b', dst), "
        "CAST(amount AS DECIMAL(18, 4)), 'CNY', channel, ? FROM _rows",
        [batch_id],
    ).fetchall()
    con.unregister("_rows")
    for a in accounts or []:
        con.execute(
            "INSERT INTO accounts (bank, account, account_id, holder_id, opened_at, kind, batch_id) "
            "VALUES ('b', ?, account_key('b', ?), ?, ?, ?, ?)",
            [a["account"], a["account"], a.get("holder_id"), a.get("opened_at"), a.get("kind"), batch_id],
        ).fetchall()


def new_workspace(path: Path, rows: list[tuple], accounts: list[dict] | None = None) -> Workspace:
    ws = Workspace(path)
    fill(ws, rows, accounts=accounts)
    return ws


def snapshot(ws: Workspace) -> tuple:
    """The stored detection result, without the detection time."""
    con = ws.con
    alerts = con.execute(
        "SELECT alert_id, typology, round(score, 9), start_ts, end_ts, amount, n_accounts, n_txns, summary "
        "FROM alerts ORDER BY alert_id"
    ).fetchall()
    members = con.execute("SELECT * FROM alert_members ORDER BY alert_id, account_id").fetchall()
    evidence = con.execute("SELECT * FROM alert_evidence ORDER BY alert_id, txn_id").fetchall()
    return alerts, members, evidence


def full_state(path: Path, batches: list[list[tuple]], settings, state=snapshot, accounts=None, **options):
    """``state(ws)`` after loading every batch into a new workspace at ``path`` and one full detect run."""
    from fundtrace.detect import run

    with Workspace(path) as ws:
        for i, rows in enumerate(batches, start=1):
            fill(ws, rows, batch_id=i, accounts=accounts if i == 1 else None)
        run(ws, settings, full=True, **options)
        return state(ws)


def incremental_state(
    path: Path, batches: list[list[tuple]], settings, state=snapshot, accounts=None, before_last=None, **options
) -> tuple:
    """``(state(ws), result)`` after loading the batches one by one into a new workspace at ``path``, a detect run
    after each (full after the first, incremental after the others); ``before_last(ws)`` runs before the last one."""
    from fundtrace.detect import run

    with Workspace(path) as ws:
        result = {}
        for i, rows in enumerate(batches, start=1):
            fill(ws, rows, batch_id=i, accounts=accounts if i == 1 else None)
            if i == len(batches) and before_last:
                before_last(ws)
            result = run(ws, settings, **options)
            assert result["mode"] == ("full" if i == 1 else "incremental")
        return state(ws), result
