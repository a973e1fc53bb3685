"""Account scores: reason contributions add up to the score, bands follow the thresholds, innocents stay low.

``build_world`` (also used by the freeze, screen and stats tests) loads a small hand-made world through
the CLI, traces it and adds one chain alert, so every number below can be checked by hand:

- victim V (bank B1) pays first-level mule M1 (B2) 30,000 at 10:00 and 20,000 at 10:10 (case C1), victim
  V3 pays M1 10,000 at 10:05 (case C2); M1 forwards 30,000 to M2 (B3) at 10:20;
- M2 pays 5,000 to the merchant S2 at 11:00; ordinary people pay the shop S through the day;
- one chain alert (score 0.9) names M1 and M2 as mules.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from fundtrace.score import ScoreSettings, band_of
from fundtrace.workspace import Workspace

ACCOUNTS = """bank,account,holder_id,holder_name,phone,opened_at,kind,balance
B1,V,P1,Victim One,13900000001,2015-01-01T00:00:00,personal,200000
B1,V3,P3,Victim Three,13900000003,2016-01-01T00:00:00,personal,100000
B2,M1,P4,=cmd|' /C calc'!A0,13900000004,2024-02-25T00:00:00,personal,0
B3,M2,P5,@SUM(1+1),13900000005,2024-02-26T00:00:00,personal,0
B4,S,P6,Corner Shop,13900000006,2010-01-01T00:00:00,merchant,1000
B4,S2,P7,Big Store,13900000007,2010-01-01T00:00:00,merchant,1000
B1,C,P8,"-Clean, Person",13900000008,2012-01-01T00:00:00,personal,5000
"""
TXNS = [
    ("h1", "2024-03-01T09:00:00", "B1", "V", "B4", "S", 120),
    ("h2", "2024-03-03T09:00:00", "B1", "V", "B4", "S", 80),
    ("h3", "2024-03-05T09:00:00", "B1", "V", "B4", "S", 150),
    ("h4", "2024-03-02T09:00:00", "B1", "C", "B4", "S", 60),
    ("h5", "2024-03-04T09:00:00", "B1", "C", "B4", "S", 70),
    ("h6", "2024-03-06T09:00:00", "B1", "C", "B4", "S", 65),
    ("f1", "2024-03-10T10:00:00", "B1", "V", "B2", "M1", 30000),
    ("f2", "2024-03-10T10:05:00", "B1", "V3", "B2", "M1", 10000),
    ("f3", "2024-03-10T10:10:00", "B1", "V", "B2", "M1", 20000),
    ("f4", "2024-03-10T10:20:00", "B2", "M1", "B3", "M2", 30000),
    ("f5", "2024-03-10T11:00:00", "B3", "M2", "B4", "S2", 5000),
    ("h7", "2024-03-10T13:00:00", "B1", "C", "B4", "S", 55),
]
REPORTS = """case_id,victim_bank,victim_account,reported_at,amount_lost,txn_id
C1,B1,V,2024-03-10T12:00:00,30000,f1
C1,B1,V,2024-03-10T12:00:00,20000,f3
C2,B1,V3,2024-03-10T12:30:00,10000,f2
"""
CALLS = """ts,caller,callee,duration_s
2024-03-10T09:40:00,17000000001,13900000001,900
2024-03-10T09:50:00,17000000001,13900000003,600
2024-03-10T12:00:00,17000000099,13900000008,60
2024-03-11T08:30:00,17000000001,13900000003,700
"""


def write_world(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "accounts": directory / "accounts.csv",
        "transactions": directory / "transactions.csv",
        "reports": directory / "reports.csv",
        "calls": directory / "calls.csv",
    }
    files["accounts"].write_text(ACCOUNTS)
    rows = ["txn_id,ts,src_bank,src_account,dst_bank,dst_account,amount,channel"]
    rows += [f"{t},{ts},{sb},{sa},{db},{da},{a},transfer" for t, ts, sb, sa, db, da, a in TXNS]
    files["transactions"].write_text("\n".join(rows) + "\n")
    files["reports"].write_text(REPORTS)
    files["calls"].write_text(CALLS)
    return files


def add_chain_alert(db: Path, score: float = 0.9) -> None:
    with Workspace(db) as ws:
        ws.con.execute(
            "INSERT INTO alerts VALUES ('chain:test', 'chain', ?, TIMESTAMP '2024-03-10 10:00:00', "
            "TIMESTAMP '2024-03-10 10:20:00', 60000, 3, 4, 'test chain', TIMESTAMP '2024-03-11 00:00:00')",
            [score],
        ).fetchall()
        ws.con.execute(
            "INSERT INTO alert_members SELECT 'chain:test', bank, account, account_key(bank, account), role, level "
            "FROM (VALUES ('B1', 'V', 'source', NULL), ('B2', 'M1', 'mule', 1), ('B3', 'M2', 'mule', 2)) "
            "v(bank, account, role, level)"
        ).fetchall()
        ws.con.execute(
            "INSERT INTO alert_evidence VALUES ('chain:test', 'f1'), ('chain:test', 'f3'), ('chain:test', 'f4')"
        ).fetchall()


_TEMPLATE: dict[str, Path] = {}


def _template(directory: Path) -> Path:
    """The world loaded, traced and with its alert, built once per test session (scoring is per test)."""
    if "db" not in _TEMPLATE:
        from fundtrace.cli import main

        db = directory / "template.duckdb"
        files = write_world(directory / "world")
        for kind in ("accounts", "transactions", "reports", "calls"):
            assert main(["--db", str(db), "load", kind, str(files[kind])]) == 0
        assert main(["--db", str(db), "trace", "--all"]) == 0
        add_chain_alert(db)
        _TEMPLATE["db"] = db
    return _TEMPLATE["db"]


def build_world(cli, tmp_path: Path, *, score: bool = True) -> dict[str, Path]:
    """Write the world's files under tmp_path/world and put the loaded, traced workspace at tmp_path/ws.duckdb."""
    import tempfile

    files = write_world(tmp_path / "world")
    template = _template(Path(tempfile.mkdtemp(prefix="fundtrace-score-template-")))
    shutil.copy(template, tmp_path / "ws.duckdb")
    if score:
        r = cli("score")
        assert r.code == 0, r.err
    return files


def parse_reasons(text: str) -> list[tuple[str, float]]:
    return [(m[1], float(m[2])) for m in re.finditer(r"([A-Z_]+) (-?\d+\.\d{3})", text)]


@pytest.fixture
def world(cli, tmp_path: Path, db: Path):
    build_world(cli, tmp_path)
    return db


def scores(db: Path) -> dict[str, dict]:
    with Workspace(db, read_only=True) as ws:
        rows = ws.con.sql("SELECT * FROM account_scores").pl().to_dicts()
    return {r["account"]: r for r in rows}


def test_reason_contributions_add_up_to_the_score(world):
    rows = scores(world)
    assert len(rows) == 7  # every transacting account is scored
    for r in rows.values():
        parts = parse_reasons(r["reasons"])
        assert round(sum(c for _, c in parts), 3) == r["score"], r
        assert [(x["code"], x["contribution"]) for x in r["reason_list"]] == parts
        assert 0 <= r["score"] <= 1


def test_mules_score_high_and_innocents_low(world):
    rows = scores(world)
    assert rows["M1"]["band"] == "freeze" and rows["M2"]["band"] == "freeze"
    assert {"CHAIN", "HOLDS_VICTIM_FUNDS"} <= {c for c, _ in parse_reasons(rows["M1"]["reasons"])}
    for innocent in ("V", "V3", "C", "S"):
        assert rows[innocent]["band"] == "allow", rows[innocent]
    # the merchant holds 5,000 of C1's money, but its kind damps the score, as a negative reason
    s2 = parse_reasons(rows["S2"]["reasons"])
    positive = sum(c for _, c in s2 if c > 0)
    assert dict(s2)["INNOCENT_KIND"] == pytest.approx(-0.75 * positive, abs=0.002)
    assert rows["S2"]["band"] in ("allow", "review")


@pytest.mark.parametrize(
    ("score", "band"),
    [(0.0, "allow"), (0.299, "allow"), (0.3, "review"), (0.499, "review"), (0.5, "hold"), (0.699, "hold"),
     (0.7, "freeze"), (1.0, "freeze")],
)  # fmt: skip
def test_band_thresholds(score, band):
    assert band_of(score) == band
    assert band_of(score, ScoreSettings(review_at=0.1, hold_at=0.2, freeze_at=0.95)) == (
        "allow" if score < 0.1 else "review" if score < 0.2 else "hold" if score < 0.95 else "freeze"
    )


def test_band_thresholds_from_config_reach_the_table(cli, tmp_path: Path, db: Path):
    build_world(cli, tmp_path, score=False)
    (tmp_path / "fundtrace.toml").write_text("[score]\nreview_at = 0.05\nhold_at = 0.06\nfreeze_at = 0.99\n")
    assert cli("score").code == 0
    for r in scores(db).values():
        assert r["band"] == band_of(r["score"], ScoreSettings(review_at=0.05, hold_at=0.06, freeze_at=0.99))
    m1 = scores(db)["M1"]
    assert m1["band"] == ("freeze" if m1["score"] >= 0.99 else "hold")


def test_bad_score_settings_are_reported_per_field(cli, tmp_path: Path):
    build_world(cli, tmp_path, score=False)
    (tmp_path / "fundtrace.toml").write_text('[score]\nhold_at = 0.9\nfreeze_at = 0.2\nrule = "magic"\n')
    r = cli("score")
    assert r.code == 2
    assert "score.rule" in r.err and "score.review_at" in r.err


def test_money_from_frozen_accounts_raises_the_payee(cli, tmp_path: Path, db: Path):
    build_world(cli, tmp_path)
    before = scores(db)["S2"]
    assert cli("freeze --out f.csv --now 2024-03-10T14:00:00").code == 0
    assert cli("score").code == 0
    after = scores(db)["S2"]
    assert "FROM_FROZEN" in after["reasons"] and after["score"] > before["score"]
    assert scores(db)["M1"]["frozen"]


def test_score_command_prints_top_accounts(cli, tmp_path: Path):
    build_world(cli, tmp_path, score=False)
    r = cli("score --top 2 --format json")
    assert r.code == 0, r.err
    assert '"M1"' in r.out or '"M2"' in r.out
    assert "freeze list 2 accounts" in r.err


def test_as_of_before_the_fraud_scores_nothing_held(cli, tmp_path: Path, db: Path):
    build_world(cli, tmp_path, score=False)
    assert cli("score --as-of 2024-03-09T00:00:00").code == 0
    rows = scores(db)
    assert all(r["as_of"] == datetime(2024, 3, 9) for r in rows.values())
    assert "M1" not in rows  # no transaction of M1 before then
