"""Account-level quality of `fundtrace detect` on the AMLSim development set, as `fundtrace evaluate` counts it.

Loads the set into a temporary workspace, runs a full detect (the defaults, which on AMLSim's output are
the day-scale ones, see fundtrace.detect.fit; then the [detect] section of --config and --set overrides)
and prints the account-level rows of `fundtrace.evaluate.evaluate` against the set's
own files: a positive is an account at either end of a laundering transaction (typology: its alert's
type), a flagged account is an alert member of any role, and only accounts that transact count.

Two more columns, ``same_recall`` and ``same_precision``, count only alerts and positives of the same
typology, so they show where fundtrace names a pattern differently from AMLSim (evaluate's recall
accepts an alert of any typology, its precision a positive of any typology). The script checks that
its per-typology positives and flagged accounts are exactly evaluate's before printing them.

    python bench/amlsim_quality.py [--data fixtures/amlsim-dev] [--config fundtrace.toml]
                                   [--set fan_window_hours=2400 ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from fundtrace.config import Config, LoadSettings
from fundtrace.detect import DetectSettings, run
from fundtrace.evaluate import evaluate
from fundtrace.ingest import load_paths
from fundtrace.workspace import Workspace

COLUMNS = ("typology", "truth", "found", "recall", "flagged", "correct", "precision", "f1")
SAME = ("same_found", "same_recall", "same_correct", "same_precision")


def same_typology(ws: Workspace, data: Path, excluded: list[str]) -> dict[str, dict]:
    """Per typology: positives and flagged accounts as evaluate counts them, and how many of each the
    other side covers with the same typology."""
    con = ws.con
    con.execute(
        "CREATE OR REPLACE TEMP TABLE q_pos AS SELECT DISTINCT s.alert_type AS typology, e.bank, e.account FROM "
        "read_csv($p, header = true, all_varchar = true) s JOIN transactions t ON t.txn_id = s.tran_id, "
        "LATERAL (VALUES (t.src_bank, t.src_account), (t.dst_bank, t.dst_account)) e(bank, account) "
        "WHERE lower(s.is_sar) IN ('true', '1')",
        {"p": str(data / "alert_transactions.csv.gz")},
    ).fetchall()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE q_pred AS SELECT DISTINCT a.typology, m.bank, m.account FROM alert_members m "
        "JOIN alerts a ON a.alert_id = m.alert_id WHERE (m.role IS NULL OR NOT list_contains($ex, m.role)) "
        "AND (m.bank, m.account) IN (SELECT (src_bank, src_account) FROM transactions "
        "UNION SELECT (dst_bank, dst_account) FROM transactions)",
        {"ex": excluded},
    ).fetchall()
    rows = con.execute(
        """
        WITH by_truth AS (
                 SELECT typology, count(*) AS truth, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM q_pred q
                        WHERE q.typology = p.typology AND q.bank = p.bank AND q.account = p.account)) AS same_found
                 FROM q_pos p GROUP BY 1),
             by_pred AS (
                 SELECT typology, count(*) AS flagged, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM q_pos p
                        WHERE p.typology = q.typology AND p.bank = q.bank AND p.account = q.account)) AS same_correct
                 FROM q_pred q GROUP BY 1)
        SELECT coalesce(t.typology, f.typology), coalesce(truth, 0), coalesce(same_found, 0),
               coalesce(flagged, 0), coalesce(same_correct, 0)
        FROM by_truth t FULL OUTER JOIN by_pred f ON f.typology = t.typology
        """
    ).fetchall()
    return {t: {"truth": n, "same_found": found, "flagged": flagged, "same_correct": correct}
            for t, n, found, flagged, correct in rows}  # fmt: skip


def measure(db: Path, data: Path, overrides: dict, config: Path | None = None) -> dict:
    """Detect on the loaded workspace ``db``; evaluate's account rows with the same-typology columns."""
    with Workspace(db) as ws:
        settings = Config.load(config).section("detect", DetectSettings, overrides)
        started, cpu = time.perf_counter(), time.process_time()
        run(ws, settings, full=True)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        ev = evaluate(ws, data)
        section = ev["detection"]["accounts"]
        if section["status"] != "ok":
            raise SystemExit(f"evaluate: detection (accounts) {section['status']}: {section.get('reason')}")
        same = same_typology(ws, data, section["excluded_roles"])
    rows = []
    for row in section["rows"]:
        extra = {"same_found": row["found"], "same_correct": row["correct"]}  # overall: typology does not matter
        if row["typology"] != "overall":
            s = same.get(row["typology"], {"truth": 0, "flagged": 0, "same_found": 0, "same_correct": 0})
            if (s["truth"], s["flagged"]) != (row["truth"], row["flagged"]):
                raise SystemExit(f"{row['typology']}: truth/flagged {s['truth']}/{s['flagged']} here, "
                                 f"{row['truth']}/{row['flagged']} in evaluate")  # fmt: skip
            extra = {"same_found": s["same_found"], "same_correct": s["same_correct"]}
        extra["same_recall"] = extra["same_found"] / row["truth"] if row["truth"] else None
        # a typology AMLSim has no alerts of (chain, pass_through, ...) has no same-typology precision
        extra["same_precision"] = extra["same_correct"] / row["flagged"] if row["flagged"] and row["truth"] else None
        rows.append({**row, **extra})
    return {"rows": rows, "truth": ev["truth"], "detect_seconds": seconds, "detect_cpu_seconds": cpu_seconds,
            "transactions_overall": ev["detection"]["transactions"].get("rows", [None])[0]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "fixtures/amlsim-dev")
    ap.add_argument("--config", type=Path, help="a fundtrace.toml whose [detect] section to use")
    ap.add_argument("--set", action="append", default=[], help="detect setting override, name=value")
    ap.add_argument("--json", type=Path, help="also write the rows and the run's figures here")
    args = ap.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "amlsim.duckdb"
        with Workspace(db) as ws:
            for kind in ("accounts", "transactions"):
                load_paths(ws, kind, [str(args.data / f"{kind}.csv.gz")], settings=LoadSettings(), profile="amlsim")
        result = measure(db, args.data, overrides, args.config)
    cols = [*COLUMNS, "same_recall", "same_precision"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in result["rows"]:
        cells = ["-" if r[c] is None else f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        print("| " + " | ".join(cells) + " |")
    t = result["transactions_overall"]
    if t:
        print(f"transaction level, overall: recall {t['recall']:.3f}, precision {t['precision']:.3f} "
              f"({t['correct']} of {t['flagged']} evidence transactions, {t['truth']} laundering)")  # fmt: skip
    print(f"detect {result['detect_seconds']:.1f} s wall, {result['detect_cpu_seconds']:.1f} s CPU (this process)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
