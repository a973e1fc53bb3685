"""`fundtrace evaluate`: what the workspace found, measured against ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fundtrace.cli import Format, app, emit, money, ratio, say, state
from fundtrace.evaluate import evaluate as evaluate_workspace


@app.command()
def evaluate(
    truth: Annotated[
        Path | None,
        typer.Option(
            "--truth",
            help="The directory holding the ground truth: the truth_* files of `fundtrace simulate`, AMLSim's "
            "alert_accounts/transactions files with is_sar (or alerts/transactions with IS_FRAUD), or an AMLworld "
            "file with 'Is Laundering' (and its "
            "*_Patterns.txt for typologies). Without it, "
            "the AMLSim or AMLworld labels loaded into the workspace are used.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Format, typer.Option("--format", help="Print tables for people, or one JSON object for programs.")
    ] = Format.table,
) -> None:
    """Measure detection, account scores, tracing and the freeze list against ground truth.

    Detection: precision, recall and F1 per typology and overall, at account level (accounts that
    transact) and transaction level. Scores: PR-AUC and precision@100/1000. Tracing: money recall,
    money precision and mean absolute error per rule. Freeze list: money recall and precision. A stage
    that has not run is reported as absent, never as zero.
    """
    with state.workspace(read_only=True) as ws:
        result = evaluate_workspace(ws, truth)
    if output is Format.json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    render(result)


def render(result: dict[str, Any]) -> None:
    """Print an evaluation as tables on stdout, with absent stages named on stderr."""
    t = result["truth"]
    say(
        f"truth: {t['kind']} ({t['path']}) · {t['transacting_accounts']:,} accounts transact, "
        f"{_count(t['positive_accounts'])} of them positive · {_count(t['fraud_transactions'])} fraud "
        f"transactions of {t['transactions']:,}"
    )
    if t.get("patterns"):
        p = t["patterns"]
        say(f"typologies: {p['path']} lists {p['listed']:,} payments, {p['matched']:,} of them loaded here")
    excluded = result["detection"]["accounts"].get("excluded_roles")
    if excluded is not None:
        say(
            "flagged: alert members of every role"
            if not excluded
            else f"flagged: alert members of every role but {', '.join(excluded)} (not positive in this truth)"
        )
    for level in ("accounts", "transactions"):
        section = result["detection"][level]
        if _absent(f"detection ({level})", section):
            continue
        rows = [
            {
                "typology": r["typology"],
                "truth": r["truth"],
                "found": r["found"],
                "recall": ratio(r["recall"]),
                "flagged": r["flagged"],
                "correct": r["correct"],
                "precision": ratio(r["precision"]),
                "f1": ratio(r["f1"]),
            }
            for r in section["rows"]
        ]
        emit(rows, title=f"detection, {level[:-1]} level")
    s = result["scores"]
    if not _absent("account scores", s):
        rows = [{"measure": "PR-AUC", "value": ratio(s["pr_auc"]), "over": s["scored_accounts"]}]
        rows += [{"measure": f"precision@{k['k']}", "value": ratio(k["precision"]), "over": k["over"]}
                 for k in s["precision_at_k"]]  # fmt: skip
        rows.append({"measure": "base rate", "value": ratio(s["base_rate"]), "over": t["transacting_accounts"]})
        emit(rows, title="account scores")
    tr = result["tracing"]
    if not _absent("tracing", tr):
        rows = [
            {
                "rule": r["rule"] + (" *" if r["rule"] == tr["closest"] else ""),
                "held": money(r["held"]),
                "truth": money(r["truth"]),
                "matched": money(r["matched"]),
                "money_recall": ratio(r["money_recall"]),
                "money_precision": ratio(r["money_precision"]),
                "mae": money(r["mae"]),
            }
            for r in tr["rows"]
        ]
        emit(
            rows,
            title=f"tracing: {tr['cases_traced']:,} of {tr['cases_reported']:,} reported cases traced, "
            f"{tr['pairs']:,} case-accounts; * closest rule (least mean absolute error)",
        )
    f = result["freeze"]
    if not _absent("freeze list", f):
        emit(
            [
                {
                    "accounts_frozen": f["accounts_frozen"],
                    "frozen": money(f["frozen"]),
                    "victims_money_held": money(f["truth"]),
                    "covered": money(f["covered"]),
                    "money_recall": ratio(f["money_recall"]),
                    "money_precision": ratio(f["money_precision"]),
                }
            ],
            title="freeze list",
        )


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _absent(name: str, section: dict) -> bool:
    if section["status"] == "absent":
        say(f"{name}: absent — {section['reason']}")
        return True
    return False
