"""Loading through the real CLI: every bad-input kind is rejected with its line and reason, or
fails the batch with a one-line error, and the workspace is otherwise left as it was."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest

from tests.conftest import FIXTURES

BAD = FIXTURES / "bad"
NATIVE = FIXTURES / "native"
TABLES = ("transactions", "accounts", "links", "reports", "calls", "labels", "batches", "rejects")


def snapshot(db) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}
        counts["txns"] = sorted(con.execute("SELECT txn_id, amount FROM transactions").fetchall())
        return counts
    finally:
        con.close()


def rejects(db, batch_id=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT line, reason, detail, raw FROM rejects ORDER BY batch_id, line").fetchall()
    finally:
        con.close()


@pytest.fixture
def base(cli, db):
    """A workspace holding the three good transactions g1..g3 of fixtures/native."""
    r = cli(f"load transactions {NATIVE / 'transactions.csv'}")
    assert r.code == 0, r.err
    return db


# file, reason, line (record number, header = 1): each bad file holds g1..g3 then one bad row.
ROW_CASES = [
    ("missing_field.csv", "missing_field", 5),
    ("bad_number.csv", "bad_number", 5),
    ("bad_timestamp.csv", "bad_timestamp", 5),
    ("non_positive_amount.csv", "non_positive_amount", 5),
    ("negative_amount.csv", "non_positive_amount", 5),
    ("nan_amount.csv", "non_finite_amount", 5),
    ("infinite_amount.csv", "non_finite_amount", 5),
    ("unknown_currency.csv", "unknown_currency", 5),
    ("unknown_channel.csv", "unknown_channel", 5),
    ("duplicate_in_batch.csv", "duplicate_in_batch", 5),
    ("wrong_column_count.csv", "wrong_column_count", 5),
    ("bad_encoding.csv", "bad_encoding", 5),
]


@pytest.mark.parametrize(("name", "reason", "line"), ROW_CASES)
def test_bad_row_is_rejected_with_line_and_reason(cli, db, name, reason, line):
    r = cli(f"load transactions {BAD / name} --max-reject-rate 0.5")
    assert r.code == 0, r.err
    got = rejects(db)
    assert [(g[0], g[1]) for g in got] == [(line, reason)], got
    assert got[0][3], "the raw row is kept"
    snap = snapshot(db)
    kept = 3 if reason != "duplicate_in_batch" else 3
    assert snap["transactions"] == kept
    assert {t for t, _ in snap["txns"]} == {"g1", "g2", "g3"}
    assert f"line {line}: {reason}" in r.err


def test_good_rows_are_typed_and_in_utc(cli, db):
    assert cli(f"load transactions {NATIVE / 'transactions.csv'}").code == 0
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT txn_id, strftime(ts, '%Y-%m-%d %H:%M'), src_bank, amount, currency, channel "
        "FROM transactions ORDER BY txn_id"
    ).fetchall()
    con.close()
    assert [r[1] for r in rows] == ["2024-03-01 09:00", "2024-03-01 01:05", "2024-03-01 09:07"]
    assert rows[2][4:] == ("CNY", "transfer")  # defaults for empty currency and channel
    assert str(rows[2][3]) == "985.5000"


def test_same_content_again_is_skipped_and_other_content_is_a_conflict(cli, base):
    r = cli(f"load transactions {BAD / 'conflict_base.csv'}")
    assert r.code == 0
    r = cli(f"load transactions {BAD / 'conflict.csv'} --max-reject-rate 0.5")
    assert r.code == 0, r.err
    assert "3 already loaded" in r.err
    assert [(g[0], g[1]) for g in rejects(base)] == [(5, "conflict")]
    con = duckdb.connect(str(base), read_only=True)
    assert con.execute("SELECT amount FROM transactions WHERE txn_id = 'b1'").fetchall()[0][0] == 200


def test_reloading_the_same_file_is_a_no_op(cli, base):
    before = snapshot(base)
    r = cli(f"load transactions {NATIVE / 'transactions.csv'}")
    assert r.code == 0
    assert "already loaded" in r.err
    assert snapshot(base) == before


def test_too_many_rejects_fail_the_batch_and_write_nothing(cli, base):
    before = snapshot(base)
    r = cli(f"load transactions {BAD / 'too_many_rejects.csv'}")
    assert r.code == 2
    assert "nothing was loaded" in r.err
    assert "line 3: bad_timestamp" in r.err  # the rejects are still shown
    assert snapshot(base) == before


FATAL_CASES = [
    ("empty.csv", "empty"),
    ("header_only.csv", "no data rows"),
    ("missing_columns.csv", "missing required column(s) dst_account"),
    ("not_utf8.csv", "not UTF-8"),
    ("utf16.csv", "UTF-16"),
    ("not_csv.png", "not a CSV or Parquet file"),
    ("broken.parquet", "cannot read as PARQUET"),
    ("damaged.csv.gz", "damaged gzip"),
]


@pytest.mark.parametrize(("name", "message"), FATAL_CASES)
def test_unusable_file_is_one_line_error_exit_2_nothing_written(cli, base, name, message):
    before = snapshot(base)
    r = cli(f"load transactions {BAD / name}")
    assert r.code == 2, (r.out, r.err)
    assert message in r.err
    assert name in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert "Traceback" not in r.err
    assert snapshot(base) == before


def test_a_bad_file_named_last_fails_before_the_first_is_written(cli, db):
    r = cli(f"load transactions {NATIVE / 'transactions.csv'} {BAD / 'missing_columns.csv'}")
    assert r.code == 2
    assert snapshot(db)["transactions"] == 0


def test_missing_path_and_unknown_kind(cli, db):
    assert cli("load transactions /no/such/file.csv").code == 2
    assert cli(f"load nonsense {NATIVE / 'transactions.csv'}").code == 2


def test_utf8_bom_is_accepted(cli, db):
    r = cli(f"load transactions {BAD / 'utf8_bom.csv'}")
    assert r.code == 0, r.err
    assert snapshot(db)["transactions"] == 2


def test_explicit_delimiter_and_decimal_comma_is_a_bad_number(cli, db):
    r = cli(f"load transactions {BAD / 'semicolon_decimal_comma.csv'} --delimiter ';' --max-reject-rate 1")
    assert r.code == 0, r.err
    assert [g[1] for g in rejects(db)] == ["bad_number"]


def test_links_need_known_accounts_and_kinds(cli, base):
    r = cli(f"load links {BAD / 'links_unknown.csv'} --max-reject-rate 1")
    assert r.code == 0, r.err
    assert [(g[0], g[1]) for g in rejects(base)] == [(3, "unknown_account"), (4, "unknown_kind")]
    assert snapshot(base)["links"] == 1


def test_reports_need_a_known_payment_or_account(cli, base):
    r = cli(f"load reports {BAD / 'reports_unknown.csv'} --max-reject-rate 1")
    assert r.code == 0, r.err
    assert [(g[0], g[1]) for g in rejects(base)] == [
        (3, "unknown_txn"),
        (4, "unknown_account"),
        (5, "missing_field"),
    ]
    assert snapshot(base)["reports"] == 1


def test_all_native_kinds_load_and_accounts_update(cli, db, tmp_path):
    for kind in ("transactions", "accounts", "links", "reports"):
        r = cli(f"load {kind} {NATIVE / (kind + '.csv')}")
        assert r.code == 0, r.err
        assert "0 rejected" in r.err
    changed = tmp_path / "accounts2.csv"
    text = (NATIVE / "accounts.csv").read_text().replace("5000.00", "4000.00")
    changed.write_text(text)
    r = cli(f"load accounts {changed}")
    assert r.code == 0
    assert "2 already loaded, 1 updated" in r.err
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), sum(balance) FROM accounts").fetchall()[0] == (3, 4010)


def test_parquet_and_csv_give_the_same_rows_and_ids(cli, db, tmp_path):
    pq = tmp_path / "t.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * EXCLUDE (txn_id) FROM read_csv('{NATIVE / 'transactions.csv'}', all_varchar=true)) "
        f"TO '{pq}' (FORMAT parquet)"
    )
    csv = tmp_path / "t.csv"
    con.execute(f"COPY (SELECT * FROM read_parquet('{pq}')) TO '{csv}' (HEADER)")
    con.close()
    assert cli(f"load transactions {pq}").code == 0
    r = cli(f"load transactions {csv}")
    assert r.code == 0
    assert "3 already loaded" in r.err  # derived ids agree across formats
    snap = snapshot(db)
    assert all(t.startswith("auto-") for t, _ in snap["txns"])


def test_directory_and_glob(cli, db):
    r = cli(["load", "transactions", str(FIXTURES / "amlworld" / "*_Trans.csv"), "--profile", "amlworld"])
    assert r.code == 0, r.err


def test_amlworld_profile(cli, db):
    r = cli(f"load transactions {FIXTURES / 'amlworld' / 'HI-Tiny_Trans.csv'} --profile amlworld")
    assert r.code == 0, r.err
    r = cli(f"load accounts {FIXTURES / 'amlworld' / 'HI-Tiny_accounts.csv'} --profile amlworld")
    assert r.code == 0, r.err
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT txn_id) FROM transactions").fetchall()[0] == (13, 13)
    assert con.execute("SELECT count(*) FROM labels WHERE is_fraud").fetchall()[0][0] == 4
    assert con.execute("SELECT count(*) FROM labels").fetchall()[0][0] == 13
    cur = dict(con.execute("SELECT channel, count(*) FROM transactions GROUP BY 1").fetchall())
    assert cur == {"transfer": 9, "pos": 2, "crypto": 1, "atm": 1}
    btc = con.execute("SELECT amount, currency FROM transactions WHERE channel = 'crypto'").fetchall()[0]
    assert (str(btc[0]), btc[1]) == ("0.0061", "BTC")
    kinds = dict(con.execute("SELECT account, kind FROM accounts").fetchall())
    assert kinds == {"8000EBD30": "sole_proprietorship", "8002BDF70": "corporation", "8002C1150": "partnership"}
    # IBM pads the transactions' bank ids ("010") but not the accounts file's ("10"): both lose the zeros and meet
    ends = "SELECT src_id AS id FROM transactions UNION ALL SELECT dst_id FROM transactions"
    met = con.execute(f"SELECT count(*) FROM ({ends}) JOIN accounts a ON a.account_id = id").fetchall()[0][0]
    assert met == 8
    assert con.execute("SELECT DISTINCT bank FROM accounts ORDER BY 1").fetchall() == [("1",), ("10",), ("211",)]


def test_amlsim_profile(cli, db):
    r = cli(f"load transactions {FIXTURES / 'amlsim' / 'transactions.csv'} --profile amlsim")
    assert r.code == 0, r.err
    r = cli(f"load accounts {FIXTURES / 'amlsim' / 'accounts.csv'} --profile amlsim")
    assert r.code == 0, r.err
    con = duckdb.connect(str(db), read_only=True)
    n = con.execute("SELECT count(*) FROM transactions").fetchall()[0][0]
    sar = con.execute("SELECT count(*) FROM labels WHERE is_fraud AND alert_id IS NOT NULL").fetchall()[0][0]
    assert n == 150
    assert sar == sum(
        1 for line in (FIXTURES / "amlsim" / "transactions.csv").read_text().splitlines() if ",True," in line
    )
    # accounts and transactions share the AMLSim bank key, so ids match
    joined = con.execute("SELECT count(*) FROM transactions t JOIN accounts a ON a.account_id = t.src_id").fetchall()[
        0
    ][0]
    assert joined == n
    assert con.execute("SELECT DISTINCT currency FROM transactions").fetchall() == [("USD",)]


def test_status_json(cli, base):
    import json

    r = cli("status --format json")
    info = json.loads(r.out)[0]
    assert info["tables"]["transactions"] == 3
    assert info["schema_version"] >= 1
    assert info["batches"][0]["sha256"]


def test_workspace_busy_is_exit_75(cli, base):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(base)!r}); print('ok', flush=True); "
         "time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ok"
        r = cli("status")
        assert r.code == 75
        assert f"held by PID {holder.pid}" in r.err
    finally:
        holder.kill()
        holder.wait()


def test_gzip_csv(cli, db, tmp_path):
    import gzip

    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress((NATIVE / "transactions.csv").read_bytes()))
    r = cli(f"load transactions {gz}")
    assert r.code == 0, r.err
    assert snapshot(db)["transactions"] == 3


def test_identical_rows_without_txn_id_are_two_transfers(cli, db, tmp_path):
    """Identical content without txn_id derives one id twice: the repeat is numbered, not rejected
    (the duplicate check runs only when a key hash repeats, and must then number first)."""
    f = tmp_path / "twice.csv"
    row = "2024-03-01T09:00:00Z,ICBC,6222001,CCB,6217002,1000.00,CNY,transfer\n"
    f.write_text("ts,src_bank,src_account,dst_bank,dst_account,amount,currency,channel\n" + row + row)
    r = cli(f"load transactions {f}")
    assert r.code == 0, r.err
    ids = [t for t, _ in snapshot(db)["txns"]]
    assert len(ids) == 2 and ids[0].startswith("auto-") and ids[1] == ids[0] + "-2", ids
    assert rejects(db) == []


def test_duplicate_key_in_a_later_batch_is_checked_against_the_workspace(cli, base, tmp_path):
    """The workspace check runs when the table already holds rows: same content is skipped,
    other content with a known txn_id is a conflict, and a new row beside them is kept."""
    f = tmp_path / "later.csv"
    f.write_text(
        "txn_id,ts,src_bank,src_account,dst_bank,dst_account,amount,currency,channel\n"
        "g1,2024-03-01T09:00:00Z,ICBC,6222001,CCB,6217002,1000.00,CNY,transfer\n"
        "g2,2024-03-01T09:05:00Z,CCB,6217002,ABC,6228003,5.00,CNY,online\n"
        "n1,2024-03-02T09:00:00Z,ICBC,6222001,CCB,6217002,7.00,CNY,transfer\n"
    )
    r = cli(f"load transactions {f} --max-reject-rate 0.5")
    assert r.code == 0, r.err
    assert "1 already loaded" in r.err
    assert [(g[0], g[1]) for g in rejects(base)] == [(3, "conflict")]
    assert {t for t, _ in snapshot(base)["txns"]} == {"g1", "g2", "g3", "n1"}


def test_codes_are_normalised_or_rejected(cli, db, tmp_path):
    """Codes already in canonical form pass as they are; others are normalised (channel lower
    case with _ for - and blanks, currency upper case) and rejected only when still unknown."""
    f = tmp_path / "codes.csv"
    head = "txn_id,ts,src_bank,src_account,dst_bank,dst_account,amount,currency,channel\n"
    rows = [
        ("c1", "CNY", "transfer"),
        ("c2", "usd", "Cross-Border"),
        ("c3", "", "ATM"),
        ("c4", "EUR", ""),
        ("c5", "cny", "cross border"),
        ("c6", "XQZ", "pos"),
        ("c7", "USD", "teleport"),
    ]
    lines = [f"{t},2024-03-01T09:00:00Z,B,a{i},B,b{i},10.00,{cur},{ch}\n" for i, (t, cur, ch) in enumerate(rows)]
    f.write_text(head + "".join(lines))
    r = cli(f"load transactions {f} --max-reject-rate 0.5")
    assert r.code == 0, r.err
    con = duckdb.connect(str(db), read_only=True)
    got = dict(
        (t, (c, ch)) for t, c, ch in con.execute("SELECT txn_id, currency, channel FROM transactions").fetchall()
    )
    con.close()
    assert got == {
        "c1": ("CNY", "transfer"),
        "c2": ("USD", "cross_border"),
        "c3": ("CNY", "atm"),
        "c4": ("EUR", "transfer"),
        "c5": ("CNY", "cross_border"),
    }
    assert [(g[0], g[1]) for g in rejects(db)] == [(7, "unknown_currency"), (8, "unknown_channel")]


def test_first_occurrence_in_file_order_is_kept_in_a_parallel_read(cli, db, tmp_path):
    """A file big enough to be read by several threads: the duplicate kept is the one earlier in
    the file and the one reported is the later one. (The kept row is chosen by insertion order;
    a join inside the insert pipeline once broke file order there, so the row kept and the row
    reported could be the same one while the other vanished.)"""
    f = tmp_path / "big.csv"
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT CASE WHEN i = 199999 THEN 'k0' ELSE 'k' || i END AS txn_id,
                   TIMESTAMP '2024-01-01' + to_microseconds(i * 1234567) AS ts,
                   'B' AS src_bank, 'a' || (i % 997) AS src_account,
                   'B' AS dst_bank, 'b' || (i % 991) AS dst_account, 1 + i AS amount,
                   'CNY' AS currency, CASE WHEN i % 7 = 0 THEN 'pos' WHEN i % 11 = 0 THEN 'online'
                   ELSE 'transfer' END AS channel
            FROM range(200000) r(i)) TO '{f}' (HEADER)"""
    )
    con.close()
    r = cli(f"load transactions {f}")
    assert r.code == 0, r.err
    assert [(g[0], g[1]) for g in rejects(db)] == [(200001, "duplicate_in_batch")]
    con = duckdb.connect(str(db), read_only=True)
    kept = con.execute("SELECT amount, count(*) OVER () FROM transactions WHERE txn_id = 'k0'").fetchall()
    order = con.execute(
        "SELECT count(*) FROM (SELECT amount - lag(amount) OVER (ORDER BY rowid) AS d FROM transactions) WHERE d < 0"
    ).fetchall()[0][0]
    con.close()
    assert kept == [(1, 1)]
    assert order == 0, "rows are stored in file order"


AMLSIM_V1_TXNS = """TX_ID,SENDER_ACCOUNT_ID,RECEIVER_ACCOUNT_ID,TX_TYPE,TX_AMOUNT,TIMESTAMP,IS_FRAUD,ALERT_ID
1,6456,9069,TRANSFER,465.05,0,False,-1
2,7516,9543,TRANSFER,564.64,0,False,-1
664370,4282,5009,TRANSFER,570258.25,101,True,1
"""
AMLSIM_V1_ACCOUNTS = """ACCOUNT_ID,CUSTOMER_ID,INIT_BALANCE,COUNTRY,ACCOUNT_TYPE,IS_FRAUD,TX_BEHAVIOR_ID
4282,C_4282,1000.0,US,I,True,1
5009,C_5009,250.5,US,I,False,1
"""


def test_amlsim_earlier_layout(cli, db, tmp_path):
    """AMLSim's published sample sets use upper-case names and step numbers: the amlsim profile reads them too."""
    (tmp_path / "transactions.csv").write_text(AMLSIM_V1_TXNS)
    (tmp_path / "accounts.csv").write_text(AMLSIM_V1_ACCOUNTS)
    for kind in ("transactions", "accounts"):
        r = cli(f"load {kind} {tmp_path / (kind + '.csv')} --profile amlsim")
        assert r.code == 0, r.err
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT txn_id, strftime(ts, '%Y-%m-%d'), src_account, dst_account, amount FROM transactions ORDER BY 1"
    ).fetchall()
    labels = con.execute("SELECT txn_id, is_fraud, alert_id FROM labels WHERE is_fraud").fetchall()
    accounts = con.execute("SELECT account, holder_id, kind, balance FROM accounts ORDER BY 1").fetchall()
    met = con.execute("SELECT count(*) FROM transactions t JOIN accounts a ON a.account_id = t.src_id").fetchall()
    con.close()
    assert rows[2] == ("664370", "2017-04-12", "4282", "5009", Decimal("570258.2500"))  # step 101: day 101
    assert labels == [("664370", True, "1")]
    assert accounts[0][:3] == ("4282", "C_4282", "personal") and float(accounts[0][3]) == 1000.0
    assert met[0][0] == 1


def test_amlsim_raw_log(cli, db, tmp_path):
    """The simulator's raw tx_log.csv (PaySim's columns, step in days, no ids): two identical rows are two payments."""
    path = tmp_path / "tx_log.csv"
    path.write_text(
        "step,type,amount,nameOrig,oldbalanceOrig,newbalanceOrig,nameDest,oldbalanceDest,newbalanceDest,isSAR,alertID\n"
        "3,TRANSFER,100.5,7,1000,899.5,9,0,100.5,0,-1\n"
        "3,TRANSFER,100.5,7,1000,899.5,9,0,100.5,0,-1\n"
        "40,TRANSFER,2000,9,5000,3000,11,0,2000,1,12\n"
    )
    r = cli(f"load transactions {path} --profile amlsim")
    assert r.code == 0, r.err
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT strftime(ts, '%Y-%m-%d'), src_account, dst_account FROM transactions ORDER BY ts"
    ).fetchall()
    ids = con.execute("SELECT count(DISTINCT txn_id) FROM transactions").fetchall()[0][0]
    labels = con.execute("SELECT is_fraud, alert_id FROM labels WHERE is_fraud").fetchall()
    con.close()
    assert rows == [("2017-01-04", "7", "9"), ("2017-01-04", "7", "9"), ("2017-02-10", "9", "11")] and ids == 3
    assert labels == [(True, "12")]
