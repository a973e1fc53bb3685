"""A dense batch (its touched accounts hold nearly every payment of the window) is recomputed unscoped.

When the touched accounts' payments are at least ``DENSE_SHARE`` of the prepared payments, an incremental
run recomputes every windowed family over every payment of its window and replaces all its alerts from its
cutoff, as a full run of that window would; otherwise the one-account families read only the touched
accounts' payments and the families with a scope only their key accounts'. Either way the stored result
(published and raw alerts, members, evidence) must equal a full rerun. Each test checks which branch ran
(the runner logs its decision), so a decision that goes the other way fails here too.
"""

from __future__ import annotations

import logging
import random

import pytest

import fundtrace.detect as detect
from fundtrace.detect import run
from fundtrace.workspace import Workspace
from test_detect_helpers import fill, snapshot
from test_detect_incremental import SETTINGS, _world


def _raw(ws) -> tuple:
    con = ws.con
    return (
        con.execute(
            "SELECT alert_id, typology, round(score, 9), start_ts, end_ts, amount, n_accounts, n_txns, summary "
            "FROM detect_raw_alerts ORDER BY ALL"
        ).fetchall(),
        con.execute("SELECT * FROM detect_raw_members ORDER BY ALL").fetchall(),
        con.execute("SELECT * FROM detect_raw_evidence ORDER BY ALL").fetchall(),
    )


def _sparse():
    """Injected patterns among 1,500 ordinary payments; the new batch is a handful of payments."""
    rows = _world(4)
    first = [r for r in rows if r[1] < 9 * 1440]
    second = [r for r in rows if r[1] >= 9 * 1440][:8]
    return first, second


def _dense():
    """Every ordinary account busy every hour (7,000 payments among 150 accounts in ten days): a day's batch
    touches all of them, and they hold nearly every payment of the window."""
    rows = _world(4, noise=7000)
    return [r for r in rows if r[1] < 9 * 1440], [r for r in rows if r[1] >= 9 * 1440]


def _runs(tmp_path, first, second, caplog) -> tuple:
    """The stored results of an incremental run after ``second`` and of a full rerun, and the decision logged."""
    with Workspace(tmp_path / "inc.duckdb") as ws:
        fill(ws, first, batch_id=1)
        assert run(ws, SETTINGS)["mode"] == "full"
        fill(ws, second, batch_id=2)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="fundtrace.detect"):
            inc = run(ws, SETTINGS)
        assert inc["mode"] == "incremental"
        got = snapshot(ws), _raw(ws)
    with Workspace(tmp_path / "full.duckdb") as ws:
        fill(ws, first, batch_id=1)
        fill(ws, second, batch_id=2)
        full = run(ws, SETTINGS, full=True)
        expected = snapshot(ws), _raw(ws)
    assert len(expected[0][0]) > 20 and {"fan_in", "cycle", "scatter_gather", "structuring"} <= set(full["alerts"])
    (decision,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("touched accounts' payments")]
    return got, expected, decision.rsplit("(", 1)[1].rstrip(")")


def _check(tmp_path, first, second, caplog) -> str:
    """The incremental run stores what a full rerun stores; returns its decision (dense or scoped)."""
    got, expected, decision = _runs(tmp_path, first, second, caplog)
    assert got == expected
    return decision


@pytest.mark.parametrize("share", [None, 0.0])
def test_sparse_batch(tmp_path, caplog, monkeypatch, share):
    """A small batch is scoped by default; forced unscoped (share 0), the result is the same."""
    if share is not None:
        monkeypatch.setattr(detect, "DENSE_SHARE", share)
    decision = _check(tmp_path, *_sparse(), caplog)
    assert decision == ("scoped" if share is None else "dense")


@pytest.mark.parametrize("share", [None, 2.0])
def test_dense_batch(tmp_path, caplog, monkeypatch, share):
    """A batch that touches every busy account is recomputed unscoped by default; forced scoped (a share no
    batch reaches), the result is the same."""
    if share is not None:
        monkeypatch.setattr(detect, "DENSE_SHARE", share)
    decision = _check(tmp_path, *_dense(), caplog)
    assert decision == ("dense" if share is None else "scoped")


def test_replacing_everything_from_narrowed_payments_is_caught(tmp_path, caplog, monkeypatch):
    """The wrong half of a decision: the one-account families read only the touched accounts' payments but
    replace every alert from their cutoff. Alerts of accounts the batch did not touch are then lost, and the
    comparison with a full rerun shows it (so the tests above can fail)."""
    monkeypatch.setattr(detect._Keys, "touched", staticmethod(lambda fam, dense=False: None))
    first, second = _sparse()
    rng = random.Random(3)
    second = second + [(f"late{i}", 9 * 1440 + 60 + i, f"n{rng.randrange(150)}", "zz", 20.0) for i in range(3)]
    got, expected, decision = _runs(tmp_path, first, second, caplog)
    assert decision == "scoped"
    assert got != expected
    assert set(got[1][0]) < set(expected[1][0])  # raw alerts of untouched accounts were lost, none made up


def test_dense_batch_some_typologies_only(tmp_path, caplog):
    """Only one-account families wanted: the prepared payments are kept for them when the batch is dense."""
    first, second = _dense()
    wanted = ["structuring", "fan_in", "fan_out", "new_account_burst", "dormant_active"]
    with Workspace(tmp_path / "inc.duckdb") as ws:
        fill(ws, first, batch_id=1)
        run(ws, SETTINGS, only=wanted)
        fill(ws, second, batch_id=2)
        with caplog.at_level(logging.INFO, logger="fundtrace.detect"):
            assert run(ws, SETTINGS, only=wanted)["mode"] == "incremental"
        got = snapshot(ws), _raw(ws)
    with Workspace(tmp_path / "full.duckdb") as ws:
        fill(ws, first, batch_id=1)
        fill(ws, second, batch_id=2)
        full = run(ws, SETTINGS, only=wanted, full=True)
        expected = snapshot(ws), _raw(ws)
    assert got == expected and {"structuring", "fan_in"} <= set(full["alerts"])
    assert any(r.getMessage().endswith("(dense)") for r in caplog.records)
