"""The engine seam: a few primitives every engine provides, and named-step pipelines on top.

Naming of intermediate tables, logging, ``--debug-sql`` row counts and error wrapping live here,
once; an engine subclass only says how to execute one statement, register a frame and materialise
a step.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from fundtrace.errors import QueryError
from fundtrace.queries import Query

log = logging.getLogger("fundtrace.engine")


class Engine(ABC):
    """Execute SQL written in the DuckDB dialect."""

    name = "engine"

    def __init__(self, debug_sql: bool = False, report: Callable[[str], None] | None = None):
        self.debug_sql = debug_sql
        self.report = report or (lambda line: log.info(line))
        # A runner that names every detector's alert members at once sets this (see fundtrace.detect.base.collect).
        self.names_later = False

    # --- primitives -------------------------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""

    @abstractmethod
    def to_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run a query and return its result as an Arrow table."""

    @abstractmethod
    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable as ``name`` for this session."""

    @abstractmethod
    def unregister(self, name: str) -> None:
        """Forget a table made queryable by :meth:`register`."""

    @abstractmethod
    def materialise(self, name: str, sql: str, params: dict[str, Any] | None = None) -> None:
        """Create (or replace) temporary table ``name`` from ``sql``."""

    @abstractmethod
    def table_exists(self, name: str) -> bool: ...

    def count(self, name: str) -> int:
        return self.to_arrow(f'SELECT count(*) AS n FROM "{name}"').column(0)[0].as_py()

    def to_polars(self, sql: str, params: dict[str, Any] | None = None):
        import polars as pl

        return pl.from_arrow(self.to_arrow(sql, params))

    # --- pipelines ----------------------------------------------------------------------------
    def run_steps(self, steps: list[tuple[str, str]], params: dict[str, Any] | None = None) -> str:
        """Materialise each (name, sql) step in order; return the last step's table name.

        A failing step raises QueryError naming the step with its SQL. With ``debug_sql`` each
        step's row count, time and CPU time (the whole process's, the engine's threads included: on a
        shared machine the steadier measure) are reported.
        """
        last = ""
        for name, sql in steps:
            started, cpu = time.perf_counter(), time.process_time()
            used = {k: v for k, v in (params or {}).items() if f"${k}" in sql}
            try:
                self.materialise(name, sql, used)
            except Exception as exc:  # the engine's own error type varies; name the step
                raise QueryError(name, sql, exc) from exc
            if self.debug_sql:
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                self.report(f"step {name}: {self.count(name):,} rows in {wall:.2f}s (CPU {cpu:.2f}s)")
            last = name
        return last

    def run_query(self, query: Query, given: dict[str, Any] | None = None) -> pa.Table:
        """Bind ``given`` to ``query``'s parameters, run its steps, return the last step's rows."""
        params = query.bind(given or {})
        steps = query.steps
        if len(steps) == 1 and not self.debug_sql:
            name, sql = steps[0]
            try:
                return self.to_arrow(sql, params)
            except Exception as exc:
                raise QueryError(name, sql, exc) from exc
        last = self.run_steps(steps, params)
        return self.to_arrow(f'SELECT * FROM "{last}"')
