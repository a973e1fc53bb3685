"""Table-driven pass/fail cases per detector: tests/test_detect_cases/<typology>.json.

Each case gives payments (id, minutes after 08:00 on 1 March 2024, payer, payee, amount[, channel]),
optional account registry rows and settings, and whether an alert of the file's typology must be
raised; ``member`` names an account (and its role, and level) the alert must contain.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from fundtrace.detect import DetectSettings, run
from fundtrace.workspace import Workspace
from test_detect_helpers import fill

CASES_DIR = Path(__file__).parent / "test_detect_cases"


def _cases():
    for path in sorted(CASES_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        for case in data["cases"]:
            yield pytest.param(data["typology"], case, id=f"{data['typology']}: {case['name']}")


@pytest.mark.parametrize(("typology", "case"), list(_cases()))
def test_case(tmp_path, typology, case):
    accounts = [
        a | ({"opened_at": datetime.fromisoformat(a["opened_at"])} if a.get("opened_at") else {})
        for a in case.get("accounts", [])
    ]
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, [tuple(r) for r in case["rows"]], accounts=accounts)
        run(ws, DetectSettings(**case.get("settings", {})), only=[typology], full=True)
        found = ws.con.execute(
            "SELECT a.alert_id, m.account, m.role, m.level FROM alerts a JOIN alert_members m USING (alert_id) "
            "WHERE a.typology = ?",
            [typology],
        ).fetchall()
    assert bool(found) == case["expect"], found
    if case["expect"] and "member" in case:
        account, role, *level = case["member"]
        assert any(r[1] == account and r[2] == role and (not level or r[3] == level[0]) for r in found), found


def test_every_typology_with_a_detector_has_cases():
    have = {json.loads(p.read_text())["typology"] for p in CASES_DIR.glob("*.json")}
    from fundtrace.detect import TYPOLOGIES

    assert set(TYPOLOGIES) - have <= {"card_farm_ring"}  # rings have their own tests (tests/test_rings.py)


def test_detectors_release_their_intermediates_and_keep_what_others_read(tmp_path):
    """After a detector has collected its alerts its scratch tables are gone (memory for the next one);
    the prepared payments and the pass-through episodes that later detectors read stay."""
    from fundtrace.detect.sqlfamilies import detect_chains, detect_fans, detect_layering
    from fundtrace.engine import DuckDBEngine

    rows = [("v", 0, "V", "M1", 5000), ("h1", 30, "M1", "M2", 4900), ("h2", 60, "M2", "X", 4800, "atm")]
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows)
        engine = DuckDBEngine(ws.con)
        chains = detect_chains(engine, DetectSettings())
        detect_fans(engine, DetectSettings())
        detect_layering(engine, DetectSettings())
        temp = {r[0] for r in ws.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert {"dt_tx", "pt_hits", "ly_hub"} <= temp
    assert not {t for t in temp if t.startswith(("ch_", "fan_", "sg_", "gs_"))} | {"pt_in", "ly_tx"} & temp
    # the cash-out channel reaches the chain's sentence through dt_tx.cash_out
    assert chains.alerts.num_rows == 1 and "cashed out" in chains.alerts["summary"][0].as_py()


def test_member_names_are_looked_up_once_per_run(tmp_path):
    """collect() names members from ``accounts`` when it knows them, else from the payments; only alert
    members are named (not every account), and a later detector finds its members' names in that cache
    (dx_names). A member that never pays is named from a payment it received."""
    from fundtrace.detect.sqlfamilies import detect_chains, detect_pass_through
    from fundtrace.engine import DuckDBEngine

    rows = [("v", 0, "V", "M1", 5000), ("h1", 30, "M1", "M2", 4900), ("h2", 60, "M2", "X", 4800, "atm"),
            ("o", 90, "P", "Q", 10)]  # fmt: skip
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows)
        engine = DuckDBEngine(ws.con)
        pt = detect_pass_through(engine, DetectSettings())
        named = dict(ws.con.execute("SELECT account, bank FROM dx_names").fetchall())
        chains = detect_chains(engine, DetectSettings())
        after = ws.con.execute("SELECT count(*) FROM dx_names").fetchall()[0][0]
        temp = {r[0] for r in ws.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert after == len(named)  # the second detector added nothing: every name was there
    assert named == {"V": "b", "M1": "b", "M2": "b", "X": "b"}  # the members only; X only ever receives
    assert not {"dx_unnamed", "dx_named_by", "dx_hits", "dx_members"} & temp
    for det in (pt, chains):
        assert det.members.num_rows and set(det.members["bank"].to_pylist()) == {"b"}
        assert set(det.members["account"].to_pylist()) <= {"V", "M1", "M2", "X"}
    assert {"M1", "M2"} <= set(chains.members["account"].to_pylist())

    with Workspace(tmp_path / "ws2.duckdb") as ws:  # the registry knows every member: no pass over payments
        fill(ws, rows, accounts=[{"account": a} for a in ("V", "M1", "M2", "X")])
        pt = detect_pass_through(DuckDBEngine(ws.con), DetectSettings())
        named = {r[0] for r in ws.con.execute("SELECT account FROM dx_names").fetchall()}
    assert named == set(pt.members["account"].to_pylist()) and "P" not in named


def test_member_names_come_from_the_right_side_of_a_payment(tmp_path):
    """A member is named from a payment it made (its payer columns) or, when it never pays, from one it
    received (its payee columns): each account keeps its own bank and number."""
    from fundtrace.detect.sqlfamilies import detect_pass_through
    from fundtrace.engine import DuckDBEngine

    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, [("o", 0, "P", "Q", 10)])
        ws.con.execute(
            "INSERT INTO transactions SELECT id, TIMESTAMP '2024-03-01 09:00' + to_minutes(m), sb, sa, db, da, "
            "account_key(sb, sa), account_key(db, da), amt, 'CNY', ch, 1 FROM (VALUES "
            "('v', 0, 'bank1', 'V', 'bank2', 'M', 5000.0, 'transfer'), "
            "('w', 30, 'bank2', 'M', 'bank3', 'X', 4900.0, 'atm')) AS r(id, m, sb, sa, db, da, amt, ch)"
        ).fetchall()
        det = detect_pass_through(DuckDBEngine(ws.con), DetectSettings())
    names = {(r["account"], r["bank"], r["role"]) for r in det.members.to_pylist()}
    assert names == {("V", "bank1", "source"), ("M", "bank2", "mule"), ("X", "bank3", "sink")}


def test_collect_takes_long_member_and_evidence_tables_like_lists(tmp_path):
    """collect() gives the same Detection for hits with member/evidence lists and for the same hits with
    long member and evidence tables: a member listed twice keeps its most specific role and lowest level,
    evidence is deduplicated, n_accounts and n_txns count distinct ones, names come from the payments."""
    from fundtrace.detect.base import collect
    from fundtrace.engine import DuckDBEngine

    hits = """SELECT * FROM (VALUES
        ('fan_in', 'k1', 0.5, TIMESTAMP '2024-03-01', TIMESTAMP '2024-03-02', 10.0, 'one'),
        ('fan_out', 'k1', 0.7, TIMESTAMP '2024-03-01', TIMESTAMP '2024-03-03', 20.0, 'two'))
        AS h(typology, akey, score, start_ts, end_ts, amount, summary)"""
    members = """SELECT * FROM (VALUES
        ('fan_in', 'k1', account_key('b', 'A'), 'source', NULL), ('fan_in', 'k1', account_key('b', 'A'), 'hub', 2),
        ('fan_in', 'k1', account_key('b', 'B'), 'member', 3), ('fan_in', 'k1', account_key('b', 'B'), 'member', 1),
        ('fan_out', 'k1', account_key('b', 'C'), 'sink', NULL))
        AS m(typology, akey, account_id, role, level)"""
    evidence = """SELECT * FROM (VALUES ('fan_in', 'k1', 't1'), ('fan_in', 'k1', 't2'), ('fan_in', 'k1', 't1'),
        ('fan_out', 'k1', 't3')) AS e(typology, akey, txn_id)"""
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, [("t1", 0, "A", "B", 10), ("t2", 5, "B", "A", 10), ("t3", 9, "A", "C", 20)])
        engine = DuckDBEngine(ws.con)
        for name, sql in (("h", hits), ("m", members), ("e", evidence)):
            engine.materialise(name, sql)
        engine.materialise(
            "lists",
            """SELECT h.*, (SELECT list({'account_id': account_id, 'role': role, 'level': level}) FROM m
                            WHERE m.typology = h.typology AND m.akey = h.akey) AS members,
                      (SELECT list(txn_id) FROM e WHERE e.typology = h.typology AND e.akey = h.akey) AS evidence
               FROM h""",
        )
        long_form, list_form = collect(engine, "h", "m", "e"), collect(engine, "lists")
    for got, want in zip(
        (long_form.alerts, long_form.members, long_form.evidence),
        (list_form.alerts, list_form.members, list_form.evidence),
        strict=True,
    ):
        assert got.equals(want)
    alerts = {r["typology"]: (r["n_accounts"], r["n_txns"]) for r in long_form.alerts.to_pylist()}
    assert alerts == {"fan_in": (2, 2), "fan_out": (1, 1)}
    roles = {(r["account"], r["role"], r["level"]) for r in long_form.members.to_pylist()}
    assert roles == {("A", "hub", 2), ("B", "member", 1), ("C", "sink", None)}
