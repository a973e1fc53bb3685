"""`fundtrace report`: Parquet files written by the engine, read back by pyarrow, polars and DuckDB."""

from __future__ import annotations

import csv
import hashlib
import json

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from test_query import build_world

PARQUET = ("alerts", "alert_members", "alert_evidence", "account_scores", "payment_decisions", "trace_flows",
           "trace_holdings")  # fmt: skip
EXPECTED_ROWS = {"alerts": 2, "alert_members": 7, "alert_evidence": 3, "account_scores": 2, "payment_decisions": 0,
                 "trace_flows": 4, "trace_holdings": 4}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("reportworld"))


@pytest.fixture
def report(cli, world, tmp_path):
    out = tmp_path / "rep"
    r = cli(f"report --out {out} --now 2024-01-03T00:00:00", db_path=world)
    assert r.code == 0, r.err
    return out, json.loads((out / "manifest.json").read_text())


def test_files_read_back_with_the_expected_schemas_and_run_id(report, world):
    out, manifest = report
    run_id = manifest["run_id"]
    con = duckdb.connect(str(world), read_only=True)
    for table in PARQUET:
        path = out / f"{table}.parquet"
        arrow = pq.read_table(path)
        meta = pq.read_schema(path).metadata
        assert meta[b"run_id"].decode() == run_id and meta[b"table_name"].decode() == table
        assert meta[b"fundtrace_version"].decode() == manifest["fundtrace_version"]
        columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        assert arrow.schema.names == columns, table
        assert arrow.num_rows == EXPECTED_ROWS[table] == manifest["files"][path.name]["rows"]
        frame = pl.read_parquet(path)
        assert frame.columns == columns and frame.height == EXPECTED_ROWS[table]
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD" if arrow.num_rows else True
        assert manifest["files"][path.name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    con.close()
    flows = pq.read_table(out / "trace_flows.parquet").schema
    assert flows.field("amount").type == pa.decimal128(18, 4) and flows.field("ts").type == pa.timestamp("us")
    scores = pl.read_parquet(out / "account_scores.parquet")
    assert scores.schema["account_id"] == pl.UInt64
    assert scores.schema["reason_list"] == pl.List(pl.Struct({"code": pl.String, "contribution": pl.Float64}))
    assert scores.sort("account")["reason_list"][0].to_list()[0] == {"code": "CHAIN", "contribution": 0.5}
    holdings = pl.read_parquet(out / "trace_holdings.parquet")
    assert holdings.filter(pl.col("case_id") == "c1")["account"].to_list() == ["M1", "M2", "M3"]


def test_duckdb_reads_them_with_the_metadata(report):
    out, manifest = report
    con = duckdb.connect()
    path = str(out / "alerts.parquet")
    assert con.execute("SELECT list(alert_id ORDER BY alert_id) FROM read_parquet(?)", [path]).fetchall() == [
        (["A1", "R1"],)
    ]
    kv = dict(con.execute("SELECT key::VARCHAR, value::VARCHAR FROM parquet_kv_metadata(?)", [path]).fetchall())
    assert kv["run_id"] == manifest["run_id"]


def test_manifest_records_version_config_inputs_and_counts(report, world):
    out, manifest = report
    from fundtrace import __version__

    assert manifest["fundtrace_version"] == __version__
    assert manifest["generated_at"].endswith("Z")
    assert set(manifest["config"]["sections"]) >= {"detect", "trace", "score"}
    assert manifest["config"]["sections"]["score"]["rule"] == "lifo"
    inputs = {b["kind"]: b for b in manifest["inputs"]}
    assert set(inputs) == {"accounts", "transactions", "links", "reports"}
    for kind, batch in inputs.items():
        assert batch["sha256"] == hashlib.sha256((world.parent / f"{kind}.csv").read_bytes()).hexdigest()
    assert manifest["row_counts"]["transactions"] == 7 and manifest["row_counts"]["freeze_list"] == 2
    assert set(manifest["files"]) == {f"{t}.parquet" for t in PARQUET} | {"freeze_list.csv"}


def test_freeze_list_is_previewed_with_the_freeze_writer(report, cli, world):
    out, manifest = report
    with (out / "freeze_list.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # M3 is already covered by an active request (not repeated); M2's request was superseded: a new FREEZE
    assert [(r["request_type"], r["bank"], r["account"], r["amount_to_freeze"]) for r in rows] == [
        ("FREEZE", "B", "M2", "70.00")
    ]
    assert manifest["freeze"] == {"requests": 1, "recorded": False, "now": "2024-01-03 00:00:00"}
    r = cli("sql 'SELECT count(*) AS n FROM freeze_requests' --format json", db_path=world)
    assert json.loads(r.out) == [{"n": 2}]  # nothing recorded


def test_report_into_a_file_is_refused(cli, world, tmp_path):
    (tmp_path / "f").write_text("x")
    r = cli(f"report --out {tmp_path / 'f'}", db_path=world)
    assert r.code == 2 and "not a directory" in r.err
