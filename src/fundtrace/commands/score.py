"""`fundtrace score`, `screen`, `freeze`, `stats`, `returns`: decisions for banks and the headline figures."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from fundtrace import score as scoring
from fundtrace import stats as statistics
from fundtrace.cli import Format, Rule, app, emit, say, state


def _json(value: dict) -> None:
    """One JSON object on stdout (emit() writes lists of rows)."""
    typer.echo(
        json.dumps(
            value, default=lambda v: float(v) if isinstance(v, Decimal) else str(v), indent=2, ensure_ascii=False
        )
    )


def _settings(rule: Rule | None = None) -> scoring.ScoreSettings:
    return state.config.section("score", scoring.ScoreSettings, {"rule": rule.value if rule else None})


@app.command()
def score(
    rule: Annotated[
        Rule | None,
        typer.Option(
            help="The tracing rule whose holdings count as victims' money (default lifo, or score.rule).",
            show_default=False,
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Score at this UTC time (ISO 8601); default: the newest transaction.", show_default=False
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Print this many of the highest-scoring accounts.")] = 20,
    output: Annotated[Format, typer.Option("--format", help="Print a table, or JSON for programs.")] = Format.table,
) -> None:
    """Score every account in [0, 1] with reason codes, and decide the freeze list.

    Weights and band thresholds are in the "score" section of fundtrace.toml. Results replace the
    account_scores, freeze_list and flagged_phones tables.
    """
    settings = _settings(rule)
    with state.workspace() as ws:
        summary = scoring.run(ws, settings, as_of=as_of)
        rows = (
            ws.con.sql(
                "SELECT bank, account, score, band, reasons FROM account_scores "
                "ORDER BY score DESC, bank, account LIMIT $n",
                params={"n": top},
            )
            .pl()
            .to_dicts()
        )
    for note in summary["notes"]:
        say(note)
    say(
        f"scored {summary['accounts_scored']:,} accounts as of {summary['as_of']}: freeze {summary['band_freeze']:,}, "
        f"hold {summary['band_hold']:,}, review {summary['band_review']:,}; freeze list {summary['freeze_list']:,} "
        f"accounts ({summary['stop_payments']:,} stop-payments), {summary['amount_to_freeze']:,.2f} under "
        f"{summary['rule']} · {summary['seconds']:.2f}s"
    )
    emit(rows, output.value)


@app.command()
def screen(
    batch: Annotated[
        Path,
        typer.Argument(
            help="A CSV or Parquet file of payments with the native transaction columns; it is read, not loaded.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Write every payment's decision to this file (.csv or .parquet).", show_default=False),
    ] = None,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not record the decisions in payment_decisions.")
    ] = False,
    top: Annotated[int, typer.Option(help="Print this many of the highest-scoring payments.")] = 20,
    output: Annotated[Format, typer.Option("--format", help="Print a table, or JSON for programs.")] = Format.table,
) -> None:
    """Score incoming payments before they settle: allow, review or hold, with score and reasons.

    Payee signals: known mule, ring member, holder of victims' money, new and passing money through,
    already frozen. Payer signals: first payment to this payee, large against the payer's history, called
    by a flagged phone card just before. Run `fundtrace score` first.
    """
    with state.workspace(read_only=no_store) as ws:
        result = scoring.screen(ws, batch, _settings(), store=not no_store, out=out)
    say(
        f"screened {result['payments']:,} payments: hold {result['hold']:,}, review {result['review']:,}, "
        f"allow {result['allow']:,} · {result['seconds']:.3f}s"
    )
    emit(result["decisions"].head(top).to_dicts(), output.value)


@app.command()
def freeze(
    out: Annotated[Path, typer.Option(help="Write the requests to this CSV file.", show_default=False)],
    split_by_bank: Annotated[
        Path | None,
        typer.Option("--split-by-bank", help="Also write one CSV per bank into this directory.", show_default=False),
    ] = None,
    rule: Annotated[
        Rule | None,
        typer.Option(
            help="Decide the amounts under this tracing rule (default: the rule the list was scored with, lifo).",
            show_default=False,
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="The request time (ISO 8601 UTC); the same workspace and --now give the same "
            "file. Default: the current time.",
            show_default=False,
        ),
    ] = None,
    bom: Annotated[bool, typer.Option("--bom", help="Start the files with a UTF-8 byte-order mark for Excel.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the files without remembering the requests as issued.")
    ] = False,
) -> None:
    """Write the freeze list for banks: STOP_PAY_48H, FREEZE, RENEW and UNFREEZE requests, one row each.

    Issued requests are remembered in freeze_requests, so a rerun renews freezes before they expire and
    lifts those no longer justified instead of repeating them. Text cells are neutralised against
    spreadsheet formulas; amounts stay numbers.
    """
    from fundtrace.export.freeze import issue

    with state.workspace() as ws:
        result = issue(
            ws,
            now=now,
            rule=rule.value if rule else None,
            settings=_settings(),
            out=out,
            split_by_bank=split_by_bank,
            bom=bom,
            record=not dry_run,
        )
    counts = ", ".join(f"{k} {v:,}" for k, v in result.counts.items())
    say(f"{len(result.rows):,} requests ({counts}) at {result.now:%Y-%m-%d %H:%M:%S} → {', '.join(result.files)}")


@app.command()
def stats(
    output: Annotated[Format, typer.Option("--format", help="Print a table, or one JSON object.")] = Format.table,
) -> None:
    """Print the headline figures: reports and victims, money lost, traced, held and frozen, payments held,
    accounts frozen, rings found and banks involved. A figure whose stage has not run is left empty."""
    with state.workspace(read_only=True) as ws:
        figures = statistics.headline(ws)
    if output is Format.json:
        _json(figures)
        return
    emit([{"figure": k, "value": v} for k, v in figures.items()], "table")


@app.command()
def returns(
    case_id: Annotated[
        str, typer.Argument(help="The reported case whose victim's returns to show.", show_default=False)
    ],
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Start of the 30-day public notice (ISO 8601 UTC); default: the newest transaction.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Format, typer.Option("--format", help="Print tables, or one JSON object.")] = Format.table,
) -> None:
    """Show who gets what back from the frozen money holding this case's funds, and the public notice list.

    Each listed account's amount_to_freeze is split among the cases it holds: direct return when the
    victims' deposits can be told apart in time, pro rata by loss otherwise (then every victim sharing the
    account is on the 30-day public notice list).
    """
    with state.workspace(read_only=True) as ws:
        result = scoring.returns(ws, case_id, now=now)
    if output is Format.json:
        _json(result)
        return
    say(
        f"case {case_id}: {result['total_returned']:,.2f} comes back from {len(result['accounts'])} frozen "
        f"account(s) under {result['rule']}"
    )
    emit(result["accounts"], "table", title="returns")
    if result["public_notice"]:
        emit(result["public_notice"], "table", title="30-day public notice (pro rata)")
