"""`fundtrace run`: detect, trace, score, freeze and report in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fundtrace import pipeline
from fundtrace.cli import Format, Rule, app, emit, progress_steps, say, state
from fundtrace.commands.report import resolved_config
from fundtrace.errors import FundtraceError


@app.command("run")
def run_all(
    rule: Annotated[
        Rule | None,
        typer.Option(
            help="The tracing rule of held amounts, scores and freezes (default lifo, or score.rule).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="The directory for freeze_list.csv, the Parquet files and manifest.json.")
    ] = Path("fundtrace-report"),
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Trace holdings at this UTC time (ISO 8601), or 'reported' for each case's report time; "
            "default: the end of the data.",
            show_default=False,
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="The freeze requests' time (ISO 8601 UTC); default: now.", show_default=False),
    ] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="Record a failing stage and run the stages that do not need it.")
    ] = False,
    output: Annotated[Format, typer.Option("--format", help="Print the stages as a table or JSON.")] = Format.table,
) -> None:
    """Run every stage after loading: detect, trace, score, freeze (issued and recorded) and report.

    Progress goes to stderr, one line per finished stage. Settings come from fundtrace.toml sections
    detect, rings, trace and score; the manifest records them with the run id.
    """
    from fundtrace.detect import DetectSettings
    from fundtrace.score import ScoreSettings
    from fundtrace.trace import TraceSettings

    cfg = state.config
    r = rule.value if rule else None
    detect_settings = cfg.section("detect", DetectSettings)
    try:
        from fundtrace.detect.rings import RingSettings

        ring_settings = cfg.section("rings", RingSettings)
    except ImportError:
        ring_settings = None
    trace_settings = cfg.section("trace", TraceSettings, {"rule": r})
    score_settings = cfg.section("score", ScoreSettings, {"rule": r})
    config = resolved_config()

    def done(stage: dict) -> None:
        detail = ", ".join(f"{k} {v}" for k, v in stage["detail"].items())
        say(f"{stage['stage']:<7} {stage['status']:<8} {stage['seconds']:>6.1f}s  {detail}")

    with state.workspace() as ws, progress_steps("run") as step:
        result = pipeline.run(
            ws, out, detect_settings=detect_settings, ring_settings=ring_settings, trace_settings=trace_settings,
            score_settings=score_settings, trace_as_of=as_of, now=now, config=config, keep_going=keep_going,
            progress=step, on_stage=done,
        )  # fmt: skip
    if output is Format.json:
        emit([result], "json")
    else:
        say(f"run {result['run_id']} in {result['seconds']:.1f}s → {result['out']}")
    failed = [s["stage"] for s in result["stages"] if s["status"] == "failed"]
    if failed:
        raise FundtraceError(f"stage(s) failed: {', '.join(failed)}", hint="run with --debug for the traceback")
