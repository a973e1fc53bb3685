"""`fundtrace load` and `fundtrace status`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from fundtrace.cli import Format, app, emit, progress_steps, say, state
from fundtrace.config import LoadSettings
from fundtrace.ingest import load_paths
from fundtrace.workspace import summary


class KindName(StrEnum):
    transactions = "transactions"
    accounts = "accounts"
    links = "links"
    reports = "reports"
    calls = "calls"


class ProfileName(StrEnum):
    native = "native"
    amlsim = "amlsim"
    amlworld = "amlworld"


@app.command()
def load(
    kind: Annotated[
        KindName, typer.Argument(help="What the files hold: transactions, accounts, links, reports or calls.")
    ],
    paths: Annotated[list[str], typer.Argument(help="CSV (.csv, .csv.gz) or Parquet files, directories or globs.")],
    profile: Annotated[
        ProfileName, typer.Option(help="The files' layout: native columns, IBM AMLSim output or IBM AMLworld files.")
    ] = ProfileName.native,
    delimiter: Annotated[
        str | None, typer.Option(help="The CSV delimiter; detected from the file when not given.", show_default=False)
    ] = None,
    max_reject_rate: Annotated[
        float | None,
        typer.Option(
            help="Fail the whole batch, writing nothing, when more than this share of rows is rejected "
            "(default 0.05, or load.max_reject_rate in fundtrace.toml).",
            show_default=False,
        ),
    ] = None,
    currency: Annotated[
        str | None,
        typer.Option(help="The currency of rows that name none (default CNY, or load.currency).", show_default=False),
    ] = None,
    output: Annotated[
        Format, typer.Option("--format", help="table: a summary line per file on stderr; json: also JSON on stdout.")
    ] = Format.table,
) -> None:
    """Load batch files into the workspace, each file as one all-or-nothing batch.

    Every row is kept, skipped as already loaded, or rejected with its line and a reason (see
    `fundtrace status` and the rejects table). A file loaded before (same sha256) is skipped.
    """
    settings = state.config.section("load", LoadSettings, {"max_reject_rate": max_reject_rate, "currency": currency})
    with state.workspace() as ws, progress_steps(f"loading {kind.value}") as step:
        results = load_paths(
            ws, kind.value, paths, settings=settings, profile=profile.value, delimiter=delimiter, progress=step
        )
    for r in results:
        say(_describe(r))
        for rej in r.rejects:
            say(f"  line {rej['line']}: {rej['reason']} {rej['detail'] or ''}")
        if r.rows_rejected > len(r.rejects):
            say(f"  ... {r.rows_rejected - len(r.rejects)} more in the rejects table (batch {r.batch_id})")
    if output is Format.json:
        emit([r.as_dict() for r in results], "json")


def _describe(r) -> str:
    if r.status == "already_loaded":
        return f"{r.path}: already loaded as batch {r.batch_id} (same sha256); nothing to do"
    reasons = f" ({', '.join(f'{k} {v:,}' for k, v in sorted(r.reasons.items()))})" if r.reasons else ""
    return (
        f"{r.path}: batch {r.batch_id}: {r.rows_in:,} rows, {r.rows_kept:,} kept, "
        f"{r.rows_rejected:,} rejected{reasons}, {r.rows_duplicate:,} already loaded"
        + (f", {r.rows_updated:,} updated" if r.rows_updated else "")
    )


@app.command()
def status(
    output: Annotated[Format, typer.Option("--format", help="Print as a table or as JSON.")] = Format.table,
) -> None:
    """Show rows per table, every batch with its counts and sha256, the time span and the schema version."""
    with state.workspace(read_only=True) as ws:
        info = summary(ws)
    if output is Format.json:
        emit([info], "json")
        return
    say(f"workspace {info['path']} · schema version {info['schema_version']}")
    if info["transactions_from"]:
        say(f"transactions from {info['transactions_from']} to {info['transactions_to']} (UTC)")
    emit([{"table": t, "rows": n} for t, n in info["tables"].items()], title="tables")
    if info["batches"]:
        emit(info["batches"], title="batches")
