"""`fundtrace evaluate` on tiny hand-built truths, through the CLI.

Every expected figure below was worked out by hand from the fixture files (the arithmetic is in the
comments); fixtures/eval/README.md describes the worlds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fundtrace.workspace import Workspace

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
TINY = FIXTURES / "tiny"
AMLSIM = FIXTURES / "amlsim"
AMLWORLD = FIXTURES / "amlworld"

# The result tables of later stages, as their contracts define them; created only when the
# workspace's migrations do not (yet) create them.
CONTRACT_TABLES = {
    "alerts": "alert_id VARCHAR, typology VARCHAR, score DOUBLE, start_ts TIMESTAMP, end_ts TIMESTAMP, "
    "amount DECIMAL(18, 4), n_accounts INTEGER, n_txns INTEGER, summary VARCHAR, detected_at TIMESTAMP",
    "alert_members": "alert_id VARCHAR, bank VARCHAR, account VARCHAR, account_id UBIGINT, role VARCHAR, level INTEGER",
    "alert_evidence": "alert_id VARCHAR, txn_id VARCHAR",
    "trace_holdings": "case_id VARCHAR, bank VARCHAR, account VARCHAR, account_id UBIGINT, hop INTEGER, "
    "first_tainted_at TIMESTAMP, last_tainted_at TIMESTAMP, balance DECIMAL(18, 4), held_poison DECIMAL(18, 4), "
    "held_haircut DECIMAL(18, 4), held_fifo DECIMAL(18, 4), held_lifo DECIMAL(18, 4), held_libr DECIMAL(18, 4), "
    "as_of TIMESTAMP",
    "account_scores": "bank VARCHAR, account VARCHAR, score DOUBLE",
    "freeze_list": "bank VARCHAR, account VARCHAR, case_ids VARCHAR, amount_to_freeze DECIMAL(18, 4)",
}
WITH_ACCOUNT_ID = {"alert_members", "trace_holdings"}


def install(db: Path, results: Path, only: tuple[str, ...] | None = None) -> None:
    """Write the hand-made stage results in ``results/*.csv`` into the workspace."""
    with Workspace(db) as ws:
        for table, columns in CONTRACT_TABLES.items():
            path = results / f"{table}.csv"
            if not path.exists() or (only and table not in only):
                continue
            # Only the contract's columns matter to evaluate: replace the stage's own (wider) table.
            ws.con.execute(f"DROP TABLE IF EXISTS {table}").fetchall()
            ws.con.execute(f"CREATE TABLE {table} ({columns})").fetchall()
            names = [r[0] for r in ws.con.execute(f"DESCRIBE SELECT * FROM read_csv('{path}')").fetchall()]
            cols = ", ".join(names)
            extra = ", account_id" if table in WITH_ACCOUNT_ID else ""
            value = ", account_key(bank, account)" if table in WITH_ACCOUNT_ID else ""
            ws.con.execute(
                f"INSERT INTO {table} ({cols}{extra}) SELECT {cols}{value} "
                f"FROM read_csv($p, header = true, all_varchar = true)",
                {"p": str(path)},
            ).fetchall()


def run_json(cli, args: str) -> dict:
    r = cli(f"evaluate {args} --format json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def by_typology(section: dict) -> dict[str, dict]:
    return {row["typology"]: row for row in section["rows"]}


@pytest.fixture
def tiny(cli, db):
    for kind in ("transactions", "reports"):
        r = cli(f"load {kind} {TINY / f'{kind}.csv'}")
        assert r.code == 0, r.err
    return db


def test_nothing_run_yet_is_absent_not_zero(cli, tiny):
    out = run_json(cli, f"--truth {TINY}")
    assert out["truth"]["kind"] == "fundtrace"
    # 12 accounts transact (Z9 never does); positives M1 M2 X1 M3 M4 M5; fraud t02 t04 t05 t06-t09.
    assert out["truth"]["transacting_accounts"] == 12
    assert out["truth"]["positive_accounts"] == 6
    assert out["truth"]["fraud_transactions"] == 7
    assert out["truth"]["money_held_at_report"] == pytest.approx(1900.0)  # 100 + 400 + 500 + 900
    assert out["truth"]["truth_cases"] == 2 and out["truth"]["truth_money_lost"] == pytest.approx(2000.0)
    for section in (out["detection"]["accounts"], out["detection"]["transactions"], out["scores"], out["tracing"],
                    out["freeze"]):  # fmt: skip
        assert section["status"] == "absent"
        assert "reason" in section and "recall" not in json.dumps(section)
    r = cli(f"evaluate --truth {TINY}")
    assert r.code == 0
    assert "detection (accounts): absent" in r.err and "freeze list: absent" in r.err


def test_detection_by_hand(cli, tiny):
    install(tiny, TINY / "results")
    out = run_json(cli, f"--truth {TINY}")
    acc = by_typology(out["detection"]["accounts"])
    # Predicted mules (non-source members that transact): A1 M1 M2 N3, A2 M4 M5, A3 N1 N2 N4; A4's Z9
    # never transacts -> 8 flagged. Correct: M1 M2 M4 M5 = 4. Positives: 6.
    # precision 4/8 = 0.5, recall 4/6 = 0.666667, F1 = 2*0.5*0.666667/1.166667 = 0.571429
    assert out["detection"]["accounts"]["excluded_roles"] == ["source"]
    r = cli(f"evaluate --truth {TINY}")
    assert r.code == 0 and "flagged: alert members of every role but source (not positive in this truth)" in r.err
    o = acc["overall"]
    assert (o["truth"], o["found"], o["flagged"], o["correct"]) == (6, 4, 8, 4)
    assert o["precision"] == pytest.approx(0.5)
    assert o["recall"] == pytest.approx(0.666667, abs=1e-6)
    assert o["f1"] == pytest.approx(0.571429, abs=1e-6)
    # chain: truth M1 M2 X1 = 3, found M1 M2 -> recall 2/3; alert A1 flags M1 M2 N3, correct 2 -> 2/3; F1 2/3
    c = acc["chain"]
    assert (c["truth"], c["found"], c["flagged"], c["correct"]) == (3, 2, 3, 2)
    assert c["recall"] == pytest.approx(0.666667, abs=1e-6) and c["precision"] == pytest.approx(0.666667, abs=1e-6)
    # fan_in: truth M3 M4 M5 (Z9 never transacts) = 3, found M4 M5 -> 2/3; A2 flags M4 M5 (M3 is a
    # source), both correct -> precision 1.0; F1 = 2*1*0.666667/1.666667 = 0.8
    f = acc["fan_in"]
    assert (f["truth"], f["found"], f["flagged"], f["correct"]) == (3, 2, 2, 2)
    assert f["precision"] == pytest.approx(1.0) and f["f1"] == pytest.approx(0.8)
    # cycle: no truth accounts -> recall undefined (None, not 0); A3 flags N1 N2 N4, none correct -> 0.0
    y = acc["cycle"]
    assert (y["truth"], y["flagged"], y["correct"]) == (0, 3, 0)
    assert y["recall"] is None and y["precision"] == 0.0 and y["f1"] is None
    # fan_out: A4's only member never transacts -> no row at all
    assert "fan_out" not in acc

    txn = by_typology(out["detection"]["transactions"])
    # Evidence in the workspace: t02 t04 t03 t09 t12 t11 t13 = 7 (t99 does not exist); fraud 7;
    # correct t02 t04 t09 = 3 -> precision 3/7 = recall = F1 = 0.428571
    o = txn["overall"]
    assert (o["truth"], o["found"], o["flagged"], o["correct"]) == (7, 3, 7, 3)
    assert o["precision"] == pytest.approx(0.428571, abs=1e-6) and o["f1"] == pytest.approx(0.428571, abs=1e-6)
    # fan_in: truth t06 t07 t08 t09 = 4, found t09 -> 0.25; A2 evidence t09 t12, correct 1 -> 0.5;
    # F1 = 2*0.5*0.25/0.75 = 0.333333
    f = txn["fan_in"]
    assert (f["truth"], f["found"], f["flagged"], f["correct"]) == (4, 1, 2, 1)
    assert f["f1"] == pytest.approx(0.333333, abs=1e-6)
    # chain: truth t02 t04 t05, found 2 -> 2/3; A1 evidence t02 t04 t03, correct 2 -> 2/3
    assert txn["chain"]["recall"] == pytest.approx(0.666667, abs=1e-6)
    assert txn["chain"]["precision"] == pytest.approx(0.666667, abs=1e-6)


def test_scores_by_hand(cli, tiny):
    install(tiny, TINY / "results")
    s = run_json(cli, f"--truth {TINY}")["scores"]
    # Z9 (0.95) never transacts and is dropped; 7 scored: M1 .9+, M5 .8+, N3 .7, M2 .6+, {N1 .3, X1 .3+}, N2 .1
    # AP = (1/6) * (1/1 + 2/2 + 3/4 + 4/6) = (1/6) * 3.416667 = 0.569444 (M3, M4 never scored)
    assert s["status"] == "ok"
    assert s["scored_accounts"] == 7 and s["scored_positives"] == 4 and s["positive_accounts"] == 6
    assert s["pr_auc"] == pytest.approx(0.569444, abs=1e-6)
    assert s["base_rate"] == pytest.approx(0.5)  # 6 of 12 transacting accounts
    # precision@100 and @1000 are over the 7 scored accounts: 4/7 = 0.571429
    for at in s["precision_at_k"]:
        assert at["over"] == 7 and at["positives"] == 4
        assert at["precision"] == pytest.approx(0.571429, abs=1e-6)


def test_tracing_by_hand(cli, tiny):
    install(tiny, TINY / "results")
    tr = run_json(cli, f"--truth {TINY}")["tracing"]
    assert tr["status"] == "ok"
    # pairs: truth (c1,M1) (c1,M2) (c1,X1) (c2,M5) plus traced (c2,M3) with 0 everywhere = 5; truth 1900
    assert tr["pairs"] == 5 and tr["cases_traced"] == 2 and tr["cases_reported"] == 2
    rules = {r["rule"]: r for r in tr["rows"]}
    expected = {
        # held                     matched (Σ min)        recall            precision          MAE
        # poison: 120+400+500+0+900 = 1920; min 100+400+500+900 = 1900 -> 1.0, 1900/1920; |20|/5 = 4
        "poison": (1920.0, 1900.0, 1.0, 0.989583, 4.0),
        # haircut: 117.6471+400+500+750 = 1767.6471; min 100+400+500+750 = 1750 -> 1750/1900 = 0.921053,
        # 1750/1767.6471 = 0.990017; (17.6471 + 150)/5 = 33.52942
        "haircut": (1767.6471, 1750.0, 0.921053, 0.990017, 33.52942),
        "fifo": (1900.0, 1900.0, 1.0, 1.0, 0.0),
        # lifo: 120+400+500+700 = 1720; min 1700 -> 1700/1900 = 0.894737, 1700/1720 = 0.988372; (20+200)/5 = 44
        "lifo": (1720.0, 1700.0, 0.894737, 0.988372, 44.0),
        # libr: like poison at M1 (120) and M5 (900)
        "libr": (1920.0, 1900.0, 1.0, 0.989583, 4.0),
    }
    for rule, (held, matched, recall, precision, mae) in expected.items():
        r = rules[rule]
        assert r["truth"] == pytest.approx(1900.0)
        assert r["held"] == pytest.approx(held) and r["matched"] == pytest.approx(matched)
        assert r["money_recall"] == pytest.approx(recall, abs=1e-6)
        assert r["money_precision"] == pytest.approx(precision, abs=1e-6)
        assert r["mae"] == pytest.approx(mae, abs=1e-6)
    assert tr["closest"] == "fifo"


def test_freeze_list_by_hand(cli, tiny):
    install(tiny, TINY / "results")
    f = run_json(cli, f"--truth {TINY}")["freeze"]
    # truth per account: M1 100, M2 400, X1 500, M5 900 = 1900; frozen M1 120, M5 900, N2 50 = 1070;
    # covered min(120,100) + min(900,900) + min(50,0) = 1000 -> recall 1000/1900 = 0.526316,
    # precision 1000/1070 = 0.934579
    assert f["status"] == "ok"
    assert (f["accounts_frozen"], f["accounts_holding_victims_money"], f["accounts_both"]) == (3, 4, 2)
    assert f["frozen"] == pytest.approx(1070.0) and f["covered"] == pytest.approx(1000.0)
    assert f["money_recall"] == pytest.approx(0.526316, abs=1e-6)
    assert f["money_precision"] == pytest.approx(0.934579, abs=1e-6)


def test_table_output(cli, tiny):
    install(tiny, TINY / "results")
    r = cli(f"evaluate --truth {TINY}")
    assert r.code == 0, r.err
    assert "detection, account level" in r.out and "detection, transaction level" in r.out
    assert "0.5714" in r.out  # overall account F1
    assert "fifo *" in r.out  # the closest tracing rule
    assert "0.9346" in r.out  # freeze-list money precision
    assert "0.5694" in r.out  # PR-AUC


def test_truth_without_holdings_reports_tracing_absent(cli, tiny, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("truth_accounts.csv", "truth_transactions.csv"):
        shutil.copy(TINY / name, partial / name)
    install(tiny, TINY / "results")
    out = run_json(cli, f"--truth {partial}")
    assert out["detection"]["accounts"]["status"] == "ok"
    assert out["tracing"] == {"status": "absent", "reason": "the truth has no truth_holdings file"}
    assert out["freeze"]["status"] == "absent"


def test_detection_ran_and_found_nothing_is_measured(cli, tiny):
    with Workspace(tiny) as ws:
        if not ws.table_exists("detect_runs"):
            pytest.skip("this workspace schema records no detection runs")  # 0002 creates it
        ws.con.execute(
            "INSERT INTO detect_runs (run_id, started_at, mode, typologies, settings, alerts) "
            "VALUES (1, TIMESTAMP '2024-01-02', 'full', 'chain', '{}', 0)"
        ).fetchall()
    o = by_typology(run_json(cli, f"--truth {TINY}")["detection"]["accounts"])["overall"]
    # nothing flagged: recall 0 of 6 is a real zero; precision has nothing to divide by
    assert (o["truth"], o["flagged"], o["recall"], o["precision"]) == (6, 0, 0.0, None)


def test_amlsim_labels_by_hand(cli, db):
    r = cli(f"load transactions {AMLSIM / 'transactions.csv'} --profile amlsim")
    assert r.code == 0, r.err
    install(db, AMLSIM / "results")
    out = run_json(cli, f"--truth {AMLSIM}")
    assert out["truth"]["kind"] == "amlsim"
    # transacting: 10 11 12 20 21 22 30 31 32 = 9 (13 is in alert 0 but never transacts);
    # positives = ends of is_sar transactions: 10 11 12 20 21 22 = 6
    assert out["truth"]["transacting_accounts"] == 9 and out["truth"]["positive_accounts"] == 6
    acc = by_typology(out["detection"]["accounts"])
    # flagged (members of every role: AMLSim labels a fan-in's payers too): 10 11 12 30 20 21 = 6,
    # correct 10 11 12 20 21 = 5 -> precision 5/6, recall 5/6, F1 5/6 = 0.833333
    assert out["detection"]["accounts"]["excluded_roles"] == []
    o = acc["overall"]
    assert (o["truth"], o["found"], o["flagged"], o["correct"]) == (6, 5, 6, 5)
    assert o["f1"] == pytest.approx(0.833333, abs=1e-6)
    # fan_in (alert 0): truth 10 11 12, all found (10 is D1's source) -> 1.0; D1 flags 10 11 12 30,
    # correct 3 -> 0.75; F1 = 2*0.75*1/1.75 = 0.857143
    f = acc["fan_in"]
    assert (f["truth"], f["found"], f["flagged"], f["correct"]) == (3, 3, 4, 3)
    assert f["f1"] == pytest.approx(0.857143, abs=1e-6)
    # cycle (alert 1): truth 20 21 22, found 20 21 -> 2/3; D2 flags 20 21, both correct -> 1.0; F1 0.8
    assert acc["cycle"]["f1"] == pytest.approx(0.8)
    txn = by_typology(out["detection"]["transactions"])
    # fraud 1-5, evidence 1 2 8 3 4, correct 4 -> 0.8 / 0.8; fan_in: recall 2/2, precision 2/3 -> F1 0.8
    assert txn["overall"]["precision"] == pytest.approx(0.8) and txn["overall"]["recall"] == pytest.approx(0.8)
    assert txn["fan_in"]["recall"] == pytest.approx(1.0) and txn["fan_in"]["f1"] == pytest.approx(0.8)
    assert out["tracing"]["status"] == "absent" and "no money-level holdings" in out["tracing"]["reason"]
    r = cli(f"evaluate --truth {AMLSIM}")  # the table view says what counts as flagged
    assert r.code == 0 and "flagged: alert members of every role\n" in r.err


def test_amlsim_alert_accounts_only_uses_workspace_labels(cli, db, tmp_path):
    r = cli(f"load transactions {AMLSIM / 'transactions.csv'} --profile amlsim")
    assert r.code == 0, r.err
    install(db, AMLSIM / "results")
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(AMLSIM / "alert_accounts.csv", only / "alert_accounts.csv")
    full = run_json(cli, f"--truth {AMLSIM}")
    out = run_json(cli, f"--truth {only}")
    # the loaded is_sar/alert_id labels give the same truth as the transactions file
    assert out["detection"] == full["detection"]
    # and so does giving no --truth at all, except that the typologies are then unknown
    bare = run_json(cli, "")["detection"]
    for level in ("accounts", "transactions"):
        assert by_typology(bare[level])["overall"] == by_typology(full["detection"][level])["overall"]
        assert by_typology(bare[level])["cycle"]["truth"] == 0  # no alert_type without alert_accounts


def test_amlworld_labels_by_hand(cli, db):
    r = cli(f"load transactions {AMLWORLD / 'HI-Tiny_Trans.csv'} --profile amlworld")
    assert r.code == 0, r.err
    with Workspace(db) as ws:
        ids = dict(ws.con.execute("SELECT CAST(amount AS INTEGER), txn_id FROM transactions").fetchall())
        ws.con.execute(f"CREATE TABLE IF NOT EXISTS alerts ({CONTRACT_TABLES['alerts']})").fetchall()
        ws.con.execute(f"CREATE TABLE IF NOT EXISTS alert_members ({CONTRACT_TABLES['alert_members']})").fetchall()
        ws.con.execute(f"CREATE TABLE IF NOT EXISTS alert_evidence ({CONTRACT_TABLES['alert_evidence']})").fetchall()
        ws.con.execute(
            "INSERT INTO alerts (alert_id, typology, score, start_ts, end_ts, amount, n_accounts, n_txns, summary, "
            "detected_at) VALUES ('W1', 'cycle', 0.5, TIMESTAMP '2022-09-01', TIMESTAMP '2022-09-01', 100, 3, 2, "
            "'hand-made', TIMESTAMP '2022-09-02')"
        ).fetchall()
        for bank, account in (("2", "B1"), ("3", "C1"), ("1", "A2")):  # bank ids lose their leading zeros
            ws.con.execute(
                "INSERT INTO alert_members (alert_id, bank, account, account_id, role, level) "
                "VALUES ('W1', ?, ?, account_key(?, ?), 'member', NULL)",
                [bank, account, bank, account],
            ).fetchall()
        for amount in (90, 10):
            ws.con.execute("INSERT INTO alert_evidence VALUES ('W1', ?)", [ids[amount]]).fetchall()
    for args in (f"--truth {AMLWORLD}", ""):
        out = run_json(cli, args)
        assert out["truth"]["kind"] == "amlworld"
        # transacting 1:A1 2:B1 3:C1 1:A2 1:A3 = 5; positives A1 B1 C1 = 3;
        # flagged B1 C1 A2, correct 2 -> precision 2/3, recall 2/3
        acc = by_typology(out["detection"]["accounts"])
        assert out["truth"]["transacting_accounts"] == 5
        assert (acc["overall"]["truth"], acc["overall"]["flagged"], acc["overall"]["correct"]) == (3, 3, 2)
        assert acc["overall"]["precision"] == pytest.approx(0.666667, abs=1e-6)
        # no typologies in AMLworld truth: the cycle row has precision only
        assert acc["cycle"]["truth"] == 0 and acc["cycle"]["recall"] is None
        # transactions: fraud = the 100 and 90 payments; evidence 90 and 10 -> 1/2 and 1/2
        o = by_typology(out["detection"]["transactions"])["overall"]
        assert (o["truth"], o["flagged"], o["correct"]) == (2, 2, 1)


def test_no_truth_anywhere_is_an_input_error(cli, tiny, tmp_path):
    r = cli("evaluate")
    assert r.code == 2 and "no --truth directory given" in r.err
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli(f"evaluate --truth {empty}")
    assert r.code == 2 and "no ground truth found" in r.err
    r = cli(f"evaluate --truth {tmp_path / 'missing'}")
    assert r.code == 2 and "not a directory" in r.err


def test_truth_file_missing_a_column(cli, tiny, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "truth_accounts.csv").write_text("bank,account,role\nb,M1,mule\n")
    r = cli(f"evaluate --truth {bad}")
    assert r.code == 2 and "missing column(s) typology" in r.err


def test_parquet_truth(cli, tiny, tmp_path):
    import duckdb

    pq = tmp_path / "pq"
    pq.mkdir()
    con = duckdb.connect()
    for name in ("truth_accounts", "truth_transactions", "truth_holdings", "truth_cases"):
        src, dst = str(TINY / f"{name}.csv"), str(pq / f"{name}.parquet")
        con.execute(f"COPY (SELECT * FROM read_csv('{src}', all_varchar = true)) TO '{dst}' (FORMAT parquet)")
    con.close()
    install(tiny, TINY / "results")
    assert run_json(cli, f"--truth {pq}") | {"truth": None} == run_json(cli, f"--truth {TINY}") | {"truth": None}


# Which alert members count as flagged, per truth kind. In each world the member is a truth positive
# that originates a fraud transaction: tiny's mule M3 (pays t08 to M5), AMLSim's 10 (a fan-in payer,
# tran 1 to 11), AMLworld's 1:A1 (pays B1; the file's 001). Our simulator's truth never calls a victim positive, so
# role `source` is not a prediction there; AMLSim and AMLworld label the originators, so every role is.
ROLE_WORLDS = {
    # kind: (load arguments, --truth, (bank, account), fraud txn it pays (found by amount), positives)
    "fundtrace": ([("transactions", TINY / "transactions.csv", ""), ("reports", TINY / "reports.csv", "")],
                  TINY, ("b", "M3"), 600, 6),
    "amlsim": ([("transactions", AMLSIM / "transactions.csv", "--profile amlsim")], AMLSIM, ("amlsim", "10"), 100, 6),
    "amlworld": ([("transactions", AMLWORLD / "HI-Tiny_Trans.csv", "--profile amlworld")], AMLWORLD, ("1", "A1"),
                 100, 3),
}  # fmt: skip
ROLE_CASES = [
    # kind, role, flagged at account level
    ("fundtrace", "source", False),
    ("fundtrace", "mule", True),
    ("fundtrace", "hub", True),
    ("fundtrace", None, True),
    ("amlsim", "source", True),
    ("amlsim", "hub", True),
    ("amlsim", None, True),
    ("amlworld", "source", True),
    ("amlworld", "sink", True),
]


def _hand_alert(db, alert_id: str, typology: str, bank: str, account: str, role: str | None) -> None:
    """Fresh alert tables (the published contract) holding one hand-made alert with one member."""
    with Workspace(db) as ws:
        for table in ("alerts", "alert_members", "alert_evidence"):
            ws.con.execute(f"DROP TABLE IF EXISTS {table}").fetchall()
            ws.con.execute(f"CREATE TABLE {table} ({CONTRACT_TABLES[table]})").fetchall()
        ws.con.execute(
            "INSERT INTO alerts (alert_id, typology, score, summary) VALUES (?, ?, 0.5, 'hand-made')",
            [alert_id, typology],
        ).fetchall()
        ws.con.execute(
            "INSERT INTO alert_members (alert_id, bank, account, account_id, role) "
            "VALUES (?, ?, ?, account_key(?, ?), ?)",
            [alert_id, bank, account, bank, account, role],
        ).fetchall()


@pytest.mark.parametrize(("kind", "role", "flagged"), ROLE_CASES)
def test_member_roles_flagged_per_truth_kind(cli, db, kind, role, flagged):
    loads, truth, (bank, account), amount, positives = ROLE_WORLDS[kind]
    for what, path, extra in loads:
        r = cli(f"load {what} {path} {extra}")
        assert r.code == 0, r.err
    _hand_alert(db, "R1", "fan_in", bank, account, role)
    with Workspace(db) as ws:
        # the fraud transaction the member pays (the only one of that amount from that account)
        ws.con.execute(
            "INSERT INTO alert_evidence SELECT 'R1', txn_id FROM transactions "
            "WHERE src_bank = ? AND src_account = ? AND amount = ?",
            [bank, account, amount],
        ).fetchall()
    out = run_json(cli, f"--truth {truth}")
    assert out["truth"]["kind"] == kind and out["truth"]["positive_accounts"] == positives
    o = by_typology(out["detection"]["accounts"])["overall"]
    # the member is a positive: flagged -> 1 flagged, 1 correct, recall 1/positives; else nothing flagged
    n = int(flagged)
    assert (o["truth"], o["found"], o["flagged"], o["correct"]) == (positives, n, n, n)
    assert o["recall"] == pytest.approx(n / positives)
    assert o["precision"] == (1.0 if flagged else None)
    # evidence belongs to the alert, not to a member: the fraud payment counts whatever the role
    t = by_typology(out["detection"]["transactions"])["overall"]
    assert (t["flagged"], t["correct"]) == (1, 1)


# AMLworld's patterns file for the fixture's two laundering payments (bank ids padded as in IBM's files; a
# block's name carries a note after ':'); an attempt listing a payment not loaded here matches nothing.
PATTERNS = """BEGIN LAUNDERING ATTEMPT - STACK
2022/09/01 00:20,001,A1,002,B1,100.00,US Dollar,100.00,US Dollar,ACH,1
END LAUNDERING ATTEMPT - STACK

BEGIN LAUNDERING ATTEMPT - FAN-OUT:  Max 2-degree Fan-Out
2022/09/01 00:30,002,B1,003,C1,90.00,US Dollar,90.00,US Dollar,ACH,1
2022/09/05 00:30,002,B1,009,Z9,90.00,US Dollar,90.00,US Dollar,ACH,1
END LAUNDERING ATTEMPT - FAN-OUT
"""


def test_amlworld_patterns_give_typologies(cli, db, tmp_path):
    truth = tmp_path / "aw"
    truth.mkdir()
    shutil.copy(AMLWORLD / "HI-Tiny_Trans.csv", truth)
    (truth / "HI-Tiny_Patterns.txt").write_text(PATTERNS)
    assert cli(f"load transactions {truth / 'HI-Tiny_Trans.csv'} --profile amlworld").code == 0
    _hand_alert(db, "F1", "fan_out", "2", "B1", "hub")
    out = run_json(cli, f"--truth {truth}")
    assert out["truth"]["patterns"]["listed"] == 3 and out["truth"]["patterns"]["matched"] == 2
    (truth / "HI-Tiny_Patterns.txt").write_text("\ufeff" + PATTERNS.replace("\n", "\r\n"))  # BOM, CRLF
    assert run_json(cli, f"--truth {truth}")["truth"]["patterns"] == out["truth"]["patterns"]
    acc = by_typology(out["detection"]["accounts"])
    # stacked: A1 -> B1; fan_out: B1 -> C1; B1 is flagged (by the fan-out alert) and of both typologies
    assert (acc["stacked"]["truth"], acc["stacked"]["found"]) == (2, 1)
    assert (acc["fan_out"]["truth"], acc["fan_out"]["found"], acc["fan_out"]["correct"]) == (2, 1, 1)
    # the patterns file alone tells the kind (the labels are in the workspace)
    (truth / "HI-Tiny_Trans.csv").unlink()
    assert by_typology(run_json(cli, f"--truth {truth}")["detection"]["accounts"])["stacked"]["truth"] == 2
    (truth / "HI-Tiny_Patterns.txt").write_text("BEGIN LAUNDERING ATTEMPT - CYCLE\nnot a payment\n")
    r = cli(f"evaluate --truth {truth}")
    assert r.code == 2 and "HI-Tiny_Patterns.txt:2: not a transaction line" in r.err


def test_amlsim_earlier_layout_truth(cli, db, tmp_path):
    """AMLSim's published sample sets: TX_ID / IS_FRAUD / ALERT_ID and alerts.csv with ALERT_TYPE."""
    from test_load import AMLSIM_V1_TXNS

    truth = tmp_path / "v1"
    truth.mkdir()
    (truth / "transactions.csv").write_text(AMLSIM_V1_TXNS)
    (truth / "alerts.csv").write_text(
        "ALERT_ID,ALERT_TYPE,IS_FRAUD,TX_ID,SENDER_ACCOUNT_ID,RECEIVER_ACCOUNT_ID,TX_TYPE,TX_AMOUNT,TIMESTAMP\n"
        "1,fan_in,True,664370,4282,5009,TRANSFER,570258.25,101\n"
    )
    assert cli(f"load transactions {truth / 'transactions.csv'} --profile amlsim").code == 0
    _hand_alert(db, "A", "fan_in", "amlsim", "5009", "hub")
    out = run_json(cli, f"--truth {truth}")
    assert out["truth"]["kind"] == "amlsim" and out["truth"]["fraud_transactions"] == 1
    acc = by_typology(out["detection"]["accounts"])
    assert (acc["fan_in"]["truth"], acc["fan_in"]["found"], acc["fan_in"]["precision"]) == (2, 1, 1.0)
