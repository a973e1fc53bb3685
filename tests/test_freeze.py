"""The freeze list: amounts never above what is traced or held, spreadsheet safety read back with the csv
module, STOP_PAY/FREEZE/RENEW/UNFREEZE across reruns, and byte-identical output for the same --now."""

from __future__ import annotations

import csv
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrace.export.freeze import COLUMNS, safe_cell
from fundtrace.workspace import Workspace
from test_score import build_world

NOW = "2024-03-10T14:00:00"


@pytest.fixture
def world(cli, tmp_path: Path, db: Path):
    build_world(cli, tmp_path)
    return db


def read(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    with path.open(newline="", encoding=encoding) as f:
        return list(csv.DictReader(f))


def freeze_list(db: Path) -> list[dict]:
    with Workspace(db, read_only=True) as ws:
        return ws.con.sql("SELECT * FROM freeze_list ORDER BY priority").pl().to_dicts()


def test_the_list_names_the_mules_not_the_merchant(world):
    rows = {r["account"]: r for r in freeze_list(world)}
    assert set(rows) == {"M1", "M2"}
    # LIFO: M1's 30,000 out took the latest deposits (C1's f3, C2's f2), so M1 keeps C1's f1 only
    assert rows["M1"]["case_ids"] == "C1" and rows["M2"]["case_ids"] == "C1;C2"
    assert rows["M1"]["stop_pay"] and rows["M1"]["hop_level"] == 1  # fresh victims' money, first level
    assert not rows["M2"]["stop_pay"] and rows["M2"]["hop_level"] == 2
    # M1 received 60,000 and forwarded 30,000; M2 received 30,000 and kept 25,000
    assert rows["M1"]["amount_to_freeze"] == Decimal("30000")
    assert rows["M2"]["amount_to_freeze"] == Decimal("25000")
    assert rows["M1"]["evidence_txn_ids"] == "f1;f3" and rows["M2"]["evidence_txn_ids"] == "f4"
    assert rows["M1"]["priority"] == 1 and rows["M2"]["priority"] == 2


def test_amount_to_freeze_never_above_traced_or_balance(world):
    with Workspace(world, read_only=True) as ws:
        held = dict(ws.con.execute("SELECT account, sum(held_lifo) FROM trace_holdings GROUP BY account").fetchall())
        balances = dict(ws.con.execute("SELECT account, max(balance) FROM trace_holdings GROUP BY account").fetchall())
    for r in freeze_list(world):
        assert r["amount_to_freeze"] <= r["traced_amount"] <= held[r["account"]]
        assert r["amount_to_freeze"] <= r["balance"] <= balances[r["account"]]


@pytest.mark.parametrize("rule", ["poison", "haircut", "fifo", "libr"])
def test_amount_never_above_traced_or_balance_under_every_rule(cli, tmp_path: Path, db: Path, rule):
    build_world(cli, tmp_path, score=False)
    assert cli(f"score --rule {rule}").code == 0
    rows = freeze_list(db)
    assert rows and all(r["rule"] == rule for r in rows)
    for r in rows:
        assert 0 < r["amount_to_freeze"] <= r["traced_amount"]
        assert r["amount_to_freeze"] <= r["balance"]


def test_csv_is_spreadsheet_safe_read_back_with_csv_module(cli, world, tmp_path: Path):
    out = tmp_path / "freeze.csv"
    r = cli(f"freeze --out {out} --now {NOW}")
    assert r.code == 0, r.err
    rows = read(out)
    assert tuple(rows[0]) == COLUMNS
    by_account = {r["account"]: r for r in rows}
    # holder names starting with = and @ are neutralised with a leading quote, the rest kept as is
    assert by_account["M1"]["holder_name"] == "'=cmd|' /C calc'!A0"
    assert by_account["M2"]["holder_name"] == "'@SUM(1+1)"
    for row in rows:
        for name, value in row.items():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (name, value)
        # amounts and scores stay plain numbers
        assert float(row["amount_to_freeze"]) > 0 and float(row["traced_amount"]) > 0
        assert 0 <= float(row["score"]) <= 1 and int(row["hop_level"]) >= 1
        assert row["requested_at"] == "2024-03-10T14:00:00Z"
    assert by_account["M1"]["request_type"] == "STOP_PAY_48H"
    assert by_account["M1"]["expires_at"] == "2024-03-12T14:00:00Z"
    assert by_account["M2"]["request_type"] == "FREEZE"
    assert by_account["M2"]["expires_at"] == "2024-09-09T14:00:00Z"  # 183 days
    assert out.read_bytes()[:3] != b"\xef\xbb\xbf"


def test_safe_cell_rules():
    assert [safe_cell(v) for v in ("=1+1", "+1", "-1", "@A", "\tx", "\rx", "ok", "a=b")] == [
        "'=1+1", "'+1", "'-1", "'@A", "'\tx", "'\rx", "ok", "a=b"
    ]  # fmt: skip
    assert safe_cell(-5) == -5  # numbers are never touched


def test_bom_and_split_by_bank(cli, world, tmp_path: Path):
    out, banks = tmp_path / "f.csv", tmp_path / "banks"
    assert cli(f"freeze --out {out} --now {NOW} --bom --split-by-bank {banks} --dry-run").code == 0
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
    assert [r["account"] for r in read(out, "utf-8-sig")] == ["M1", "M2"]
    assert sorted(p.name for p in banks.iterdir()) == ["freeze_B2.csv", "freeze_B3.csv"]
    assert [r["account"] for r in read(banks / "freeze_B3.csv", "utf-8-sig")] == ["M2"]


def test_rule_option_decides_the_list_under_that_rule(cli, world, tmp_path: Path):
    out = tmp_path / "f.csv"
    r = cli(f"freeze --out {out} --now {NOW} --rule libr --dry-run")
    assert r.code == 0, r.err
    rows = read(out)
    assert rows and {row["rule"] for row in rows} == {"libr"}
    with Workspace(world, read_only=True) as ws:
        held = dict(ws.con.execute("SELECT account, sum(held_libr) FROM trace_holdings GROUP BY 1").fetchall())
    for row in rows:
        assert Decimal(row["amount_to_freeze"]) <= held[row["account"]]
    assert {r["rule"] for r in freeze_list(world)} == {"libr"}


def test_reruns_renew_before_expiry_and_unfreeze_when_no_longer_justified(cli, world, tmp_path: Path):
    def run(now: str) -> dict[str, str]:
        out = tmp_path / f"f-{now[:10]}-{now[11:13]}.csv"
        r = cli(f"freeze --out {out} --now {now}")
        assert r.code == 0, r.err
        return {row["account"]: row["request_type"] for row in read(out)}

    assert run(NOW) == {"M1": "STOP_PAY_48H", "M2": "FREEZE"}
    assert run("2024-03-10T15:00:00") == {"M1": "FREEZE"}  # the stop-payment becomes a freeze; M2 not repeated
    assert run("2024-03-10T16:00:00") == {}  # nothing new: no duplicates
    assert run("2024-08-30T16:00:00") == {"M1": "RENEW", "M2": "RENEW"}  # within 14 days of expiry
    assert run("2024-08-31T16:00:00") == {}
    # the evidence is withdrawn: no account scores high enough any more
    (tmp_path / "fundtrace.toml").write_text("[score]\nmin_score = 1.0\n")
    assert cli("score").code == 0
    assert run("2024-09-01T16:00:00") == {"M1": "UNFREEZE", "M2": "UNFREEZE"}
    assert run("2024-09-02T16:00:00") == {}
    with Workspace(tmp_path / "ws.duckdb", read_only=True) as ws:
        statuses = ws.con.execute(
            "SELECT request_type, status, count(*) FROM freeze_requests GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    assert ("RENEW", "lifted", 2) in statuses and ("UNFREEZE", "lifted", 2) in statuses
    assert not [s for s in statuses if s[1] == "active"]


def test_expired_freeze_is_issued_again(cli, world, tmp_path: Path):
    assert cli(f"freeze --out {tmp_path / 'a.csv'} --now 2024-03-11T00:00:00").code == 0
    assert cli(f"freeze --out {tmp_path / 'b.csv'} --now 2025-01-01T00:00:00").code == 0
    assert {r["account"]: r["request_type"] for r in read(tmp_path / "b.csv")} == {"M1": "FREEZE", "M2": "FREEZE"}


def test_same_workspace_and_now_give_identical_files(cli, world, tmp_path: Path):
    copy = tmp_path / "copy.duckdb"
    shutil.copy(world, copy)
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    assert cli(f"freeze --out {a} --now {NOW}").code == 0
    assert cli(f"freeze --out {b} --now {NOW}", db_path=copy).code == 0
    assert a.read_bytes() == b.read_bytes()
    # a preview does not remember anything, so it can be repeated
    assert cli(f"freeze --out {c} --now {NOW} --dry-run", db_path=copy).code == 0
    assert cli(f"freeze --out {b} --now {NOW} --dry-run", db_path=copy).code == 0
    assert b.read_bytes() == c.read_bytes()
    # rescoring the same data gives the same list
    assert cli("score", db_path=copy).code == 0
    assert cli(f"freeze --out {c} --now {NOW} --dry-run", db_path=copy).code == 0
    assert b.read_bytes() == c.read_bytes()


# --- property: the amount logic of queries/score/freeze_list.sql on random holdings ------------------------

holding = st.tuples(
    st.sampled_from(["A", "B", "C"]),  # account
    st.sampled_from(["K1", "K2", "K3", "K4"]),  # case
    st.integers(0, 3),  # which holding time
    st.decimals(0, 100_000, places=2),  # held under the rule
    st.decimals(0, 100_000, places=2),  # balance at that time
)


_PROP: dict[str, Workspace] = {}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(holding, min_size=1, max_size=12, unique_by=lambda r: (r[0], r[1])))
def test_amount_never_above_held_nor_balance_at_any_holding_time(tmp_path_factory, rows):
    from fundtrace import queries
    from fundtrace.engine.duckdb import DuckDBEngine
    from fundtrace.score import ScoreSettings, _params

    if "ws" not in _PROP:  # one workspace for all examples; each example replaces its rows
        _PROP["ws"] = Workspace(tmp_path_factory.mktemp("prop") / "ws.duckdb")
    ws = _PROP["ws"]
    con = ws.con
    con.execute("DELETE FROM account_scores").fetchall()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE sc_holdings (case_id VARCHAR, bank VARCHAR, account VARCHAR, "
        "account_id UBIGINT, "
        "hop INTEGER, first_tainted_at TIMESTAMP, last_tainted_at TIMESTAMP, balance DECIMAL(18, 4), "
        "as_of TIMESTAMP, held DECIMAL(18, 4), tin DECIMAL(18, 4), txns VARCHAR[])"
    ).fetchall()
    for account, case, when, held, balance in rows:
        con.execute(
            "INSERT INTO sc_holdings VALUES (?, 'b', ?, account_key('b', ?), 1, TIMESTAMP '2024-03-01', "
            "TIMESTAMP '2024-03-01', ?, TIMESTAMP '2024-03-02' + to_days(?), ?, ?, ['t'])",
            [case, account, account, balance, when, held, held],
        ).fetchall()
    con.execute(
        "INSERT INTO account_scores SELECT DISTINCT 'b', account, account_id, 1.0, 'freeze', 'X 1.000', "
        "[{'code': 'X', 'contribution': 1.0}], NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL, 0, 0, false, 0, "
        "0, false, TIMESTAMP '2024-03-10', TIMESTAMP '2024-03-10' FROM sc_holdings"
    ).fetchall()
    q = queries.get("freeze_list")
    last = DuckDBEngine(con).run_steps(q.steps, _params(q, ScoreSettings(), as_of="2024-03-10 00:00:00"))
    out = {
        r[0]: r[1:] for r in con.execute(f'SELECT account, amount_to_freeze, traced_amount FROM "{last}"').fetchall()
    }
    for account in {r[0] for r in rows}:
        mine = [r for r in rows if r[0] == account]
        held = sum(r[3] for r in mine)
        amount, traced = out.get(account, (Decimal(0), held))
        assert traced == held and amount <= held
        cap = 0  # at each holding time, never more than the balance then
        for when in {r[2] for r in mine}:
            group = [r for r in mine if r[2] == when]
            cap += min(sum(r[3] for r in group), max(r[4] for r in group))
        assert amount <= cap
        assert amount >= cap - Decimal("0.01")  # and nothing justified is left out (cents rounded down)
        if len({r[2] for r in mine}) == 1:
            assert amount <= max(r[4] for r in mine)  # one holding time: never above the balance
