"""`fundtrace run`: every stage after loading, in order, in one call.

detect → trace → score → freeze → report. Each stage's summary is returned as
``{"stage", "status", "seconds", "detail"}`` with status ``done``, ``failed``, ``skipped`` (a stage it
needs did not finish) or ``not built yet`` (no runner given for it; the demo uses this). By default the
first failure raises; with ``keep_going`` it is recorded and the stages that do not need it still run.
The freeze stage issues (and records) the requests into ``OUT/freeze_list.csv``; the report stage writes
the Parquet files and ``OUT/manifest.json`` under the same run id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fundtrace.export.report import new_run_id, write_report

__all__ = ["STAGES", "run"]

log = logging.getLogger("fundtrace.pipeline")

STAGES = ("detect", "trace", "score", "freeze", "report")
_NEEDS = {"freeze": ("score",)}
_DEFAULT = object()


def _default_runners() -> dict[str, Callable | None]:
    from fundtrace.detect import run as detect_run
    from fundtrace.score import run as score_run
    from fundtrace.trace import run as trace_run

    return {"detect": detect_run, "trace": trace_run, "score": score_run}


def _kw(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _plain(detail: Any) -> dict[str, Any]:
    """A stage's summary kept to JSON-friendly scalars (lists and dicts become their length)."""
    if not isinstance(detail, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if isinstance(value, bool | int | float | str) or value is None:
            out[key] = value
        elif isinstance(value, list | tuple | dict):
            out[key] = len(value)
    return out


def run(
    ws,
    out: Path,
    *,
    detect_settings=None,
    ring_settings=None,
    trace_settings=None,
    score_settings=None,
    trace_as_of: datetime | str | None = None,
    now: datetime | str | None = None,
    config: dict[str, Any] | None = None,
    runners: dict[str, Callable | None] | None = None,
    keep_going: bool = False,
    progress: Callable[[str], None] | None = None,
    on_stage: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run detect, trace, score, freeze and report on ``ws``, writing the outputs into ``out``.

    ``runners`` replaces the detect/trace/score functions (None for a stage: not built yet).
    ``trace_as_of``: passed to tracing (``"reported"``: holdings at each case's report time).
    ``now``: the freeze requests' time (default: the current UTC time). Returns the run id, the stages
    and the output paths.
    """
    from fundtrace.export.freeze import issue

    started = time.perf_counter()
    out = Path(out)
    run_id = new_run_id()
    step = progress or (lambda _msg: None)
    found = _default_runners() if runners is None else {s: runners.get(s) for s in ("detect", "trace", "score")}
    stages: list[dict[str, Any]] = []
    status: dict[str, str] = {}
    freeze_rows: list[dict[str, Any]] | None = None

    def call_detect(fn):
        return fn(ws, **_kw(settings=detect_settings, ring_settings=ring_settings))

    def call_trace(fn):
        return fn(ws, **_kw(settings=trace_settings, as_of=trace_as_of))

    def call_score(fn):
        return fn(ws, **_kw(settings=score_settings))

    def call_freeze(_fn):
        nonlocal freeze_rows
        result = issue(ws, now=now, settings=score_settings, out=out / "freeze_list.csv", record=True)
        freeze_rows = result.rows
        return {"requests": len(result.rows), **result.counts, "now": result.now.isoformat(sep=" ")}

    def call_report(_fn):
        manifest = write_report(
            ws, out, config=config, score_settings=score_settings, freeze_rows=freeze_rows, now=now, run_id=run_id,
            progress=step,
        )  # fmt: skip
        return {"files": len(manifest["files"]), "run_id": run_id}

    calls = {
        "detect": (call_detect, found.get("detect")),
        "trace": (call_trace, found.get("trace")),
        "score": (call_score, found.get("score")),
        "freeze": (call_freeze, True),
        "report": (call_report, True),
    }
    for stage in STAGES:
        call, fn = calls[stage]
        t0 = time.perf_counter()
        missing = [n for n in _NEEDS.get(stage, ()) if status.get(n) != "done"]
        if fn is None:
            entry = {"stage": stage, "status": "not built yet", "seconds": 0.0, "detail": {}}
        elif missing:
            entry = {"stage": stage, "status": "skipped", "seconds": 0.0,
                     "detail": {"reason": f"needs {', '.join(missing)}"}}  # fmt: skip
        else:
            step(f"{stage}")
            try:
                detail = call(fn)
            except Exception as exc:  # recorded when keep_going; the stages that do not need it go on
                if not keep_going:
                    raise
                log.debug("stage %s failed", stage, exc_info=True)
                first = str(exc).splitlines()[0] if str(exc) else ""
                detail = {"error": f"{type(exc).__name__}: {first}"}
                entry = {"stage": stage, "status": "failed", "seconds": round(time.perf_counter() - t0, 2),
                         "detail": detail}  # fmt: skip
            else:
                entry = {"stage": stage, "status": "done", "seconds": round(time.perf_counter() - t0, 2),
                         "detail": _plain(detail)}  # fmt: skip
        status[stage] = entry["status"]
        stages.append(entry)
        if on_stage:
            on_stage(entry)
    return {
        "run_id": run_id,
        "stages": stages,
        "out": str(out),
        "manifest": str(out / "manifest.json") if status.get("report") == "done" else None,
        "seconds": round(time.perf_counter() - started, 2),
    }
