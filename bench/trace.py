"""Benchmark: trace ~1,000 reported cases over a synthetic 1 M- and 10 M-transaction workspace.

Builds each workspace directly in DuckDB (heavy-tailed background transfers over 30 days, ATM/POS noise,
a bank without data, and injected fraud cases: victim -> 3-6 mule levels with fan-out, mules drawn from
the ordinary accounts so they have ordinary ledgers, shared across cases, ending in ATM cash-outs), then
runs ``fundtrace.trace.run`` on all cases in a fresh process and reports wall time, ms per case and peak
RSS of that process.

    python bench/trace.py                 # 1 M and 10 M rows, 1,000 cases
    python bench/trace.py --rows 1000000  # one size only (or --rows 1000000 10000000)
    python bench/trace.py --dir /tmp/tb --keep  # build once into /tmp/tb, reuse the workspaces later
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from fundtrace.workspace import Workspace

START = datetime(2026, 1, 1)


def build(path: Path, rows: int, cases: int, seed: int = 7) -> dict:
    accounts = max(rows // 10, 1000)
    t0 = time.perf_counter()
    with Workspace(path) as ws:
        con = ws.con
        con.execute("SELECT setseed(0.42)").fetchall()
        con.execute(
            f"""
            INSERT INTO transactions
            WITH g AS (
                SELECT i,
                       floor({accounts} * pow(random(), 1.5))::BIGINT AS s,
                       floor({accounts} * pow(random(), 3))::BIGINT AS d,
                       random() AS r, random() AS c, random() AS t
                FROM range({rows}) r(i)
            )
            SELECT 'n' || i, TIMESTAMP '2026-01-01' + to_microseconds((t * 30 * 86400e6)::BIGINT),
                   'b1', 'a' || s, CASE WHEN c < 0.01 THEN 'bx' ELSE 'b1' END, 'a' || d,
                   account_key('b1', 'a' || s), account_key(CASE WHEN c < 0.01 THEN 'bx' ELSE 'b1' END, 'a' || d),
                   round(10 + 2000 * pow(r, 3), 2)::DECIMAL(18, 4), 'CNY',
                   CASE WHEN c > 0.97 THEN 'atm' WHEN c > 0.95 THEN 'pos' ELSE 'transfer' END, 1
            FROM g
            """
        ).fetchall()
        rnd = random.Random(seed)
        txns, reports = [], []
        mules = [f"a{rnd.randrange(accounts // 10, accounts)}" for _ in range(max(cases // 3, 10))]
        for k in range(cases):
            paid = START + timedelta(seconds=rnd.uniform(0, 25 * 86400))
            amount = round(rnd.uniform(1000, 50000), 2)
            first = rnd.choice(mules)
            txn = f"f{k}_0"
            txns.append((txn, paid, f"victim{k}", first, amount, "transfer"))
            reports.append((f"case{k:04d}", f"victim{k}", paid + timedelta(hours=rnd.uniform(2, 48)), amount, txn))
            frontier = [(first, amount, paid)]
            for level in range(rnd.randint(3, 6)):
                nxt = []
                for acct, amt, ts in frontier:
                    fan = rnd.choice((1, 1, 2, 3))
                    for j in range(fan):
                        when = ts + timedelta(minutes=rnd.uniform(10, 600))
                        part = round(amt * rnd.uniform(0.9, 0.98) / fan, 2)
                        dst = rnd.choice(mules) if rnd.random() < 0.3 else f"m{k}_{level}_{j}"
                        txns.append((f"f{k}_{len(txns)}", when, acct, dst, part, "transfer"))
                        nxt.append((dst, part, when))
                frontier = nxt
            for acct, amt, ts in frontier:
                txns.append(
                    (f"f{k}_{len(txns)}", ts + timedelta(hours=1), acct, f"atm{k}", round(amt * 0.99, 2), "atm")
                )
        con.register(
            "_f",
            pa.table(
                {
                    "txn_id": [t[0] for t in txns],
                    "ts": [t[1] for t in txns],
                    "src": [t[2] for t in txns],
                    "dst": [t[3] for t in txns],
                    "amount": [t[4] for t in txns],
                    "channel": [t[5] for t in txns],
                }
            ),
        )
        con.execute(
            "INSERT INTO transactions SELECT txn_id, ts, 'b1', src, 'b1', dst, account_key('b1', src), "
            "account_key('b1', dst), CAST(amount AS DECIMAL(18, 4)), 'CNY', channel, 2 FROM _f"
        ).fetchall()
        con.register(
            "_r",
            pa.table(
                {
                    "case_id": [r[0] for r in reports],
                    "victim": [r[1] for r in reports],
                    "reported_at": [r[2] for r in reports],
                    "amount": [r[3] for r in reports],
                    "txn_id": [r[4] for r in reports],
                }
            ),
        )
        con.execute(
            "INSERT INTO reports SELECT case_id, 'b1', victim, reported_at, CAST(amount AS DECIMAL(18, 4)), "
            "txn_id, NULL, NULL, NULL, 3 FROM _r"
        ).fetchall()
        con.execute("CHECKPOINT").fetchall()
        n = con.execute("SELECT count(*) FROM transactions").fetchall()[0][0]
    return {"rows": n, "fraud_rows": len(txns), "build_s": round(time.perf_counter() - t0, 1)}


def trace_child(path: str, max_hops: int, min_amount: float, min_share: float | None) -> None:
    from fundtrace.trace import TraceSettings, run

    with Workspace(path) as ws:
        t0 = time.perf_counter()
        extra = {} if min_share is None else {"min_share": min_share}  # default: the setting's default
        out = run(ws, settings=TraceSettings(max_hops=max_hops, min_amount=min_amount, **extra))
        wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss / 1024**2  # KiB -> GiB
    out["unresolved"] = len(out["unresolved"])
    print(json.dumps(out | {"wall_s": round(wall, 2), "peak_gib": round(peak, 2)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", action="extend", help="workspace sizes (transactions)")
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--max-hops", type=int, default=8)
    ap.add_argument("--min-amount", type=float, default=1.0)
    ap.add_argument("--min-share", type=float, default=None, help="trace.min_share (default: the setting's default)")
    ap.add_argument(
        "--keep", action="store_true", help="keep each workspace in --dir and reuse it on the next run (no rebuild)"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        trace_child(args.child, args.max_hops, args.min_amount, args.min_share)
        return
    sizes = args.rows or [1_000_000, 10_000_000]
    base = args.dir or Path(tempfile.mkdtemp(prefix="fundtrace-bench-"))
    print(
        f"{'rows':>12} {'cases':>6} {'build s':>8} {'trace s':>8} {'CPU s':>7} {'ms/case':>8} {'peak GiB':>9} "
        f"{'read s':>7} {'pass s':>7} {'store s':>8} {'CPU r/p/s':>16} "
        f"{'accounts':>9} {'ledger rows':>12} {'loads':>6} {'replayed':>10} "
        f"{'flows':>9} {'holdings':>9}"
    )
    for size in sizes:
        path = base / f"trace_{size}.duckdb"
        if args.keep and path.exists():
            with Workspace(path) as ws:
                n = ws.con.execute("SELECT count(*) FROM transactions").fetchall()[0][0]
            info = {"rows": n, "build_s": "reused"}
        else:
            path.unlink(missing_ok=True)
            info = build(path, size, args.cases)
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(path),
                "--max-hops",
                str(args.max_hops),
                "--min-amount",
                str(args.min_amount),
                *([] if args.min_share is None else ["--min-share", str(args.min_share)]),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime  # the whole child, start-up included
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"{info['rows']:>12,} {r['cases']:>6,} {info['build_s']:>8} {r['wall_s']:>8} {cpu:>7.1f} "
            f"{1000 * r['wall_s'] / max(r['cases'], 1):>8.1f} {r['peak_gib']:>9} {r['seconds_read']:>7} "
            f"{r['seconds_trace']:>7} {r['seconds_store']:>8} "
            f"{r['cpu_read']:>5.1f}/{r['cpu_trace']:>4.1f}/{r['cpu_store']:>4.1f} {r['accounts']:>9,} "
            f"{r['rows']:>12,} {r['passes']:>6} {r['rows_replayed']:>10,} {r['flows']:>9,} {r['holdings']:>9,}"
        )
        if not args.keep:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
