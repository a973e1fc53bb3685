"""`fundtrace sql`: one SELECT on a read-only workspace with file access off."""

from __future__ import annotations

import json

import pytest

from test_query import build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("sqlworld"))


def test_select_works_in_every_format(cli, world):
    r = cli("sql 'SELECT txn_id, amount FROM transactions ORDER BY txn_id LIMIT 2' --format json", db_path=world)
    assert r.code == 0, r.err
    assert json.loads(r.out) == [{"txn_id": "t1", "amount": 1000.0}, {"txn_id": "t2", "amount": 900.0}]
    r = cli("sql 'SELECT count(*) AS n FROM alerts' --format csv", db_path=world)
    assert r.out.splitlines() == ["n", "2"]
    assert cli("sql 'SELECT 1 AS one'", db_path=world).code == 0


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DELETE FROM transactions", "DELETE statements are refused"),
        ("INSERT INTO alerts SELECT * FROM alerts", "INSERT statements are refused"),
        ("DROP TABLE transactions", "DROP statements are refused"),
        ("CREATE TABLE x AS SELECT 1", "CREATE statements are refused"),
        ("UPDATE accounts SET balance = 0", "UPDATE statements are refused"),
        ("COPY transactions TO '{tmp}/out.csv'", "COPY statements are refused"),
        ("ATTACH '{tmp}/other.duckdb'", "ATTACH statements are refused"),
        ("SET enable_external_access = true", "SET statements are refused"),
        ("INSTALL httpfs", "refused"),
        ("SELECT * FROM read_csv('{tmp}/secret.csv')", "cannot read or write files"),
        ("SELECT * FROM '{tmp}/secret.csv'", "cannot read or write files"),
        ("SELECT * FROM read_text('/etc/hostname')", "cannot read or write files"),
        ("SELECT * FROM glob('{tmp}/*')", "cannot read or write files"),
        ("SELECT 1; DROP TABLE transactions", "exactly one statement"),
        ("SELEC 1", "SQL error"),
        ("SELECT * FROM no_such_table", "SQL error"),
    ],
)
def test_writes_and_file_access_are_refused(cli, world, tmp_path, statement, message):
    (tmp_path / "secret.csv").write_text("a\n1\n")
    r = cli(["sql", statement.format(tmp=tmp_path)], db_path=world)
    assert r.code == 2, (r.out, r.err)
    assert message in r.err
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()
    after = cli("sql 'SELECT count(*) AS n FROM transactions' --format json", db_path=world)
    assert json.loads(after.out) == [{"n": 7}]
