"""`fundtrace query`: the analyst's named questions, with typed parameters bound by the engine."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from fundtrace import analyst
from fundtrace.cli import app, emit, say, state, stdout
from fundtrace.errors import UsageError


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


@app.command()
def query(
    name: Annotated[str | None, typer.Argument(help="The query to run (see --list).", show_default=False)] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="A parameter as key=value; repeat for several. Accounts are written BANK:ACCOUNT.",
            show_default=False,
        ),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the queries, one per line: name, then what it answers.")
    ] = False,
    output: Annotated[
        Format, typer.Option("--format", help="table, csv or json on stdout; csv, json or parquet with --out.")
    ] = Format.table,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the rows to this file (written by the engine) instead of stdout.", show_default=False),
    ] = None,
) -> None:
    """Run a named analyst query with typed parameters, or list the queries with --list.

    Values are bound as parameters, never pasted into the SQL; an unknown parameter or a value of the
    wrong type is refused. Example: fundtrace query counterparties -p account=ICBC:6222001 --format csv.
    """
    if list_:
        for q in analyst.catalogue():
            params = " ".join(
                f"{p.name}={p.type}" if p.default is None else f"[{p.name}={p.default}]" for p in q.params
            )
            stdout.print(f"{q.name:<18} {q.description}  ({params or 'no parameters'})", highlight=False, markup=False)
        return
    if not name:
        raise UsageError("name a query, or give --list")
    given = analyst.parse_pairs(param)
    with state.workspace(read_only=True) as ws:
        if out is not None:
            fmt = "csv" if output is Format.table else output.value
            rows = analyst.export(ws, name, given, out, fmt)
            say(f"{rows:,} rows → {out}")
            return
        if output is Format.parquet:
            raise UsageError("--format parquet needs --out FILE")
        table = analyst.run(ws, name, given)
    emit(table.to_pylist(), output.value)
    if output is Format.table:
        say(f"{table.num_rows:,} rows")
