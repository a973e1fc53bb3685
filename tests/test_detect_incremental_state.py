"""The stored state of incremental detection: pass-through episodes per account and chain hops.

An incremental run recomputes the episodes of the accounts new payments touched (and of their
holders' other accounts), keeps every other stored episode, and walks again only the chains whose walk
reaches a hop that changed. Each case checks the stored raw alerts, episodes and hops against a full
run over the same batches, and that the shortcut was taken.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from fundtrace.detect import _can_wake, run
from fundtrace.workspace import Workspace
from test_detect_helpers import T0, fill, full_state, incremental_state, snapshot
from test_detect_incremental import SETTINGS

_NOISE = [(f"n{k}", 2000 + 37 * k, f"p{k % 9}", f"p{(k + 4) % 9}", 40.0 + k) for k in range(30)]


def _state(ws) -> tuple:
    """Everything a detection run stores: published and raw alerts, episodes, hops."""
    con = ws.con

    def rows(sql: str) -> list:
        return con.execute(sql).fetchall()

    return (
        snapshot(ws),
        rows(
            "SELECT alert_id, typology, round(score, 9), start_ts, end_ts, amount, n_accounts, n_txns, summary "
            "FROM detect_raw_alerts ORDER BY ALL"
        ),
        rows("SELECT * FROM detect_raw_members ORDER BY ALL"),
        rows("SELECT * FROM detect_raw_evidence ORDER BY ALL"),
        rows(
            "SELECT acct, b, n_in, n_out, round(in_amt, 4), round(out_amt, 4), first_in, last_in, last_out, "
            "round(score, 9) FROM detect_pt_hits ORDER BY ALL"
        ),
        rows("SELECT * FROM detect_chain_hops ORDER BY ALL"),
    )


def _full(path, batches, accounts=None) -> tuple:
    return full_state(path, batches, SETTINGS, _state, accounts)


def _incremental(path, batches, accounts=None, before_last=None) -> tuple[tuple, dict]:
    return incremental_state(path, batches, SETTINGS, _state, accounts, before_last)


def _key(ws, account: str) -> int:
    return ws.con.execute("SELECT account_key('b', ?)", [account]).fetchall()[0][0]


def _raw(state: tuple, typology: str) -> list:
    return [a for a in state[1] if a[1] == typology]


def test_a_chain_extended_by_a_later_batch(tmp_path):
    first = [("c0", 0, "v", "m1", 5000.0), ("c1", 30, "m1", "m2", 4900.0), ("c2", 60, "m2", "m3", 4800.0)]
    later = [("c3", 90, "m3", "m4", 4700.0), ("c4", 120, "m4", "z", 4600.0)]
    got, result = _incremental(tmp_path / "i.duckdb", [first + _NOISE, later])
    expected = _full(tmp_path / "f.duckdb", [first + _NOISE, later])
    assert got == expected
    (chain,) = _raw(expected, "chain")
    assert chain[7] == 5  # the root's payment and four hops
    assert {e[1] for e in expected[3] if e[0] == chain[0]} == {"c0", "c1", "c2", "c3", "c4"}
    assert result["recomputed"]["chain"] == 1
    assert len(expected[5]) == 4  # hops through m1, m2, m3 and m4


def test_only_chains_reaching_a_changed_hop_are_walked_again(tmp_path):
    """A chain far from the new payments keeps its stored alert; the walk starts from the changed hops."""
    old = [("a0", 0, "u", "k1", 8000.0), ("a1", 30, "k1", "k2", 7900.0), ("a2", 60, "k2", "k3", 7800.0)]
    first = [("c0", 2000, "v", "m1", 5000.0), ("c1", 2030, "m1", "m2", 4900.0), ("c2", 2060, "m2", "m3", 4800.0)]
    later = [("c3", 2090, "m3", "m4", 4700.0), ("c4", 2120, "m4", "z", 4600.0)]
    got, result = _incremental(tmp_path / "i.duckdb", [old + first + _NOISE, later])
    expected = _full(tmp_path / "f.duckdb", [old + first + _NOISE, later])
    assert got == expected
    assert len(_raw(expected, "chain")) == 2
    assert result["recomputed"]["chain"] == 1  # only the chain the new hops extend


def test_a_stored_episode_invalidated_by_a_late_payment(tmp_path):
    """A late payment out of a mule breaks its episode (more left than came in): the episode, its
    pass-through alert, its hops and the chain through it go, as in a full run."""
    first = [
        ("c0", 0, "v", "m1", 5000.0), ("c1", 30, "m1", "m2", 4900.0), ("c2", 60, "m2", "m3", 4800.0),
        ("c3", 90, "m3", "z", 4700.0),
    ]  # fmt: skip
    late = [("x0", 45, "m2", "w", 9000.0)]
    with Workspace(tmp_path / "a.duckdb") as ws:
        fill(ws, first + _NOISE, batch_id=1)
        run(ws, SETTINGS)
        m2 = _key(ws, "m2")
        before = _state(ws)
    assert any(h[0] == m2 for h in before[4]) and _raw(before, "chain")
    got, _ = _incremental(tmp_path / "i.duckdb", [first + _NOISE, late])
    expected = _full(tmp_path / "f.duckdb", [first + _NOISE, late])
    assert got == expected
    assert not any(h[0] == m2 for h in expected[4])
    assert not any(h[4] == m2 for h in expected[5])
    assert {a[0] for a in _raw(expected, "chain")} < {a[0] for a in _raw(before, "chain")} or not _raw(
        expected, "chain"
    )


def test_episodes_of_untouched_accounts_are_left_alone(tmp_path):
    """The stored episodes of accounts no new payment touches are kept as stored; those of touched
    accounts from the pass-through cutoff on are recomputed (a stored value changed by hand shows which)."""
    first = [
        ("a0", 0, "v1", "A", 3000.0), ("a1", 40, "A", "w1", 2950.0),  # A passes money through, early on
        ("b0", 1000, "v2", "B", 2000.0), ("b1", 1040, "B", "w2", 1960.0),  # B too, later
    ]  # fmt: skip
    later = [("b2", 1100, "v3", "B", 700.0), ("b3", 1130, "B", "w3", 690.0)]

    def tamper(ws):
        ws.con.execute("UPDATE detect_pt_hits SET score = -1").fetchall()

    got, _ = _incremental(tmp_path / "i.duckdb", [first + _NOISE, later], before_last=tamper)
    expected = _full(tmp_path / "f.duckdb", [first + _NOISE, later])
    with Workspace(tmp_path / "i.duckdb") as ws:
        a, b = _key(ws, "A"), _key(ws, "B")
    scores = {h[0]: h[9] for h in got[4]}
    assert scores[a] == -1  # untouched: the stored episode as it was
    assert scores[b] > 0  # touched: recomputed (and now holds the later payments)
    assert got[:4] == expected[:4]  # the alerts do not depend on the tampered score
    assert {h[0]: h[3] for h in expected[4]}[b] == 2  # B's episode counts both payments out


def test_a_holders_other_account_counts_as_touched(tmp_path):
    """h1 -> h2 is a transfer between one holder's accounts: evidence only when the money transits the holder.
    A later payment out of h2 makes it so, which gives h1 (untouched by the batch) a pass-through episode."""
    accounts = [{"account": "h1", "holder_id": "H"}, {"account": "h2", "holder_id": "H"}]
    first = [("h0", 0, "v", "h1", 1000.0), ("h1", 10, "h1", "h2", 990.0)]
    later = [("h2", 30, "h2", "z", 980.0)]
    got, _ = _incremental(tmp_path / "i.duckdb", [first + _NOISE, later], accounts)
    expected = _full(tmp_path / "f.duckdb", [first + _NOISE, later], accounts)
    assert got == expected
    with Workspace(tmp_path / "f.duckdb") as ws:
        h1 = _key(ws, "h1")
    assert any(h[0] == h1 for h in expected[4])


def test_dormant_accounts_need_payments_spanning_the_dormancy(tmp_path):
    """With less history than dormant_days no account can wake up: the incremental run skips the detector's
    scan of earlier payments and stores what a full run stores; with enough history the detector runs."""
    first = [("c0", 0, "v", "m1", 5000.0), ("c1", 30, "m1", "m2", 4900.0)] + _NOISE
    later = [(f"q{j}", 4000 + 20 * j, "q", f"p{j}", 900.0) for j in range(5)]
    long_quiet = dataclasses.replace(SETTINGS, dormant_days=30)
    with Workspace(tmp_path / "a.duckdb") as ws:
        fill(ws, first, batch_id=1)
        run(ws, long_quiet)
        fill(ws, later, batch_id=2)
        assert not _can_wake(ws.con, long_quiet) and _can_wake(ws.con, SETTINGS)
        r = run(ws, long_quiet)
        assert r["mode"] == "incremental" and r["recomputed"]["dormant_active"] == 0
        got = snapshot(ws)
    with Workspace(tmp_path / "f.duckdb") as ws:
        fill(ws, first, batch_id=1)
        fill(ws, later, batch_id=2)
        run(ws, long_quiet, full=True)
        assert snapshot(ws) == got


def _dormant_world():
    """Accounts waking up after a new batch, each reaching the history before the window another way.

    The second batch starts at minute 6050: dormant_active's cutoff is day 2 and its window starts at day 1.
    a: its last earlier payment is before the window; b: it paid once in the window before the batch, after a
    stored silence that began before the window; c: as b, but silent since its opening; d: paid in the window
    less than dormant_days after its payment before the window, then fell silent until the batch; e: woke up
    and went quiet long before the batch (its stored alert stays); f: opened in the window and silent since, woke
    up before the batch (no payment before the window: its opening stands for one, as in a full run).
    """
    first = [("a0", 100, "a", "q1", 500.0), ("b0", 100, "b", "q2", 500.0), ("b1", 5900, "q3", "b", 900.0),
             ("c1", 5900, "q4", "c", 800.0), ("d0", 1300, "d", "q5", 100.0), ("d1", 3000, "q6", "d", 200.0),
             ("e0", 10, "e", "q7", 50.0)]  # fmt: skip
    first += [(f"e{j + 1}", 3000 + 10 * j, "e", f"q{j}", 700.0) for j in range(4)]
    first += [(f"f{j}", 5400 + 10 * j, "f", f"q{j}", 600.0) for j in range(3)]
    later = [("fn0", 6100, "f", "r0", 80.0)]
    for acct in "abcd":
        later += [(f"{acct}n{j}", 6050 + 40 * j, acct, f"r{j}", 1200.0 + j) for j in range(4)]
    accounts = [{"account": a, "opened_at": T0 - timedelta(days=30)} for a in "abde"]
    accounts += [{"account": "c", "opened_at": T0 + timedelta(minutes=200)}]
    accounts += [{"account": "f", "opened_at": T0 + timedelta(minutes=2500)}]
    return first + _NOISE, later, accounts


def test_dormant_history_comes_from_the_stored_state(tmp_path, monkeypatch):
    """An incremental run reads the history before dormant_active's window from each account's stored last
    payment and stored silences, not from every earlier payment, and stores what a full run stores."""
    import fundtrace.detect as detect

    first, later, accounts = _dormant_world()
    calls = []

    def spy(engine, settings, stored_history=False):
        calls.append(stored_history)
        return real(engine, settings, stored_history)

    real = detect._dormant
    monkeypatch.setattr(detect, "_dormant", spy)
    got, r = _incremental(tmp_path / "i.duckdb", [first, later], accounts)
    assert calls == [True] and r["recomputed"]["dormant_active"] == 5
    with Workspace(tmp_path / "i.duckdb") as ws:
        stored = _dormant_state(ws)
        names = {_key(ws, a): a for a in "abcdef"}
    expected = _full(tmp_path / "f.duckdb", [first, later], accounts)
    assert got == expected
    with Workspace(tmp_path / "f.duckdb") as ws:
        assert stored == _dormant_state(ws)  # the silences, the last payments and the batch they cover
    woke = {(names[a], w // 60_000_000) for a, w, _ in stored[0] if a in names}
    assert woke == {("a", 6050), ("b", 5900), ("c", 5900), ("d", 6050), ("e", 3000), ("f", 5400)}
    assert {
        m[2] for a in _raw(expected, "dormant_active") for m in expected[2] if m[0] == a[0] and m[4] == "hub"
    } == set("abcdef")


def _dormant_state(ws) -> tuple:
    rows = ws.con.execute(
        "SELECT acct, wake_t - epoch_us($t0), prev_t FROM detect_dormant_gaps ORDER BY ALL", {"t0": T0}
    ).fetchall()
    last = ws.con.execute("SELECT * FROM detect_last_pay ORDER BY ALL").fetchall()
    return rows, last, ws.con.execute("SELECT value FROM detect_state WHERE name = 'last_pay_batch'").fetchall()


def test_last_payments_kept_without_first_payments_are_built_again(tmp_path):
    """A workspace whose stored last payments an older version kept (no first payments) has them built again by
    the next run, which then stores what a full run stores."""
    first, later, accounts = _dormant_world()
    with Workspace(tmp_path / "i.duckdb") as ws:
        fill(ws, first, batch_id=1, accounts=accounts)
        run(ws, SETTINGS)
        ws.con.execute("ALTER TABLE detect_last_pay DROP COLUMN first_t").fetchall()
        fill(ws, later, batch_id=2)
        assert run(ws, SETTINGS)["mode"] == "incremental"
        got, stored = _state(ws), _dormant_state(ws)
    assert got == _full(tmp_path / "f.duckdb", [first, later], accounts)
    with Workspace(tmp_path / "f.duckdb") as ws:
        assert stored == _dormant_state(ws)
