"""Engines run fundtrace's SQL. Detectors take an engine and never ask which one it is."""

from fundtrace.engine.base import Engine
from fundtrace.engine.duckdb import DuckDBEngine

__all__ = ["DuckDBEngine", "Engine"]
