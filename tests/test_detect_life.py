"""Account-life corroboration (queries/detect/corroborate.sql: dc_life, dc_life_ok, dc_yielded).

life_corroborates: an alert needs short-lived members (few payments over a short span, money paid out);
life_members: only short-lived members (and the hub) are published; fans_yield: a fan whose hub is the
sink of a kept scatter-gather in its span gives way to it. All off by default.
"""

from __future__ import annotations

from fundtrace.detect import DetectSettings, run
from fundtrace.workspace import Workspace
from test_detect_helpers import fill

DAY = 24 * 60


def _scatter_gather(old_mids: bool) -> list[tuple]:
    """S pays M0..M3, each passes the money to T. With old_mids, every mid has paid a shop weekly for a year."""
    rows = []
    for i in range(4):
        rows += [(f"a{i}", 400 * DAY + i, "S", f"M{i}", 5000), (f"b{i}", 400 * DAY + 120 + i, f"M{i}", "T", 4950)]
        if old_mids:
            rows += [(f"h{i}-{w}", w * 7 * DAY + i, f"M{i}", "SHOP", 30) for w in range(52)]
    return rows


def _found(ws, typology: str) -> list[tuple]:
    return ws.con.execute(
        "SELECT m.account, m.role FROM alerts a JOIN alert_members m USING (alert_id) WHERE a.typology = ?",
        [typology],
    ).fetchall()


def _detect(tmp_path, rows, only, **settings) -> list[tuple]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "ws.duckdb"
    path.unlink(missing_ok=True)
    path.with_suffix(".duckdb.wal").unlink(missing_ok=True)
    with Workspace(path) as ws:
        fill(ws, rows)
        run(ws, DetectSettings(**settings), only=only, full=True)
        return _found(ws, only[0])


LIFE = {"life_corroborates": ("scatter_gather",), "life_max_txns": 5, "life_max_hours": 720.0}


def test_short_lived_mids_keep_a_scatter_gather(tmp_path):
    found = _detect(tmp_path, _scatter_gather(old_mids=False), ["scatter_gather"], **LIFE)
    assert ("M0", "mule") in found and ("T", "sink") in found


def test_long_lived_mids_do_not_keep_it(tmp_path):
    assert _detect(tmp_path, _scatter_gather(old_mids=True), ["scatter_gather"], **LIFE) == []


def test_off_by_default(tmp_path):
    assert ("M0", "mule") in _detect(tmp_path, _scatter_gather(old_mids=True), ["scatter_gather"])


def test_life_min_counts_members_other_than_the_hub(tmp_path):
    rows = _scatter_gather(old_mids=True)
    rows = [r for r in rows if not r[0].startswith(("h0-", "h1-"))]  # M0 and M1 short-lived again
    rows += [(f"s-{w}", w * 7 * DAY, "S", "SHOP", 30) for w in range(52)]  # the source is not
    assert _detect(tmp_path, rows, ["scatter_gather"], **LIFE, life_min=2)
    assert _detect(tmp_path, rows, ["scatter_gather"], **LIFE, life_min=3) == []


def _fan_in(old_payers: int) -> list[tuple]:
    """Six payers pay H once each over two days; the first ``old_payers`` also pay a shop weekly for a year."""
    rows = [(f"p{i}", 400 * DAY + i * 480, f"P{i}", "H", 900 + 10 * i) for i in range(6)]
    for i in range(old_payers):
        rows += [(f"h{i}-{w}", w * 7 * DAY + i, f"P{i}", "SHOP", 30) for w in range(52)]
    return rows


FAN = {
    "fan_pass_through": False,
    "corroborate": (),
    "hub_corroborates": (),
    "life_max_txns": 5,
    "life_max_hours": 720.0,
}


def test_life_members_publishes_only_short_lived_payers(tmp_path):
    found = _detect(tmp_path, _fan_in(old_payers=2), ["fan_in"], **FAN, life_members=("fan_in",))
    accounts = {a for a, _ in found}
    assert accounts == {"H", "P2", "P3", "P4", "P5"}, found
    every = _detect(tmp_path / "all", _fan_in(old_payers=2), ["fan_in"], **FAN)
    assert {a for a, _ in every} == {"H", "P0", "P1", "P2", "P3", "P4", "P5"}, every


def test_a_fan_in_gives_way_to_a_scatter_gather_on_its_hub(tmp_path):
    # T, the sink of the scatter-gather, is also paid by two more one-off payers: a fan-in of six.
    rows = _scatter_gather(old_mids=False) + [
        ("x0", 400 * DAY + 200, "X0", "T", 4900),
        ("x1", 400 * DAY + 201, "X1", "T", 4900),
    ]
    base = FAN | {"fan_min": 5.0}
    assert _detect(tmp_path, rows, ["fan_in", "scatter_gather"], **base)
    assert _detect(tmp_path / "y", rows, ["fan_in", "scatter_gather"], **base, fans_yield=("fan_in",)) == []


def _gather_scatter(late_in: bool, fresh_payees: bool) -> list[tuple]:
    """G1, G2 pay H; H then pays S1, S2. With late_in, an ordinary payer pays H after the scatter."""
    rows = [("g1", 400 * DAY, "G1", "H", 700), ("g2", 400 * DAY + 60, "G2", "H", 650),
            ("s1", 400 * DAY + 600, "H", "S1", 600), ("s2", 400 * DAY + 660, "H", "S2", 600)]  # fmt: skip
    if late_in:
        rows.append(("late", 400 * DAY + 900, "OTHER", "H", 80))
    if not fresh_payees:
        rows += [(f"o{i}-{w}", w * 7 * DAY + i, f"S{i}", "SHOP", 30) for i in (1, 2) for w in range(52)]
    return rows


GS = {"gather_min": 2.0, "layer_min": 2.0, "gs_balance": False, "corroborate": (), "hub_corroborates": ()}


def test_gather_first_ignores_a_payment_in_after_the_scatter(tmp_path):
    rows = _gather_scatter(late_in=True, fresh_payees=True)
    assert _detect(tmp_path, rows, ["gather_scatter"], **GS) == []
    found = _detect(tmp_path / "g", rows, ["gather_scatter"], **GS, gs_gather_first=True)
    assert ("H", "hub") in found and ("S2", "sink") in found and ("OTHER", "source") not in found, found


def test_life_sinks_needs_a_fresh_payee(tmp_path):
    life = GS | LIFE | {"life_corroborates": ("gather_scatter",), "life_sinks": ("gather_scatter",)}
    assert _detect(tmp_path, _gather_scatter(late_in=False, fresh_payees=True), ["gather_scatter"], **life)
    assert _detect(tmp_path / "o", _gather_scatter(late_in=False, fresh_payees=False), ["gather_scatter"], **life) == []
    del life["life_sinks"]
    assert _detect(tmp_path / "n", _gather_scatter(late_in=False, fresh_payees=False), ["gather_scatter"], **life)


def test_a_fan_with_few_layering_counterparties_does_not_give_way(tmp_path):
    # T is the sink of the scatter-gather (M0..M3) and also paid by six unrelated one-off payers.
    rows = _scatter_gather(old_mids=False) + [(f"x{i}", 400 * DAY + 200 + i, f"X{i}", "T", 4900) for i in range(6)]
    base = FAN | {"fan_min": 5.0, "fans_yield": ("fan_in",)}
    assert _detect(tmp_path, rows, ["fan_in", "scatter_gather"], **base, fans_yield_share=0.5)  # 4 of 10
    assert _detect(tmp_path / "y", rows, ["fan_in", "scatter_gather"], **base, fans_yield_share=0.4) == []


SG_G3 = (
    "SELECT count(*) FROM alerts JOIN alert_members USING (alert_id) "
    "WHERE typology = 'scatter_gather' AND account = 'g3m0'"
)


def test_incremental_equals_full_with_life_rules(tmp_path):
    from dataclasses import replace

    from test_detect_helpers import snapshot
    from test_detect_incremental import SETTINGS, _world

    settings = replace(
        SETTINGS, life_corroborates=("fan_in", "scatter_gather", "gather_scatter"), life_sinks=("gather_scatter",),
        life_members=("fan_in",), fans_yield=("fan_in", "fan_out"), gs_gather_first=True, gather_min=2.0,
        life_max_txns=6, life_max_hours=48.0,
    )  # fmt: skip
    cut = 8 * 1440
    rows = _world(4, boundary=cut)
    first, second = [r for r in rows if r[1] < cut], [r for r in rows if r[1] >= cut]
    # the mules of a first-batch scatter-gather pay again and again in the second: no longer short-lived
    second += [(f"z{m}-{i}", cut + 60 * i, f"g3m{m}", f"n{i}", 50) for m in range(4) for i in range(8)]
    with Workspace(tmp_path / "inc.duckdb") as ws:
        fill(ws, first, batch_id=1)
        run(ws, settings)
        kept = ws.con.execute(SG_G3).fetchall()[0][0]
        fill(ws, second, batch_id=2)
        assert run(ws, settings)["mode"] == "incremental"
        got = snapshot(ws)
        gone = ws.con.execute(SG_G3).fetchall()[0][0]
    with Workspace(tmp_path / "full.duckdb") as ws:
        fill(ws, first, batch_id=1)
        fill(ws, second, batch_id=2)
        full = run(ws, settings, full=True)
        expected = snapshot(ws)
    assert got == expected
    assert {"fan_in", "scatter_gather"} <= set(full["alerts"])
    assert kept > 0 and gone == 0
