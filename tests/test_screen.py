"""Screening incoming payments: payee and payer signals, decisions with reasons that add up, stored decisions."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fundtrace.workspace import Workspace
from test_score import build_world, parse_reasons

BATCH = """txn_id,ts,src_bank,src_account,dst_bank,dst_account,amount,currency,channel
p1,2024-03-11T09:00:00,B1,C,B4,S,60,CNY,pos
p2,2024-03-11T09:05:00,B1,C,B2,M1,500,CNY,transfer
p3,2024-03-11T09:10:00,B1,V3,B5,N1,50000,CNY,transfer
p4,2024-03-11T09:15:00,B1,V,B4,S,100,CNY,pos
p5,2024-03-11T09:20:00,B1,C,B4,S2,300,CNY,pos
"""


@pytest.fixture
def batch(cli, tmp_path: Path) -> Path:
    build_world(cli, tmp_path)
    path = tmp_path / "batch.csv"
    path.write_text(BATCH)
    return path


def decisions(db: Path) -> dict[str, dict]:
    with Workspace(db, read_only=True) as ws:
        rows = ws.con.sql("SELECT * FROM payment_decisions").pl().to_dicts()
    return {r["txn_id"]: r for r in rows}


def test_screen_decides_each_payment_with_reasons(cli, batch: Path, db: Path, tmp_path: Path):
    out = tmp_path / "decisions.csv"
    r = cli(f"screen {batch} --out {out}")
    assert r.code == 0, r.err
    got = decisions(db)
    assert {k: v["decision"] for k, v in got.items()} == {
        "p1": "allow",  # a regular payment to a shop the payer knows
        "p2": "hold",  # the payee is a known mule holding victims' money
        "p3": "hold",  # a scam call to the payer just before, and large for the payer
        "p4": "allow",
        "p5": "allow",  # a new payee alone is not enough
    }
    assert {"PAYEE_MULE", "PAYEE_HOLDS_VICTIM_FUNDS"} <= {c for c, _ in parse_reasons(got["p2"]["reasons"])}
    assert {c for c, _ in parse_reasons(got["p3"]["reasons"])} == {"SCAM_CALL", "LARGE_FOR_PAYER"}
    assert [c for c, _ in parse_reasons(got["p5"]["reasons"])] == ["NEW_PAYEE"]
    for row in got.values():
        assert round(sum(c for _, c in parse_reasons(row["reasons"])), 3) == row["score"]
    with out.open(newline="") as f:
        written = list(csv.DictReader(f))
    assert sorted(w["txn_id"] for w in written) == ["p1", "p2", "p3", "p4", "p5"]
    assert "hold 2, review 0, allow 3" in r.err


def test_a_frozen_payee_is_held_and_rescreening_replaces_decisions(cli, batch: Path, db: Path, tmp_path: Path):
    assert cli(f"freeze --out {tmp_path / 'f.csv'} --now 2024-03-10T14:00:00").code == 0
    assert cli("score").code == 0
    assert cli(f"screen {batch}").code == 0
    assert cli(f"screen {batch}").code == 0
    got = decisions(db)
    assert len(got) == 5
    with Workspace(db, read_only=True) as ws:
        assert ws.con.execute("SELECT count(*) FROM payment_decisions").fetchall()[0][0] == 5
    assert "PAYEE_FROZEN" in got["p2"]["reasons"]


def test_screen_reads_parquet_and_does_not_load_the_batch(cli, batch: Path, db: Path, tmp_path: Path):
    import duckdb

    parquet = tmp_path / "batch.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{batch}')) TO '{parquet}' (FORMAT PARQUET)")
    r = cli(f"screen {parquet} --no-store --format json")
    assert r.code == 0, r.err
    assert '"p3"' in r.out
    with Workspace(db, read_only=True) as ws:
        assert ws.con.execute("SELECT count(*) FROM transactions WHERE txn_id LIKE 'p%'").fetchall()[0][0] == 0
        assert ws.con.execute("SELECT count(*) FROM payment_decisions").fetchall()[0][0] == 0


def test_screen_rejects_a_bad_batch(cli, batch: Path, tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("txn_id,ts,src_account\nx,2024-01-01,A\n")
    r = cli(f"screen {bad}")
    assert r.code == 2 and "missing columns" in r.err
    neg = tmp_path / "neg.csv"
    neg.write_text(BATCH.replace(",60,", ",-60,"))
    r = cli(f"screen {neg}")
    assert r.code == 2 and "positive amount" in r.err


def test_screen_needs_scores(cli, tmp_path: Path):
    build_world(cli, tmp_path, score=False)
    (tmp_path / "b.csv").write_text(BATCH)
    r = cli(f"screen {tmp_path / 'b.csv'}")
    assert r.code == 2 and "fundtrace score" in r.err
