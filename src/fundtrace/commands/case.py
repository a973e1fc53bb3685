"""`fundtrace case`: one case's money flow as an offline HTML report, or GraphML for Gephi and yEd."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from fundtrace.cli import Rule, app, say, state
from fundtrace.export.case import write_case


class Format(StrEnum):
    html = "html"
    graphml = "graphml"


@app.command()
def case(
    case_id: Annotated[
        str, typer.Argument(help="The reported case (see `fundtrace query cases`).", show_default=False)
    ],
    out: Annotated[Path, typer.Option(help="The file to write (e.g. case.html).", show_default=False)],
    output: Annotated[
        Format, typer.Option("--format", help="html: one self-contained page; graphml: for Gephi or yEd.")
    ] = Format.html,
    rule: Annotated[
        Rule | None,
        typer.Option(
            help="The tracing rule of the victim's amounts (default: the freeze list's rule, else lifo).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a case report: the money-flow graph (accounts by hop level, payments with amount and time,
    accounts to hold or freeze highlighted with what they hold), the timeline, the freeze rows and the
    evidence, in one HTML file that works offline."""
    with state.workspace(read_only=True) as ws:
        result = write_case(ws, case_id, out, fmt=output.value, rule=rule.value if rule else None)
    say(
        f"case {case_id}: {result['accounts']:,} accounts, {result['payments']:,} payments, "
        f"{result['to_freeze']:,} to freeze ({result['rule']}) → {result['path']}"
    )
