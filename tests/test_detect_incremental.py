"""Incremental detection after a new batch stores exactly what a full rerun stores.

Seeded worlds with every windowed typology, rings, bursts of new accounts and dormant accounts waking
up, loaded in several batches (some payments arriving late, dated before the previous batch's end);
after each batch the incremental run must store what a full run over the same batches stores. Links
batches recompute only the rings; accounts batches, payments older than all others and changed
settings force a full run.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta

import pytest

import fundtrace.detect as detect
from fundtrace.detect import DetectSettings, run
from fundtrace.detect.rings import RingSettings
from fundtrace.workspace import Workspace
from test_detect_helpers import T0, fill, snapshot

# Short windows so that ten days of data hold many windows and the incremental run has little to redo.
SETTINGS = DetectSettings(
    dwell_hours=6, fan_window_hours=6, fan_min=4, layer_window_hours=6, cycle_window_hours=12,
    structuring_window_hours=24, burst_hours=24, burst_min_txns=6, dormant_days=2, active_hours=12,
    active_min_txns=3, max_hops=4,
)  # fmt: skip


def _world(seed: int, days: int = 10, boundary: int | None = None, noise: int = 1500):
    """Random traffic with injected chains, fans, cycles, scatter-gather and structuring (minutes, accounts)."""
    rng = random.Random(seed)
    rows, n = [], 0

    def add(t, s, d, a):
        nonlocal n
        rows.append((f"x{n:05d}", t, s, d, round(a, 2)))
        n += 1

    for _ in range(noise):
        s, d = rng.sample(range(150), 2)
        add(rng.randrange(days * 1440), f"n{s}", f"n{d}", rng.uniform(10, 3000))
    for p in range(days * 3):
        t0, a = rng.randrange(days * 1440 - 600), rng.uniform(3000, 30000)
        kind = p % 5
        if kind == 0:  # chain
            for h in range(4):
                add(t0 + 40 * h, f"n{rng.randrange(150)}" if h == 0 else f"c{p}m{h}", f"c{p}m{h + 1}", a * 0.98**h)
        elif kind == 1:  # fan-in
            for j in range(5):
                add(t0 + 30 * j, f"n{rng.randrange(150)}", f"f{p}", 2000 + 50 * j)
            add(t0 + 200, f"f{p}", f"n{rng.randrange(150)}", 10500 * 0.97)  # the mule forwards it
        elif kind == 2:  # cycle
            for h in range(4):
                add(t0 + 60 * h, f"y{p}a{h}", f"y{p}a{(h + 1) % 4}", a * 0.99**h)
        elif kind == 3:  # scatter-gather
            for j in range(4):
                add(t0 + j, f"g{p}s", f"g{p}m{j}", a / 4)
                add(t0 + 90 + j, f"g{p}m{j}", f"g{p}t", a / 4)
        else:  # structuring
            for j in range(3):
                add(t0 + 120 * j, f"s{p}", f"n{rng.randrange(150)}", 47000 + 500 * j)
    if boundary is not None:  # patterns that start before the boundary and finish after it
        b = boundary - 500
        for h in range(4):
            add(b + 200 * h, "bv" if h == 0 else f"bc{h}", f"bc{h + 1}", 9000 * 0.98**h)  # chain
            add(b + 200 * h, f"by{h}", f"by{(h + 1) % 4}", 7000 * 0.99**h)  # cycle
        for j in range(5):
            add(b + 150 * j, f"n{j}", "bf", 2500 + 40 * j)  # fan-in
        add(b + 700, "bf", "n7", 12900)  # ... forwarded
    return rows


@pytest.mark.parametrize("dense_share", [2.0, 0.0], ids=["scoped", "dense"])
@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_equals_full(tmp_path, monkeypatch, seed, dense_share):
    monkeypatch.setattr(detect, "DENSE_SHARE", dense_share)  # both ways: these small worlds are dense by default
    cut = 8 * 1440
    rows = _world(seed, boundary=cut)
    first = [r for r in rows if r[1] < cut]
    late = [r for r in first if r[1] > cut - 300][:5]  # a few payments arrive late, in the second batch
    first = [r for r in first if r not in late]
    second = [r for r in rows if r[1] >= cut] + late

    with Workspace(tmp_path / "inc.duckdb") as ws:
        fill(ws, first, batch_id=1)
        full1 = run(ws, SETTINGS)
        assert full1["mode"] == "full"
        fill(ws, second, batch_id=2)
        inc = run(ws, SETTINGS)
        assert inc["mode"] == "incremental"
        again = run(ws, SETTINGS)
        assert again["mode"] == "up_to_date"
        got = snapshot(ws)
    with Workspace(tmp_path / "full.duckdb") as ws:
        fill(ws, first, batch_id=1)
        fill(ws, second, batch_id=2)
        full = run(ws, SETTINGS, full=True)
        expected = snapshot(ws)
    assert got == expected
    assert len(expected[0]) > 20 and {"chain", "fan_in", "cycle", "scatter_gather", "structuring"} <= set(
        full["alerts"]
    )
    # the incremental run recomputed only part of the alerts
    assert sum(inc["recomputed"].values()) < sum(full["recomputed"].values())


def test_since_recomputes_from_a_time(tmp_path):
    rows = _world(3)
    with Workspace(tmp_path / "a.duckdb") as ws:
        fill(ws, rows)
        run(ws, SETTINGS, full=True)
        before = snapshot(ws)
        result = run(ws, SETTINGS, since=datetime(2024, 3, 7))
        assert result["mode"] == "incremental"
        assert snapshot(ws) == before


def _rich_world(seed: int, days: int = 10, noise: int = 1500):
    """_world plus rings (shared phone card and device, opened together) whose members transact, new
    accounts that burst, dormant accounts that wake up, and one busy hub paid all the time."""
    rng = random.Random(seed)
    rows = _world(seed, days, noise=noise)
    n = len(rows)

    def add(t, s, d, a):
        nonlocal n
        rows.append((f"z{n:05d}", t, s, d, round(a, 2)))
        n += 1

    accounts = []
    for r in range(4):  # rings of four: each member pays normal accounts now and then
        for j in range(4):
            acct = f"r{r}m{j}"
            accounts.append({"account": acct, "opened_at": T0, "phone": f"p{r}", "device": f"d{r}"})
            for _ in range(3):
                add(rng.randrange(days * 1440), acct, f"n{rng.randrange(150)}", rng.uniform(50, 900))
    for k in range(6):  # new accounts opened during the data that move many payments at once
        t0 = rng.randrange(1440, days * 1440 - 1500)
        accounts.append({"account": f"w{k}", "opened_at": T0 + timedelta(minutes=t0)})
        for j in range(7):
            add(t0 + 60 + 90 * j, f"w{k}", f"n{rng.randrange(150)}", rng.uniform(100, 2000))
    for k in range(6):  # dormant accounts: one payment, silence, then a burst
        t0 = rng.randrange(0, days * 1440 - 5000)
        add(t0, f"n{rng.randrange(150)}", f"q{k}", 500)
        wake = t0 + 3500 + rng.randrange(1000)
        for j in range(4):
            add(wake + 45 * j, f"q{k}", f"n{rng.randrange(150)}", rng.uniform(300, 3000))
    for _ in range(200):  # a hub paid by everyone, all the time
        add(rng.randrange(days * 1440), f"n{rng.randrange(150)}", "hub", rng.uniform(10, 500))
    return rows, accounts


def _registry(accounts):
    return [{"account": a["account"], "opened_at": a["opened_at"]} for a in accounts]


def _add_links(ws, batch_id: int, accounts) -> None:
    con = ws.con
    con.execute(
        "INSERT INTO batches VALUES (?, 'links', 'native', 'test', 'x', now()::TIMESTAMP, 0, 0, 0, 0, 0)", [batch_id]
    ).fetchall()
    for a in accounts:
        for kind, key in (("phone_card", "phone"), ("device", "device")):
            if key in a:
                con.execute(
                    "INSERT INTO links VALUES ('b', ?, account_key('b', ?), ?, ?, NULL, ?)",
                    [a["account"], a["account"], kind, a[key], batch_id],
                ).fetchall()


def _batches(rows, cuts, late_minutes, rng):
    """Split rows by time at ``cuts`` (minutes); a few payments before each cut arrive in the next batch."""
    out = [[] for _ in range(len(cuts) + 1)]
    for r in rows:
        k = sum(r[1] >= c for c in cuts)
        if k < len(cuts) and r[1] > cuts[k] - late_minutes and rng.random() < 0.3:
            k += 1  # arrives late, dated before the previous batch's end
        out[k].append(r)
    return out


def _batch_id(i: int) -> int:
    """Transaction batch i (from 1) of the multi-batch tests; the links batch is 2, right after the first."""
    return 1 if i == 1 else i + 1


def _full_snapshot(path, batches, links_at=None, accounts=None, settings=SETTINGS, ring_settings=None):
    with Workspace(path) as ws:
        for i, b in enumerate(batches, start=1):
            fill(ws, b, batch_id=_batch_id(i), accounts=_registry(accounts) if (i == 1 and accounts) else None)
            if links_at is not None and i == links_at:
                _add_links(ws, 2, accounts)
        r = run(ws, settings, full=True, ring_settings=ring_settings)
        return snapshot(ws), r


def _check_batches(tmp_path, seed: int, cuts, late: int, noise: int = 1500) -> dict:
    rows, accounts = _rich_world(seed, noise=noise)
    parts = _batches(rows, cuts, late, random.Random(seed + 100))
    counts: dict[str, int] = {}
    with Workspace(tmp_path / "inc.duckdb") as ws:
        for i, part in enumerate(parts, start=1):
            fill(ws, part, batch_id=_batch_id(i), accounts=_registry(accounts) if i == 1 else None)
            if i == 1:
                _add_links(ws, 2, accounts)
            r = run(ws, SETTINGS)
            assert r["mode"] == ("full" if i == 1 else "incremental")
            got = snapshot(ws)
            expected, full = _full_snapshot(tmp_path / f"full{i}.duckdb", parts[:i], 1, accounts)
            assert got == expected, f"batch {i}: incremental differs from a full run"
            if i > 1:
                for t, c in r["recomputed"].items():
                    counts[t] = counts.get(t, 0) + c
                assert sum(r["recomputed"].values()) < sum(full["recomputed"].values())
    for t in ("chain", "fan_in", "cycle", "scatter_gather", "structuring", "card_farm_ring", "new_account_burst",
              "dormant_active"):  # fmt: skip
        assert full["alerts"].get(t, 0) > 0 or t not in full["recomputed"], t
    assert full["alerts"].get("card_farm_ring", 0) >= 4
    return counts


def test_several_batches_arriving_late_equal_full_runs(tmp_path):
    _check_batches(tmp_path, 5, cuts=[7 * 1440, 9 * 1440], late=600, noise=600)


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "dense_share"), [(6, 2.0), (7, 2.0), (8, None)], ids=["6-scoped", "7-scoped", "8"])
def test_several_batches_more_seeds(tmp_path, monkeypatch, seed, dense_share):
    if dense_share is not None:  # these worlds' batches are dense: the scoped path is taken only when forced
        monkeypatch.setattr(detect, "DENSE_SHARE", dense_share)
    # late payments reach back further than the longest window (chains: (max_hops + 1) dwell windows)
    _check_batches(tmp_path, seed, cuts=[4 * 1440, 6 * 1440, 8 * 1440, 9 * 1440], late=2000)


def test_links_batch_recomputes_only_rings(tmp_path):
    rows, accounts = _rich_world(9, noise=300)
    with Workspace(tmp_path / "a.duckdb") as ws:
        fill(ws, rows, batch_id=1, accounts=_registry(accounts))
        first = run(ws, SETTINGS)
        assert first["alerts"].get("card_farm_ring", 0) == 0
        _add_links(ws, 2, accounts)
        r = run(ws, SETTINGS)
        assert r["mode"] == "incremental" and set(r["recomputed"]) == {"card_farm_ring"}
        assert r["alerts"]["card_farm_ring"] >= 4
        got = snapshot(ws)
        # a payment of a ring member changes the ring's activity: rings are recomputed; other payments leave them
        fill(ws, [("late1", 9 * 1440 + 30, "r0m1", "n3", 777.0)], batch_id=3)
        r = run(ws, SETTINGS)
        assert "card_farm_ring" in r["recomputed"]
        ring_after = snapshot(ws)
        fill(ws, [("late2", 9 * 1440 + 40, "n4", "n5", 55.0)], batch_id=4)
        r = run(ws, SETTINGS)
        assert r["mode"] == "incremental" and "card_farm_ring" not in r["recomputed"]
        final = snapshot(ws)
    expected, _ = _full_snapshot(tmp_path / "f.duckdb", [rows], 1, accounts)
    assert got == expected
    assert ring_after != got  # the ring's evidence, end time and count now hold the late payment
    expected, _ = _full_snapshot(
        tmp_path / "f2.duckdb", [rows + [("late1", 9 * 1440 + 30, "r0m1", "n3", 777.0),
                                         ("late2", 9 * 1440 + 40, "n4", "n5", 55.0)]], 1, accounts)  # fmt: skip
    assert final == expected


@pytest.mark.slow
def test_what_forces_a_full_run(tmp_path):
    rows, accounts = _rich_world(10)
    with Workspace(tmp_path / "a.duckdb") as ws:
        fill(ws, [r for r in rows if r[1] >= 1440], batch_id=1, accounts=_registry(accounts))
        assert run(ws, SETTINGS)["mode"] == "full"
        assert run(ws, SETTINGS)["mode"] == "up_to_date"
        # changed detection or ring settings
        assert run(ws, dataclasses.replace(SETTINGS, fan_min=5))["mode"] == "full"
        assert run(ws, SETTINGS)["mode"] == "full"
        assert run(ws, SETTINGS, ring_settings=RingSettings(min_ring_size=4))["mode"] == "full"
        assert run(ws, SETTINGS)["mode"] == "full"
        # an accounts batch (kinds, holders, opening dates)
        ws.con.execute(
            "INSERT INTO batches VALUES (2, 'accounts', 'native', 'test', 'x', now()::TIMESTAMP, 0, 0, 0, 0, 0)"
        ).fetchall()
        assert run(ws, SETTINGS)["mode"] == "full"
        # payments older than every stored one ("opened while the workspace was watching" moves)
        fill(ws, [r for r in rows if r[1] < 1440], batch_id=3)
        assert run(ws, SETTINGS)["mode"] == "full"
        got = snapshot(ws)
    expected, _ = _full_snapshot(tmp_path / "f.duckdb", [rows], None, accounts)
    assert got == expected


def test_corroboration_totals_follow_new_batches(tmp_path):
    """An account's pass-through share counts money it received in later batches (stored totals)."""
    rows = [("a1", 0, "v1", "m", 1000.0), ("a2", 60, "m", "m2", 980.0), ("a3", 120, "m2", "z", 970.0),
            ("a4", 130, "v2", "m", 1000.0), ("a5", 180, "m", "m2", 990.0), ("a6", 240, "m2", "z2", 960.0)]  # fmt: skip
    later = [(f"g{i}", 3000 + 400 * i, f"p{i}", "m", 5000.0) for i in range(6)]  # m keeps these: share drops
    with Workspace(tmp_path / "a.duckdb") as ws:
        fill(ws, rows, batch_id=1)
        first = run(ws, SETTINGS)
        fill(ws, later, batch_id=2)
        second = run(ws, SETTINGS)
        assert second["mode"] == "incremental"
        totals = dict(ws.con.execute("SELECT acct, in_amt FROM detect_in_totals").fetchall())
        m = ws.con.execute("SELECT account_key('b', 'm')").fetchall()[0][0]
        assert float(totals[m]) == 2000.0 + 6 * 5000.0
        got = snapshot(ws)
    assert first["alerts"].get("pass_through", 0) > 0
    assert second["alerts"].get("pass_through", 0) < first["alerts"]["pass_through"]
    expected, _ = _full_snapshot(tmp_path / "f.duckdb", [rows, later])
    assert got == expected


def test_pass_through_accounts_are_judged_near_the_window(tmp_path):
    """A bipartite layer needs members that pass money through near its window, not anywhere in history.

    Payers that passed money through nine days earlier and now pay the same payees are no layer (a full
    run, which sees those episodes, would otherwise flag what an incremental run reading only its context
    window cannot); payers that received the money just before paying it on are one. An account counts in a
    window when one of its episodes ended at most a dwell window before the window and started before its end.
    """
    rows = []
    for i in range(3):  # three payers pass money through on day 0, then on day 9 pay the same two payees
        rows += [(f"e{i}a", 100 + i, f"v{i}", f"P{i}", 1000.0), (f"e{i}b", 160 + i, f"P{i}", f"w{i}", 990.0)]
    filler = [(f"f{k}", 300 + 700 * k, f"n{k % 7}", f"n{(k + 3) % 7}", 50.0) for k in range(17)]
    t0 = 9 * 1440
    block = [(f"b{i}{q}", t0 + 10 * i + 5 * q, f"P{i}", f"Q{q}", 2000.0) for i in range(3) for q in range(2)]
    block += [(f"o{q}", t0 + 120 + q, f"Q{q}", f"z{q}", 5900.0) for q in range(2)]
    # ... and three payers that receive the money an hour before paying it on to two other payees
    block += [(f"u{i}", t0 - 60 + i, f"u{i}", f"N{i}", 4000.0) for i in range(3)]
    block += [(f"c{i}{q}", t0 + 10 * i + 5 * q, f"N{i}", f"M{q}", 2000.0) for i in range(3) for q in range(2)]
    block += [(f"p{q}", t0 + 130 + q, f"M{q}", f"y{q}", 5900.0) for q in range(2)]
    with Workspace(tmp_path / "a.duckdb") as ws:
        fill(ws, rows + filler, batch_id=1)
        run(ws, SETTINGS)
        fill(ws, block, batch_id=2)
        assert run(ws, SETTINGS)["mode"] == "incremental"
        got = snapshot(ws)
    expected, full = _full_snapshot(tmp_path / "f.duckdb", [rows + filler, block])
    assert full["alerts"].get("bipartite", 0) == 1
    (bipartite,) = [a[0] for a in expected[0] if a[1] == "bipartite"]
    named = {(m[2], m[4]) for m in expected[1] if m[0] == bipartite}
    assert named == {(f"N{i}", "source") for i in range(3)} | {(f"M{q}", "sink") for q in range(2)}
    assert got == expected


def test_some_typologies_only(tmp_path):
    """Families narrowed to their own window still replace the pass-through profile from its own cutoff."""
    rows, accounts = _rich_world(11, noise=400)
    wanted = ["structuring", "new_account_burst", "dormant_active", "fan_in", "fan_out"]
    first, second = [r for r in rows if r[1] < 8 * 1440], [r for r in rows if r[1] >= 8 * 1440]
    with Workspace(tmp_path / "a.duckdb") as ws:
        fill(ws, first, batch_id=1, accounts=_registry(accounts))
        run(ws, SETTINGS, only=wanted)
        fill(ws, second, batch_id=2)
        assert run(ws, SETTINGS, only=wanted)["mode"] == "incremental"
        got = (
            snapshot(ws),
            ws.con.execute(
                "SELECT acct, b, first_ts, round(in_amt, 4) FROM detect_pt_episodes ORDER BY ALL"
            ).fetchall(),
        )
    with Workspace(tmp_path / "f.duckdb") as ws:
        fill(ws, first, batch_id=1, accounts=_registry(accounts))
        fill(ws, second, batch_id=2)
        full = run(ws, SETTINGS, only=wanted, full=True)
        expected = (
            snapshot(ws),
            ws.con.execute(
                "SELECT acct, b, first_ts, round(in_amt, 4) FROM detect_pt_episodes ORDER BY ALL"
            ).fetchall(),
        )
    assert got == expected
    assert {"structuring", "new_account_burst", "dormant_active"} <= set(full["alerts"])


def _sink_world(offset: int, tag: str) -> list[tuple]:
    """A mule forwarding a victim's money to a cash-out sink, paying a small bill to another account within the
    dwell window; its other money also passes through (it does little else)."""
    return [
        (f"{tag}1", offset, f"{tag}v", f"{tag}m", 10000.0),
        (f"{tag}2", offset + 30, f"{tag}m", f"{tag}s", 9600.0),
        (f"{tag}3", offset + 60, f"{tag}m", f"{tag}bill", 45.0),
    ]


def test_sinks_listed_by_the_share_they_received(tmp_path):
    """A pass-through alert lists the sink that received its money, not the one paid a small bill, in a full run
    and after an incremental one (the stored paid shares of unchanged alerts are reused, new ones looked up)."""
    first = _sink_world(100, "a") + _world(5, days=4, noise=300)
    later = _sink_world(4 * 1440 + 100, "b")

    def sinks(ws, tag):
        return {
            r[0]
            for r in ws.con.execute(
                "SELECT m.account FROM alert_members m JOIN alerts a USING (alert_id) "
                "WHERE a.typology = 'pass_through' AND m.role = 'sink' AND m.alert_id IN "
                "(SELECT alert_id FROM alert_members WHERE account = ? AND role = 'mule')",
                [f"{tag}m"],
            ).fetchall()
        }

    with Workspace(tmp_path / "inc.duckdb") as ws:
        fill(ws, first, batch_id=1)
        run(ws, SETTINGS)
        assert sinks(ws, "a") == {"as"}
        looked_up = ws.con.execute("SELECT count(*) FROM detect_sink_paid").fetchall()[0][0]
        fill(ws, later, batch_id=2)
        assert run(ws, SETTINGS)["mode"] == "incremental"
        assert sinks(ws, "a") == {"as"} and sinks(ws, "b") == {"bs"}
        assert ws.con.execute("SELECT count(*) FROM detect_sink_paid").fetchall()[0][0] > looked_up
        got = snapshot(ws)
    with Workspace(tmp_path / "full.duckdb") as ws:
        fill(ws, first, batch_id=1)
        fill(ws, later, batch_id=2)
        run(ws, SETTINGS, full=True)
        assert snapshot(ws) == got


def test_full_rerun_keeps_the_published_tables_definitions(tmp_path):
    """A full run rewrites alerts, alert_members and alert_evidence by dropping and creating them again from
    their catalog definitions: keys, NOT NULL and CHECK constraints must survive, and so must the rows."""
    import duckdb

    rows = _world(3, days=4)
    with Workspace(tmp_path / "w.duckdb") as ws:
        fill(ws, rows, batch_id=1)
        ddl = "SELECT table_name, sql FROM duckdb_tables() WHERE table_name IN ('alerts', 'alert_members', 'alert_evidence') ORDER BY 1"  # noqa: E501
        before = ws.con.execute(ddl).fetchall()
        run(ws, SETTINGS, full=True)
        first = snapshot(ws)
        run(ws, SETTINGS, full=True)
        assert ws.con.execute(ddl).fetchall() == before
        assert snapshot(ws) == first and len(first[2]) > 0
        alert_id, txn_id = first[2][0]
        with pytest.raises(duckdb.ConstraintException):
            ws.con.execute("INSERT INTO alert_evidence VALUES (?, ?)", [alert_id, txn_id])
        with pytest.raises(duckdb.ConstraintException):
            ws.con.execute("UPDATE alerts SET score = 2 WHERE alert_id = ?", [alert_id])
