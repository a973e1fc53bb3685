"""`fundtrace demo`: a simulated world, every stage that exists, and the headline figures."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from fundtrace.cli import Format, app, emit, money, progress_steps, ratio, state, stdout
from fundtrace.config import LoadSettings
from fundtrace.demo import SIZES, run_demo
from fundtrace.errors import FundtraceError


class Size(StrEnum):
    small = "small"
    medium = "medium"


@app.command()
def demo(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="The directory to write the world, the workspace (fundtrace.duckdb) and evaluation.json into. "
            "It must be new, empty, or an earlier demo's directory, whose files are replaced.",
        ),
    ] = Path("demo-out"),
    size: Annotated[
        Size,
        typer.Option(
            help=f"small: {SIZES['small'].accounts:,} accounts over {SIZES['small'].days} days, fast; "
            f"medium: {SIZES['medium'].accounts:,} accounts over {SIZES['medium'].days} days, "
            f"{SIZES['medium'].note}."
        ),
    ] = Size.small,
    output: Annotated[
        Format, typer.Option("--format", help="Print the headline figures for people, or everything as JSON.")
    ] = Format.table,
) -> None:
    """Simulate a telecom-fraud world, load it, run every stage built so far and measure it against the truth.

    Prints the headline figures (reports and victims, money lost, alerts by typology, money traced and
    still held, quality against the truth) and where the outputs are. A stage not built yet is listed as
    such; a stage that fails is listed with its error and the command exits 1. Ignores --db: the demo
    always writes its own fresh workspace under --out.
    """
    settings = state.config.section("load", LoadSettings)
    with progress_steps("demo") as step:
        result = run_demo(out, size=size.value, load_settings=settings, progress=step, keep_going=not state.debug)
    if output is Format.json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        render(result)
    failed = [s["stage"] for s in result["stages"] if s["status"] == "failed"]
    if failed:
        raise FundtraceError(
            f"stage(s) failed: {', '.join(failed)}",
            hint="see the stages table; run with --debug to stop at the first failure with its traceback",
        )


def render(result: dict[str, Any]) -> None:
    h, ev = result["headline"], result["evaluation"]
    p = stdout.print
    p(
        f"fundtrace demo · {result['size']} world: {result['accounts']:,} accounts, {result['days']} days, "
        f"seed {result['seed']} · {result['seconds']:.1f} s",
        highlight=False,
    )
    emit(
        [
            {"stage": s["stage"], "status": s["status"], "seconds": f"{s['seconds']:.1f}", "detail": _detail(s)}
            for s in result["stages"]
        ],
        title="stages",
    )
    lines = [
        f"transactions      {h['transactions']:,} between {h['accounts_transacting']:,} accounts",
        f"reports           {h['reported_cases']:,} cases from {h['victims']:,} victims, "
        f"money lost {money(h['money_lost_reported'])}",
    ]
    if h["truth_cases"] is not None:
        unreported = h["truth_cases"] - h["reported_cases"]
        lines.append(
            f"truth             {h['truth_cases']:,} fraud cases ({unreported:,} never reported), "
            f"money lost {money(h['truth_money_lost'])}; victims' money still held at report time "
            f"{money(h['truth_money_held_at_report'])}"
        )
    lines.append("alerts            " + ("detection not built yet" if h["alerts"] is None else f"{h['alerts']:,}"))
    tr = h["traced"]
    lines.append(
        "money traced      "
        + (
            "tracing has not produced holdings"
            if tr is None
            else f"{tr['cases']:,} cases; held at report time in {tr['accounts_holding']:,} accounts: "
            f"FIFO {money(tr['held_fifo'])}, LIBR {money(tr['held_libr'])}, poison {money(tr['held_poison'])}"
        )
    )
    c = h.get("centre")
    if c and c.get("accounts_scored"):
        lines.append(
            f"decisions         {c['accounts_to_freeze'] or 0:,} accounts to freeze ({c['stop_payments'] or 0:,} "
            f"stop-payments) for {money(c['money_to_freeze'])} under {c['freeze_rule']}"
            + (f", {c['money_to_freeze_share']:.1%} of the money lost" if c.get("money_to_freeze_share") else "")
        )
        lines.append(
            f"                  {c['accounts_frozen'] or 0:,} accounts frozen by requests issued, "
            f"{c['rings_found'] or 0:,} card-farm rings, {c['banks_involved'] or 0:,} banks involved"
        )
    for line in lines:
        p(line, highlight=False, markup=False)
    if h["alerts_by_typology"]:
        emit(h["alerts_by_typology"], title="alerts by typology")
    emit(_quality(ev), title="quality against the world's truth (fundtrace evaluate)")
    o = result["outputs"]
    p(
        f"\noutputs\n  world (inputs + truth_*)  {o['world']}\n  workspace                 {o['workspace']}\n"
        f"  evaluation                {o['evaluation']}\n"
        + (f"  report (Parquet, freeze list, manifest)  {o['report']}\n" if o.get("report") else "")
        + f"next\n  export FUNDTRACE_DB={o['workspace']}\n"
        "  fundtrace stats\n"
        "  fundtrace query cases\n"
        "  fundtrace case CASE_ID --out case.html\n"
        f"  fundtrace evaluate --truth {o['world']}",
        highlight=False,
        markup=False,
    )


def _detail(stage: dict) -> str:
    d = stage["detail"]
    if "error" in d:
        return d["error"]
    return ", ".join(
        f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in d.items() if k != "seconds" and v is not None
    )


def _quality(ev: dict) -> list[dict[str, str]]:
    rows = []
    for level in ("accounts", "transactions"):
        sec = ev["detection"][level]
        name = f"detection, {level[:-1]} level"
        if sec["status"] != "ok":
            rows.append({"measure": name, "figures": f"absent: {sec['reason']}"})
            continue
        o = next(r for r in sec["rows"] if r["typology"] == "overall")
        rows.append(
            {
                "measure": name,
                "figures": f"precision {ratio(o['precision'])}, recall {ratio(o['recall'])}, F1 {ratio(o['f1'])} "
                f"({o['correct']:,} of {o['flagged']:,} flagged are fraud; {o['found']:,} of {o['truth']:,} found)",
            }
        )
    s = ev["scores"]
    rows.append(
        {
            "measure": "account scores",
            "figures": f"absent: {s['reason']}"
            if s["status"] != "ok"
            else f"PR-AUC {ratio(s['pr_auc'])}, "
            + ", ".join(f"precision@{k['k']} {ratio(k['precision'])}" for k in s["precision_at_k"]),
        }
    )
    t = ev["tracing"]
    if t["status"] != "ok":
        rows.append({"measure": "tracing", "figures": f"absent: {t['reason']}"})
    else:
        best = next(r for r in t["rows"] if r["rule"] == t["closest"])
        rows.append(
            {
                "measure": "tracing",
                "figures": f"closest rule {best['rule']}: money recall {ratio(best['money_recall'])}, "
                f"money precision {ratio(best['money_precision'])}, mean abs. error {money(best['mae'])} "
                f"per case-account",
            }
        )
    f = ev["freeze"]
    rows.append(
        {
            "measure": "freeze list",
            "figures": f"absent: {f['reason']}"
            if f["status"] != "ok"
            else f"money recall {ratio(f['money_recall'])}, money precision {ratio(f['money_precision'])}",
        }
    )
    return rows
