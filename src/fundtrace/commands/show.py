"""`fundtrace show account` and `fundtrace explain`: one account, one alert, everything known."""

from __future__ import annotations

from typing import Annotated

import typer

from fundtrace import analyst
from fundtrace.cli import Format, app, emit, say, state, stdout

show_app = typer.Typer(
    help="Show everything known about one thing in the workspace.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(show_app, name="show")

_TITLES = {
    "summary": "ledger summary",
    "links": "identifiers (phone cards, devices, ids)",
    "alerts": "alerts",
    "rings": "card-farm rings",
    "traces": "victims' money it received (tracing)",
    "score": "score",
    "reasons": "score reasons",
    "freeze": "freeze decisions and requests",
}


@show_app.command("account")
def show_account(
    account: Annotated[str, typer.Argument(help="The account, as BANK:ACCOUNT.", show_default=False)],
    output: Annotated[Format, typer.Option("--format", help="Print tables, or one JSON object.")] = Format.table,
) -> None:
    """Show one account: ledger summary, identifiers, alerts, rings, traced victims' money, score with
    reasons, and freeze decisions."""
    with state.workspace(read_only=True) as ws:
        sections = analyst.account_profile(ws, account)
    if output is Format.json:
        emit([sections], "json")
        return
    for key, rows in sections.items():
        if rows:
            emit(rows, "table", title=_TITLES[key])
        else:
            stdout.print(f"{_TITLES[key]}: none", highlight=False, markup=False)


@app.command()
def explain(
    alert_id: Annotated[str, typer.Argument(help="The alert to explain (see `fundtrace query alerts`).")],
    output: Annotated[Format, typer.Option("--format", help="Print tables, or one JSON object.")] = Format.table,
) -> None:
    """Explain why an alert fired: its typology in plain words, its summary, its members and its evidence
    payments."""
    with state.workspace(read_only=True) as ws:
        result = analyst.explain_alert(ws, alert_id)
    if output is Format.json:
        emit([result], "json")
        return
    a = result["alert"]
    stdout.print(
        f"alert {a['alert_id']} · {a['typology']} · score {a['score']:.3f} · {a['start_ts']} → {a['end_ts']}\n"
        f"why: {result['why']}",
        highlight=False,
        markup=False,
    )
    emit(result["members"], "table", title="members")
    emit(result["evidence"], "table", title="evidence payments")
    say(f"{len(result['members'])} members, {len(result['evidence'])} evidence payments")
