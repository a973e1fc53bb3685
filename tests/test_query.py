"""Named analyst queries on a hand-built world whose every expected row is worked out below.

The world (banks A and B), built by :func:`build_world` and shared by the show/case/report tests:

    t1 01-01 09:00 A:V1 -> A:M1   1000 transfer   (case c1: the victim's payment)
    t2 01-01 09:10 A:M1 -> B:M2    900 transfer
    t3 01-01 09:20 B:M2 -> B:ATM1  400 atm        (cash-out)
    t4 01-01 09:30 B:M2 -> A:M3    450 transfer
    t5 01-01 10:00 A:N1 -> A:M1     50 transfer   (case c2: N1's payment)
    t6 01-02 11:00 A:M3 -> B:M2    100 transfer
    t7 01-02 12:00 B:N2 -> A:N1     70 pos

Results are written by hand (not by the stages, so the expectations do not move when they change):
alert A1 (chain V1>M1>M2>M3, evidence t1 t2 t4), ring R1 (card_farm_ring: M1, M2, M3; M1 and M2
share phone card P9, M1 and M3 device D1; N1 has its own P7), trace flows of c1, holdings of c1
(M1 lifo 100, M2 50, M3 350) and c2 (M2 20), freeze list M3 350 (c1) and M2 70 (c1;c2), an active
FREEZE request on M3 for 350 and a superseded one on M2, scores for M1 (0.8 freeze) and M3 (0.6 hold).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fundtrace import analyst
from fundtrace.config import LoadSettings
from fundtrace.ingest import load_paths
from fundtrace.workspace import Workspace

TRANSACTIONS = """txn_id,ts,src_bank,src_account,dst_bank,dst_account,amount,currency,channel
t1,2024-01-01T09:00:00Z,A,V1,A,M1,1000,CNY,transfer
t2,2024-01-01T09:10:00Z,A,M1,B,M2,900,CNY,transfer
t3,2024-01-01T09:20:00Z,B,M2,B,ATM1,400,CNY,atm
t4,2024-01-01T09:30:00Z,B,M2,A,M3,450,CNY,transfer
t5,2024-01-01T10:00:00Z,A,N1,A,M1,50,CNY,transfer
t6,2024-01-02T11:00:00Z,A,M3,B,M2,100,CNY,transfer
t7,2024-01-02T12:00:00Z,B,N2,A,N1,70,CNY,pos
"""
ACCOUNTS = """bank,account,holder_id,holder_name,phone,opened_at,kind,balance,balance_at
A,M1,P1,<b>Mule One</b>,13800000001,2023-12-30,personal,0,
B,M2,P2,Mule Two,13800000002,2023-12-31,personal,0,
A,M3,P3,Mule Three,13800000003,2023-12-31,personal,0,
A,N1,P4,Normal One,13800000004,2015-01-01,personal,500,
"""
LINKS = """bank,account,kind,value,first_seen
A,M1,phone_card,P9,2023-12-30
B,M2,phone_card,P9,2023-12-31
A,M1,device,D1,2023-12-30
A,M3,device,D1,2023-12-31
A,N1,phone_card,P7,2015-01-01
"""
REPORTS = """case_id,victim_bank,victim_account,reported_at,amount_lost,txn_id,first_bank,first_account,paid_at
c1,A,V1,2024-01-01T12:00:00Z,1000,t1,,,
c2,A,N1,2024-01-02T09:00:00Z,50,t5,,,
"""
RESULTS = """
INSERT INTO alerts VALUES
  ('A1', 'chain', 0.9, '2024-01-01 09:00', '2024-01-01 09:30', 1000, 4, 3, 'chain V1>M1>M2>M3', '2024-01-03'),
  ('R1', 'card_farm_ring', 0.7, '2023-12-30', '2023-12-31', NULL, 3, 0, 'three accounts share P9 and D1', '2024-01-03');
INSERT INTO alert_members VALUES
  ('A1', 'A', 'V1', account_key('A', 'V1'), 'source', NULL), ('A1', 'A', 'M1', account_key('A', 'M1'), 'mule', 1),
  ('A1', 'B', 'M2', account_key('B', 'M2'), 'mule', 2), ('A1', 'A', 'M3', account_key('A', 'M3'), 'mule', 3),
  ('R1', 'A', 'M1', account_key('A', 'M1'), 'member', NULL), ('R1', 'B', 'M2', account_key('B', 'M2'), 'member', NULL),
  ('R1', 'A', 'M3', account_key('A', 'M3'), 'member', NULL);
INSERT INTO alert_evidence VALUES ('A1', 't1'), ('A1', 't2'), ('A1', 't4');
INSERT INTO trace_flows VALUES
  ('c1', 0, 't1', '2024-01-01 09:00', 'A', 'V1', 'A', 'M1', 1000, 1000, 1000, 1000, 1000, 1000, 'transfer', NULL),
  ('c1', 1, 't2', '2024-01-01 09:10', 'A', 'M1', 'B', 'M2', 900, 900, 857.1429, 900, 900, 900, 'transfer', NULL),
  ('c1', 2, 't3', '2024-01-01 09:20', 'B', 'M2', 'B', 'ATM1', 400, 400, 400, 400, 400, 400, 'atm', 'cash_out'),
  ('c1', 2, 't4', '2024-01-01 09:30', 'B', 'M2', 'A', 'M3', 450, 450, 450, 450, 450, 450, 'transfer', NULL);
INSERT INTO trace_holdings VALUES
  ('c1', 'A', 'M1', account_key('A', 'M1'), 1, '2024-01-01 09:00', '2024-01-01 09:00', 150, 150, 142.8571, 100, 100,
   100,
   '2024-01-01 12:00'),
  ('c1', 'B', 'M2', account_key('B', 'M2'), 2, '2024-01-01 09:10', '2024-01-01 09:10', 50, 50, 50, 50, 50, 50,
   '2024-01-01 12:00'),
  ('c1', 'A', 'M3', account_key('A', 'M3'), 3, '2024-01-01 09:30', '2024-01-01 09:30', 450, 450, 350, 350, 350, 350,
   '2024-01-01 12:00'),
  ('c2', 'B', 'M2', account_key('B', 'M2'), 2, '2024-01-01 10:00', '2024-01-01 10:00', 50, 50, 20, 20, 20, 20,
   '2024-01-02 09:00');
INSERT INTO account_scores
SELECT bank, account, account_key(bank, account), score, band, reasons, reason_list, 'personal', NULL, NULL, NULL, NULL,
       0, 0, 0, 0, NULL, 0, 0, true, held, 1, false, '2024-01-02 12:00', '2024-01-03'
FROM (VALUES
  ('A', 'M1', 0.8, 'freeze', 'CHAIN 0.500; RING 0.300',
   [{'code': 'CHAIN', 'contribution': 0.5}, {'code': 'RING', 'contribution': 0.3}], 100),
  ('A', 'M3', 0.6, 'hold', 'HOLDS_VICTIM_FUNDS 0.600', [{'code': 'HOLDS_VICTIM_FUNDS', 'contribution': 0.6}], 350)
) v(bank, account, score, band, reasons, reason_list, held);
INSERT INTO freeze_list VALUES
  ('A', 'M3', account_key('A', 'M3'), 'c1', 'Mule Three', 3, 350, 350, 450, 'CNY', 'lifo', 0.6, 'hold',
   'HOLDS_VICTIM_FUNDS 0.600', 't4', 'e3', '2024-01-01 09:30', '2024-01-01 09:30', false, 1, '2024-01-02 12:00'),
  ('B', 'M2', account_key('B', 'M2'), 'c1;c2', 'Mule Two', 2, 70, 70, 70, 'CNY', 'lifo', 0.55, 'hold',
   'PASS_THROUGH 0.550', 't2;t5', 'e2', '2024-01-01 09:10', '2024-01-01 10:00', false, 2, '2024-01-02 12:00');
INSERT INTO freeze_requests VALUES
  ('FR-1', 'FREEZE', 'A', 'M3', 'c1', 350, 'lifo', '2024-01-03', '2024-07-03', 'active', 'e3'),
  ('FR-0', 'FREEZE', 'B', 'M2', 'c1;c2', 60, 'lifo', '2024-01-02', '2024-07-02', 'superseded', 'e2');
"""


def build_world(directory: Path) -> Path:
    """Write the world's CSVs into ``directory``, load them and the hand-made results; return the workspace."""
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "world.duckdb"
    with Workspace(db) as ws:
        for kind, text in (("accounts", ACCOUNTS), ("transactions", TRANSACTIONS), ("links", LINKS),
                           ("reports", REPORTS)):  # fmt: skip
            path = directory / f"{kind}.csv"
            path.write_text(text, encoding="utf-8")
            load_paths(ws, kind, [str(path)], settings=LoadSettings())
        ws.con.execute(RESULTS).fetchall()
    return db


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return build_world(tmp_path_factory.mktemp("world"))


def rows(cli, world: Path, args: str) -> list[dict]:
    r = cli(f"query {args} --format json", db_path=world)
    assert r.code == 0, r.err
    return json.loads(r.out)


def pick(found: list[dict], *columns: str) -> list[tuple]:
    return [tuple(row[c] for c in columns) for row in found]


def test_list_names_every_shipped_query_first(cli):
    r = cli("query --list")
    assert r.code == 0, r.err
    names = [line.split()[0] for line in r.out.splitlines() if line.strip()]
    assert names == sorted(q.name for q in analyst.catalogue())
    for needed in ("account_summary", "counterparties", "money_paths", "neighbours", "top_pass_through", "top_hubs",
                   "ring_members", "case_flow", "bank_exposure", "daily_volume", "cases", "alerts"):  # fmt: skip
        assert needed in names
    assert "detect" not in {q.kind for q in analyst.catalogue()}


def test_account_summary(cli, world):
    (row,) = rows(cli, world, "account_summary -p account=B:M2")
    assert (row["n_in"], row["n_out"], row["in_amount"], row["out_amount"], row["net"]) == (2, 2, 1000, 850, 150)
    assert (row["cash_out_amount"], row["counterparties"], row["holder_name"]) == (400, 3, "Mule Two")
    assert (row["first_ts"], row["last_ts"]) == ("2024-01-01 09:10:00", "2024-01-02 11:00:00")
    (later,) = rows(cli, world, "account_summary -p account=B:M2 -p since=2024-01-02T00:00:00")
    assert (later["n_in"], later["n_out"], later["in_amount"], later["counterparties"]) == (1, 0, 100, 1)
    assert rows(cli, world, "account_summary -p account=B:NOPE") == []


def test_counterparties(cli, world):
    found = rows(cli, world, "counterparties -p account=B:M2")
    assert pick(found, "bank", "account", "n_in", "in_amount", "n_out", "out_amount", "total") == [
        ("A", "M1", 1, 900, 0, 0, 900),
        ("A", "M3", 1, 100, 1, 450, 550),
        ("B", "ATM1", 0, 0, 1, 400, 400),
    ]
    assert found[0]["score"] == 0.8 and found[1]["band"] == "hold"
    assert len(rows(cli, world, "counterparties -p account=B:M2 -p limit=1")) == 1


def test_money_paths_respect_time_and_bounds(cli, world):
    found = rows(cli, world, "money_paths -p from_account=A:V1 -p to_account=A:M3")
    assert pick(found, "hops", "path", "txn_ids", "min_amount") == [(3, "A:V1 > A:M1 > B:M2 > A:M3", "t1;t2;t4", 450)]
    # too short a bound finds nothing
    assert rows(cli, world, "money_paths -p from_account=A:V1 -p to_account=A:M3 -p max_hops=2") == []
    # M3 -> M2 (t6, day 2) then M2 -> ... only earlier payments: no time-respecting path back to ATM1
    assert rows(cli, world, "money_paths -p from_account=A:M3 -p to_account=B:ATM1") == []
    # N1 paid M1 at 10:00, after M1 paid M2 at 09:10: no path N1 -> M2
    assert rows(cli, world, "money_paths -p from_account=A:N1 -p to_account=B:M2") == []
    # the window: V1 -> M3 takes 30 minutes
    assert rows(cli, world, "money_paths -p from_account=A:V1 -p to_account=A:M3 -p window_hours=0.25") == []


def test_neighbours(cli, world):
    found = rows(cli, world, "neighbours -p account=A:M1 -p hops=1")
    assert pick(found, "bank", "account", "distance") == [("A", "N1", 1), ("A", "V1", 1), ("B", "M2", 1)]
    found = rows(cli, world, "neighbours -p account=A:M1")
    assert pick(found, "bank", "account", "distance") == [
        ("A", "N1", 1), ("A", "V1", 1), ("B", "M2", 1), ("A", "M3", 2), ("B", "ATM1", 2), ("B", "N2", 2),
    ]  # fmt: skip


def test_top_pass_through(cli, world):
    found = rows(cli, world, "top_pass_through -p min_amount=100")
    assert pick(found, "bank", "account", "in_amount", "out_amount", "passed", "alerts") == [
        ("A", "M1", 1050, 900, 900, 2),
        ("B", "M2", 1000, 850, 850, 2),
    ]
    assert found[0]["out_share"] == pytest.approx(900 / 1050, abs=1e-4)
    assert rows(cli, world, "top_pass_through -p min_amount=100 -p min_share=0.9") == []


def test_top_hubs(cli, world):
    found = rows(cli, world, "top_hubs -p limit=3")
    assert pick(found, "bank", "account", "counterparties", "senders", "receivers", "n_txns") == [
        ("B", "M2", 3, 2, 2, 4),
        ("A", "M1", 3, 2, 1, 3),
        ("A", "N1", 2, 1, 1, 2),
    ]


def test_ring_members(cli, world):
    found = rows(cli, world, "ring_members -p ring_id=R1")
    assert pick(found, "bank", "account", "shared_identifiers") == [
        ("A", "M1", "device:D1; phone_card:P9"),
        ("A", "M3", "device:D1"),
        ("B", "M2", "phone_card:P9"),
    ]
    assert rows(cli, world, "ring_members -p ring_id=A1") == []  # a chain is not a ring


def test_case_flow(cli, world):
    found = rows(cli, world, "case_flow -p case_id=c1 -p rule=haircut")
    assert pick(found, "hop", "txn_id", "from_account", "to_account", "victim_amount", "stop") == [
        (0, "t1", "A:V1", "A:M1", 1000, None),
        (1, "t2", "A:M1", "B:M2", 857.1429, None),
        (2, "t3", "B:M2", "B:ATM1", 400, "cash_out"),
        (2, "t4", "B:M2", "A:M3", 450, None),
    ]
    assert rows(cli, world, "case_flow -p case_id=c1")[1]["victim_amount"] == 900  # lifo by default


def test_bank_exposure(cli, world):
    found = rows(cli, world, "bank_exposure")
    assert pick(found, "bank", "accounts_holding", "cases", "held", "to_freeze", "frozen", "at_risk") == [
        ("A", 2, 1, 450, 350, 350, 100),
        ("B", 1, 2, 70, 70, 0, 70),
    ]
    found = rows(cli, world, "bank_exposure -p case_id=c2")
    assert pick(found, "bank", "held", "to_freeze", "frozen", "at_risk") == [("B", 20, 70, 0, 20)]
    poison = rows(cli, world, "bank_exposure -p rule=poison")
    assert pick(poison, "bank", "held") == [("A", 600), ("B", 100)]


def test_daily_volume(cli, world):
    found = rows(cli, world, "daily_volume")
    assert pick(found, "day", "n_txns", "amount", "payers", "payees", "cash_out_txns", "cash_out_amount") == [
        ("2024-01-01", 5, 2800, 4, 4, 1, 400),
        ("2024-01-02", 2, 170, 2, 2, 0, 0),
    ]
    found = rows(cli, world, "daily_volume -p bank=B")
    assert pick(found, "day", "n_txns", "amount") == [("2024-01-01", 3, 1750), ("2024-01-02", 2, 170)]


def test_cases_and_alerts(cli, world):
    found = rows(cli, world, "cases")
    assert pick(found, "case_id", "victim", "amount_lost", "flows", "accounts_reached", "held", "to_freeze") == [
        # M2 (70 to freeze) holds 50 of c1 and 20 of c2 under lifo: split 50/20, not counted twice
        ("c1", "A:V1", 1000, 4, 3, 500, 400),
        ("c2", "A:N1", 50, 0, 1, 20, 20),
    ]
    assert pick(rows(cli, world, "alerts"), "alert_id") == [("A1",), ("R1",)]
    assert pick(rows(cli, world, "alerts -p typology=card_farm_ring"), "alert_id") == [("R1",)]


INJECTION = "x'; DROP TABLE transactions; --"


def test_a_parameter_carrying_sql_changes_nothing_and_finds_nothing(cli, world):
    before = cli("sql 'SELECT count(*) AS n FROM transactions' --format json", db_path=world)
    for args in (
        f'account_summary -p "account=A:{INJECTION}"',
        f'counterparties -p "account=A:{INJECTION}"',
        f'money_paths -p "from_account=A:{INJECTION}" -p "to_account=B:{INJECTION}"',
        f'neighbours -p "account=A:{INJECTION}"',
        f'ring_members -p "ring_id={INJECTION}"',
        f'case_flow -p "case_id={INJECTION}"',
        f'bank_exposure -p "case_id={INJECTION}"',
        f'daily_volume -p "bank={INJECTION}"',
        f'alerts -p "typology={INJECTION}"',
    ):
        assert rows(cli, world, args) == [], args
    after = cli("sql 'SELECT count(*) AS n FROM transactions' --format json", db_path=world)
    assert json.loads(before.out) == json.loads(after.out) == [{"n": 7}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("account_summary -p acount=A:M1", "has no parameter acount"),
        ("account_summary", "needs parameter account"),
        ("account_summary -p account=M1", "BANK:ACCOUNT"),
        ("account_summary -p account=A:M1 -p since=yesterday", "since must be TIMESTAMP"),
        ("top_hubs -p limit=many", "limit must be INTEGER"),
        ("top_hubs -p limit=-1", "0 or more"),
        ("case_flow -p case_id=c1 -p rule=mine", "rule must be one of poison, haircut, fifo, lifo, libr"),
        ("top_hubs -p limit", "expected key=value"),
        ("no_such_query", "no analyst query named 'no_such_query'"),
        ("pass_through", "no analyst query named 'pass_through'"),  # a detector's query is not an analyst query
        ("top_hubs --format parquet", "needs --out"),
    ],
)
def test_bad_parameters_are_a_clear_error_with_exit_2(cli, world, args, message):
    r = cli(f"query {args}", db_path=world)
    assert r.code == 2, (r.out, r.err)
    assert message in r.err
    assert "Traceback" not in r.err


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_out_file_is_written_by_the_engine(cli, world, tmp_path, fmt):
    out = tmp_path / f"cp.{fmt}"
    r = cli(f"query counterparties -p account=B:M2 --format {fmt} --out {out}", db_path=world)
    assert r.code == 0, r.err
    assert "3 rows" in r.err and r.out == ""
    import polars as pl

    frame = {"csv": pl.read_csv, "json": pl.read_json, "parquet": pl.read_parquet}[fmt](out)
    assert frame["account"].to_list() == ["M1", "M3", "ATM1"]


def test_csv_on_stdout_is_clean(cli, world):
    r = cli("query daily_volume --format csv", db_path=world)
    assert r.code == 0
    assert r.out.splitlines()[0] == "day,n_txns,amount,payers,payees,cash_out_txns,cash_out_amount"
    assert len(r.out.splitlines()) == 3
