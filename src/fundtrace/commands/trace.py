"""`fundtrace trace`: follow victims' money hop by hop and show where it is now."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.tree import Tree

from fundtrace import trace as tracing
from fundtrace.cli import Format, Rule, app, emit, progress_steps, say, state, stdout
from fundtrace.errors import UsageError


@app.command()
def trace(
    case_ids: Annotated[
        list[str] | None, typer.Argument(help="The case ids to trace (see the reports table).", show_default=False)
    ] = None,
    all_cases: Annotated[bool, typer.Option("--all", help="Trace every reported case.")] = False,
    rule: Annotated[
        Rule | None,
        typer.Option(
            help="The allocation rule whose amounts the tree shows (default libr, or trace.rule).", show_default=False
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Ignore transactions after this UTC time (ISO 8601) and report holdings at it; "
            "'reported' takes each case's holdings at its reported_at.",
            show_default=False,
        ),
    ] = None,
    max_hops: Annotated[
        int | None, typer.Option(help="Follow money out of accounts up to this level (default 8).", show_default=False)
    ] = None,
    horizon_days: Annotated[
        float | None,
        typer.Option(
            help="Follow a case's money this many days after its last payment (default 30).", show_default=False
        ),
    ] = None,
    min_amount: Annotated[
        float | None,
        typer.Option(
            help="Stop following a flow carrying less of the victim's money than this (default 1.00).",
            show_default=False,
        ),
    ] = None,
    min_share: Annotated[
        float | None,
        typer.Option(
            help="Stop following a flow carrying less than this share of the case's loss (default 0.005; 0: off).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Print at most this many case trees (all are stored).")] = 20,
    output: Annotated[
        Format, typer.Option("--format", help="table: a hop-by-hop tree per case; json: flows and holdings.")
    ] = Format.table,
) -> None:
    """Trace reported victims' money hop by hop under poison, haircut, FIFO, LIFO and LIBR, side by side.

    The results replace earlier ones for the same cases in trace_flows and trace_holdings; the tree shows
    each flow's amount and time, the victim's part of it under the chosen rule, and what every account
    reached still holds.
    """
    if not case_ids and not all_cases:
        raise UsageError("name one or more case ids, or give --all")
    settings = state.config.section(
        "trace",
        tracing.TraceSettings,
        {
            "rule": rule.value if rule else None,
            "max_hops": max_hops,
            "horizon_days": horizon_days,
            "min_amount": min_amount,
            "min_share": min_share,
        },
    )
    with state.workspace() as ws, progress_steps("tracing") as step:
        step("following the money")
        summary = tracing.run(ws, None if all_cases else case_ids, settings=settings, as_of=as_of)
        stored = tracing.results(ws, None if all_cases else case_ids)
    say(
        f"traced {summary['traced']:,} of {summary['cases']:,} cases: {summary['flows']:,} flows, "
        f"{summary['holdings']:,} holdings, {summary['accounts']:,} accounts, {summary['rows']:,} ledger rows, "
        f"{summary['passes']} passes, {summary['seconds']:.2f}s"
    )
    for problem in summary["unresolved"]:
        say(f"  case {problem['case_id']}: {problem['problem']}")
    if output is Format.json:
        emit([{"case_id": c, **v} for c, v in stored.items()], "json")
        return
    for shown, (case_id, data) in enumerate(stored.items()):
        if shown >= limit:
            say(f"... {len(stored) - limit:,} more cases stored (use --limit, or query trace_flows)")
            break
        stdout.print(_tree(case_id, data, settings.rule))


def _money(value: Any) -> str:
    return f"{float(value or 0):,.2f}"


def _tree(case_id: str, data: dict, rule: str) -> Tree:
    report = data["report"]
    lost = sum(float(r["amount_lost"]) for r in report)
    victim = report[0] if report else {}
    holdings = {(h["bank"], h["account"]): h for h in data["holdings"]}
    as_of = max((h["as_of"] for h in data["holdings"]), default=None)
    held = sum(float(h[f"held_{rule}"]) for h in data["holdings"])
    root = Tree(
        f"[bold]case {case_id}[/] · victim {victim.get('victim_bank') or '?'}/{victim.get('victim_account') or '?'}"
        f" · lost {_money(lost)} · still held ({rule}) {_money(held)}"
        + (f" as of {as_of:%Y-%m-%d %H:%M}" if as_of else "")
    )
    if not data["flows"]:
        root.add("[dim]no traced flows (no resolvable payment, or outside --as-of)[/]")
        return root
    outgoing: dict[tuple, list[dict]] = {}
    for f in data["flows"]:
        if f["hop"] > 0:
            outgoing.setdefault((f["src_bank"], f["src_account"]), []).append(f)
    expanded: set[tuple] = set()

    def add(parent: Tree, flow: dict) -> None:
        dst = (flow["dst_bank"], flow["dst_account"])
        label = (
            f"{flow['ts']:%Y-%m-%d %H:%M} → {dst[0]}/{dst[1]}  {_money(flow['amount'])}"
            f" (victim's {rule}: {_money(flow[f'taint_{rule}'])})  [dim]hop {flow['hop']} · {flow['txn_id']}[/]"
        )
        if flow["stop"]:
            parent.add(label + f"  [yellow]■ {flow['stop'].replace('_', ' ')} ({flow['channel']})[/]")
            return
        h = holdings.get(dst)
        if h is not None:
            label += f"\n  holds {_money(h[f'held_{rule}'])} of balance {_money(h['balance'])} · level {h['hop']}"
            label += "  [dim](" + ", ".join(f"{r} {_money(h[f'held_{r}'])}" for r in tracing.RULES) + ")[/]"
        if dst in expanded:
            parent.add(label + "  [dim](continued above)[/]")
            return
        expanded.add(dst)
        node = parent.add(label)
        for nxt in outgoing.get(dst, []):
            add(node, nxt)

    for f in data["flows"]:
        if f["hop"] == 0:
            add(root, f)
    return root
