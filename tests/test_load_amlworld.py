"""The AMLworld accounts profile: an entity's legal form becomes the account's kind under its own
name, never 'business', so no AMLworld account is taken as ordinary commerce by detection."""

from __future__ import annotations

import duckdb
import pytest

from fundtrace.detect import DetectSettings

HEADER = "Bank Name,Bank ID,Account Number,Entity ID,Entity Name\n"
CASES = [
    ("Corporation #33520", "corporation"),
    ("Sole Proprietorship #50438", "sole_proprietorship"),
    ("Partnership #91", "partnership"),
    ("corporation #7", "corporation"),  # case does not matter
    (" Partnership #8", "partnership"),  # nor outer blanks
    ("Jane Doe", "personal"),  # any other name: a person
    ("Proprietorship Partners Ltd", "personal"),
]


def _load(cli, db, tmp_path, names: list[str]) -> dict[str, str]:
    path = tmp_path / "x_accounts.csv"
    rows = [f"Bank #1,001,A{i:03d},E{i:03d},{name}" for i, name in enumerate(names)]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    r = cli(f"load accounts {path} --profile amlworld")
    assert r.code == 0, r.err
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT account, kind FROM accounts").fetchall())
    finally:
        con.close()


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_kind_from_legal_form(cli, db, tmp_path, name, kind):
    assert _load(cli, db, tmp_path, [name]) == {"A000": kind}


def test_no_amlworld_kind_is_innocent_or_income(cli, db, tmp_path):
    """Every AMLworld entity has a legal form, launderers included: none may read as commerce."""
    kinds = set(_load(cli, db, tmp_path, [n for n, _ in CASES]).values())
    settings = DetectSettings()
    assert kinds == {"corporation", "sole_proprietorship", "partnership", "personal"}
    assert not kinds & set(settings.innocent_kinds)
    assert not kinds & set(settings.income_kinds)


def test_holder_is_the_entity(cli, db, tmp_path):
    path = tmp_path / "y_accounts.csv"
    path.write_text(
        HEADER
        + "Bank #1,001,A1,E9,Corporation #9\nBank #2,0022,A2,E9,Corporation #9\nBank #2,0022,A3,E8,Partnership #8\n"
    )
    assert cli(f"load accounts {path} --profile amlworld").code == 0
    con = duckdb.connect(str(db), read_only=True)
    rows = sorted(con.execute("SELECT bank, account, holder_id, holder_name FROM accounts").fetchall())
    con.close()
    assert rows == [  # bank ids of digits lose their leading zeros (as in the transactions: they meet)
        ("1", "A1", "E9", "Corporation #9"),
        ("22", "A2", "E9", "Corporation #9"),
        ("22", "A3", "E8", "Partnership #8"),
    ]


TRANS_HEADER = (
    "Timestamp,From Bank,Account,To Bank,Account,Amount Received,Receiving Currency,Amount Paid,"
    "Payment Currency,Payment Format,Is Laundering\n"
)
# (row, expected channel, expected currency)
CHANNELS = [
    ("2022/09/01 00:20,010,A1,020,B1,14.00,US Dollar,100.00,Yuan,Wire,1", "cross_border", "CNY"),
    ("2022/09/01 00:20,010,A1,020,B1,100.00,US Dollar,100.00,US Dollar,Wire,0", "transfer", "USD"),
    ("2022/09/01 00:21,010,A1,020,B1,90.00,Euro,100.00,US Dollar,ACH,0", "cross_border", "USD"),
    ("2022/09/01 00:22,010,A1,020,B1,90.00,Euro,100.00,US Dollar,Cheque,0", "cross_border", "USD"),
    ("2022/09/01 00:23,010,A1,020,B1,90.00,Euro,100.00,US Dollar,Credit Card,0", "pos", "USD"),
    ("2022/09/01 00:24,010,A1,020,B1,0.0002,Bitcoin,100.00,US Dollar,Bitcoin,1", "crypto", "USD"),
    ("2022/09/01 00:25,010,A1,020,B1,100.00,US Dollar,100.00,US Dollar,Cash,0", "atm", "USD"),
    ("2022/09/01 00:26,010,A1,010,A1,100.00,US Dollar,100.00,US Dollar,Reinvestment,0", "transfer", "USD"),
]


@pytest.mark.parametrize(("row", "channel", "currency"), CHANNELS)
def test_channel_from_format_and_currencies(cli, db, tmp_path, row, channel, currency):
    """A bank transfer received in another currency than it was paid in leaves the country: cross_border."""
    path = tmp_path / "x_Trans.csv"
    path.write_text(TRANS_HEADER + row + "\n")
    r = cli(f"load transactions {path} --profile amlworld")
    assert r.code == 0, r.err
    con = duckdb.connect(str(db), read_only=True)
    got = con.execute("SELECT channel, currency, amount, strftime(ts, '%Y-%m-%d %H:%M') FROM transactions").fetchall()
    con.close()
    assert [(c, cur, str(a)) for c, cur, a, _ in got] == [(channel, currency, "100.0000")]  # the amount paid
    assert got[0][3] == "2022-09-01 " + row[11:16]


def test_minute_ties_and_identical_rows_are_kept(cli, db, tmp_path):
    """Minute timestamps tie often; two identical rows are two payments (numbered ids), not duplicates."""
    path = tmp_path / "x_Trans.csv"
    rows = [CHANNELS[1][0]] * 2 + [CHANNELS[2][0]]
    path.write_text(TRANS_HEADER + "\n".join(rows) + "\n")
    r = cli(f"load transactions {path} --profile amlworld")
    assert r.code == 0, r.err
    con = duckdb.connect(str(db), read_only=True)
    ids = [t for (t,) in con.execute("SELECT txn_id FROM transactions ORDER BY txn_id").fetchall()]
    labels = con.execute("SELECT count(*) FROM labels WHERE source = 'amlworld'").fetchall()[0][0]
    con.close()
    assert len(set(ids)) == 3 and labels == 3
    assert sum(t.endswith("-2") for t in ids) == 1


def test_a_bitcoin_amount_under_the_resolution_is_named(cli, db, tmp_path):
    """AMLworld pays as little as 0.000001 BTC; money is kept to 4 decimal places, so such a row is rejected
    with a reason that says so (not as a non-positive amount), and a small amount above it is kept, rounded."""
    path = tmp_path / "x_Trans.csv"
    rows = [
        "2022/09/01 00:24,010,A1,020,B1,0.000001,Bitcoin,0.000001,Bitcoin,Bitcoin,0",
        "2022/09/01 00:25,010,A1,020,B1,0.00012345,Bitcoin,0.00012345,Bitcoin,Bitcoin,0",
        "2022/09/01 00:26,010,A1,020,B1,-1,Bitcoin,-1,Bitcoin,Bitcoin,0",
    ]
    path.write_text(TRANS_HEADER + "\n".join(rows) + "\n")
    r = cli(f"load transactions {path} --profile amlworld --max-reject-rate 0.9")
    assert r.code == 0, r.err
    assert "line 2: amount_below_resolution amount=0.000001" in r.out + r.err
    assert "line 4: non_positive_amount amount=-1" in r.out + r.err
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT CAST(amount AS VARCHAR) FROM transactions").fetchall() == [("0.0001",)]
    con.close()


@pytest.mark.parametrize("payee", ["Account", "Account.1", "Account_duplicated_0"])
def test_the_payee_column_under_other_tools_names(cli, db, tmp_path, payee):
    """IBM's header names "Account" twice; a copy written back by pandas ("Account.1") or Polars
    ("Account_duplicated_0") names the payee's column its own way: each is the payee."""
    path = tmp_path / "x_Trans.csv"
    path.write_text(TRANS_HEADER.replace("To Bank,Account,", f"To Bank,{payee},") + CHANNELS[1][0] + "\n")
    r = cli(f"load transactions {path} --profile amlworld")
    assert r.code == 0, r.err
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT src_bank, src_account, dst_bank, dst_account FROM transactions").fetchall()
    con.close()
    assert rows == [("10", "A1", "20", "B1")]
