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
    assert rows == [
        ("001", "A1", "E9", "Corporation #9"),
        ("0022", "A2", "E9", "Corporation #9"),
        ("0022", "A3", "E8", "Partnership #8"),
    ]
