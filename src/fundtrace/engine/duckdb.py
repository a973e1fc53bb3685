"""The DuckDB engine: the embedded default, over the workspace's connection."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from fundtrace.engine.base import Engine


class DuckDBEngine(Engine):
    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection, **kwargs):
        super().__init__(**kwargs)
        self.con = con

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.con.execute(sql, params or {}).fetchall()

    def to_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        return self.con.sql(sql, params=params or None).to_arrow_table()

    def register(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)

    def unregister(self, name: str) -> None:
        self.con.unregister(name)

    def materialise(self, name: str, sql: str, params: dict[str, Any] | None = None) -> None:
        self.con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {sql}', params or {}).fetchall()

    def table_exists(self, name: str) -> bool:
        # A relation on the name binds it (a table or view, temporary ones first, as a query would) without running
        # anything: ~0.3 ms against 1-2.5 ms for listing duckdb_tables() and duckdb_views(), and a missing name
        # does not abort an open transaction.
        try:
            self.con.table(name)
        except duckdb.CatalogException:
            return False
        return True

    def count(self, name: str) -> int:
        return self.con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
