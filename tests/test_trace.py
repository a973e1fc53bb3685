"""Tracing: the issue's worked examples exactly, report resolution, stops, returns and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fundtrace.trace import Claim, TraceSettings, allocate_returns, run, trace_ledger
from fundtrace.workspace import Workspace

TX_HEADER = "txn_id,ts,src_bank,src_account,dst_bank,dst_account,amount,channel\n"
EXAMPLE_A = [
    ("t1", "2026-01-01T10:00:00", "V", "M", 100, "transfer"),
    ("t2", "2026-01-01T11:00:00", "C", "M", 50, "transfer"),
    ("t3", "2026-01-01T12:00:00", "M", "X", 80, "transfer"),
    ("t4", "2026-01-01T13:00:00", "M", "Y", 40, "transfer"),
    ("t5", "2026-01-01T14:00:00", "C", "M", 30, "transfer"),
]


def write_tx(path: Path, rows, bank="b1") -> Path:
    lines = [TX_HEADER]
    for txn, ts, src, dst, amount, channel, *banks in rows:
        sb, db = banks if banks else (bank, bank)
        lines.append(f"{txn},{ts},{sb},{src},{db},{dst},{amount},{channel}\n")
    path.write_text("".join(lines))
    return path


def write_reports(path: Path, rows: list[dict]) -> Path:
    cols = [
        "case_id",
        "victim_bank",
        "victim_account",
        "reported_at",
        "amount_lost",
        "txn_id",
        "first_bank",
        "first_account",
        "paid_at",
    ]
    text = ",".join(cols) + "\n" + "".join(",".join(str(r.get(c, "")) for c in cols) + "\n" for r in rows)
    path.write_text(text)
    return path


def cents(x) -> float:
    return round(float(x), 2)


# --- example A -------------------------------------------------------------------------------------------


def test_example_a_in_memory():
    txns = [dict(txn_id=t, ts=ts, src=s, dst=d, amount=a) for t, ts, s, d, a, _ in EXAMPLE_A]
    out = trace_ledger(txns, [dict(case_id="A", txn_id="t1")])
    flows = {f["txn_id"]: f for f in out["flows"]}
    assert {k: cents(flows[k]["taint_haircut"]) for k in ("t3", "t4")} == {"t3": 53.33, "t4": 26.67}
    assert {k: cents(flows[k]["taint_fifo"]) for k in ("t3", "t4")} == {"t3": 80.0, "t4": 20.0}
    assert {k: cents(flows[k]["taint_lifo"]) for k in ("t3", "t4")} == {"t3": 30.0, "t4": 40.0}
    assert {k: cents(flows[k]["taint_poison"]) for k in ("t3", "t4")} == {"t3": 80.0, "t4": 40.0}
    assert {k: cents(flows[k]["taint_libr"]) for k in ("t3", "t4")} == {"t3": 30.0, "t4": 40.0}
    m = next(h for h in out["holdings"] if h["account"] == "M")
    assert (cents(m["held_haircut"]), cents(m["held_fifo"]), cents(m["held_lifo"]), cents(m["held_libr"])) == (
        20.0,
        0.0,
        30.0,
        30.0,
    )
    assert cents(m["balance"]) == 60.0 and cents(m["held_poison"]) == 60.0


def test_example_a_in_workspace(cli, tmp_path):
    write_tx(tmp_path / "tx.csv", EXAMPLE_A)
    write_reports(
        tmp_path / "r.csv",
        [
            dict(
                case_id="A",
                victim_bank="b1",
                victim_account="V",
                reported_at="2026-01-02T00:00:00",
                amount_lost=100,
                txn_id="t1",
            )
        ],
    )
    assert cli(f"load transactions {tmp_path / 'tx.csv'}").code == 0
    assert cli(f"load reports {tmp_path / 'r.csv'}").code == 0
    r = cli("trace A --format json")
    assert r.code == 0, r.err
    data = json.loads(r.out)[0]
    flows = {f["txn_id"]: f for f in data["flows"]}
    assert [
        (flows[t]["taint_haircut"], flows[t]["taint_fifo"], flows[t]["taint_lifo"], flows[t]["taint_poison"])
        for t in ("t3", "t4")
    ] == [(53.3333, 80, 30, 80), (26.6667, 20, 40, 40)]
    hold = {h["account"]: h for h in data["holdings"]}
    m = hold["M"]
    assert (m["held_haircut"], m["held_fifo"], m["held_lifo"], m["held_libr"], m["hop"]) == (20, 0, 30, 30, 1)
    assert hold["X"]["hop"] == 2 and hold["X"]["held_fifo"] == 80
    assert r.code == 0 and m["first_tainted_at"].startswith("2026-01-01 10:00")


# --- returns ---------------------------------------------------------------------------------------------


def test_pro_rata_by_loss():
    claims = [
        Claim("V1", loss=100, held=60, first_at=1, last_at=5),
        Claim("V2", loss=50, held=60, first_at=2, last_at=3),
    ]
    assert allocate_returns(60, claims) == {"V1": 40.0, "V2": 20.0}


def test_direct_return_one_victim_and_by_time():
    assert allocate_returns(60, [Claim("V1", 100, 60), Claim("V2", 50, 0)]) == {"V1": 60.0, "V2": 0.0}
    # told apart by time: V1's deposits all before V2's; each gets their own traced money
    got = allocate_returns(70, [Claim("V1", 100, 30, 1, 2), Claim("V2", 50, 40, 3, 4)])
    assert got == {"V1": 30.0, "V2": 40.0}
    # never more than the loss, and never more than is frozen
    assert allocate_returns(500, [Claim("V1", 100, 10, 1, 5), Claim("V2", 50, 10, 2, 3)]) == {"V1": 100.0, "V2": 50.0}
    assert allocate_returns(10, [Claim("V1", 1, 1, 1, 5), Claim("V2", 2, 1, 2, 3)]) == {"V1": 1.0, "V2": 2.0}


# --- workspace behaviour ---------------------------------------------------------------------------------

CHAIN = [
    # two victims pay the same first-level mule M1 interleaved in time (not separable), M1 -> M2 -> M3 -> ATM
    ("p1", "2026-02-01T09:00:00", "V1", "M1", 100, "transfer"),
    ("c1", "2026-02-01T09:30:00", "S", "M1", 20, "transfer"),
    ("p2", "2026-02-01T10:00:00", "V2", "M1", 50, "transfer"),
    ("h1", "2026-02-01T11:00:00", "M1", "M2", 150, "transfer"),
    ("h2", "2026-02-01T12:00:00", "M2", "M3", 90, "transfer"),
    ("h3", "2026-02-01T12:30:00", "M2", "Q", 0.5, "transfer"),
    ("h4", "2026-02-01T13:00:00", "M3", "ATM9", 60, "atm"),
    ("h5", "2026-02-01T14:00:00", "M3", "EXT", 10, "transfer", "b1", "b9"),
]


@pytest.fixture
def chain_ws(cli, tmp_path):
    write_tx(tmp_path / "tx.csv", CHAIN)
    write_reports(
        tmp_path / "r.csv",
        [
            dict(
                case_id="K1",
                victim_bank="b1",
                victim_account="V1",
                reported_at="2026-02-02T00:00:00",
                amount_lost=100,
                txn_id="p1",
            ),
            dict(
                case_id="K2",
                victim_bank="b1",
                victim_account="V2",
                reported_at="2026-02-02T00:00:00",
                amount_lost=50,
                first_bank="b1",
                first_account="M1",
            ),
        ],
    )
    assert cli(f"load transactions {tmp_path / 'tx.csv'}").code == 0
    assert cli(f"load reports {tmp_path / 'r.csv'}").code == 0
    return tmp_path


def test_two_victims_one_mule_multi_hop_cli(cli, chain_ws, db):
    r = cli("trace --all --rule fifo")
    assert r.code == 0, r.err
    assert "case K1" in r.out and "case K2" in r.out and "cash out" in r.out and "no data bank" in r.out
    with Workspace(db) as ws:
        flows = ws.con.execute(
            "SELECT case_id, txn_id, hop, taint_fifo, taint_haircut, stop FROM trace_flows ORDER BY case_id, ts"
        ).fetchall()
        held = dict(
            ((c, a), (float(f), float(h), float(lb)))
            for c, a, f, h, lb in ws.con.execute(
                "SELECT case_id, account, held_fifo, held_haircut, held_libr FROM trace_holdings"
            ).fetchall()
        )
    by = {(c, t): (hop, float(f), float(h), s) for c, t, hop, f, h, s in flows}
    # FIFO at M1: lots V1 100, clean 20, V2 50 all leave in h1 (150 of 170)
    assert by[("K1", "h1")][:2] == (1, 100.0) and by[("K2", "h1")][:2] == (1, 30.0)
    # at M2 (level 2) h1 is one lot, K1 100/150 and K2 30/150 of it: h2 (90) takes K1 60, K2 18 pro rata;
    # the 0.50 flow h3 carries less than min_amount of either case, so it is not followed
    assert by[("K1", "h2")][:2] == (2, 60.0) and by[("K2", "h2")][:2] == (2, 18.0)
    assert ("K1", "h3") not in by and ("K2", "h3") not in by
    # M3 cashes out 60 at an ATM (K1 40, K2 12), then sends 10 to a bank without data (K1 6.67, K2 2)
    assert by[("K1", "h4")][3] == "cash_out" and (by[("K1", "h4")][1], by[("K2", "h4")][1]) == (40.0, 12.0)
    assert by[("K1", "h5")][3] == "no_data_bank" and (by[("K1", "h5")][1], by[("K2", "h5")][1]) == (6.6667, 2.0)
    assert (held[("K1", "M3")][0], held[("K2", "M3")][0]) == (13.3333, 4.0)
    assert (held[("K1", "M2")][0], held[("K2", "M2")][0]) == (39.6667, 11.9)
    # haircut shares are kept per case through the shared accounts: 100/170 and 50/170 of M1's 150
    assert by[("K1", "h1")][2] == pytest.approx(150 * 100 / 170, abs=1e-4)
    assert by[("K2", "h1")][2] == pytest.approx(150 * 50 / 170, abs=1e-4)
    # conservation per case (haircut): in = flows leaving the trace + held
    for case, paid in (("K1", 100.0), ("K2", 50.0)):
        out = sum(v[2] for (c, t), v in by.items() if c == case and v[3] is not None)
        below = sum(v[2] for (c, t), v in by.items() if c == case and t == "h3")
        kept = sum(v[1] for (c, a), v in held.items() if c == case)
        assert out + kept + below == pytest.approx(paid, abs=0.6)  # h3 (0.50) is below min_amount


def test_rerun_replaces_and_as_of(cli, chain_ws, db):
    assert cli("trace K1").code == 0
    assert cli("trace K1 --as-of 2026-02-01T11:30:00").code == 0
    with Workspace(db) as ws:
        rows = ws.con.execute("SELECT count(*), max(ts) FROM trace_flows WHERE case_id = 'K1'").fetchall()[0]
        hold = ws.con.execute(
            "SELECT account, held_fifo, as_of FROM trace_holdings WHERE case_id = 'K1' ORDER BY account"
        ).fetchall()
    assert rows[0] == 2 and str(rows[1]) == "2026-02-01 11:00:00"
    assert [(a, float(f)) for a, f, _ in hold] == [("M1", 0.0), ("M2", 100.0)]
    assert str(hold[0][2]) == "2026-02-01 11:30:00"


def test_virtual_deposit_and_opening_balance(cli, tmp_path, db):
    # the victim's payment is not in the ledger: the report gives first_account, paid_at and the amount
    write_tx(
        tmp_path / "tx.csv",
        [
            ("o1", "2026-03-01T12:00:00", "M", "X", 70, "transfer"),
            ("o2", "2026-03-01T13:00:00", "M", "Y", 30, "transfer"),
        ],
    )
    (tmp_path / "acc.csv").write_text("bank,account,balance\nb1,M,40\n")
    write_reports(
        tmp_path / "r.csv",
        [
            dict(
                case_id="Z",
                victim_bank="b1",
                victim_account="V",
                reported_at="2026-03-02T00:00:00",
                amount_lost=60,
                first_bank="b1",
                first_account="M",
                paid_at="2026-03-01T11:00:00",
            )
        ],
    )
    for kind, f in (("transactions", "tx.csv"), ("accounts", "acc.csv"), ("reports", "r.csv")):
        assert cli(f"load {kind} {tmp_path / f}").code == 0
    assert cli("trace Z").code == 0
    with Workspace(db) as ws:
        f = ws.con.execute("SELECT txn_id, taint_fifo, taint_lifo, taint_libr FROM trace_flows ORDER BY ts").fetchall()
    # opening 40 (accounts.balance), +60 tainted, -70 -> FIFO 30, LIFO 60, LIBR max(0, 60 - 30) = 30
    assert [(t, float(a), float(b), float(c)) for t, a, b, c in f] == [
        ("report:Z:1", 60.0, 60.0, 60.0),
        ("o1", 30.0, 60.0, 30.0),
        ("o2", 30.0, 0.0, 30.0),
    ]


def test_settings_and_errors(cli, chain_ws):
    assert cli("trace NOPE").code == 2
    assert cli("trace").code == 2
    assert cli("trace K1 --max-hops -1").code == 2
    assert cli("trace K1 --as-of yesterday").code == 2
    with pytest.raises(Exception, match="min_amount"):
        run(None, settings=TraceSettings(min_amount=-1))
    with pytest.raises(Exception, match="min_share"):
        run(None, settings=TraceSettings(min_share=1.5))
    assert cli("trace K1 --min-share -0.1").code == 2


# --- the relative stop rule (min_share) -------------------------------------------------------------------


def test_min_share_stops_flows_small_against_the_loss():
    """A case that lost 1,000: a 5.00 flow of it is followed at min_share 0.001 (1.00), not at 0.01 (10.00)."""
    txns = [
        dict(txn_id="t1", ts=1, src="V", dst="M", amount=1000),
        dict(txn_id="t2", ts=2, src="M", dst="X", amount=995),
        dict(txn_id="t3", ts=3, src="M", dst="Y", amount=5),
        dict(txn_id="t4", ts=4, src="Y", dst="Z", amount=5),
    ]
    pay = [dict(case_id="A", txn_id="t1")]
    loose = trace_ledger(txns, pay, min_share=0.001)
    strict = trace_ledger(txns, pay, min_share=0.01)
    assert [f["txn_id"] for f in loose["flows"]] == ["t1", "t2", "t3", "t4"]
    assert [f["txn_id"] for f in strict["flows"]] == ["t1", "t2"]
    assert sorted(h["account"] for h in strict["holdings"]) == ["M", "X"]
    # the money that was not followed still left M: M's holdings are the same under both settings
    m = [next(h for h in out["holdings"] if h["account"] == "M") for out in (loose, strict)]
    assert m[0] == m[1] and cents(m[1]["held_fifo"]) == 0.0
