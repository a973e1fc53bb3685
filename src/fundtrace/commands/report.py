"""`fundtrace report`: the results as Parquet files with a manifest, for other tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fundtrace.cli import app, progress_steps, say, state
from fundtrace.export.report import write_report


def resolved_config() -> dict:
    """The settings every stage would use now (defaults < fundtrace.toml), for the manifest."""
    from fundtrace.detect import DetectSettings
    from fundtrace.score import ScoreSettings
    from fundtrace.trace import TraceSettings

    cfg = state.config
    for name, cls in (("detect", DetectSettings), ("trace", TraceSettings), ("score", ScoreSettings)):
        if name not in cfg.resolved:
            cfg.section(name, cls)
    return {"file": str(cfg.path) if cfg.path else None, "sections": cfg.resolved}


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="The directory to write the files into.", show_default=False)],
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="The time of the previewed freeze requests (ISO 8601 UTC); default: the current time.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write the results as zstd Parquet files (alerts, alert_members, alert_evidence, account_scores,
    payment_decisions, trace_flows, trace_holdings), freeze_list.csv and manifest.json.

    The manifest records the fundtrace version, the settings, every input batch with its sha256, row
    counts and the run id that every Parquet file also carries in its key-value metadata. The freeze
    requests are previewed, not recorded: issue them with `fundtrace freeze` (or `fundtrace run`).
    """
    from fundtrace.score import ScoreSettings

    config = resolved_config()
    settings = state.config.section("score", ScoreSettings)
    with state.workspace(read_only=True) as ws, progress_steps("report") as step:
        manifest = write_report(ws, out, config=config, score_settings=settings, now=now, progress=step)
    files = ", ".join(f"{name} {info['rows']:,}" for name, info in manifest["files"].items())
    say(f"run {manifest['run_id']} → {out}: {files}")
