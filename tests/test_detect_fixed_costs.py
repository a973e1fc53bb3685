"""The per-run plumbing an incremental detect pays whatever the batch: catalog look-ups, account names, the
pass-through share before the run's changes. Each is made cheaper; these tests pin down that it still does what
it did."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from fundtrace import queries
from fundtrace.detect import _drop_scratch, _share_before, run
from fundtrace.detect.base import MEMBER_SCHEMA, collect, name_accounts, name_members
from fundtrace.engine import DuckDBEngine
from fundtrace.workspace import Workspace
from test_detect_helpers import fill, full_state, snapshot
from test_detect_incremental import SETTINGS, _world


def test_table_exists_sees_tables_and_views_and_keeps_a_transaction_open():
    con = duckdb.connect()
    engine = DuckDBEngine(con)
    con.execute("CREATE TABLE t (x INTEGER)").fetchall()
    con.execute("CREATE VIEW v AS SELECT 1 AS x").fetchall()
    con.execute("CREATE TEMP TABLE tt AS SELECT 1 AS x").fetchall()
    con.execute("CREATE TEMP VIEW tv AS SELECT 1 AS x").fetchall()
    assert [engine.table_exists(n) for n in ("t", "v", "tt", "tv")] == [True] * 4
    assert not engine.table_exists("nothing_here")
    con.execute("BEGIN TRANSACTION").fetchall()
    con.execute("INSERT INTO t VALUES (1)").fetchall()
    assert not engine.table_exists("nothing_here")  # a missing name must not abort the open transaction
    con.execute("INSERT INTO t VALUES (2)").fetchall()
    con.execute("COMMIT").fetchall()
    assert con.execute("SELECT count(*) FROM t").fetchall()[0][0] == 2
    con.execute("DROP VIEW tv").fetchall()
    assert not engine.table_exists("tv")


def _payments_con():
    """A connection with a few payments: p1 pays p2 twice, p3 only receives; a stored name for p4."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE transactions (src_id UBIGINT, src_bank VARCHAR, src_account VARCHAR, "
        "dst_id UBIGINT, dst_bank VARCHAR, dst_account VARCHAR)"
    ).fetchall()
    con.execute(
        "INSERT INTO transactions VALUES (1, 'b1', 'p1', 2, 'b2', 'p2'), (2, 'b2', 'p2', 3, 'b3', 'p3'), "
        "(1, 'b1', 'p1', 2, 'b2', 'p2')"
    ).fetchall()
    con.execute("CREATE TABLE detect_names (account_id UBIGINT, bank VARCHAR, account VARCHAR)").fetchall()
    con.execute("INSERT INTO detect_names VALUES (4, 'b4', 'p4')").fetchall()
    return con


def _members(rows):
    return pa.Table.from_pylist([dict(zip(MEMBER_SCHEMA.names, r, strict=True)) for r in rows], schema=MEMBER_SCHEMA)


def _staged(engine, members: pa.Table) -> None:
    engine.register("frame", members)
    engine.execute("CREATE TEMP TABLE m AS SELECT * FROM frame")
    engine.unregister("frame")


def test_name_members_names_every_member_once():
    con = _payments_con()
    engine = DuckDBEngine(con)
    members = _members(
        [
            ("a2", None, None, 3, "sink", None),  # only ever receives: named from the payee side
            ("a1", None, None, 1, "mule", 1),
            ("a1", None, None, 4, "source", None),  # stored by an earlier run
            ("a2", "b2", "p2", 2, "mule", None),  # already named: left as it is
            ("a3", None, None, 2, "hub", None),
        ]
    )
    _staged(engine, members)
    name_members(engine, "m")
    named = engine.to_arrow("SELECT * FROM m ORDER BY alert_id, account_id")
    assert named.schema == MEMBER_SCHEMA
    assert named.to_pylist() == [
        {"alert_id": "a1", "bank": "b1", "account": "p1", "account_id": 1, "role": "mule", "level": 1},
        {"alert_id": "a1", "bank": "b4", "account": "p4", "account_id": 4, "role": "source", "level": None},
        {"alert_id": "a2", "bank": "b2", "account": "p2", "account_id": 2, "role": "mule", "level": None},
        {"alert_id": "a2", "bank": "b3", "account": "p3", "account_id": 3, "role": "sink", "level": None},
        {"alert_id": "a3", "bank": "b2", "account": "p2", "account_id": 2, "role": "hub", "level": None},
    ]
    # the run's cache holds them now, and the look-up left no scratch table behind
    assert con.execute("SELECT count(*) FROM dx_names").fetchall()[0][0] == 4
    assert not engine.table_exists("dx_unnamed") and not engine.table_exists("dx_named_by")
    assert not engine.table_exists("dx_to_name") and not engine.table_exists("dx_named")


def test_name_members_without_unnamed_members_reads_nothing():
    con = duckdb.connect()  # no transactions table at all: a look-up would fail
    engine = DuckDBEngine(con)
    _staged(engine, _members([("a1", "b1", "p1", 1, "mule", 1)]))
    name_members(engine, "m")
    assert con.execute("SELECT bank, account FROM m").fetchall() == [("b1", "p1")]
    assert not engine.table_exists("dx_names")


@pytest.mark.parametrize("later", [False, True])
def test_collect_leaves_names_to_the_runner_only_when_asked(later):
    con = _payments_con()
    engine = DuckDBEngine(con)
    engine.names_later = later
    con.execute(
        """CREATE TABLE hits AS SELECT 'pass_through' AS typology, 'k1' AS akey, 0.5 AS score,
             TIMESTAMP '2024-03-01' AS start_ts, TIMESTAMP '2024-03-02' AS end_ts, 10.0 AS amount, 'why' AS summary,
             [{'account_id': 2::UBIGINT, 'role': 'mule', 'level': NULL::INTEGER},
              {'account_id': 3::UBIGINT, 'role': 'sink', 'level': NULL::INTEGER}] AS members,
             ['t1', 't2'] AS evidence"""
    ).fetchall()
    det = collect(engine, "hits")
    assert det.members["account_id"].to_pylist() == [2, 3]
    if later:
        assert det.members["bank"].null_count == 2 and not engine.table_exists("dx_names")
    _staged(engine, det.members)
    name_members(engine, "m")
    assert [r[0] for r in con.execute("SELECT account FROM m ORDER BY account_id").fetchall()] == ["p2", "p3"]
    assert det.alerts.num_rows == 1 and det.evidence.num_rows == 2


def test_name_accounts_looks_up_only_what_the_cache_lacks():
    con = _payments_con()
    engine = DuckDBEngine(con)
    con.execute("CREATE TABLE ids AS SELECT * FROM (VALUES (1::UBIGINT), (4::UBIGINT)) t(account_id)").fetchall()
    con.execute("CREATE TEMP TABLE dx_names AS SELECT 1::UBIGINT AS account_id, 'cached' AS bank, 'x' AS account")
    name_accounts(engine, "ids")
    assert sorted(con.execute("SELECT * FROM dx_names").fetchall()) == [(1, "cached", "x"), (4, "b4", "p4")]


def test_share_before_is_corroborations_share(tmp_path):
    """dx_share_old is dc_share (queries/detect/corroborate.sql) of the stored state for every candidate account,
    NULL for one without episodes or incoming money: the formula is written once."""
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, _world(3, days=4))
        run(ws, SETTINGS, full=True)
        con = ws.con
        engine = DuckDBEngine(con)
        con.execute(
            "CREATE TEMP TABLE dx_in_new AS SELECT acct, in_amt FROM detect_in_totals ORDER BY acct LIMIT 40"
        ).fetchall()
        con.execute(
            "CREATE TEMP TABLE dx_touched AS SELECT DISTINCT acct AS account_id FROM detect_pt_episodes "
            "UNION SELECT 12345::UBIGINT"  # an account with no stored state at all
        ).fetchall()
        _share_before(engine, judge_all=False)
        got = dict(con.execute("SELECT acct, share FROM dx_share_old").fetchall())
        q = queries.get("detect_corroborate")
        engine.run_steps([s for s in q.steps if s[0] == "dc_share"])
        share = dict(con.execute("SELECT acct, share FROM dc_share").fetchall())
        cand = {
            a for (a,) in con.execute("SELECT acct FROM dx_in_new UNION SELECT account_id FROM dx_touched").fetchall()
        }
        assert set(got) == cand and any(v is not None for v in got.values())
        assert got == {a: share.get(a) for a in cand}
        assert got[12345] is None
        _share_before(engine, judge_all=True)
        assert con.execute("SELECT count(*) FROM dx_share_old").fetchall()[0][0] == 0


def test_incremental_run_names_members_as_a_full_run_does(tmp_path):
    """Members of every family named at store time, from the batch, the stored names or the payments, come out as a
    full run names them."""
    rows = _world(5, days=6)
    cut = sorted(r[1] for r in rows)[int(len(rows) * 0.8)]
    first, later = [r for r in rows if r[1] < cut], [r for r in rows if r[1] >= cut]
    with Workspace(tmp_path / "inc.duckdb") as ws:
        fill(ws, first, batch_id=1)
        run(ws, SETTINGS)
        fill(ws, later, batch_id=2)
        assert run(ws, SETTINGS)["mode"] == "incremental"
        got = snapshot(ws)
        unnamed = ws.con.execute("SELECT count(*) FROM detect_raw_members WHERE bank IS NULL OR account IS NULL")
        assert unnamed.fetchall()[0][0] == 0
    with Workspace(tmp_path / "full.duckdb") as ws:
        fill(ws, first, batch_id=1)
        fill(ws, later, batch_id=2)
        run(ws, SETTINGS, full=True)
        expected = snapshot(ws)
    assert got == expected and got[1]


def test_drop_scratch_drops_only_the_runs_temporary_tables_and_views():
    con = duckdb.connect()
    con.execute(
        "CREATE TEMP TABLE dx_a AS SELECT 1; CREATE TEMP TABLE dt_all AS SELECT 1; CREATE TEMP VIEW dt_tx AS SELECT 1; "
        "CREATE TEMP TABLE other AS SELECT 1; CREATE TABLE dx_stored AS SELECT 1"
    ).fetchall()
    names = "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal"
    _drop_scratch(con, keep=("dt_all",))
    assert sorted(n for (n,) in con.execute(names).fetchall()) == ["dt_all", "dx_stored", "other"]
    _drop_scratch(con)
    assert sorted(n for (n,) in con.execute(names).fetchall()) == ["dx_stored", "other"]
    _drop_scratch(con)  # nothing left to drop


def test_incremental_runs_keep_the_incoming_totals_equal_to_a_fresh_sum(tmp_path):
    """detect_in_totals, brought up to date batch by batch (the changed accounts' rows deleted and inserted again),
    holds one row per account that ever received money from another, equal to summing every payment."""
    rows = _world(4, days=6)
    cuts = sorted(r[1] for r in rows)
    a, b = cuts[int(len(rows) * 0.6)], cuts[int(len(rows) * 0.8)]
    batches = [[r for r in rows if r[1] < a], [r for r in rows if a <= r[1] < b], [r for r in rows if r[1] >= b]]
    with Workspace(tmp_path / "ws.duckdb") as ws:
        for i, batch in enumerate(batches, start=1):
            fill(ws, batch, batch_id=i)
            assert run(ws, SETTINGS)["mode"] == ("full" if i == 1 else "incremental")
        got = ws.con.execute("SELECT acct, in_amt FROM detect_in_totals ORDER BY acct").fetchall()
        fresh = ws.con.execute(
            "SELECT dst_id, sum(amount) FROM transactions WHERE src_id <> dst_id GROUP BY dst_id ORDER BY dst_id"
        ).fetchall()
        assert ws.con.execute("SELECT max(max_batch_id) FROM detect_in_state").fetchall()[0][0] == 3
    assert got == fresh and len(got) > 10


def test_corroboration_steps_left_out_by_default_find_nothing(tmp_path):
    """Without life_corroborates, life_members and fans_yield the short-lived and giving-way steps are not run (they
    leave empty tables): the published result equals running them with settings that name no typology."""
    import dataclasses

    rows = _world(3, days=4)
    lines: list[str] = []
    default = full_state(tmp_path / "default.duckdb", [rows], SETTINGS, debug_sql=True, report=lines.append)
    assert not any(line.startswith(("step dc_life", "step dc_yielded")) for line in lines)
    named = dataclasses.replace(SETTINGS, life_corroborates=("none",), life_members=("none",), fans_yield=("none",))
    lines.clear()
    ran = full_state(tmp_path / "named.duckdb", [rows], named, debug_sql=True, report=lines.append)
    assert any(line.startswith("step dc_life_ok") for line in lines) and any("dc_yielded" in ln for ln in lines)
    assert default == ran and default[0]
