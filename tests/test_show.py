"""`fundtrace show account` and `fundtrace explain` on the hand-built world of test_query."""

from __future__ import annotations

import json

import pytest

from test_query import build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("showworld"))


def test_show_account_gathers_everything(cli, world):
    r = cli("show account A:M1 --format json", db_path=world)
    assert r.code == 0, r.err
    (s,) = json.loads(r.out)
    assert s["summary"][0]["in_amount"] == 1050 and s["summary"][0]["n_out"] == 1
    assert [(x["kind"], x["value"], x["shared_with"]) for x in s["links"]] == [
        ("device", "D1", 1),
        ("phone_card", "P9", 1),
    ]
    assert [(a["alert_id"], a["role"], a["level"]) for a in s["alerts"]] == [("A1", "mule", 1)]
    assert [x["ring_id"] for x in s["rings"]] == ["R1"]
    assert [(t["case_id"], t["level"], t["held_lifo"]) for t in s["traces"]] == [("c1", 1, 100)]
    assert s["score"][0]["band"] == "freeze"
    assert [(x["code"], x["contribution"]) for x in s["reasons"]] == [("CHAIN", 0.5), ("RING", 0.3)]
    assert s["freeze"] == []


def test_show_account_table_and_freeze_history(cli, world):
    r = cli("show account B:M2", db_path=world)
    assert r.code == 0, r.err
    for title in ("ledger summary", "identifiers", "alerts", "card-farm rings", "tracing", "freeze decisions"):
        assert title in r.out
    assert "FR-0" in r.out and "superseded" in r.out and "score: none" in r.out


@pytest.mark.parametrize(("account", "message"), [("A:NOPE", "no account A:NOPE"), ("M1", "BANK:ACCOUNT")])
def test_show_unknown_account_is_exit_2(cli, world, account, message):
    r = cli(f"show account {account}", db_path=world)
    assert r.code == 2 and message in r.err


def test_explain_says_why_with_evidence(cli, world):
    r = cli("explain A1 --format json", db_path=world)
    assert r.code == 0, r.err
    (e,) = json.loads(r.out)
    assert e["why"].startswith("chain: money was forwarded") and e["why"].endswith("chain V1>M1>M2>M3")
    assert [(m["account"], m["role"]) for m in e["members"]] == [("V1", "source"), ("M1", "mule"), ("M2", "mule"),
                                                                ("M3", "mule")]  # fmt: skip
    assert [(x["txn_id"], x["from_account"], x["to_account"], x["amount"]) for x in e["evidence"]] == [
        ("t1", "A:V1", "A:M1", 1000), ("t2", "A:M1", "B:M2", 900), ("t4", "B:M2", "A:M3", 450),
    ]  # fmt: skip
    table = cli("explain A1", db_path=world)
    assert "why: chain" in table.out and "evidence payments" in table.out
    missing = cli("explain nope", db_path=world)
    assert missing.code == 2 and "no alert 'nope'" in missing.err
