"""Headline figures and returns of frozen money (direct and pro rata with the public notice list)."""

from __future__ import annotations

import json
from pathlib import Path

from fundtrace.stats import headline
from fundtrace.workspace import Workspace
from test_score import build_world


def test_stats_before_and_after_the_stages(cli, tmp_path: Path, db: Path):
    build_world(cli, tmp_path, score=False)
    r = cli("stats --format json")
    assert r.code == 0, r.err
    figures = json.loads(r.out)
    assert figures["reports"] == 3 and figures["cases"] == 2 and figures["victims"] == 2
    assert figures["money_reported_lost"] == 60000
    assert figures["money_traced"] == 60000
    assert figures["accounts_to_freeze"] is None and figures["payments_held"] is None  # not run: empty, not 0
    assert cli("score").code == 0
    assert cli(f"freeze --out {tmp_path / 'f.csv'} --now 2024-03-10T14:00:00").code == 0
    (tmp_path / "b.csv").write_text(
        "txn_id,ts,src_bank,src_account,dst_bank,dst_account,amount\np9,2024-03-11T09:00:00,B1,C,B2,M1,500\n"
    )
    assert cli(f"screen {tmp_path / 'b.csv'}").code == 0
    with Workspace(db, read_only=True) as ws:
        figures = headline(ws)
    assert figures["accounts_to_freeze"] == 2 and figures["accounts_frozen"] == 2
    assert figures["money_to_freeze"] == 55000  # M1 30,000 + M2 25,000 under LIFO
    assert figures["money_frozen_share"] == round(55000 / 60000, 4)
    assert figures["money_held"] == 60000  # M1 30,000, M2 25,000, the merchant S2 5,000
    assert figures["payments_screened"] == 1 and figures["payments_held"] == 1
    assert figures["money_in_held_payments"] == 500
    assert figures["banks_involved"] == 3  # B2, B3 and the merchant's B4 hold victims' money
    assert figures["stop_payments"] == 1
    table = cli("stats")
    assert table.code == 0 and "money_frozen_share" in table.out


def test_returns_direct_and_pro_rata_with_public_notice(cli, tmp_path: Path, db: Path):
    build_world(cli, tmp_path)
    r = cli("returns C1 --format json --now 2024-03-11T00:00:00")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    by_account = {a["account"]: a for a in result["accounts"]}
    # M1 holds only C1's money: a direct return of all 30,000
    assert by_account["M1"]["method"] == "direct" and by_account["M1"]["returned_to_case"] == 30000
    # M2 holds C1 20,000 and C2 5,000 that arrived in one payment: pro rata by loss (50,000 : 10,000)
    assert by_account["M2"]["method"] == "pro_rata"
    assert by_account["M2"]["returned_to_case"] == round(25000 * 50000 / 60000, 2)
    notice = {(n["account"], n["case_id"]): n for n in result["public_notice"]}
    assert set(notice) == {("M2", "C1"), ("M2", "C2")}
    assert notice[("M2", "C2")]["share"] == round(25000 * 10000 / 60000, 2)
    assert notice[("M2", "C2")]["notice_until"].startswith("2024-04-10")
    assert result["total_returned"] == round(30000 + 25000 * 50000 / 60000, 2)


def test_returns_unknown_case(cli, tmp_path: Path):
    build_world(cli, tmp_path)
    r = cli("returns NOPE")
    assert r.code == 2 and "unknown case" in r.err
