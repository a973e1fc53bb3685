"""Card-farm rings: table-driven cases loaded through the real CLI, then detect_rings on the workspace."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from fundtrace.config import Config
from fundtrace.detect.base import alert_id
from fundtrace.detect.rings import RingSettings, detect_rings
from fundtrace.engine import DuckDBEngine
from fundtrace.errors import ConfigError
from fundtrace.workspace import Workspace

ACCOUNT_COLUMNS = ["bank", "account", "holder_id", "phone", "opened_at"]
LINK_COLUMNS = ["bank", "account", "kind", "value"]


def acct(bank: str, account: str, holder: str, opened: str, phone: str = "") -> dict:
    return {"bank": bank, "account": account, "holder_id": holder, "phone": phone, "opened_at": opened}


def link(bank: str, account: str, kind: str, value: str) -> dict:
    return {"bank": bank, "account": account, "kind": kind, "value": value}


# A card farm: five cards bought from five people, at three banks, opened within three days, all on
# one phone card and one device.
FARM = [acct(b, f"F{i}", f"farm-holder-{i}", f"2024-03-0{1 + i % 3}T10:00:00")
        for i, b in enumerate(["ICBC", "ICBC", "ABC", "ABC", "CCB"])]  # fmt: skip
FARM_LINKS = [link(a["bank"], a["account"], k, v) for a in FARM for k, v in [("phone_card", "P-1"), ("device", "D-1")]]
# A family: three people at one bank, accounts opened years apart, one registered phone.
FAMILY = [acct("ICBC", f"M{i}", f"family-{i}", f"20{15 + 3 * i}-05-01T09:00:00", phone="13800000000") for i in range(3)]
# A public IP used by 500 accounts opened the same day at three banks.
PUBLIC = [acct(["ICBC", "ABC", "CCB"][i % 3], f"U{i}", f"u-{i}", "2024-01-01T00:00:00") for i in range(500)]
PUBLIC_LINKS = [link(a["bank"], a["account"], "ip", "203.0.113.7") for a in PUBLIC]
# An office: ten employees at one bank over ten years, one shared office device.
OFFICE = [acct("BOC", f"O{i}", f"staff-{i}", f"{2010 + i}-01-15T00:00:00") for i in range(10)]
OFFICE_LINKS = [link("BOC", a["account"], "device", "OFFICE-PC") for a in OFFICE]
# One person's own three accounts, same week, three banks, one phone: half the holder factor.
OWNER = [acct(b, "S1", "same-person", "2024-02-01T00:00:00") for b in ["ICBC", "ABC", "CCB"]]
OWNER_LINKS = [link(a["bank"], "S1", "phone_card", "P-OWN") for a in OWNER]
# A chain of sharing: X0-X1 share a phone card, X1-X2 a device, X2-X3 a bank card.
CHAIN = [acct(b, f"X{i}", f"x-{i}", "2024-04-01T00:00:00") for i, b in enumerate(["ICBC", "ABC", "CCB", "BOC"])]
CHAIN_LINKS = [
    link("ICBC", "X0", "phone_card", "P-X"), link("ABC", "X1", "phone_card", "P-X"),
    link("ABC", "X1", "device", "D-X"), link("CCB", "X2", "device", "D-X"),
    link("CCB", "X2", "bank_card", "C-X"), link("BOC", "X3", "bank_card", "C-X"),
]  # fmt: skip
# A household of strangers to the bank: three people at three banks, accounts opened years apart,
# sharing the home IP, the family tablet and a parent's phone number. Sharing everything is what
# families do; nothing was opened together, so it stays far below the reporting threshold.
HOUSEHOLD = [acct(b, f"H{i}", f"hh-{i}", f"20{14 + 3 * i}-0{1 + i}-10T08:00:00", phone="13900000000")
             for i, b in enumerate(["ICBC", "ABC", "CCB"])]  # fmt: skip
HOUSEHOLD_LINKS = [link(a["bank"], a["account"], k, v) for a in HOUSEHOLD for k, v in [("ip", "36.1.2.3"),
                   ("device", "TABLET-1")]]  # fmt: skip
# The same household where two of the three accounts happen to be opened in the same week.
HOUSEHOLD_PAIR = [dict(a, opened_at="2024-02-0" + str(i + 1) + "T08:00:00") if i < 2 else a
                  for i, a in enumerate(HOUSEHOLD)]  # fmt: skip
# A farm of forged ID cards: each ID card opens three accounts at three banks within two days; the
# nine accounts share three phone cards, two devices and an IP.
IDFARM = [acct(b, f"G{i}", f"forged-{i // 3}", f"2024-03-0{1 + i % 2}T1{i % 3}:00:00")
          for i, b in enumerate(["ICBC", "ABC", "CCB"] * 3)]  # fmt: skip
IDFARM_LINKS = [link(a["bank"], a["account"], k, v) for i, a in enumerate(IDFARM)
                for k, v in [("phone_card", f"P-G{i % 3}"), ("device", f"D-G{i % 2}"), ("ip", "117.0.0.9"),
                             ("id_card", f"ID-{i // 3}")]]  # fmt: skip
# Two accounts sharing everything are not a ring of three.
PAIR = [acct("ICBC", f"Q{i}", f"q-{i}", "2024-04-01T00:00:00") for i in range(2)]
PAIR_LINKS = [link("ICBC", f"Q{i}", k, "V") for i in range(2) for k in ["device", "phone_card", "ip"]]


@dataclass
class Case:
    id: str
    accounts: list[dict]
    links: list[dict]
    settings: dict = field(default_factory=dict)
    rings: list[set[str]] = field(default_factory=list)  # expected member accounts of each reported ring
    min_score: float | None = None  # every reported ring scores at least this
    max_score: float | None = None  # ... and at most this
    summary_has: tuple[str, ...] = ()


CASES = [
    Case("farm_is_ring", FARM, FARM_LINKS, rings=[{"F0", "F1", "F2", "F3", "F4"}], min_score=0.75,
         summary_has=("phone_card P-1 (5 accounts)", "device D-1 (5 accounts)", "5 accounts at 3 banks")),
    Case("family_not_reported", FAMILY, [], rings=[]),
    Case("family_scores_low", FAMILY, [], settings={"min_score": 0.0}, rings=[{"M0", "M1", "M2"}], max_score=0.3,
         summary_has=("phone_card 13800000000",)),
    Case("family_phone_ignored_when_disabled", FAMILY, [], settings={"min_score": 0.0, "use_account_phone": False}),
    Case("public_ip_is_hub", PUBLIC, PUBLIC_LINKS, settings={"min_score": 0.0}, rings=[]),
    Case("public_ip_without_cap_would_be_one_ring", PUBLIC, PUBLIC_LINKS,
         settings={"min_score": 0.0, "max_accounts_per_identifier": 1000, "max_ring_size": 1000},
         rings=[{a["account"] for a in PUBLIC}]),
    Case("hub_does_not_merge_farm_with_the_public", FARM + PUBLIC, FARM_LINKS + PUBLIC_LINKS
         + [link(a["bank"], a["account"], "ip", "203.0.113.7") for a in FARM],
         rings=[{"F0", "F1", "F2", "F3", "F4"}], min_score=0.75),
    Case("office_device_scores_low", OFFICE, OFFICE_LINKS, settings={"min_score": 0.0},
         rings=[{a["account"] for a in OFFICE}], max_score=0.25),
    Case("own_accounts_halved", OWNER, OWNER_LINKS, settings={"min_score": 0.0}, rings=[{"S1"}], max_score=0.45),
    Case("sharing_chain_is_one_ring", CHAIN, CHAIN_LINKS, settings={"min_score": 0.0},
         rings=[{"X0", "X1", "X2", "X3"}], summary_has=("3 identifiers of 3 kinds",)),
    Case("pair_below_min_ring_size", PAIR, PAIR_LINKS, settings={"min_score": 0.0}),
    Case("pair_with_min_ring_size_two", PAIR, PAIR_LINKS, settings={"min_score": 0.0, "min_ring_size": 2},
         rings=[{"Q0", "Q1"}]),
    Case("ip_kind_switched_off", PAIR, PAIR_LINKS, settings={"min_score": 0.0, "min_ring_size": 2,
         "kinds": ("device",)}, rings=[{"Q0", "Q1"}], summary_has=("1 identifier of 1 kind",)),
    Case("household_not_reported", HOUSEHOLD, HOUSEHOLD_LINKS, rings=[]),
    Case("household_sharing_everything_scores_low", HOUSEHOLD, HOUSEHOLD_LINKS, settings={"min_score": 0.0},
         rings=[{"H0", "H1", "H2"}], max_score=0.2, summary_has=("3 identifiers of 3 kinds",)),
    Case("household_chance_pair_not_reported", HOUSEHOLD_PAIR, HOUSEHOLD_LINKS, rings=[]),
    Case("forged_id_cards_opening_several_accounts_are_a_ring", IDFARM, IDFARM_LINKS,
         rings=[{a["account"] for a in IDFARM}], min_score=0.9, summary_has=("9 accounts at 3 banks (3 holders",)),
    Case("households_and_forged_farm_together", HOUSEHOLD + IDFARM + OFFICE + FAMILY,
         HOUSEHOLD_LINKS + IDFARM_LINKS + OFFICE_LINKS, rings=[{a["account"] for a in IDFARM}]),
    Case("everything_together", FARM + FAMILY + PUBLIC + OFFICE, FARM_LINKS + PUBLIC_LINKS + OFFICE_LINKS,
         rings=[{"F0", "F1", "F2", "F3", "F4"}]),
]  # fmt: skip


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


def load_world(cli, tmp_path: Path, accounts: list[dict], links: list[dict], txns: list[dict] | None = None) -> None:
    r = cli(f"load accounts {write_csv(tmp_path / 'accounts.csv', accounts, ACCOUNT_COLUMNS)}")
    assert r.code == 0, r.err
    if txns:
        r = cli(f"load transactions {write_csv(tmp_path / 'txns.csv', txns, list(txns[0]))}")
        assert r.code == 0, r.err
    if links:
        r = cli(f"load links {write_csv(tmp_path / 'links.csv', links, LINK_COLUMNS)}")
        assert r.code == 0, r.err


def detect(db: Path, **settings):
    with Workspace(db) as ws:
        return detect_rings(DuckDBEngine(ws.con), RingSettings(**settings))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_ring_cases(case: Case, cli, db: Path, tmp_path: Path) -> None:
    load_world(cli, tmp_path, case.accounts, case.links)
    found = detect(db, **case.settings)
    members = found.members.to_pylist()
    got = sorted(
        sorted({m["account"] for m in members if m["alert_id"] == a}) for a in found.alerts["alert_id"].to_pylist()
    )
    assert got == sorted(sorted(r) for r in case.rings)
    for alert in found.alerts.to_pylist():
        assert alert["typology"] == "card_farm_ring"
        assert 0.0 <= alert["score"] <= 1.0
        if case.min_score is not None:
            assert alert["score"] >= case.min_score, alert["summary"]
        if case.max_score is not None:
            assert alert["score"] <= case.max_score, alert["summary"]
        for text in case.summary_has:
            assert text in alert["summary"]
        ids = sorted(m["account_id"] for m in members if m["alert_id"] == alert["alert_id"])
        assert alert["alert_id"] == alert_id("card_farm_ring", *ids)
        assert alert["n_accounts"] == len(ids)
    assert {m["role"] for m in members} <= {"member"}


def test_scores_order_farm_above_innocents(cli, db: Path, tmp_path: Path) -> None:
    load_world(cli, tmp_path, FARM + FAMILY + OFFICE + OWNER, FARM_LINKS + OFFICE_LINKS + OWNER_LINKS)
    found = detect(db, min_score=0.0)
    by_first = {
        min(m["account"] for m in found.members.to_pylist() if m["alert_id"] == a["alert_id"]): a["score"]
        for a in found.alerts.to_pylist()
    }
    assert by_first["F0"] > by_first["S1"] > by_first["M0"] > by_first["O0"]


def test_evidence_is_a_bounded_sample_and_amount_is_money_received(cli, db: Path, tmp_path: Path) -> None:
    txns = [
        {"txn_id": f"t{i:02d}", "ts": f"2024-03-10T10:{i:02d}:00", "src_bank": "ICBC", "src_account": "VICTIM",
         "dst_bank": FARM[i % 5]["bank"], "dst_account": FARM[i % 5]["account"], "amount": "100.50"}
        for i in range(30)
    ] + [{"txn_id": "out1", "ts": "2024-03-11T00:00:00", "src_bank": "CCB", "src_account": "F4",
          "dst_bank": "ABC", "dst_account": "CASH", "amount": "999"}]  # fmt: skip
    load_world(cli, tmp_path, FARM, FARM_LINKS, txns)
    found = detect(db, evidence_txns=7)
    (alert,) = found.alerts.to_pylist()
    assert alert["n_txns"] == 31
    assert str(alert["amount"]) == "3015.0000"
    assert alert["start_ts"].isoformat() == "2024-03-10T10:00:00"
    assert alert["end_ts"].isoformat() == "2024-03-11T00:00:00"
    assert found.evidence["txn_id"].to_pylist() == [f"t{i:02d}" for i in range(7)]
    assert detect(db, evidence_txns=0).evidence.num_rows == 0


def test_ring_without_transactions_is_dated_by_opening(cli, db: Path, tmp_path: Path) -> None:
    load_world(cli, tmp_path, FARM, FARM_LINKS)
    (alert,) = detect(db).alerts.to_pylist()
    assert alert["start_ts"].isoformat() == "2024-03-01T10:00:00"
    assert alert["end_ts"].isoformat() == "2024-03-03T10:00:00"
    assert alert["n_txns"] == 0


def test_same_input_same_output(cli, db: Path, tmp_path: Path) -> None:
    load_world(cli, tmp_path, FARM + OFFICE, FARM_LINKS + OFFICE_LINKS)
    first, second = detect(db, min_score=0.0), detect(db, min_score=0.0)
    assert first.alerts.equals(second.alerts) and first.members.equals(second.members)


def test_settings_from_config_and_validation(tmp_path: Path) -> None:
    (tmp_path / "fundtrace.toml").write_text('[rings]\nmax_accounts_per_identifier = 50\nkinds = ["device", "ip"]\n')
    config = Config.load(tmp_path / "fundtrace.toml")
    s = config.section("rings", RingSettings, {"min_ring_size": 4})
    assert s == replace(RingSettings(), max_accounts_per_identifier=50, kinds=("device", "ip"), min_ring_size=4)
    with pytest.raises(ConfigError) as err:
        config.section("rings", RingSettings, {"kinds": "device,sim", "min_score": 2, "max_ring_size": 1})
    fields = {f for f, _ in err.value.problems}
    assert fields == {"rings.kinds", "rings.min_score", "rings.max_ring_size"}
