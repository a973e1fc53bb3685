"""`fundtrace detect`: run the detectors and store their alerts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer

from fundtrace.cli import Format, app, emit, progress_steps, say, state
from fundtrace.detect import TYPOLOGIES, DetectSettings, run
from fundtrace.detect.settings import SCALES
from fundtrace.errors import UsageError

Typology = StrEnum("Typology", {t: t for t in TYPOLOGIES})
Scale = StrEnum("Scale", {s: s for s in SCALES})


def _parse_ts(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        raise UsageError(f"--since must be an ISO 8601 time such as 2024-05-01T08:00, got {text!r}") from None


@app.command()
def detect(
    since: Annotated[
        str | None,
        typer.Option(
            help="Recompute what payments at or after this time (ISO 8601, UTC) can change. By default: "
            "the earliest payment of the batches loaded since the last run; an explicit time later than that "
            "is moved back to it, and when a full run is due (changed settings or typologies, a new accounts "
            "batch) the run is full.",
            show_default=False,
        ),
    ] = None,
    only: Annotated[
        list[Typology] | None,
        typer.Option(help="Run only this typology; repeat the option for several. Default: all.", show_default=False),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Recompute everything instead of only what changed.")] = False,
    debug_sql: Annotated[
        bool, typer.Option("--debug-sql", help="Materialise every SQL step and report its row count and time.")
    ] = False,
    dwell_hours: Annotated[
        float | None,
        typer.Option(
            help="Hours money may stay in an account and count as passed through (default 48).", show_default=False
        ),
    ] = None,  # fmt: skip
    fan_window_hours: Annotated[
        float | None,
        typer.Option(
            help="Width in hours of a fan bucket; a fan is counted over two (default 72).", show_default=False
        ),
    ] = None,  # fmt: skip
    fan_min: Annotated[
        float | None,
        typer.Option(help="Fewest distinct counterparties that make a fan (default 5).", show_default=False),
    ] = None,
    cycle_window_hours: Annotated[
        float | None,
        typer.Option(help="Hours within which all payments of a cycle happen (default 72).", show_default=False),
    ] = None,
    cycle_max_len: Annotated[
        int | None, typer.Option(help="Longest cycle, in payments (default 6).", show_default=False)
    ] = None,
    max_hops: Annotated[
        int | None, typer.Option(help="Longest chain walked, in payments (default 6).", show_default=False)
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="Reporting threshold that structuring stays under (default 50000).", show_default=False),
    ] = None,
    scale: Annotated[
        Scale | None,
        typer.Option(
            help="The payments' time scale. auto (default): days for AMLSim's output or payments stamped by day "
            "over 180 days or more, else hours. days: settings left at their defaults take the day-scale values "
            "(tuned on AMLSim; the defaults quoted here are the hour ones).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Format, typer.Option("--format", help="Print the summary as a table or as JSON.")] = Format.table,
) -> None:
    """Detect mule chains, layering typologies, cycles, structuring and card-farm rings.

    Alerts go to the workspace tables alerts, alert_members and alert_evidence. After new transaction
    batches only what they can change is recomputed; the result equals a full rerun.
    """
    overrides = {
        "dwell_hours": dwell_hours, "fan_window_hours": fan_window_hours, "fan_min": fan_min,
        "cycle_window_hours": cycle_window_hours, "cycle_max_len": cycle_max_len, "max_hops": max_hops,
        "threshold": threshold, "scale": scale.value if scale else None,
    }  # fmt: skip
    settings = state.config.section("detect", DetectSettings, overrides)
    ring_settings = None
    try:
        from fundtrace.detect.rings import RingSettings

        ring_settings = state.config.section("rings", RingSettings)
    except ImportError:
        pass
    with state.workspace() as ws, progress_steps("detecting") as step:
        result = run(
            ws,
            settings,
            only=[t.value for t in only] if only else None,
            since=_parse_ts(since),
            full=full,
            debug_sql=debug_sql,
            report=say,
            ring_settings=ring_settings,
            progress=step,
        )
    if output is Format.json:
        emit([result], "json")
        return
    for note in result["notes"]:
        say(note)
    say(f"{result['mode']} run in {result['seconds']:.1f}s" + (f", from {result['since']}" if result["since"] else ""))
    emit(
        [{"typology": t, "recomputed": result["recomputed"].get(t, 0), "stored": result["alerts"].get(t, 0)}
         for t in TYPOLOGIES if t in result["alerts"] or t in result["recomputed"]],
        title="alerts",
    )  # fmt: skip
