"""The demo: simulate a world, load it, run every stage that exists, measure it against the truth.

:func:`run_demo` is what ``fundtrace demo`` calls. It writes into one directory:

- ``world/``: the simulated inputs (``transactions``, ``accounts``, ``links``, ``reports``, ``calls``)
  and their ground truth (``truth_*``), as written by :func:`fundtrace.simulate.simulate`;
- ``fundtrace.duckdb``: a fresh workspace with the world loaded and every stage's results;
- ``evaluation.json``: :func:`fundtrace.evaluate.evaluate` against the world's truth;
- ``report/``: what ``fundtrace run`` writes (freeze_list.csv, the Parquet files, manifest.json).

Detect, trace, score, freeze and report run through :func:`fundtrace.pipeline.run`.

Stages are found by import: a stage whose module (or its ``run`` function) does not exist yet is
listed as ``not built yet`` and nothing is made up in its place. A stage that raises is listed as
``failed`` with its message, and the demo goes on with the stages that do not depend on it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fundtrace.config import LoadSettings
from fundtrace.errors import UsageError
from fundtrace.evaluate import evaluate, find_truth_file
from fundtrace.ingest import load_paths
from fundtrace.pipeline import run as run_pipeline
from fundtrace.workspace import Workspace

__all__ = ["SIZES", "DemoSize", "run_demo"]

log = logging.getLogger("fundtrace.demo")

MARKER = ".fundtrace-demo"
WORKSPACE = "fundtrace.duckdb"
WORLD = "world"
EVALUATION = "evaluation.json"
REPORT = "report"
STAGE_MODULES = (("detect", "fundtrace.detect"), ("trace", "fundtrace.trace"), ("score", "fundtrace.score"))
# Loaded in this order: reports name transactions, links name accounts.
INPUT_KINDS = ("accounts", "transactions", "links", "reports", "calls")


@dataclass(frozen=True)
class DemoSize:
    """How big a world to simulate."""

    accounts: int
    days: int
    seed: int = 7
    note: str = ""


SIZES: dict[str, DemoSize] = {
    "small": DemoSize(accounts=2_000, days=30, note="about a minute or less end to end"),
    "medium": DemoSize(accounts=43_000, days=30, note="about 1 M transactions"),
}

Progress = Callable[[str], None]


def _find(module: str, attr: str) -> Callable | None:
    """``module.attr`` when both exist; None when the stage is not built yet."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            return None
        raise  # the module exists but something it imports is missing: a real error
    return getattr(mod, attr, None)


def run_demo(
    out: Path,
    *,
    size: str = "small",
    load_settings: LoadSettings | None = None,
    progress: Progress | None = None,
    keep_going: bool = True,
) -> dict[str, Any]:
    """Simulate a world of ``size`` into ``out``, load it, run the stages, evaluate; return the figures.

    ``out`` must be empty, missing, or a directory an earlier demo wrote (its files are replaced).
    ``keep_going``: record a stage that raises as failed and go on (default), or let the error out.
    """
    if size not in SIZES:
        raise UsageError(f"unknown demo size {size!r} (known: {', '.join(SIZES)})")
    spec = SIZES[size]
    step = progress or (lambda _msg: None)
    out = Path(out)
    _prepare(out)
    world, db = out / WORLD, out / WORKSPACE
    stages: list[dict[str, Any]] = []
    started = time.perf_counter()

    simulate = _find("fundtrace.simulate", "simulate")
    if simulate is None:
        raise UsageError(
            "the simulator (fundtrace.simulate) is not built yet, so the demo has no world to run on",
            hint="load your own batches with `fundtrace load` instead",
        )
    step("simulating a world")
    t0 = time.perf_counter()
    world.mkdir(parents=True, exist_ok=True)
    counts = simulate(world, accounts=spec.accounts, days=spec.days, seed=spec.seed, fmt="parquet")
    stages.append(_done("simulate", t0, {k: int(v) for k, v in (counts or {}).items()}))

    with Workspace(db) as ws:
        t0 = time.perf_counter()
        loaded: dict[str, int] = {}
        for kind in INPUT_KINDS:
            path = find_truth_file(world, kind)
            if path is None:
                continue
            step(f"loading {kind}")
            results = load_paths(ws, kind, [str(path)], settings=load_settings or LoadSettings(), progress=step)
            loaded[kind] = sum(r.rows_kept for r in results)
            rejected = sum(r.rows_rejected for r in results)
            if rejected:
                loaded[f"{kind}_rejected"] = rejected
        stages.append(_done("load", t0, loaded))

        # Every stage after loading, through `fundtrace run`'s pipeline. Holdings at each case's report
        # time: what the world's truth_holdings describe; freeze requests dated at the end of the data.
        runners = {stage: _find(module, "run") for stage, module in STAGE_MODULES}
        from fundtrace.score import data_time

        result = run_pipeline(
            ws,
            out / REPORT,
            trace_as_of="reported",
            now=data_time(ws),
            config={"file": None, "sections": {"load": dataclasses.asdict(load_settings or LoadSettings())}},
            runners=runners,
            keep_going=keep_going,
            progress=step,
        )
        stages.extend(result["stages"])

        step("evaluating against the world's truth")
        t0 = time.perf_counter()
        evaluation = evaluate(ws, world)
        (out / EVALUATION).write_text(json.dumps(evaluation, indent=2, ensure_ascii=False), encoding="utf-8")
        stages.append(_done("evaluate", t0, {}))
        headline = _headline(ws, evaluation)

    return {
        "size": size,
        "accounts": spec.accounts,
        "days": spec.days,
        "seed": spec.seed,
        "seconds": round(time.perf_counter() - started, 1),
        "stages": stages,
        "headline": headline,
        "evaluation": evaluation,
        "outputs": {
            "directory": str(out),
            "world": str(world),
            "workspace": str(db),
            "evaluation": str(out / EVALUATION),
            "report": str(out / REPORT),
        },
    }


def _prepare(out: Path) -> None:
    """Make ``out`` ready: create it, or clear what an earlier demo left there; refuse anything else."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise UsageError(
                f"--out {out}: directory is not empty and was not written by `fundtrace demo`",
                hint="name a new or empty directory",
            )
        for name in (WORLD, REPORT):
            if (out / name).exists():
                shutil.rmtree(out / name)
        for name in (WORKSPACE, WORKSPACE + ".wal", EVALUATION):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `fundtrace demo`; its files are replaced on the next run\n")


def _done(stage: str, t0: float, detail: dict) -> dict[str, Any]:
    return {"stage": stage, "status": "done", "seconds": round(time.perf_counter() - t0, 2), "detail": detail}


def _scalar(ws: Workspace, sql: str) -> Any:
    return ws.con.execute(sql).fetchall()[0][0]


def _headline(ws: Workspace, evaluation: dict) -> dict[str, Any]:
    """What an analyst wants first: reports, money lost, alerts, money traced and held, quality."""
    truth = evaluation["truth"]
    lost = _scalar(ws, "SELECT sum(amount_lost) FROM reports")
    h: dict[str, Any] = {
        "transactions": truth["transactions"],
        "accounts_transacting": truth["transacting_accounts"],
        "reported_cases": _scalar(ws, "SELECT count(DISTINCT case_id) FROM reports"),
        "victims": _scalar(ws, "SELECT count(DISTINCT (victim_bank, victim_account)) FROM reports"),
        "money_lost_reported": float(lost or 0),
        "truth_cases": truth.get("truth_cases"),
        "truth_money_lost": truth.get("truth_money_lost"),
        "truth_money_held_at_report": truth.get("money_held_at_report"),
        "alerts": None,
        "alerts_by_typology": [],
        "traced": None,
    }
    if ws.table_exists("alerts"):
        rows = ws.con.execute(
            "SELECT a.typology, count(DISTINCT a.alert_id), count(DISTINCT (m.bank, m.account)) "
            "FILTER (WHERE m.role IS DISTINCT FROM 'source') "
            "FROM alerts a LEFT JOIN alert_members m ON m.alert_id = a.alert_id GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        h["alerts"] = sum(r[1] for r in rows)
        h["alerts_by_typology"] = [{"typology": t, "alerts": n, "accounts_flagged": m} for t, n, m in rows]
    if ws.table_exists("freeze_list"):
        from fundtrace.stats import headline as centre_figures

        h["centre"] = centre_figures(ws)
    if ws.table_exists("trace_holdings") and _scalar(ws, "SELECT count(*) FROM trace_holdings"):
        cases, accounts, fifo, poison, libr = ws.con.execute(
            "SELECT count(DISTINCT case_id), count(DISTINCT (bank, account)) FILTER (WHERE held_fifo > 0), "
            "sum(held_fifo), sum(held_poison), sum(held_libr) FROM trace_holdings"
        ).fetchall()[0]
        h["traced"] = {
            "cases": cases,
            "accounts_holding": accounts,
            "held_fifo": float(fifo or 0),
            "held_libr": float(libr or 0),
            "held_poison": float(poison or 0),
        }
    return h
