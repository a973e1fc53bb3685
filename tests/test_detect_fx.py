"""Amounts in several currencies are compared in one: the rates come from the data itself (AMLworld gives each
payment as paid and as received: fx_pairs) or from the fx setting (fundtrace.detect.fit, queries/detect/prep.sql)."""

from __future__ import annotations

import math

import duckdb
import pytest

from fundtrace.detect import DetectSettings
from fundtrace.detect import run as detect_run
from fundtrace.detect.fit import derived_fx, fit, paid_currencies
from fundtrace.score import run as score_run
from fundtrace.workspace import Workspace

HEADER = (
    "Timestamp,From Bank,Account,To Bank,Account,Amount Received,Receiving Currency,Amount Paid,"
    "Payment Currency,Payment Format,Is Laundering\n"
)


def _load(cli, tmp_path, rows: list[str], name: str = "x_Trans.csv") -> None:
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(rows) + "\n")
    r = cli(f"load transactions {path} --profile amlworld --max-reject-rate 0.5")
    assert r.code == 0, r.err


def test_loader_keeps_the_rates_the_payments_tell(cli, db, tmp_path):
    """Per batch and ordered pair: how many payments changed currency and the sum of ln(received / paid); a
    rejected row, a same-currency payment or a received amount that is no positive number tells nothing."""
    _load(
        cli,
        tmp_path,
        [
            "2022/09/01 00:20,010,A1,020,B1,14.00,US Dollar,100.00,Yuan,Wire,0",
            "2022/09/01 00:21,010,A1,020,B1,28.20,US Dollar,200.00,Yuan,ACH,0",
            "2022/09/01 00:22,020,B1,010,A1,700.00,Yuan,100.00,US Dollar,Wire,0",
            "2022/09/01 00:23,010,A1,010,A2,50.00,Yuan,50.00,Yuan,ACH,0",  # same currency
            "2022/09/01 00:24,010,A1,020,B1,0,US Dollar,100.00,Yuan,Wire,0",  # no rate in it
            "2022/09/01 00:25,010,A1,020,B1,14.00,US Dollar,-5,Yuan,Wire,0",  # rejected: amount paid
        ],
    )
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT batch_id, paid, received, n, sum_log FROM fx_pairs ORDER BY paid").fetchall()
    con.close()
    assert [r[:4] for r in rows] == [(1, "CNY", "USD", 2), (1, "USD", "CNY", 1)]
    assert rows[0][4] == pytest.approx(math.log(0.14) + math.log(0.141))
    assert rows[1][4] == pytest.approx(math.log(7.0))


def _pairs(con, pairs, paid_counts):
    con.execute("DELETE FROM fx_pairs").fetchall()
    for paid, received, n, rate in pairs:
        con.execute("INSERT INTO fx_pairs VALUES (1, ?, ?, ?, ?)", [paid, received, n, n * math.log(rate)]).fetchall()
    rows = [(f"T{c}{i}", c) for c, k in paid_counts.items() for i in range(k)]
    for txn, cur in rows:
        con.execute(
            "INSERT INTO transactions (txn_id, ts, src_bank, src_account, dst_bank, dst_account, src_id, dst_id, "
            "amount, currency, channel, batch_id) VALUES (?, TIMESTAMP '2024-01-01', 'b', 'x', 'b', 'y', 1, 2, 1, ?, "
            "'transfer', 1)",
            [txn, cur],
        ).fetchall()


def test_rates_follow_the_best_attested_pairs_from_the_main_currency(tmp_path):
    with Workspace(tmp_path / "w.duckdb") as ws:
        _pairs(
            ws.con,
            [
                ("USD", "CNY", 90, 7.0),  # paid 1 USD, received 7 CNY
                ("CNY", "USD", 10, 1 / 7.2),  # the other way: averaged with the above
                ("EUR", "USD", 50, 1.1),
                ("EUR", "CNY", 1, 100.0),  # seen once, and contradicting: the path through USD wins
                ("JPY", "GBP", 5, 0.005),  # not connected to the main currency: no rate
            ],
            {"CNY": 3, "USD": 2, "EUR": 1, "JPY": 1},
        )
        fx = dict(e.split("=") for e in derived_fx(ws.con, paid_currencies(ws.con)))
        usd = math.exp((90 * math.log(7.0) - 10 * math.log(1 / 7.2)) / 100)
        assert set(fx) == {"CNY", "USD", "EUR"}
        assert float(fx["CNY"]) == 1  # most payments
        assert float(fx["USD"]) == pytest.approx(usd, rel=1e-3)
        assert float(fx["EUR"]) == pytest.approx(usd * 1.1, rel=1e-3)
        assert all(len(v.replace(".", "").lstrip("0")) <= 4 for v in fx.values())  # four significant digits
        settings, notes = fit(ws.con, DetectSettings())
        assert settings.fx == derived_fx(ws.con, paid_currencies(ws.con))
        assert any("compared in CNY" in n for n in notes)
        assert any("no rate for JPY" in n for n in notes)
        # a rate the user set stays; one currency paid in, or nothing telling a rate: none
        assert fit(ws.con, DetectSettings(fx=("USD=7",)))[0].fx == ("USD=7",)
        _pairs(ws.con, [("USD", "CNY", 3, 7.0)], {})
        ws.con.execute("DELETE FROM transactions WHERE currency <> 'CNY'").fetchall()
        assert derived_fx(ws.con, paid_currencies(ws.con)) == ()


@pytest.mark.parametrize("entry", ["USD", "USD=", "=7", "USD=0", "USD=-1", "USD=nan", "USD=inf", "USD=x"])
def test_bad_fx_entries_are_refused(entry):
    assert [f for f, _ in DetectSettings(fx=(entry,)).validate()] == ["fx"]


def _mule_rows() -> list[str]:
    """Victims with US Dollar accounts pay a Yuan account, which passes the money on in Yuan within hours.
    As paid, 3,000 came in and 20,700 went out; at the rate the payments tell, 21,300 came in."""
    rows = []
    for i in range(1, 4):
        rows.append(f"2022/09/01 0{i}:00,020,V{i},010,M1,7100.00,Yuan,1000.00,US Dollar,Wire,1")
    rows.append("2022/09/01 06:00,010,M1,010,N1,10350.00,Yuan,10350.00,Yuan,ACH,1")
    rows.append("2022/09/01 07:00,010,M1,010,N2,10350.00,Yuan,10350.00,Yuan,ACH,1")
    # ordinary payments in Yuan make it the main currency; a few more in each direction tell the rate
    rows += [
        f"2022/09/0{2 + i % 5} 10:{i:02d},010,C{i},010,D{i},{50 + i}.00,Yuan,{50 + i}.00,Yuan,ACH,0" for i in range(20)
    ]
    rows += [f"2022/09/03 12:{i:02d},030,U{i},030,W{i},710.00,Yuan,100.00,US Dollar,Wire,0" for i in range(5)]
    return rows


def _pass_through(db, **settings) -> set[str]:
    with Workspace(db) as ws:
        detect_run(ws, DetectSettings(**settings), full=True)
        return {
            a
            for (a,) in ws.con.execute(
                "SELECT DISTINCT m.account FROM alert_members m JOIN alerts a USING (alert_id) "
                "WHERE a.typology = 'pass_through' AND m.role = 'mule'"
            ).fetchall()
        }


def _flow_balance(db) -> bool:
    """Whether the mule's account score has FLOW_BALANCE (money out close to money in), at detect's rates."""
    with Workspace(db) as ws:
        score_run(ws)
        reasons = ws.con.execute(
            "SELECT to_json(reasons) FROM account_scores WHERE bank = '10' AND account = 'M1'"
        ).fetchall()[0][0]
    return "FLOW_BALANCE" in reasons


def test_a_mule_paid_in_another_currency_is_found_only_at_the_rate(cli, db, tmp_path):
    _load(cli, tmp_path, _mule_rows())
    assert _pass_through(db) == {"M1"}
    with Workspace(db) as ws:
        assert [r[0] for r in ws.con.execute("SELECT currency FROM detect_fx WHERE rate = 1").fetchall()] == ["CNY"]
    assert _flow_balance(db)  # scores compare amounts at the rates of the last detect run too
    assert _pass_through(db, fx=("CNY=1",)) == set()  # no rate for US Dollar: 3,000 in, 20,700 out, as paid
    assert not _flow_balance(db)
