"""Account-level recall and precision per typology of `fundtrace detect` on several simulated worlds.

Detection was tuned on one world (seed 7, 33,000 accounts x 30 days). This script measures how it
generalises: for each world (accounts x days, seed) it simulates the world (kept under --dir and
reused when its files exist), loads it (accounts, transactions, links, reports, calls in that order),
runs a full `detect` and `fundtrace.evaluate.evaluate` against the world's truth, and prints one
table with a column per world. A cell is ``recall / precision``; ``*`` marks a value under the
bar (recall 0.90, precision 0.80) when the typology has at least one truth account.

    flock /tmp/fundtrace-bench.lock python3 bench/sim_quality.py --dir /tmp/simq \\
        --world 33000x30:7 --world 33000x30:11 --world 5000x30:7 [--json out.json] [--set name=value]

Each world's evaluation is also written as DIR/ev_<accounts>x<days>_s<seed>.json. With --explain, every
line under the bar is followed by its missed truth accounts (role, mule level, the raw alerts they were
in before corroboration) and its false alarms (the alert's role and sentence, the account's kind).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from fundtrace.config import Config, LoadSettings
from fundtrace.detect import DetectSettings, run
from fundtrace.evaluate import evaluate
from fundtrace.ingest import load_paths
from fundtrace.simulate import simulate
from fundtrace.workspace import Workspace

KINDS = ("accounts", "transactions", "links", "reports", "calls")
RECALL_BAR, PRECISION_BAR = 0.90, 0.80
DEFAULT_WORLDS = ("33000x30:7", "33000x30:11", "33000x30:23", "33000x30:101", "5000x30:7", "10000x90:7")


def parse_world(spec: str) -> tuple[int, int, int]:
    """``ACCOUNTSxDAYS:SEED`` -> (accounts, days, seed)."""
    size, _, seed = spec.partition(":")
    accounts, _, days = size.partition("x")
    return int(accounts), int(days), int(seed or 7)


def measure(
    root: Path, accounts: int, days: int, seed: int, overrides: dict, config: Path | None, explain: bool = False
) -> dict:
    """Simulate (or reuse), load, detect and evaluate one world; return the evaluation and timings."""
    tag = f"{accounts}x{days}_s{seed}"
    world = root / f"world_{tag}"
    if not (world / "truth_accounts.parquet").exists():
        simulate(world, accounts=accounts, days=days, seed=seed, fmt="parquet")
    base = root / f"base_{tag}.duckdb"
    if not base.exists():
        part = base.with_suffix(".part")
        part.unlink(missing_ok=True)
        with Workspace(part) as ws:
            for kind in KINDS:
                path = world / f"{kind}.parquet"
                if path.exists():
                    load_paths(ws, kind, [str(path)], settings=LoadSettings())
        part.rename(base)
    db = root / f"run_{tag}.duckdb"
    shutil.copy(base, db)
    try:
        with Workspace(db) as ws:
            settings = Config.load(config).section("detect", DetectSettings, overrides)
            started = time.perf_counter()
            run(ws, settings, full=True)
            seconds = time.perf_counter() - started
            ev = evaluate(ws, world)
            if explain:
                ev["_explain"] = explain_lines(ws, world, ev)
    finally:
        db.unlink(missing_ok=True)
    ev["_run"] = {"tag": tag, "detect_seconds": round(seconds, 2)}
    (root / f"ev_{tag}.json").write_text(json.dumps(ev, indent=1, default=str))
    return ev


def explain_lines(ws: Workspace, world: Path, ev: dict, limit: int = 12) -> list[str]:
    """Misses and false alarms of every typology line under the bar (account level, as evaluate counts)."""
    con = ws.con
    con.execute(
        "CREATE OR REPLACE TEMP TABLE q_truth AS SELECT CAST(bank AS VARCHAR) AS bank, CAST(account AS VARCHAR) "
        "AS account, role, mule_level, typology FROM read_parquet($p)",
        {"p": str(world / "truth_accounts.parquet")},
    ).fetchall()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE q_pred AS SELECT m.bank, m.account, m.role, a.typology, a.summary "
        "FROM alert_members m JOIN alerts a USING (alert_id) WHERE m.role IS DISTINCT FROM 'source'"
    ).fetchall()
    lines = []
    for typ, row in account_rows(ev).items():
        low_recall = row.get("recall") is not None and row["recall"] < RECALL_BAR
        low_precision = row.get("precision") is not None and row.get("truth") and row["precision"] < PRECISION_BAR
        if typ == "overall" or not (low_recall or low_precision):
            continue
        if low_recall:
            missed = con.execute(
                "SELECT t.account, t.role, t.mule_level, (SELECT list(DISTINCT r.typology || ':' || m.role) "
                "FROM detect_names n JOIN detect_raw_members m USING (account_id) JOIN detect_raw_alerts r USING "
                "(alert_id) WHERE n.bank = t.bank AND n.account = t.account) AS raw FROM q_truth t "
                "WHERE t.typology = $t AND t.role IN ('mule', 'cash_out') "
                "AND EXISTS (SELECT 1 FROM transactions x WHERE (x.src_bank = t.bank AND x.src_account = t.account) "
                "OR (x.dst_bank = t.bank AND x.dst_account = t.account)) "
                "AND NOT EXISTS (SELECT 1 FROM q_pred p WHERE p.bank = t.bank AND p.account = t.account) "
                "ORDER BY t.account LIMIT $n",
                {"t": typ, "n": limit},
            ).fetchall()
            lines += [f"  {typ} missed {a} ({r}, level {lv}); raw alerts: {raw or 'none'}" for a, r, lv, raw in missed]
        if low_precision:
            wrong = con.execute(
                "SELECT p.account, p.role, coalesce(k.kind, '?'), any_value(p.summary) FROM q_pred p "
                "LEFT JOIN accounts k USING (bank, account) WHERE p.typology = $t AND NOT EXISTS (SELECT 1 FROM "
                "q_truth t WHERE t.bank = p.bank AND t.account = p.account AND t.role IN ('mule', 'cash_out')) "
                "GROUP BY ALL ORDER BY 1 LIMIT $n",
                {"t": typ, "n": limit},
            ).fetchall()
            lines += [f"  {typ} false alarm {a} ({role}, {kind}): {why}" for a, role, kind, why in wrong]
    return lines


def account_rows(ev: dict) -> dict[str, dict]:
    return {r["typology"]: r for r in ev["detection"]["accounts"]["rows"]}


def cell(row: dict | None) -> str:
    if row is None:
        return "-"
    rec, prec = row.get("recall"), row.get("precision")
    if rec is None and prec is None:
        return "-"
    r = "  -  " if rec is None else f"{rec:.3f}" + ("*" if rec < RECALL_BAR else "")
    p = "  -  " if prec is None else f"{prec:.3f}" + ("*" if prec < PRECISION_BAR and row.get("truth") else "")
    return f"{r} / {p} ({row.get('truth', 0)})"


def table(results: dict[str, dict]) -> str:
    tags = list(results)
    typologies: list[str] = []
    for ev in results.values():
        for t in account_rows(ev):
            if t not in typologies:
                typologies.append(t)
    width = max(26, *(len(t) + 2 for t in tags))
    lines = ["typology".ljust(16) + "".join(t.rjust(width) for t in tags)]
    for typ in typologies:
        lines.append(typ.ljust(16) + "".join(cell(account_rows(results[t]).get(typ)).rjust(width) for t in tags))
    lines.append("detect s".ljust(16) + "".join(str(results[t]["_run"]["detect_seconds"]).rjust(width) for t in tags))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True, help="where worlds and workspaces are kept")
    ap.add_argument("--world", action="append", help="ACCOUNTSxDAYS:SEED, repeatable (default: the six worlds)")
    ap.add_argument("--config", type=Path, help="a fundtrace.toml whose [detect] section to use")
    ap.add_argument("--set", action="append", default=[], help="detect setting override, name=value")
    ap.add_argument("--json", type=Path, help="also write the per-world account rows here")
    ap.add_argument("--explain", action="store_true", help="list the misses and false alarms of lines under the bar")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    results = {}
    for spec in args.world or DEFAULT_WORLDS:
        accounts, days, seed = parse_world(spec)
        ev = measure(args.dir, accounts, days, seed, overrides, args.config, args.explain)
        results[ev["_run"]["tag"]] = ev
        print(f"{ev['_run']['tag']}: detect {ev['_run']['detect_seconds']} s", flush=True)
    print("account level, recall / precision (truth accounts); * under 0.90 / 0.80")
    print(table(results))
    for tag, ev in results.items():
        if ev.get("_explain"):
            print(f"{tag}:", *ev["_explain"], sep="\n")
    if args.json:
        args.json.write_text(json.dumps({t: account_rows(ev) for t, ev in results.items()}, indent=1, default=str))


if __name__ == "__main__":
    main()
