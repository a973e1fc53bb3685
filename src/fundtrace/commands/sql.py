"""`fundtrace sql`: one ad-hoc SELECT on the workspace, read-only, with file access off."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from fundtrace import analyst
from fundtrace.cli import app, emit, say, state


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One SELECT (or EXPLAIN) statement, quoted.", show_default=False)],
    output: Annotated[Format, typer.Option("--format", help="Print a table, CSV or JSON.")] = Format.table,
) -> None:
    """Run one SELECT on the workspace opened read-only, with file access switched off.

    Statements that write (INSERT, CREATE, COPY ...), read or write files (read_csv, COPY, ATTACH) or
    change settings are refused with exit code 2.
    """
    with state.workspace(read_only=True) as ws:
        table = analyst.run_sql(ws, statement)
    emit(table.to_pylist(), output.value)
    if output is Format.table:
        say(f"{table.num_rows:,} rows")
